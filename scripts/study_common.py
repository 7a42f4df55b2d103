"""Shared plumbing of the three studies (scripts/study_transfer.py, study_surrogate.py, study_vit_cnn.py).

The studies start from the competent models ``make run`` trains (``cambench-qr run``: the quick preset's
backbones trained from random init with the scratch recipe, then FT-LeakMin from each), found in the local
Hub root (``--hub``, default ``hub``); when any is missing, ``cambench-qr run`` runs first (it skips the
steps that are done), so a study never explains a model that does not do the task. A study builds the test
configs it needs into a fresh ``<out>/data`` folder (the run's seed and canvas, so its ``standard`` test
rows are the run's), fine-tunes any extra model under ``<out>/models/<name>`` from the run's scratch model
on the run's training rows, evaluates into ``<out>/eval/<name>``, and writes ``<out>/results.json``
(settings, provenance, tidy result rows) and ``<out>/results.md`` (the tables), atomically. Everything runs
through the package's public API: ``pipeline.run``, ``build_dataset`` / ``build_real``,
``harness.train.train``, ``harness.evaluate.evaluate``.
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
from cambench_qr.harness.accuracy import config_accuracy
from cambench_qr.harness.evaluate import evaluate
from cambench_qr.harness.io import write_atomic
from cambench_qr.harness.options import PAPER_METHODS
from cambench_qr.harness.presets import PRESETS, Backbone, RunSpec
from cambench_qr.harness.train import train
from cambench_qr.hub_cards import HubRoot
from cambench_qr.hub_cards.layout import DEFAULT_USER
from cambench_qr.pipeline import run

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = REPO / "assets" / "realqr"
METHODS = ("gradcam", *PAPER_METHODS)
PRESET = PRESETS["quick"]
SCRATCH = next(r for r in PRESET.runs if r.regime == "scratch")
LEAKMIN = next(r for r in PRESET.runs if r.regime == "ft_leakmin")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """The flags every study takes."""
    parser.add_argument("--out", default=f"runs/studies/{name}", help="folder: data, models, results")
    parser.add_argument("--hub", default="hub", help="local Hub root of `make run` (default hub)")
    parser.add_argument("--num-test", type=int, default=400, help="standard test rows (default 400)")
    parser.add_argument("--num-train", type=int, help="training rows of each fine-tune (default: the run's)")
    parser.add_argument("--methods", default=",".join(METHODS), help="CAM methods evaluated (comma list)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per CI (default 1000)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def split_list(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def backbone(name: str) -> Backbone:
    """The quick preset's backbone called ``name``."""
    for candidate in PRESET.backbones:
        if candidate.name == name:
            return candidate
    raise SystemExit(f"no backbone {name!r} in the quick preset (it has: "
                     f"{', '.join(b.name for b in PRESET.backbones)})")


def run_models(args: argparse.Namespace) -> tuple[HubRoot, dict[str, Path]]:
    """The models of ``make run`` (folder name -> folder) in ``--hub``; runs ``cambench-qr run`` first when
    any of them is missing."""
    hub = HubRoot(Path(args.hub), DEFAULT_USER)
    models = {}
    for spec in PRESET.backbones:
        for run_spec in PRESET.runs:
            folder = hub.model_dir(spec.name, run_spec.name)
            models[folder.name] = folder
    if not all((folder / "training.json").is_file() for folder in models.values()):
        run("quick", hub_root=args.hub, quiet=args.quiet)
    return hub, models


def build_data(args: argparse.Namespace, extra: tuple[str, ...] = (), photos: str | Path | None = None,
               num_interventions: int = 0) -> str:
    """A fresh ``<out>/data`` with the run's ``standard`` test rows and the ``extra`` configs (``real`` from
    ``photos``; ``interventions`` with ``num_interventions`` rows); returns its path."""
    data = Path(args.out) / "data"
    shutil.rmtree(data, ignore_errors=True)
    common = {"seed": PRESET.seed, "image_size": PRESET.canvas_size, "quiet": args.quiet}
    build_dataset("standard", data, num_train=0, num_test=args.num_test, **common)
    if "real" in extra:
        build_real(photos or DEFAULT_PHOTOS, data, quiet=args.quiet)
    if "interventions" in extra:
        build_dataset("interventions", data, num_train=0, num_test=num_interventions, **common)
    return str(data)


