"""Everything a batch of part-label maps contributes to the scores, computed once.

``structure_scores`` prepares its part maps on every call; to score several maps of the same images
(one per CAM method, say) prepare them once and pass the ``PreparedParts`` instead: the masks, areas,
pixel classes and exact distance transforms are then not recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from cambench_qr.metrics import _rows, backends
from cambench_qr.metrics._rows import Scratch
from cambench_qr.metrics.edt import distance_to_labels
from cambench_qr.metrics.inputs import check_module_px, check_options, check_parts
from cambench_qr.metrics.masks import mode_classes
from cambench_qr.metrics.regions import MIN_CLASS, POINTING_REGIONS, region_sums
from cambench_qr.parts import NUM_PARTS


@dataclass(frozen=True)
class PreparedParts:
    """Part maps ready for scoring (see ``prepare_parts``); all tensors on the part maps' device.

    ``run_start`` (R,) int64: the flat position (row * n + column) where each run of equal part ids
    along a row starts (every row starts one); ``run_bin`` (R,) int64: row * NUM_PARTS + the run's
    part id; ``row_runs`` (B + 1,) int64: the first run of each row. A part's mass is the sum of its
    runs' sums (real part maps hold ~1000 runs per 224x224 row).
    ``pixel_class`` (B, n) uint8: the pixel classes of ``metrics.regions`` in ``mask_mode``.
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
    check_options(mask_mode=mask_mode, pointing_tolerance=pointing_tolerance)
    prt = check_parts(parts)
    return prepare_checked(prt, check_module_px(module_px, prt.shape[0], prt.device), mask_mode,
                           pointing_tolerance)


def prepare_checked(prt: torch.Tensor, px: torch.Tensor, mask_mode: str, pointing_tolerance: float,
                    scratch: Scratch | None = None) -> PreparedParts:
    """``prepare_parts`` of part maps and module pitches already checked (``check_parts``,
    ``check_module_px``); with ``scratch`` (CPU) the classes and distances live in its arrays, valid
    until it is reused."""
    batch, height, width = prt.shape
    n = height * width
    device = prt.device
    flat = prt.view(batch, n)
    runs = backends.for_device(device).part_runs(flat, scratch)
    run_start, run_bin, row_runs, part_px = runs.run_start, runs.run_bin, runs.row_runs, runs.part_px
    pixel_class, paper_timing = mode_classes(prt, mask_mode, px, runs.pixel_class)
    area_px = region_sums(part_px, n, None if paper_timing is None else paper_timing.sum(1).double())
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
