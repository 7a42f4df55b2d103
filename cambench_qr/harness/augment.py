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
   whole symbol stays in view at the builder's placements. Steps 2 and 3 are one affine warp.

Randomness comes from the caller's ``numpy.random.Generator`` only, so a run is reproducible from its seed.
``AugmentedRows`` augments each training row with a generator seeded by (seed, epoch, row), so the images
do not depend on batching, DataLoader workers or the number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

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
        """Augment a uint8 batch (B, 3, H, W) image by image with one generator; a new batch on the same
        device."""
        return torch.stack([self.augment_one(image, rng) for image in images])

    def augment_one(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Augment one uint8 image (3, H, W) on the CPU: the distortion (step 1) with probability
        ``p_distort``, then one ``cv2.warpAffine`` for steps 2 and 3; a new image on the same device."""
        hwc = image.permute(1, 2, 0).cpu().numpy().copy()
        if self.max_severity and rng.random() < self.p_distort:
            self._distort(hwc, rng)
        if self.symmetries or self.max_rotation or self.max_zoom:
            hwc = cv2.warpAffine(hwc, self._matrix(hwc.shape[:2], rng), hwc.shape[1::-1],
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return torch.from_numpy(np.ascontiguousarray(hwc)).permute(2, 0, 1).contiguous().to(image.device)

    def _distort(self, image: np.ndarray, rng: np.random.Generator) -> None:
        """Step 1 on one HxWx3 uint8 image, in place: a family and a severity, then the builder's code."""
        family = FAMILIES[int(rng.integers(len(FAMILIES)))]
        severity = int(rng.integers(1, self.max_severity + 1))
        if family == "occlusion":
            side = image.shape[0]
            edge = rng.uniform(0.3, 0.8) * side
            x0, y0 = rng.uniform(0, side - edge, 2)
            quad = np.array([[x0, y0], [x0 + edge, y0], [x0 + edge, y0 + edge], [x0, y0 + edge]])
            dist.occlude(image, np.zeros(image.shape[:2], np.uint8), quad,
                         dist.severity_value(family, severity), rng)
        else:
            image[:] = dist.photometric(family, severity, np.ascontiguousarray(image), rng)

    def _matrix(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """The 2x3 affine map (source -> output pixel) of steps 2 and 3 about the image centre: ``A = zoom
        R(angle) D`` with D one of the 8 symmetries (a turn by k * 90 degrees, then a mirror with probability
        1/2; exact integers), so that with no rotation or zoom every pixel lands on a pixel."""
        d = np.eye(2)
        if self.symmetries:
            d = np.linalg.matrix_power(np.array([[0.0, -1.0], [1.0, 0.0]]), int(rng.integers(4)))
            if rng.random() < 0.5:
                d = d @ np.array([[-1.0, 0.0], [0.0, 1.0]])
        angle = np.deg2rad(rng.uniform(-self.max_rotation, self.max_rotation)) if self.max_rotation else 0.0
        zoom = rng.uniform(1 - self.max_zoom, 1 + self.max_zoom) if self.max_zoom else 1.0
        if angle or zoom != 1.0:
            rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            d = zoom * rotation @ d
        centre = (np.array(shape[::-1], dtype=np.float64) - 1) / 2
        return np.hstack([d, (centre - d @ centre)[:, None]])


class AugmentedRows(torch.utils.data.Dataset):
    """Items of ``rows`` (dicts with a uint8 ``image`` (3, H, W)) with the image augmented; item ``i`` of
    ``epoch`` uses ``numpy.random.default_rng([seed, epoch, i])``."""

    def __init__(self, rows: torch.utils.data.Dataset, augmentation: Augmentation, seed: int, epoch: int):
        self.rows, self.augmentation, self.seed, self.epoch = rows, augmentation, seed, epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.rows[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return {**item, "image": self.augmentation.augment_one(item["image"], rng)}

