"""Training regimes under Accelerate: ZS (linear probe), FT-Struct, FT-LeakMin, and the depth ablation.

    accelerate launch -m cambench_qr.harness.train --data DIR --backbone resnet50 --pretrained none \
        --regime zs --out runs/zs
    cambench-qr train ...   (same options, one process)

Loss: cross-entropy on every sample; FT-LeakMin adds the mean over the batch's QR samples of
``harness.penalty.leak_penalty`` on a differentiable CAM (``--surrogate``), computed in the same forward
pass as the logits. Optimiser: Adam with weight decay 1e-4. Paper defaults (notes/paper.md s.2): ZS lr 1e-3
for 2 epochs on the head; FT-Struct lr 1e-3 for 2 epochs on the last stage + head; FT-LeakMin lr 3e-4 for
4 epochs, both FT regimes starting from the ZS model (``--init-from``). As in the authors' code the whole
model runs in train mode, so BatchNorm layers use batch statistics (and update their running statistics)
even in frozen stages. Logged per epoch (stdout JSON lines and ``training.json`` history): mean loss, CE,
penalty (over QR samples), train accuracy and, for FT-LeakMin, ``cam_leakage`` = mean <C, outside>.

Each epoch the full Accelerate state is saved under ``OUT/state/epoch_<k>``; ``--resume`` continues from
the last saved epoch. The final model is written by the main process in timm's Hub layout plus
``training.json`` (DESIGN contract 5), and the state folder is then removed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from tqdm.auto import tqdm

from .. import __version__
from ..parts import LABEL_NAMES
from .data import TensorRows, data_revision, load_split, normalize
from .io import write_json
from .models import build_model, check_input_size, load_checkpoint, set_trainable
from .options import DEPTHS, REGIME_DEFAULTS, REGIMES, add_train_arguments, module_main
from .penalty import leak_penalty

WEIGHT_DECAY = 1e-4
QR_LABEL = LABEL_NAMES.index("qr")


def train(
    *,
    data: str,
    out: str | Path,
    config: str = "standard",
    backbone: str | None = None,
    pretrained: str = "none",
    regime: str = "zs",
    depth: str | None = None,
    init_from: str | Path | None = None,
    leak_lambda: float = 0.25,
    leak_alpha: float = 0.0,
    surrogate: str = "gradcam",
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int = 32,
    image_size: int = 224,
    seed: int = 0,
    resume: bool = False,
    quiet: bool = False,
) -> Path:
    """Train one regime and write the model folder ``out``; returns ``out``.

    ``backbone``: a timm model name (taken from the checkpoint when ``init_from`` is given).
    ``pretrained``: ``none`` (explicit random init), a weights file, or a Hub tag; ignored with ``init_from``.
    ``depth``/``lr``/``epochs`` default to the regime's paper values (REGIME_DEFAULTS).
    """
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}")
    depth = depth or REGIME_DEFAULTS[regime]["depth"]
    lr = REGIME_DEFAULTS[regime]["lr"] if lr is None else lr
    epochs = REGIME_DEFAULTS[regime]["epochs"] if epochs is None else epochs
    if depth not in DEPTHS:
        raise ValueError(f"unknown depth {depth!r}; choose one of {', '.join(DEPTHS)}")
    if epochs < 1 or batch_size < 1 or image_size < 8:
        raise ValueError("epochs and batch size must be >= 1 and the image size >= 8")
    out = Path(out).resolve()
    if (out / "training.json").exists():
        raise FileExistsError(f"{out} already holds a trained model (training.json); choose another --out")
    if leak_lambda < 0 or leak_alpha < 0:
        raise ValueError("--leak-lambda and --leak-alpha must be >= 0")

    if init_from is not None:
        model, parent = load_checkpoint(init_from)
        if backbone is not None and backbone != parent.get("backbone", backbone):
            raise ValueError(f"--backbone {backbone} differs from the --init-from checkpoint's "
                             f"{parent.get('backbone')}")
        backbone = parent.get("backbone") or model.pretrained_cfg["architecture"]
        pretrained = parent.get("pretrained", "unknown")
    elif backbone is None:
        raise ValueError("give --backbone (a timm model name) or --init-from (a checkpoint folder)")
    else:
        model = build_model(backbone, pretrained, seed)
    check_input_size(model, image_size)
    trainable_share = set_trainable(model, depth)
    split = load_split(data, config, "train")
    rows = TensorRows(split, image_size, with_parts=regime == "ft_leakmin")
    data_cfg = timm.data.resolve_model_data_config(model)
    mean, std = tuple(data_cfg["mean"]), tuple(data_cfg["std"])

    accelerator = Accelerator()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr,
                                 weight_decay=WEIGHT_DECAY)
    model, optimizer = accelerator.prepare(model, optimizer)
    engine = None
    if regime == "ft_leakmin":
        engine = penalty_engine(model, accelerator.unwrap_model(model), surrogate)

    state_root = out / "state"
    start_epoch, history = 0, []
    if resume:
        start_epoch, history = _load_latest_state(accelerator, state_root)
    elif state_root.exists():
        raise FileExistsError(f"{state_root} holds an interrupted run; pass --resume to continue it")

    for epoch in range(start_epoch, epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(rows)).tolist()
        loader = accelerator.prepare(torch.utils.data.DataLoader(
            torch.utils.data.Subset(rows, order), batch_size=batch_size, shuffle=False))
        totals = torch.zeros(7, device=accelerator.device)  # loss, ce, penalty, n_qr, correct, n, leakage
        model.train()
        bar = tqdm(loader, desc=f"{regime} epoch {epoch + 1}/{epochs}", leave=False,
                   disable=quiet or not accelerator.is_main_process)
        for batch in bar:
            images = normalize(batch["image"], mean, std)
            labels = batch["label"]
            terms = batch_loss(model, engine, images, labels, batch.get("parts"), surrogate, leak_lambda,
                               leak_alpha)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(terms["loss"])
            optimizer.step()
            n = float(len(labels))
            correct = (terms["logits"].argmax(1) == labels).sum().float()
            totals += torch.stack([terms["loss"].detach() * n, terms["ce"].detach() * n,
                                   terms["penalty_sum"].detach(), terms["n_qr"], correct,
                                   torch.tensor(n, device=images.device), terms["leak_sum"]])
        totals = accelerator.reduce(totals, reduction="sum").tolist()
        record = {"epoch": epoch + 1, "loss": totals[0] / totals[5], "ce": totals[1] / totals[5],
                  "penalty": totals[2] / max(totals[3], 1.0), "train_acc": totals[4] / totals[5],
                  "n": int(totals[5])}
        if engine is not None:  # <C, outside> of the surrogate CAM on QR samples, whatever lambda is
            record["cam_leakage"] = totals[6] / max(totals[3], 1.0)
        history.append(record)
        if not quiet:
            accelerator.print(json.dumps({"regime": regime, **record}))
        _save_state(accelerator, state_root, epoch + 1, history)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(model)
        timm.models.save_for_hf(final, str(out), model_config={"label_names": list(LABEL_NAMES)},
                                safe_serialization=True)
        write_json(out / "training.json", {
            "backbone": backbone, "regime": regime, "depth": depth, "pretrained": pretrained,
            "init_from": None if init_from is None else str(Path(init_from).resolve()),
            "data": data, "data_revision": data_revision(data, [config]), "config": config,
            "epochs": epochs, "lr": lr, "weight_decay": WEIGHT_DECAY, "batch_size": batch_size,
            "seed": seed, "image_size": image_size, "mean": list(mean), "std": list(std),
            "trainable_share": trainable_share,
            "leak_lambda": leak_lambda if regime == "ft_leakmin" else None,
            "leak_alpha": leak_alpha if regime == "ft_leakmin" else None,
            "surrogate": surrogate if regime == "ft_leakmin" else None,
            "num_processes": accelerator.num_processes, "history": history, "package_version": __version__,
        })
        shutil.rmtree(state_root, ignore_errors=True)
    accelerator.wait_for_everyone()
    return out


def batch_loss(model: torch.nn.Module, engine, images: torch.Tensor, labels: torch.Tensor,
               parts: torch.Tensor | None, surrogate: str, leak_lambda: float,
               leak_alpha: float) -> dict[str, torch.Tensor]:
    """The loss of one batch: ``CE + sum(penalty over QR samples) / max(n_qr, 1)``.

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
    ce = F.cross_entropy(logits, labels)
    return {"loss": ce + penalty_sum / n_qr.clamp(min=1), "ce": ce, "logits": logits,
            "penalty_sum": penalty_sum, "leak_sum": leak_sum, "n_qr": n_qr}


