"""Configs and rows: ``generate_row(config, split, index, base_seed, image_size)`` -> one dataset row.

Determinism. A row depends only on ``(config, split, index, base_seed)``:
``seed = int.from_bytes(blake2b(f"{base_seed}/{config}/{split}/{index}", digest_size=8), "little") >> 1``
(stored in the ``seed`` column, fits int64); the label is the index parity (even = ``qr``), the severity
of a distortion family is ``1 + (index // 2) % 5`` (so labels and severities are balanced), and
``make_sample(config, seed, is_qr, severity, image_size)`` regenerates the row from those columns.

Configs:

- ``standard`` (default): a ``image_size`` px square canvas (224) with a random background
  (``backgrounds.BACKGROUND_KINDS``), one object placed at a random position: a QR code (versions 1-10
  uniform, ECC L/M/Q/H uniform, payload style and length uniform among those that need that version, mask
  pattern uniform 0..7, light paper / dark ink colours, a ``QUIET_ZONE`` module quiet zone) or a hard
  negative (``negatives.NEGATIVE_KINDS`` uniform); the object incl. its margin spans U[30%, 95%] of the
  canvas side (QR module pitch at least 2.5 px at 224 px); with p = 0.35 one or two distractors (other
  symbologies, text, shapes) beside it in free background. Clean: ``distortion = "none"``,
  ``severity = 0``.
- a distortion family (``distortions.DISTORTION_FAMILIES``): a ``standard`` sample with that family at the
  row's severity (geometric families compose into the homography; ``scale`` fixes the module pitch, and
  a negative's size to that of a 45-module symbol at that pitch).
- ``paper``: the authors' generator (docs/paper.md s.1.1-1.4): alphanumeric payloads of 6-16 chars, ECC
  uniform, ``max_version = 6`` with their retries, the encoder's own mask choice, no quiet zone, 8/10/12
  px modules, canvas = symbol, light level U{230..255}, then contrast x{0.85,1,1.15} + brightness
  {-15,-5,0,5,15}, rotation {0,+-5,+-10} deg (nearest, fill 255), perspective p = 0.3 with corner jitter
  0.12, Gaussian blur k {0,1,3,3}, horizontal motion blur p = 0.2 (k in {5,7,9}), a white occluding
  square p = 0.25; negatives: their 280 px checkerboards and rectangles. Native size (no resizing).
  Rotation and perspective are composed into one homography, so the part map is exact. Drawn in
  uint8 grayscale (theirs: float32, truncated at the end), then replicated to RGB.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

import cv2
import numpy as np
import zxingcpp

from cambench_qr.dataset_builder import distortions as dist
from cambench_qr.dataset_builder.backgrounds import (
    BACKGROUND_KINDS,
    draw_shape,
    make_background,
    random_colour,
)
from cambench_qr.dataset_builder.geometry import ECC_LEVELS, encode, part_map
from cambench_qr.dataset_builder.negatives import (
    DISTRACTOR_KINDS,
    NEGATIVE_KINDS,
    negative_object,
    paper_negative,
    symbology,
)
from cambench_qr.dataset_builder.payloads import ALPHANUMERIC, payload_for_version, random_text
from cambench_qr.dataset_builder.render import (
    Grid,
    draw_grid,
    fit_homography,
    max_pitch,
    mean_module_pitch,
    paste_labels,
    qr_grid,
    scaling,
    symbol_corners,
    translation,
)
from cambench_qr.parts import DISTRACTOR

DISTORTION_FAMILIES = dist.DISTORTION_FAMILIES
CONFIG_NAMES: tuple[str, ...] = ("standard", "paper", *DISTORTION_FAMILIES)
DEFAULT_CONFIG = "standard"
SPLITS: tuple[str, ...] = ("train", "test")
DEFAULT_IMAGE_SIZE = 224
QUIET_ZONE = 4  # modules, as ISO/IEC 18004 requires
MIN_PITCH = 2.5  # px per module (at 224 px) for clean standard QR codes
DISTRACTOR_PROBABILITY = 0.35
FILL = (0.3, 0.95)  # range of the object's extent (incl. margin) as a fraction of the canvas side
SCALE_REFERENCE_MODULES = 45  # a V5 symbol + quiet zone: the size a negative takes in the scale family
PAPER_SCALES = (8, 10, 12)


def check_config(config: str) -> str:
    """Return ``config`` if known, else ValueError naming the choices."""
    if config not in CONFIG_NAMES:
        raise ValueError(f"unknown config {config!r}; choose from {', '.join(CONFIG_NAMES)}")
    return config


def row_seed(config: str, split: str, index: int, base_seed: int) -> int:
    """The row's seed: the 8-byte BLAKE2b digest of ``"{base_seed}/{config}/{split}/{index}"`` read as a
    little-endian integer and shifted right by one (a non-negative int64; ~10x cheaper than a
    ``SeedSequence`` of the same fields)."""
    key = f"{int(base_seed)}/{config}/{split}/{int(index)}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def row_severity(config: str, index: int) -> int:
    """0 for ``standard`` / ``paper``; ``1 + (index // 2) % 5`` for a distortion family."""
    return 1 + (index // 2) % 5 if config in DISTORTION_FAMILIES else 0


def find_payload(image: np.ndarray, payload: str) -> zxingcpp.Barcode | None:
    """The QR code (model 2; zxing-cpp's ``QRCode`` family would also read Micro QR and rMQR) that
    zxing-cpp reads in ``image`` (RGB HxWx3, or HxW gray) with text equal to ``payload``, or None; other
    codes it may find are ignored. An RGB image is read as its luma (OpenCV's RGB -> gray; zxing-cpp
    would take a 3-channel array for BGR), which is also ~25% faster to decode."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    for result in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCodeModel2):
        if result.text == payload:
            return result
    return None


def _row(image: np.ndarray, parts: np.ndarray, occluded: np.ndarray, **columns) -> dict:
    base = {"image": image, "parts": parts, "occluded": occluded, "corners": None, "version": None,
            "ecc": None, "mask_pattern": None, "payload": None, "module_px": None, "distortion": "none",
            "severity": 0, "background": None, "negative_kind": None, "decodable": None,
            "source": "synthetic"}
    base.update(columns)
    return base


def _qr_columns(image: np.ndarray, h: np.ndarray, version: int, ecc: str, mask: int, payload: str) -> dict:
    n = 4 * version + 17
    corners = symbol_corners(h, n, n)
    return {"label": 1, "corners": corners.tolist(), "version": version, "ecc": ecc, "mask_pattern": mask,
            "payload": payload, "module_px": mean_module_pitch(corners, n, n),
            "decodable": find_payload(image, payload) is not None}


def _add_distractors(rng: np.random.Generator, canvas: np.ndarray, parts: np.ndarray) -> None:
    """With p = DISTRACTOR_PROBABILITY place 1-2 distractors (symbology, text or a shape), each in a
    square box of 10-25% of the canvas side in free background (20 tries each; a box is free when all
    its parts are 0)."""
    if rng.random() >= DISTRACTOR_PROBABILITY:
        return
    height, width = parts.shape
    for _ in range(int(rng.integers(1, 3))):
        kind = ("shape", *DISTRACTOR_KINDS)[int(rng.integers(len(DISTRACTOR_KINDS) + 1))]
        side = int(rng.uniform(0.1, 0.25) * min(height, width))
        for _ in range(20):
            x0, y0 = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            if not parts[y0:y0 + side, x0:x0 + side].any():
                break
        else:
            continue
        if kind == "shape":
            draw_shape(rng, canvas, parts, DISTRACTOR, (x0, y0, x0 + side - 1, y0 + side - 1),
                       random_colour(rng))
            continue
        grid = symbology(kind, rng) if kind != "text" else negative_object("text", rng)
        gh, gw = grid.ink.shape
        pitch = side / max(gh, gw)
        h = translation(x0, y0) @ scaling(pitch) @ translation(grid.margin, grid.margin)
        labels = draw_grid(canvas, grid, h, random_colour(rng, 190, 255), random_colour(rng, 0, 70),
                           max(1, math.ceil(pitch)))
        paste_labels(parts, labels)


def standard_sample(seed: int, is_qr: bool, image_size: int, distortion: str = "none",
                    severity: int = 0, quiet_zone: int = QUIET_ZONE,
                    edit_grid: Callable[[Grid], Grid] | None = None) -> dict:
    """A ``standard`` row (clean when ``distortion == "none"``), or one of a distortion family.

    ``edit_grid`` (QR rows only) changes the symbol's grid (ink of modules and quiet zone, not its size)
    before it is drawn, with every random draw and the homography unchanged: the ``interventions`` config."""
    rng = np.random.default_rng(seed)
    size = (image_size, image_size)
    background = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    canvas = make_background(background, rng, size)
    if is_qr:
        version, ecc, mask = int(rng.integers(1, 11)), ECC_LEVELS[int(rng.integers(4))], int(rng.integers(8))
        payload = payload_for_version(rng, version, ecc)
        modules, version, ecc, mask = encode(payload, None, ecc, mask)
        grid = qr_grid(modules, part_map(version), quiet_zone)
        if edit_grid is not None:
            grid = edit_grid(grid)
        kind = None
    else:
        kind = NEGATIVE_KINDS[int(rng.integers(len(NEGATIVE_KINDS)))]
        grid = negative_object(kind, rng)
    width, height = grid.size
    warp = (dist.geometric_warp(distortion, severity, rng, width, height) if distortion in dist.GEOMETRIC
            else np.eye(3))
    largest = max_pitch(grid, warp, size)
    scale_factor = image_size / dist.REFERENCE_SIDE
    if distortion == "scale":
        pitch = dist.severity_value("scale", severity) * scale_factor
        if not is_qr:
            pitch *= SCALE_REFERENCE_MODULES / max(grid.ink.shape)
        pitch = min(pitch, largest)
    elif is_qr:
        pitch = float(np.clip(rng.uniform(*FILL) * largest, MIN_PITCH * scale_factor, largest))
    else:
        pitch = float(rng.uniform(*FILL)) * largest
    h = fit_homography(grid, warp, size, pitch, rng)
    parts = draw_grid(canvas, grid, h, random_colour(rng, 190, 255), random_colour(rng, 0, 70),
                      max(1, math.ceil(pitch)))
    _add_distractors(rng, canvas, parts)
    occluded = np.zeros(size, np.uint8)
    if distortion == "occlusion":
        quad = symbol_corners(h, width, height)
        dist.occlude(canvas, occluded, quad, dist.severity_value("occlusion", severity), rng)
    elif distortion in dist.PHOTOMETRIC:
        canvas = dist.photometric(distortion, severity, canvas, rng)
    image = canvas
    columns = {"distortion": distortion, "severity": severity, "background": background}
    if is_qr:
        columns.update(_qr_columns(image, h, version, ecc, mask, payload))
    else:
        columns.update(label=0, negative_kind=kind)
    return _row(image, parts, occluded, **columns)


def _paper_qr_matrix(rng: np.random.Generator, max_version: int = 6) -> tuple:
    """The authors' payload loop: up to 12 tries of (ECC uniform, 6-16 alphanumeric chars); a too-large
    symbol is retried with 10, 8, 6, 4 chars, then with 4 chars at ECC L."""
    for _ in range(12):
        ecc = ECC_LEVELS[int(rng.integers(4))]
        text = random_text(rng, ALPHANUMERIC, int(rng.integers(6, 17)))
        result = encode(text, None, ecc)
        if result[1] <= max_version:
            break
        for length in (10, 8, 6, 4):
            text = random_text(rng, ALPHANUMERIC, length)
            result = encode(text, None, ecc)
            if result[1] <= max_version:
                break
        if result[1] <= max_version:
            break
        text = random_text(rng, ALPHANUMERIC, 4)
        result = encode(text, None, "L")
        if result[1] <= max_version:
            break
    return (*result, text)


def _choice(rng: np.random.Generator, options: tuple):
    return options[int(rng.integers(len(options)))]


def paper_sample(seed: int, is_qr: bool) -> dict:
    """A ``paper`` row: the authors' generator with exact masks (see the module docstring)."""
    rng = np.random.default_rng(seed)
    if not is_qr:
        gray, parts, kind = paper_negative(rng)
        return _row(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), parts, np.zeros_like(parts), label=0,
                    negative_kind=kind, background="white", distortion="none", severity=None)
    modules, version, ecc, mask, payload = _paper_qr_matrix(rng)
    scale = _choice(rng, PAPER_SCALES)
    light = int(rng.integers(230, 256))
    angle = _choice(rng, (0, 5, -5, 10, -10))
    blur = _choice(rng, (0, 1, 2, 3))
    contrast = _choice(rng, (0.85, 1.0, 1.15))
    brightness = _choice(rng, (-15, -5, 0, 5, 15))
    occlude, motion, perspective = rng.random() < 0.25, rng.random() < 0.20, rng.random() < 0.30
    n = modules.shape[0]
    side = n * scale
    # Their warps, in OpenCV pixel-index coordinates: rotation about (W/2, H/2), then perspective with the
    # corners (0,0), (W-1,0), (W-1,H-1), (0,H-1) each moved by U[-0.12, 0.12] W.
    m_index = np.eye(3)
    if angle:
        m_index = np.vstack([cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0), [0, 0, 1]])
    if perspective:
        src = np.float32([[0, 0], [side - 1, 0], [side - 1, side - 1], [0, side - 1]])
        dst = src + rng.uniform(-0.12, 0.12, (4, 2)).astype(np.float32) * side
        m_index = cv2.getPerspectiveTransform(src, dst).astype(np.float64) @ m_index
    h = translation(0.5, 0.5) @ m_index @ translation(-0.5, -0.5) @ scaling(scale)
    grid = qr_grid(modules, part_map(version), 0)
    grid = Grid(grid.ink, grid.labels, 0, smooth=False)
    # Contrast and brightness act before the warps in their code, so the exposed fill stays 255.
    canvas = np.full((side, side), 255, np.uint8)
    paper = np.clip(light * contrast + brightness, 0, 255)
    parts = draw_grid(canvas, grid, h, paper, np.clip(brightness, 0, 255), scale)
    applied = ["contrast"] if (contrast, brightness) != (1.0, 0) else []
    applied += ["rotation"] * bool(angle) + ["perspective"] * perspective
    if blur > 1:  # ksize 1 is their no-op 1x1 kernel; 2 and 3 both mean 3x3
        canvas = cv2.GaussianBlur(canvas, (3, 3), 0)
        applied.append("blur")
    if motion:
        k = _choice(rng, (5, 7, 9))
        canvas = cv2.blur(canvas, (k, 1), borderType=cv2.BORDER_REFLECT_101)  # their one-row k x k kernel
        applied.append("motion_blur")
    occluded = np.zeros((side, side), np.uint8)
    if occlude:
        x0, y0 = int(rng.integers(0, side // 2)), int(rng.integers(0, side // 2))
        s = int(rng.integers(side // 10, side // 4))
        canvas[y0:y0 + s, x0:x0 + s] = 255
        occluded[y0:y0 + s, x0:x0 + s] = 255
        applied.append("occlusion")
    columns = _qr_columns(canvas, h, version, ecc, mask, payload)  # zxing reads the gray plane itself
    return _row(cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGB), parts, occluded,
                distortion="+".join(applied) or "none", severity=None, background="white", **columns)


def make_sample(config: str, seed: int, is_qr: bool, severity: int = 0,
                image_size: int | None = None) -> dict:
    """Regenerate a row (without ``id`` / ``seed``) from its config, seed, label and severity."""
    check_config(config)
    if config == "paper":
        if image_size is not None:
            raise ValueError("the paper config keeps the authors' native image sizes; pass image_size=None")
        return paper_sample(seed, is_qr)
    size = DEFAULT_IMAGE_SIZE if image_size is None else image_size
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 64:
        raise ValueError(f"image_size must be an integer >= 64, got {image_size!r}")
    if config == "standard":
        if severity != 0:
            raise ValueError(f"the standard config is clean (severity 0), got severity {severity!r}")
        return standard_sample(seed, is_qr, int(size))
    dist.severity_value(config, severity)  # validates 1..5
    return standard_sample(seed, is_qr, int(size), config, severity)


def generate_row(config: str, split: str, index: int, base_seed: int, image_size: int | None = None) -> dict:
    """Row ``index`` of ``config`` / ``split`` (docs/architecture.md s.2.3; ``image`` HxWx3 uint8 RGB,
    ``parts`` HxW uint8 part ids, ``occluded`` HxW uint8 0/255, ``corners`` [[x, y]] x 4 TL, TR, BR, BL or
    None). ``image_size``: canvas side for ``standard`` and the distortion families (default 224);
    must be None for ``paper`` (native sizes)."""
    check_config(config)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    for name, value in (("index", index), ("base_seed", base_seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    seed = row_seed(config, split, index, base_seed)
    row = make_sample(config, seed, index % 2 == 0, row_severity(config, index), image_size)
    return {"id": f"{config}/{split}/{index:06d}", "seed": seed, **row}
