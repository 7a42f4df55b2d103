"""Shared plumbing of the three studies (scripts/study_transfer.py, study_surrogate.py, study_vit_cnn.py).

A study builds the dataset configs it needs into a fresh ``<out>/data`` folder, trains its models under
``<out>/models/<name>`` (FT regimes start from the backbone's ZS model, as in the harness presets),
evaluates them into ``<out>/eval/<name>``, and writes ``<out>/results.json`` (settings, provenance, tidy
result rows) and ``<out>/results.md`` (the tables), atomically. Everything runs through the package's
public API: ``build_dataset`` / ``build_real``, ``harness.train.train``, ``harness.evaluate.evaluate``.
Defaults are tiny (random-init timm test models, 128 px, a few hundred images) so that a study runs in
minutes on 2 CPU cores; the flags scale it up.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
from pathlib import Path

import torch

from cambench_qr import __version__
from cambench_qr.dataset_builder.build import build_dataset
from cambench_qr.dataset_builder.real import build_real
from cambench_qr.harness.evaluate import evaluate
from cambench_qr.harness.io import write_atomic
from cambench_qr.harness.options import PAPER_METHODS
from cambench_qr.harness.train import train

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = REPO.parent / "shared" / "realqr"
METHODS = ("gradcam", *PAPER_METHODS)


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """The flags every study takes (defaults: the tiny CPU setting)."""
    parser.add_argument("--out", default=f"runs/studies/{name}", help="folder: data, models, results")
    parser.add_argument("--image-size", type=int, default=128, help="canvas and input side, px (default 128)")
    parser.add_argument("--num-train", type=int, default=240, help="standard train rows (default 240)")
    parser.add_argument("--num-test", type=int, default=80, help="standard test rows (default 80)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per regime (default 2)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--methods", default=",".join(METHODS), help="CAM methods evaluated (comma list)")
    parser.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples per CI (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="data, init and bootstrap seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def split_list(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def build_data(args: argparse.Namespace, extra: tuple[str, ...] = (), photos: str | Path | None = None,
               num_interventions: int = 0) -> str:
    """A fresh ``<out>/data`` with ``standard`` and the ``extra`` configs (``real`` from ``photos``;
    ``interventions`` with ``num_interventions`` rows); returns its path."""
    data = Path(args.out) / "data"
    shutil.rmtree(data, ignore_errors=True)
    build_dataset("standard", data, num_train=args.num_train, num_test=args.num_test, seed=args.seed,
                  image_size=args.image_size, quiet=args.quiet)
    if "real" in extra:
        build_real(photos or DEFAULT_PHOTOS, data, quiet=args.quiet)
    if "interventions" in extra:
        build_dataset("interventions", data, num_train=0, num_test=num_interventions, seed=args.seed,
                      image_size=args.image_size, quiet=args.quiet)
    return str(data)


def train_runs(args: argparse.Namespace, data: str, backbone: str, runs: dict[str, dict]) -> dict[str, Path]:
    """Train ``backbone``'s ZS model (run ``<backbone>-zs``) and then each of ``runs`` (name -> ``train()``
    overrides with a ``regime``) from it; returns name -> model folder."""
    common = {"data": data, "epochs": args.epochs, "batch_size": args.batch_size,
              "image_size": args.image_size, "seed": args.seed, "quiet": args.quiet}
    models = Path(args.out) / "models"
    zs_name = f"{backbone}-zs"
    out = {zs_name: train(out=models / zs_name, backbone=backbone, pretrained="none", regime="zs", **common)}
    for name, overrides in runs.items():
        out[name] = train(out=models / name, init_from=out[zs_name], **common, **overrides)
    return out


def evaluate_runs(args: argparse.Namespace, data: str, models: dict[str, Path], configs: tuple[str, ...],
                  methods: tuple[str, ...]) -> dict[str, dict]:
    """Evaluate every model on ``configs`` with ``methods``; returns name -> summary.json contents."""
    summaries = {}
    for name, model in models.items():
        out = evaluate(model=model, data=data, out=Path(args.out) / "eval" / name, configs=configs,
                       methods=methods, batch_size=args.batch_size, faithfulness_samples=0,
                       cross_resolution=(), latency_batch=0, n_boot=args.n_boot, seed=args.seed,
                       quiet=args.quiet)
        summaries[name] = json.loads((out / "summary.json").read_text())
    return summaries


def structure(summary: dict, config: str, method: str, score: str) -> dict:
    """The clean structure row (mean, CI, n) of one config / method / score of a summary."""
    for r in summary["structure"]:
        if (r["config"], r["method"], r["score"], r["distortion"]) == (config, method, score, "none"):
            return r
    raise KeyError(f"summary has no clean {config}/{method}/{score} row")


def accuracy(summary: dict, config: str) -> float:
    return next(r["value"] for r in summary["accuracy"] if r["config"] == config)


def stats(row: dict) -> dict:
    """The mean, CI and count of a summary row."""
    return {k: row[k] for k in ("mean", "ci_low", "ci_high", "n")}


def cell(row: dict, digits: int = 3) -> str:
    """``mean [ci_low, ci_high]`` of a summary row."""
    return f"{row['mean']:.{digits}f} [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"


def provenance() -> dict:
    """What the numbers ran on: package, torch, device, threads, CPU, and that the models are random-init."""
    return {"package_version": __version__, "torch": torch.__version__, "device": "cpu",
            "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
            "weights": "random init (no pretrained weights available offline)"}


def write_results(args: argparse.Namespace, name: str, rows: list[dict], markdown: str) -> Path:
    """``results.json`` (study, settings, provenance, rows) and ``results.md`` under ``--out``, atomically."""
    out = Path(args.out)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "quiet")}
    payload = {"study": name, "settings": settings, "provenance": provenance(), "rows": rows}
    text = json.dumps(payload, indent=2, default=float) + "\n"
    write_atomic(out / "results.json", lambda tmp: tmp.write_text(text))
    write_atomic(out / "results.md", lambda tmp: tmp.write_text(markdown))
    return out
