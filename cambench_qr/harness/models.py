"""Backbones for the harness: building (pretrained from the Hub, a local file, or an explicit random
init), choosing what trains (the depth ablation), checking the input size, and the checkpoint layout.

timm checkpoints use timm's Hub layout (``config.json`` + ``model.safetensors`` with ``label_names``) plus
``training.json``, so ``timm.create_model("local-dir:<abs path>", pretrained=True)`` and
``timm.create_model("hf-hub:<user>/<repo>", pretrained=True)`` reload them. ``transformers:<Hub id or
folder>`` backbones are ``transformers`` image classifiers (``harness.hf_models``), saved with
``save_pretrained`` plus ``preprocessor_config.json`` and ``training.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import timm
import torch

from ..cams.hf import is_transformers_model
from ..parts import LABEL_NAMES
from . import backbones  # noqa: F401  (registers the package's timm backbones)
from .hf_models import (
    PREFIX,
    build_transformers_model,
    is_transformers_folder,
    load_transformers_checkpoint,
    save_transformers_model,
    transformers_stage_names,
)
from .options import repo_id_like
from .recipe import DEPTHS

# How many backbone stages train at each depth (the classifier always trains); None = every parameter.
_STAGES_AT_DEPTH = {"head": 0, "last": 1, "last2": 2, "full": None}


def build_model(backbone: str, pretrained: str, seed: int = 0,
                model_args: dict | None = None) -> torch.nn.Module:
    """A timm classifier with ``len(LABEL_NAMES)`` outputs (``transformers:<source>``: a ``transformers``
    one, see ``hf_models.build_transformers_model``).

    ``model_args``: keyword arguments of ``timm.create_model`` that change the architecture (for example
    ``{"output_stride": 16}`` or a ViT's ``patch_size``); timm records them in the checkpoint's
    ``config.json``, so the saved model reloads with plain ``timm.create_model``.

    ``pretrained``: ``none`` (random init, seeded by ``seed``), a path to a local weights file
    (.safetensors / .pth state dict), or a Hub tag such as ``timm/resnet50.a1_in1k``. The 1000-class
    head of ImageNet weights is dropped and re-initialised. Missing weights are an error, never a silent
    random init.
    """
    if backbone.startswith(PREFIX):
        return build_transformers_model(backbone.removeprefix(PREFIX), pretrained, seed, model_args)
    if not timm.is_model(backbone):
        raise ValueError(f"unknown timm backbone {backbone!r} (see timm.list_models())")
    reserved = {"num_classes", "pretrained", "pretrained_cfg_overlay"} & set(model_args or {})
    if reserved:
        raise ValueError(f"model arguments {sorted(reserved)} are set by the harness; leave them out")
    kwargs: dict = {**(model_args or {}), "num_classes": len(LABEL_NAMES)}
    if pretrained != "none":
        path = Path(pretrained)
        if path.is_file():
            overlay = {"file": str(path.resolve())}
        elif "/" in pretrained and not path.exists():
            overlay = {"hf_hub_id": pretrained.removeprefix("hf-hub:")}
        else:
            raise ValueError(f"--pretrained {pretrained!r} is neither 'none', a weights file, nor a Hub tag "
                             "like timm/resnet50.a1_in1k")
        kwargs.update(pretrained=True, pretrained_cfg_overlay=overlay)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = timm.create_model(backbone, **kwargs)
        except TypeError as exc:
            raise ValueError(f"timm model {backbone!r} does not take the arguments {model_args}: "
                             f"{exc}") from exc
        except (OSError, RuntimeError) as exc:
            if pretrained == "none":
                raise
            reason = str(exc).splitlines()[0]
            raise ValueError(f"cannot load weights {pretrained!r} for {backbone!r} (offline and not in the "
                             f"local Hugging Face cache, or incompatible): {reason}") from exc
    model.pretrained_cfg = {**model.pretrained_cfg, "label_names": list(LABEL_NAMES)}
    return model


def resolve_source(source: str | Path, revision: str | None = None) -> tuple[Path, dict]:
    """A model folder, or a Hub repo id (``user/name``, ``hf-hub:`` or ``transformers:`` prefix allowed)
    downloaded through huggingface_hub's cache at ``revision`` (default: main) -> (local folder, origin).

    ``origin``: ``{"path"}`` for a folder; ``{"repo_id", "revision", "commit"}`` (the resolved commit) for
    a repo. A repo that cannot be fetched (offline and not cached, no such repo or revision) is an error.
    """
    path = Path(source)
    if path.exists():
        if revision is not None:
            raise ValueError(f"--revision {revision} applies to Hub repo ids, not to the folder {source}")
        return path.resolve(), {"path": str(path.resolve())}
    repo_id = str(source).removeprefix("hf-hub:").removeprefix(PREFIX)
    if not repo_id_like(repo_id):
        raise ValueError(f"{source} is neither a model folder nor a Hub repo id like user/name")
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo_id, revision=revision))
    except Exception as exc:  # huggingface_hub raises several HTTP / cache error types for the same fault
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        at = f" at revision {revision}" if revision else ""
        raise ValueError(f"cannot fetch the model {repo_id}{at} (offline and not in the local Hugging Face "
                         f"cache, or no such repo or revision): {reason}") from exc
    return folder, {"repo_id": repo_id, "revision": revision or "main", "commit": folder.name}


def load_model(source: str | Path, revision: str | None = None) -> tuple[torch.nn.Module, dict, dict]:
    """A harness checkpoint from a folder or a Hub repo (:func:`resolve_source`) -> (model, training.json
    contents or {}, origin)."""
    folder, origin = resolve_source(source, revision)
    model, training = load_checkpoint(folder)
    if "repo_id" in origin and is_transformers_model(model):
        model.pretrained_cfg["architecture"] = PREFIX + origin["repo_id"]  # not the cache folder
    return model, training, origin


def load_checkpoint(model_dir: str | Path) -> tuple[torch.nn.Module, dict]:
    """A harness checkpoint folder (timm or ``transformers`` layout) -> (model, training.json contents)."""
    model_dir = Path(model_dir).resolve()
    if not (model_dir / "config.json").is_file() or not (model_dir / "model.safetensors").is_file():
        raise ValueError(f"{model_dir} is not a model folder (config.json + model.safetensors)")
    training_path = model_dir / "training.json"
    training = json.loads(training_path.read_text()) if training_path.is_file() else {}
    if is_transformers_folder(model_dir):
        return load_transformers_checkpoint(model_dir), training
    model = timm.create_model(f"local-dir:{model_dir}", pretrained=True)
    return model, training


def save_model(model: torch.nn.Module, out: Path, image_size: int, mean: tuple, std: tuple) -> None:
    """Write ``model`` to the folder ``out``: timm's Hub layout with ``label_names``, or for a
    ``transformers`` model ``save_pretrained`` plus the image-processor config of the harness's
    preprocessing (``image_size``, ``mean``, ``std``)."""
    if is_transformers_model(model):
        save_transformers_model(model, out, image_size, mean, std)
    else:
        timm.models.save_for_hf(model, str(out), model_config={"label_names": list(LABEL_NAMES)},
                                safe_serialization=True)


def stage_names(model: torch.nn.Module) -> list[str]:
    """The backbone's stage module names in forward order, from timm's ``feature_info`` (``transformers``
    models: ``hf_models.transformers_stage_names``)."""
    if is_transformers_model(model):
        return transformers_stage_names(model)
    return [info["module"] for info in model.feature_info]


def set_trainable(model: torch.nn.Module, depth: str) -> float:
    """Freeze everything except the classifier plus the last 0 / 1 / 2 stages (``head`` / ``last`` /
    ``last2``) or nothing (``full``). Parameters registered after the first trainable stage (final norms,
    the head) train too. Returns the trainable share of parameters in [0, 1]."""
    if depth not in DEPTHS:
        raise ValueError(f"unknown depth {depth!r}; choose one of {', '.join(DEPTHS)}")
    n_stages = _STAGES_AT_DEPTH[depth]
    names = [name for name, _ in model.named_parameters()]
    if n_stages is None:
        first = 0
    elif n_stages == 0:
        classifier = model.pretrained_cfg["classifier"]
        prefixes = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        first = min(i for i, n in enumerate(names) if n.startswith(tuple(p + "." for p in prefixes)))
    else:
        prefix = stage_names(model)[-n_stages] + "."
        first = min(i for i, n in enumerate(names) if n.startswith(prefix))
    total = trainable = 0
    for i, (_, param) in enumerate(model.named_parameters()):
        param.requires_grad_(i >= first)
        total += param.numel()
        trainable += param.numel() if i >= first else 0
    return trainable / total


def check_input_size(model: torch.nn.Module, image_size: int) -> None:
    """Run one dummy forward at ``image_size``; ValueError naming the size when the model cannot take it."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=next(model.parameters()).device))
    except Exception as exc:  # any failure here means this input size is unusable for this model
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"model {model.pretrained_cfg.get('architecture')!r} cannot take "
                         f"{image_size}x{image_size} input: {message}") from exc
    finally:
        model.train(was_training)
