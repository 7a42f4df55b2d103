"""The FT-LeakMin penalty: background leakage of a differentiable CAM surrogate, per QR sample.

    C = ReLU(cam) upsampled (bilinear) to the input size, then divided by its sum (+1e-8)
    penalty = lambda * <C, outside> - alpha * <C, structure>

``outside`` and ``structure`` are the named regions of ``cambench_qr.parts.REGIONS`` (from
``metrics.region_masks``). ``<C, outside>`` is the background leakage BL of the sum-normalised map (in
[0, 1], lower is better); ``<C, structure>`` its finder + timing mass (higher is better). Lower penalty is
better. The paper's released code has no such term (docs/paper.md s.2); this is the method as described.
"""

from __future__ import annotations

import torch

from ..cams import upsample
from ..maps import sum_normalize
from ..metrics import region_masks


def leak_penalty(cams: torch.Tensor, parts: torch.Tensor, leak_lambda: float,
                 leak_alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``(penalty, <C, outside>)``, both (B,), from raw CAMs (B,h,w) and part maps (B,H,W);
    differentiable in ``cams``. An all-zero map has C = 0 and so a zero penalty."""
    maps = sum_normalize(upsample(cams.clamp(min=0), tuple(parts.shape[-2:])), eps=1e-8)
    masks = region_masks(parts)
    outside = (maps * masks["outside"]).sum(dim=(1, 2))
    structure = (maps * masks["structure"]).sum(dim=(1, 2))
    return leak_lambda * outside - leak_alpha * structure, outside
