"""The ``real`` config: photographs of QR codes with part maps from the decoder's corner points.

Input: a folder holding ``manifest.csv`` (columns ``file``, ``decoded``, ``corners``, ``version``,
``expected_text`` at least; the README's "real" section describes it) and the photos it names. Photos
whose ``decoded`` is not ``True`` are skipped and counted. One ``test`` row per decoded photo, in manifest
order.

Part map. ``corners`` are zxing-cpp's ``position``: the symbol's outer corners (module coordinates
``(0, 0), (N, 0), (N, N), (0, N)``, no quiet zone) in continuous pixel coordinates, ordered top-left,
top-right, bottom-right, bottom-left in the symbol's own frame (the first is at the top-left finder, even
when the code is rotated). Checked on synthetic renders, where the corners are known exactly: zxing-cpp's
four points sit -0.01 +- 0.12 modules (outward) from them (60 codes). The homography ``H`` taking those
four module corners onto the four points maps the version's module-space part map
(``geometry.part_map``, with a ``QUIET_ZONE``-module quiet zone) onto the photo with the renderer's own
label warp (``render.warp_labels``: nearest neighbour at the inverse image of every pixel centre). The
decoder's corners are estimates, not hand labels, and a curved or wrinkled support is not a plane: the map
is as good as a 4-point homography can be.

Row columns: ``id`` ``real/test/<photo file stem>``, ``image`` the photo as RGB (native size), ``label``
``qr``, ``corners``, ``version``, ``payload`` the decoded text, ``module_px`` from the corners,
``decodable`` True (the manifest's decoder read it), ``distortion`` ``none`` and ``severity`` 0 (no
synthetic distortion was applied; the photo's own blur and lighting are what they are), ``background``
``photo``, ``source`` ``real``; ``ecc``, ``mask_pattern``, ``negative_kind`` and ``seed`` are null.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import PIL.Image

from cambench_qr.dataset_builder.build import build_dataset
from cambench_qr.dataset_builder.geometry import check_version, part_map, symbol_size
from cambench_qr.dataset_builder.render import mean_module_pitch, qr_grid, quad_homography, warp_labels
from cambench_qr.dataset_builder.samples import QUIET_ZONE

CONFIG = "real"
SPLIT = "test"
MANIFEST = "manifest.csv"
REQUIRED_COLUMNS = ("file", "decoded", "corners", "version", "expected_text")
# Decoder corners sit within +-0.12 modules of the true ones (module docstring); a corner further than this
# outside the photo is not a decoded symbol's.
CORNER_TOLERANCE_MODULES = 1.0
MIN_MODULE_PX = 1.0  # a smaller module pitch cannot draw the part map's one-module parts


@dataclass(frozen=True)
class Photo:
    """One decoded manifest entry: photo path, symbol corners (4, 2) TL, TR, BR, BL, version, text."""

    path: Path
    corners: tuple[tuple[float, float], ...]
    version: int
    payload: str


def read_manifest(folder: str | Path) -> tuple[tuple[Photo, ...], int]:
    """The decoded photos of ``folder/manifest.csv`` in manifest order, and how many were skipped (not
    decoded). ValueError names a missing folder or manifest, a manifest that is not UTF-8 CSV text, a
    missing column, or every rejected entry by line and file (``check_corners``)."""
    folder = Path(folder).resolve()
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise ValueError(f"no {MANIFEST} in {folder}: the real config needs a folder of photos and its "
                         f"manifest")
    try:
        with manifest.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
            entries = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{manifest} is not a UTF-8 CSV file: {exc}") from None
    if missing:
        raise ValueError(f"{manifest} lacks column(s) {', '.join(missing)}")
    photos, rejected = [], []
    decoded = [(line, entry) for line, entry in enumerate(entries, start=2)
               if (entry.get("decoded") or "").strip() == "True"]
    for line, entry in decoded:
        try:
            photos.append(_photo(folder, entry))
        except ValueError as exc:
            rejected.append(f"line {line} ({entry.get('file')}): {exc}")
    if rejected:
        raise ValueError(f"{manifest}: {len(rejected)} decoded row(s) rejected: {'; '.join(rejected)}")
    return tuple(photos), len(entries) - len(photos)


def _photo(folder: Path, entry: dict) -> Photo:
    if any(entry.get(c) is None for c in REQUIRED_COLUMNS):
        raise ValueError("the row has fewer fields than the header")
    path = folder / entry["file"]
    if not path.is_file():
        raise ValueError("photo not found")
    try:
        corners = np.array(json.loads(entry["corners"]), dtype=np.float64)
        version = check_version(int(entry["version"]))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"decoded but {exc}") from None
    try:
        with PIL.Image.open(path) as image:
            size = image.size
    except (OSError, PIL.Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot read the photo: {exc}") from None
    check_corners(corners, version, size)
    return Photo(path, tuple(map(tuple, corners.tolist())), version, entry["expected_text"])


def check_corners(corners: np.ndarray, version: int, size: tuple[int, int]) -> None:
    """ValueError unless ``corners`` (TL, TR, BR, BL in pixels) can be a photographed version-``version``
    symbol in a ``size`` = (width, height) photo: a (4, 2) array of finite numbers; each corner inside the
    photo or at most ``CORNER_TOLERANCE_MODULES`` module pitches outside it; a convex quadrilateral (the
    cross products of consecutive sides all of one sign, so neither degenerate nor self-intersecting);
    a module pitch (shortest side / N) and a mean module area (area / N^2) of at least ``MIN_MODULE_PX``
    px and px^2, with ``N = 4 version + 17``."""
    if corners.shape != (4, 2):
        raise ValueError(f"corners must be 4 [x, y] points, got shape {corners.shape}")
    if not np.isfinite(corners).all():
        raise ValueError(f"corners must be finite numbers, got {corners.tolist()}")
    n = symbol_size(version)
    sides = np.roll(corners, -1, axis=0) - corners
    following = np.roll(sides, -1, axis=0)
    cross = sides[:, 0] * following[:, 1] - sides[:, 1] * following[:, 0]
    if not ((cross > 0).all() or (cross < 0).all()):
        raise ValueError(f"corners {corners.tolist()} are not a convex quadrilateral (degenerate or "
                         f"self-intersecting)")
    area = _polygon_area(corners)
    pitch = float(np.linalg.norm(sides, axis=1).min()) / n
    if pitch < MIN_MODULE_PX or area / n**2 < MIN_MODULE_PX**2:
        raise ValueError(f"corners {corners.tolist()} give a module pitch of {pitch:.2f} px and a module "
                         f"area of {area / n**2:.2f} px^2 for version {version}; at least {MIN_MODULE_PX} "
                         f"needed")
    tolerance = CORNER_TOLERANCE_MODULES * mean_module_pitch(corners, n, n)
    width, height = size
    if ((corners < -tolerance).any() or (corners[:, 0] > width + tolerance).any()
            or (corners[:, 1] > height + tolerance).any()):
        raise ValueError(f"corners {corners.tolist()} lie outside the {width}x{height} photo (by more than "
                         f"{CORNER_TOLERANCE_MODULES} module, {tolerance:.1f} px)")


def _polygon_area(points: np.ndarray) -> float:
    """Shoelace area of a simple polygon."""
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2)


def symbol_homography(corners: np.ndarray, version: int) -> np.ndarray:
    """Module -> pixel homography taking ``(0, 0), (N, 0), (N, N), (0, N)`` onto ``corners`` (TL, TR, BR,
    BL), ``N = 4 version + 17``."""
    n = symbol_size(version)
    return quad_homography(np.array([[0, 0], [n, 0], [n, n], [0, n]], np.float64), np.asarray(corners))


def photo_parts(corners: np.ndarray, version: int, size: tuple[int, int]) -> np.ndarray:
    """The part map (uint8, ``size`` = (height, width)) of a version-``version`` symbol with the given
    corners and a ``QUIET_ZONE``-module quiet zone; pixels outside are background (0)."""
    n = symbol_size(version)
    grid = qr_grid(np.zeros((n, n), bool), part_map(version), QUIET_ZONE)
    return warp_labels(grid, symbol_homography(corners, version), size)


def load_rgb(path: Path) -> np.ndarray:
    """The photo at ``path`` as an (H, W, 3) uint8 RGB array (ValueError if it cannot be read)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    return np.ascontiguousarray(bgr[..., ::-1])


