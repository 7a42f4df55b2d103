"""Explicit post-processing of raw CAMs ``(B, h, w)``: upsampling, rectification and normalisation.

``postprocess(maps, size, mode="pytorch-grad-cam")`` reproduces what pytorch-grad-cam 1.5.7 returns for
a single target layer (``base_cam.py``: ``compute_cam_per_layer`` then ``aggregate_multi_layers``):
ReLU -> per-image ``(x - min) / (max(x - min) + 1e-7)`` -> bilinear resize (``cv2.resize``,
INTER_LINEAR, half-pixel centres, which equals ``interpolate(..., align_corners=False)``) -> ReLU ->
the same min-max again.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cambench_qr.maps import sum_normalize

NORMALIZE_MODES = ("sum", "minmax")
POSTPROCESS_MODES = ("pytorch-grad-cam", *NORMALIZE_MODES)


def _check_maps(maps: torch.Tensor) -> None:
    if not isinstance(maps, torch.Tensor) or maps.ndim != 3 or not maps.dtype.is_floating_point:
        raise ValueError(f"maps must be a float tensor (B, h, w), got {getattr(maps, 'shape', type(maps))}")


def upsample(maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize ``(B, h, w) -> (B, H, W)``, half-pixel centres; no antialias."""
    _check_maps(maps)
    size = (size, size) if isinstance(size, int) else tuple(size)
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def normalize_maps(maps: torch.Tensor, mode: str = "sum") -> torch.Tensor:
    """ReLU, then per image ``x / sum(x)`` (``"sum"``: a mass distribution) or
    ``(x - min) / (max - min)`` (``"minmax"``: values in [0, 1]).

    A map that is all zero after the ReLU (``"sum"``) or constant (``"minmax"``) has no normalised form
    and comes out NaN, so it is counted downstream instead of silently scoring as zero.
    """
    _check_maps(maps)
    if mode == "sum":
        return sum_normalize(maps)
    x = maps.clamp(min=0)
    if mode == "minmax":
        low = x.amin(dim=(1, 2), keepdim=True)
        return (x - low) / (x.amax(dim=(1, 2), keepdim=True) - low)
    raise ValueError(f"unknown normalisation mode {mode!r}; choose from {NORMALIZE_MODES}")


def _grad_cam_scale(x: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's ``scale_cam_image`` without the resize: ``x -= min; x /= (1e-7 + max)``."""
    x = x - x.amin(dim=(1, 2), keepdim=True)
    return x / (1e-7 + x.amax(dim=(1, 2), keepdim=True))


def postprocess(
    maps: torch.Tensor, size: int | tuple[int, int], mode: str = "pytorch-grad-cam"
) -> torch.Tensor:
    """Raw maps ``(B, h, w)`` -> maps ``(B, H, W)`` ready to view or score.

    ``"pytorch-grad-cam"``: that library's exact output (see the module docstring); ``"sum"`` /
    ``"minmax"``: :func:`upsample` then :func:`normalize_maps`.
    """
    if mode == "pytorch-grad-cam":
        scaled = upsample(_grad_cam_scale(maps.clamp(min=0)), size)
        return _grad_cam_scale(scaled.clamp(min=0))
    if mode in NORMALIZE_MODES:
        return normalize_maps(upsample(maps, size), mode)
    raise ValueError(f"unknown post-processing mode {mode!r}; choose from {POSTPROCESS_MODES}")
