"""Scoring a CAM at its own (feature-grid) resolution against area-averaged part fractions.

Upsampling a 7x7 CAM to 224x224 smears its mass across part boundaries before any score sees it. The
alternative: shrink the part map instead. ``area_average_parts`` turns (B, H, W) part ids into
(B, P, h, w) fractions (the share of each grid cell covered by each part; they sum to 1 per cell), and
``grid_scores`` computes the mass scores of a (B, h, w) map against them:
``mass_k = sum_cells p * fraction_k`` with ``p = w / sum(w)``, and ``area_k = mean_cells fraction_k``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cambench_qr.metrics.inputs import check_parts, check_saliency
from cambench_qr.metrics.prepared import REGION_NAMES
from cambench_qr.metrics.scores import _nan_where, _scored_map
from cambench_qr.parts import NUM_PARTS, PART_NAMES, REGIONS


def area_average_parts(parts, grid_hw: tuple[int, int]) -> torch.Tensor:
    """(B, P, h, w) float32 part fractions: the mean of each part's indicator over the pixels of each
    grid cell (adaptive average pooling: an exact area average when H and W are multiples of h and w;
    otherwise neighbouring cells share their boundary pixel)."""
    prt = check_parts(parts)
    h, w = grid_hw
    if h < 1 or w < 1 or h > prt.shape[1] or w > prt.shape[2]:
        raise ValueError(f"grid_hw must lie between (1, 1) and the part map size {tuple(prt.shape[1:])}, "
                         f"got {grid_hw}")
    return torch.stack([F.adaptive_avg_pool2d((prt == k).float()[:, None], (h, w))[:, 0]
                        for k in range(NUM_PARTS)], 1)


def grid_scores(saliency, fractions: torch.Tensor, *, normalize: str = "sum", signed: bool = False
                ) -> dict[str, torch.Tensor]:
    """Mass scores of (B, h, w) maps against (B, P, h, w) part fractions (``area_average_parts``):
    ``mass_<part>``, ``mass_<region>``, ``lift_<region>``, ``fmr``, ``tmr``, ``bl``, each with
    ``chance_<score>`` (the value of a uniform map) and ``valid``, as in ``structure_scores``."""
    sal = check_saliency(saliency)
    if fractions.ndim != 4 or fractions.shape[1] != NUM_PARTS or fractions.shape[2:] != sal.shape[1:] \
            or fractions.shape[0] != sal.shape[0]:
        raise ValueError(f"expected saliency (B, h, w) and fractions (B, {NUM_PARTS}, h, w); got "
                         f"{tuple(sal.shape)} and {tuple(fractions.shape)}")
    w, _ = _scored_map(sal.flatten(1).float(), normalize, signed)
    total = w.double().sum(1)
    valid = total > 0
    frac = fractions.flatten(2).double()
    part_mass = torch.einsum("bn,bpn->bp", w.double(), frac) / torch.where(valid, total, 1)[:, None]
    part_area = frac.mean(2)
    out, chance = {}, {}
    for i, name in enumerate(PART_NAMES):
        out[f"mass_{name}"], chance[f"mass_{name}"] = part_mass[:, i], part_area[:, i]
    for r in REGION_NAMES:
        ids = list(REGIONS[r])
        mass, area = part_mass[:, ids].sum(1), part_area[:, ids].sum(1)
        out[f"mass_{r}"], chance[f"mass_{r}"] = mass, area
        out[f"lift_{r}"] = _nan_where(mass / area, area == 0)
        chance[f"lift_{r}"] = _nan_where(torch.ones_like(area), area == 0)
    for score, r in (("fmr", "finder"), ("tmr", "timing"), ("bl", "box")):
        empty = chance[f"mass_{r}"] == 0
        region = "outside" if score == "bl" else r
        out[score] = _nan_where(out[f"mass_{region}"], empty)
        chance[score] = _nan_where(chance[f"mass_{region}"], empty)
    result = {k: _nan_where(v, ~valid) for k, v in out.items()}
    result.update({f"chance_{k}": _nan_where(v, ~valid) for k, v in chance.items()})
    result["valid"] = valid
    return result
