"""Everything a batch of part-label maps contributes to the scores, computed once.

``structure_scores`` prepares its part maps on every call; to score several maps of the same images
(one per CAM method, say) prepare them once and pass the ``PreparedParts`` instead: the masks, areas,
pixel classes and exact distance transforms are then not recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from cambench_qr.metrics import _rows, cpu_kernels
from cambench_qr.metrics._rows import Scratch
from cambench_qr.metrics.edt import distance_to_labels
from cambench_qr.metrics.inputs import check_module_px, check_options, check_parts
from cambench_qr.metrics.masks import paper_timing_mask
from cambench_qr.parts import NUM_PARTS, REGIONS, TIMING

REGION_NAMES = ("finder", "timing", "structure", "box", "outside")
POINTING_REGIONS = ("finder", "box")


# Pixel class of each part id in standard mode: [in box] + [in structure] + [in finder]. Four disjoint
# classes: 0 outside the box, 1 box but not structure, 2 timing, 3 finder; so every region is a threshold
# on the class.
_CLASS_OF_PART = torch.tensor([(i in REGIONS["box"]) + (i in REGIONS["structure"]) + (i in REGIONS["finder"])
                               for i in range(NUM_PARTS)], dtype=torch.uint8)
MIN_CLASS = {"finder": 3, "structure": 2, "box": 1}  # region = pixels of class >= MIN_CLASS[region]


def run_sums(values: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """float64 sums of the flat ``values`` over the runs ``[starts[i], starts[i + 1])`` (the last run
    ends at the end). (The CPU scoring path sums each row's runs with ``cpu_kernels.run_sums``.)"""
    lengths = torch.diff(starts, append=starts.new_tensor([values.numel()]))
    return torch.segment_reduce(values.reshape(-1).double(), "sum", lengths=lengths)


_CLASS_BITS = sum(int(c) << (2 * i) for i, c in enumerate(_CLASS_OF_PART))  # the classes, 2 bits an id


def _part_runs(flat: torch.Tensor, scratch: Scratch | None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(run_start, run_bin, row_runs, part_px, pixel_class)`` of (B, n) uint8 part maps (see
    ``PreparedParts``): compiled kernels on the CPU (the classes into ``scratch`` when given), batched
    torch ops elsewhere."""
    batch, n = flat.shape
    if _rows.numpy_kernels(flat.device):
        parts = flat.numpy()
        classes = np.empty_like(parts) if scratch is None else scratch.get("pixel_class", parts.shape, "u1")
        row_runs = np.empty(batch + 1, np.int64)
        cpu_kernels.count_part_runs(parts, _CLASS_BITS, classes, row_runs)
        run_start, run_bin = np.empty(row_runs[-1], np.int64), np.empty(row_runs[-1], np.int64)
        part_px = np.zeros((batch, NUM_PARTS), np.int64)
        cpu_kernels.part_runs(parts, row_runs, run_start, run_bin, part_px)
        return (torch.from_numpy(run_start), torch.from_numpy(run_bin), torch.from_numpy(row_runs),
                torch.from_numpy(part_px).double(), torch.from_numpy(classes))
    starts = torch.ones_like(flat, dtype=torch.bool)
    torch.ne(flat[:, 1:], flat[:, :-1], out=starts[:, 1:])
    run_start = starts.view(-1).nonzero()[:, 0]
    row_runs = torch.searchsorted(run_start, torch.arange(batch + 1, device=flat.device) * n)
    row = torch.repeat_interleave(torch.arange(batch, device=flat.device), torch.diff(row_runs))
    run_bin = row * NUM_PARTS + flat.view(-1)[run_start]
    run_length = torch.diff(run_start, append=run_start.new_tensor([batch * n]))
    part_px = torch.bincount(run_bin, weights=run_length.double(), minlength=batch * NUM_PARTS)
    pixel_class = _CLASS_OF_PART.to(flat.device)[flat.long()]
    return run_start, run_bin, row_runs, part_px.view(batch, NUM_PARTS), pixel_class


@dataclass(frozen=True)
class PreparedParts:
    """Part maps ready for scoring (see ``prepare_parts``); all tensors on the part maps' device.

    ``run_start`` (R,) int64: the flat position (row * n + column) where each run of equal part ids
    along a row starts (every row starts one); ``run_bin`` (R,) int64: row * NUM_PARTS + the run's
    part id; ``row_runs`` (B + 1,) int64: the first run of each row. A part's mass is the sum of its
    runs' sums (real part maps hold ~1000 runs per 224x224 row).
    ``pixel_class`` (B, n) uint8: 0 outside the box, 1 box but not structure, 2 timing, 3 finder.
    ``paper_timing`` (B, n) bool: the paper's timing mask (None in standard mode).
    ``distance`` (B, n) float32: exact Euclidean distance to the structure (0 for a sample without
    structure); ``mean_distance`` (B,) float64 its mean over the pixels. ``near`` holds the pointing
    regions widened by the tolerance (empty when it is 0)."""

    shape: torch.Size
    mask_mode: str
    pointing_tolerance: float
    module_px: torch.Tensor
    run_start: torch.Tensor
    run_bin: torch.Tensor
    row_runs: torch.Tensor
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
        first, last = int(self.row_runs[start]), int(self.row_runs[stop])
        n = self.shape[1] * self.shape[2]
        return replace(
            self, shape=torch.Size((stop - start, *self.shape[1:])), module_px=self.module_px[start:stop],
            run_start=self.run_start[first:last] - start * n,
            run_bin=self.run_bin[first:last] - start * NUM_PARTS,
            row_runs=self.row_runs[start:stop + 1] - first, part_px=self.part_px[start:stop],
            area_px={k: v[start:stop] for k, v in self.area_px.items()},
            pixel_class=self.pixel_class[start:stop],
            paper_timing=None if self.paper_timing is None else self.paper_timing[start:stop],
            near={k: v[start:stop] for k, v in self.near.items()}, distance=self.distance[start:stop],
            mean_distance=self.mean_distance[start:stop])


def prepare_parts(parts, *, mask_mode: str = "standard", module_px=None,
                  pointing_tolerance: float = 0.0) -> PreparedParts:
    """Validate (B, H, W) part maps and precompute their part runs, areas, classes and distances."""
    prt, px = check_prepare_args(parts, mask_mode, module_px, pointing_tolerance)
    return prepare_checked(prt, px, mask_mode, pointing_tolerance)


def check_prepare_args(parts, mask_mode: str, module_px, pointing_tolerance: float
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(parts, module_px)`` checked (``check_parts``, ``check_module_px``), or a ValueError."""
    check_options(mask_mode=mask_mode, pointing_tolerance=pointing_tolerance)
    prt = check_parts(parts)
    return prt, check_module_px(module_px, prt.shape[0], prt.device)


def prepare_checked(prt: torch.Tensor, px: torch.Tensor, mask_mode: str, pointing_tolerance: float,
                    scratch: Scratch | None = None) -> PreparedParts:
    """``prepare_parts`` of part maps and module pitches that passed ``check_prepare_args``; with
    ``scratch`` (CPU) the classes and distances live in its arrays, valid until it is reused."""
    batch, height, width = prt.shape
    n = height * width
    device = prt.device
    flat = prt.view(batch, n)
    run_start, run_bin, row_runs, part_px, pixel_class = _part_runs(flat, scratch)
    paper_timing = None
    if mask_mode == "paper":
        paper_timing = paper_timing_mask(prt, px).view(batch, n)
        timing_class = torch.full_like(pixel_class, MIN_CLASS["structure"])  # structure, not finder
        pixel_class = torch.where(paper_timing, timing_class, pixel_class)
    area_px = {r: part_px[:, list(REGIONS[r])].sum(1) for r in ("finder", "box")}
    area_px["timing"] = part_px[:, TIMING] if paper_timing is None else paper_timing.sum(1).double()
    area_px["structure"] = area_px["finder"] + area_px["timing"]
    area_px["outside"] = n - area_px["box"]
    classes = pixel_class.cpu().numpy().reshape(prt.shape)
    near = {}  # the pointing regions widened by the tolerance
    if pointing_tolerance > 0:
        for r in POINTING_REGIONS:
            within = distance_to_labels(classes, MIN_CLASS[r])[0] <= pointing_tolerance
            near[r] = torch.from_numpy(within).to(device).view(batch, n)
    in_scratch = scratch is not None and _rows.numpy_kernels(device)
    out = scratch.get("distance", tuple(prt.shape), np.float32) if in_scratch else None
    distance, totals = distance_to_labels(classes, MIN_CLASS["structure"], out)
    no_structure = (area_px["structure"] == 0).nonzero()[:, 0]
    distance = torch.from_numpy(distance).to(device).view(batch, n)
    distance[no_structure] = 0
    mean_distance = torch.from_numpy(totals).to(device) / n
    mean_distance[no_structure] = 0
    return PreparedParts(prt.shape, mask_mode, float(pointing_tolerance), px, run_start, run_bin, row_runs,
                         part_px, area_px, pixel_class, paper_timing, near, distance, mean_distance)
