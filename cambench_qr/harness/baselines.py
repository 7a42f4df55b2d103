"""Null saliency maps, scored beside the real CAM methods so every score has a floor to beat.

- ``null_uniform``: a constant map (every pixel equal): its scores are the chance values.
- ``null_centre``: an isotropic Gaussian centred on the image, sigma = side / 4 (a centre prior).
- ``null_edge``: the Sobel gradient magnitude of the grey image (what a low-level edge detector finds;
  QR modules are all edges, so this is a strong structure-agnostic baseline).
- ``null_random``: i.i.d. uniform [0, 1) noise, seeded per sample from ``(seed, sample index)`` so the map
  does not depend on batching or the number of processes.

All maps are (B, H, W) float32, non-negative, on the images' device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def null_maps(images: torch.Tensor, indices: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """The four null maps for uint8 images (B,3,H,W) whose dataset row numbers are ``indices`` (B,)."""
    b, _, h, w = images.shape
    device = images.device
    ys = torch.arange(h, device=device, dtype=torch.float32) - (h - 1) / 2
    xs = torch.arange(w, device=device, dtype=torch.float32) - (w - 1) / 2
    sigma = min(h, w) / 4
    centre = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma**2))
    grey = images.float().mean(1, keepdim=True)
    kernels = torch.stack([_SOBEL_X, _SOBEL_X.T])[:, None].to(device)
    grad = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
    noise = torch.stack([torch.rand(h, w, generator=torch.Generator().manual_seed(seed * 1_000_003 + int(i)))
                         for i in indices.tolist()]).to(device)
    return {
        "null_uniform": torch.ones(b, h, w, device=device),
        "null_centre": centre.expand(b, h, w).contiguous(),
        "null_edge": grad.square().sum(1).sqrt(),
        "null_random": noise,
    }
