"""The evaluation loop of one config: batches through the CAM engine, per-sample scoring of the QR samples,
gathering across processes (the per-sample scores in one collective per batch), and the per-sample rows
(``per_sample.parquet``'s columns).

Per batch one ``CamEngine`` call yields the logits (accuracy) and every CAM method (target: the predicted
class, as in the paper); the QR samples are scored by ``scoring.score_qr_samples``. Under ``accelerate
launch`` every process scores its shard and ``gather_for_metrics`` collects the results; each sample is
identified by its row number and the run fails if one is missing or duplicated.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from ..results import NULL_BASELINES
from .accuracy import META_COLUMNS
from .causal import LOGIT_COLUMNS, OCCLUSION_COLUMNS
from .data import TensorRows, load_split
from .faithfulness import FAITHFULNESS_COLUMNS, IOU_THRESHOLDS
from .scoring import QR_LABEL, SCORE_COLUMNS, QrSamples, SampleScores, Scorer, score_qr_samples


@dataclass
class BatchRecord:
    """One batch's results, every tensor with the batch as first dimension: dataset row numbers, labels,
    predictions, logits (B, classes), and the ``SampleScores`` fields with NaN on non-QR rows."""

    index: torch.Tensor
    label: torch.Tensor
    pred: torch.Tensor
    logits: torch.Tensor
    scores: dict[str, dict[str, torch.Tensor]]
    iou: dict[str, torch.Tensor]
    faithfulness: dict[str, dict[str, torch.Tensor]]
    drops: dict[str, torch.Tensor]


@dataclass
class ConfigResult:
    """One config's evaluation: row count, accuracy, whether each row (in row order) was classified
    correctly, the CAM grid (h, w) of the raw maps, the per-sample columns (QR rows x maps) and each map's
    mean threshold-IoU curve (None at a threshold without a finite value)."""

    n: int
    accuracy: float
    correct: np.ndarray
    cam_grid: list[int] | None
    columns: dict[str, list]
    iou_curves: dict[str, list]


def eval_split(data: str, config: str, split: str, max_samples: int | None):
    """The evaluation rows of one config (the first ``max_samples``); ValueError without QR samples."""
    rows = load_split(data, config, split)
    if max_samples is not None:
        rows = rows.select(range(min(max_samples, len(rows))))
    if QR_LABEL not in set(rows["label"]):
        raise ValueError(f"config {config!r} split {split!r} has no QR samples: no structure to score")
    return rows


def row_meta(rows) -> dict[str, list]:
    """The columns of a split that the grouped accuracy rows count by (those the split has)."""
    return {c: rows[c] for c in META_COLUMNS if c in rows.column_names}


def _tree(fn: Callable, value):
    """``fn`` applied to every tensor of a tensor or nested dicts of tensors."""
    return {k: _tree(fn, v) for k, v in value.items()} if isinstance(value, dict) else fn(value)


def _leaves(tree: dict, keys: tuple = ()) -> list[tuple[tuple, torch.Tensor]]:
    """(key path, tensor) of every tensor in nested dicts, in insertion order."""
    out = []
    for key, value in tree.items():
        out += _leaves(value, (*keys, key)) if isinstance(value, dict) else [((*keys, key), value)]
    return out


def _gather_float64(accelerator: Accelerator, tree: dict) -> dict:
    """``accelerator.gather_for_metrics`` of nested dicts of float64 (B, ...) tensors in one collective:
    the tensors travel side by side as one (B, width) tensor and come back, on the CPU, under their keys
    (values unchanged)."""
    leaves = _leaves(tree)
    gathered = accelerator.gather_for_metrics(torch.cat([t.reshape(len(t), -1) for _, t in leaves], 1)).cpu()
    out: dict = {}
    start = 0
    for keys, tensor in leaves:
        width = math.prod(tensor.shape[1:])
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = gathered[:, start:start + width].reshape(-1, *tensor.shape[1:])
        start += width
    return out


def _scatter(values: torch.Tensor, rows: torch.Tensor, batch: int) -> torch.Tensor:
    """Place per-QR-sample values (n, ...) at their batch positions ``rows``; NaN elsewhere (batch, ...)."""
    out = torch.full((batch, *values.shape[1:]), torch.nan, dtype=torch.float64, device=values.device)
    out[rows] = values.double()
    return out


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN where a row has no finite value."""
    finite = np.isfinite(x)
    total = np.where(finite, x, 0.0).sum(-1)
    count = finite.sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _empty_scores(names: tuple[str, ...], methods: tuple[str, ...], device: torch.device) -> SampleScores:
    """The ``SampleScores`` of no sample (a batch without QR samples)."""
    none = torch.zeros(0, dtype=torch.float64, device=device)
    return SampleScores(scores={n: dict.fromkeys(SCORE_COLUMNS, none) for n in names},
                        iou={n: torch.zeros(0, len(IOU_THRESHOLDS), device=device) for n in names},
                        faithfulness={m: dict.fromkeys(FAITHFULNESS_COLUMNS, none) for m in methods},
                        drops=dict.fromkeys(OCCLUSION_COLUMNS, none))


