"""Hugging Face ``transformers`` image classifiers in the harness: building (``--backbone
transformers:<Hub id or folder>``), loading and saving checkpoints, and the depth ablation's stages.

A model built or loaded here is adapted to the harness's timm-shaped interface, and nothing else:

- forward hooks make ``model(images)`` return the ``(B, K)`` logits tensor (not the output object) and
  pass ``interpolate_pos_encoding=True`` for inputs off ``config.image_size`` (``cams.hf.forward_kwargs``);
- ``model.pretrained_cfg`` holds the data config timm's ``resolve_model_data_config`` reads (input size,
  mean, std; from the source's ``preprocessor_config.json``, else ImageNet's statistics), the
  architecture name and the classifier modules.

Saved folders are ``save_pretrained`` output (``config.json`` with the dataset's ``id2label`` /
``label2id``, ``model.safetensors``) plus ``preprocessor_config.json`` (resize to the training size,
bilinear, rescale 1/255, normalise with the training mean and std), so
``AutoModelForImageClassification.from_pretrained(folder)`` and ``pipeline("image-classification",
model=folder)`` reload them with the harness's preprocessing.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch
from torch import nn

from ..cams.hf import as_pair, check_image_classifier, forward_kwargs, logits_of, num_prefix_tokens
from ..parts import LABEL_NAMES

PREFIX = "transformers:"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LABELS = {"id2label": dict(enumerate(LABEL_NAMES)),
           "label2id": {name: i for i, name in enumerate(LABEL_NAMES)}}


def is_transformers_folder(model_dir: Path) -> bool:
    """A ``save_pretrained`` folder: its ``config.json`` names a ``model_type`` (timm's does not)."""
    config = model_dir / "config.json"
    return config.is_file() and "model_type" in json.loads(config.read_text())


def _reason(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _processor_config(source: str) -> dict:
    """The source's ``preprocessor_config.json`` (folder or Hub cache), or {} when it has none."""
    from transformers.utils import cached_file

    path = cached_file(source, "preprocessor_config.json", _raise_exceptions_for_missing_entries=False,
                       _raise_exceptions_for_connection_errors=False)
    return json.loads(Path(path).read_text()) if path else {}


def adapt(model: nn.Module, source: str, processor: dict) -> nn.Module:
    """Install the harness adapter on a ``transformers`` image classifier (module docstring); returns it."""
    check_image_classifier(model)
    size = processor.get("size") or {}
    side = size.get("height") or size.get("shortest_edge") or getattr(model.config, "image_size", 224)
    side = as_pair(side)[0]
    base = model.base_model_prefix
    heads = [n for n, child in model.named_children() if n != base and any(True for _ in child.parameters())]
    model.pretrained_cfg = {
        "architecture": f"{PREFIX}{source}", "input_size": (3, side, side),
        "mean": tuple(processor.get("image_mean") or IMAGENET_MEAN),
        "std": tuple(processor.get("image_std") or IMAGENET_STD),
        "interpolation": "bilinear", "crop_pct": 1.0, "classifier": heads,
    }

    def pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return args, {**forward_kwargs(module, tuple(args[0].shape[-2:])), **kwargs}

    model.register_forward_pre_hook(pre_hook, with_kwargs=True)
    model.register_forward_hook(lambda module, args, output: logits_of(output))
    return model


def build_transformers_model(source: str, pretrained: str, seed: int = 0,
                             model_args: dict | None = None) -> nn.Module:
    """``AutoModelForImageClassification`` of ``source`` (a Hub id or a local folder) with the dataset's
    labels (``id2label`` / ``label2id`` from ``LABEL_NAMES``).

    ``pretrained``: ``none`` builds the architecture from the source's config with random weights
    (seeded by ``seed``); the source itself (with or without the ``transformers:`` prefix) loads its
    weights, and a head of another size (or a missing one) is re-initialised and reported on stderr.
    ``model_args`` override config fields. Missing weights or config (offline and not cached) and a
    model that is not an image classifier are one-line errors.
    """
    from transformers import AutoConfig, AutoModelForImageClassification

    if pretrained not in ("none", source, PREFIX + source):
        raise ValueError(f"for a transformers backbone, --pretrained is 'none' (random weights from the "
                         f"config) or the backbone's source {source!r} (its weights), got {pretrained!r}")
    reserved = {"num_labels", *_LABELS} & set(model_args or {})
    if reserved:
        raise ValueError(f"model arguments {sorted(reserved)} are set by the harness; leave them out")
    kwargs = {**(model_args or {}), **_LABELS}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            if pretrained == "none":
                config = AutoConfig.from_pretrained(source, **kwargs)
                model = AutoModelForImageClassification.from_config(config)
            else:
                model, info = AutoModelForImageClassification.from_pretrained(
                    source, ignore_mismatched_sizes=True, output_loading_info=True, **kwargs)
                mismatched = (k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys", ()))
                replaced = sorted({*info.get("missing_keys", ()), *mismatched})
                if replaced:
                    print(f"{source}: re-initialised for {len(LABEL_NAMES)} classes: {', '.join(replaced)}",
                          file=sys.stderr)
        except OSError as exc:
            what = "config" if pretrained == "none" else "weights"
            raise ValueError(f"cannot load the {what} of {source!r} (offline and not in the local Hugging "
                             f"Face cache, not a model folder, or no weights file): {_reason(exc)}") from exc
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{source!r} is not a transformers image classifier: {_reason(exc)}") from exc
    return adapt(model, source, _processor_config(source))


def use_explicit_attention(model: nn.Module) -> None:
    """Switch a ``transformers`` model to its eager ``softmax(q k^T) v`` attention (the same function):
    the FT-LeakMin penalty differentiates a gradient CAM, and fused kernels have no double backward."""
    model.set_attn_implementation("eager")


def load_transformers_checkpoint(model_dir: Path) -> nn.Module:
    """A ``save_pretrained`` folder -> the adapted model."""
    from transformers import AutoModelForImageClassification

    try:
        model = AutoModelForImageClassification.from_pretrained(str(model_dir))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load the transformers model {str(model_dir)!r}: {_reason(exc)}") from exc
    return adapt(model, str(model_dir), _processor_config(str(model_dir)))


def at_image_size(model: nn.Module, side: int) -> nn.Module:
    """``model`` unchanged when it runs at ``side`` px without ``interpolate_pos_encoding``; otherwise a copy
    whose ``config.image_size`` is ``side`` and whose absolute position embeddings are the model's own
    interpolation to that grid, computed once (the values the model computes on the fly), so the saved
    folder runs at the training size in ``pipeline`` too. A model without such embeddings is returned
    unchanged with a note on stderr."""
    if not forward_kwargs(model, (side, side)):
        return model
    embeddings = getattr(getattr(model, model.base_model_prefix), "embeddings", None)
    position = getattr(embeddings, "position_embeddings", None)
    if not isinstance(position, nn.Parameter) or not hasattr(embeddings, "interpolate_pos_encoding"):
        print(f"note: {type(model).__name__} is saved at its config's image size; pass "
              f"interpolate_pos_encoding=True to run it at {side} px", file=sys.stderr)
        return model
    ph, pw = as_pair(model.config.patch_size)
    tokens = (side // ph) * (side // pw)
    with torch.no_grad():
        dummy = torch.zeros(1, num_prefix_tokens(model.config) + tokens, position.shape[-1])
        resized = embeddings.interpolate_pos_encoding(dummy, side, side)
    config = copy.deepcopy(model.config)
    config.image_size = side
    state = model.state_dict()
    state[next(n for n, p in model.named_parameters() if p is position)] = resized
    fresh = type(model)(config)
    fresh.load_state_dict(state)
    return fresh


def save_transformers_model(model: nn.Module, out: Path, image_size: int, mean: tuple, std: tuple) -> None:
    """``save_pretrained`` (safetensors, at the training size: :func:`at_image_size`) plus a
    ``preprocessor_config.json`` of the harness's preprocessing."""
    from transformers import ViTImageProcessor

    at_image_size(model, image_size).save_pretrained(str(out), safe_serialization=True)
    ViTImageProcessor(do_resize=True, size={"height": image_size, "width": image_size}, resample=2,
                      do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=list(mean),
                      image_std=list(std)).save_pretrained(str(out))


def transformers_stage_names(model: nn.Module) -> list[str]:
    """The depth ablation's stages: the children of the first ``ModuleList`` of the base model (ViT /
    DeiT / BEiT / DINOv2 encoder layers, Swin / ConvNeXt / ResNet / RegNet stages, EfficientNet blocks,
    MobileViT layers), as dotted names in forward order."""
    base = model.base_model_prefix
    for name, module in getattr(model, base).named_modules():
        if isinstance(module, nn.ModuleList) and len(module):
            return [f"{base}.{name}.{i}" for i in range(len(module))]
    raise ValueError(f"cannot find the stages of {type(model).__name__} for the depth ablation")
