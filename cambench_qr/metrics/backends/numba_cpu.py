"""The CPU backend: compiled (numba) kernels row by row (``metrics.cpu_kernels``).

All per-pixel work of a row is done before the next row's: the row stays in cache, its temporaries are
reused, and the other chunk threads run while this one is in a GIL-free kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from cambench_qr.metrics import cpu_kernels
from cambench_qr.metrics._rows import Scratch
from cambench_qr.metrics.backends.contract import (
    PartRuns,
    RankStats,
    RowStats,
    quantile_positions,
    query_offsets,
)
from cambench_qr.metrics.regions import CLASS_TABLE, NESTED, ROC_REGIONS, region_counts
from cambench_qr.parts import NUM_PARTS

if TYPE_CHECKING:
    from cambench_qr.metrics.prepared import PreparedParts


def part_runs(flat: torch.Tensor, scratch: Scratch | None) -> PartRuns:
    """``PartRuns`` of (B, n) uint8 part maps (the classes into ``scratch`` when given)."""
    batch, n = flat.shape
    parts = flat.numpy()
    classes = np.empty_like(parts) if scratch is None else scratch.get("pixel_class", parts.shape, "u1")
    row_runs = np.empty(batch + 1, np.int64)
    cpu_kernels.count_part_runs(parts, CLASS_TABLE, classes, row_runs)
    run_start, run_bin = np.empty(row_runs[-1], np.int64), np.empty(row_runs[-1], np.int64)
    part_px = np.zeros((batch, NUM_PARTS), np.int64)
    cpu_kernels.part_runs(parts, row_runs, run_start, run_bin, part_px)
    return PartRuns(torch.from_numpy(run_start), torch.from_numpy(run_bin), torch.from_numpy(row_runs),
                    torch.from_numpy(part_px).double(), torch.from_numpy(classes))


def sort_row_keys(bits: np.ndarray, classes: np.ndarray, out: np.ndarray) -> None:
    """``torch_batched.sorted_keys`` of one row: uint32 ``bits`` and uint8 ``classes`` into the uint32
    row ``out`` (u XOR 2**31 = u - 2**31 read as int32), sorted by numpy (a SIMD sort, several times
    faster than torch.sort)."""
    cpu_kernels.row_keys(bits, classes, out)
    out.view(np.int32).sort()


def row_pass(w: torch.Tensor, w_unit: torch.Tensor, prepared: PreparedParts, top_k: torch.Tensor,
             block: int, scratch: Scratch) -> RowStats:
    """``RowStats`` of the (B, n) map ``w`` (``w_unit``: the same map scaled into [0, 1); ``top_k`` (B,
    R): the rank regions' pixel counts); the distance-weighted sums are float32 sums over blocks of
    ``block`` pixels, added up in float64 (relative error ~1e-9)."""
    batch, n = w.shape
    values, bits = w.numpy(), w_unit.numpy().view(np.uint32)
    classes = prepared.pixel_class.numpy()
    run_start, row_runs = prepared.run_start.numpy(), prepared.row_runs.numpy()
    distance = prepared.distance.numpy()
    keys = scratch.get("keys", (n,), np.uint32)
    totals = np.empty(len(run_start))
    weighted_blocks = np.empty((batch, n // block), np.float32)
    q, low = (x.numpy() for x in quantile_positions(n, w.device))
    k = top_k.numpy()
    offsets = np.array(list(query_offsets(k.shape[1]).values()), np.int64)
    positions = np.empty((batch, len(q) + 2 * k.shape[1] + 1), np.int64)
    counts = np.empty((*positions.shape, len(NESTED)), np.int64)  # class >= 1, 2, 3
    sums = np.empty((batch, 4), np.int64)
    for row in range(batch):
        first, last = row_runs[row], row_runs[row + 1]
        runs = run_start[first:last] - row * n
        cpu_kernels.run_sums(values[row], runs, totals[first:last])
        np.einsum("ij,ij->i", values[row].reshape(-1, block), distance[row].reshape(-1, block),
                  out=weighted_blocks[row])
        sort_row_keys(bits[row], classes[row], keys)
        cpu_kernels.rank_stats(keys.view(np.int32), q, low, k[row], offsets, positions[row], counts[row],
                               sums[row])
    at = torch.from_numpy(positions)
    below = region_counts(at, dict(zip(NESTED, torch.from_numpy(counts).unbind(-1), strict=True)))
    # sums: the position sums of class >= 1 (box) and >= 2 (structure), then their tied pairs
    position_sum, tied_pairs = torch.from_numpy(sums).double().view(batch, 2, 2).unbind(1)
    by_region = {"box": 0, "structure": 1}
    rank = RankStats.from_queries(at, below, {r: position_sum[:, by_region[r]] for r in ROC_REGIONS},
                                  {r: tied_pairs[:, by_region[r]] for r in ROC_REGIONS}, k.shape[1])
    weighted = torch.from_numpy(weighted_blocks.sum(1, dtype=np.float64))
    return RowStats(rank, torch.from_numpy(totals), weighted)
