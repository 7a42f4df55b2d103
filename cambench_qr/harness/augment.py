"""Training-time augmentation that keeps the task (QR or not), applied to uint8 image batches.

Every transform is label-independent, so no augmentation artefact can predict the class:

1. **The builder's own distortions** (``dataset_builder.distortions``): with probability ``p_distort`` an
   image gets one family drawn uniformly from the photometric families (blur, motion blur, noise, JPEG,
   contrast, illumination) and occlusion, at a severity drawn uniformly from ``1..max_severity``. The
   occluder (a flat rectangle of the family's area fraction) is placed in a random square of side
   0.3-0.8 of the canvas, wherever the object is.
2. **A random symmetry of the square** (one of the 8 rotations by multiples of 90 degrees and reflections):
   a QR symbol read in a mirror or turned keeps its three finder patterns.
3. **A small similarity transform** (rotation in ``[-max_rotation, max_rotation]`` degrees, scale in
   ``[1 - max_zoom, 1 + max_zoom]``) about the centre, bilinear, the border pixels repeated outwards, so the
   whole symbol stays in view at the builder's placements.

Randomness comes from the caller's ``numpy.random.Generator`` only, so a run is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..dataset_builder import distortions as dist

FAMILIES: tuple[str, ...] = (*dist.PHOTOMETRIC, "occlusion")


@dataclass(frozen=True)
class Augmentation:
    """Augmentation settings; ``max_severity`` 0 turns the builder distortions off, ``symmetries`` False
    keeps the orientation, ``max_rotation`` / ``max_zoom`` 0 skip the similarity transform."""

    max_severity: int = 3
    p_distort: float = 0.5
    symmetries: bool = True
    max_rotation: float = 15.0
    max_zoom: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.max_severity, bool) or self.max_severity not in range(6):
            raise ValueError(f"augmentation severity must be an integer in 0..5, got {self.max_severity!r}")
        if not 0.0 <= self.p_distort <= 1.0:
            raise ValueError(f"augmentation probability must be in [0, 1], got {self.p_distort!r}")
        if not 0.0 <= self.max_rotation <= 180.0 or not 0.0 <= self.max_zoom < 1.0:
            raise ValueError(f"augmentation rotation must be in [0, 180] degrees and zoom in [0, 1), got "
                             f"{self.max_rotation!r} and {self.max_zoom!r}")

    def __call__(self, images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Augment a uint8 batch (B, 3, H, W); returns a new uint8 batch on the same device."""
        out = self.distort(images, rng)
        if self.symmetries:
            out = _symmetries(out, rng)
        if self.max_rotation or self.max_zoom:
            out = _similarity(out, rng, self.max_rotation, self.max_zoom)
        return out

    def distort(self, images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Step 1: the builder's distortions on a random subset of the batch (CPU, one image at a time)."""
        if self.max_severity == 0 or self.p_distort == 0:
            return images
        hwc = images.permute(0, 2, 3, 1).cpu().numpy().copy()
        for i in np.flatnonzero(rng.random(len(hwc)) < self.p_distort):
            family = FAMILIES[int(rng.integers(len(FAMILIES)))]
            severity = int(rng.integers(1, self.max_severity + 1))
            if family == "occlusion":
                side = hwc.shape[1]
                edge = rng.uniform(0.3, 0.8) * side
                x0, y0 = rng.uniform(0, side - edge, 2)
                quad = np.array([[x0, y0], [x0 + edge, y0], [x0 + edge, y0 + edge], [x0, y0 + edge]])
                dist.occlude(hwc[i], np.zeros(hwc.shape[1:3], np.uint8), quad,
                             dist.severity_value(family, severity), rng)
            else:
                hwc[i] = dist.photometric(family, severity, np.ascontiguousarray(hwc[i]), rng)
        return torch.from_numpy(hwc).permute(0, 3, 1, 2).contiguous().to(images.device)


def _symmetries(images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Each image turned by k * 90 degrees (k uniform in 0..3) and mirrored with probability 1/2."""
    turns = rng.integers(0, 4, len(images))
    mirror = rng.random(len(images)) < 0.5
    out = images.clone()
    for k in range(4):
        for m in (False, True):
            sel = torch.as_tensor(np.flatnonzero((turns == k) & (mirror == m)), device=images.device)
            if len(sel):
                part = torch.rot90(images[sel], k, dims=(2, 3))
                out[sel] = part.flip(3) if m else part
    return out


def _similarity(images: torch.Tensor, rng: np.random.Generator, max_rotation: float,
                max_zoom: float) -> torch.Tensor:
    """Rotate by U[-max_rotation, max_rotation] degrees and scale by U[1 - max_zoom, 1 + max_zoom] about
    the centre (output pixel p samples the input at A^-1 p in normalised coordinates)."""
    b = len(images)
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation, b))
    zoom = rng.uniform(1 - max_zoom, 1 + max_zoom, b)
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    theta = np.zeros((b, 2, 3), np.float32)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(torch.from_numpy(theta).to(images.device), list(images.shape), align_corners=False)
    warped = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return warped.round().clamp_(0, 255).to(torch.uint8)

