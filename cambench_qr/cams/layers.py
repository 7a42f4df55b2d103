"""Target layers: which module a CAM reads, and how its output becomes a ``(B, C, h, w)`` grid.

A :class:`TargetLayer` pairs a module with ``to_grid(output, image_hw) -> (B, C, h, w)``. Convolutional
outputs are already grids. Token outputs ``(B, N, C)`` of a Vision Transformer are turned into grids by
dropping the model's ``num_prefix_tokens`` (class / distillation / register tokens) and reshaping the
remaining tokens to the patch grid implied by the input size and the patch size, so nothing is
hand-written per model and a wrong grid is an error, never a silent reshape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

GridFn = Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]


@dataclass(frozen=True)
class TargetLayer:
    """A module whose forward output a CAM reads, and the function turning that output into a grid.

    ``to_grid(output, (H, W))`` maps the module's output for an input batch of spatial size ``(H, W)``
    to a ``(B, C, h, w)`` tensor; it must be differentiable (a view or a permute).
    """

    module: nn.Module
    to_grid: GridFn
    name: str = ""


def conv_grid(output: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
    """A convolutional feature map is already ``(B, C, h, w)``; anything else is an error."""
    if output.ndim != 4:
        raise ValueError(
            f"target layer output has shape {tuple(output.shape)}, expected (B, C, h, w); pass a "
            "convolutional layer or a TargetLayer with a to_grid function"
        )
    return output


def tokens_to_grid(output: torch.Tensor, num_prefix: int, grid_hw: tuple[int, int],
                   image_hw: tuple[int, int]) -> torch.Tensor:
    """Tokens ``(B, N, C)`` -> ``(B, C, h, w)``: drop the first ``num_prefix`` tokens and reshape the rest
    to ``grid_hw``, which must account for every one of them. Without prefix tokens a channels-last
    ``(B, h, w, C)`` output (Swin) is accepted too."""
    h, w = grid_hw
    if output.ndim == 4 and num_prefix == 0 and tuple(output.shape[1:3]) == (h, w):
        return output.permute(0, 3, 1, 2)
    if output.ndim != 3:
        raise ValueError(f"token layer output has shape {tuple(output.shape)}, expected (B, N, C) tokens "
                         f"for the {h}x{w} grid of a {image_hw[0]}x{image_hw[1]} input")
    num_tokens = output.shape[1] - num_prefix
    if h * w != num_tokens:
        raise ValueError(
            f"{num_tokens} patch tokens (after {num_prefix} prefix tokens) do not form the {h}x{w} grid "
            f"of a {image_hw[0]}x{image_hw[1]} input"
        )
    return output[:, num_prefix:].unflatten(1, (h, w)).permute(0, 3, 1, 2)


def token_grid(model: nn.Module) -> GridFn:
    """Grid function of a timm-style transformer: drop ``model.num_prefix_tokens``, reshape to the patches.

    The grid ``(h, w)`` comes from ``model.patch_embed.dynamic_feat_size((H, W))`` (or ``H // p, W // p``),
    and must account for every non-prefix token.
    """
    patch_embed = getattr(model, "patch_embed", None)
    num_prefix = getattr(model, "num_prefix_tokens", None)
    if patch_embed is None or num_prefix is None:
        raise ValueError(
            f"cannot infer a token grid for {type(model).__name__}: it has no patch_embed / "
            "num_prefix_tokens; pass target_layer=TargetLayer(module, to_grid) with your own reshape"
        )

    def to_grid(output: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
        if output.ndim != 3:
            raise ValueError(f"token layer output has shape {tuple(output.shape)}, expected (B, N, C)")
        if hasattr(patch_embed, "dynamic_feat_size"):
            grid = patch_embed.dynamic_feat_size(tuple(image_hw))
        else:
            ph, pw = patch_embed.patch_size
            grid = image_hw[0] // ph, image_hw[1] // pw
        return tokens_to_grid(output, num_prefix, tuple(grid), image_hw)

    return to_grid


def _module_by_name(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError as err:
        raise ValueError(f"model {type(model).__name__} has no submodule {name!r}") from err


def default_target_layer(model: nn.Module) -> TargetLayer:
    """The conventional CAM layer of a timm or ``transformers`` model, by architecture.

    ``transformers`` image classifiers: see ``cams.hf`` (the layer and grid come from ``model.config``).
    timm models:

    - Vision Transformers (``patch_embed`` + ``blocks`` + ``num_prefix_tokens``; ViT, DeiT, ...):
      ``blocks[-1].norm1``, the input of the last attention, with the token grid inferred. (The output
      of the last block gets no gradient on patch tokens when the head reads the class token only; this
      is pytorch-grad-cam's documented ViT choice.)
    - ResNet family (``layer4``): ``layer4``.
    - EfficientNet family (``conv_head`` + ``bn2``): ``bn2``, the rectified output of the last conv.
    - Staged CNNs (``stages``; ConvNeXt, ...): ``stages[-1]``.

    DataParallel / DistributedDataParallel wrappers are looked through. Any other model raises
    ValueError explaining how to pass ``target_layer``.
    """
    from cambench_qr.cams import hf  # imported here: hf builds on this module

    model = hf.unwrap(model)
    if hf.is_transformers_model(model):
        return hf.default_hf_target_layer(model)
    if all(hasattr(model, a) for a in ("patch_embed", "blocks", "num_prefix_tokens")):
        last = model.blocks[-1]
        if hasattr(last, "norm1"):
            return TargetLayer(last.norm1, token_grid(model), f"blocks.{len(model.blocks) - 1}.norm1")
    if isinstance(getattr(model, "layer4", None), nn.Module):
        return TargetLayer(model.layer4, conv_grid, "layer4")
    if isinstance(getattr(model, "conv_head", None), nn.Module) and isinstance(
        getattr(model, "bn2", None), nn.Module
    ):
        return TargetLayer(model.bn2, conv_grid, "bn2")
    stages = getattr(model, "stages", None)
    if isinstance(stages, nn.Sequential) and len(stages) > 0:
        return TargetLayer(stages[-1], conv_grid, f"stages.{len(stages) - 1}")
    raise ValueError(
        f"no default CAM target layer for {type(model).__name__}; pass target_layer= a module or its "
        "dotted name (e.g. 'layer4', 'stages.3', 'blocks.11.norm1') whose output is (B, C, h, w) or "
        "(B, N, C) tokens, or a TargetLayer(module, to_grid)"
    )


def resolve_target_layer(model: nn.Module, target_layer: TargetLayer | nn.Module | str | None) -> TargetLayer:
    """Turn the user's ``target_layer`` (None, a module, a dotted name or a TargetLayer) into a TargetLayer.

    A module or name gets :func:`conv_grid` unless the model is a token model (a timm model with
    ``patch_embed`` and ``num_prefix_tokens``, or a ``transformers`` ViT / Swin family), in which case a
    3-D output is read as tokens on the model's grid at call time (a token count off that grid is an error).
    """
    from cambench_qr.cams import hf  # imported here: hf builds on this module

    if target_layer is None:
        return default_target_layer(model)
    if isinstance(target_layer, TargetLayer):
        return target_layer
    name = target_layer if isinstance(target_layer, str) else ""
    module = _module_by_name(model, target_layer) if isinstance(target_layer, str) else target_layer
    if not isinstance(module, nn.Module):
        raise ValueError(f"target_layer must be a module, a dotted name or a TargetLayer, got {type(module)}")
    if not any(m is module for m in model.modules()):
        raise ValueError(f"target_layer {type(module).__name__} is not a submodule of {type(model).__name__}")
    tokens = None
    if hf.is_transformers_model(model):
        hf.check_image_classifier(model)
        tokens = hf.token_grid_of(model)
    elif hasattr(model, "patch_embed") and hasattr(model, "num_prefix_tokens"):
        tokens = token_grid(model)
    if tokens is not None:

        def tokens_or_conv(output: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
            return tokens(output, image_hw) if output.ndim == 3 else conv_grid(output, image_hw)

        return TargetLayer(module, tokens_or_conv, name)
    return TargetLayer(module, conv_grid, name)
