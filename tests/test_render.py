"""One mapping: the OpenCV label warp equals the explicit inverse mapping at pixel centres."""

import numpy as np
import pytest

from cambench_qr.dataset_builder.geometry import encode, part_map
from cambench_qr.dataset_builder.render import (
    Grid,
    apply_homography,
    draw_grid,
    mean_module_pitch,
    opencv_matrix,
    qr_grid,
    quad_homography,
    rotation,
    scaling,
    symbol_corners,
    translation,
    warp_labels,
)


def labels_reference(labels: np.ndarray, h: np.ndarray, size: tuple[int, int], margin: int) -> np.ndarray:
    """Label map by explicit inverse mapping of every pixel centre (slow, exact): pixel centre
    ``(x + 0.5, y + 0.5)`` -> module coords ``h^-1`` -> grid cell ``floor(u + margin), floor(v + margin)``."""
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width]
    centres = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1)
    uv = apply_homography(np.linalg.inv(h), centres)
    col = np.floor(uv[:, 0] + margin).astype(np.int64)
    row = np.floor(uv[:, 1] + margin).astype(np.int64)
    inside = (row >= 0) & (row < labels.shape[0]) & (col >= 0) & (col < labels.shape[1])
    out = np.zeros(height * width, np.uint8)
    out[inside] = labels[row[inside], col[inside]]
    return out.reshape(height, width)


def test_opencv_matrix_by_hand():
    np.testing.assert_allclose(opencv_matrix(np.eye(3), 0, 1), np.eye(3))
    # 10 px modules upsampled 10x: source and destination pixels coincide.
    np.testing.assert_allclose(opencv_matrix(scaling(10), 0, 10), np.eye(3))
    # A 2-module margin, 1 source px per module, 2 px modules shifted by 5: source index 0 is the centre
    # of cell u = -1.5, canvas coordinate 5 + 2 (-1.5) = 2, destination index 2 - 0.5.
    h = translation(5, 5) @ scaling(2)
    np.testing.assert_allclose(apply_homography(opencv_matrix(h, 2, 1), np.array([[0.0, 0.0]])), [[1.5, 1.5]])


def test_corners_and_pitch_by_hand():
    h = translation(5, 7) @ scaling(3)
    corners = symbol_corners(h, 21, 21)
    np.testing.assert_allclose(corners, [[5, 7], [68, 7], [68, 70], [5, 70]])
    assert mean_module_pitch(corners, 21, 21) == pytest.approx(3.0)
    turned = symbol_corners(rotation(30) @ scaling(2.5), 25, 25)
    assert mean_module_pitch(turned, 25, 25) == pytest.approx(2.5)


def test_label_warp_equals_inverse_mapping_at_pixel_centres():
    rng = np.random.default_rng(0)
    modules, version, _, _ = encode("HELLO WORLD", 3, "M", 2)
    grid = qr_grid(modules, part_map(version), 4)
    n = modules.shape[0] + 8
    src = np.array([[-4, -4], [n - 4, -4], [n - 4, n - 4], [-4, n - 4]], float)
    for trial in range(12):
        dst = np.array([[20, 20], [140, 25], [135, 150], [22, 140]], float) + rng.uniform(-15, 15, (4, 2))
        dst += (trial % 3 == 1) * np.array([-70.0, -60.0]) + (trial % 3 == 2) * np.array([90.0, 40.0])
        h = quad_homography(src, dst)
        reference = labels_reference(grid.labels, h, (160, 170), 4)
        np.testing.assert_array_equal(warp_labels(grid, h, (160, 170)), reference)
        canvas = np.zeros((160, 170, 3), np.uint8)
        labels = draw_grid(canvas, grid, h, (255, 255, 255), (0, 0, 0), int(rng.integers(1, 5)))
        np.testing.assert_array_equal(labels, reference)
        # every pixel the image warp painted is labelled, and every unlabelled pixel is untouched
        assert not canvas[reference == 0].any()


def test_draw_grid_keeps_canvas_outside_and_paints_inside():
    grid = Grid(np.ones((3, 3), np.float32), np.full((3, 3), 9, np.uint8), 0, smooth=False)
    canvas = np.full((20, 20, 3), 7, np.uint8)
    labels = draw_grid(canvas, grid, translation(4, 4) @ scaling(4), (255, 255, 255), (0, 0, 0), 4)
    assert (labels[4:16, 4:16] == 9).all() and labels.sum() == 9 * 144
    assert (canvas[4:16, 4:16] == 0).all()
    assert (canvas[labels == 0] == 7).all()


def test_bad_grid():
    with pytest.raises(ValueError, match="differ in shape"):
        warp_labels(Grid(np.zeros((3, 3), np.float32), np.zeros((4, 4), np.uint8), 0), np.eye(3), (8, 8))
    with pytest.raises(ValueError, match="factor"):
        grid = Grid(np.zeros((3, 3), np.float32), np.ones((3, 3), np.uint8), 0)
        draw_grid(np.zeros((8, 8, 3), np.uint8), grid, np.eye(3), (255,) * 3, (0,) * 3, 0)
