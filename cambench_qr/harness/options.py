"""Command-line options of the harness and the constants they name, kept free of heavy imports so that
``cambench-qr --help`` stays fast. Shared by ``cambench-qr train|evaluate`` and the ``-m`` entry points.

Size-like options are bounded by the maxima of ``cambench_qr.limits`` when parsed; ``check_arguments`` then
checks, before any model or data is loaded, the folders named by ``--data`` / ``--model`` / ``--init-from``
(present, with readable JSON and weights files) and the memory the sizes imply."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import OneLineParser, parse_arguments, run_command
from ..limits import (
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_IMAGE_SIZE,
    MAX_N_BOOT,
    MAX_ROWS,
    MAX_SEED,
    bounded_int,
    check_memory,
    finite_float,
)
from ..results import PAPER_METHODS
from .recipe import DEPTHS, OPTIMIZERS, REGIMES, SCHEDULES

MIN_IMAGE_SIZE = 8


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The training options, shared by ``cambench-qr train`` and ``python -m cambench_qr.harness.train``."""
    parser.add_argument("--data", required=True, help="dataset folder (Hub repo layout) or Hub repo id")
    parser.add_argument("--config", default="standard", help="dataset config (default: standard)")
    parser.add_argument("--backbone",
                        help="timm model name, e.g. resnet50, or transformers:<Hub id or folder> for a "
                             "transformers image classifier (default: from --init-from)")
    parser.add_argument("--pretrained", default=None,
                        help="'none' (random init), a weights file, or a Hub tag like timm/resnet50.a1_in1k; "
                             "for transformers:<source>, 'none' or <source> (its weights)")
    parser.add_argument("--model-args", type=json.loads, default=None,
                        help='timm model keyword arguments as JSON, e.g. \'{"output_stride": 16}\'')
    parser.add_argument("--regime", choices=REGIMES, default="zs",
                        help="scratch: every parameter from random init with the full recipe; "
                             "zs / ft_struct / ft_leakmin: the paper's regimes")
    parser.add_argument("--depth", choices=DEPTHS,
                        help="what trains (default: full for scratch, head for zs, last for ft_*)")
    parser.add_argument("--init-from",
                        help="start from this checkpoint folder or Hub repo id (FT regimes: the ZS model)")
    parser.add_argument("--revision", help="revision (branch, tag, commit) of a Hub repo id in --init-from")
    parser.add_argument("--leak-lambda", type=finite_float, default=0.25, help="weight of <C, outside>")
    parser.add_argument("--leak-alpha", type=finite_float, default=0.0, help="weight of -<C, structure>")
    parser.add_argument("--surrogate", default="gradcam", help="CAM method inside the penalty")
    parser.add_argument("--epochs", type=bounded_int(1, MAX_EPOCHS),
                        help=f"at most {MAX_EPOCHS} (default: the regime's value)")
    parser.add_argument("--lr", type=finite_float, help="peak learning rate (default: the regime's value)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help="default: adamw for scratch, adam otherwise")
    parser.add_argument("--weight-decay", type=finite_float, help="default: 0.05 for scratch, 1e-4 otherwise")
    parser.add_argument("--schedule", choices=SCHEDULES,
                        help="default: cosine (with warm-up) for scratch, constant otherwise")
    parser.add_argument("--warmup", type=finite_float,
                        help="warm-up share of the optimiser steps (scratch: 0.05)")
    parser.add_argument("--label-smoothing", type=finite_float, help="default: 0.1 for scratch, 0 otherwise")
    parser.add_argument("--augment", type=bounded_int(0, 5),
                        help="highest severity (0-5) of the builder distortions used as augmentation, "
                             "0 = none (default: 3 for scratch, 0 otherwise)")
    parser.add_argument("--val-share", type=finite_float,
                        help="share of train held out to pick the best epoch (default: 0.1 for scratch, 0 "
                             "otherwise: the last epoch is kept)")
    parser.add_argument("--num-train", type=bounded_int(2, MAX_ROWS),
                        help=f"train on the first N rows of the split, at most {MAX_ROWS} (default: all)")
    parser.add_argument("--precision", choices=("no", "bf16"), default="no",
                        help="bf16: bfloat16 autocast of the forward pass (faster on CPUs with AVX-512 BF16)")
    parser.add_argument("--batch-size", type=bounded_int(1, MAX_BATCH_SIZE), default=32,
                        help=f"at most {MAX_BATCH_SIZE} (default 32)")
    parser.add_argument("--image-size", type=bounded_int(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE), default=224,
                        help=f"input side, px, {MIN_IMAGE_SIZE}-{MAX_IMAGE_SIZE} (default 224)")
    parser.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=0)
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


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The evaluation options of ``cambench-qr evaluate`` and ``python -m cambench_qr.harness.evaluate``."""
    parser.add_argument("--model", required=True,
                        help="model folder or Hub repo id (timm Hub layout or transformers save_pretrained)")
    parser.add_argument("--revision", help="revision (branch, tag, commit) of a Hub repo id in --model")
    parser.add_argument("--data", required=True, help="dataset folder (Hub repo layout) or Hub repo id")
    parser.add_argument("--configs", default="standard", help="comma-separated configs (default: standard)")
    parser.add_argument("--methods", default=",".join(PAPER_METHODS),
                        help=f"comma-separated CAM methods, the package's or pytorch-grad-cam's as "
                             f"pgc:<name> (default: {','.join(PAPER_METHODS)})")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", required=True, help="results folder (per_sample.parquet, summary.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace the results already in --out")
    parser.add_argument("--batch-size", type=bounded_int(1, MAX_BATCH_SIZE), default=16,
                        help=f"at most {MAX_BATCH_SIZE} (default 16)")
    parser.add_argument("--image-size", type=bounded_int(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE),
                        help=f"input side, px, {MIN_IMAGE_SIZE}-{MAX_IMAGE_SIZE} "
                             "(default: the training size in the model's training.json)")
    parser.add_argument("--max-samples", type=bounded_int(1, MAX_ROWS),
                        help="evaluate the first N rows of each config")
    parser.add_argument("--faithfulness-samples", type=bounded_int(0, MAX_ROWS), default=64,
                        help="QR samples per config with insertion/deletion curves (default 64)")
    parser.add_argument("--cross-resolution",
                        help="comma-separated input sides (default: the side times 224/256/320 over 224)")
    parser.add_argument("--latency-batch", type=bounded_int(0, MAX_BATCH_SIZE),
                        help="batch size of the latency check (0 skips it)")
    parser.add_argument("--n-boot", type=bounded_int(1, MAX_N_BOOT), default=1000,
                        help="bootstrap resamples for the CIs")
    parser.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=0)
    parser.add_argument("--sanity", action="store_true",
                        help="also run the sanity checks (cascading model randomization, random logit; "
                             "docs/sanity.md) and write their rows to summary.json")
    parser.add_argument("--sanity-images", type=bounded_int(2, MAX_ROWS), default=32,
                        help="QR test images of the clean headline config the sanity checks use (default 32)")
    parser.add_argument("--sanity-steps", type=bounded_int(1, MAX_ROWS),
                        help="chunks of blocks randomized top-down (default: one per block)")
    parser.add_argument("--sanity-permuted-model",
                        help="model folder trained with --permute-labels: adds the data randomization test")


def check_arguments(name: str, args: argparse.Namespace) -> None:
    """Checks of ``train`` / ``evaluate`` arguments that need more than the parser: the input folders and
    the memory the sizes imply (ValueError naming the argument or file)."""
    check_data_folder(args.data)
    model = args.init_from if name == "train" else args.model
    hub_model = model is not None and not Path(model).exists() and repo_id_like(
        model.removeprefix("hf-hub:").removeprefix("transformers:"))
    if model is not None and not hub_model:  # a Hub repo id is fetched (or refused) by models.load_model
        check_model_folder(Path(model), "--init-from" if name == "train" else "--model")
    sides = [args.image_size or MIN_IMAGE_SIZE]
    if name == "evaluate" and args.cross_resolution:
        sides += [_side(text) for text in args.cross_resolution.split(",") if text.strip()]
    # the float32 input batch, and for training the decoded rows kept in memory (uint8 image + part map)
    side = max(sides)
    check_memory(f"--batch-size {args.batch_size} at {side} px", args.batch_size * 3 * 4 * side**2)
    if name == "train" and args.num_train is not None:
        check_memory(f"--num-train {args.num_train} at --image-size {args.image_size}",
                     args.num_train * 4 * args.image_size ** 2)


def _side(text: str) -> int:
    try:
        return bounded_int(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)(text.strip())
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"--cross-resolution: {exc}") from None


def check_data_folder(data: str) -> None:
    """``--data`` must be a folder, or a Hub repo id (``owner/name``) that can be reached: online, or
    offline with the dataset in the local Hugging Face caches."""
    path = Path(data)
    if path.is_dir():
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    hub_id = repo_id_like(data)
    if hub_id and not path.exists() and (not offline or _in_hf_cache(data)):
        return
    why = "is not a folder" if path.exists() else "does not exist"
    hub = " (HF_HUB_OFFLINE is set and it is not in the local cache)" if offline and hub_id else ""
    raise ValueError(f"--data {data}: {why}{hub}")


def repo_id_like(text: str) -> bool:
    """Whether ``text`` reads as a Hub repo id ``owner/name`` rather than a path."""
    return text.count("/") == 1 and not text.startswith((".", "/", "~"))


def _in_hf_cache(repo_id: str) -> bool:
    """Whether the Hub dataset ``repo_id`` is in the Hugging Face hub cache or the ``datasets`` cache."""
    from datasets import config
    from huggingface_hub import constants

    owner, name = repo_id.split("/")
    return ((Path(constants.HF_HUB_CACHE) / f"datasets--{owner}--{name}").is_dir()
            or (Path(config.HF_DATASETS_CACHE) / f"{owner}___{name}").is_dir())


def check_model_folder(folder: Path, flag: str) -> None:
    """A model folder: ``config.json`` and ``model.safetensors`` present and readable, ``training.json`` (when
    present) valid JSON. Only headers are read."""
    from safetensors import SafetensorError, safe_open

    if not folder.is_dir():
        raise ValueError(f"{flag} {folder}: no such folder")
    for file in ("config.json", "model.safetensors"):
        if not (folder / file).is_file():
            raise ValueError(f"{flag} {folder} is not a model folder (no {file})")
    for file in ("config.json", "training.json"):
        if (folder / file).is_file():
            try:
                json.loads((folder / file).read_bytes())
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                raise ValueError(f"{folder / file} is not valid JSON: {exc}") from None
    try:
        with safe_open(str(folder / "model.safetensors"), "pt"):
            pass
    except SafetensorError as exc:
        raise ValueError(f"{folder / 'model.safetensors'} is truncated or corrupt: {exc}") from None


def module_main(name: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                run: Callable[[argparse.Namespace], object], argv: list[str] | None = None) -> int:
    """The ``python -m cambench_qr.harness.<name>`` entry (what ``accelerate launch -m`` runs): parse,
    check (``check_arguments``), run; a user error ends as one line on stderr with exit status 2
    (``errors.run_command``)."""
    parser = OneLineParser(prog=f"python -m cambench_qr.harness.{name}")
    add_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    args = parse_arguments(parser, argv)
    if isinstance(args, int):
        return args

    def handler(parsed: argparse.Namespace) -> None:
        check_arguments(name, parsed)
        run(parsed)

    return run_command(name, args, handler)
