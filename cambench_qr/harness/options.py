"""Command-line options of the harness and the constants they name, kept free of heavy imports so that
``cambench-qr --help`` stays fast. Shared by ``cambench-qr train|evaluate`` and the ``-m`` entry points."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from .recipe import DEPTHS, OPTIMIZERS, REGIMES, SCHEDULES


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The training options, shared by ``cambench-qr train`` and ``python -m cambench_qr.harness.train``."""
    parser.add_argument("--data", required=True, help="dataset folder (Hub repo layout) or Hub repo id")
    parser.add_argument("--config", default="standard", help="dataset config (default: standard)")
    parser.add_argument("--backbone", help="timm model name, e.g. resnet50 (default: from --init-from)")
    parser.add_argument("--pretrained", default=None,
                        help="'none' (random init), a weights file, or a Hub tag like timm/resnet50.a1_in1k")
    parser.add_argument("--model-args", type=json.loads, default=None,
                        help='timm model keyword arguments as JSON, e.g. \'{"output_stride": 16}\'')
    parser.add_argument("--regime", choices=REGIMES, default="zs",
                        help="scratch: every parameter from random init with the full recipe; "
                             "zs / ft_struct / ft_leakmin: the paper's regimes")
    parser.add_argument("--depth", choices=DEPTHS,
                        help="what trains (default: full for scratch, head for zs, last for ft_*)")
    parser.add_argument("--init-from", help="start from this checkpoint folder (FT regimes: the ZS model)")
    parser.add_argument("--leak-lambda", type=float, default=0.25, help="weight of <C, outside>")
    parser.add_argument("--leak-alpha", type=float, default=0.0, help="weight of -<C, structure>")
    parser.add_argument("--surrogate", default="gradcam", help="CAM method inside the penalty")
    parser.add_argument("--epochs", type=int, help="default: the regime's value")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: the regime's value)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help="default: adamw for scratch, adam otherwise")
    parser.add_argument("--weight-decay", type=float, help="default: 0.05 for scratch, 1e-4 otherwise")
    parser.add_argument("--schedule", choices=SCHEDULES,
                        help="default: cosine (with warm-up) for scratch, constant otherwise")
    parser.add_argument("--warmup", type=float, help="warm-up share of the optimiser steps (scratch: 0.05)")
    parser.add_argument("--label-smoothing", type=float, help="default: 0.1 for scratch, 0 otherwise")
    parser.add_argument("--augment", type=int,
                        help="highest severity (0-5) of the builder distortions used as augmentation, "
                             "0 = none (default: 3 for scratch, 0 otherwise)")
    parser.add_argument("--val-share", type=float,
                        help="share of train held out to pick the best epoch (default: 0.1 for scratch, 0 "
                             "otherwise: the last epoch is kept)")
    parser.add_argument("--num-train", type=int, help="train on the first N rows of the split (default: all)")
    parser.add_argument("--precision", choices=("no", "bf16"), default="no",
                        help="bf16: bfloat16 autocast of the forward pass (faster on CPUs with AVX-512 BF16)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    parser.add_argument("--permute-labels", action="store_true",
                        help="train on a seeded random permutation of the labels (the data randomization "
                             "sanity check: a model that cannot have learned the task)")


def parse_methods(text: str) -> tuple[str, ...]:
    """Comma-separated CAM method names (the engine's own and ``pgc:<name>``) -> a tuple; ValueError
    listing the available names for an unknown one."""
    from ..cams import check_methods

    return check_methods(tuple(t.strip() for t in text.split(",") if t.strip()))


PAPER_METHODS = ("layercam", "eigengradcam", "xgradcam")


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The evaluation options of ``cambench-qr evaluate`` and ``python -m cambench_qr.harness.evaluate``."""
    parser.add_argument("--model", required=True, help="model folder (timm Hub layout + training.json)")
    parser.add_argument("--data", required=True, help="dataset folder (Hub repo layout) or Hub repo id")
    parser.add_argument("--configs", default="standard", help="comma-separated configs (default: standard)")
    parser.add_argument("--methods", default=",".join(PAPER_METHODS),
                        help=f"comma-separated CAM methods, the package's or pytorch-grad-cam's as "
                             f"pgc:<name> (default: {','.join(PAPER_METHODS)})")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", required=True, help="results folder (per_sample.parquet, summary.json)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, help="input side (default: the training size)")
    parser.add_argument("--max-samples", type=int, help="evaluate the first N rows of each config")
    parser.add_argument("--faithfulness-samples", type=int, default=64,
                        help="QR samples per config with insertion/deletion curves (default 64)")
    parser.add_argument("--cross-resolution",
                        help="comma-separated input sides (default: the side times 224/256/320 over 224)")
    parser.add_argument("--latency-batch", type=int, help="batch size of the latency check (0 skips it)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs")
    parser.add_argument("--seed", type=int, default=0)


def module_main(name: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                run: Callable[[argparse.Namespace], object], argv: list[str] | None = None) -> int:
    """The ``python -m cambench_qr.harness.<name>`` entry (what ``accelerate launch -m`` runs): parse,
    run, and turn a user error into one line on stderr with exit status 2."""
    parser = argparse.ArgumentParser(prog=f"python -m cambench_qr.harness.{name}")
    add_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    args = parser.parse_args(argv)
    try:
        run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    return 0
