"""CAM methods as tensor formulas over one captured activation and its gradient.

Notation: ``A`` is the target layer's activation ``(B, C, h, w)``, ``G = dy_c/dA`` the gradient of the
selected logit ``y_c`` (summed over the batch, so image b only sees its own logit), ``k`` a channel and
``(i, j)`` a position. Every method returns the raw, signed map ``(B, h, w)`` *before* the ReLU: the
rectification and any normalisation are explicit post-processing steps (``cams.postprocess``). The
weights and epsilons are those of pytorch-grad-cam 1.5.7, so its maps are reproduced exactly.
Higher map values mean more evidence for the target class.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ClassVar

import torch

SPATIAL = (2, 3)


class CamMethod:
    """A CAM formula: ``method(A, G) -> (B, h, w)``; ``uses_gradients`` says whether it needs ``G``."""

    name: ClassVar[str]
    uses_gradients: ClassVar[bool] = True

    def __call__(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError


def weighted_sum(weights: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """``sum_k w_k A_k``: channel weights ``(B, C)`` times activations ``(B, C, h, w)`` -> ``(B, h, w)``."""
    return torch.einsum("bc,bchw->bhw", weights, acts)


class GradCAM(CamMethod):
    """Grad-CAM (Selvaraju et al., 2017): ``w_k = mean_ij G_k(i,j)``, map ``= sum_k w_k A_k``."""

    name = "gradcam"

    def __call__(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return weighted_sum(grads.mean(SPATIAL), acts)


class GradCAMPlusPlus(CamMethod):
    """Grad-CAM++ (Chattopadhyay et al., 2018, eq. 19), as in pytorch-grad-cam.

    ``a_k(i,j) = G^2 / (2 G^2 + (sum_ij A_k) G^3 + 1e-6)`` where ``G != 0`` (else 0),
    ``w_k = sum_ij ReLU(G_k(i,j)) a_k(i,j)``, map ``= sum_k w_k A_k``.
    """

    name = "gradcampp"

    def __call__(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        g2 = grads.square()
        act_sum = acts.sum(SPATIAL, keepdim=True)
        alpha = g2 / (2 * g2 + act_sum * g2 * grads + 1e-6)
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        return weighted_sum((grads.clamp(min=0) * alpha).sum(SPATIAL), acts)


class XGradCAM(CamMethod):
    """XGrad-CAM (Fu et al., 2020): ``w_k = sum_ij G_k(i,j) A_k(i,j) / (sum_ij A_k(i,j) + 1e-7)``,
    map ``= sum_k w_k A_k``."""

    name = "xgradcam"

    def __call__(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        weights = (grads * acts).sum(SPATIAL) / (acts.sum(SPATIAL) + 1e-7)
        return weighted_sum(weights, acts)


class LayerCAM(CamMethod):
    """LayerCAM (Jiang et al., 2021), single layer, no tanh rescaling: map ``= sum_k ReLU(G_k) A_k``."""

    name = "layercam"

    def __call__(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return (grads.clamp(min=0) * acts).sum(1)


class HiResCAM(CamMethod):
    """HiResCAM (Draelos & Carin, 2020): map ``= sum_k G_k A_k`` (element-wise, no spatial averaging)."""

    name = "hirescam"

    def __call__(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return (grads * acts).sum(1)


@contextlib.contextmanager
def _one_cpu_thread(tensor: torch.Tensor) -> Iterator[None]:
    """Run a small LAPACK call on one CPU thread (the thread count is restored on exit).

    Batched ``eigh`` on CPU loops over small matrices, and with several OpenMP threads each call pays
    barrier overhead that dominates (measured 5-20x slower with 2 threads than with 1 for 196x196).
    """
    threads = torch.get_num_threads()
    if tensor.device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def principal_projection(features: torch.Tensor) -> torch.Tensor:
    """First principal component map of each image's features ``(B, C, h, w)`` -> ``(B, h, w)``.

    Per image, ``X`` is the ``(h*w, C)`` matrix of features with every channel centred over positions,
    and the map is ``p = X v_1 = s_1 u_1`` (``v_1``, ``u_1``: first right / left singular vectors,
    ``s_1`` the largest singular value), as in pytorch-grad-cam's ``get_2d_projection``. It is computed
    batched on the device from the eigen-decomposition of the smaller Gram matrix (``X X^T`` or
    ``X^T X``, so the cost is that of a ``min(h*w, C)``-sized problem, never a full SVD). The result is
    float32 (float64 for float64 input).

    Sign rule (the SVD sign is arbitrary; pytorch-grad-cam leaves it so, its issue #315): ``p`` is
    flipped so that it correlates non-negatively with the channel sum ``sum_k X_k`` (the mean
    activation for EigenCAM, the HiResCAM map for EigenGrad-CAM), i.e. ``<p, X 1> >= 0``.
    """
    b, c, h, w = features.shape
    x = features.float().flatten(2).transpose(1, 2)  # (B, hw, C); eigh needs float32 or float64
    x = x - x.mean(dim=1, keepdim=True)
    positions_gram = h * w <= c
    gram = x @ x.transpose(1, 2) if positions_gram else x.transpose(1, 2) @ x
    with _one_cpu_thread(gram):
        eigvals, eigvecs = torch.linalg.eigh(gram)  # ascending
    if positions_gram:
        proj = eigvecs[..., -1] * eigvals[:, -1:].clamp(min=0).sqrt()
    else:
        proj = (x @ eigvecs[..., -1:]).squeeze(-1)
    agreement = (proj * x.sum(dim=2)).sum(dim=1, keepdim=True)
    proj = torch.where(agreement < 0, -proj, proj)
    return proj.unflatten(1, (h, w))


class EigenCAM(CamMethod):
    """EigenCAM (Muhammad & Yeasin, 2020): first principal component of ``A`` (see principal_projection).

    Needs no gradient."""

    name = "eigencam"
    uses_gradients = False

    def __call__(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return principal_projection(acts)


class EigenGradCAM(CamMethod):
    """EigenGrad-CAM (pytorch-grad-cam): first principal component of ``G * A`` (see principal_projection)."""

    name = "eigengradcam"

    def __call__(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return principal_projection(grads * acts)


CAM_METHODS: dict[str, CamMethod] = {
    cls.name: cls()
    for cls in (GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, HiResCAM, EigenCAM, EigenGradCAM)
}
METHODS: tuple[str, ...] = tuple(CAM_METHODS)
