"""The formula layer: every structure score as a function of named quantities, with its direction.

Notation per sample: ``S`` the saliency map (H, W), ``n = H * W``, ``M`` a boolean region mask
(``metrics.regions``), ``|M|`` its pixel count, ``w`` the scored map (``S``, or ``ReLU(S)`` when
``signed=True``, min-max scaled when ``normalize="minmax"``) and ``p = w / sum(w)`` its probability
mass. The functions take (B,) or (B, k) float64 tensors and return ``(score, chance)``: the score and
the value a uniform map gets on the same masks, both NaN where the region the score asks about is empty.
The per-pixel work behind their inputs (sorting, counting, run sums) is done by ``metrics.backends``.
"""

from __future__ import annotations

import numpy as np
import torch

from cambench_qr.metrics.backends.contract import Positions
from cambench_qr.metrics.regions import REGION_NAMES
from cambench_qr.parts import PART_NAMES

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

MASS_REGION = {"fmr": "finder", "tmr": "timing", "bl": "box"}  # bl is the mass outside the box
AUC_REGION = {"auc_misf": "finder", "auc_mist": "timing", "auc_bg": "outside"}


def nan_where(x: torch.Tensor, invalid: torch.Tensor) -> torch.Tensor:
    """``x`` with NaN where ``invalid``."""
    return torch.where(invalid, torch.full_like(x, float("nan")), x)


def mass_scores(part_mass: torch.Tensor, part_area: torch.Tensor, region_mass: dict[str, torch.Tensor],
                region_area: dict[str, torch.Tensor], empty: dict[str, torch.Tensor]
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Mass and lift, from the masses ``sum(p over M)`` and areas ``|M| / n`` of the parts (B, P) and of
    the regions (``empty[r]``: region r has no pixels):

    - ``mass_<part>``, ``mass_<region>`` = sum(p over it): descriptive; chance = its area;
    - ``lift_<region>`` = mass / area: higher is better (lower for ``outside``); chance = 1;
    - ``fmr`` = mass_finder, ``tmr`` = mass_timing: higher is better; ``bl`` = mass_outside (NaN where
      the box is empty): lower is better; chance = the region's area.
    """
    out, chance = {}, {}
    for i, name in enumerate(PART_NAMES):
        out[f"mass_{name}"], chance[f"mass_{name}"] = part_mass[:, i], part_area[:, i]
    for r in REGION_NAMES:
        out[f"mass_{r}"], chance[f"mass_{r}"] = region_mass[r], region_area[r]
        out[f"lift_{r}"] = nan_where(region_mass[r] / region_area[r], empty[r])
        chance[f"lift_{r}"] = nan_where(torch.ones_like(region_area[r]), empty[r])
    for score, r in MASS_REGION.items():
        region = "outside" if score == "bl" else r
        out[score] = nan_where(region_mass[region], empty[r])
        chance[score] = nan_where(region_area[region], empty[r])
    return out, chance


def coverage_auc(kept: Positions, n: int, area_px: dict[str, torch.Tensor], region: str,
                 empty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's structural-localisation AUC: mean over the 31 quantile thresholds t_j of
    ``|{S >= t_j} & M| / |{S >= t_j}|`` (``kept``: the first sorted position each threshold keeps and
    the region's pixels below it). Higher is better for finder and timing, lower for outside; chance =
    ``|M| / n``."""
    inside = area_px[region][:, None] - kept.below[region]
    share = inside / (n - kept.at).double()
    return nan_where(share.mean(1), empty), nan_where(area_px[region] / n, empty)


def rank_accuracy(cut_first: Positions, cut_end: Positions, column: int, top_k: torch.Tensor, n: int,
                  area_px: torch.Tensor, region: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Relevance-rank accuracy ``|top-|M| pixels & M| / |M|``, the run of values tied at the cut filling
    the places left with its in-mask share (the expected value of a random tie break). ``column``: the
    region's column of ``cut_first``/``cut_end`` (the tied run ``[first, end)``), ``top_k`` = ``|M|``.
    Higher is better; chance = ``|M| / n``."""
    first, end = cut_first.at[:, column], cut_end.at[:, column]
    above = (n - end).double()
    inside_run = cut_end.below[region][:, column] - cut_first.below[region][:, column]
    hits = (area_px - cut_end.below[region][:, column]) + (top_k - above) * inside_run / (end - first)
    empty = area_px == 0
    return nan_where(hits / area_px, empty), nan_where(area_px / n, empty)


def roc_auc(position_sum: torch.Tensor, tied_pairs: torch.Tensor, n_pos: torch.Tensor, n: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """ROC-AUC of the saliency as a detector of M: ``P(S_x > S_y) + P(S_x = S_y) / 2``, x in M, y
    outside, = Mann-Whitney U / (|M| |not M|). Ties sort complement first, so the sum of M's sorted
    positions minus ``|M|(|M|-1)/2`` counts every tied pair in full; half of them are taken off. Higher
    is better; chance = 0.5; NaN where M or its complement is empty."""
    n_neg = n - n_pos
    u = (position_sum - n_pos * (n_pos - 1) / 2) - tied_pairs / 2
    degenerate = (n_pos == 0) | (n_neg == 0)
    return nan_where(u / (n_pos * n_neg), degenerate), nan_where(torch.full_like(n_pos, 0.5), degenerate)


def pointing(hits: torch.Tensor, at_max: torch.Tensor, near_px: torch.Tensor, n: int, empty: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pointing game: the share ``hits / at_max`` of the pixels at the maximum that lie within the
    tolerance of M (the expected hit of a random pick among tied maxima). Higher is better; chance =
    ``near_px / n``, the share of pixels within the tolerance."""
    return nan_where(hits / at_max, empty), nan_where(near_px / n, empty)


def distance_to_structure(weighted_distance: torch.Tensor, total: torch.Tensor, mean_distance: torch.Tensor,
                          height: int, width: int, module_px: torch.Tensor, empty: torch.Tensor
                          ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Distance to structure: ``dts = sum(p * d) / sqrt(H^2 + W^2)`` and ``dts_modules = sum(p * d) /
    module_px``, d the exact Euclidean distance (px) to the structure (``weighted_distance = sum(w * d)``,
    ``total = sum(w)``). Lower is better; chance: the mean distance over the pixels."""
    mean = weighted_distance / total
    diagonal = float(np.hypot(height, width))
    out = {"dts": nan_where(mean / diagonal, empty), "dts_modules": nan_where(mean / module_px, empty)}
    chance = {"dts": nan_where(mean_distance / diagonal, empty),
              "dts_modules": nan_where(mean_distance / module_px, empty)}
    return out, chance
