"""How the cards and the leaderboard label scores and pick rows.

Which scores are shown, and the labels of scores and methods, are in `cambench_qr.results`; the direction
of each score (higher or lower is better) is read from `cambench_qr.metrics.SCORES`, where the formulas
live (`higher_is_better`, shared with the harness's verdicts against the null maps).
"""

from __future__ import annotations

from ..harness.accuracy import headline_config
from ..harness.vs_null import higher_is_better
from ..results import HEADLINE_SCORES as HEADLINE_SCORES  # re-exported for the cards' modules
from ..results import PLOT_SCORE as PLOT_SCORE
from ..results import SCORE_LABELS
from ..results import is_null_baseline as is_null_baseline
from ..results import method_label as method_label


def score_label(score: str) -> str:
    return f"{SCORE_LABELS.get(score, score)} {'↑' if higher_is_better(score) else '↓'}"


def is_clean(row: dict) -> bool:
    """A structure row of undistorted images."""
    return row.get("distortion") == "none"


def is_graded(row: dict) -> bool:
    """A structure row of one severity level (1..5) of a distortion family."""
    return bool(row.get("severity")) and row.get("distortion") not in (None, "none")


def headline_rows(rows: list[dict]) -> list[dict]:
    """The clean rows of CAM methods (no null maps) of the headline config (`standard`, else the first
    config with clean rows); leaderboard rows or summary.json structure rows."""
    clean = [r for r in rows if is_clean(r) and not is_null_baseline(r["method"])]
    config = headline_config(list(dict.fromkeys(r["config"] for r in clean)))
    return [r for r in clean if r["config"] == config]
