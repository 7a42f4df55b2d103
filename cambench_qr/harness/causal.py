"""Does the model rely on the parts a CAM points at? Two checks.

Part occlusion, on every config: the QR logit drop when the finder (timing) pixels, or as many random
pixels of the box's other parts (an area-matched control), are set to the mean fill
(``faithfulness.occlusion_drops``), and per method the Spearman rho between the finder (timing) mass
ratio and that drop (``part_drops``, ``mass_drop_summary``).

Causal agreement on the ``interventions`` config: does a CAM rank the parts the way the model relies
on them? (FunnyBirds' single-deletion check, with true interventions instead of in-painting.)

For an original image ``x`` (intervention ``none``) and its intervened copies ``x_k`` (part ``k``'s modules
randomised; ``dataset_builder.interventions``), with ``c`` the class the model predicts on ``x`` (the
class the CAM explains):

    drop_k = z_c(x) - z_c(x_k)            (logit drop; higher: the model relies more on part k)
    agreement = Spearman rho_k(mass_k, drop_k)

where ``mass_k`` is the CAM's sum-normalised mass on part ``k`` of ``x`` (``metrics.structure_scores``'
``mass_<part>``) and ``k`` runs over the parts intervened for that image (``alignment`` only for versions
>= 2). ``agreement`` is in [-1, 1], higher is better: 1 when the CAM orders the parts exactly as their
interventions hurt the model. It is NaN, counted as invalid, when fewer than ``MIN_PARTS`` parts are
available or either vector is constant (e.g. a model whose logits do not move). Per method the
per-image agreements are summarised with ``metrics.aggregate`` (mean, bootstrap 95% CI).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.stats
import torch

from ..dataset_builder.interventions import INTERVENED_PARTS, NONE
from ..metrics import aggregate, region_masks
from ..parts import LABEL_NAMES
from ..results import MassDropRow
from .faithfulness import Classifier, control_mask, occlusion_drops

MIN_PARTS = 3
LOGIT_COLUMNS: tuple[str, ...] = tuple(f"logit_{name}" for name in LABEL_NAMES)
MASS_COLUMNS: tuple[str, ...] = tuple(f"mass_{part}" for part in INTERVENED_PARTS)
DROP_COLUMNS: tuple[str, ...] = tuple(f"drop_{part}" for part in INTERVENED_PARTS)
# per-sample occlusion drop columns: (part, mass score) pairs, each part with its area-matched control
OCCLUDED_PARTS: tuple[tuple[str, str], ...] = (("finder", "fmr"), ("timing", "tmr"))
OCCLUSION_COLUMNS: tuple[str, ...] = (*(f"drop_{part}" for part, _ in OCCLUDED_PARTS),
                                      *(f"drop_{part}_control" for part, _ in OCCLUDED_PARTS))


def part_drops(classify: Classifier, images: torch.Tensor, parts: torch.Tensor, indices: torch.Tensor,
               seed: int, target: int) -> dict[str, torch.Tensor]:
    """``OCCLUSION_COLUMNS`` -> (n,) logit drops of class ``target``: finder, timing, and their area-matched
    random controls drawn from the box's other parts (box minus finder and timing), seeded per sample from
    ``(seed, dataset row number)``."""
    masks = region_masks(parts)
    pool = masks["box"] & ~masks["structure"]
    rows = indices.tolist()
    occluded = {f"drop_{part}": masks[part] for part, _ in OCCLUDED_PARTS}
    occluded.update({
        f"drop_{part}_control": control_mask(pool, masks[part].flatten(1).sum(1),
                                             [seed * 1_000_003 + 2 * i + k for i in rows])
        for k, (part, _) in enumerate(OCCLUDED_PARTS)
    })
    drops = occlusion_drops(classify, images, occluded, target)
    return {column: drops[column] for column in OCCLUSION_COLUMNS}


def mass_drop_summary(columns: Mapping[str, Sequence]) -> list[MassDropRow]:
    """Per config / split / method of the per-sample rows: Spearman rho (scipy) between the finder (timing)
    mass ratio and the finder (timing) logit drop, over the samples where both are finite (NaN with fewer
    than 3 or a constant side; higher: the map's mass follows what the model relies on), and the mean
    drops of the parts and of their area-matched controls."""
    table = {k: np.asarray(v) for k, v in columns.items() if k in
             {"config", "split", "method", *(mass for _, mass in OCCLUDED_PARTS), *OCCLUSION_COLUMNS}}
    out = []
    keys = sorted(set(zip(table["config"], table["split"], table["method"], strict=True)))
    for config, split, method in keys:
        sel = (table["config"] == config) & (table["split"] == split) & (table["method"] == method)
        row = {"config": config, "split": split, "method": method}
        for part, mass in OCCLUDED_PARTS:
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
        out.append(MassDropRow(**row))
    return out


def rank_agreement(mass: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """Per-row Spearman rho (scipy, average ranks for ties) between ``mass`` and ``drop`` (n, k), over
    the columns where both are finite; NaN where fewer than ``MIN_PARTS`` remain or one side is
    constant. Higher is better."""
    mass, drop = np.asarray(mass, np.float64), np.asarray(drop, np.float64)
    if mass.shape != drop.shape or mass.ndim != 2:
        raise ValueError(f"mass {mass.shape} and drop {drop.shape} must be the same (n, parts) shape")
    out = np.full(len(mass), np.nan)
    for i, (x, y) in enumerate(zip(mass, drop, strict=True)):
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() >= MIN_PARTS and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
            out[i] = scipy.stats.spearmanr(x[ok], y[ok]).statistic
    return out


def intervention_table(columns: Mapping[str, Sequence], pairs: Mapping[str, tuple[str, str]]) -> dict:
    """Per (config, split, method, original image): the explained class, ``mass_<part>`` of the original,
    ``drop_<part>`` and ``flip_<part>`` (the prediction on the intervened copy differs; 0/1), NaN for
    parts without an intervened copy.

    ``columns`` are per-sample evaluation columns (one entry per row x method) with ``id``, ``config``,
    ``split``, ``method``, ``logit_<label>`` and ``mass_<part>``; ``pairs`` maps a row id to its
    (intervention, original's pair id). Rows whose id is not in ``pairs`` are ignored; a pair without its
    ``none`` row is an error."""
    needed = ("id", "config", "split", "method", *LOGIT_COLUMNS, *MASS_COLUMNS)
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ValueError(f"per-sample columns lack {', '.join(missing)}")
    logits = np.stack([np.asarray(columns[c], np.float64) for c in LOGIT_COLUMNS], 1)
    mass = np.stack([np.asarray(columns[c], np.float64) for c in MASS_COLUMNS], 1)
    groups: dict[tuple, dict[str, int]] = defaultdict(dict)
    for i, (row_id, config, split, method) in enumerate(zip(
            columns["id"], columns["config"], columns["split"], columns["method"], strict=True)):
        if row_id in pairs:
            intervention, pair_id = pairs[row_id]
            groups[(config, split, method, pair_id)][intervention] = i
    table: dict[str, list] = defaultdict(list)
    for (config, split, method, pair_id), rows in groups.items():
        if NONE not in rows:
            raise ValueError(f"intervened rows of {pair_id} ({config}/{split}) lack their original "
                             f"('none') row")
        original = rows[NONE]
        explained = int(logits[original].argmax())
        table["config"].append(config)
        table["split"].append(split)
        table["method"].append(method)
        table["pair_id"].append(pair_id)
        table["explained"].append(LABEL_NAMES[explained])
        for k, part in enumerate(INTERVENED_PARTS):
            row = rows.get(part)
            table[MASS_COLUMNS[k]].append(mass[original, k])
            table[DROP_COLUMNS[k]].append(np.nan if row is None else
                                          logits[original, explained] - logits[row, explained])
            table[f"flip_{part}"].append(np.nan if row is None else float(logits[row].argmax() != explained))
    return dict(table)


def causal_summary(columns: Mapping[str, Sequence], pairs: Mapping[str, tuple[str, str]], *,
                   n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """summary.json ``causal`` rows of the intervention analysis:

    - ``kind: intervention_agreement``, per config / split / method: ``score: causal_agreement`` (see the
      module docstring; higher is better) with n, n_invalid, mean, std, ci_low, ci_high;
    - ``kind: intervention_drop``, per config / split / intervention (model-level, the same for every
      method: taken from the first): ``score: logit_drop`` (the model's reliance on the part) and
      ``score: flip_rate`` (share of intervened images whose prediction changes), mean with CI.
    """
    table = intervention_table(columns, pairs)
    if not table:
        return []
    table["causal_agreement"] = rank_agreement(np.stack([table[c] for c in MASS_COLUMNS], 1),
                                               np.stack([table[c] for c in DROP_COLUMNS], 1)).tolist()
    rows = [{"kind": "intervention_agreement", **r} for r in
            aggregate(table, ["causal_agreement"], ["config", "split", "method"], n_boot=n_boot, seed=seed)]
    first = np.asarray(table["method"]) == table["method"][0]
    long: dict[str, list] = defaultdict(list)
    for part in INTERVENED_PARTS:
        present = first & np.isfinite(table[f"flip_{part}"])  # NaN: the image has no such part
        long["config"] += np.asarray(table["config"])[present].tolist()
        long["split"] += np.asarray(table["split"])[present].tolist()
        long["intervention"] += [part] * int(present.sum())
        long["logit_drop"] += np.asarray(table[f"drop_{part}"])[present].tolist()
        long["flip_rate"] += np.asarray(table[f"flip_{part}"])[present].tolist()
    rows += [{"kind": "intervention_drop", **r} for r in
             aggregate(long, ["logit_drop", "flip_rate"], ["config", "split", "intervention"],
                       n_boot=n_boot, seed=seed)]
    return rows


def intervention_pairs(splits: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Row id -> (intervention, pair id) for every evaluated split (config -> ``datasets.Dataset``) that
    has the ``intervention`` and ``pair_id`` columns (the ``interventions`` config); empty if none."""
    pairs: dict[str, tuple[str, str]] = {}
    for rows in splits.values():
        if {"intervention", "pair_id"} <= set(rows.column_names):
            labels = zip(rows["intervention"], rows["pair_id"], strict=True)
            pairs.update(zip(rows["id"], labels, strict=True))
    return pairs