def penalty_engine(model: torch.nn.Module, unwrapped: torch.nn.Module, surrogate: str):
    """A CamEngine that forwards through ``model`` (possibly DDP-wrapped, so gradients are synchronised)
    but hooks the target layer of the ``unwrapped`` module.

    The penalty differentiates a CAM built from gradients (a second derivative), which fused attention
    kernels do not implement (e.g. PyTorch's CPU flash attention): timm attention layers are switched to
    their explicit softmax(q k^T) v path, the same function."""
    from ..cams import METHODS, CamEngine, default_target_layer

    if surrogate not in METHODS:
        raise ValueError(f"unknown --surrogate {surrogate!r}; choose one of {', '.join(METHODS)}")
    for module in unwrapped.modules():
        if getattr(module, "fused_attn", False):
            module.fused_attn = False
    return CamEngine(model, target_layer=default_target_layer(unwrapped))


def _save_state(accelerator: Accelerator, state_root: Path, epoch: int, history: list[dict]) -> None:
    """Save the Accelerate state of a finished epoch; ``progress.json`` (written last) marks it complete,
    and older epochs are then removed."""
    folder = state_root / f"epoch_{epoch:04d}"
    accelerator.save_state(str(folder))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(folder / "progress.json", {"epoch": epoch, "history": history})
        for old in state_root.glob("epoch_*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _load_latest_state(accelerator: Accelerator, state_root: Path) -> tuple[int, list[dict]]:
    """Restore the last complete epoch's state; returns (epochs done, history)."""
    done = sorted(p.parent for p in state_root.glob("epoch_*/progress.json"))
    if not done:
        raise ValueError(f"--resume: no saved epoch under {state_root}")
    accelerator.load_state(str(done[-1]))
    progress = json.loads((done[-1] / "progress.json").read_text())
    return int(progress["epoch"]), list(progress["history"])


def run_from_args(args: argparse.Namespace) -> Path:
    """Call ``train`` with parsed arguments (``--pretrained`` is required unless ``--init-from`` is given)."""
    if args.pretrained is None and args.init_from is None:
        raise ValueError("give --pretrained (none, a weights file, or a Hub tag) or --init-from")
    return train(data=args.data, out=args.out, config=args.config, backbone=args.backbone,
                 pretrained=args.pretrained or "none", regime=args.regime, depth=args.depth,
                 init_from=args.init_from, leak_lambda=args.leak_lambda, leak_alpha=args.leak_alpha,
                 surrogate=args.surrogate, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                 image_size=args.image_size, seed=args.seed, resume=args.resume,
                 quiet=getattr(args, "quiet", False))


def main(argv: list[str] | None = None) -> int:
    return module_main("train", add_train_arguments, run_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
