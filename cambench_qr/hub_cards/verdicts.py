"""The verdicts against the null maps that the leaderboard and the model cards show.

The harness's summary.json ``vs_null`` rows (``harness.vs_null``) compare every CAM method with every null
map, image by image. Shown here, per CAM row and score: the verdict against the uniform map (the chance
level), and against the *best null map*: the null map whose mean score is best on the same config, split,
distortion and severity (highest mean where higher is better, lowest where lower is; ties go to the
first in the summary's order). Summaries written before the ``vs_null`` rows existed give no verdicts.
"""

from __future__ import annotations

import math

from ..results import UNIFORM, StructureRow, Summary, is_null_baseline, method_label
from .scores import higher_is_better

VERDICT_LABELS = {"better": "better", "indistinguishable": "≈", "worse": "worse"}
VERDICT_LEGEND = (
    "better / worse: the 95% bootstrap CI of the per-image difference (method − null map) lies entirely on "
    "the good / bad side of 0; ≈: the CI contains 0 (indistinguishable)"
)


def best_nulls(structure: list[StructureRow]) -> dict[tuple, str]:
    """(config, split, distortion, severity, score) -> the null map with the best mean score there."""
    best: dict[tuple, StructureRow] = {}
    for r in structure:
        if not is_null_baseline(r.method) or r.mean is None or not math.isfinite(r.mean):
            continue
        key = (r.config, r.split, r.distortion, r.severity, r.score)
        sign = 1 if higher_is_better(r.score) else -1
        if key not in best or sign * r.mean > sign * best[key].mean:
            best[key] = r
    return {key: r.method for key, r in best.items()}


def null_comparisons(summary: Summary) -> dict[tuple, dict[str, dict]]:
    """(method, config, split, distortion, severity) -> {score: {"uniform": vs_null row against the
    uniform map, "best": vs_null row against the best null map}} (a side is absent without its row)."""
    rows = {
        (r.method, r.config, r.split, r.distortion, r.severity, r.score, r.null): r
        for r in summary.vs_null or []
    }
    best = best_nulls(summary.structure)
    out: dict[tuple, dict[str, dict]] = {}
    for (method, *group, score, null), row in rows.items():
        sides = out.setdefault((method, *group), {}).setdefault(score, {})
        if null == UNIFORM:
            sides["uniform"] = row
        if best.get((*group, score)) == null:
            sides["best"] = row
    return out


def verdict_columns(comparisons: dict[str, dict]) -> dict:
    """Leaderboard columns of one CAM row's comparisons: ``<score>_vs_uniform``, ``<score>_best_null`` and
    ``<score>_vs_best_null`` (verdict strings, None without a verdict)."""
    out = {}
    for score, sides in comparisons.items():
        out[f"{score}_vs_uniform"] = sides.get("uniform", {}).get("verdict")
        out[f"{score}_best_null"] = sides.get("best", {}).get("null")
        out[f"{score}_vs_best_null"] = sides.get("best", {}).get("verdict")
    return out


def verdict_cell(verdict: str | None, null: str | None = None) -> str:
    """`better` / `≈` / `worse` (`–` without a verdict), with the null map's label when given."""
    text = VERDICT_LABELS.get(verdict, "–")
    return f"{text} ({method_label(null).removeprefix('null: ')})" if null and verdict else text
