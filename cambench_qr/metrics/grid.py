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

from cambench_qr.metrics.formulas import mass_scores, nan_where
from cambench_qr.metrics.inputs import as_tensor, check_options, check_parts, check_saliency
from cambench_qr.metrics.regions import REGION_NAMES
from cambench_qr.metrics.scores import _scored_map
from cambench_qr.parts import NUM_PARTS, REGIONS


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
    check_options(normalize=normalize, signed=signed)
    sal = check_saliency(saliency)
    fractions = as_tensor(fractions, "fractions")
    expected = (sal.shape[0], NUM_PARTS, *sal.shape[1:])
    if not fractions.is_floating_point() or fractions.shape != expected:
        raise ValueError(f"expected saliency (B, h, w) and float fractions (B, {NUM_PARTS}, h, w); got "
                         f"{tuple(sal.shape)} and {fractions.dtype} {tuple(fractions.shape)}")
    w, _ = _scored_map(sal.flatten(1).float(), normalize, signed)
    total = w.double().sum(1)
    valid = total > 0
    frac = fractions.flatten(2).double()
    part_mass = torch.einsum("bn,bpn->bp", w.double(), frac) / torch.where(valid, total, 1)[:, None]
    part_area = frac.mean(2)
    region_mass = {r: part_mass[:, list(REGIONS[r])].sum(1) for r in REGION_NAMES}
    region_area = {r: part_area[:, list(REGIONS[r])].sum(1) for r in REGION_NAMES}
    empty = {r: a == 0 for r, a in region_area.items()}
    out, chance = mass_scores(part_mass, part_area, region_mass, region_area, empty)
    result = {k: nan_where(v, ~valid) for k, v in out.items()}
    result.update({f"chance_{k}": nan_where(v, ~valid) for k, v in chance.items()})
    result["valid"] = valid
    return result
