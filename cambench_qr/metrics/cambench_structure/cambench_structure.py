"""cambench_structure: is a saliency map on the structure a QR reader needs?

A thin ``evaluate.Metric`` over ``cambench_qr.metrics`` (every formula lives there; this file only
declares the inputs and passes them on). evaluate copies this script into its module cache, so it
imports the formulas from the installed ``cambench_qr`` package.
"""

import datasets
import evaluate

from cambench_qr.metrics.inputs import check_pairs, map_list
from cambench_qr.metrics.summary import summarize

_DESCRIPTION = """\
Structure scores of saliency maps (CAMs) against exact QR part-label maps (CAMBench-QR): finder and
timing mass ratios (FMR, TMR), background leakage (BL), the paper's structural-localisation AUCs
(AUC_MISF, AUC_MIST, AUC_BG), distance to structure (DtS), pointing game, relevance-rank accuracy,
ROC-AUC, lift over area, and the chance value (uniform map) of every score.
"""

_KWARGS_DESCRIPTION = """
Args:
    saliency: (B, H, W) tensor/array or a list of (H, W) maps of any sizes, float16, bfloat16, float32 or
        float64 values; non-negative unless signed=True. Integer and bool maps are refused.
    parts: part-label maps of the same shapes (integer ids 0..9; PIL images from the dataset work).
    module_px: module pitch in pixels, one number or one per map (gives dts_modules).
    normalize: "sum" (default: p = w / sum w) or "minmax" (the paper's scaling).
    mask_mode: "standard" (default) or "paper" (the paper's timing mask).
    signed: score the positive part of signed maps instead of rejecting negative values.
    pointing_tolerance: pointing-game tolerance in pixels (default 0).
    return_per_sample: also return "per_sample", a dict of per-map lists.
Returns:
    Means over the valid maps of every score (fmr, tmr, bl, auc_misf, auc_mist, auc_bg, dts, ...) and of
    its chance value (chance_fmr, ...), "n", and "n_invalid" ({score: number of NaN maps}).
Examples:
    >>> import evaluate, cambench_qr.metrics, numpy as np
    >>> metric = evaluate.load(cambench_qr.metrics.EVALUATE_MODULE)
    >>> parts = np.zeros((1, 4, 4), np.uint8); parts[0, :2, :2] = 2   # a 2x2 finder
    >>> saliency = np.zeros((1, 4, 4), np.float32); saliency[0, 0, 0] = 3; saliency[0, 3, 3] = 1
    >>> round(metric.compute(saliency=saliency, parts=parts)["fmr"], 2)
    0.75
"""

_CITATION = """\
@article{cambenchqr2025,
  title   = {CAMBench-QR: A Structure-Aware Benchmark for Post-Hoc Explanations with QR Understanding},
  journal = {arXiv preprint arXiv:2509.16745},
  year    = {2025}
}
"""

_MAP = datasets.Sequence(datasets.Sequence(datasets.Value("float32")))
_PARTS = datasets.Sequence(datasets.Sequence(datasets.Value("uint8")))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CambenchStructure(evaluate.Metric):
    """Structure scores of saliency maps against QR part-label maps."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"saliency": _MAP, "parts": _PARTS}),
            reference_urls=["https://arxiv.org/abs/2509.16745"],
        )

    def add_batch(self, *, saliency=None, parts=None, **kwargs):
        """Adds (B, H, W) maps or lists of (H, W) maps of any sizes (tensors, arrays, PIL images), checked
        here (``cambench_qr.metrics.inputs``) before they are stored."""
        if saliency is None or parts is None:
            raise ValueError("add_batch needs both saliency and parts")
        maps, part_maps = map_list(saliency, "saliency"), map_list(parts, "parts")
        check_pairs(maps, part_maps)
        return super().add_batch(saliency=maps, parts=part_maps, **kwargs)

    def add(self, *, saliency=None, parts=None, **kwargs):
        """Adds one (H, W) map and its part map (tensor, array or PIL image)."""
        if saliency is None or parts is None:
            raise ValueError("add needs both saliency and parts")
        return self.add_batch(saliency=[saliency], parts=[parts], **kwargs)

    def _compute(self, saliency, parts, module_px=None, normalize="sum", mask_mode="standard", signed=False,
                 pointing_tolerance=0.0, return_per_sample=False):
        return summarize(saliency, parts, module_px=module_px, normalize=normalize, mask_mode=mask_mode,
                         signed=signed, pointing_tolerance=pointing_tolerance,
                         return_per_sample=return_per_sample)
