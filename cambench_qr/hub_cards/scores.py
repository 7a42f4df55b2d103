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
