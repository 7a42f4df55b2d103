"""Non-QR objects: hard negatives (the main object of a ``non_qr`` image) and distractors beside QR codes.

Every object is a ``render.Grid`` labelled ``DISTRACTOR`` (9) over its whole printed patch (margin
included), so it is warped, composited and distorted exactly like a QR symbol. Kinds:

- ``data_matrix``, ``aztec``, ``pdf417``, ``micro_qr``, ``rmqr``: other 2D symbologies written by
  zxing-cpp from a random payload;
- ``finderless_qr``: a real QR module matrix (versions 1-10) whose finder patterns and separators are
  replaced by random modules (QR statistics everywhere else: timing, alignment, data density);
- ``random_grid``: i.i.d. modules with dark share ~ U(0.4, 0.6) on a QR-sized grid (21..57);
- ``qr_clutter``: a random grid carrying one or two finder patterns (never the three of a QR);
- ``checkerboard``: 4-12 cells per side; ``rectangles``: 8-20 grey rectangles (the paper's shapes);
- ``text``: lines of random text.

``paper_negative`` reproduces the paper's own negatives (280 px checkerboards and rectangles).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import zxingcpp

from cambench_qr.dataset_builder.backgrounds import text_patch
from cambench_qr.dataset_builder.geometry import encode, part_map
from cambench_qr.dataset_builder.payloads import ALPHANUMERIC, payload_for_version, random_text
from cambench_qr.dataset_builder.render import Grid, pad
from cambench_qr.parts import DISTRACTOR, FINDER, SEPARATOR

SYMBOLOGIES: dict[str, zxingcpp.BarcodeFormat] = {
    "data_matrix": zxingcpp.BarcodeFormat.DataMatrix,
    "aztec": zxingcpp.BarcodeFormat.Aztec,
    "pdf417": zxingcpp.BarcodeFormat.PDF417,
    "micro_qr": zxingcpp.BarcodeFormat.MicroQRCode,
    "rmqr": zxingcpp.BarcodeFormat.RMQRCode,
}
NEGATIVE_KINDS: tuple[str, ...] = (*SYMBOLOGIES, "finderless_qr", "random_grid", "qr_clutter",
                                   "checkerboard", "rectangles", "text")
DISTRACTOR_KINDS: tuple[str, ...] = (*SYMBOLOGIES, "text")
_MAX_CHARS = {"micro_qr": 12, "rmqr": 20}
_FINDER = np.pad(np.pad(np.ones((3, 3)), 1), 1, constant_values=1)  # 7x7 dark-light-dark rings


def _patch(ink: np.ndarray, margin: int, smooth: bool = True) -> Grid:
    """A Grid labelled DISTRACTOR over its whole patch, with a light margin."""
    ink = pad(ink, margin, 0.0, np.float32)
    return Grid(ink, np.full(ink.shape, DISTRACTOR, np.uint8), margin, smooth)


def symbology(kind: str, rng: np.random.Generator) -> Grid:
    """A zxing-cpp-written symbol of ``kind`` (one of ``SYMBOLOGIES``) for a random alphanumeric payload,
    one cell per module, with a 2-module light margin."""
    text = random_text(rng, ALPHANUMERIC.replace(" ", ""), int(rng.integers(4, _MAX_CHARS.get(kind, 40))))
    image = np.asarray(zxingcpp.create_barcode(text, SYMBOLOGIES[kind]).to_image(scale=1,
                                                                                 add_quiet_zones=False))
    return _patch(image < 128, 2)


def _random_modules(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.random((n, n)) < rng.uniform(0.4, 0.6)


def negative_object(kind: str, rng: np.random.Generator) -> Grid:
    """The main object of a hard-negative image (see the module docstring for the kinds)."""
    if kind in SYMBOLOGIES:
        return symbology(kind, rng)
    if kind == "finderless_qr":
        version, ecc = int(rng.integers(1, 11)), "LMQH"[int(rng.integers(4))]
        modules, version, _, _ = encode(payload_for_version(rng, version, ecc), None, ecc,
                                        int(rng.integers(8)))
        structure = np.isin(part_map(version), (FINDER, SEPARATOR))
        modules[structure] = rng.random(int(structure.sum())) < 0.5
        return _patch(modules, 4)
    if kind == "random_grid":
        return _patch(_random_modules(rng, 17 + 4 * int(rng.integers(1, 11))), 4)
    if kind == "qr_clutter":
        n = 17 + 4 * int(rng.integers(1, 11))
        modules = _random_modules(rng, n)
        for _ in range(int(rng.integers(1, 3))):
            r, c = rng.integers(0, n - 8, 2)
            modules[r:r + 9, c:c + 9] = np.pad(_FINDER, 1) > 0
        return _patch(modules, 4)
    if kind == "checkerboard":
        cells = int(rng.integers(4, 13))
        board = (np.add.outer(np.arange(cells), np.arange(cells)) + int(rng.integers(2))) % 2
        return _patch(board, 1, smooth=True)
    if kind == "rectangles":
        size = 64
        ink = np.zeros((size, size), np.float32)
        for _ in range(int(rng.integers(8, 21))):
            x0, y0 = rng.integers(0, size - 4, 2)
            x1, y1 = x0 + int(rng.integers(3, 24)), y0 + int(rng.integers(3, 24))
            cv2.rectangle(ink, (int(x0), int(y0)), (x1, y1), float(rng.choice([1.0, 0.69, 0.37, 0.22])), -1)
        return _patch(ink, 2)
    if kind == "text":
        return _patch(text_patch(rng, 96), 4)
    raise ValueError(f"unknown negative kind {kind!r}; choose from {NEGATIVE_KINDS}")


PAPER_NEGATIVE_SIDE, PAPER_CELL = 280, 20


@lru_cache(maxsize=1)
def _paper_checkerboard() -> np.ndarray:
    board = np.indices((PAPER_NEGATIVE_SIDE // PAPER_CELL,) * 2).sum(0) % 2 == 1  # light where odd
    image = cv2.resize(board.astype(np.uint8) * 255, (PAPER_NEGATIVE_SIDE,) * 2,
                       interpolation=cv2.INTER_NEAREST_EXACT)
    image.flags.writeable = False
    return image


def paper_negative(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """The paper's negative (docs/paper.md s.1.4): a 280x280 grayscale image on white, with p = 0.5 a
    checkerboard of 20 px cells (dark at the top-left), else 20 filled rectangles (corner in [0, 270),
    far corner 5..79 px further, clipped at 279; grey level in {0, 80, 160, 200}). Returns
    (image uint8 280x280, parts uint8: 9 on the checkerboard / rectangles, 0 elsewhere, kind). The
    rectangles' grey levels are all below 255, so they cover exactly the pixels darker than the white
    ground."""
    size = PAPER_NEGATIVE_SIDE
    if rng.random() < 0.5:
        return _paper_checkerboard().copy(), np.full((size, size), DISTRACTOR, np.uint8), "checkerboard"
    image = np.full((size, size), 255, np.uint8)
    corner = rng.integers(0, size - 10, (20, 2))
    far = rng.integers(corner + 5, np.minimum(size, corner + 80))
    grey = np.array([0, 80, 160, 200])[rng.integers(0, 4, 20)]
    for (x1, y1), (x2, y2), level in zip(corner.tolist(), far.tolist(), grey.tolist(), strict=True):
        cv2.rectangle(image, (x1, y1), (x2, y2), level, -1)
    parts = cv2.threshold(image, 254, DISTRACTOR, cv2.THRESH_BINARY_INV)[1]  # DISTRACTOR where image < 255
    return image, parts, "rectangles"
