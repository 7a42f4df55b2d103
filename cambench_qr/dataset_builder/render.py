"""Rendering with one mapping: image, ``parts`` and ``occluded`` come from the same homography
(docs/architecture.md s.2.2).

Coordinates. A *grid* is a small raster of cells (QR modules, or the pixels of a drawn patch) with a
margin of ``margin`` cells on each side (the quiet zone); grid cell ``(i, j)`` covers
``[j - margin, j - margin + 1) x [i - margin, i - margin + 1)`` in *module coordinates* ``(u, v)``, so the
symbol proper spans ``[0, w] x [0, h]``. Canvas coordinates are continuous pixel coordinates: pixel
``(y, x)`` covers ``[x, x + 1) x [y, y + 1)``, its centre is ``(x + 0.5, y + 0.5)``. A sample's homography
``H`` maps module coordinates to canvas coordinates; geometric distortions are factors of ``H``.

``draw_grid`` upsamples the grid by an integer ``factor`` (cells of ``factor`` source pixels) and warps
it with ``cv2.warpPerspective`` using ``opencv_matrix(H, margin, factor)``; the label map uses
``opencv_matrix(H, margin, 1)``, the same mapping ``H`` (nearest sampling picks the same cell at any
factor). OpenCV samples every destination pixel centre at the inverse image of that centre, so labels
(nearest) and colours (bilinear, or nearest) are read at the same point of module space.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cambench_qr.parts import QUIET_ZONE


def translation(tx: float, ty: float) -> np.ndarray:
    """3x3 matrix of ``(x, y) -> (x + tx, y + ty)``."""
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def scaling(sx: float, sy: float | None = None) -> np.ndarray:
    """3x3 matrix of ``(x, y) -> (sx x, sy y)`` (``sy`` defaults to ``sx``)."""
    return np.diag([sx, sx if sy is None else sy, 1.0])


def rotation(degrees: float) -> np.ndarray:
    """3x3 matrix rotating by ``degrees`` about the origin; positive turns clockwise on screen (y down)."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def quad_homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The homography taking the 4 points ``src`` onto ``dst`` (both (4, 2))."""
    return cv2.getPerspectiveTransform(np.float32(src), np.float32(dst)).astype(np.float64)


def apply_homography(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (K, 2) points by ``h``: ``p' = (h [x, y, 1])[:2] / (h [x, y, 1])[2]``."""
    pts = np.asarray(points, dtype=np.float64)
    hom = pts @ h[:, :2].T + h[:, 2]
    return hom[:, :2] / hom[:, 2:3]


def symbol_corners(h: np.ndarray, width: float, height: float) -> np.ndarray:
    """Canvas positions of the symbol's outer corners (module coords (0,0), (w,0), (w,h), (0,h)): TL, TR,
    BR, BL as read from the symbol, (4, 2) float64."""
    return apply_homography(h, np.array([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]]))


def mean_module_pitch(corners: np.ndarray, width: float, height: float) -> float:
    """Mean module pitch in pixels: the corner quad's perimeter over the symbol's perimeter in modules,
    ``(|TL TR| + |BR BL|) / (2 w) / 2 + (|TR BR| + |BL TL|) / (2 h) / 2``."""
    sides = np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1)
    return float((sides[0] + sides[2]) / (4 * width) + (sides[1] + sides[3]) / (4 * height))


def opencv_matrix(h: np.ndarray, margin: int, factor: int) -> np.ndarray:
    """The matrix ``cv2.warpPerspective`` needs to render a grid (margin ``margin`` cells, each upsampled
    to ``factor`` px) through ``h``. OpenCV indexes pixels by their centres, so source index ``x_s``
    is module coordinate ``u = (x_s + 0.5) / factor - margin`` and canvas coordinate ``X`` is destination
    index ``X - 0.5``: ``M = T(-0.5) h T(-margin) S(1 / factor) T(0.5)``."""
    return translation(-0.5, -0.5) @ h @ translation(-margin, -margin) @ scaling(1.0 / factor) @ translation(
        0.5, 0.5)


