"""The saliency-map contract shared by ``cams``, ``metrics`` and the training penalty: a map read as a
mass distribution. Like ``parts``, a leaf module every room may import.
"""

from __future__ import annotations

import torch


def sum_normalize(maps: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """"ReLU then sum": ``p = ReLU(x) / (sum ReLU(x) + eps)`` per (H, W) map of (..., H, W) maps, a mass
    distribution (differentiable). With ``eps = 0`` an all-zero map comes out NaN (0 / 0)."""
    x = maps.clamp(min=0)
    return x / (x.sum(dim=(-2, -1), keepdim=True) + eps)
