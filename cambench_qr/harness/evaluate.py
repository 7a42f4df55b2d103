"""Evaluate a trained model's explanations on CAMBench-QR configs; write ``per_sample.parquet`` and
``summary.json``, atomically.

    cambench-qr evaluate --model runs/ft_struct --data DIR --configs standard,blur --out results/ft_struct
    accelerate launch -m cambench_qr.harness.evaluate ...   (same options, sharded over processes)

Per batch one ``CamEngine`` call yields the logits (accuracy) and every CAM method (target: the predicted
class, as in the paper). On QR samples, each raw CAM is upsampled (bilinear) to the input resolution
and scored with ``metrics.structure_scores`` (ReLU, then sum-normalised), beside four null baselines
(``harness.baselines``). Also per QR sample: threshold IoU with the box (``faithfulness.threshold_iou``),
logit drops when the finder / timing pixels or area-matched random pixels of the box's other parts are
set to the mean fill (``faithfulness.occlusion_drops``), and for the first ``faithfulness_samples`` QR
samples of each config insertion / deletion AUCs (``faithfulness.insertion_deletion``). Summaries: mean
with bootstrap CI per config / method / distortion / severity (``metrics.aggregate``); each method
against each null map, paired per image, with a better / indistinguishable / worse verdict for FMR, TMR,
BL and DtS (``vs_null``, ``harness.vs_null``); accuracy per config and per negative kind, QR version
band and distortion severity (``harness.accuracy``); whether the model is competent (standard accuracy
>= ``accuracy.COMPETENCE_FLOOR``) and its CAM grid (the raw maps' (h, w) at the input side); Spearman rho
between each method's finder (timing) mass and the finder (timing) logit drop, threshold-IoU curves, a
cross-resolution check and latency. With the ``interventions`` config among ``configs``, ``causal`` also
holds the per-part intervention logit drops and each method's causal agreement (``harness.causal``); with
``standard`` and ``real``, ``robustness`` holds the real-photo transfer gaps (``harness.transfer``).

Under ``accelerate launch`` every process scores its shard and ``gather_for_metrics`` collects the rows;
each sample is identified by its row number and the run fails if one is missing or duplicated.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.stats
import timm
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from .. import __version__
from ..cams import METHODS, CamEngine, upsample
from ..metrics import SCORE_NAMES, aggregate, prepare_parts, region_masks, structure_scores
from ..parts import LABEL_NAMES
from .accuracy import COMPETENCE_FLOOR, META_COLUMNS, accuracy_groups, is_competent
from .baselines import NULL_BASELINES, null_maps
from .causal import LOGIT_COLUMNS, causal_summary, intervention_pairs
from .data import TensorRows, data_revision, load_split, normalize
from .faithfulness import IOU_THRESHOLDS, control_mask, insertion_deletion, occlusion_drops, threshold_iou
from .io import hardware, write_atomic, write_json
from .models import check_input_size, load_model
from .options import PAPER_METHODS, add_evaluate_arguments, module_main
from .transfer import transfer_summary
from .vs_null import VS_NULL_SCORES, vs_null_summary

SCHEMA_VERSION = 1
QR_LABEL = LABEL_NAMES.index("qr")
# The structure scores summarised in summary.json (per_sample.parquet has every score and its chance).
SUMMARY_SCORES = ("fmr", "tmr", "bl", "auc_misf", "auc_mist", "auc_bg", "dts", "dts_modules", "lift_finder",
                  "lift_timing", "lift_structure", "lift_outside", "pointing_finder", "pointing_box",
                  "rank_finder", "rank_structure", "rank_box", "roc_auc_structure", "roc_auc_box")
CAUSAL_COLUMNS = ("drop_finder", "drop_timing", "drop_finder_control", "drop_timing_control")
FAITHFULNESS_COLUMNS = ("insertion_auc", "deletion_auc")
CROSS_RES_SCORES = ("fmr", "tmr", "bl")
# Per-sample score columns: every structure score, its chance value, and whether the map had mass.
SCORE_COLUMNS = (*SCORE_NAMES, *(f"chance_{k}" for k in SCORE_NAMES), "valid")


class _Scorer:
    """The model, its CAM engine and normalisation, on one device."""

    def __init__(self, model: torch.nn.Module, mean: tuple, std: tuple, device: torch.device):
        self.model = model.to(device).eval()
        self.engine = CamEngine(self.model)
        self.mean, self.std, self.device = mean, std, device

    @torch.no_grad()
    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of uint8-range images (B,3,H,W)."""
        return self.model(normalize(images, self.mean, self.std))

    def explain(self, images: torch.Tensor, methods: tuple[str, ...]):
        """One engine call: CamOutput with raw maps for ``methods`` and the logits."""
        return self.engine(normalize(images, self.mean, self.std), methods=methods)


