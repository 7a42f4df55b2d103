"""Hugging Face ``transformers`` image classifiers in the CAM engine: logits, target layer and token grid.

A ``transformers`` classifier returns an output object; the engine reads its ``logits``. Inputs whose
size differs from ``config.image_size`` are passed with ``interpolate_pos_encoding=True`` where the
model's forward takes that argument (ViT, DeiT, BEiT, Swin); DINOv2 always interpolates.

The default target layer and its token-to-grid mapping are read from the model's ``config``:

- ViT, DeiT, BEiT, DINOv2 (with or without registers): the first norm of the last encoder layer (the
  input of the last attention, as for timm ViTs). Its ``(B, N, C)`` tokens lose the prefix tokens
  (1 class token; DeiT also a distillation token; DINOv2 ``config.num_register_tokens`` registers) and
  the rest form the patch grid ``(H // p, W // p)`` (``p = config.patch_size``).
- Swin / Swinv2: the final layer norm, ``(B, h*w, C)`` (or channels-last ``(B, h, w, C)``) on the last
  stage's grid: ``ceil(H / p)`` then halved, rounding up, once per patch merging
  (``len(config.depths) - 1``), as the model pads.
- ConvNeXt / ConvNeXtV2, ResNet, RegNet: the last encoder stage; EfficientNet: the activation after the
  top convolution; MobileViT: the final 1x1 expansion convolution. All are ``(B, C, h, w)`` already.

A token count that does not form the grid is an error, never a silent reshape. Any other model type
is an error that says how to pass ``TargetLayer(module, to_grid)``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch
from torch import nn

from cambench_qr.cams.layers import GridFn, TargetLayer, conv_grid, tokens_to_grid

TOKEN_FAMILIES = ("vit", "deit", "beit", "dinov2", "dinov2_with_registers")
SWIN_FAMILIES = ("swin", "swinv2")
# Convolutional families: the dotted path of the default layer below the base model.
CONV_LAYERS = {
    "convnext": "encoder.stages.-1", "convnextv2": "encoder.stages.-1", "resnet": "encoder.stages.-1",
    "regnet": "encoder.stages.-1", "efficientnet": "encoder.top_activation", "mobilevit": "conv_1x1_exp",
}
FAMILIES = (*TOKEN_FAMILIES, *SWIN_FAMILIES, *CONV_LAYERS)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DataParallel / DistributedDataParallel wrapper (or the model itself)."""
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        return model.module
    return model


def is_transformers_model(model: nn.Module) -> bool:
    """Whether ``model`` (looked through DDP wrappers) is a ``transformers`` ``PreTrainedModel``."""
    return any(cls.__name__ == "PreTrainedModel" and cls.__module__.startswith("transformers.")
               for cls in type(unwrap(model)).__mro__)


