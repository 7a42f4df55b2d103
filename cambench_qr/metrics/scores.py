"""Structure scores of saliency maps against part-label maps: one batched pass, torch, any device.

Notation per sample: ``S`` the saliency map (H, W), ``n = H * W``, ``M`` a boolean region mask,
``|M|`` its pixel count, ``w`` the scored map (``S``, or ``ReLU(S)`` when ``signed=True``, then min-max
scaled when ``normalize="minmax"``) and ``p = w / sum(w)`` the saliency as a probability mass.
Every score is a (B,) tensor; each one's formula and direction is in ``SCORES``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from cambench_qr.metrics.edt import distance_to
from cambench_qr.metrics.masks import region_masks
from cambench_qr.parts import NUM_PARTS, PART_NAMES

NORMALIZATIONS = ("sum", "minmax")
REGION_NAMES = ("finder", "timing", "structure", "box", "outside")
AUC_QUANTILES = torch.linspace(0.0, 0.99, 31, dtype=torch.float64)  # the paper's 31 thresholds

# name -> (formula, direction). "higher"/"lower" is better; "-" is descriptive.
SCORES: dict[str, tuple[str, str]] = {
    **{f"mass_{name}": (f"sum(p over part {i} '{name}')", "-") for i, name in enumerate(PART_NAMES)},
    **{f"mass_{r}": (f"sum(p over region {r})", "-") for r in REGION_NAMES},
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
_POINTING_REGIONS = ("finder", "box")

# Four disjoint pixel classes carried through the sort as 2 low bits of the key.
_OUTSIDE, _BOX_OTHER, _TIMING, _FINDER = range(4)


def _as_batch(saliency, parts) -> tuple[torch.Tensor, torch.Tensor]:
    sal = torch.as_tensor(saliency)
    prt = torch.as_tensor(parts, device=sal.device)
    if sal.ndim != 3 or prt.shape != sal.shape:
        raise ValueError(f"saliency and parts must both be (B, H, W) of one shape; got saliency "
                         f"{tuple(sal.shape)} and parts {tuple(prt.shape)}")
    if not sal.is_floating_point():
        raise ValueError(f"saliency must be a float tensor, got {sal.dtype}")
    if prt.is_floating_point() or prt.is_complex() or prt.dtype == torch.bool:
        raise ValueError(f"parts must be an integer tensor of part ids 0..{NUM_PARTS - 1}, got {prt.dtype}")
    bad = ((prt < 0) | (prt >= NUM_PARTS)).flatten(1).any(1)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"parts sample {i} holds id {int(prt[i][(prt[i] < 0) | (prt[i] >= NUM_PARTS)][0])}; "
                         f"part ids are 0..{NUM_PARTS - 1}")
    bad = ~torch.isfinite(sal).flatten(1).all(1)
    if bad.any():
        raise ValueError(f"saliency sample {int(bad.nonzero()[0])} holds non-finite values (NaN or inf)")
    return sal.float(), prt.to(torch.uint8)


def _module_px(module_px, batch: int, device: torch.device) -> torch.Tensor:
    if module_px is None:
        return torch.full((batch,), float("nan"), dtype=torch.float64, device=device)
    px = torch.as_tensor(module_px, dtype=torch.float64, device=device).reshape(-1)
    if px.numel() == 1:
        px = px.expand(batch)
    if px.numel() != batch or not bool((torch.isfinite(px) & (px > 0)).all()):
        raise ValueError(f"module_px must be one positive number or {batch} positive numbers (one per "
                         f"sample), got {module_px!r}")
    return px


def normalized_mass(saliency: torch.Tensor, normalize: str = "sum", signed: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(p, valid)``: the map as a probability mass ``p = w / sum(w)`` (B, H, W) and a (B,) mask of
    samples where it exists. ``w = S`` (``signed=False``: a negative value is an error) or ``ReLU(S)``
    (``signed=True``), then ``(w - min) / (max - min)`` for ``normalize="minmax"`` (the paper's scaling).
    A map with zero total mass (all zero, or constant under min-max) is invalid: its scores are NaN."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    flat = saliency.flatten(1)
    if signed:
        flat = flat.clamp_min(0)
    else:
        negative = (flat < 0).any(1)
        if negative.any():
            i = int(negative.nonzero()[0])
            raise ValueError(f"saliency sample {i} has negative values (min {float(flat[i].min()):.3g}); "
                             f"pass signed=True to score its positive part (ReLU)")
    if normalize == "minmax":
        lo = flat.amin(1, keepdim=True)
        flat = (flat - lo) / (flat.amax(1, keepdim=True) - lo)
    total = flat.sum(1, keepdim=True)
    valid = (total[:, 0] > 0) & torch.isfinite(total[:, 0])
    p = torch.where(valid[:, None], flat / total, torch.zeros_like(flat))
    return p.view_as(saliency), valid


def _nan_where(x: torch.Tensor, invalid: torch.Tensor) -> torch.Tensor:
    return torch.where(invalid, torch.full_like(x, float("nan")), x)


def _sorted_keys(keys: torch.Tensor) -> torch.Tensor:
    """Row-wise ascending sort of non-negative int64 keys below 2**32. On the CPU numpy's SIMD sort of
    uint32 is several times faster than torch.sort; on an accelerator torch.sort is used."""
    if keys.device.type == "cpu":
        return torch.from_numpy(np.sort(keys.numpy().astype(np.uint32), axis=1).astype(np.int64))
    return torch.sort(keys, dim=1).values


def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return torch.gather(x, 1, index)


def structure_scores(saliency, parts, *, module_px=None, normalize: str = "sum",
                     mask_mode: str = "standard", signed: bool = False,
                     pointing_tolerance: float = 0.0) -> dict[str, torch.Tensor]:
    """All structure scores of a batch, each a (B,) float64 tensor on the inputs' device.

    Args:
        saliency: (B, H, W) float maps (tensor or array), non-negative unless ``signed=True``.
        parts: (B, H, W) integer part-label maps (ids 0..9, ``cambench_qr.parts``), same shape.
        module_px: module pitch in pixels, one number or one per sample; gives ``dts_modules`` (NaN
            without it) and, in paper mode, the reach of the timing end modules.
        normalize: ``"sum"`` (p = w / sum w) or ``"minmax"`` (the paper: min-max first).
        mask_mode: ``"standard"`` (timing = part 4) or ``"paper"`` (the paper's timing mask).
        signed: score the positive part of a signed map instead of rejecting negative values.
        pointing_tolerance: a pointing hit may miss the mask by up to this many pixels (Euclidean).

    Returns ``SCORES`` keys, ``chance_<score>`` for each (the value a uniform map gets on the same
    masks), ``valid`` (bool: the map has positive mass) and ``area_<region>`` (pixel fractions).
    Scores of an invalid map, and region scores whose region is empty, are NaN (count them, never
    average them as numbers). Ties are shared: pointing and rank accuracy give the expected value under
    a uniformly random tie break, ROC-AUC counts ties as one half (as sklearn does).
    """
    sal, prt = _as_batch(saliency, parts)
    if pointing_tolerance < 0:
        raise ValueError(f"pointing_tolerance must be >= 0 pixels, got {pointing_tolerance}")
    batch, height, width = sal.shape
    n = height * width
    device = sal.device
    px = _module_px(module_px, batch, device)
    p, valid = normalized_mass(sal, normalize, signed)
    masks = region_masks(prt, mask_mode, None if module_px is None else px)
    flat_p = p.flatten(1)
    flat_m = {r: m.flatten(1) for r, m in masks.items()}
    area_px = {r: m.sum(1).to(torch.float64) for r, m in flat_m.items()}
    area = {r: a / n for r, a in area_px.items()}
    out: dict[str, torch.Tensor] = {}
    chance: dict[str, torch.Tensor] = {}

    # Mass per part id and per region (one bincount over (sample, id) pairs).
    offsets = torch.arange(batch, device=device)[:, None] * NUM_PARTS
    ids = (prt.flatten(1).long() + offsets).reshape(-1)
    part_mass = torch.bincount(ids, weights=flat_p.reshape(-1).double(), minlength=batch * NUM_PARTS)
    part_area = torch.bincount(ids, minlength=batch * NUM_PARTS).double() / n
    part_mass, part_area = part_mass.view(batch, NUM_PARTS), part_area.view(batch, NUM_PARTS)
    for i, name in enumerate(PART_NAMES):
        out[f"mass_{name}"], chance[f"mass_{name}"] = part_mass[:, i], part_area[:, i]
    region_mass = {r: (flat_p.double() * m).sum(1) for r, m in flat_m.items()}
    for r in REGION_NAMES:
        out[f"mass_{r}"], chance[f"mass_{r}"] = region_mass[r], area[r]
        out[f"lift_{r}"] = _nan_where(region_mass[r] / area[r], area_px[r] == 0)
        chance[f"lift_{r}"] = _nan_where(torch.ones_like(area[r]), area_px[r] == 0)
    for score, r in _MASS_REGION.items():
        empty = area_px[r] == 0
        value = region_mass["outside"] if score == "bl" else region_mass[r]
        out[score] = _nan_where(value, empty)
        chance[score] = _nan_where(area["outside"] if score == "bl" else area[r], empty)

    # Rank-based scores from one sort of keys = (float32 bits of p << 2) | pixel class. p is in [0, 1],
    # so its bits are below 2**30 and the key below 2**32; among equal p the class order is irrelevant
    # because every rank score below treats a run of equal values as one group.
    pixel_class = torch.full_like(flat_p, _OUTSIDE, dtype=torch.int64)
    pixel_class[flat_m["box"]] = _BOX_OTHER
    pixel_class[flat_m["timing"]] = _TIMING
    pixel_class[flat_m["finder"]] = _FINDER
    keys = _sorted_keys((flat_p.contiguous().view(torch.int32).long() << 2) | pixel_class)
    values = (keys >> 2).to(torch.int32).view(torch.float32)
    cls = keys & 3
    # Exclusive prefix counts of finder / timing / box pixels in sorted order, packed 21 bits each.
    packed = ((cls == _FINDER).long() | ((cls == _TIMING).long() << 21) | ((cls != _OUTSIDE).long() << 42))
    prefix = torch.nn.functional.pad(torch.cumsum(packed, 1), (1, 0))
    field = (1 << 21) - 1

    def count_below(region: str, position: torch.Tensor) -> torch.Tensor:
        """Pixels of region among the sorted positions [0, position)."""
        at = _gather(prefix, position)
        finder, timing, box = at & field, (at >> 21) & field, at >> 42
        return {"finder": finder, "timing": timing, "structure": finder + timing, "box": box,
                "outside": position - box}[region].double()

    positions = torch.arange(n, device=device).expand(batch, n)
    start_flag = torch.ones_like(values, dtype=torch.bool)
    start_flag[:, 1:] = values[:, 1:] != values[:, :-1]
    run_start = torch.cummax(torch.where(start_flag, positions, 0), 1).values  # first index of each run

    def first_at_least(threshold: torch.Tensor) -> torch.Tensor:
        return torch.searchsorted(values, threshold.float().contiguous(), side="left")

    def first_above(threshold: torch.Tensor) -> torch.Tensor:
        return torch.searchsorted(values, threshold.float().contiguous(), side="right")

    # The paper's AUCs: thresholds = linear-interpolated quantiles of p (np.quantile's default).
    q = AUC_QUANTILES.to(device) * (n - 1)
    lo, frac = q.floor().long(), q - q.floor()
    hi = torch.clamp(lo + 1, max=n - 1)
    v_lo, v_hi = values[:, lo].double(), values[:, hi].double()
    tau = v_lo + (v_hi - v_lo) * frac
    kept_from = first_at_least(tau)
    kept = (n - kept_from).double()
    for score, r in _AUC_REGION.items():
        inside = area_px[r][:, None] - count_below(r, kept_from)
        empty = area_px["box" if score == "auc_bg" else r] == 0
        out[score] = _nan_where((inside / kept).mean(1), empty)
        chance[score] = _nan_where(area[r], empty)

    # Relevance-rank accuracy: share of the |M| highest pixels inside M; the run of values tied at the
    # cut contributes its in-mask share of the places left.
    for r in _RANK_REGIONS:
        k = area_px[r].long()
        empty = k == 0
        cut_value = _gather(values, (n - k).clamp(0, n - 1)[:, None])
        run_lo, run_hi = first_at_least(cut_value), first_above(cut_value)
        above = (n - run_hi[:, 0]).double()
        inside_above = area_px[r] - count_below(r, run_hi)[:, 0]
        run_len = (run_hi - run_lo)[:, 0].double()
        inside_run = (count_below(r, run_hi) - count_below(r, run_lo))[:, 0]
        hits = inside_above + (k.double() - above) * inside_run / run_len
        out[f"rank_{r}"] = _nan_where(hits / k.double(), empty)
        chance[f"rank_{r}"] = _nan_where(area[r], empty)

    # ROC-AUC (Mann-Whitney U with mid-ranks): (sum of mid-ranks in M - |M|(|M|+1)/2) / (|M| |not M|).
    next_start = torch.full_like(positions, n)
    next_start[:, :-1] = torch.where(start_flag[:, 1:], positions[:, 1:], n)
    next_start = torch.flip(torch.cummin(torch.flip(next_start, [1]), 1).values, [1])
    mid_rank = (run_start + next_start + 1).double() / 2
    for r in _ROC_REGIONS:
        n_pos = area_px[r]
        n_neg = n - n_pos
        in_region = {"structure": (cls == _FINDER) | (cls == _TIMING), "box": cls != _OUTSIDE}[r]
        rank_sum = (mid_rank * in_region).sum(1)
        degenerate = (n_pos == 0) | (n_neg == 0)
        out[f"roc_auc_{r}"] = _nan_where((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg), degenerate)
        chance[f"roc_auc_{r}"] = _nan_where(torch.full_like(n_pos, 0.5), degenerate)

    # Pointing game: share of the pixels at the maximum that lie within the tolerance of M.
    top = flat_p == values[:, -1:]
    n_top = top.sum(1).double()
    for r in _POINTING_REGIONS:
        near = (flat_m[r] if pointing_tolerance == 0
                else distance_to(masks[r]).flatten(1) <= pointing_tolerance)
        empty = area_px[r] == 0
        out[f"pointing_{r}"] = _nan_where((top & near).sum(1).double() / n_top, empty)
        chance[f"pointing_{r}"] = _nan_where(near.sum(1).double() / n, empty)

    # Distance to structure: exact EDT, saliency-weighted, over the diagonal and in module pitches.
    dist = distance_to(masks["structure"]).flatten(1).double()
    no_structure = area_px["structure"] == 0
    dist = torch.where(no_structure[:, None], torch.zeros_like(dist), dist)
    mean_dist = (flat_p.double() * dist).sum(1)
    chance_dist = dist.mean(1)
    diagonal = float(np.hypot(height, width))
    out["dts"] = _nan_where(mean_dist / diagonal, no_structure)
    chance["dts"] = _nan_where(chance_dist / diagonal, no_structure)
    out["dts_modules"] = _nan_where(mean_dist / px, no_structure)
    chance["dts_modules"] = _nan_where(chance_dist / px, no_structure)

    result = {name: _nan_where(out[name], ~valid) for name in SCORE_NAMES}
    result.update({f"chance_{name}": chance[name] for name in SCORE_NAMES})
    result.update({f"area_{r}": area[r] for r in REGION_NAMES})
    result["valid"] = valid
    return result


def scores_to_lists(scores: dict[str, torch.Tensor], names: Sequence[str] | None = None
                    ) -> dict[str, list]:
    """Per-sample scores as plain Python lists (NaN kept), e.g. for a parquet column or JSON."""
    return {k: v.tolist() for k, v in scores.items() if names is None or k in names}
