"""Rows: schema, determinism, decodability, corners vs zxing-cpp, and masks aligned under every warp."""

import cv2
import numpy as np
import pytest
import zxingcpp

from cambench_qr import parts as P
from cambench_qr.dataset_builder.distortions import DISTORTION_FAMILIES, GEOMETRIC
from cambench_qr.dataset_builder.negatives import NEGATIVE_KINDS, SYMBOLOGIES, negative_object
from cambench_qr.dataset_builder.render import (
    apply_homography,
    draw_grid,
    quad_homography,
    scaling,
    translation,
)
from cambench_qr.dataset_builder.samples import (
    CONFIG_NAMES,
    find_payload,
    generate_row,
    make_sample,
    row_seed,
)

COLUMNS = {"id", "image", "parts", "occluded", "label", "corners", "version", "ecc", "mask_pattern",
           "payload", "module_px", "distortion", "severity", "background", "negative_kind", "seed",
           "decodable", "source"}


def _pixels_in_modules(row: dict, part: int, shift: float, window: float):
    """Pixels labelled ``part`` whose centre lies within ``window`` of a module's middle (module positions
    from the stored corners only, optionally shifted by ``shift`` modules): (luminance, row, col)."""
    n = 4 * row["version"] + 17
    square = np.array([[0, 0], [n, 0], [n, n], [0, n]], float)
    h = quad_homography(square + shift, np.array(row["corners"]))
    lum = cv2.cvtColor(row["image"], cv2.COLOR_RGB2GRAY)
    ys, xs = np.nonzero(row["parts"] == part)
    uv = apply_homography(np.linalg.inv(h), np.stack([xs + 0.5, ys + 0.5], 1))
    frac = uv - np.floor(uv)
    middle = (np.abs(frac - 0.5) < window).all(1)
    col, r = np.floor(uv[middle]).astype(int).T
    return lum[ys[middle], xs[middle]].astype(float), r, col


def _finder_ring(r: np.ndarray, col: np.ndarray, n: int) -> np.ndarray:
    """Chebyshev distance of module (r, col) from its finder's centre: 0-1 dark core, 2 light, 3 dark."""
    centre_r, centre_c = np.where(r < n / 2, 3, n - 4), np.where(col < n / 2, 3, n - 4)
    return np.maximum(np.abs(r - centre_r), np.abs(col - centre_c))


def finder_agreement(row: dict, shift: float = 0.0) -> tuple[float, float]:
    """(share of finder pixels whose darkness matches the 7x7 ring pattern, share of separator pixels
    that are light), over pixels whose centre lies in the middle fifth of a module; dark = at or below
    the Otsu threshold of the symbol's luminance (OpenCV's convention: above it is foreground)."""
    lum = cv2.cvtColor(row["image"], cv2.COLOR_RGB2GRAY)
    symbol = np.isin(row["parts"], P.REGIONS["box"])
    threshold, _ = cv2.threshold(lum[symbol][None], 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    values, r, col = _pixels_in_modules(row, P.FINDER, shift, 0.2)
    ring = _finder_ring(r, col, 4 * row["version"] + 17)
    finder = float(((values <= threshold) == (ring != 2)).mean())
    values, _, _ = _pixels_in_modules(row, P.SEPARATOR, shift, 0.2)
    return finder, float((values > threshold).mean())


def ring_means_ordered(row: dict) -> bool:
    """For codes too small to have module-middle pixels: every pixel labelled finder / separator, by the
    ring of the module holding its centre; the light ring and the separators must be lighter on
    average than each dark ring."""
    values, r, col = _pixels_in_modules(row, P.FINDER, 0.0, 0.5)
    ring = _finder_ring(r, col, 4 * row["version"] + 17)
    dark = [values[ring == k].mean() for k in (0, 1, 3)]
    light = [values[ring == 2].mean(), _pixels_in_modules(row, P.SEPARATOR, 0.0, 0.5)[0].mean()]
    return min(light) > max(dark)


def zxing_corner_error(row: dict) -> float:
    """Largest distance between stored and zxing-cpp corners, in module pitches (inf if not decoded)."""
    found = find_payload(row["image"], row["payload"])
    if found is None:
        return float("inf")
    p = found.position
    ours = np.array(row["corners"])
    theirs = np.array([[q.x, q.y] for q in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)], float)
    return float(np.linalg.norm(ours - theirs, axis=1).max() / row["module_px"])