def _image_classifier_classes() -> set[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

    names: set[str] = set()
    for value in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES.values():
        names.update((value,) if isinstance(value, str) else value)
    return names


def check_image_classifier(model: nn.Module) -> None:
    """ValueError unless ``model`` is one of ``AutoModelForImageClassification``'s classes (or a subclass)."""
    classes = _image_classifier_classes()
    inner = unwrap(model)
    if not any(cls.__name__ in classes for cls in type(inner).__mro__):
        kind = getattr(getattr(inner, "config", None), "model_type", "?")
        raise ValueError(f"{type(inner).__name__} (model type {kind!r}) is not a transformers image "
                         "classifier (an AutoModelForImageClassification class); CAMs need class logits")


def as_pair(value: int | list | tuple) -> tuple[int, int]:
    """A config size (an int, or a [height, width] pair) as ``(height, width)``."""
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def forward_kwargs(model: nn.Module, image_hw: tuple[int, int]) -> dict:
    """``{"interpolate_pos_encoding": True}`` when ``image_hw`` differs from ``config.image_size`` and the
    model's forward takes that argument; ``{}`` otherwise."""
    inner = unwrap(model)
    size = getattr(inner.config, "image_size", None)
    if size is None or tuple(image_hw) == as_pair(size):
        return {}
    takes = "interpolate_pos_encoding" in inspect.signature(type(inner).forward).parameters
    return {"interpolate_pos_encoding": True} if takes else {}


def logits_of(output: object) -> torch.Tensor:
    """A logits tensor as it is, or the ``logits`` of a ``transformers`` output object."""
    return output if isinstance(output, torch.Tensor) else output.logits


def classifier_forward(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``images -> (B, K) logits`` for a ``transformers`` image classifier (possibly DDP-wrapped): the
    output's ``logits``, with :func:`forward_kwargs`. Other models are returned unchanged."""
    if not is_transformers_model(model):
        return model
    check_image_classifier(model)

    def forward(images: torch.Tensor) -> torch.Tensor:
        return logits_of(model(images, **forward_kwargs(model, tuple(images.shape[-2:]))))

    return forward


def num_prefix_tokens(config) -> int:
    """Class token, plus DeiT's distillation token, plus DINOv2's ``num_register_tokens`` registers."""
    return 1 + (config.model_type == "deit") + int(getattr(config, "num_register_tokens", 0) or 0)


def patch_token_grid(config) -> GridFn:
    """Grid function of a ViT-like model: drop the prefix tokens, reshape to ``(H // p, W // p)``."""
    ph, pw = as_pair(config.patch_size)
    prefix = num_prefix_tokens(config)

    def to_grid(output: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
        return tokens_to_grid(output, prefix, (image_hw[0] // ph, image_hw[1] // pw), image_hw)

    return to_grid


def swin_grid_size(config, image_hw: tuple[int, int]) -> tuple[int, int]:
    """The last Swin stage's grid: ``ceil(H / p)`` halved (rounding up) ``len(depths) - 1`` times."""
    ph, pw = as_pair(config.patch_size)
    h, w = math.ceil(image_hw[0] / ph), math.ceil(image_hw[1] / pw)
    for _ in range(len(config.depths) - 1):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w


def swin_token_grid(config) -> GridFn:
    """Grid function of a Swin model's last stage (no prefix tokens)."""

    def to_grid(output: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
        return tokens_to_grid(output, 0, swin_grid_size(config, image_hw), image_hw)

    return to_grid


def token_grid_of(model: nn.Module) -> GridFn | None:
    """The token grid function of a transformers model's family (None for convolutional families)."""
    config = unwrap(model).config
    if config.model_type in TOKEN_FAMILIES:
        return patch_token_grid(config)
    if config.model_type in SWIN_FAMILIES:
        return swin_token_grid(config)
    return None


def _no_default(model: nn.Module, reason: str) -> ValueError:
    return ValueError(
        f"cannot infer the CAM grid of {type(model).__name__} ({reason}); pass target_layer="
        "TargetLayer(module, to_grid) with to_grid(output, (H, W)) -> (B, C, h, w)"
    )


def default_hf_target_layer(model: nn.Module) -> TargetLayer:
    """The default target layer of a transformers image classifier of a known family (module docstring)."""
    model = unwrap(model)
    check_image_classifier(model)
    kind = model.config.model_type
    prefix = model.base_model_prefix
    base = getattr(model, prefix, None)
    if kind not in FAMILIES or base is None:
        raise _no_default(model, f"model type {kind!r} is not one of {', '.join(FAMILIES)}")
    if kind in TOKEN_FAMILIES:
        names = [n for n, _ in base.named_modules() if n.rsplit(".", 1)[-1] in ("layernorm_before", "norm1")]
        if not names:
            raise _no_default(model, "no encoder layer norm found")
        module = base.get_submodule(names[-1])
        return TargetLayer(module, patch_token_grid(model.config), f"{prefix}.{names[-1]}")
    if kind in SWIN_FAMILIES:
        return TargetLayer(base.layernorm, swin_token_grid(model.config), f"{prefix}.layernorm")
    *parents, last = CONV_LAYERS[kind].split(".")
    parent = base.get_submodule(".".join(parents)) if parents else base
    module = parent[int(last)] if last.lstrip("-").isdigit() else getattr(parent, last)
    index = f"{len(parent) - 1}" if last == "-1" else last
    return TargetLayer(module, conv_grid, ".".join([prefix, *parents, index]))