def photo_row(photo: Photo) -> dict:
    """The ``real`` row of one decoded photo (see the module docstring)."""
    image = load_rgb(photo.path)
    corners = np.array(photo.corners)
    n = symbol_size(photo.version)
    parts = photo_parts(corners, photo.version, image.shape[:2])
    return {"id": f"{CONFIG}/{SPLIT}/{photo.path.stem}", "image": image, "parts": parts,
            "occluded": np.zeros(image.shape[:2], np.uint8), "label": 1, "corners": corners.tolist(),
            "version": photo.version, "ecc": None, "mask_pattern": None, "payload": photo.payload,
            "module_px": mean_module_pitch(corners, n, n), "distortion": "none", "severity": 0,
            "background": "photo", "negative_kind": None, "seed": None, "decodable": True, "source": "real"}


def real_row(config: str, split: str, index: int, base_seed: int, image_size: int | None = None, *,
             photos: str | Path) -> dict:
    """Row ``index`` of the ``real`` config built from the folder ``photos`` (the ``generate_row``
    signature; ``base_seed`` is unused: nothing is random; native image sizes, ``image_size`` must be
    None)."""
    return decoded_row(config, split, index, base_seed, image_size, decoded=read_manifest(photos)[0])


def decoded_row(config: str, split: str, index: int, base_seed: int, image_size: int | None = None, *,
                decoded: tuple[Photo, ...]) -> dict:
    """``real_row`` on the photos ``decoded`` already read from the manifest (what ``build_real`` runs per
    row, so that the manifest and the photo headers are read once per build, not once per row)."""
    if config != CONFIG:
        raise ValueError(f"real_row builds the {CONFIG!r} config, got {config!r}")
    if split != SPLIT:
        raise ValueError(f"the {CONFIG} config has a {SPLIT!r} split only, got {split!r}")
    if image_size is not None:
        raise ValueError("the real config keeps the photos' native sizes; pass image_size=None")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(decoded):
        raise ValueError(f"index must be in 0..{len(decoded) - 1} ({len(decoded)} decoded photos), "
                         f"got {index!r}")
    return photo_row(decoded[int(index)])


def build_real(photos: str | Path, out_dir: str | Path, *, num_proc: int = 1, quiet: bool = False,
               push: str | None = None) -> tuple[Path, int, int]:
    """Build the ``real`` config from the folder ``photos`` into ``out_dir`` (``build.build_dataset``,
    keeping the configs already there). Returns (folder, rows written, photos skipped as not decoded)."""
    folder = Path(photos).resolve()
    decoded, skipped = read_manifest(folder)
    if not decoded:
        raise ValueError(f"{folder / MANIFEST} lists no decoded photo: nothing to build")
    out = build_dataset(CONFIG, out_dir, num_train=0, num_test=len(decoded), num_proc=num_proc, quiet=quiet,
                        push=push, row_fn=partial(decoded_row, decoded=decoded))
    return out, len(decoded), skipped
