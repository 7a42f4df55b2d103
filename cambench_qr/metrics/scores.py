"""Structure scores of saliency maps against part-label maps: one batched pass, torch, any device.

Notation per sample: ``S`` the saliency map (H, W), ``n = H * W``, ``M`` a boolean region mask,
``|M|`` its pixel count, ``w`` the scored map (``S``, or ``ReLU(S)`` when ``signed=True``, then min-max
scaled when ``normalize="minmax"``) and ``p = w / sum(w)`` the saliency as a probability mass.
Every score is a (B,) tensor; each one's formula and direction is in ``SCORES``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cambench_qr.metrics import _rows, cpu_kernels
from cambench_qr.metrics._rows import Scratch, map_row_chunks
from cambench_qr.metrics.cpu_kernels import KEY_OFFSET
from cambench_qr.metrics.inputs import check_options, check_saliency
from cambench_qr.metrics.prepared import (
    MIN_CLASS,
    POINTING_REGIONS,
    REGION_NAMES,
    PreparedParts,
    check_prepare_args,
    prepare_checked,
    run_sums,
)
from cambench_qr.parts import NUM_PARTS, PART_NAMES, REGIONS

CHUNK_ROWS = 128  # most maps per chunk: chunks run on torch.get_num_threads() threads, memory stays bounded
AUC_QUANTILES = torch.linspace(0.0, 0.99, 31, dtype=torch.float64)  # the paper's 31 thresholds

# name -> (formula, direction). "higher"/"lower" is better; "-" is descriptive.
SCORES: dict[str, tuple[str, str]] = {
    **{f"mass_{name}": (f"sum(p over part {i} '{name}')", "-") for i, name in enumerate(PART_NAMES)},
    **{f"mass_{r}": (f"sum(p over region {r})", "-") for r in REGION_NAMES},  # finder, timing: the regions
    **{f"lift_{r}": (f"mass_{r} / area_{r} (uniform map = 1)", "higher" if r != "outside" else "lower")
       for r in REGION_NAMES},
    "fmr": ("finder mass ratio sum(p * M_finder)", "higher"),
    "tmr": ("timing mass ratio sum(p * M_timing)", "higher"),
    "bl": ("background leakage sum(p * (1 - M_box)) = 1 - mass_box", "lower"),
    "auc_misf": ("mean over 31 quantile thresholds t_j of |{S>=t_j} & M_finder| / |{S>=t_j}|", "higher"),
    "auc_mist": ("mean over 31 quantile thresholds t_j of |{S>=t_j} & M_timing| / |{S>=t_j}|", "higher"),
    "auc_bg": ("mean over 31 quantile thresholds t_j of |{S>=t_j} & M_outside| / |{S>=t_j}|", "lower"),
    "dts": ("sum(p * d_structure) / sqrt(H^2 + W^2), d = exact Euclidean distance (px)", "lower"),
    "dts_modules": ("sum(p * d_structure) / module_px", "lower"),
    "pointing_finder": ("share of argmax pixels within pointing_tolerance px of M_finder", "higher"),
    "pointing_box": ("share of argmax pixels within pointing_tolerance px of M_box", "higher"),
    "rank_finder": ("|top-|M| pixels & M| / |M|, M = finder, ties shared", "higher"),
    "rank_structure": ("|top-|M| pixels & M| / |M|, M = structure, ties shared", "higher"),
    "rank_box": ("|top-|M| pixels & M| / |M|, M = box, ties shared", "higher"),
    "roc_auc_structure": ("P(S_x > S_y) + P(S_x = S_y) / 2, x in structure, y outside it", "higher"),
    "roc_auc_box": ("P(S_x > S_y) + P(S_x = S_y) / 2, x in box, y outside it", "higher"),
}
SCORE_NAMES: tuple[str, ...] = tuple(SCORES)

# Each region-based score is NaN where the region it asks about is empty (e.g. a negative image).
_MASS_REGION = {"fmr": "finder", "tmr": "timing", "bl": "box"}
_AUC_REGION = {"auc_misf": "finder", "auc_mist": "timing", "auc_bg": "outside"}
_RANK_REGIONS = ("finder", "structure", "box")
_ROC_REGIONS = ("structure", "box")
# The four pixel classes (``prepared.MIN_CLASS``) ride through the sort as the 2 low bits of each key.


_MAGNITUDE = 2.0**100  # maps whose maximum lies outside [1/_MAGNITUDE, _MAGNITUDE] are refused


def _scored_map(flat: torch.Tensor, normalize: str, signed: bool, first_index: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w, w_max)``: the scored map (B, n) and its row maxima; a ValueError names a bad sample (rows
    are numbered from ``first_index``)."""
    check_options(normalize=normalize, signed=signed)
    if _rows.numpy_kernels(flat.device) and not flat.requires_grad:  # both propagate NaN; numpy's are faster
        lo, hi = torch.from_numpy(flat.numpy().min(1)), torch.from_numpy(flat.numpy().max(1))
    else:
        lo, hi = flat.amin(1), flat.amax(1)
    bad = ~(torch.isfinite(lo) & torch.isfinite(hi))
    if bad.any():
        raise ValueError(f"saliency sample {first_index + int(bad.nonzero()[0])} holds non-finite values "
                         f"(NaN or inf)")
    if signed:
        flat, lo, hi = flat.clamp_min(0), lo.clamp_min(0), hi.clamp_min(0)
    elif (lo < 0).any():
        i = int((lo < 0).nonzero()[0])
        raise ValueError(f"saliency sample {first_index + i} has negative values (min {float(lo[i]):.3g}); "
                         f"pass signed=True to score its positive part (ReLU)")
    if normalize == "minmax":
        span = hi - lo
        flat = (flat - lo[:, None]) / torch.where(span > 0, span, 1)[:, None]
        hi = (span > 0).float()
    extreme = (hi > _MAGNITUDE) | ((hi > 0) & (hi < 1 / _MAGNITUDE))
    if extreme.any():
        i = int(extreme.nonzero()[0])
        raise ValueError(f"saliency sample {first_index + i} peaks at {float(hi[i]):.3g}, outside "
                         f"[2**-100, 2**100]; rescale it (every score is invariant to a positive scale)")
    return flat, hi