def score_maps(maps: dict[str, torch.Tensor], parts: torch.Tensor, module_px: torch.Tensor,
               size: tuple[int, int]) -> dict[str, dict[str, torch.Tensor]]:
    """Raw maps (B,h,w) -> {method: structure scores at the input resolution}, ReLU + sum-normalised.
    The part masks and distance transforms are prepared once and shared by every method."""
    prepared = prepare_parts(parts, module_px=module_px)
    return {m: structure_scores(upsample(raw.float(), size), prepared, signed=True)
            for m, raw in maps.items()}


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
    quiet: bool = False,
    revision: str | None = None,
) -> Path:
    """Evaluate the model folder ``model`` on ``configs`` of ``data``; returns the results folder ``out``.

    ``image_size``: input side (default: the training size). ``cross_resolution``: input sides for the
    robustness check (default: the input side scaled by 224/256/320 over 224; ``()`` skips it).
    ``latency_batch``: batch size of the latency measurement (default ``batch_size``; 0 skips it).
    """
    configs, methods = tuple(configs), tuple(methods)
    if not configs or not methods:
        raise ValueError("give at least one config and one CAM method")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown CAM method(s) {unknown}; choose from {', '.join(METHODS)}")
    if batch_size < 1 or faithfulness_steps < 2:
        raise ValueError("batch size must be >= 1 and faithfulness steps >= 2")
    out = Path(out)
    net, training, origin = load_model(model, revision)  # a folder, or a Hub repo id at ``revision``
    data_cfg = timm.data.resolve_model_data_config(net)
    image_size = image_size or training.get("image_size") or data_cfg["input_size"][-1]
    check_input_size(net, image_size)
    if cross_resolution is None:
        cross_resolution = tuple(sorted({round(image_size * side / 224) for side in (224, 256, 320)}))
    accelerator = Accelerator()
    scorer = _Scorer(net, tuple(data_cfg["mean"]), tuple(data_cfg["std"]), accelerator.device)

    splits = {c: _eval_split(data, c, split, max_samples) for c in configs}
    columns: dict[str, list] = defaultdict(list)
    accuracy, accuracy_by_group, iou_curves, cam_grid = [], [], [], None
    for config, rows in splits.items():
        result = _evaluate_config(accelerator, scorer, rows, config, split, methods, batch_size, image_size,
                                  faithfulness_samples, faithfulness_steps, seed, quiet)
        accuracy.append({"config": config, "split": split, "n": result["n"], "value": result["accuracy"]})
        accuracy_by_group += [{"config": config, "split": split, **r}
                              for r in accuracy_groups(result["correct"], _row_meta(rows))]
        cam_grid = cam_grid or result["cam_grid"]
        for key, values in result["columns"].items():
            columns[key].extend(values)
        thresholds = [round(t, 4) for t in IOU_THRESHOLDS.tolist()]
        iou_curves += [{"config": config, "split": split, "method": m, "kind": "threshold_iou",
                        "t": thresholds, "iou": curve} for m, curve in result["iou"].items()]
    robustness = iou_curves + _cross_resolution(accelerator, scorer, splits[configs[0]], configs[0], split,
                                                methods, cross_resolution, cross_resolution_samples,
                                                batch_size, quiet)
    latency_batch = batch_size if latency_batch is None else latency_batch
    latency = _latency(accelerator, scorer, splits[configs[0]], methods, image_size, latency_batch)

    if accelerator.is_main_process:
        structure = _structure_summary(columns, n_boot, seed)
        summary = {
            "schema_version": SCHEMA_VERSION, "package_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "model": {"path": origin.get("path", origin.get("repo_id")), "backbone": training.get("backbone"),
                      "regime": training.get("regime"), "pretrained": training.get("pretrained"),
                      "image_size": image_size, "name": Path(model).resolve().name, "cam_grid": cam_grid,
                      "competent": is_competent(accuracy), "competence_floor": COMPETENCE_FLOOR,
                      "source": origin},
            "data": {"path": data, "revision": data_revision(data, list(configs)), "configs": list(configs)},
            "hardware": hardware(accelerator.device, accelerator.num_processes),
            "settings": {
                "split": split, "methods": list(methods), "null_baselines": list(NULL_BASELINES),
                "vs_null_scores": list(VS_NULL_SCORES),
                "batch_size": batch_size, "max_samples": max_samples, "n_boot": n_boot, "seed": seed,
                "faithfulness_samples": faithfulness_samples, "faithfulness_steps": faithfulness_steps,
                "cam_target": "predicted class", "normalize": "relu + sum", "fill": "per-image mean",
            },
            "accuracy": accuracy + accuracy_by_group,
            "structure": structure,
            "vs_null": vs_null_summary(columns, NULL_BASELINES, n_boot=n_boot, seed=seed),
            "faithfulness": _faithfulness_summary(columns, n_boot, seed),
            "causal": _causal_summary(columns) + causal_summary(columns, intervention_pairs(splits),
                                                                n_boot=n_boot, seed=seed),
            "robustness": robustness + transfer_summary(accuracy, structure),
            "latency": latency,
        }
        write_atomic(out / "per_sample.parquet", lambda tmp: pq.write_table(pa.table(dict(columns)), tmp))
        write_json(out / "summary.json", summary)
    accelerator.wait_for_everyone()
    return out


