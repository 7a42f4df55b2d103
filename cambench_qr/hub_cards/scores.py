"""Which scores the cards and the leaderboard show, and how they are labelled.

Values come from `cambench_qr.metrics` through the harness's summary.json; the direction of each score
(higher or lower is better) is read from `cambench_qr.metrics.SCORES`, where the formulas live
(`higher_is_better`, shared with the harness's verdicts against the null maps).
"""

from __future__ import annotations

from ..harness.accuracy import headline_config
from ..harness.vs_null import higher_is_better

# score -> printed label, in table order
SCORE_LABELS: dict[str, str] = {
    "fmr": "FMR",
    "tmr": "TMR",
    "bl": "BL",
    "auc_misf": "AUC-MISF",
    "auc_mist": "AUC-MIST",
    "auc_bg": "AUC-BG",
    "dts": "DtS",
}
HEADLINE_SCORES = tuple(SCORE_LABELS)
# The structure score on the leaderboard plot's y axis.
PLOT_SCORE = "fmr"

METHOD_LABELS: dict[str, str] = {
    "gradcam": "Grad-CAM",
    "gradcampp": "Grad-CAM++",
    "xgradcam": "XGrad-CAM",
    "layercam": "LayerCAM",
    "hirescam": "HiResCAM",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGrad-CAM",
    "null_uniform": "null: uniform",
    "null_centre": "null: centre",
    "null_edge": "null: edge",
    "null_random": "null: random",
}


def score_label(score: str) -> str:
    return f"{SCORE_LABELS.get(score, score)} {'↑' if higher_is_better(score) else '↓'}"


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def is_clean(row: dict) -> bool:
    """A structure row of undistorted images."""
    return row.get("distortion") == "none"


def is_graded(row: dict) -> bool:
    """A structure row of one severity level (1..5) of a distortion family."""
    return bool(row.get("severity")) and row.get("distortion") not in (None, "none")


def is_null_baseline(method: str) -> bool:
    """A harness reference map (uniform, centre, edge, random), not a CAM of the model."""
    return method.startswith("null_")


def headline_rows(rows: list[dict]) -> list[dict]:
    """The clean rows of CAM methods (no null maps) of the headline config (`standard`, else the first
    config with clean rows); leaderboard rows or summary.json structure rows."""
    clean = [r for r in rows if is_clean(r) and not is_null_baseline(r["method"])]
    config = headline_config(list(dict.fromkeys(r["config"] for r in clean)))
    return [r for r in clean if r["config"] == config]