def normalized_mass(saliency, normalize: str = "sum", signed: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(p, valid)``: the map as a probability mass ``p = w / sum(w)`` (B, H, W) and a (B,) mask of
    samples where it exists. ``w = S`` (``signed=False``: a negative value is an error) or ``ReLU(S)``
    (``signed=True``), then ``(w - min) / (max - min)`` for ``normalize="minmax"`` (the paper's scaling).
    A map with zero total mass (all zero, or constant under min-max) is invalid: its scores are NaN."""
    sal = check_saliency(saliency)
    w, _ = _scored_map(sal.flatten(1), normalize, signed)
    total = w.sum(1, dtype=torch.float64)
    valid = total > 0
    p = w / torch.where(valid, total, 1).float()[:, None]
    return p.view(sal.shape), valid


def _nan_where(x: torch.Tensor, invalid: torch.Tensor) -> torch.Tensor:
    return torch.where(invalid, torch.full_like(x, float("nan")), x)


def sorted_keys(w_unit: torch.Tensor, pixel_class: torch.Tensor) -> torch.Tensor:
    """Row-wise ascending sort of ``key = ((float32 bits of w_unit) << 2 | pixel_class) - 2**31`` (int32).

    ``w_unit`` must lie in [0, 1): its bits are then below 2**30, the unsigned key below 2**32, and
    non-negative float32 values order like their bit patterns; subtracting 2**31 keeps the order in
    int32. In torch; the CPU path sorts row by row with ``sort_row_keys``."""
    keys = ((w_unit.contiguous().view(torch.int32).long() << 2) | pixel_class.long()) - KEY_OFFSET
    return torch.sort(keys.int(), dim=1).values


def sort_row_keys(bits: np.ndarray, classes: np.ndarray, out: np.ndarray) -> None:
    """``sorted_keys`` of one row on the CPU: uint32 ``bits`` and uint8 ``classes`` into the uint32 row
    ``out`` (u XOR 2**31 = u - 2**31 read as int32), sorted by numpy (a SIMD sort, several times faster
    than torch.sort)."""
    cpu_kernels.row_keys(bits, classes, out)
    out.view(np.int32).sort()


def class_steps(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(row, col)`` of the sorted neighbours ``col, col + 1`` with equal values and different classes:
    their keys differ in the class bits only (key XOR key in 1..3)."""
    differ = torch.bitwise_xor(keys[:, 1:], keys[:, :-1])
    return (differ.sub_(2).abs_() <= 1).nonzero(as_tuple=True)


def value_key(value: torch.Tensor) -> torch.Tensor:
    """The smallest key of a float32 value in [0, 1) (class 0)."""
    return ((value.float().contiguous().view(torch.int32).long() << 2) - KEY_OFFSET).int()


def _unit_scale(w: torch.Tensor, w_max: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``w * 2**-e`` with ``w_max = m * 2**e``, ``m`` in [0.5, 1): exact, order-preserving, into [0, 1)."""
    scale = torch.pow(2.0, -torch.frexp(w_max).exponent.double()).float()
    return torch.mul(w, scale[:, None], out=out)


def _key_ready(w: torch.Tensor, w_max: torch.Tensor, scratch: Scratch) -> torch.Tensor:
    """The map rescaled (exactly, by ``_unit_scale``) into [0, 1) unless every peak already is."""
    if bool((w_max < 1).all()):
        return w
    return _unit_scale(w, w_max, _scratch_like(w, scratch, "w_unit"))


def _scratch_like(x: torch.Tensor, scratch: Scratch, name: str) -> torch.Tensor | None:
    """A tensor of x's shape and dtype in ``scratch`` on the CPU; None (a new tensor) elsewhere."""
    if not _rows.numpy_kernels(x.device):
        return None
    return torch.from_numpy(scratch.get(name, tuple(x.shape), torch.empty(0, dtype=x.dtype).numpy().dtype))


_MAX_BLOCK = 64  # short blocks: cheap queries; a block's counts and offset sums stay below 2**11
# Each pixel class as one float64 holding its membership of box, structure and finder in 11-bit fields:
# a block's sums of these values (and of offset x value) hold every region's count (offset sum) exactly.
_FIELD_BITS = 11
_FIELD = {"box": 0, "structure": 1, "finder": 2}
_PACKED_CLASS = torch.tensor([0, 1, 1 + 2**11, 1 + 2**11 + 2**22], dtype=torch.float64)


def _block_length(n: int) -> int:
    """The largest divisor of n of at most _MAX_BLOCK pixels."""
    return max(d for d in range(1, min(n, _MAX_BLOCK) + 1) if n % d == 0)


def _block_weights(block: int, device: torch.device) -> torch.Tensor:
    """(block, 2) float64: a block's packed classes times these give its count and offset sums."""
    offsets = torch.arange(block, device=device, dtype=torch.float64)
    return torch.stack([torch.ones_like(offsets), offsets], 1)


def _block_sums(keys: torch.Tensor, block: int) -> torch.Tensor:
    """(B, n / block, 2) float64 sums over each block of sorted keys of the packed class and of offset x
    packed class."""
    packed = _PACKED_CLASS.to(keys.device).index_select(0, (keys & 3).view(-1))
    return torch.matmul(packed.view(keys.shape[0], -1, block), _block_weights(block, keys.device))


@dataclass(frozen=True)
class _RankStats:
    """What the rank-based scores read off each row's sorted (value, class) keys: ``positions`` (B, Q)
    int64 sorted positions (Q = 31 + 3 + 3 + 1: the first pixel kept by each AUC threshold; for each
    rank region, the first and then the end of the run of values tied at the cut of its |M| highest
    pixels; the first of the maximum's run), ``below`` the pixels of each region before each of them
    (float64, (B, Q) per region), ``position_sum`` the sum of sorted positions of each ROC region's
    pixels and ``tied_pairs`` its pixels' ties with the complement (pairs of equal values)."""

    positions: torch.Tensor
    below: dict[str, torch.Tensor]
    position_sum: dict[str, torch.Tensor]
    tied_pairs: dict[str, torch.Tensor]


def _quantile_positions(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, low)``: the AUC quantiles as fractional sorted positions ``q * (n - 1)`` (float64) and their
    floors (int64); a threshold interpolates the values at ``low`` and ``min(low + 1, n - 1)``."""
    q = AUC_QUANTILES.to(device) * (n - 1)
    return q, q.floor().long()


def _region_counts(position: torch.Tensor, at_least: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every region's pixels before sorted positions, from the counts of the classes ``>= MIN_CLASS`` of
    finder, structure and box there."""
    counts = {r: at_least[r].double() for r in MIN_CLASS}
    counts["timing"] = counts["structure"] - counts["finder"]
    counts["outside"] = position - counts["box"]
    return counts


def _row_pass(w: torch.Tensor, w_unit: torch.Tensor, prepared: PreparedParts, top_k: torch.Tensor,
              block: int, scratch: Scratch) -> tuple[_RankStats, torch.Tensor, torch.Tensor]:
    """``(stats, run_sums, weighted_distance)``: the rank statistics of ``w_unit`` (``top_k`` (B, 3):
    the rank regions' pixel counts), ``run_sums(w, prepared.run_start)`` and the row sums of
    ``w * distance`` (float32 sums over each block of ``block`` pixels, added up in float64: relative
    error ~1e-9). On the CPU all per-pixel work of a row is done before the next row's (the row stays in
    cache, the row's temporaries are reused, and the other chunk thread runs while this one is in a
    GIL-free pass), elsewhere by whole-batch torch ops."""
    if not _rows.numpy_kernels(w.device):
        keys = sorted_keys(w_unit, prepared.pixel_class)
        weighted = (w * prepared.distance).view(w.shape[0], -1, block).sum(-1).sum(-1, dtype=torch.float64)
        stats = _torch_rank_stats(_Ranked(keys, block, _block_sums(keys, block)), top_k)
        return stats, run_sums(w, prepared.run_start), weighted
    batch, n = w.shape
    values, bits = w.numpy(), w_unit.numpy().view(np.uint32)
    classes = prepared.pixel_class.numpy()
    run_start, row_runs = prepared.run_start.numpy(), prepared.row_runs.numpy()
    distance = prepared.distance.numpy()
    keys = scratch.get("keys", (n,), np.uint32)
    totals = np.empty(len(run_start))
    weighted_blocks = np.empty((batch, n // block), np.float32)
    q, low = (x.numpy() for x in _quantile_positions(n, w.device))
    k = top_k.numpy()
    positions = np.empty((batch, len(q) + 2 * k.shape[1] + 1), np.int64)
    counts = np.empty((*positions.shape, 3), np.int64)  # class >= 1, 2, 3
    sums = np.empty((batch, 4), np.int64)
    for row in range(batch):
        first, last = row_runs[row], row_runs[row + 1]
        runs = run_start[first:last] - row * n
        cpu_kernels.run_sums(values[row], runs, totals[first:last])
        np.einsum("ij,ij->i", values[row].reshape(-1, block), distance[row].reshape(-1, block),
                  out=weighted_blocks[row])
        sort_row_keys(bits[row], classes[row], keys)
        cpu_kernels.rank_stats(keys.view(np.int32), q, low, k[row], positions[row], counts[row], sums[row])
    by_class = sorted(MIN_CLASS, key=MIN_CLASS.get)  # box, structure, finder: class >= 1, 2, 3
    at_least = dict(zip(by_class, torch.from_numpy(counts).unbind(-1), strict=True))
    sums_t = torch.from_numpy(sums).double()  # position sums, then tied pairs, of class >= 1 and >= 2
    stats = _RankStats(torch.from_numpy(positions), _region_counts(torch.from_numpy(positions), at_least),
                       position_sum={r: sums_t[:, MIN_CLASS[r] - 1] for r in _ROC_REGIONS},
                       tied_pairs={r: sums_t[:, MIN_CLASS[r] + 1] for r in _ROC_REGIONS})
    weighted = torch.from_numpy(weighted_blocks.sum(1, dtype=np.float64))
    return stats, torch.from_numpy(totals), weighted


class _Ranked:
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
        in_block = self.blocks[rows, index] & 3  # (B, Q, block) classes
        block_class = torch.where(offsets < inside[..., None], in_block, -1)
        at_least = {region: torch.gather(self.before_block[region], 1, index) + (block_class >= least).sum(-1)
                    for region, least in MIN_CLASS.items()}
        return _region_counts(position, at_least)

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
            self._tie_classes = (self.keys[row, col] & 3, self.keys[row, col + 1] & 3)
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


def _torch_rank_stats(ranked: _Ranked, top_k: torch.Tensor) -> _RankStats:
    """``_RankStats`` of a batch (``cpu_kernels.rank_stats`` does the same for one row on the CPU)."""
    batch, n = ranked.batch, ranked.n
    # The paper's AUCs: thresholds = linear-interpolated quantiles (np.quantile's default); a pixel is
    # kept when its float32 value is >= the threshold, i.e. >= the smallest float32 >= it.
    q, low = _quantile_positions(n, ranked.keys.device)
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
    positions = torch.cat([kept_from, ranked.first_at_least(cut), ranked.first_above(cut), top_from], 1)
    return _RankStats(positions, ranked.counts_below(positions),
                      {r: ranked.position_sum[r] for r in _ROC_REGIONS},
                      {r: ranked.mixed_run_pairs(MIN_CLASS[r]) for r in _ROC_REGIONS})


def structure_scores(saliency, parts, *, module_px=None, normalize: str = "sum",
                     mask_mode: str | None = None, signed: bool = False,
                     pointing_tolerance: float | None = None) -> dict[str, torch.Tensor]:
    """All structure scores of a batch, each a (B,) float64 tensor on the inputs' device.

    Args:
        saliency: (B, H, W) float maps (tensor or array), non-negative unless ``signed=True``.
        parts: (B, H, W) integer part-label maps (ids 0..9, ``cambench_qr.parts``), same shape; or a
            ``PreparedParts`` from ``prepare_parts`` (then module_px, mask_mode and
            pointing_tolerance were given to ``prepare_parts`` and must not be given here).
        module_px: module pitch in pixels, one number or one per sample (NaN where unknown); gives
            ``dts_modules`` (NaN without it) and, in paper mode, the reach of the timing end modules
            (estimated from the finder area where unknown).
        normalize: ``"sum"`` (p = w / sum w) or ``"minmax"`` (the paper: min-max first).
        mask_mode: ``"standard"`` (default; timing = part 4) or ``"paper"`` (the paper's timing mask).
        signed: score the positive part of a signed map instead of rejecting negative values.
        pointing_tolerance: a pointing hit may miss the mask by up to this many pixels (default 0).

    Returns ``SCORES`` keys, ``chance_<score>`` for each (the value a uniform map gets on the same
    masks; NaN wherever the score is, so both average over the same samples), ``valid`` (bool: the map
    has positive mass) and ``area_<region>`` (pixel fractions). Scores of an invalid map, and region
    scores whose region is empty, are NaN (count them, never average them as numbers). ``mass_finder``
    and ``mass_timing`` are the region masses: in paper mode ``mass_timing`` includes the timing lines'
    end modules, which part id 3 (``mass_separator``) also counts. Ties are shared: pointing and rank
    accuracy give the expected value under a uniformly random tie break, ROC-AUC counts a tie as one
    half (as sklearn does).
    """
    check_options(normalize=normalize, signed=signed,
                  mask_mode="standard" if mask_mode is None else mask_mode,
                  pointing_tolerance=0.0 if pointing_tolerance is None else pointing_tolerance)
    if isinstance(parts, PreparedParts):
        given = {"module_px": module_px, "mask_mode": mask_mode, "pointing_tolerance": pointing_tolerance}
        if any(v is not None for v in given.values()):
            raise ValueError(f"give {[k for k, v in given.items() if v is not None]} to prepare_parts, "
                             f"not with prepared parts")
        prepared, shape, device = parts, parts.shape, parts.pixel_class.device
    else:  # validated whole (errors name the sample), prepared chunk by chunk beside the scoring
        mask_mode = "standard" if mask_mode is None else mask_mode
        pointing_tolerance = 0.0 if pointing_tolerance is None else pointing_tolerance
        prt, px = check_prepare_args(parts, mask_mode, module_px, pointing_tolerance)
        prepared, shape, device = None, prt.shape, prt.device
    sal = check_saliency(saliency, shape)
    if sal.device != device:
        raise ValueError(f"saliency is on {sal.device} but the part maps are on {device}")

    def chunk(rows: slice, scratch: Scratch) -> dict[str, torch.Tensor]:
        part = (prepared.rows(rows.start, rows.stop) if prepared is not None else
                prepare_checked(prt[rows], px[rows], mask_mode, pointing_tolerance, scratch))
        return _scores(sal[rows], part, normalize, signed, rows.start, scratch)

    chunks = map_row_chunks(chunk, sal.shape[0], CHUNK_ROWS)
    if len(chunks) == 1:
        return chunks[0]
    return {k: torch.cat([chunk[k] for chunk in chunks]) for k in chunks[0]}


def _scores(sal: torch.Tensor, prepared: PreparedParts, normalize: str, signed: bool, first_index: int = 0,
            scratch: Scratch | None = None) -> dict[str, torch.Tensor]:
    """``structure_scores`` of one chunk of rows, the first being sample ``first_index`` (large
    temporaries in ``scratch`` on the CPU)."""
    scratch = scratch or Scratch()
    batch, height, width = sal.shape
    n = height * width
    w, w_max = _scored_map(sal.view(batch, n), normalize, signed, first_index)
    area_px = prepared.area_px
    area = {r: a / n for r, a in area_px.items()}
    out: dict[str, torch.Tensor] = {}
    chance: dict[str, torch.Tensor] = {}

    # Rank-based scores from one sort of (value, pixel class) keys (see _RankStats). Among equal values
    # the class order never matters: every score below treats a run of equal values as one group.
    w_unit = _key_ready(w, w_max, scratch)
    k = torch.stack([area_px[r].long() for r in _RANK_REGIONS], 1)  # |M| of each rank region
    stats, part_run_sums, weighted_distance = _row_pass(w, w_unit, prepared, k, _block_length(n), scratch)

    # Mass per part id: float64 sums over the runs of equal part ids, added up per (sample, id).
    part_mass = torch.bincount(prepared.run_bin, weights=part_run_sums,
                               minlength=batch * NUM_PARTS).view(batch, NUM_PARTS)
    total = part_mass.sum(1)  # sum(w)
    valid = total > 0
    total = torch.where(valid, total, 1)
    part_mass = part_mass / total[:, None]
    for i, name in enumerate(PART_NAMES):
        out[f"mass_{name}"], chance[f"mass_{name}"] = part_mass[:, i], prepared.part_px[:, i] / n
    region_mass = {r: part_mass[:, list(REGIONS[r])].sum(1) for r in ("finder", "timing", "box")}
    if prepared.mask_mode == "paper":
        region_mass["timing"] = (w * prepared.paper_timing).sum(1).double() / total
    region_mass["structure"] = region_mass["finder"] + region_mass["timing"]
    region_mass["outside"] = 1 - region_mass["box"]
    for r in REGION_NAMES:
        out[f"mass_{r}"], chance[f"mass_{r}"] = region_mass[r], area[r]
        out[f"lift_{r}"] = _nan_where(region_mass[r] / area[r], area_px[r] == 0)
        chance[f"lift_{r}"] = _nan_where(torch.ones_like(area[r]), area_px[r] == 0)
    for score, r in _MASS_REGION.items():
        empty = area_px[r] == 0
        out[score] = _nan_where(region_mass["outside"] if score == "bl" else region_mass[r], empty)
        chance[score] = _nan_where(area["outside"] if score == "bl" else area[r], empty)

    # The sorted positions: the first pixel each AUC threshold keeps; per rank region the run of values
    # tied at the cut, [run_lo, run_hi) (columns in _RANK_REGIONS order); the run of the maximum from
    # top_from. And each region's pixels before each of them.
    parts_at = np.cumsum([0, len(AUC_QUANTILES), len(_RANK_REGIONS), len(_RANK_REGIONS), 1])
    kept_from, run_lo, run_hi, top_from = (stats.positions[:, i:j]
                                           for i, j in zip(parts_at[:-1], parts_at[1:], strict=True))
    below, below_lo, below_hi, below_top = ({r: c[:, i:j] for r, c in stats.below.items()}
                                            for i, j in zip(parts_at[:-1], parts_at[1:], strict=True))

    kept = (n - kept_from).double()
    for score, r in _AUC_REGION.items():
        inside = area_px[r][:, None] - below[r]
        empty = area_px["box" if score == "auc_bg" else r] == 0
        out[score] = _nan_where((inside / kept).mean(1), empty)
        chance[score] = _nan_where(area[r], empty)

    # Relevance-rank accuracy: share of the |M| highest pixels inside M; the run of values tied at the
    # cut fills the places left with its in-mask share.
    for i, r in enumerate(_RANK_REGIONS):
        above = (n - run_hi[:, i]).double()
        inside_run = below_hi[r][:, i] - below_lo[r][:, i]
        hits = ((area_px[r] - below_hi[r][:, i])
                + (k[:, i] - above) * inside_run / (run_hi[:, i] - run_lo[:, i]))
        out[f"rank_{r}"] = _nan_where(hits / area_px[r], area_px[r] == 0)
        chance[f"rank_{r}"] = _nan_where(area[r], area_px[r] == 0)

    # ROC-AUC = Mann-Whitney U / (|M| |not M|), ties counting one half. Ties sort by class, complement
    # first, so sum of M's positions - |M|(|M|-1)/2 counts every tied pair in full; subtract half.
    for r in _ROC_REGIONS:
        n_pos = area_px[r]
        n_neg = n - n_pos
        u_ties_full = stats.position_sum[r] - n_pos * (n_pos - 1) / 2
        u = u_ties_full - stats.tied_pairs[r] / 2
        degenerate = (n_pos == 0) | (n_neg == 0)
        out[f"roc_auc_{r}"] = _nan_where(u / (n_pos * n_neg), degenerate)
        chance[f"roc_auc_{r}"] = _nan_where(torch.full_like(n_pos, 0.5), degenerate)

    # Pointing game: share of the pixels at the maximum that lie within the tolerance of M.
    n_top = (n - top_from[:, 0]).double()
    top = w_unit == w_unit.amax(1, keepdim=True) if prepared.near else None  # pixels at the maximum
    for r in POINTING_REGIONS:
        empty = area_px[r] == 0
        if top is None:
            hits = area_px[r] - below_top[r][:, 0]
            near_px = area_px[r]
        else:
            near = prepared.near[r]
            hits, near_px = (top & near).sum(1).double(), near.sum(1).double()
        out[f"pointing_{r}"] = _nan_where(hits / n_top, empty)
        chance[f"pointing_{r}"] = _nan_where(near_px / n, empty)

    # Distance to structure: exact EDT, saliency-weighted, over the diagonal and in module pitches.
    no_structure = area_px["structure"] == 0
    mean_dist = weighted_distance / total
    chance_dist = prepared.mean_distance
    diagonal = float(np.hypot(height, width))
    out["dts"] = _nan_where(mean_dist / diagonal, no_structure)
    chance["dts"] = _nan_where(chance_dist / diagonal, no_structure)
    out["dts_modules"] = _nan_where(mean_dist / prepared.module_px, no_structure)
    chance["dts_modules"] = _nan_where(chance_dist / prepared.module_px, no_structure)

    values = torch.stack([out[name] for name in SCORE_NAMES] + [chance[name] for name in SCORE_NAMES])
    names = [*SCORE_NAMES, *(f"chance_{name}" for name in SCORE_NAMES)]
    result = dict(zip(names, _nan_where(values, ~valid).unbind(0), strict=True))  # (rows: contiguous)
    result.update({f"area_{r}": area[r] for r in REGION_NAMES})
    result["valid"] = valid
    return result


def scores_to_lists(scores: dict[str, torch.Tensor], names: Sequence[str] | None = None
                    ) -> dict[str, list]:
    """Per-sample scores as plain Python lists (NaN kept), e.g. for a parquet column or JSON."""
    return {k: v.tolist() for k, v in scores.items() if names is None or k in names}


def score_table_markdown() -> str:
    """Every score with its formula and direction, as markdown (for the metric card)."""
    rows = ["| score | formula | better |", "|---|---|---|"]
    for name, (formula, direction) in SCORES.items():
        cell = formula.replace("|", "\\|")
        rows.append(f"| `{name}` | {cell} | {direction if direction != '-' else 'descriptive'} |")
    return "\n".join(rows)
