"""The torch backend: batched torch ops over whole chunks (the path of every device but the CPU).

Pixels of each row are sorted by (value, pixel class) keys; a query reads the region counts below a
sorted position from per-block sums (see ``Ranked``). ``numba_cpu`` computes the same ``RowStats``
row by row on the CPU; the tests require the same numbers from both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from cambench_qr.metrics.backends.contract import (
    PartRuns,
    RankStats,
    RowStats,
    quantile_positions,
    query_offsets,
)
from cambench_qr.metrics.cpu_kernels import KEY_OFFSET
from cambench_qr.metrics.regions import (
    CLASS_BITS,
    MIN_CLASS,
    NESTED,
    ROC_REGIONS,
    pixel_classes,
    region_counts,
)
from cambench_qr.parts import NUM_PARTS

if TYPE_CHECKING:
    from cambench_qr.metrics.prepared import PreparedParts

CLASS_MASK = (1 << CLASS_BITS) - 1


def part_runs(flat: torch.Tensor, scratch=None) -> PartRuns:
    """``PartRuns`` of (B, n) uint8 part maps (``scratch`` unused: new tensors)."""
    batch, n = flat.shape
    starts = torch.ones_like(flat, dtype=torch.bool)
    torch.ne(flat[:, 1:], flat[:, :-1], out=starts[:, 1:])
    run_start = starts.view(-1).nonzero()[:, 0]
    row_runs = torch.searchsorted(run_start, torch.arange(batch + 1, device=flat.device) * n)
    row = torch.repeat_interleave(torch.arange(batch, device=flat.device), torch.diff(row_runs))
    run_bin = row * NUM_PARTS + flat.view(-1)[run_start]
    run_length = torch.diff(run_start, append=run_start.new_tensor([batch * n]))
    part_px = torch.bincount(run_bin, weights=run_length.double(), minlength=batch * NUM_PARTS)
    return PartRuns(run_start, run_bin, row_runs, part_px.view(batch, NUM_PARTS), pixel_classes(flat))


def run_sums(values: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """float64 sums of the flat ``values`` over the runs ``[starts[i], starts[i + 1])`` (the last run
    ends at the end)."""
    lengths = torch.diff(starts, append=starts.new_tensor([values.numel()]))
    return torch.segment_reduce(values.reshape(-1).double(), "sum", lengths=lengths)


def sorted_keys(w_unit: torch.Tensor, pixel_class: torch.Tensor) -> torch.Tensor:
    """Row-wise ascending sort of ``key = ((float32 bits of w_unit) << 2 | pixel_class) - 2**31`` (int32).

    ``w_unit`` must lie in [0, 1): its bits are then below 2**30, the unsigned key below 2**32, and
    non-negative float32 values order like their bit patterns; subtracting 2**31 keeps the order in
    int32. The CPU backend sorts row by row with ``numba_cpu.sort_row_keys``."""
    keys = ((w_unit.contiguous().view(torch.int32).long() << 2) | pixel_class.long()) - KEY_OFFSET
    return torch.sort(keys.int(), dim=1).values


def class_steps(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(row, col)`` of the sorted neighbours ``col, col + 1`` with equal values and different classes:
    their keys differ in the class bits only (key XOR key in 1..3)."""
    differ = torch.bitwise_xor(keys[:, 1:], keys[:, :-1])
    return (differ.sub_(2).abs_() <= 1).nonzero(as_tuple=True)


def value_key(value: torch.Tensor) -> torch.Tensor:
    """The smallest key of a float32 value in [0, 1) (class 0)."""
    return ((value.float().contiguous().view(torch.int32).long() << 2) - KEY_OFFSET).int()


# Each pixel class as one float64 holding its membership of box, structure and finder in 11-bit fields:
# a block's sums of these values (and of offset x value) hold every region's count (offset sum) exactly.
_FIELD_BITS = 11
_FIELD = {region: i for i, region in enumerate(NESTED)}
_PACKED_CLASS = torch.tensor([sum(2 ** (_FIELD_BITS * _FIELD[r]) for r in NESTED if c >= MIN_CLASS[r])
                              for c in range(len(NESTED) + 1)], dtype=torch.float64)


