"""Names, labels and directions of the numbers that cards and the leaderboard show.

The values themselves come from `cambench_qr.metrics` through the harness's summary.json; this table only
says how to print them and which way is better.
"""

from __future__ import annotations

# score -> (label, higher_is_better)
SCORES: dict[str, tuple[str, bool]] = {
    "fmr": ("FMR", True),  # finder mass ratio: saliency mass on the finder patterns
    "tmr": ("TMR", True),  # timing mass ratio: saliency mass on the timing lines
    "bl": ("BL", False),  # background leakage: saliency mass outside the symbol
    "auc_misf": ("AUC-MISF", True),  # structural-localisation AUC, finder mask
    "auc_mist": ("AUC-MIST", True),  # structural-localisation AUC, timing mask
    "auc_bg": ("AUC-BG", False),  # the same AUC on the background mask
    "dts": ("DtS", False),  # saliency-weighted distance to structure / image diagonal
}
HEADLINE_SCORES = tuple(SCORES)
# The structure score on the leaderboard plot's y axis (higher is better).
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


def score_label(score: str) -> str:
    label, higher = SCORES.get(score, (score, True))
    return f"{label} {'↑' if higher else '↓'}"


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)
