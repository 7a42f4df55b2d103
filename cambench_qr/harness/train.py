"""Training regimes under Accelerate: the from-scratch recipe, the paper's ZS (linear probe), FT-Struct and
FT-LeakMin, and the depth ablation.

    accelerate launch -m cambench_qr.harness.train --data DIR --backbone resnet50 --pretrained none \
        --regime scratch --out runs/scratch
    cambench-qr train ...   (same options, one process)

What each regime trains, with which optimiser, schedule, loss, augmentation and validation split, is its
:class:`~cambench_qr.harness.recipe.Recipe` (``harness/recipe.py``); every setting can be overridden.
The split is decoded and resized once per run (``data.CachedRows``); each epoch indexes those tensors,
augments each image (``harness.augment``) and normalises the batch on the device.

Loss: cross-entropy (with the recipe's label smoothing) on every sample; FT-LeakMin adds the mean over the
batch's QR samples of ``harness.penalty.leak_penalty`` on a differentiable CAM (``--surrogate``), computed
in the same forward pass as the logits. As in the authors' code the whole model runs in train mode, so
BatchNorm layers use batch statistics (and update their running statistics) even in frozen stages. Logged
per epoch (stdout JSON lines and ``training.json`` history): mean loss, CE, penalty (over QR samples),
train accuracy, the learning rate at the epoch's end, the validation accuracy when a share of ``train`` is
held out and, for FT-LeakMin, ``cam_leakage`` = mean <C, outside>. With a validation split the weights of
the epoch with the best validation accuracy (the earliest among ties) are kept.

Each epoch the full Accelerate state is saved under ``OUT/state/epoch_<k>``; ``--resume`` continues from
the last saved epoch with the run's settings (saved with each epoch's state): different ones are an error.
The final model is written by the main process in timm's Hub layout plus ``training.json``, and the state
folder is then removed.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from tqdm.auto import tqdm

from .. import __version__
from ..parts import LABEL_NAMES
from .augment import Augmentation, AugmentedRows
from .data import CachedRows, TensorRows, data_revision, holdout, load_split, normalize
from .io import write_json
from .models import build_model, check_input_size, load_model, save_model, set_trainable
from .options import add_train_arguments, module_main
from .penalty import leak_penalty
from .recipe import Recipe, resolve_recipe

QR_LABEL = LABEL_NAMES.index("qr")
EVAL_BATCH = 128


def train(
    *,
    data: str,
    out: str | Path,
    config: str = "standard",
    backbone: str | None = None,
    model_args: dict | None = None,
    pretrained: str = "none",
    regime: str = "zs",
    init_from: str | Path | None = None,
    leak_lambda: float = 0.25,
    leak_alpha: float = 0.0,
    surrogate: str = "gradcam",
    batch_size: int = 32,
    image_size: int = 224,
    num_train: int | None = None,
    precision: str = "no",
    seed: int = 0,
    resume: bool = False,
    quiet: bool = False,
    revision: str | None = None,
    permute_labels: bool = False,
    **recipe_overrides,
) -> Path:
    """Train one regime and write the model folder ``out``; returns ``out``.

    ``backbone``: a timm model name (taken from the checkpoint when ``init_from`` is given), built with
    ``model_args``. ``pretrained``: ``none`` (explicit random init), a weights file, or a Hub tag; ignored
    with ``init_from`` (a model folder, or a Hub repo id at ``revision``: its resolved commit is recorded).
    ``recipe_overrides``: any :class:`Recipe` field (``depth``, ``lr``, ``epochs``,
    ``optimizer``, ``weight_decay``, ``schedule``, ``warmup``, ``label_smoothing``, ``augment``,
    ``val_share``); None keeps the regime's default. ``num_train``: train on the first N rows of the split.
    ``precision``: ``no`` or ``bf16`` (bfloat16 autocast of the forward pass). ``permute_labels``: train
    (and validate) on the labels permuted by ``numpy.random.default_rng([seed, 1])``, the data
    randomization sanity check (``harness.sanity``).
    """
    recipe = resolve_recipe(regime, **recipe_overrides)
    if batch_size < 1 or image_size < 8:
        raise ValueError("the batch size must be >= 1 and the image size >= 8")
    if num_train is not None and num_train < 2:
        raise ValueError(f"--num-train must be >= 2, got {num_train}")
    if precision not in ("no", "bf16"):
        raise ValueError(f"unknown precision {precision!r}; choose no or bf16")
    if regime == "ft_leakmin" and recipe.augment:
        raise ValueError("ft_leakmin scores the CAM against the stored part maps, which augmentation "
                         "would move: use --augment 0")
    out = Path(out).resolve()
    if (out / "training.json").exists():
        raise FileExistsError(f"{out} already holds a trained model (training.json); choose another --out")
    if permute_labels and regime == "ft_leakmin":
        raise ValueError("--permute-labels would move the QR labels off the part maps ft_leakmin scores")
    if leak_lambda < 0 or leak_alpha < 0:
        raise ValueError("--leak-lambda and --leak-alpha must be >= 0")

    if init_from is not None:
        model, parent, origin = load_model(init_from, revision)  # a folder, or a Hub repo at ``revision``
        if backbone is not None and backbone != parent.get("backbone", backbone):
            raise ValueError(f"--backbone {backbone} differs from the --init-from checkpoint's "
                             f"{parent.get('backbone')}")
        backbone = parent.get("backbone") or model.pretrained_cfg["architecture"]
        pretrained = parent.get("pretrained", "unknown")
        model_args = parent.get("model_args") or {}
    elif backbone is None:
        raise ValueError("give --backbone (a timm model name) or --init-from (a checkpoint folder)")
    else:
        model = build_model(backbone, pretrained, seed, model_args)
    check_input_size(model, image_size)
    trainable_share = set_trainable(model, recipe.depth)
    split = load_split(data, config, "train")
    if num_train is not None:
        split = split.select(range(min(num_train, len(split))))
    rows = CachedRows(TensorRows(split, image_size, with_parts=regime == "ft_leakmin"), quiet=quiet)
    if permute_labels:
        labels = rows.tensors["label"]
        rows.tensors["label"] = labels[np.random.default_rng([seed, 1]).permutation(len(labels))]
    train_rows, val_rows = holdout(rows.tensors["label"].numpy(), recipe.val_share, seed)
    data_cfg = timm.data.resolve_model_data_config(model)
    mean, std = tuple(data_cfg["mean"]), tuple(data_cfg["std"])
    augmentation = Augmentation(max_severity=recipe.augment) if recipe.augment else None

    accelerator = Accelerator()
    # bf16 autocast by hand: Accelerate's mixed_precision is process-global state, and one process may train
    # several models with different precisions (``cambench-qr run``).
    autocast = functools.partial(torch.autocast, device_type=accelerator.device.type, dtype=torch.bfloat16,
                                 enabled=precision == "bf16")
    optimizer = make_optimizer(model, recipe)
    model, optimizer = accelerator.prepare(model, optimizer)
    steps_per_epoch = len(accelerator.prepare(torch.utils.data.DataLoader(
        torch.utils.data.Subset(rows, train_rows.tolist()), batch_size=batch_size)))
    total_steps = steps_per_epoch * recipe.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: recipe.lr_factor(step, total_steps))
    accelerator.register_for_checkpointing(scheduler)
    engine = None
    if regime == "ft_leakmin":
        engine = penalty_engine(model, accelerator.unwrap_model(model), surrogate)

    state_root = out / "state"
    settings = {"data": data, "config": config, "backbone": backbone, "model_args": model_args or {},
                "pretrained": pretrained, "regime": regime,
                "init_from": None if init_from is None else origin,  # a Hub repo's resolved commit too
                **dataclasses.asdict(recipe), "batch_size": batch_size, "image_size": image_size,
                "num_train": num_train, "precision": precision, "seed": seed, "leak_lambda": leak_lambda,
                "leak_alpha": leak_alpha, "surrogate": surrogate, "permute_labels": permute_labels}
    start_epoch, history, best = 0, [], None
    if resume:
        start_epoch, history, best = _load_latest_state(accelerator, state_root, settings)
    elif any(state_root.glob("epoch_*/progress.json")):
        raise FileExistsError(f"{state_root} holds an interrupted run; pass --resume to continue it")

    for epoch in range(start_epoch, recipe.epochs):
        order = train_rows[np.random.default_rng([seed, epoch]).permutation(len(train_rows))].tolist()
        epoch_rows = rows if augmentation is None else AugmentedRows(rows, augmentation, seed, epoch)
        loader = accelerator.prepare(torch.utils.data.DataLoader(
            torch.utils.data.Subset(epoch_rows, order), batch_size=batch_size, shuffle=False))
        totals = torch.zeros(7, device=accelerator.device)  # loss, ce, penalty, n_qr, correct, n, leakage
        model.train()
        bar = tqdm(loader, desc=f"{regime} epoch {epoch + 1}/{recipe.epochs}", leave=False,
                   disable=quiet or not accelerator.is_main_process)
        for batch in bar:
            images, labels = batch["image"], batch["label"]
            with autocast():
                terms = batch_loss(model, engine, normalize(images, mean, std), labels, batch.get("parts"),
                                   surrogate, leak_lambda, leak_alpha, recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(terms["loss"])
            optimizer.step()
            scheduler.step()
            n = float(len(labels))
            correct = (terms["logits"].argmax(1) == labels).sum().float()
            totals += torch.stack([terms["loss"].detach() * n, terms["ce"].detach() * n,
                                   terms["penalty_sum"].detach(), terms["n_qr"], correct,
                                   torch.tensor(n, device=images.device), terms["leak_sum"]])
        totals = accelerator.reduce(totals, reduction="sum").tolist()
        record = {"epoch": epoch + 1, "loss": totals[0] / totals[5], "ce": totals[1] / totals[5],
                  "penalty": totals[2] / max(totals[3], 1.0), "train_acc": totals[4] / totals[5],
                  "n": int(totals[5]), "lr": scheduler.get_last_lr()[0]}
        if engine is not None:  # <C, outside> of the surrogate CAM on QR samples, whatever lambda is
            record["cam_leakage"] = totals[6] / max(totals[3], 1.0)
        if len(val_rows):
            record["val_acc"] = validation_accuracy(accelerator.unwrap_model(model), rows, val_rows, mean,
                                                    std, autocast)
            if best is None or record["val_acc"] > best["val_acc"]:
                best = {"epoch": epoch + 1, "val_acc": record["val_acc"],
                        "state": copy.deepcopy(accelerator.unwrap_model(model).state_dict())}
        history.append(record)
        if not quiet:
            accelerator.print(json.dumps({"regime": regime, **record}))
        _save_state(accelerator, state_root, epoch + 1, history, best, settings)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(model)
        if best is not None:
            final.load_state_dict(best["state"])
        save_model(final, out, image_size, mean, std)
        write_json(out / "training.json", {
            "backbone": backbone, "model_args": model_args or {}, "regime": regime, "pretrained": pretrained,
            "init_from": None if init_from is None else origin.get("path", origin.get("repo_id")),
            "init_from_commit": None if init_from is None else origin.get("commit"),
            "data": data, "data_revision": data_revision(data, [config]), "config": config,
            **dataclasses.asdict(recipe), "batch_size": batch_size, "seed": seed, "image_size": image_size,
            "precision": precision, "n_train": len(train_rows), "n_val": len(val_rows),
            "permute_labels": permute_labels,
            "best_epoch": None if best is None else best["epoch"],
            "best_val_acc": None if best is None else best["val_acc"],
            "mean": list(mean), "std": list(std), "trainable_share": trainable_share,
            "leak_lambda": leak_lambda if regime == "ft_leakmin" else None,
            "leak_alpha": leak_alpha if regime == "ft_leakmin" else None,
            "surrogate": surrogate if regime == "ft_leakmin" else None,
            "num_processes": accelerator.num_processes, "history": history, "package_version": __version__,
        })
        shutil.rmtree(state_root, ignore_errors=True)
    accelerator.wait_for_everyone()
    return out


def make_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """Adam with L2 weight decay (the paper's) or AdamW with decoupled weight decay, on the trainable
    parameters; AdamW exempts biases and normalisation weights (1-d tensors) from decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": recipe.weight_decay},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=recipe.lr)


@torch.no_grad()
def validation_accuracy(model: torch.nn.Module, rows: CachedRows, val_rows: np.ndarray, mean: tuple,
                        std: tuple, autocast: Callable = contextlib.nullcontext) -> float:
    """Accuracy of ``model`` (eval mode, then restored to train mode) on the held-out rows, under the
    training's ``autocast`` context; every process scores the whole validation set, so all processes keep
    the same best epoch."""
    model.eval()
    correct = 0
    index = torch.as_tensor(val_rows)
    device = next(model.parameters()).device
    for start in range(0, len(index), EVAL_BATCH):
        chunk = index[start:start + EVAL_BATCH]
        images = rows.tensors["image"][chunk].to(device)
        with autocast():
            logits = model(normalize(images, mean, std))
        correct += int((logits.argmax(1).cpu() == rows.tensors["label"][chunk]).sum())
    model.train()
    return correct / len(index)


def batch_loss(model: torch.nn.Module, engine, images: torch.Tensor, labels: torch.Tensor,
               parts: torch.Tensor | None, surrogate: str, leak_lambda: float,
               leak_alpha: float, label_smoothing: float = 0.0) -> dict[str, torch.Tensor]:
    """The loss of one batch: ``CE + sum(penalty over QR samples) / max(n_qr, 1)``, CE with
    ``label_smoothing`` (targets ``(1 - e) onehot + e / K``).

    ``engine`` None: plain forward, no penalty (ZS, FT-Struct). Otherwise one ``CamEngine`` call in
    differentiable mode gives the logits and the surrogate CAM from the same forward pass (FT-LeakMin).
    Returns loss, ce, logits, penalty_sum, leak_sum (sum of <C, outside> over QR samples) and n_qr.
    """
    if engine is None:
        logits = model(images)
        penalty_sum = leak_sum = n_qr = torch.zeros((), device=images.device)
    else:
        cam = engine(images, targets=labels, methods=(surrogate,), differentiable=True)
        logits = cam.logits
        is_qr = labels == QR_LABEL
        per_sample, leakage = leak_penalty(cam.maps[surrogate], parts, leak_lambda, leak_alpha)
        penalty_sum = (per_sample * is_qr).sum()
        leak_sum = (leakage.detach() * is_qr).sum()
        n_qr = is_qr.sum().float()
    ce = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    return {"loss": ce + penalty_sum / n_qr.clamp(min=1), "ce": ce, "logits": logits,
            "penalty_sum": penalty_sum, "leak_sum": leak_sum, "n_qr": n_qr}


def penalty_engine(model: torch.nn.Module, unwrapped: torch.nn.Module, surrogate: str):
    """A CamEngine that forwards through ``model`` (possibly DDP-wrapped, so gradients are synchronised)
    but hooks the target layer of the ``unwrapped`` module.

    The penalty differentiates a CAM built from gradients (a second derivative), which fused attention
    kernels do not implement (e.g. PyTorch's CPU flash attention): timm attention layers are switched to
    their explicit softmax(q k^T) v path, the same function (``transformers`` models: eager attention)."""
    from ..cams import METHODS, CamEngine, default_target_layer
    from ..cams.hf import is_transformers_model
    from .hf_models import use_explicit_attention

    if surrogate not in METHODS:
        raise ValueError(f"unknown --surrogate {surrogate!r}; choose one of {', '.join(METHODS)}")
    for module in unwrapped.modules():
        if getattr(module, "fused_attn", False):
            module.fused_attn = False
    if is_transformers_model(unwrapped):
        use_explicit_attention(unwrapped)
    return CamEngine(model, target_layer=default_target_layer(unwrapped))


def _save_state(accelerator: Accelerator, state_root: Path, epoch: int, history: list[dict],
                best: dict | None, settings: dict) -> None:
    """Save the Accelerate state of a finished epoch and the best epoch's weights so far (``best.pt``);
    ``progress.json`` (written last: epochs done, history, the run's ``settings``) marks it complete, and
    older epochs are then removed."""
    folder = state_root / f"epoch_{epoch:04d}"
    accelerator.save_state(str(folder))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if best is not None:
            torch.save(best, folder / "best.pt")
        write_json(folder / "progress.json", {"epoch": epoch, "history": history, "settings": settings})
        for old in state_root.glob("epoch_*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def check_resume_settings(saved: dict | None, settings: dict, source: Path) -> None:
    """ValueError naming every setting of a resumed run that differs from the interrupted run's (``saved``,
    read from ``source``), so that the recorded settings are the ones used."""
    if not isinstance(saved, dict):
        raise ValueError(f"--resume: {source} records no settings of the interrupted run")
    current = json.loads(json.dumps(settings, default=float))  # tuples as lists, as they were saved
    changed = [f"{key} {saved.get(key)!r} -> {value!r}" for key, value in current.items()
               if saved.get(key) != value]
    if changed:
        raise ValueError(f"--resume with settings that differ from the interrupted run ({source}): "
                         f"{'; '.join(changed)} (resume with the original settings, or start a new --out)")


def _load_latest_state(accelerator: Accelerator, state_root: Path,
                       settings: dict) -> tuple[int, list[dict], dict | None]:
    """Restore the last complete epoch's state of the run with ``settings`` (``check_resume_settings``);
    returns (epochs done, history, best epoch so far or None)."""
    done = sorted(p.parent for p in state_root.glob("epoch_*/progress.json"))
    if not done:
        raise ValueError(f"--resume: no saved epoch under {state_root}")
    progress_path = done[-1] / "progress.json"
    try:
        progress = json.loads(progress_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"--resume: {progress_path} is not valid JSON: {exc}") from None
    check_resume_settings(progress.get("settings"), settings, progress_path)
    accelerator.load_state(str(done[-1]))
    best_path = done[-1] / "best.pt"
    best = torch.load(best_path, map_location="cpu", weights_only=True) if best_path.is_file() else None
    return int(progress["epoch"]), list(progress["history"]), best


def run_from_args(args: argparse.Namespace) -> Path:
    """Call ``train`` with parsed arguments (``--pretrained`` is required unless ``--init-from`` is given)."""
    if args.pretrained is None and args.init_from is None:
        raise ValueError("give --pretrained (none, a weights file, or a Hub tag) or --init-from")
    return train(data=args.data, out=args.out, config=args.config, backbone=args.backbone,
                 model_args=args.model_args, pretrained=args.pretrained or "none", regime=args.regime,
                 init_from=args.init_from, leak_lambda=args.leak_lambda, leak_alpha=args.leak_alpha,
                 surrogate=args.surrogate, batch_size=args.batch_size, image_size=args.image_size,
                 num_train=args.num_train, precision=args.precision, seed=args.seed, resume=args.resume,
                 quiet=getattr(args, "quiet", False), revision=args.revision, depth=args.depth, lr=args.lr,
                 epochs=args.epochs,
                 optimizer=args.optimizer, weight_decay=args.weight_decay, schedule=args.schedule,
                 warmup=args.warmup, label_smoothing=args.label_smoothing, augment=args.augment,
                 val_share=args.val_share, permute_labels=args.permute_labels)


def main(argv: list[str] | None = None) -> int:
    return module_main("train", add_train_arguments, run_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
