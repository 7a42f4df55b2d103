"""Similarity of two saliency maps of the same image, batched: the measures of "Sanity Checks for Saliency
Maps" (Adebayo et al., 2018). For every measure higher means more similar; a sanity check wants the
similarity of a randomized model's map to the original to be low.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..cams import normalize_maps


def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..P of each row of ``x`` (N, P), ties getting the mean of their ranks (scipy's ``rankdata``)."""
    n, p = x.shape
    ordered, order = x.sort(dim=1)
    position = torch.arange(1, p + 1, device=x.device, dtype=torch.float64).expand(n, p)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    if starts.all():  # no ties: the ordinal ranks
        return torch.empty_like(position).scatter_(1, order, position)
    group = (starts.cumsum(1) - 1 + torch.arange(n, device=x.device)[:, None] * p).flatten()
    zeros = torch.zeros(n * p, dtype=torch.float64, device=x.device)
    sums = zeros.index_add(0, group, position.flatten())
    counts = zeros.index_add(0, group, torch.ones_like(position.flatten()))
    mean_rank = (sums / counts)[group].view(n, p)
    return torch.empty_like(mean_rank).scatter_(1, order, mean_rank)


def _box_mean(t: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of every ``size`` x ``size`` window that fits in ``t`` (N, H, W), from an integral image."""
    c = F.pad(t.cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    return (c[:, size:, size:] - c[:, :-size, size:] - c[:, size:, :-size] + c[:, :-size, :-size]) / size**2


def _centred_ranks(maps: torch.Tensor) -> torch.Tensor:
    ranks = _average_ranks(maps.flatten(1))
    return ranks - ranks.mean(1, keepdim=True)


def _correlation(ca: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of centred rows; NaN where a row is constant."""
    denom = (ca.square().sum(1) * cb.square().sum(1)).sqrt()
    return torch.where(denom > 0, (ca * cb).sum(1) / denom, torch.nan)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation per image of maps ``(N, H, W)``: the Pearson correlation of the average
    ranks of the pixels, in [-1, 1]; NaN where either map is constant."""
    return _correlation(_centred_ranks(a), _centred_ranks(b))


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, win_size: int = 7) -> torch.Tensor:
    """Mean structural similarity per image of maps ``(N, H, W)``, as scikit-image's
    ``structural_similarity`` with its defaults: a ``win_size`` x ``win_size`` uniform window over the
    positions where it fits, ``K1 = 0.01``, ``K2 = 0.03``, sample covariances (``n / (n - 1)``), and
    ``S = (2 mu_a mu_b + C1)(2 cov_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2))`` with
    ``C_i = (K_i data_range)^2``. In [-1, 1]."""
    if min(a.shape[-2:]) < win_size:
        raise ValueError(f"maps of {tuple(a.shape[-2:])} px are smaller than the {win_size}-px SSIM window")
    x, y = a.double(), b.double()

    def mean(t: torch.Tensor) -> torch.Tensor:
        return _box_mean(t, win_size)

    n = win_size * win_size
    ux, uy = mean(x), mean(y)
    vx = (mean(x * x) - ux * ux) * n / (n - 1)
    vy = (mean(y * y) - uy * uy) * n / (n - 1)
    vxy = (mean(x * y) - ux * uy) * n / (n - 1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def topk_intersection(a: torch.Tensor, b: torch.Tensor, share: float = 0.05) -> torch.Tensor:
    """Share of the ``k = ceil(share * H * W)`` highest pixels of ``a`` that are also among the ``k``
    highest of ``b``, per image of maps ``(N, H, W)``, in [0, 1] (ties broken by position order)."""
    return _top_overlap(_top_mask(a, share), _top_mask(b, share))


def _top_mask(maps: torch.Tensor, share: float) -> torch.Tensor:
    if not 0 < share <= 1:
        raise ValueError(f"top-k share must be in (0, 1], got {share}")
    flat = maps.flatten(1)
    k = math.ceil(share * flat.shape[1])
    return torch.zeros_like(flat, dtype=torch.bool).scatter_(1, flat.topk(k, dim=1).indices, True)


def _top_overlap(hit_a: torch.Tensor, hit_b: torch.Tensor) -> torch.Tensor:
    return (hit_a & hit_b).sum(1).double() / hit_a.sum(1)


SIMILARITY_NAMES = ("spearman", "spearman_abs", "ssim", "topk")


class SimilarityReference:
    """The original maps ``(N, H, W)``, prepared once (ranks, scaled maps, top-k masks) for comparing many
    maps to them: ``reference.compare(other)`` equals ``map_similarity(original, other)``."""

    def __init__(self, original: torch.Tensor, top_share: float = 0.05) -> None:
        self.top_share = top_share
        self.ranks, self.abs_ranks = _centred_ranks(original), _centred_ranks(original.abs())
        self.scaled = normalize_maps(original, "minmax")
        self.top = _top_mask(original, top_share)

    def compare(self, other: torch.Tensor) -> dict[str, torch.Tensor]:
        """Spearman rho of the signed maps and of their absolute values, SSIM of the ReLU'd, per-image
        min-max scaled maps (data range 1; NaN for a map that is constant after the ReLU) and the top-k
        intersection of the signed maps, per image."""
        return {"spearman": _correlation(self.ranks, _centred_ranks(other)),
                "spearman_abs": _correlation(self.abs_ranks, _centred_ranks(other.abs())),
                "ssim": ssim(self.scaled, normalize_maps(other, "minmax")),
                "topk": _top_overlap(self.top, _top_mask(other, self.top_share))}


def map_similarity(original: torch.Tensor, other: torch.Tensor, top_share: float = 0.05
                   ) -> dict[str, torch.Tensor]:
    """Per image of two signed maps ``(N, H, W)`` at the scoring resolution, the measures of
    :meth:`SimilarityReference.compare`."""
    return SimilarityReference(original, top_share).compare(other)
