"""Structure metrics: saliency maps x part-label maps -> per-sample scores, and their aggregation.

    from cambench_qr.metrics import structure_scores, aggregate
    scores = structure_scores(saliency, parts, module_px=8.0)   # dict of (B,) tensors
    rows = aggregate({**scores, "method": methods}, ["fmr", "bl"], by=["method"])

``EVALUATE_MODULE`` is the path of the ``cambench_structure`` evaluate module folder shipped with the
package: ``evaluate.load(EVALUATE_MODULE)`` works offline.
"""

from pathlib import Path

from cambench_qr.maps import sum_normalize
from cambench_qr.metrics.aggregate import aggregate, bootstrap_mean_ci
from cambench_qr.metrics.edt import distance_to
from cambench_qr.metrics.formulas import SCORE_NAMES, SCORES
from cambench_qr.metrics.grid import area_average_parts, grid_scores
from cambench_qr.metrics.masks import paper_timing_mask, region_masks
from cambench_qr.metrics.prepared import PreparedParts, prepare_parts
from cambench_qr.metrics.scores import normalized_mass, scores_to_lists, structure_scores
from cambench_qr.metrics.summary import summarize

EVALUATE_MODULE: str = str(Path(__file__).with_name("cambench_structure"))

__all__ = [
    "EVALUATE_MODULE", "PreparedParts", "SCORES", "SCORE_NAMES", "aggregate", "area_average_parts",
    "bootstrap_mean_ci", "distance_to", "grid_scores", "normalized_mass", "paper_timing_mask",
    "prepare_parts", "region_masks", "scores_to_lists", "structure_scores", "sum_normalize", "summarize",
]
