"""Which scores the cards and the leaderboard show, and how they are labelled.

Values come from `cambench_qr.metrics` through the harness's summary.json; the direction of each score
(higher or lower is better) is read from `cambench_qr.metrics.SCORES`, where the formulas live.
"""

from __future__ import annotations

from ..metrics import SCORES as METRIC_SCORES

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


def higher_is_better(score: str) -> bool:
    direction = METRIC_SCORES[score][1]
    if direction not in ("higher", "lower"):
        raise ValueError(f"score {score!r} has no better direction ({direction!r})")
    return direction == "higher"


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
