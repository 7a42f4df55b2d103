"""Every CAM class of pytorch-grad-cam, by name ``pgc:<class name, lower case, no underscores>``.

The classes are listed from the installed package: each ``BaseCAM`` subclass it exports (GradCAM,
ScoreCAM, AblationCAM, KPCA_CAM, FullGrad, ...) and its meta-methods over a ``base_method`` (FinerCAM,
RefineCAM, SESS, each with its default base method). They run through the library, on the engine's
target layer, with the layer's ``to_grid`` as the ``reshape_transform`` (so token outputs of
transformers become the same grid the engine uses) and ``ClassifierOutputTarget`` of the engine's
class indices (FinerCAM: ``FinerWeightedTarget`` of that class against the library's default
comparison classes, the next most similar logits).

Which map is returned, so that it is post-processed and scored exactly like the engine's own maps:

- classes that use the library's single-layer pipeline (``BaseCAM.compute_cam_per_layer`` ->
  ``get_cam_image``; FinerCAM through its base CAM): the raw, signed ``get_cam_image`` map ``(B, h, w)``
  at the target layer's resolution, *before* the library's ReLU, min-max scaling and resize, i.e. the
  stage of the engine's raw maps (``postprocess(map, size)`` then equals the library's own output);
- FullGrad (all bias layers, at the input resolution), RefineCAM and SESS (their own fusion): the
  library's final output ``(B, H, W)`` in [0, 1]; upsampling it is the identity.

A map with a non-finite value, or any exception the library raises for a model (e.g. a layer type it
cannot handle), makes the method *fail* with that reason (see ``CamOutput.failed``); it is never
replaced by another map.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from cambench_qr.cams.hf import logits_of
from cambench_qr.cams.layers import TargetLayer

PREFIX = "pgc:"


@functools.cache
def pgc_classes() -> dict[str, type]:
    """``{"pgc:<name>": class}`` for every CAM class the installed pytorch-grad-cam exports."""
    import pytorch_grad_cam
    from pytorch_grad_cam.base_cam import BaseCAM

    out = {}
    for name, cls in sorted(vars(pytorch_grad_cam).items()):
        if not inspect.isclass(cls):
            continue
        meta = "base_method" in inspect.signature(cls.__init__).parameters
        if issubclass(cls, BaseCAM) or meta:
            out[PREFIX + name.lower().replace("_", "")] = cls
    return out


def pgc_methods() -> tuple[str, ...]:
    """The ``pgc:`` method names, sorted."""
    return tuple(pgc_classes())


def is_pgc(method: str) -> bool:
    return method.startswith(PREFIX)


class _Logits(nn.Module):
    """The model as the library expects it: ``forward(images) -> (B, K)`` logits."""

    def __init__(self, model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self._forward = forward

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return logits_of(self._forward(images))


@contextlib.contextmanager
def _library_state(model: nn.Module) -> Iterator[None]:
    """Parameters require grad (the library back-propagates to hooked layer outputs through them) and
    gradients enabled for the block; every module's train flag, every parameter's ``requires_grad``
    and ``.grad`` are restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    try:
        for p, _, _ in params:
            p.requires_grad_(True)
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training
        for p, flag, grad in params:
            p.grad = grad
            p.requires_grad_(flag)


def _raw_recorder(cam) -> list[np.ndarray]:
    """Record what ``cam.get_cam_image`` returns (the raw signed map) on each call."""
    calls: list[np.ndarray] = []
    inner = cam.get_cam_image

    def record(*args, **kwargs):
        result = inner(*args, **kwargs)
        calls.append(np.asarray(result.detach().cpu() if torch.is_tensor(result) else result))
        return result

    cam.get_cam_image = record
    return calls