def _eval_split(data: str, config: str, split: str, max_samples: int | None):
    """The evaluation rows of one config (the first ``max_samples``); ValueError without QR samples."""
    rows = load_split(data, config, split)
    if max_samples is not None:
        rows = rows.select(range(min(max_samples, len(rows))))
    if QR_LABEL not in set(rows["label"]):
        raise ValueError(f"config {config!r} split {split!r} has no QR samples: no structure to score")
    return rows


def _row_meta(rows) -> dict[str, list]:
    """The columns of a split that the grouped accuracy rows count by (those the split has)."""
    return {c: rows[c] for c in META_COLUMNS if c in rows.column_names}


def _evaluate_config(accelerator: Accelerator, scorer: _Scorer, rows, config: str, split: str,
                     methods: tuple[str, ...], batch_size: int, image_size: int, faithfulness_samples: int,
                     steps: int, seed: int, quiet: bool) -> dict:
    """Score one config; returns accuracy, whether each row (in row order) was classified correctly, the
    CAM grid (h, w) of the raw maps, the per-sample columns (QR rows x methods) and IoU curves."""
    labels = np.asarray(rows["label"])
    qr_rows = np.flatnonzero(labels == QR_LABEL)
    faithful = torch.as_tensor(qr_rows[:faithfulness_samples])
    loader = accelerator.prepare(torch.utils.data.DataLoader(TensorRows(rows, image_size), batch_size))
    size = (image_size, image_size)
    names = (*methods, *NULL_BASELINES)
    gathered: dict[str, list[torch.Tensor]] = defaultdict(list)
    cam_grid = None
    bar = tqdm(loader, desc=f"evaluate {config}", leave=False,
               disable=quiet or not accelerator.is_main_process)
    for batch in bar:
        cams = scorer.explain(batch["image"], methods)
        cam_grid = cam_grid or list(cams.maps[methods[0]].shape[-2:])
        record = {"index": batch["index"], "label": batch["label"], "pred": cams.logits.argmax(1),
                  "logits": cams.logits.detach()}
        qr = (batch["label"] == QR_LABEL).nonzero().squeeze(1)
        sub = {k: batch[k][qr] for k in ("image", "parts", "module_px", "index")}
        per_qr = _score_qr_samples(scorer, sub, {m: cams.maps[m][qr] for m in methods}, size,
                                   torch.isin(sub["index"], faithful.to(sub["index"].device)), steps,
                                   batch_size, seed)
        record.update({key: _scatter(value, qr, len(batch["index"])) for key, value in per_qr.items()})
        for key, value in accelerator.gather_for_metrics(record).items():
            gathered[key].append(value.cpu())
    merged = {k: torch.cat(v) for k, v in gathered.items()}
    index = merged["index"].numpy()
    if len(index) != len(rows) or len(np.unique(index)) != len(rows):
        raise RuntimeError(f"evaluation of {config!r} gathered {len(index)} rows ({len(np.unique(index))} "
                           f"distinct) for {len(rows)} samples")
    correct = np.zeros(len(rows), dtype=bool)
    correct[index] = (merged["pred"] == merged["label"]).numpy()
    accuracy = float(correct.mean())
    keep = merged["label"].numpy() == QR_LABEL
    ids, distortion, severity = (np.asarray(rows[c], dtype=object) for c in ("id", "distortion", "severity"))
    columns: dict[str, list] = defaultdict(list)
    iou_curves = {}
    for name in names:
        n = int(keep.sum())
        columns["id"] += ids[index[keep]].tolist()
        columns["config"] += [config] * n
        columns["split"] += [split] * n
        columns["distortion"] += distortion[index[keep]].tolist()
        columns["severity"] += severity[index[keep]].tolist()
        columns["method"] += [name] * n
        columns["label"] += merged["label"].numpy()[keep].tolist()
        columns["pred"] += merged["pred"].numpy()[keep].tolist()
        for j, key in enumerate(LOGIT_COLUMNS):
            columns[key] += merged["logits"].numpy()[keep, j].tolist()
        scores = merged[f"scores/{name}"].numpy()[keep]
        for j, key in enumerate(SCORE_COLUMNS):
            columns[key] += scores[:, j].tolist()
        iou = merged[f"iou/{name}"].numpy()[keep]
        with np.errstate(invalid="ignore"):
            columns["iou_mean"] += _nanmean_rows(iou).tolist()
            iou_curves[name] = [float(v) if np.isfinite(v) else None for v in _nanmean_rows(iou.T)]
        faith = merged[f"faith/{name}"].numpy()[keep] if name in methods else np.full((n, 2), np.nan)
        for j, key in enumerate(FAITHFULNESS_COLUMNS):
            columns[key] += faith[:, j].tolist()
        causal = merged["causal"].numpy()[keep]
        for j, key in enumerate(CAUSAL_COLUMNS):
            columns[key] += causal[:, j].tolist()
    return {"n": len(rows), "accuracy": accuracy, "correct": correct, "cam_grid": cam_grid,
            "columns": columns, "iou": iou_curves}