def evaluate_config(accelerator: Accelerator, scorer: Scorer, rows, config: str, split: str,
                    methods: tuple[str, ...], batch_size: int, image_size: int, faithfulness_samples: int,
                    steps: int, seed: int, quiet: bool) -> ConfigResult:
    """Score one config (see the module docstring); insertion / deletion curves for its first
    ``faithfulness_samples`` QR samples."""
    labels = np.asarray(rows["label"])
    faithful = torch.as_tensor(np.flatnonzero(labels == QR_LABEL)[:faithfulness_samples])
    loader = accelerator.prepare(torch.utils.data.DataLoader(TensorRows(rows, image_size), batch_size))
    size = (image_size, image_size)
    names = (*methods, *NULL_BASELINES)
    records: list[BatchRecord] = []
    cam_grid = None
    bar = tqdm(loader, desc=f"evaluate {config}", leave=False,
               disable=quiet or not accelerator.is_main_process)
    for batch in bar:
        cams = scorer.explain(batch["image"], methods)
        if cams.failed:  # ran on the probe batch (``sanity_eval.probe_methods``), failed on this one
            raise RuntimeError(f"evaluation of {config!r}: " + "; ".join(
                f"{m} failed on a batch it ran on before: {why}" for m, why in cams.failed.items()))
        cam_grid = cam_grid or list(cams.maps[methods[0]].shape[-2:])
        positions = (batch["label"] == QR_LABEL).nonzero().squeeze(1)
        qr = QrSamples(*(batch[k][positions] for k in ("image", "parts", "module_px", "index")))
        scored = score_qr_samples(scorer, qr, {m: cams.maps[m][positions] for m in methods}, size,
                                  torch.isin(qr.index, faithful.to(qr.index.device)), steps, batch_size, seed)
        scored = scored or _empty_scores(names, methods, batch["image"].device)
        per_row = _tree(partial(_scatter, rows=positions, batch=len(batch["index"])), vars(scored))
        gather = accelerator.gather_for_metrics
        records.append(BatchRecord(index=gather(batch["index"]).cpu(), label=gather(batch["label"]).cpu(),
                                   pred=gather(cams.logits.argmax(1)).cpu(),
                                   logits=gather(cams.logits.detach()).cpu(),
                                   **_gather_float64(accelerator, per_row)))
    merged = BatchRecord(**{f.name: _concat([getattr(r, f.name) for r in records])
                            for f in fields(BatchRecord)})
    return _config_result(merged, rows, config, split, methods, names, cam_grid)


def _concat(parts: list):
    """Concatenate a list of tensors, or of equally nested dicts of tensors, along the first dimension."""
    if isinstance(parts[0], dict):
        return {k: _concat([p[k] for p in parts]) for k in parts[0]}
    return torch.cat(parts)


def _config_result(merged: BatchRecord, rows, config: str, split: str, methods: tuple[str, ...],
                   names: tuple[str, ...], cam_grid: list[int] | None) -> ConfigResult:
    """Check that every row was evaluated once; accuracy, and the per-sample columns of the QR rows."""
    index = merged.index.numpy()
    if len(index) != len(rows) or len(np.unique(index)) != len(rows):
        raise RuntimeError(f"evaluation of {config!r} gathered {len(index)} rows ({len(np.unique(index))} "
                           f"distinct) for {len(rows)} samples")
    correct = np.zeros(len(rows), dtype=bool)
    correct[index] = (merged.pred == merged.label).numpy()
    keep = merged.label.numpy() == QR_LABEL
    n = int(keep.sum())
    # the columns of a QR row that do not depend on the map, before and after ``method``
    ids, distortion, severity = (np.asarray(rows[c], dtype=object)[index[keep]].tolist()
                                 for c in ("id", "distortion", "severity"))
    sample = {"id": ids, "config": [config] * n, "split": [split] * n, "distortion": distortion,
              "severity": severity}
    logits = merged.logits.numpy()[keep]
    outcome = {"label": merged.label.numpy()[keep].tolist(), "pred": merged.pred.numpy()[keep].tolist(),
               **{key: logits[:, j].tolist() for j, key in enumerate(LOGIT_COLUMNS)}}  # label order
    drops = {key: merged.drops[key].numpy()[keep].tolist() for key in OCCLUSION_COLUMNS}
    columns: dict[str, list] = defaultdict(list)
    iou_curves = {}
    for name in names:
        for key, values in {**sample, "method": [name] * n, **outcome}.items():
            columns[key] += values
        for key in SCORE_COLUMNS:
            columns[key] += merged.scores[name][key].numpy()[keep].tolist()
        iou = merged.iou[name].numpy()[keep]
        columns["iou_mean"] += _nanmean_rows(iou).tolist()
        iou_curves[name] = [float(v) if np.isfinite(v) else None for v in _nanmean_rows(iou.T)]
        for key in FAITHFULNESS_COLUMNS:
            values = merged.faithfulness[name][key].numpy()[keep] if name in methods else np.full(n, np.nan)
            columns[key] += values.tolist()
        for key, values in drops.items():
            columns[key] += values
    return ConfigResult(n=len(rows), accuracy=float(correct.mean()), correct=correct, cam_grid=cam_grid,
                        columns=columns, iou_curves=iou_curves)
