"""Distortion families with ImageNet-C style severities 1..5.

Geometric families (rotation, perspective, scale) return a factor of the sample's homography, so the
part map follows them exactly; photometric families (blur, motion_blur, noise, jpeg, contrast,
illumination) change only the image; occlusion paints over the image and marks ``occluded``, never
``parts``. Pixel-sized parameters are given at 224 px and scale linearly with the canvas side.

Illumination: ``ramp`` runs 0..1 along a random direction; ``shadow`` is 0 before a random edge at ramp
U[0.3, 0.7] and 1 after it, with a soft transition of 6% of the ramp.

Severity tables (index = severity - 1; every family gets harder as severity rises):

| family | parameter | 1 | 2 | 3 | 4 | 5 |
|---|---|---|---|---|---|---|
| blur | Gaussian sigma (px @224) | 0.6 | 1.0 | 1.5 | 2.0 | 3.0 |
| motion_blur | line kernel length (px @224), random angle | 3 | 5 | 7 | 10 | 14 |
| noise | additive Gaussian std (of 255) | 8 | 16 | 24 | 36 | 50 |
| jpeg | JPEG quality | 30 | 20 | 15 | 10 | 6 |
| contrast | factor c in ``mean + c (x - mean)`` | 0.6 | 0.45 | 0.3 | 0.2 | 0.12 |
| illumination | depth s in ``x (1 - s g)``, g = ramp / 2 + shadow / 2 | 0.25 | 0.4 | 0.55 | 0.7 | 0.85 |
| rotation | in-plane angle (deg), random sign | 8 | 15 | 25 | 35 | 45 |
| perspective | corner jitter (fraction of the side) | 0.04 | 0.07 | 0.10 | 0.13 | 0.16 |
| occlusion | occluded fraction of the symbol's area | 0.05 | 0.10 | 0.18 | 0.27 | 0.38 |
| scale | module pitch (px @224) | 2.2 | 1.8 | 1.5 | 1.25 | 1.0 |
"""

from __future__ import annotations

import cv2
import numpy as np

from cambench_qr.dataset_builder.render import quad_homography, rotation

DISTORTION_FAMILIES: tuple[str, ...] = ("blur", "motion_blur", "noise", "jpeg", "contrast", "illumination",
                                        "rotation", "perspective", "occlusion", "scale")
GEOMETRIC: tuple[str, ...] = ("rotation", "perspective", "scale")
PHOTOMETRIC: tuple[str, ...] = ("blur", "motion_blur", "noise", "jpeg", "contrast", "illumination")
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
SEVERITY_TABLES: dict[str, tuple[float, ...]] = {
    "blur": (0.6, 1.0, 1.5, 2.0, 3.0),
    "motion_blur": (3, 5, 7, 10, 14),
    "noise": (8, 16, 24, 36, 50),
    "jpeg": (30, 20, 15, 10, 6),
    "contrast": (0.6, 0.45, 0.3, 0.2, 0.12),
    "illumination": (0.25, 0.4, 0.55, 0.7, 0.85),
    "rotation": (8, 15, 25, 35, 45),
    "perspective": (0.04, 0.07, 0.10, 0.13, 0.16),
    "occlusion": (0.05, 0.10, 0.18, 0.27, 0.38),
    "scale": (2.2, 1.8, 1.5, 1.25, 1.0),
}
REFERENCE_SIDE = 224


def severity_value(family: str, severity: int) -> float:
    """The table parameter of ``family`` at ``severity`` (1..5); ValueError otherwise."""
    if family not in SEVERITY_TABLES:
        raise ValueError(f"unknown distortion family {family!r}; choose from {DISTORTION_FAMILIES}")
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    return float(SEVERITY_TABLES[family][severity - 1])


