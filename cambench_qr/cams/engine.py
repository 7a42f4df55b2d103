"""One forward and one backward pass per batch -> every CAM method, batched, on the model's device.

The target layer's output is captured by a forward hook. In the default (inference) mode the hook
hands the rest of the network a copy of a *detached* activation that alone requires grad, and every
parameter has ``requires_grad`` switched off for the call: the forward below the layer records no
graph, and ``torch.autograd.grad(selected logits, activation)`` walks only the few layers above it (no
parameter or input gradients). In ``differentiable=True`` mode (the FT-LeakMin penalty) nothing is
detached or frozen and the gradient is taken with ``create_graph=True``, so a loss on the maps
back-propagates into the trainable parameters.

``transformers`` image classifiers are taken as they are: the engine reads the output's ``logits`` and
passes ``interpolate_pos_encoding`` where needed (``cams.hf``).

Hooks are removed, and the train/eval flag of every module and ``requires_grad`` of every parameter
restored, on every exit; exceptions propagate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from cambench_qr.cams.hf import classifier_forward
from cambench_qr.cams.layers import TargetLayer, resolve_target_layer
from cambench_qr.cams.methods import CAM_METHODS, METHODS
from cambench_qr.cams.pgc import is_pgc, pgc_map, pgc_methods

DEFAULT_METHODS: tuple[str, ...] = ("gradcam", "xgradcam", "layercam", "eigengradcam")


@dataclass(frozen=True)
class CamOutput:
    """Raw maps ``{method: (B, h, w)}``, the model's logits ``(B, K)`` and the class indices ``(B,)`` used.

    ``failed``: ``{method: reason}`` for each ``pgc:`` method that could not run on this model or input
    (it has no entry in ``maps``); the other methods are unaffected. A ``pgc:`` map whose method works
    at the input resolution (FullGrad, RefineCAM, SESS) is ``(B, H, W)``.
    """

    maps: dict[str, torch.Tensor]
    logits: torch.Tensor
    targets: torch.Tensor
    failed: dict[str, str] = field(default_factory=dict)


class _Capture:
    """Forward hook storing the target layer's output (and handing downstream layers a copy of it)."""

    def __init__(self, detach: bool) -> None:
        self.detach = detach
        self.outputs: list[torch.Tensor] = []

    def __call__(self, module: nn.Module, args: object, output: object) -> torch.Tensor:
        if not isinstance(output, torch.Tensor):
            kind = type(output).__name__
            raise ValueError(f"target layer {type(module).__name__} returned a {kind}, not a tensor")
        if self.detach or not output.requires_grad:
            output = output.detach().requires_grad_(torch.is_grad_enabled())
        self.outputs.append(output)
        # Downstream layers get a copy, so an in-place op there can neither touch the captured values
        # nor hit a leaf that requires grad.
        return output.clone()


@contextlib.contextmanager
def _hooked(layer: TargetLayer, capture: _Capture) -> Iterator[None]:
    handle = layer.module.register_forward_hook(capture)
    try:
        yield
    finally:
        handle.remove()
        capture.outputs.clear()


@contextlib.contextmanager
def _frozen_eval(model: nn.Module) -> Iterator[None]:
    """Eval mode and ``requires_grad=False`` everywhere for the block; both restored per module on exit."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)


def available_methods() -> tuple[str, ...]:
    """Every method name the engine accepts: its own ``METHODS``, then pytorch-grad-cam's ``pgc:`` names."""
    return (*METHODS, *pgc_methods())


def check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """The method names without repeats; ValueError listing the available names for an unknown one."""
    if isinstance(methods, str):
        methods = (methods,)
    known = available_methods()
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        library = ",".join(m.removeprefix("pgc:") for m in known if is_pgc(m))
        raise ValueError(f"unknown CAM method(s) {unknown or '(none given)'}; choose from "
                         f"{', '.join(m for m in known if not is_pgc(m))}, pgc:{{{library}}}")
    return tuple(dict.fromkeys(methods))