def fine_tune(args: argparse.Namespace, hub: HubRoot, backbone_name: str,
              runs: dict[str, dict]) -> dict[str, Path]:
    """FT-LeakMin runs (name -> overrides of the quick preset's FT-LeakMin run) from ``make run``'s scratch
    model of ``backbone_name``, on the run's training rows; returns name -> model folder."""
    spec = backbone(backbone_name)
    parent = hub.model_dir(spec.name, SCRATCH.name)
    models = {}
    for name, overrides in runs.items():
        run_spec = RunSpec(name, LEAKMIN.regime, {**LEAKMIN.overrides, **overrides}, SCRATCH.name)
        out = Path(args.out) / "models" / name
        shutil.rmtree(out, ignore_errors=True)
        kwargs = PRESET.train_kwargs(run_spec, spec, str(hub.dataset_dir), out, init_from=parent,
                                     quiet=args.quiet)
        if args.num_train is not None:
            kwargs["num_train"] = args.num_train
        models[name] = train(**kwargs)
    return models


def evaluate_runs(args: argparse.Namespace, data: str, models: dict[str, Path], configs: tuple[str, ...],
                  methods: tuple[str, ...]) -> dict[str, dict]:
    """Evaluate every model on ``configs`` with ``methods``; returns name -> summary.json contents."""
    summaries = {}
    for name, model in models.items():
        out = Path(args.out) / "eval" / name
        shutil.rmtree(out, ignore_errors=True)
        evaluate(model=model, data=data, out=out, configs=configs, methods=methods,
                 batch_size=PRESET.batch_size, faithfulness_samples=0, cross_resolution=(), latency_batch=0,
                 n_boot=args.n_boot, seed=PRESET.seed, quiet=args.quiet)
        summaries[name] = json.loads((out / "summary.json").read_text())
    return summaries


def structure(summary: dict, config: str, method: str, score: str) -> dict:
    """The clean structure row (mean, CI, n) of one config / method / score of a summary."""
    for r in summary["structure"]:
        if (r["config"], r["method"], r["score"], r["distortion"]) == (config, method, score, "none"):
            return r
    raise KeyError(f"summary has no clean {config}/{method}/{score} row")


def accuracy(summary: dict, config: str) -> float:
    return next(r["value"] for r in config_accuracy(summary["accuracy"]) if r["config"] == config)


def stats(row: dict) -> dict:
    """The mean, CI and count of a summary row."""
    return {k: row[k] for k in ("mean", "ci_low", "ci_high", "n")}


def cell(row: dict, digits: int = 3) -> str:
    """``mean [ci_low, ci_high]`` of a summary row."""
    return f"{row['mean']:.{digits}f} [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"


def provenance() -> dict:
    """What the numbers ran on: package, torch, device, threads, CPU, and how the models were trained."""
    return {"package_version": __version__, "torch": torch.__version__, "device": "cpu",
            "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
            "weights": "trained from random init by `make run` (quick preset, scratch recipe)"}


def write_results(args: argparse.Namespace, name: str, rows: list[dict], markdown: str) -> Path:
    """``results.json`` (study, settings, provenance, rows) and ``results.md`` under ``--out``, atomically."""
    out = Path(args.out)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "quiet")}
    payload = {"study": name, "settings": settings, "provenance": provenance(), "rows": rows}
    text = json.dumps(payload, indent=2, default=float) + "\n"
    write_atomic(out / "results.json", lambda tmp: tmp.write_text(text))
    write_atomic(out / "results.md", lambda tmp: tmp.write_text(markdown))
    return out