def _block_weights(block: int, device: torch.device) -> torch.Tensor:
    """(block, 2) float64: a block's packed classes times these give its count and offset sums."""
    offsets = torch.arange(block, device=device, dtype=torch.float64)
    return torch.stack([torch.ones_like(offsets), offsets], 1)


def _block_sums(keys: torch.Tensor, block: int) -> torch.Tensor:
    """(B, n / block, 2) float64 sums over each block of sorted keys of the packed class and of offset x
    packed class."""
    packed = _PACKED_CLASS.to(keys.device).index_select(0, (keys & CLASS_MASK).view(-1))
    return torch.matmul(packed.view(keys.shape[0], -1, block), _block_weights(block, keys.device))


def row_pass(w: torch.Tensor, w_unit: torch.Tensor, prepared: PreparedParts, top_k: torch.Tensor,
             block: int, scratch=None) -> RowStats:
    """``RowStats`` of the (B, n) map ``w`` (``w_unit``: the same map scaled into [0, 1); ``top_k`` (B,
    R): the rank regions' pixel counts); the distance-weighted sums are float32 sums over blocks of
    ``block`` pixels, added up in float64."""
    keys = sorted_keys(w_unit, prepared.pixel_class)
    weighted = (w * prepared.distance).view(w.shape[0], -1, block).sum(-1).sum(-1, dtype=torch.float64)
    rank = rank_stats(Ranked(keys, block, _block_sums(keys, block)), top_k)
    return RowStats(rank, run_sums(w, prepared.run_start), weighted)


