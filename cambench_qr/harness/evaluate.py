"""Evaluate a trained model's explanations on CAMBench-QR configs; write ``per_sample.parquet`` and
``summary.json`` (``cambench_qr.results``), atomically.

    cambench-qr evaluate --model runs/ft_struct --data DIR --configs standard,blur --out results/ft_struct
    accelerate launch -m cambench_qr.harness.evaluate ...   (same options, sharded over processes)

This module orchestrates; each job has its own module:

- ``harness.eval_loop``: the batch loop of one config (CAMs, gathering, per-sample rows);
- ``harness.scoring``: per-sample structure scores beside the null maps, and the structure summary;
- ``harness.faithfulness``: threshold IoU, insertion / deletion and their summary;
- ``harness.causal``: part occlusion drops and their rank correlation with the mass ratios, and the
  intervention agreement (with the ``interventions`` config);
- ``harness.vs_null``: each method against each null map, with a verdict;
- ``harness.accuracy``: accuracy per config and by negative kind, QR version band, distortion severity,
  and competence; ``harness.transfer``: the real-photo transfer gaps (with ``standard`` and ``real``);
- ``harness.cross_resolution`` and ``harness.latency`` (with peak memory).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import timm
from accelerate import Accelerator

from .. import __version__
from ..cams import check_methods
from ..results import (
    NULL_BASELINES,
    PAPER_METHODS,
    PER_SAMPLE_FILE,
    SUMMARY_FILE,
    VS_NULL_SCORES,
    AccuracyRow,
    DataEntry,
    GroupedAccuracyRow,
    LatencyRow,
    MethodErrorRow,
    ModelEntry,
    Summary,
    ThresholdIouRow,
    accuracy_row,
    kind_row,
)
from .accuracy import COMPETENCE_FLOOR, accuracy_groups, is_competent
from .causal import causal_summary, intervention_pairs, mass_drop_summary
from .cross_resolution import default_sides, scores_across_sides
from .data import data_revision
from .eval_loop import eval_split, evaluate_config, row_meta
from .faithfulness import IOU_THRESHOLDS, faithfulness_summary
from .io import hardware, write_atomic, write_json
from .latency import latency
from .models import check_input_size, load_model
from .options import add_evaluate_arguments, module_main, parse_methods
from .sanity_eval import check_sanity_settings, load_permuted, probe_methods, sanity_summary
from .scoring import Scorer, structure_summary
from .transfer import transfer_summary
from .vs_null import vs_null_summary


def evaluate(
    *,
    model: str | Path,
    data: str,
    out: str | Path,
    configs: tuple[str, ...] | list[str] = ("standard",),
    methods: tuple[str, ...] | list[str] = PAPER_METHODS,
    split: str = "test",
    batch_size: int = 16,
    image_size: int | None = None,
    max_samples: int | None = None,
    faithfulness_samples: int = 64,
    faithfulness_steps: int = 20,
    cross_resolution: tuple[int, ...] | None = None,
    cross_resolution_samples: int = 64,
    latency_batch: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    overwrite: bool = False,
    quiet: bool = False,
    revision: str | None = None,
    sanity: bool = False,
    sanity_images: int = 32,
    sanity_steps: int | None = None,
    permuted_model: str | Path | None = None,
) -> Path:
    """Evaluate the model folder ``model`` on ``configs`` of ``data``; returns the results folder ``out``.

    ``image_size``: input side (default: the training size recorded in ``training.json``; a model folder
    without it needs ``image_size``). ``cross_resolution``: input sides for the robustness check
    (default: the input side scaled by 224/256/320 over 224; ``()`` skips it). ``latency_batch``: batch
    size of the latency measurement (default ``batch_size``; 0 skips it). ``overwrite``: replace the
    results already in ``out`` (without it, a folder holding results is an error).

    ``methods``: the package's and pytorch-grad-cam's (``pgc:<name>``); an unknown name is an error listing
    the available ones, and a method that cannot run on the model is reported in ``summary.json``
    (``method_errors`` and its latency row) while the others are scored. ``sanity``: also run the sanity
    checks (``harness.sanity_eval``) on ``sanity_images`` QR images, ``sanity_steps`` chunks of blocks
    (None: one per block), with data randomization against ``permuted_model`` when given.
    """
    configs = tuple(configs)
    if not configs or not methods:
        raise ValueError("give at least one config and one CAM method")
    requested = check_methods(methods)
    check_sanity_settings(sanity, sanity_images, sanity_steps, permuted_model)
    if batch_size < 1 or faithfulness_steps < 2:
        raise ValueError("batch size must be >= 1 and faithfulness steps >= 2")
    out = Path(out)
    check_out(out, overwrite)
    net, training, origin = load_model(model, revision)  # a folder, or a Hub repo id at ``revision``
    data_cfg = timm.data.resolve_model_data_config(net)
    image_size = trained_image_size(model, image_size, training, data_cfg)
    check_input_size(net, image_size)
    permuted = None if permuted_model is None else load_permuted(permuted_model, net)
    if cross_resolution is None:
        cross_resolution = default_sides(image_size)
    accelerator = Accelerator()
    scorer = Scorer(net, tuple(data_cfg["mean"]), tuple(data_cfg["std"]), accelerator.device)

    splits = {c: eval_split(data, c, split, max_samples) for c in configs}
    failed = probe_methods(scorer, splits[configs[0]], requested, image_size)
    methods = tuple(m for m in requested if m not in failed)
    if not methods:
        raise ValueError("no CAM method could run on this model: "
                         + "; ".join(f"{m}: {why}" for m, why in failed.items()))
    columns: dict[str, list] = {}
    accuracy: list[AccuracyRow] = []
    grouped: list[GroupedAccuracyRow] = []
    iou_curves: list[ThresholdIouRow] = []
    cam_grid = None
    thresholds = [round(t, 4) for t in IOU_THRESHOLDS.tolist()]
    for config, rows in splits.items():
        result = evaluate_config(accelerator, scorer, rows, config, split, methods, batch_size, image_size,
                                 faithfulness_samples, faithfulness_steps, seed, quiet)
        accuracy.append(AccuracyRow(config=config, split=split, n=result.n, value=result.accuracy))
        grouped += [accuracy_row({"config": config, "split": split, **r})
                    for r in accuracy_groups(result.correct, row_meta(rows))]
        cam_grid = cam_grid or result.cam_grid
        for key, values in result.columns.items():
            columns.setdefault(key, []).extend(values)
        iou_curves += [ThresholdIouRow(config=config, split=split, method=m, t=thresholds, iou=curve)
                       for m, curve in result.iou_curves.items()]
    robustness = iou_curves + scores_across_sides(accelerator, scorer, splits[configs[0]], configs[0], split,
                                                  methods, cross_resolution, cross_resolution_samples,
                                                  batch_size, quiet)
    latency_batch = batch_size if latency_batch is None else latency_batch
    timings = []
    if latency_batch > 0 and accelerator.is_main_process:
        timings = latency(scorer, splits[configs[0]], methods, image_size, latency_batch)
        timings += [LatencyRow(method=m, batch_size=latency_batch, ms_per_img=None, peak_mem_mb=None,
                               device=str(accelerator.device), image_size=image_size, error=why)
                    for m, why in failed.items()]
    sanity_rows = None
    if sanity and accelerator.is_main_process:
        sanity_rows = sanity_summary(scorer, splits, requested, image_size, images=sanity_images,
                                     steps=sanity_steps, permuted=permuted, batch_size=batch_size,
                                     n_boot=n_boot, seed=seed)

    if accelerator.is_main_process:
        structure = structure_summary(columns, n_boot, seed)
        summary = Summary(
            package_version=__version__,
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            model=ModelEntry(path=origin.get("path", origin.get("repo_id")),
                             backbone=training.get("backbone"), regime=training.get("regime"),
                             pretrained=training.get("pretrained"),
                             image_size=image_size, name=Path(model).resolve().name, cam_grid=cam_grid,
                             competent=is_competent(accuracy), competence_floor=COMPETENCE_FLOOR,
                             source=origin),
            data=DataEntry(path=data, revision=data_revision(data, list(configs)), configs=list(configs)),
            hardware=hardware(accelerator.device, accelerator.num_processes),
            settings={
                "split": split, "methods": list(requested), "null_baselines": list(NULL_BASELINES),
                "vs_null_scores": list(VS_NULL_SCORES),
                "batch_size": batch_size, "max_samples": max_samples, "n_boot": n_boot, "seed": seed,
                "faithfulness_samples": faithfulness_samples, "faithfulness_steps": faithfulness_steps,
                "cam_target": "predicted class", "normalize": "relu + sum", "fill": "per-image mean",
            },
            accuracy=accuracy + grouped,
            structure=structure,
            vs_null=[kind_row(r) for r in vs_null_summary(columns, NULL_BASELINES, n_boot=n_boot, seed=seed)],
            faithfulness=faithfulness_summary(columns, n_boot, seed),
            causal=mass_drop_summary(columns) + [kind_row(r) for r in causal_summary(
                columns, intervention_pairs(splits), n_boot=n_boot, seed=seed)],
            robustness=robustness + [kind_row(r) for r in transfer_summary(accuracy, structure)],
            latency=timings,
            method_errors=[MethodErrorRow(method=m, error=why) for m, why in failed.items()],
            sanity=sanity_rows,
        )
        write_atomic(out / PER_SAMPLE_FILE, lambda tmp: pq.write_table(pa.table(columns), tmp))
        write_json(out / SUMMARY_FILE, summary.as_json())
    accelerator.wait_for_everyone()
    return out


def check_out(out: Path, overwrite: bool) -> None:
    """FileExistsError when ``out`` already holds results (``summary.json`` or ``per_sample.parquet``) and
    ``overwrite`` is not set."""
    held = [name for name in (SUMMARY_FILE, PER_SAMPLE_FILE) if (out / name).exists()]
    if held and not overwrite:
        raise FileExistsError(f"{out} already holds results ({', '.join(held)}); choose another --out or "
                              "pass --overwrite")


def trained_image_size(model: str | Path, image_size: int | None, training: dict, data_cfg: dict) -> int:
    """The input side to evaluate at: ``image_size`` when given, else the training size recorded in
    ``training.json``. Without either it is an error: a checkpoint's timm config holds the architecture's
    default size (``data_cfg["input_size"]``), not the size the model was trained at."""
    if image_size is not None:
        return image_size
    if training.get("image_size"):
        return int(training["image_size"])
    raise ValueError(f"{model} has no training.json recording its training input size; pass --image-size "
                     f"(timm's default for the architecture, {data_cfg['input_size'][-1]}, need not be the "
                     "trained size)")


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def run_from_args(args: argparse.Namespace) -> Path:
    """Call ``evaluate`` with parsed arguments."""
    sides = None
    if args.cross_resolution is not None:
        sides = tuple(int(v) for v in _split_list(args.cross_resolution))
    return evaluate(model=args.model, data=args.data, out=args.out, configs=_split_list(args.configs),
                    methods=parse_methods(args.methods), split=args.split, batch_size=args.batch_size,
                    image_size=args.image_size, max_samples=args.max_samples,
                    faithfulness_samples=args.faithfulness_samples, cross_resolution=sides,
                    latency_batch=args.latency_batch, n_boot=args.n_boot, seed=args.seed,
                    overwrite=args.overwrite, quiet=getattr(args, "quiet", False), revision=args.revision,
                    sanity=args.sanity, sanity_images=args.sanity_images, sanity_steps=args.sanity_steps,
                    permuted_model=args.sanity_permuted_model)


def main(argv: list[str] | None = None) -> int:
    return module_main("evaluate", add_evaluate_arguments, run_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