def test_row_schema_and_values():
    for config in ("standard", "paper", "rotation"):
        for index in (0, 1):
            row = generate_row(config, "test", index, 3)
            assert set(row) == COLUMNS
            assert row["id"] == f"{config}/test/{index:06d}"
            image, parts, occluded = row["image"], row["parts"], row["occluded"]
            assert image.dtype == parts.dtype == occluded.dtype == np.uint8
            assert image.shape == (*parts.shape, 3) == (*occluded.shape, 3)
            assert set(np.unique(occluded)) <= {0, 255} and parts.max() < P.NUM_PARTS
            assert row["label"] == (index % 2 == 0) and row["source"] == "synthetic"
            assert 0 <= row["seed"] < 2 ** 63
            if row["label"]:
                assert row["negative_kind"] is None and len(row["corners"]) == 4
                assert row["ecc"] in "LMQH" and 0 <= row["mask_pattern"] < 8 and row["module_px"] > 0
                assert (parts == P.FINDER).any() and isinstance(row["decodable"], bool)
            else:
                assert row["corners"] is None and row["payload"] is None and row["decodable"] is None
                assert row["negative_kind"] and set(np.unique(parts)) <= {P.BACKGROUND, P.DISTRACTOR}
    assert generate_row("standard", "train", 0, 0)["image"].shape == (224, 224, 3)
    assert generate_row("blur", "train", 0, 0, image_size=96)["image"].shape == (96, 96, 3)


def test_clean_standard_decodes_with_matching_corners():
    rows = [generate_row("standard", "test", i, 7) for i in range(0, 200, 2)]
    decoded = [row["decodable"] for row in rows]
    assert np.mean(decoded) >= 0.99
    errors = [zxing_corner_error(row) for row in rows if row["decodable"]]
    assert max(errors) <= 1.5
    for row in rows[:30]:
        assert np.isin(row["parts"], (P.QUIET_ZONE,)).any()
        finder, separator = finder_agreement(row)
        assert finder >= 0.99 and separator >= 0.99, (row["id"], finder, separator)


def test_finder_check_catches_a_one_module_shift():
    row = generate_row("standard", "test", 0, 7)
    assert min(finder_agreement(row)) >= 0.99
    assert min(finder_agreement(row, shift=1.0)) < 0.9


@pytest.mark.parametrize("family", GEOMETRIC)
def test_masks_stay_aligned_under_geometric_distortions(family):
    for severity in range(1, 6):
        for k in range(4):
            index = 2 * (5 * k + severity - 1)  # even: a QR row at this severity
            row = generate_row(family, "test", index, 11)
            assert row["severity"] == severity and row["distortion"] == family
            assert ring_means_ordered(row), row["id"]
            if row["module_px"] >= 2:
                finder, separator = finder_agreement(row)
                assert finder >= 0.98 and separator >= 0.98, (row["id"], finder, separator)
            if row["decodable"]:
                assert zxing_corner_error(row) <= 1.5, row["id"]


@pytest.mark.parametrize("index", [0, 1])
def test_photometric_families_and_occlusion_change_the_image_only(index):
    # A photometric / occlusion row draws the same layout as the clean standard sample of its seed.
    for family in set(DISTORTION_FAMILIES) - set(GEOMETRIC):
        row = generate_row(family, "test", index, 5)
        clean = make_sample("standard", row["seed"], row["label"] == 1)
        assert row["severity"] == 1 and row["distortion"] == family
        np.testing.assert_array_equal(row["parts"], clean["parts"])
        assert row["corners"] == clean["corners"]
        assert not np.array_equal(row["image"], clean["image"])
        assert (row["occluded"] == 255).any() == (family == "occlusion")


def test_paper_config():
    for index in range(0, 40, 2):
        row = generate_row("paper", "train", index, 0)
        n = 4 * row["version"] + 17
        assert row["version"] <= 2 and len(row["payload"]) in range(6, 17)
        assert row["image"].shape[0] in (8 * n, 10 * n, 12 * n) and row["severity"] is None
        assert not np.isin(row["parts"], (P.QUIET_ZONE,)).any()
        if row["distortion"] in ("none", "contrast"):
            padded = cv2.copyMakeBorder(row["image"], 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=(255,) * 3)
            assert find_payload(padded, row["payload"]) is not None
            assert (row["parts"] > 0).all()
            assert min(finder_agreement(row)) == 1.0
    negative = generate_row("paper", "train", 1, 0)
    assert negative["image"].shape == (280, 280, 3)
    assert negative["negative_kind"] in ("checkerboard", "rectangles")