def _build(cls: type, wrapped: nn.Module, layer: TargetLayer, image_hw: tuple[int, int], acts_ndim: int):
    from pytorch_grad_cam import AblationCAM, FullGrad
    from pytorch_grad_cam.ablation_layer import AblationLayer, AblationLayerVit

    def reshape(output: torch.Tensor) -> torch.Tensor:
        return layer.to_grid(output, image_hw)

    if cls is FullGrad:
        return cls(wrapped, [], None)
    if cls is AblationCAM:
        ablation = AblationLayerVit() if acts_ndim == 3 else AblationLayer()
        return cls(wrapped, [layer.module], reshape, ablation_layer=ablation)
    return cls(wrapped, [layer.module], reshape)


def _targets(cls: type, targets: torch.Tensor, logits: torch.Tensor) -> list:
    from pytorch_grad_cam import FinerCAM
    from pytorch_grad_cam.finer_cam import DEFAULT_COMPARISON_CATEGORIES
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, FinerWeightedTarget

    if cls is not FinerCAM:
        return [ClassifierOutputTarget(int(t)) for t in targets]
    scores = logits.detach().cpu().numpy()
    chosen = scores[np.arange(len(scores)), targets.cpu().numpy()]
    order = np.argsort(np.abs(scores - chosen[:, None]), axis=-1)
    picks = [c for c in DEFAULT_COMPARISON_CATEGORIES if c < scores.shape[1]]
    return [FinerWeightedTarget(int(t), [int(order[i, c]) for c in picks], 1.0)
            for i, t in enumerate(targets.tolist())]


def _release(cam) -> None:
    """Remove the library's hooks, then drop its tensors (its own ``release`` detaches them in place
    first, which fails for gradient views and would leave the hooks on the model)."""
    for c in getattr(cam, "base_cam_per_layer", [getattr(cam, "base_cam", cam)]):
        hooks = c.activations_and_grads
        for handle in hooks.handles:
            handle.remove()
        hooks.handles.clear()
        hooks.activations, hooks.gradients = [], []


def pgc_map(method: str, model: nn.Module, layer: TargetLayer, images: torch.Tensor, targets: torch.Tensor,
            logits: torch.Tensor, acts_ndim: int,
            forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """The map ``(B, h, w)`` or ``(B, H, W)`` (see the module docstring) of one ``pgc:`` method, float32
    on ``images.device``. ``targets``: class index per image; ``logits``: the model's ``(B, K)`` logits
    (FinerCAM's comparison classes); ``acts_ndim``: rank of the target layer's output (3 for tokens);
    ``forward``: ``images -> logits`` (default: the model). Library errors propagate."""
    from pytorch_grad_cam import FinerCAM
    from pytorch_grad_cam.base_cam import BaseCAM

    cls = pgc_classes()[method]
    wrapped = _Logits(model, forward or model)
    image_hw = (int(images.shape[-2]), int(images.shape[-1]))
    with _library_state(model):
        cam = _build(cls, wrapped, layer, image_hw, acts_ndim)
        try:
            single = cls is FinerCAM or (issubclass(cls, BaseCAM)
                                         and cls.compute_cam_per_layer is BaseCAM.compute_cam_per_layer)
            raw = _raw_recorder(cam.base_cam if cls is FinerCAM else cam) if single else None
            final = cam(images.detach(), _targets(cls, targets, logits))
        finally:
            _release(cam)
    if raw is not None:
        if len(raw) != 1:
            raise RuntimeError(f"{method}: get_cam_image ran {len(raw)} times, expected once")
        final = raw[0]
    maps = torch.as_tensor(np.ascontiguousarray(final), dtype=torch.float32, device=images.device)
    if maps.ndim != 3 or len(maps) != len(images):
        raise ValueError(f"{method} returned maps of shape {tuple(maps.shape)} for {len(images)} images")
    if not torch.isfinite(maps).all():
        bad = int((~torch.isfinite(maps)).flatten(1).any(1).sum())
        raise ValueError(f"{method} produced non-finite values in {bad} of {len(maps)} maps")
    return maps