def _score_qr_samples(scorer: _Scorer, sub: dict[str, torch.Tensor], cams: dict[str, torch.Tensor],
                      size: tuple[int, int], faithful: torch.Tensor, steps: int, chunk: int,
                      seed: int) -> dict[str, torch.Tensor]:
    """Per-QR-sample results (n, ...) of one batch: ``scores/<name>`` (SCORE_COLUMNS), ``iou/<name>``
    (19 thresholds) for every method and null baseline, ``faith/<method>`` (insertion, deletion AUC; NaN
    outside ``faithful``) and ``causal`` (CAUSAL_COLUMNS)."""
    n = len(sub["index"])
    maps = {m: upsample(raw.float(), size) for m, raw in cams.items()}
    maps.update(null_maps(sub["image"], sub["index"], seed))
    box = region_masks(sub["parts"])["box"]
    prepared = prepare_parts(sub["parts"], module_px=sub["module_px"]) if n else None
    out: dict[str, torch.Tensor] = {}
    for name, saliency in maps.items():
        if n:
            scores = structure_scores(saliency, prepared, signed=True)
            out[f"scores/{name}"] = torch.stack([scores[k].double() for k in SCORE_COLUMNS], 1)
        else:
            out[f"scores/{name}"] = torch.zeros(0, len(SCORE_COLUMNS), dtype=torch.float64)
        out[f"iou/{name}"] = threshold_iou(saliency, box)
        if name in cams:
            faith = torch.full((n, 2), torch.nan, dtype=torch.float64, device=saliency.device)
            if faithful.any():
                ins, dele = insertion_deletion(scorer.classify, sub["image"][faithful], saliency[faithful],
                                               QR_LABEL, steps, chunk=4 * chunk)
                faith[faithful] = torch.stack([ins, dele], 1).double()
            out[f"faith/{name}"] = faith
    out["causal"] = _causal_drops(scorer, sub, seed) if n else torch.zeros(0, len(CAUSAL_COLUMNS))
    return out


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN where a row has no finite value."""
    finite = np.isfinite(x)
    total = np.where(finite, x, 0.0).sum(-1)
    count = finite.sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _scatter(values: torch.Tensor, rows: torch.Tensor, batch: int) -> torch.Tensor:
    """Place per-QR-sample values (n, ...) at their batch positions ``rows``; NaN elsewhere (batch, ...)."""
    out = torch.full((batch, *values.shape[1:]), torch.nan, dtype=torch.float64, device=values.device)
    out[rows] = values.double()
    return out


def _causal_drops(scorer: _Scorer, sub: dict[str, torch.Tensor], seed: int) -> torch.Tensor:
    """(n, 4) logit drops of the QR class: finder, timing, and their area-matched random controls drawn from
    the box's other parts (box minus finder and timing), seeded per sample."""
    masks = region_masks(sub["parts"])
    pool = masks["box"] & ~masks["structure"]
    indices = sub["index"].tolist()
    controls = {
        f"{part}_control": control_mask(pool, masks[part].flatten(1).sum(1),
                                        [seed * 1_000_003 + 2 * i + k for i in indices])
        for k, part in enumerate(("finder", "timing"))
    }
    drops = occlusion_drops(scorer.classify, sub["image"],
                            {"finder": masks["finder"], "timing": masks["timing"], **controls}, QR_LABEL)
    return torch.stack([drops[m] for m in ("finder", "timing", "finder_control", "timing_control")], 1)