def test_determinism_and_seed_regeneration():
    for config in ("standard", "paper", "perspective", "noise"):
        a, b = generate_row(config, "train", 4, 9), generate_row(config, "train", 4, 9)
        for key in a:
            if isinstance(a[key], np.ndarray):
                np.testing.assert_array_equal(a[key], b[key])
            else:
                assert a[key] == b[key]
        again = make_sample(config, a["seed"], a["label"] == 1, a["severity"] or 0)
        np.testing.assert_array_equal(again["image"], a["image"])
    assert row_seed("standard", "train", 4, 9) != row_seed("standard", "test", 4, 9)
    assert row_seed("standard", "train", 4, 9) != row_seed("standard", "train", 4, 10)
    assert not np.array_equal(generate_row("standard", "train", 0, 0)["image"],
                              generate_row("standard", "train", 2, 0)["image"])


def test_bad_input():
    with pytest.raises(ValueError, match="unknown config"):
        generate_row("nope", "train", 0, 0)
    with pytest.raises(ValueError, match="split"):
        generate_row("standard", "valid", 0, 0)
    with pytest.raises(ValueError, match="index"):
        generate_row("standard", "train", -1, 0)
    with pytest.raises(ValueError, match="base_seed"):
        generate_row("standard", "train", 0, -3)
    for severity in (0, 6):
        with pytest.raises(ValueError, match="severity"):
            make_sample("blur", 0, True, severity)
    with pytest.raises(ValueError, match="severity"):
        make_sample("standard", 0, True, 2)
    with pytest.raises(ValueError, match="native"):
        generate_row("paper", "train", 0, 0, image_size=224)
    with pytest.raises(ValueError, match="image_size"):
        generate_row("standard", "train", 0, 0, image_size=10)
    assert set(CONFIG_NAMES) >= {"standard", "paper", *DISTORTION_FAMILIES}


def _render_alone(grid) -> np.ndarray:
    """A grid drawn at an integer pitch on white with a 20 px margin."""
    height, width = grid.ink.shape
    pitch = max(1, 200 // max(height, width))
    canvas = np.full((height * pitch + 40, width * pitch + 40, 3), 255, np.uint8)
    h = translation(20, 20) @ scaling(pitch) @ translation(grid.margin, grid.margin)
    labels = draw_grid(canvas, grid, h, (255,) * 3, (0,) * 3, pitch)
    assert set(np.unique(labels)) == {P.BACKGROUND, P.DISTRACTOR}
    return canvas


@pytest.mark.parametrize("kind", NEGATIVE_KINDS)
def test_negative_objects(kind):
    # Other symbologies are real symbols (zxing-cpp reads them as their own format); nothing else reads
    # as any barcode, in particular the finder-less and cluttered QR-like grids.
    for seed in range(3):
        grid = negative_object(kind, np.random.default_rng(seed))
        assert set(np.unique(grid.labels)) == {P.DISTRACTOR}
        assert 0.0 <= grid.ink.min() and grid.ink.max() <= 1.0 and grid.ink.max() > 0
        formats = [result.format for result in zxingcpp.read_barcodes(_render_alone(grid))]
        if kind in SYMBOLOGIES:
            assert SYMBOLOGIES[kind] in formats
        else:
            assert formats == []


def test_negative_rows_and_distractors():
    negatives = [generate_row("standard", "train", i, 2) for i in range(1, 120, 2)]
    assert {row["negative_kind"] for row in negatives} == set(NEGATIVE_KINDS)
    for row in negatives:
        assert not zxingcpp.read_barcodes(row["image"], formats=zxingcpp.BarcodeFormat.QRCodeModel2)
        assert (row["parts"] == P.DISTRACTOR).mean() > 0.01  # elongated PDF417 / rMQR can be thin
    qr_rows = [generate_row("standard", "train", i, 2) for i in range(0, 80, 2)]
    with_distractors = [row for row in qr_rows if (row["parts"] == P.DISTRACTOR).any()]
    assert 0.15 <= len(with_distractors) / len(qr_rows) <= 0.6
    with pytest.raises(ValueError, match="negative kind"):
        negative_object("hologram", np.random.default_rng(0))
