"""What a backend returns: named results, the same from every backend.

A backend does the per-pixel work of a chunk of rows: the runs of equal part ids (``PartRuns``) when
the part maps are prepared, and, per saliency map, the part-run sums, the distance-weighted sum and the
rank statistics of one sort of (value, pixel class) keys (``RowStats``). The formulas
(``metrics.formulas``) read these fields by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

AUC_QUANTILES = torch.linspace(0.0, 0.99, 31, dtype=torch.float64)  # the paper's 31 thresholds


@dataclass(frozen=True)
class PartRuns:
    """The runs of equal part ids along the rows of (B, n) part maps.

    ``run_start`` (R,) int64: the flat position (row * n + column) where each run starts (every row
    starts one); ``run_bin`` (R,) int64: row * NUM_PARTS + the run's part id; ``row_runs`` (B + 1,)
    int64: the first run of each row; ``part_px`` (B, NUM_PARTS) float64: pixels per part id;
    ``pixel_class`` (B, n) uint8: the standard-mode pixel classes (``metrics.regions``)."""

    run_start: torch.Tensor
    run_bin: torch.Tensor
    row_runs: torch.Tensor
    part_px: torch.Tensor
    pixel_class: torch.Tensor


@dataclass(frozen=True)
class Positions:
    """Sorted positions ``at`` (B, k) int64 (ascending saliency) and, per region, its pixels among the
    positions before each (``below``: region -> (B, k) float64)."""

    at: torch.Tensor
    below: dict[str, torch.Tensor]


# The queries of the rank statistics, in the order a backend computes them in one pass: name -> count
# (``rank_regions``: the number of rank regions).
def query_sizes(rank_regions: int) -> dict[str, int]:
    """Each query group's number of positions."""
    return {"auc_kept": len(AUC_QUANTILES), "cut_first": rank_regions, "cut_end": rank_regions, "top": 1}


def query_offsets(rank_regions: int) -> dict[str, int]:
    """Each query group's first column in the concatenated positions."""
    offsets, start = {}, 0
    for name, size in query_sizes(rank_regions).items():
        offsets[name], start = start, start + size
    return offsets


@dataclass(frozen=True)
class RankStats:
    """What the rank-based scores read off each row's sorted (value, class) keys.

    ``auc_kept``: the first position kept by each AUC threshold (a pixel is kept when its float32 value
    is >= the threshold); ``cut_first`` / ``cut_end``: for each rank region, the first position of the
    run of values tied at the cut of its |M| highest pixels and the first after that run; ``top``: the
    first position of the run of the maximum. ``position_sum``: per ROC region, the sum of its pixels'
    sorted positions (ties sorted complement first); ``tied_pairs``: per ROC region, the pairs of equal
    values with one pixel in the region and one outside."""

    auc_kept: Positions
    cut_first: Positions
    cut_end: Positions
    top: Positions
    position_sum: dict[str, torch.Tensor]
    tied_pairs: dict[str, torch.Tensor]

    @classmethod
    def from_queries(cls, positions: torch.Tensor, below: dict[str, torch.Tensor],
                     position_sum: dict[str, torch.Tensor], tied_pairs: dict[str, torch.Tensor],
                     rank_regions: int) -> RankStats:
        """Split (B, Q) positions laid out by ``query_offsets`` (and the counts below them) by name."""
        groups = {}
        for name, start in query_offsets(rank_regions).items():
            stop = start + query_sizes(rank_regions)[name]
            below_group = {r: c[:, start:stop] for r, c in below.items()}
            groups[name] = Positions(positions[:, start:stop], below_group)
        return cls(**groups, position_sum=position_sum, tied_pairs=tied_pairs)


@dataclass(frozen=True)
class RowStats:
    """A backend's result for a chunk of saliency maps: ``rank`` (``RankStats``), ``part_run_sums`` (R,)
    float64 sums of the map over the part runs, ``weighted_distance`` (B,) float64 sums of map x
    distance to the structure."""

    rank: RankStats
    part_run_sums: torch.Tensor
    weighted_distance: torch.Tensor


def quantile_positions(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, low)``: the AUC quantiles as fractional sorted positions ``q * (n - 1)`` (float64) and their
    floors (int64); a threshold interpolates the values at ``low`` and ``min(low + 1, n - 1)``."""
    q = AUC_QUANTILES.to(device) * (n - 1)
    return q, q.floor().long()


MAX_BLOCK = 64  # short blocks: cheap queries; a block's counts and offset sums stay below 2**11


def block_length(n: int) -> int:
    """The largest divisor of n of at most MAX_BLOCK pixels: the block of the distance-weighted sums
    (and of the torch backend's class counts)."""
    return max(d for d in range(1, min(n, MAX_BLOCK) + 1) if n % d == 0)