def _check_images(images: torch.Tensor) -> None:
    """ValueError unless ``images`` is a finite floating-point ``(B, C, H, W)`` tensor; names bad images."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (B, C, H, W) tensor, got {shape}")
    if not images.dtype.is_floating_point:
        raise ValueError(f"images must be a floating-point tensor, got {images.dtype}")
    if len(images) == 0:
        raise ValueError("images is an empty batch (B = 0)")
    bad = (~torch.isfinite(images.detach())).flatten(1).any(1)
    if bool(bad.any()):
        listed = bad.nonzero().squeeze(1).tolist()
        raise ValueError(f"images {listed[:10]}{' ...' if len(listed) > 10 else ''} of the batch contain NaN "
                         "or inf pixels; CAMs of non-finite input are undefined")


def _check_targets(targets: torch.Tensor | Sequence[int] | None, logits: torch.Tensor) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model output is {shape}, expected a (B, num_classes) logits tensor")
    if targets is None:
        return logits.detach().argmax(dim=1)
    targets = torch.as_tensor(targets, device=logits.device)
    if targets.dtype.is_floating_point or targets.dtype == torch.bool or targets.ndim != 1:
        raise ValueError(f"targets must be a 1-D integer tensor of class indices, got {targets.dtype} "
                         f"of shape {tuple(targets.shape)}")
    if len(targets) != len(logits):
        raise ValueError(f"{len(targets)} targets for a batch of {len(logits)} images")
    if len(targets) and (targets.min() < 0 or targets.max() >= logits.shape[1]):
        raise ValueError(f"targets must lie in [0, {logits.shape[1]}), got {targets.tolist()}")
    return targets.long()


class CamEngine:
    """CAMs of one model at one target layer: ``engine(images, targets, methods) -> CamOutput``.

    ``target_layer``: None (the architecture default, see ``default_target_layer``), a module, its dotted
    name, or a ``TargetLayer`` with a custom ``to_grid``. ``model``: a classifier returning ``(B, K)``
    logits, or a ``transformers`` image classifier (its output's ``logits`` are read).
    """

    def __init__(self, model: nn.Module, target_layer: TargetLayer | nn.Module | str | None = None) -> None:
        self.model = model
        self.forward = classifier_forward(model)
        self.layer = resolve_target_layer(model, target_layer)

    def __call__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor | Sequence[int] | None = None,
        methods: Sequence[str] = DEFAULT_METHODS,
        differentiable: bool = False,
    ) -> CamOutput:
        """Raw maps ``(B, h, w)`` at the target layer's resolution for each method, from one forward and
        (if any method uses gradients) one backward pass to the target layer.

        ``targets``: class index per image (None: the predicted class). ``differentiable=False`` runs in
        eval mode with frozen parameters and returns detached tensors; ``differentiable=True`` leaves
        the model's mode and flags alone and keeps the graph (maps and logits) for a training loss.
        """
        methods = check_methods(methods)
        _check_images(images)
        library = [m for m in methods if is_pgc(m)]
        if library and differentiable:
            raise ValueError(f"{library} run through pytorch-grad-cam and cannot be differentiable")
        own = [m for m in methods if not is_pgc(m)]
        need_grads = any(CAM_METHODS[m].uses_gradients for m in own)
        capture = _Capture(detach=not differentiable)
        state = contextlib.nullcontext() if differentiable else _frozen_eval(self.model)
        if not differentiable:
            images = images.detach()
        # Gradients are needed even when the caller is inside no_grad() or inference_mode().
        with state, _hooked(self.layer, capture), torch.inference_mode(False):
            with torch.set_grad_enabled(need_grads or differentiable):
                try:
                    logits = self.forward(images)
                except RuntimeError as error:  # e.g. 1-channel images for an RGB stem, float64 for float32
                    reason = (str(error).strip() or type(error).__name__).splitlines()[0]
                    raise ValueError(f"the model's forward pass failed on images of shape "
                                     f"{tuple(images.shape)} and dtype {images.dtype}: {reason}") from error
            if len(capture.outputs) != 1:
                layer = self.layer.name or type(self.layer.module).__name__
                raise ValueError(f"target layer {layer} ran {len(capture.outputs)} times in one forward "
                                 "pass; it must run exactly once")
            targets = _check_targets(targets, logits)
            acts = capture.outputs[0]
            grads = None
            if need_grads:
                score = logits.gather(1, targets[:, None]).sum()
                (grads,) = torch.autograd.grad(score, acts, create_graph=differentiable)
            with torch.set_grad_enabled(differentiable):
                image_hw = tuple(images.shape[-2:])
                grid_acts = self.layer.to_grid(acts, image_hw)
                grid_grads = None if grads is None else self.layer.to_grid(grads, image_hw)
                if not differentiable:
                    grid_acts, logits = grid_acts.detach(), logits.detach()
                maps = {m: CAM_METHODS[m](grid_acts, grid_grads) for m in own}
        failed = {}
        for m in library:  # each through the library, after the engine's hooks and state are released
            try:
                maps[m] = pgc_map(m, self.model, self.layer, images, targets, logits, acts.ndim, self.forward)
            except Exception as exc:  # reported per method in CamOutput.failed, never skipped silently
                failed[m] = f"{type(exc).__name__}: {exc}".strip()
        maps = {m: maps[m] for m in methods if m in maps}
        return CamOutput(maps=maps, logits=logits, targets=targets, failed=failed)


def compute_cams(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    target_layer: TargetLayer | nn.Module | str | None = None,
    differentiable: bool = False,
) -> dict[str, torch.Tensor]:
    """Raw CAMs ``{method: (B, h, w)}`` at the target layer's resolution (see :class:`CamEngine`); ValueError
    naming each method that could not run (``CamEngine`` returns the others and the reasons instead)."""
    out = CamEngine(model, target_layer)(images, targets, methods, differentiable)
    if out.failed:
        raise ValueError("; ".join(f"{m} failed on this model: {reason}" for m, reason in out.failed.items()))
    return out.maps
