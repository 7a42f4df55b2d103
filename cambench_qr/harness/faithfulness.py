"""Does the model depend on what the saliency points at? Insertion / deletion, causal part occlusion with
area-matched controls, and the threshold-IoU robustness curve. All batched, on the model's device.

Images here are uint8 (B,3,H,W); ``classify`` maps them to logits (normalisation included). The neutral
fill is each image's own mean colour: the paper filled with white, which on a QR code is not neutral
(light modules and the quiet zone are white).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..metrics import aggregate
from ..results import FaithfulnessRow

Classifier = Callable[[torch.Tensor], torch.Tensor]
IOU_THRESHOLDS = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
# per-sample columns of the insertion / deletion AUCs, in the order insertion_deletion returns them
FAITHFULNESS_COLUMNS = ("insertion_auc", "deletion_auc")


def mean_fill(images: torch.Tensor) -> torch.Tensor:
    """Each image replaced by its per-channel mean colour (float, same shape)."""
    return images.float().mean(dim=(2, 3), keepdim=True).expand_as(images)


def blurred(images: torch.Tensor) -> torch.Tensor:
    """Gaussian blur with sigma = side / 64 (3.5 px at 224 px, the paper's 21x21 kernel), reflect padding."""
    sigma = max(images.shape[-1] / 64, 0.5)
    radius = int(3 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=images.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    out = F.pad(images.float(), (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)


def _pixel_ranks(saliency: torch.Tensor) -> torch.Tensor:
    """(B,H,W) -> (B,H*W) rank of each pixel in descending saliency (0 = most salient; ties by position)."""
    flat = saliency.flatten(1)
    order = flat.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


def insertion_deletion(classify: Classifier, images: torch.Tensor, saliency: torch.Tensor, target: int,
                       steps: int = 20, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (insertion AUC, deletion AUC), each (B,) in [0, 1].

    Pixels are revealed (insertion, starting from the blurred image) or removed (deletion, replaced by the
    mean fill) in descending saliency order, k_j = round(j / (steps - 1) * H * W) pixels at step j. With
    p_j the softmax probability of ``target``, AUC = trapezoid of p_j over x_j = j / (steps - 1) in [0, 1].
    Insertion: higher is better. Deletion: lower is better (the class vanishes fast when the salient
    pixels go).
    """
    b, c, h, w = images.shape
    n = h * w
    ranks = _pixel_ranks(saliency)
    counts = torch.round(torch.linspace(0, 1, steps, device=images.device) * n)
    revealed = (ranks[:, None, :] < counts[None, :, None]).view(b, steps, 1, h, w)
    original = images.float()[:, None]
    inserted = torch.where(revealed, original, blurred(images)[:, None])
    deleted = torch.where(revealed, mean_fill(images)[:, None], original)
    curves = []
    for series in (inserted, deleted):
        flat = series.reshape(b * steps, c, h, w)
        probs = torch.cat([classify(flat[i:i + chunk]).softmax(1)[:, target]
                           for i in range(0, len(flat), chunk)])
        curves.append(torch.trapezoid(probs.view(b, steps), dx=1.0 / (steps - 1), dim=1))
    return curves[0], curves[1]


def control_mask(pool: torch.Tensor, counts: torch.Tensor, seeds: list[int]) -> torch.Tensor:
    """(B,H,W) masks of ``counts[i]`` pixels drawn uniformly without replacement from ``pool[i]`` (all of the
    pool if it is smaller), with one generator per sample seeded by ``seeds[i]``."""
    out = torch.zeros_like(pool)
    for i, seed in enumerate(seeds):
        where = pool[i].flatten().nonzero().squeeze(1)
        k = min(int(counts[i]), len(where))
        pick = torch.randperm(len(where), generator=torch.Generator().manual_seed(seed))[:k].to(where.device)
        out[i].view(-1)[where[pick]] = True
    return out


def occlusion_drops(classify: Classifier, images: torch.Tensor, masks: dict[str, torch.Tensor],
                    target: int) -> dict[str, torch.Tensor]:
    """Logit drop per sample and mask: ``max(0, z_target(image) - z_target(image with the mask's pixels set
    to the mean fill))``, (B,) each. Larger drops mean the model relies more on those pixels."""
    base = classify(images.float())[:, target]
    fill = mean_fill(images)
    names = list(masks)
    occluded = torch.cat([torch.where(masks[m][:, None], fill, images.float()) for m in names])
    logits = classify(occluded)[:, target].view(len(names), -1)
    return {m: (base - logits[i]).clamp(min=0) for i, m in enumerate(names)}


def threshold_iou(saliency: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """(B, 19) IoU of ``1[S >= t]`` with the box mask, S min-max scaled per image, t in IOU_THRESHOLDS.
    Higher is better; NaN for a constant map."""
    flat = saliency.flatten(1)
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    scaled = (flat - low) / (high - low)
    above = scaled[:, None, :] >= IOU_THRESHOLDS.to(flat.device)[None, :, None]
    inside = box.flatten(1)[:, None, :]
    inter = (above & inside).sum(2).double()
    union = (above | inside).sum(2).double()
    iou = inter / union.clamp(min=1)
    return torch.where((high - low).squeeze(1)[:, None] > 0, iou, torch.nan)


def faithfulness_summary(columns: dict[str, list], n_boot: int, seed: int) -> list[FaithfulnessRow]:
    """Insertion AUC (higher is better) and deletion AUC (lower is better) per config / split / method
    (``metrics.aggregate``: mean, std, bootstrap CI), over the per-sample rows that have curves."""
    have = np.isfinite(np.asarray(columns["insertion_auc"], dtype=float))
    if not have.any():
        return []
    subset = {k: np.asarray(columns[k], dtype=object)[have]
              for k in ("config", "split", "method", *FAITHFULNESS_COLUMNS)}
    return [FaithfulnessRow(**r) for r in aggregate(subset, list(FAITHFULNESS_COLUMNS),
                                                    ["config", "split", "method"], n_boot=n_boot, seed=seed)]
