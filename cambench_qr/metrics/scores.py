"""Structure scores of saliency maps against part-label maps: one batched pass, any device.

``structure_scores`` checks the inputs (``metrics.inputs``), prepares the part maps (``metrics.prepared``)
chunk by chunk, runs the backend of the device (``metrics.backends``) and turns its named results into
scores with the formula layer (``metrics.formulas``, where each score's formula and direction is).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cambench_qr.maps import sum_normalize
from cambench_qr.metrics import _rows, backends, formulas
from cambench_qr.metrics._rows import Scratch, map_row_chunks
from cambench_qr.metrics.backends.contract import block_length
from cambench_qr.metrics.formulas import AUC_REGION, SCORE_NAMES, SCORES, nan_where
from cambench_qr.metrics.inputs import check_module_px, check_options, check_parts, check_saliency
from cambench_qr.metrics.prepared import PreparedParts, prepare_checked
from cambench_qr.metrics.regions import POINTING_REGIONS, RANK_REGIONS, REGION_NAMES, ROC_REGIONS, region_sums
from cambench_qr.parts import NUM_PARTS

__all__ = ["SCORES", "SCORE_NAMES", "normalized_mass", "scores_to_lists", "structure_scores"]
CHUNK_ROWS = 128  # most maps per chunk: chunks run on torch.get_num_threads() threads, memory stays bounded
_MAGNITUDE = 2.0**100  # maps whose maximum lies outside [1/_MAGNITUDE, _MAGNITUDE] are refused


def _scored_map(flat: torch.Tensor, normalize: str, signed: bool, first_index: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w, w_max)``: the scored map (B, n) and its row maxima; a ValueError names a bad sample (rows
    are numbered from ``first_index``; the options were checked by the caller)."""
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
    A map with zero total mass (all zero, or constant under min-max) is invalid: its ``p`` is NaN."""
    check_options(normalize=normalize, signed=signed)
    sal = check_saliency(saliency)
    w, _ = _scored_map(sal.flatten(1), normalize, signed)
    return sum_normalize(w.view(sal.shape)), w.sum(1, dtype=torch.float64) > 0


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


def structure_scores(saliency, parts, *, module_px=None, normalize: str = "sum",
                     mask_mode: str | None = None, signed: bool = False,
                     pointing_tolerance: float | None = None) -> dict[str, torch.Tensor]:
    """All structure scores of a batch, each a (B,) float64 tensor on the inputs' device.

    Args:
        saliency: (B, H, W) float maps (float16/bfloat16/float32/float64 tensor or array, or a list of
            (H, W) maps of one size; see ``metrics.inputs``), non-negative unless ``signed=True``.
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
    given = {"module_px": module_px, "mask_mode": mask_mode, "pointing_tolerance": pointing_tolerance}
    mask_mode = "standard" if mask_mode is None else mask_mode
    pointing_tolerance = 0.0 if pointing_tolerance is None else pointing_tolerance
    check_options(normalize=normalize, signed=signed, mask_mode=mask_mode,
                  pointing_tolerance=pointing_tolerance)
    if isinstance(parts, PreparedParts):
        if any(v is not None for v in given.values()):
            raise ValueError(f"give {[k for k, v in given.items() if v is not None]} to prepare_parts, "
                             f"not with prepared parts")
        prepared, shape, device = parts, parts.shape, parts.pixel_class.device
    else:  # validated whole (errors name the sample), prepared chunk by chunk beside the scoring
        prt = check_parts(parts)
        px = check_module_px(module_px, prt.shape[0], prt.device)
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
    empty = {r: a == 0 for r, a in area_px.items()}

    # One pass of the backend: part-run sums, distance-weighted sums and the rank statistics of one sort
    # of (value, pixel class) keys. Among equal values the class order never matters: every rank score
    # treats a run of equal values as one group.
    w_unit = _key_ready(w, w_max, scratch)
    k = torch.stack([area_px[r].long() for r in RANK_REGIONS], 1)  # |M| of each rank region
    stats = backends.for_device(w.device).row_pass(w, w_unit, prepared, k, block_length(n), scratch)
    rank = stats.rank

    # Mass per part id: float64 sums over the runs of equal part ids, added up per (sample, id).
    part_mass = torch.bincount(prepared.run_bin, weights=stats.part_run_sums,
                               minlength=batch * NUM_PARTS).view(batch, NUM_PARTS)
    total = part_mass.sum(1)  # sum(w)
    valid = total > 0
    total = torch.where(valid, total, 1)
    part_mass = part_mass / total[:, None]
    paper_timing = prepared.paper_timing  # paper mode: the timing mass is summed over the paper's mask
    timing = None if paper_timing is None else (w * paper_timing).sum(1).double() / total
    region_mass = region_sums(part_mass, 1, timing)
    out, chance = formulas.mass_scores(part_mass, prepared.part_px / n, region_mass, area, empty)

    for score, r in AUC_REGION.items():
        out[score], chance[score] = formulas.coverage_auc(rank.auc_kept, n, area_px, r,
                                                          empty["box" if score == "auc_bg" else r])
    for i, r in enumerate(RANK_REGIONS):
        out[f"rank_{r}"], chance[f"rank_{r}"] = formulas.rank_accuracy(
            rank.cut_first, rank.cut_end, i, k[:, i], n, area_px[r], r)
    for r in ROC_REGIONS:
        out[f"roc_auc_{r}"], chance[f"roc_auc_{r}"] = formulas.roc_auc(
            rank.position_sum[r], rank.tied_pairs[r], area_px[r], n)

    # Pointing: the pixels at the maximum are the run from rank.top; with a tolerance, the widened
    # regions are counted on the map itself.
    at_max = (n - rank.top.at[:, 0]).double()
    top = w_unit == w_unit.amax(1, keepdim=True) if prepared.near else None  # pixels at the maximum
    for r in POINTING_REGIONS:
        if top is None:
            hits, near_px = area_px[r] - rank.top.below[r][:, 0], area_px[r]
        else:
            near = prepared.near[r]
            hits, near_px = (top & near).sum(1).double(), near.sum(1).double()
        out[f"pointing_{r}"], chance[f"pointing_{r}"] = formulas.pointing(hits, at_max, near_px, n, empty[r])

    distance, chance_distance = formulas.distance_to_structure(
        stats.weighted_distance, total, prepared.mean_distance, height, width, prepared.module_px,
        empty["structure"])
    out.update(distance)
    chance.update(chance_distance)

    values = torch.stack([out[name] for name in SCORE_NAMES] + [chance[name] for name in SCORE_NAMES])
    names = [*SCORE_NAMES, *(f"chance_{name}" for name in SCORE_NAMES)]
    result = dict(zip(names, nan_where(values, ~valid).unbind(0), strict=True))  # (rows: contiguous)
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
