"""Canvas backgrounds (flat, gradient, procedural textures) and small drawn objects (shapes, text).

Everything is drawn with NumPy / OpenCV from an explicit ``np.random.Generator``. Smooth backgrounds are
computed on a grid ``LOW_RES`` times coarser and resized bilinearly (they vary slowly, so nothing is
lost and it is much cheaper). ``make_background`` returns uint8 HxWx3 RGB.
"""

from __future__ import annotations

import string
from functools import lru_cache

import cv2
import numpy as np

BACKGROUND_KINDS: tuple[str, ...] = ("flat", "gradient", "value_noise", "sinusoid", "shapes")


def random_colour(rng: np.random.Generator, low: float = 0.0, high: float = 255.0) -> np.ndarray:
    """A uniform random RGB colour, float32 (3,)."""
    return rng.uniform(low, high, 3).astype(np.float32)


LOW_RES = 4


@lru_cache(maxsize=8)
def _coarse_coords(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (full-resolution units) of the coarse grid used for smooth backgrounds
    (computed once per size; read-only)."""
    h, w = size
    ys = (np.arange(-(-h // LOW_RES), dtype=np.float32) + 0.5) * LOW_RES
    xs = (np.arange(-(-w // LOW_RES), dtype=np.float32) + 0.5) * LOW_RES
    coords = np.meshgrid(xs, ys)
    for c in coords:
        c.flags.writeable = False
    return coords[0], coords[1]


def _upscale(coarse: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Round a coarse float image to uint8, then resize it bilinearly to ``size``."""
    small = np.clip(np.rint(coarse), 0, 255).astype(np.uint8)
    return cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def flat(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """One random colour everywhere."""
    row = np.tile(np.rint(random_colour(rng)).astype(np.uint8), size[1])
    return np.broadcast_to(row, (size[0], row.size)).reshape(*size, 3).copy()  # ~10x faster than a 3-D tile


def gradient(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Linear blend between two random colours along a random direction:
    ``c0 + (c1 - c0) t``, ``t`` = projection of the pixel on the direction, scaled to [0, 1]."""
    theta = rng.uniform(0, 2 * np.pi)
    xs, ys = _coarse_coords(size)
    t = xs * np.cos(theta) + ys * np.sin(theta)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = random_colour(rng), random_colour(rng)
    blend = np.stack([c1 - c0, c0], 1)  # cv2.transform: colour = (c1 - c0) t + c0, one pass
    return _upscale(cv2.transform(t[..., None].astype(np.float32), blend), size)


def value_noise(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Sum of 2-3 octaves of bicubically upsampled random colour grids (3 to 20 cells per side)."""
    xs, _ = _coarse_coords(size)
    coarse = (xs.shape[1], xs.shape[0])
    out = np.zeros((*xs.shape, 3), np.float32)
    total = 0.0
    for octave in range(int(rng.integers(2, 4))):
        cells = int(rng.integers(3, 6)) * 2 ** octave
        amplitude = 0.5 ** octave
        grid = rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32)
        out += amplitude * cv2.resize(grid, coarse, interpolation=cv2.INTER_CUBIC)
        total += amplitude
    return _upscale(out / total, size)


def sinusoid(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Mixture of 2-4 plane waves, each tinting between two random colours: the mean over waves k of
    ``c0_k + (1 + sin(2 pi (x cos theta_k + y sin theta_k) / period_k + phase_k)) / 2 (c1_k - c0_k)``
    (all waves in one matrix product)."""
    h, w = size
    xs, ys = _coarse_coords(size)
    waves = int(rng.integers(2, 5))
    params = np.empty((waves, 3))  # theta, period, phase
    colours = np.empty((waves, 2, 3), np.float32)  # c0, c1
    for k in range(waves):
        params[k] = rng.uniform(0, np.pi), rng.uniform(0.1, 0.6) * max(h, w), rng.uniform(0, 6.3)
        colours[k] = random_colour(rng), random_colour(rng)
    theta, period, phase = params.T
    direction = (np.stack([np.cos(theta), np.sin(theta)]) * (2 * np.pi / period)).astype(np.float32)
    points = np.stack([xs.ravel(), ys.ravel()], 1)
    tint = 0.5 + 0.5 * np.sin(points @ direction + phase.astype(np.float32))  # (pixels, waves)
    c0, c1 = colours[:, 0], colours[:, 1]
    out = (c0.sum(0) + tint @ (c1 - c0)) / waves
    return _upscale(out.reshape(*xs.shape, 3), size)


def draw_shape(rng: np.random.Generator, image: np.ndarray, labels: np.ndarray | None, label: int,
               box: tuple[int, int, int, int], colour: np.ndarray) -> None:
    """Draw one filled random shape (rectangle, ellipse, triangle or thick line) inside
    ``box = (x0, y0, x1, y1)`` on ``image`` and the same pixels with ``label`` on ``labels``
    (non-anti-aliased, so image and labels agree pixel for pixel)."""
    x0, y0, x1, y1 = box
    kind = int(rng.integers(4))
    targets = [(image, tuple(float(c) for c in colour))] + ([(labels, label)] if labels is not None else [])
    if kind == 0:
        for target, value in targets:
            cv2.rectangle(target, (x0, y0), (x1, y1), value, -1)
    elif kind == 1:
        centre, axes = ((x0 + x1) // 2, (y0 + y1) // 2), (max((x1 - x0) // 2, 1), max((y1 - y0) // 2, 1))
        angle = float(rng.uniform(0, 180))
        for target, value in targets:
            cv2.ellipse(target, centre, axes, angle, 0, 360, value, -1)
    elif kind == 2:
        pts = np.stack([rng.integers(x0, x1 + 1, 3), rng.integers(y0, y1 + 1, 3)], 1).astype(np.int32)
        for target, value in targets:
            cv2.fillPoly(target, [pts], value)
    else:
        thickness = int(rng.integers(2, 7))
        for target, value in targets:
            cv2.line(target, (x0, y0), (x1, y1), value, thickness)


def shapes(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A flat or gradient base with 5-15 random coloured shapes."""
    h, w = size
    image = gradient(rng, size) if rng.random() < 0.5 else flat(rng, size)
    for _ in range(int(rng.integers(5, 16))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(5, w // 2)), y0 + int(rng.integers(5, h // 2))
        draw_shape(rng, image, None, 0, (x0, y0, x1, y1), random_colour(rng))
    return image


_MAKERS = {"flat": flat, "gradient": gradient, "value_noise": value_noise, "sinusoid": sinusoid,
           "shapes": shapes}


def make_background(kind: str, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A uint8 HxWx3 RGB background of ``kind`` (one of ``BACKGROUND_KINDS``)."""
    if kind not in _MAKERS:
        raise ValueError(f"unknown background kind {kind!r}; choose from {BACKGROUND_KINDS}")
    return _MAKERS[kind](rng, size)


TEXT_ALPHABET = string.ascii_letters + string.digits + "     .,:-"


def text_patch(rng: np.random.Generator, cells: int) -> np.ndarray:
    """A ``cells x cells`` float32 ink patch (1 = dark) of 2-5 lines of random text drawn with
    ``cv2.putText`` (anti-aliased; the patch is later warped like any grid)."""
    patch = np.zeros((cells, cells), np.uint8)
    lines = int(rng.integers(2, 6))
    scale = cells / (lines * 30.0)
    for k in range(lines):
        text = "".join(rng.choice(list(TEXT_ALPHABET), int(rng.integers(4, 12))))
        y = int((k + 0.8) * cells / lines)
        cv2.putText(patch, text, (int(rng.integers(0, cells // 6 + 1)), y), int(rng.choice([0, 2, 3, 4])),
                    scale, 255, max(1, int(round(scale * 2))), cv2.LINE_AA)
    return patch.astype(np.float32) / 255.0