def _structure_summary(columns: dict[str, list], n_boot: int, seed: int) -> list[dict]:
    """Aggregate rows per config / split / method / distortion / severity and score, with the mean chance
    value of the score on the same samples (what a uniform map gets)."""
    by = ["config", "split", "method", "distortion", "severity"]
    rows = aggregate(columns, list(SUMMARY_SCORES), by, n_boot=n_boot, seed=seed)
    chance = aggregate(columns, [f"chance_{s}" for s in SUMMARY_SCORES], by, n_boot=1, seed=seed)
    chance_mean = {(*(r[b] for b in by), r["score"].removeprefix("chance_")): r["mean"] for r in chance}
    return [{**r, "chance": chance_mean[(*(r[b] for b in by), r["score"])]} for r in rows]


def _faithfulness_summary(columns: dict[str, list], n_boot: int, seed: int) -> list[dict]:
    """Insertion AUC (higher is better) and deletion AUC (lower is better) per config / method, over the
    samples that have curves (the first ``faithfulness_samples`` QR samples of each config)."""
    have = np.isfinite(np.asarray(columns["insertion_auc"], dtype=float))
    if not have.any():
        return []
    subset = {k: np.asarray(columns[k], dtype=object)[have]
              for k in ("config", "split", "method", *FAITHFULNESS_COLUMNS)}
    return aggregate(subset, list(FAITHFULNESS_COLUMNS), ["config", "split", "method"],
                     n_boot=n_boot, seed=seed)


def _causal_summary(columns: dict[str, list]) -> list[dict]:
    """Per config / method: Spearman rho (scipy) between the finder (timing) mass ratio and the finder
    (timing) logit drop, and the mean drops of the parts and of their area-matched controls."""
    table = {k: np.asarray(v) for k, v in columns.items() if k in
             {"config", "split", "method", "fmr", "tmr", *CAUSAL_COLUMNS}}
    out = []
    keys = sorted(set(zip(table["config"], table["split"], table["method"], strict=True)))
    for config, split, method in keys:
        sel = (table["config"] == config) & (table["split"] == split) & (table["method"] == method)
        row = {"config": config, "split": split, "method": method}
        for part, mass in (("finder", "fmr"), ("timing", "tmr")):
            x = table[mass][sel].astype(float)
            y = table[f"drop_{part}"][sel].astype(float)
            ok = np.isfinite(x) & np.isfinite(y)
            constant = ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0
            rho, p = (np.nan, np.nan) if constant else scipy.stats.spearmanr(x[ok], y[ok])
            row.update({f"rho_{mass}_drop_{part}": float(rho), f"p_{mass}_drop_{part}": float(p),
                        f"n_{part}": int(ok.sum()),
                        f"mean_drop_{part}": float(np.nanmean(y)) if ok.any() else None,
                        f"mean_drop_{part}_control": float(np.nanmean(
                            table[f"drop_{part}_control"][sel].astype(float))) if ok.any() else None})
        out.append(row)
    return out