class Ranked:
    """Pixels of each row in ascending order of saliency, with in-region counts of any prefix (batched
    torch ops: the path of every device but the CPU).

    The sorted row is cut into blocks of ``block`` pixels; one float64 matmul of the packed classes
    gives each block's pixel count and position sum in every region (exact integers), their cumulative
    sums give the counts up to every block start, and a query reads the rest inside its block."""

    def __init__(self, keys: torch.Tensor, block: int, sums: torch.Tensor):
        """``keys`` from ``sorted_keys``, ``sums`` (B, n / block, 2) from ``_block_sums``."""
        self.keys = keys  # int32, see sorted_keys
        self.batch, self.n = keys.shape
        self.block = block
        self.blocks = keys.view(self.batch, self.n // block, block)
        sums = sums.long()
        starts = torch.arange(0, self.n, block, device=keys.device)
        self.before_block: dict[str, torch.Tensor] = {}
        self.position_sum: dict[str, torch.Tensor] = {}
        for region, field in _FIELD.items():
            per_block = (sums >> (_FIELD_BITS * field)) & ((1 << _FIELD_BITS) - 1)
            counts, offset_sums = per_block[..., 0], per_block[..., 1]
            self.before_block[region] = (torch.cumsum(counts, 1) - counts).double()
            self.position_sum[region] = (counts * starts + offset_sums).sum(1).double()
        self._ties: tuple[torch.Tensor, ...] | None = None  # (row, col, start, end), found when first needed
        self._tie_classes: tuple[torch.Tensor, torch.Tensor] | None = None

    def counts_below(self, position: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pixels of every region among the sorted positions [0, position) (float64, shape of position)."""
        index = position.clamp(max=self.n - 1) // self.block
        inside = position - index * self.block  # pixels of the block before the position (<= block)
        rows = torch.arange(self.batch, device=position.device)[:, None]
        offsets = torch.arange(self.block, device=position.device)
        in_block = self.blocks[rows, index] & CLASS_MASK  # (B, Q, block) classes
        block_class = torch.where(offsets < inside[..., None], in_block, -1)
        at_least = {region: torch.gather(self.before_block[region], 1, index) + (block_class >= least).sum(-1)
                    for region, least in MIN_CLASS.items()}
        return region_counts(position, at_least)

    def first_at_least(self, key: torch.Tensor) -> torch.Tensor:
        """First sorted position whose value is >= the value of ``key`` (a key with class 0)."""
        return torch.searchsorted(self.keys, key.contiguous(), side="left")

    def first_above(self, key: torch.Tensor) -> torch.Tensor:
        """First sorted position whose value is > the value of ``key`` (a key with class 0)."""
        return torch.searchsorted(self.keys, (key + 3).contiguous(), side="right")

    def keys_at(self, position: torch.Tensor) -> torch.Tensor:
        """Keys at sorted positions with the class bits cleared."""
        return torch.gather(self.keys, 1, position) & -4

    def values_at(self, position: torch.Tensor) -> torch.Tensor:
        """float64 values (of the unit-scaled map) at sorted positions."""
        bits = ((torch.gather(self.keys, 1, position).long() + KEY_OFFSET) >> 2).int()
        return bits.view(torch.float32).double()

    def mixed_run_pairs(self, first_class: int) -> torch.Tensor:
        """Per row, sum over runs of equal values of (#pixels of class < first_class) x (#pixels of
        class >= first_class) in the run: the tied pairs between a region and its complement.

        Within a run the keys are ordered by class, so a mixed run has exactly one boundary j where
        class(j-1) < first_class <= class(j); j - start and end - j are the two counts."""
        if self._ties is None:
            row, col = class_steps(self.keys)
            self._ties = (row, col, *self._run_extents(row, col + 1))
        row, col, start, end = self._ties
        if self._tie_classes is None:
            self._tie_classes = (self.keys[row, col] & CLASS_MASK, self.keys[row, col + 1] & CLASS_MASK)
        prev_class, next_class = self._tie_classes
        at = (prev_class < first_class) & (next_class >= first_class)
        j = col[at] + 1
        pairs = torch.zeros(self.batch, dtype=torch.float64, device=self.keys.device)
        return pairs.index_add_(0, row[at], ((j - start[at]) * (end[at] - j)).double())

    def _run_extents(self, row: torch.Tensor, position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(start, end)``: the sorted positions ``[start, end)`` of the run of values equal to the
        value at ``(row, position)`` (one batched search, each row's queries padded to the longest)."""
        if len(row) == 0:
            return row, row
        counts = torch.bincount(row, minlength=self.batch)
        slot = torch.arange(len(row), device=row.device) - (torch.cumsum(counts, 0) - counts)[row]
        queries = torch.zeros(self.batch, int(counts.max()), dtype=torch.int32, device=row.device)
        queries[row, slot] = self.keys[row, position] & -4
        return self.first_at_least(queries)[row, slot], self.first_above(queries)[row, slot]


def rank_stats(ranked: Ranked, top_k: torch.Tensor) -> RankStats:
    """``RankStats`` of a batch (``cpu_kernels.rank_stats`` does the same for one row on the CPU)."""
    batch, n = ranked.batch, ranked.n
    # The paper's AUCs: thresholds = linear-interpolated quantiles (np.quantile's default); a pixel is
    # kept when its float32 value is >= the threshold, i.e. >= the smallest float32 >= it.
    q, low = quantile_positions(n, ranked.keys.device)
    high = torch.clamp(low + 1, max=n - 1)
    v_low, v_high = ranked.values_at(low.expand(batch, -1)), ranked.values_at(high.expand(batch, -1))
    tau = v_low + (v_high - v_low) * (q - low)
    tau32 = tau.float()
    tau32 = torch.where(tau32.double() < tau, torch.nextafter(tau32, torch.full_like(tau32, float("inf"))),
                        tau32)
    kept_from = ranked.first_at_least(value_key(tau32))
    # The run of values tied at the cut of the |M| highest pixels of each rank region.
    cut = ranked.keys_at((n - top_k).clamp(0, n - 1))
    # The run of values tied at the maximum.
    last = torch.full((batch, 1), n - 1, device=ranked.keys.device)
    top_from = ranked.first_at_least(ranked.keys_at(last))
    groups = {"auc_kept": kept_from, "cut_first": ranked.first_at_least(cut),
              "cut_end": ranked.first_above(cut), "top": top_from}
    positions = torch.cat([groups[name] for name in query_offsets(top_k.shape[1])], 1)
    position_sum = {r: ranked.position_sum[r] for r in ROC_REGIONS}
    tied_pairs = {r: ranked.mixed_run_pairs(MIN_CLASS[r]) for r in ROC_REGIONS}
    return RankStats.from_queries(positions, ranked.counts_below(positions), position_sum, tied_pairs,
                                  top_k.shape[1])


