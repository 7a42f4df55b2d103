"""Each CAM method against the null maps (``harness.baselines``), image by image, with a verdict.

For a score ``s``, a CAM method ``m`` and a null map ``u`` scored on the same QR images ``i`` (paired by
sample id within one config / split):

    d_i = s(m, i) - s(u, i)            over the images where both scores are finite (n pairs)
    diff_mean = mean_i d_i
    [ci_low, ci_high] = percentile bootstrap CI (95%) of the mean of d over images, ``n_boot`` seeded
                        resamples (``metrics.aggregate``)

The verdict reads the CI with the score's direction (``metrics.SCORES``: FMR and TMR higher is better,
BL and DtS lower is better):

    better             the CI lies entirely on the good side of 0 (ci_low > 0 where higher is better,
                       ci_high < 0 where lower is better)
    worse              the CI lies entirely on the bad side of 0
    indistinguishable  the CI contains 0
    None               fewer than 2 pairs: no CI, no verdict
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ..metrics import SCORES, aggregate
from ..results import VS_NULL_SCORES

VERDICTS: tuple[str, ...] = ("better", "indistinguishable", "worse")
GROUP_COLUMNS: tuple[str, ...] = ("method", "config", "split", "distortion", "severity")
_PAIR_KEY = ("config", "split", "id")


def higher_is_better(score: str) -> bool:
    """True where a higher ``score`` is better, False where lower is (``metrics.SCORES``); ValueError for a
    descriptive score without a direction."""
    direction = SCORES[score][1]
    if direction not in ("higher", "lower"):
        raise ValueError(f"score {score!r} has no better direction ({direction!r})")
    return direction == "higher"


def verdict(ci_low: float | None, ci_high: float | None, higher: bool) -> str | None:
    """``better`` / ``worse`` when the CI of ``score(method) - score(null)`` lies entirely on the good / bad
    side of 0 (good: above 0 where ``higher`` is better, below 0 where lower is), ``indistinguishable``
    when it contains 0, None without a CI (missing or NaN bounds)."""
    if ci_low is None or ci_high is None or not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return None
    if ci_low > 0 or ci_high < 0:
        return "better" if (ci_low > 0) == higher else "worse"
    return "indistinguishable"


def paired_differences(columns: Mapping[str, Sequence], scores: Sequence[str], nulls: Sequence[str]
                       ) -> dict[str, list]:
    """The pairs as a long table: for every per-sample row of a method not in ``nulls`` and every null,
    the row's ``GROUP_COLUMNS``, ``null`` and ``diff_<score> = score(row) - score(null row)``, where the
    null row is the null's row with the same config, split and id (NaN where there is none).

    ``columns`` are per-sample evaluation columns (one entry per sample x method) holding ``id``,
    ``config``, ``split``, ``method``, ``distortion``, ``severity`` and ``scores``; a repeated
    (config, split, id, method) is an error."""
    missing = [c for c in (*_PAIR_KEY, *GROUP_COLUMNS, *scores) if c not in columns]
    if missing:
        raise ValueError(f"per-sample columns lack {', '.join(missing)}")
    keys = list(zip(*(columns[c] for c in _PAIR_KEY), strict=True))
    methods = list(columns["method"])
    position = {(key, method): i for i, (key, method) in enumerate(zip(keys, methods, strict=True))}
    if len(position) != len(keys):
        raise ValueError("per-sample columns repeat a (config, split, id, method) row")
    rows = np.array([i for i, m in enumerate(methods) if m not in nulls], dtype=np.int64)
    out: dict[str, list] = {c: np.asarray(columns[c], dtype=object)[rows].repeat(len(nulls)).tolist()
                            for c in GROUP_COLUMNS}
    out["null"] = list(nulls) * len(rows)
    partner = np.array([position.get((keys[i], null), -1) for i in rows for null in nulls], dtype=np.int64)
    for score in scores:
        values = np.asarray(columns[score], dtype=np.float64)
        null_values = np.where(partner >= 0, values[partner], np.nan)  # values[-1] is masked out
        out[f"diff_{score}"] = (values[rows].repeat(len(nulls)) - null_values).tolist()
    return out


def vs_null_summary(columns: Mapping[str, Sequence], nulls: Sequence[str],
                    scores: Sequence[str] = VS_NULL_SCORES, *, n_boot: int = 1000, seed: int = 0,
                    ci: float = 0.95) -> list[dict]:
    """summary.json ``vs_null`` rows, one per (method, config, split, distortion, severity), score and
    null: ``{kind: "vs_null", method, config, split, distortion, severity, score, null, n, diff_mean,
    ci_low, ci_high, verdict}`` (see the module docstring). Empty without method rows."""
    pairs = paired_differences(columns, scores, nulls)
    if not pairs["null"]:
        return []
    diffs = [f"diff_{s}" for s in scores]
    rows = aggregate(pairs, diffs, [*GROUP_COLUMNS, "null"], n_boot=n_boot, seed=seed, ci=ci)
    out = []
    for r in rows:
        score = r["score"].removeprefix("diff_")
        out.append({"kind": "vs_null", **{c: r[c] for c in GROUP_COLUMNS}, "score": score, "null": r["null"],
                    "n": r["n"], "diff_mean": r["mean"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                    "verdict": verdict(r["ci_low"], r["ci_high"], higher_is_better(score))})
    return out