def _cross_resolution(accelerator: Accelerator, scorer: _Scorer, rows, config: str, split: str,
                      methods: tuple[str, ...], sizes: tuple[int, ...], max_samples: int, batch_size: int,
                      quiet: bool) -> list[dict]:
    """Mean and std of FMR / TMR / BL per method at each input side, on the first ``max_samples`` QR
    samples of ``config``; a side the model cannot take is reported with its error, not skipped silently."""
    qr_rows = np.flatnonzero(np.asarray(rows["label"]) == QR_LABEL)[:max_samples].tolist()
    subset = rows.select(qr_rows)
    out = []
    for side in sizes:
        try:
            check_input_size(scorer.model, side)
        except ValueError as exc:
            out.append({"kind": "cross_resolution", "config": config, "split": split, "image_size": side,
                        "error": str(exc)})
            continue
        loader = accelerator.prepare(torch.utils.data.DataLoader(TensorRows(subset, side), batch_size))
        values: dict[str, list[torch.Tensor]] = defaultdict(list)
        for batch in tqdm(loader, desc=f"cross-resolution {side}px", leave=False,
                          disable=quiet or not accelerator.is_main_process):
            cams = scorer.explain(batch["image"], methods)
            scored = score_maps(cams.maps, batch["parts"], batch["module_px"], (side, side))
            record = {m: torch.stack([scored[m][k] for k in CROSS_RES_SCORES], 1) for m in methods}
            for m, v in accelerator.gather_for_metrics(record).items():
                values[m].append(v.cpu())
        for m in methods:
            table = torch.cat(values[m]).numpy()
            for j, score in enumerate(CROSS_RES_SCORES):
                finite = table[np.isfinite(table[:, j]), j]
                out.append({"kind": "cross_resolution", "config": config, "split": split, "method": m,
                            "image_size": side, "score": score, "n": len(finite),
                            "mean": float(finite.mean()) if len(finite) else None,
                            "std": float(finite.std(ddof=1)) if len(finite) > 1 else None})
    return out


def _peak_rss_reset() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) / 1024


def _latency(accelerator: Accelerator, scorer: _Scorer, rows, methods: tuple[str, ...], image_size: int,
             batch: int, repeats: int = 3) -> list[dict]:
    """ms per image of one engine call (raw maps + logits) per method and for all methods together, on
    ``batch`` QR images of the first config: one warm-up call, then the median of ``repeats`` timed calls
    with a device sync. Peak memory: ``torch.cuda.max_memory_allocated`` on GPU; on CPU the process's peak
    resident set (VmHWM after a reset), which includes the model and the Python process. Main process only."""
    if batch <= 0 or not accelerator.is_main_process:
        return []
    qr_rows = np.flatnonzero(np.asarray(rows["label"]) == QR_LABEL)
    picked = [int(qr_rows[i % len(qr_rows)]) for i in range(batch)]
    tensors = TensorRows(rows, image_size, with_parts=False)
    images = torch.stack([tensors[i]["image"] for i in picked]).to(scorer.device)
    device = scorer.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out = []
    for label, chosen in [*((m, (m,)) for m in methods), ("all", methods)]:
        scorer.explain(images, chosen)
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            mem_kind = "cuda_max_memory_allocated"
        else:
            mem_kind = "cpu_peak_rss" if _peak_rss_reset() else None
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            scorer.explain(images, chosen)
            sync()
            times.append(time.perf_counter() - start)
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            peak = _peak_rss_mb() if mem_kind else None
        out.append({"method": label, "batch_size": batch,
                    "ms_per_img": 1000 * float(np.median(times)) / batch, "peak_mem_mb": peak,
                    "mem_kind": mem_kind, "device": str(device), "image_size": image_size,
                    "repeats": repeats})
    return out


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def run_from_args(args: argparse.Namespace) -> Path:
    """Call ``evaluate`` with parsed arguments."""
    sizes = None
    if args.cross_resolution is not None:
        sizes = tuple(int(v) for v in _split_list(args.cross_resolution))
    return evaluate(model=args.model, data=args.data, out=args.out, configs=_split_list(args.configs),
                    methods=_split_list(args.methods), split=args.split, batch_size=args.batch_size,
                    image_size=args.image_size, max_samples=args.max_samples,
                    faithfulness_samples=args.faithfulness_samples, cross_resolution=sizes,
                    latency_batch=args.latency_batch, n_boot=args.n_boot, seed=args.seed,
                    quiet=getattr(args, "quiet", False), revision=args.revision)


def main(argv: list[str] | None = None) -> int:
    return module_main("evaluate", add_evaluate_arguments, run_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
