"""Everything a batch of part-label maps contributes to the scores, computed once.

``structure_scores`` prepares its part maps on every call; to score several maps of the same images
(one per CAM method, say) prepare them once and pass the ``PreparedParts`` instead: the masks, areas,
pixel classes and exact distance transforms are then not recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from cambench_qr.metrics.edt import distance_outside, distance_to
from cambench_qr.metrics.masks import MASK_MODES, paper_timing_mask
from cambench_qr.parts import NUM_PARTS, REGIONS, TIMING

REGION_NAMES = ("finder", "timing", "structure", "box", "outside")
POINTING_REGIONS = ("finder", "box")


def check_parts(parts, device: torch.device | None = None) -> torch.Tensor:
    """(B, H, W) uint8 part ids, or a ValueError naming the first sample with an id outside 0..9."""
    prt = torch.as_tensor(parts, device=device)
    if prt.ndim != 3:
        raise ValueError(f"parts must be (B, H, W), got shape {tuple(prt.shape)}")
    if prt.shape[0] == 0 or prt.shape[1] == 0 or prt.shape[2] == 0:
        raise ValueError(f"parts must hold at least one map of at least one pixel, got {tuple(prt.shape)}")
    if prt.is_floating_point() or prt.is_complex() or prt.dtype == torch.bool:
        raise ValueError(f"parts must be an integer tensor of part ids 0..{NUM_PARTS - 1}, got {prt.dtype}")
    flat = prt.flatten(1)
    highest = flat.amax(1)
    lowest = flat.amin(1) if prt.dtype.is_signed else torch.zeros_like(highest)
    bad = (lowest < 0) | (highest >= NUM_PARTS)
    if bad.any():
        i = int(bad.nonzero()[0])
        wrong = int(lowest[i]) if lowest[i] < 0 else int(highest[i])
        raise ValueError(f"parts sample {i} holds id {wrong}; part ids are 0..{NUM_PARTS - 1}")
    return prt.to(torch.uint8).contiguous()


def check_module_px(module_px, batch: int, device: torch.device) -> torch.Tensor:
    """(B,) float64 module pitches from None, one number or one per sample; NaN means unknown."""
    if module_px is None:
        return torch.full((batch,), float("nan"), dtype=torch.float64, device=device)
    px = torch.as_tensor(module_px, dtype=torch.float64, device=device).reshape(-1)
    if px.numel() == 1:
        px = px.expand(batch)
    if px.numel() != batch or not bool((torch.isnan(px) | (torch.isfinite(px) & (px > 0))).all()):
        raise ValueError(f"module_px must be one positive number or {batch} positive numbers (one per "
                         f"sample; NaN where unknown), got {module_px!r}")
    return px


# Pixel class of each part id in standard mode: [in box] + [in structure] + [in finder].
_CLASS_OF_PART = torch.tensor([(i in REGIONS["box"]) + (i in REGIONS["structure"]) + (i in REGIONS["finder"])
                               for i in range(NUM_PARTS)], dtype=torch.uint8)


@dataclass(frozen=True)
class PreparedParts:
    """Part maps ready for scoring (see ``prepare_parts``); all tensors on the part maps' device.

    ``index`` (B, n) int64: the part ids, as scatter indices (the masses are one scatter_add).
    ``pixel_class`` (B, n) uint8: 0 outside the box, 1 box but not structure, 2 timing, 3 finder.
    ``paper_timing`` (B, n) bool: the paper's timing mask (None in standard mode).
    ``distance`` (B, n) float32: exact Euclidean distance to the structure (0 for a sample without
    structure); ``mean_distance`` (B,) float64 its mean over the pixels. ``near`` holds the pointing
    regions widened by the tolerance (empty when it is 0)."""

    shape: torch.Size
    mask_mode: str
    pointing_tolerance: float
    module_px: torch.Tensor
    index: torch.Tensor
    part_px: torch.Tensor
    area_px: dict[str, torch.Tensor]
    pixel_class: torch.Tensor
    paper_timing: torch.Tensor | None
    near: dict[str, torch.Tensor]
    distance: torch.Tensor
    mean_distance: torch.Tensor

    def rows(self, start: int, stop: int) -> PreparedParts:
        """The prepared parts of samples ``start:stop``."""
        stop = min(stop, self.shape[0])
        return replace(
            self, shape=torch.Size((stop - start, *self.shape[1:])), module_px=self.module_px[start:stop],
            index=self.index[start:stop], part_px=self.part_px[start:stop],
            area_px={k: v[start:stop] for k, v in self.area_px.items()},
            pixel_class=self.pixel_class[start:stop],
            paper_timing=None if self.paper_timing is None else self.paper_timing[start:stop],
            near={k: v[start:stop] for k, v in self.near.items()}, distance=self.distance[start:stop],
            mean_distance=self.mean_distance[start:stop])


def prepare_parts(parts, *, mask_mode: str = "standard", module_px=None,
                  pointing_tolerance: float = 0.0) -> PreparedParts:
    """Validate (B, H, W) part maps and precompute their indices, areas, classes and distances."""
    prt, px = check_prepare_args(parts, mask_mode, module_px, pointing_tolerance)
    return prepare_checked(prt, px, mask_mode, pointing_tolerance)


def check_prepare_args(parts, mask_mode: str, module_px, pointing_tolerance: float
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(parts, module_px)`` checked (``check_parts``, ``check_module_px``), or a ValueError."""
    if mask_mode not in MASK_MODES:
        raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
    if not pointing_tolerance >= 0:
        raise ValueError(f"pointing_tolerance must be >= 0 pixels, got {pointing_tolerance}")
    prt = check_parts(parts)
    return prt, check_module_px(module_px, prt.shape[0], prt.device)


def prepare_checked(prt: torch.Tensor, px: torch.Tensor, mask_mode: str, pointing_tolerance: float
                    ) -> PreparedParts:
    """``prepare_parts`` of part maps and module pitches that passed ``check_prepare_args``."""
    batch, height, width = prt.shape
    n = height * width
    device = prt.device
    flat = prt.view(batch, n)
    index = flat.long()
    part_px = torch.zeros(batch, NUM_PARTS, dtype=torch.float64, device=device).scatter_add_(
        1, index, torch.ones(1, 1, dtype=torch.float64, device=device).expand(batch, n))
    pixel_class = _CLASS_OF_PART.to(device).index_select(0, index.view(-1)).view(batch, n)
    paper_timing = None
    if mask_mode == "paper":
        paper_timing = paper_timing_mask(prt, px).view(batch, n)
        pixel_class = torch.where(paper_timing, torch.full_like(pixel_class, 2), pixel_class)
    area_px = {r: part_px[:, list(REGIONS[r])].sum(1) for r in ("finder", "box")}
    area_px["timing"] = part_px[:, TIMING] if paper_timing is None else paper_timing.sum(1).double()
    area_px["structure"] = area_px["finder"] + area_px["timing"]
    area_px["outside"] = n - area_px["box"]
    near = {} if pointing_tolerance == 0 else {
        r: distance_to((pixel_class >= least).view(prt.shape)).view(batch, n) <= pointing_tolerance
        for r, least in (("finder", 3), ("box", 1))}
    not_structure = (pixel_class < 2).view(torch.uint8).view(prt.shape).cpu().numpy()
    distance = torch.from_numpy(distance_outside(not_structure)).to(device).view(batch, n)
    distance[(area_px["structure"] == 0).nonzero()[:, 0]] = 0
    return PreparedParts(prt.shape, mask_mode, float(pointing_tolerance), px, index, part_px, area_px,
                         pixel_class, paper_timing, near, distance, distance.sum(1).double() / n)