def perspective_jitter(rng: np.random.Generator, width: float, height: float, amount: float) -> np.ndarray:
    """Homography moving each corner of a ``width x height`` rectangle centred on the origin by
    U[-amount, amount] x its side along each axis (module units)."""
    w2, h2 = width / 2, height / 2
    src = np.array([[-w2, -h2], [w2, -h2], [w2, h2], [-w2, h2]])
    dst = src + rng.uniform(-amount, amount, (4, 2)) * np.array([width, height])
    return quad_homography(src, dst)


def geometric_warp(family: str, severity: int, rng: np.random.Generator, width: float,
                   height: float) -> np.ndarray:
    """The distortion factor (module units, about the object's centre) for a geometric family; identity
    for ``scale``, whose severity sets the module pitch instead (see ``severity_value``)."""
    value = severity_value(family, severity)
    if family == "rotation":
        return rotation(value * (1 if rng.random() < 0.5 else -1))
    if family == "perspective":
        return perspective_jitter(rng, width, height, value)
    if family == "scale":
        return np.eye(3)
    raise ValueError(f"{family!r} is not a geometric distortion; those are {GEOMETRIC}")


def motion_kernel(length: int, degrees: float) -> np.ndarray:
    """A normalised ``length``-pixel line kernel through the centre at ``degrees``."""
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dx, dy = np.cos(np.deg2rad(degrees)) * c, np.sin(np.deg2rad(degrees)) * c
    cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
    return k / k.sum()


def photometric(family: str, severity: int, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply a photometric family to a uint8 HxWx3 RGB image; returns a new uint8 image."""
    value = severity_value(family, severity)
    px = image.shape[0] / REFERENCE_SIDE
    if family == "blur":
        return cv2.GaussianBlur(image, (0, 0), value * px)
    if family == "motion_blur":
        length = max(int(round(value * px)) | 1, 3)
        return cv2.filter2D(image, -1, motion_kernel(length, float(rng.uniform(0, 180))))
    if family == "jpeg":
        ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(value)])
        if not ok:
            raise RuntimeError("OpenCV failed to JPEG-encode an image")
        return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    x = image.astype(np.float32)
    if family == "noise":
        out = x + rng.normal(0.0, value, image.shape).astype(np.float32)
    elif family == "contrast":
        mean = x.mean(axis=(0, 1), keepdims=True)
        out = mean + value * (x - mean)
    elif family == "illumination":
        h, w = image.shape[:2]
        theta = rng.uniform(0, 2 * np.pi)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = xs * np.cos(theta) + ys * np.sin(theta)
        ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
        edge = rng.uniform(0.3, 0.7)
        shadow = np.clip((ramp - edge) / 0.06 + 0.5, 0, 1)  # a cast shadow with a soft edge
        out = x * (1.0 - value * (0.5 * ramp + 0.5 * shadow))[..., None]
    else:
        raise ValueError(f"{family!r} is not a photometric distortion; those are {PHOTOMETRIC}")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def occlude(image: np.ndarray, occluded: np.ndarray, quad: np.ndarray, fraction: float,
            rng: np.random.Generator) -> None:
    """Paint one axis-aligned rectangle of area ``fraction`` x the area of ``quad`` (the object's corner
    quadrilateral, (4, 2) canvas px), aspect ratio in [0.5, 2], centred at a random point of the quad's
    bounding box, with a flat random colour; marks it 255 in ``occluded`` (both modified in place)."""
    area = 0.5 * abs(np.dot(quad[:, 0], np.roll(quad[:, 1], 1)) - np.dot(quad[:, 1], np.roll(quad[:, 0], 1)))
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    w, h = np.sqrt(fraction * area * aspect), np.sqrt(fraction * area / aspect)
    lo, hi = quad.min(0), quad.max(0)
    cx, cy = lo + rng.random(2) * (hi - lo)
    x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
    x1, y1 = int(round(cx + w / 2)), int(round(cy + h / 2))
    x0, y0 = max(x0, 0), max(y0, 0)
    image[y0:y1, x0:x1] = rng.integers(0, 256, 3).astype(np.uint8)
    occluded[y0:y1, x0:x1] = 255