@dataclass
class Grid:
    """A renderable object: ``ink`` float32 (h, w) in [0, 1] (1 = dark) and ``labels`` uint8 (h, w),
    both including a margin of ``margin`` cells per side; the object proper spans ``size`` =
    ``(w - 2 margin, h - 2 margin)`` in module coordinates. ``smooth`` picks bilinear (anti-aliased)
    rather than nearest sampling of the ink."""

    ink: np.ndarray
    labels: np.ndarray
    margin: int
    smooth: bool = True

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the object without its margin, in cells."""
        return self.ink.shape[1] - 2 * self.margin, self.ink.shape[0] - 2 * self.margin


def qr_grid(modules: np.ndarray, parts: np.ndarray, quiet_zone: int, quiet_label: int = QUIET_ZONE) -> Grid:
    """The Grid of a QR symbol: module matrix (bool, dark = True) and its module-space part map, padded by
    a light quiet zone of ``quiet_zone`` modules labelled ``quiet_label``."""
    if modules.shape != parts.shape:
        raise ValueError(f"modules {modules.shape} and parts {parts.shape} differ in shape")
    if quiet_zone < 0:
        raise ValueError(f"quiet_zone must be >= 0 modules, got {quiet_zone}")
    return Grid(pad(modules, quiet_zone, 0.0, np.float32), pad(parts, quiet_zone, quiet_label, np.uint8),
                quiet_zone)


def pad(a: np.ndarray, margin: int, value: float, dtype: type) -> np.ndarray:
    """``a`` cast to ``dtype`` inside a border of ``margin`` cells of ``value`` (np.pad is ~10x slower)."""
    out = np.full((a.shape[0] + 2 * margin, a.shape[1] + 2 * margin), value, dtype)
    out[margin:margin + a.shape[0], margin:margin + a.shape[1]] = a
    return out


def _upsample(a: np.ndarray, factor: int) -> np.ndarray:
    """Each cell becomes ``factor x factor`` pixels (OpenCV's exact nearest-neighbour resize)."""
    if factor == 1:
        return np.ascontiguousarray(a)
    return cv2.resize(a, (a.shape[1] * factor, a.shape[0] * factor), interpolation=cv2.INTER_NEAREST_EXACT)


def _check_grid(grid: Grid) -> None:
    if grid.ink.shape != grid.labels.shape:
        raise ValueError(f"ink {grid.ink.shape} and labels {grid.labels.shape} grids differ in shape")


def _footprint(grid: Grid, h: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Integer box (x0, y0, x1, y1) of the canvas holding every pixel the grid incl. margin can cover: the
    bounding box of its mapped outline, widened by one pixel and clipped (the whole canvas if a corner
    maps to or behind the horizon)."""
    w, hgt = grid.size
    m = grid.margin
    outline = np.array([[-m, -m, 1], [w + m, -m, 1], [w + m, hgt + m, 1], [-m, hgt + m, 1]], np.float64)
    mapped = outline @ h.T
    if (mapped[:, 2] <= 1e-9).any():
        return 0, 0, size[1], size[0]
    pts = mapped[:, :2] / mapped[:, 2:]
    x0, y0 = np.floor(pts.min(0)).astype(int) - 1
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 1
    return max(x0, 0), max(y0, 0), max(min(x1, size[1]), 0), max(min(y1, size[0]), 0)


def _warp(source: np.ndarray, matrix: np.ndarray, size: tuple[int, int], flags: int, border_mode: int
          ) -> np.ndarray:
    """``cv2.warpPerspective(source, matrix, size)``; through ``cv2.warpAffine`` (the same sampling, less
    work per pixel) when ``matrix``'s last row is exactly (0, 0, 1), as for clean, rotated and scaled
    samples."""
    if matrix[2, 0] == 0 and matrix[2, 1] == 0 and matrix[2, 2] == 1:
        return cv2.warpAffine(source, matrix[:2], size, flags=flags, borderMode=border_mode, borderValue=0)
    return cv2.warpPerspective(source, matrix, size, flags=flags, borderMode=border_mode, borderValue=0)


def _roi_labels(grid: Grid, shifted: np.ndarray, width: int, height: int) -> np.ndarray:
    return _warp(np.ascontiguousarray(grid.labels), opencv_matrix(shifted, grid.margin, 1), (width, height),
                 cv2.INTER_NEAREST, cv2.BORDER_CONSTANT)


def warp_labels(grid: Grid, h: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The grid's labels on a canvas of ``size = (height, width)`` through module->canvas homography ``h``
    (uint8, 0 outside the grid): nearest neighbour at the inverse image of every pixel centre,
    ``opencv_matrix(h, margin, 1)`` (nearest sampling of a grid upsampled ``f`` x picks the same cell, so
    this is the mapping ``draw_grid`` uses for the image at any factor). Only the footprint box is warped
    (``h`` shifted by its corner); the rest is 0."""
    _check_grid(grid)
    x0, y0, x1, y1 = _footprint(grid, h, size)
    labels = np.zeros(size, np.uint8)
    if x1 > x0 and y1 > y0:
        labels[y0:y1, x0:x1] = _roi_labels(grid, translation(-x0, -y0) @ h, x1 - x0, y1 - y0)
    return labels


def draw_grid(canvas: np.ndarray, grid: Grid, h: np.ndarray, paper_rgb: np.ndarray, ink_rgb: np.ndarray,
              factor: int = 1) -> np.ndarray:
    """Draw ``grid`` onto ``canvas`` (uint8 HxWx3 with RGB colours, or HxW with gray levels; modified in
    place) through module->canvas homography ``h`` and return its label map (``warp_labels``).

    Cell colour = ``paper + ink (ink_colour - paper)``. A smooth grid is upsampled ``factor`` x (nearest)
    and sampled bilinearly (pick ``factor`` >= the module pitch so edges anti-alias over about one pixel);
    otherwise it is sampled with nearest neighbour, for which upsampling changes nothing. Exactly the
    pixels the label map covers are painted (the border replicated for the bilinear taps), so the image
    and the labels agree on the object's footprint; its outer edge is not blended with the canvas.
    """
    _check_grid(grid)
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    factor = factor if grid.smooth else 1
    labels = np.zeros(canvas.shape[:2], np.uint8)
    x0, y0, x1, y1 = _footprint(grid, h, canvas.shape[:2])
    if x1 <= x0 or y1 <= y0:
        return labels
    shifted = translation(-x0, -y0) @ h
    paper = np.asarray(paper_rgb, np.float32)
    ink = grid.ink if canvas.ndim == 2 else grid.ink[..., None]
    colours = paper + ink * (np.asarray(ink_rgb, np.float32) - paper)
    source = _upsample(np.clip(np.rint(colours), 0, 255).astype(np.uint8), factor)
    warped = _warp(source, opencv_matrix(shifted, grid.margin, factor), (x1 - x0, y1 - y0),
                   cv2.INTER_LINEAR if grid.smooth else cv2.INTER_NEAREST, cv2.BORDER_REPLICATE)
    roi = _roi_labels(grid, shifted, x1 - x0, y1 - y0)
    labels[y0:y1, x0:x1] = roi
    # masked copy (OpenCV's is ~30x faster than np.copyto(where=)); assigned back in case it copied
    canvas[y0:y1, x0:x1] = cv2.copyTo(warped, (roi > 0).view(np.uint8), canvas[y0:y1, x0:x1])
    return labels


def paste_labels(parts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Write ``labels`` into ``parts`` wherever they are non-zero (an object's footprint)."""
    np.copyto(parts, labels, where=labels > 0)
    return parts


def _centred_outline(grid: Grid, warp: np.ndarray) -> np.ndarray:
    """Corners of the grid incl. margin after ``warp @ T(-centre)``, in module units."""
    w, h = grid.size
    m = grid.margin
    outline = np.array([[-m, -m], [w + m, -m], [w + m, h + m], [-m, h + m]], np.float64)
    return apply_homography(warp @ translation(-w / 2, -h / 2), outline)


def max_pitch(grid: Grid, warp: np.ndarray, size: tuple[int, int], fill: float = 1.0) -> float:
    """The largest module pitch (px) at which the warped grid incl. margin fits in ``fill`` x the canvas."""
    pts = _centred_outline(grid, warp)
    extent = pts.max(0) - pts.min(0)
    return float(fill * min(size[1] / extent[0], size[0] / extent[1]))


def fit_homography(grid: Grid, warp: np.ndarray, size: tuple[int, int], pitch: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Module->canvas homography ``H = T(t) S(pitch) warp T(-centre)``: the grid's centre goes to the
    origin, ``warp`` (a distortion in module units about the centre, identity when clean) bends it,
    ``pitch`` px per module scales it, and ``t`` is drawn uniformly among the shifts that keep the warped
    grid incl. margin inside the canvas (centred on an axis where it is larger than the canvas)."""
    w, h = grid.size
    pts = _centred_outline(grid, warp) * pitch
    lo, hi = pts.min(0), pts.max(0)
    canvas = np.array([size[1], size[0]], np.float64)
    t_low, t_high = -lo, canvas - hi
    t = np.where(t_high >= t_low, t_low + rng.random(2) * np.maximum(t_high - t_low, 0),
                 (canvas - lo - hi) / 2)
    return translation(*t) @ scaling(pitch) @ warp @ translation(-w / 2, -h / 2)
