"""Per-sample scoring of one batch's QR samples, and the structure summary of the per-sample rows.

Each raw CAM is upsampled (bilinear) to the input resolution and scored with ``metrics.structure_scores``
(ReLU, then sum-normalised) beside the four null maps (``harness.baselines``). Also per QR sample: threshold
IoU with the box (``faithfulness.threshold_iou``), insertion / deletion AUCs for the samples picked for
curves (``faithfulness.insertion_deletion``), and the part occlusion drops (``causal.part_drops``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..cams import CamEngine, upsample
from ..metrics import SCORE_NAMES, aggregate, prepare_parts, region_masks, structure_scores
from ..parts import LABEL_NAMES
from ..results import SUMMARY_SCORES, StructureRow
from .baselines import null_maps
from .causal import part_drops
from .data import normalize
from .faithfulness import FAITHFULNESS_COLUMNS, insertion_deletion, threshold_iou

QR_LABEL = LABEL_NAMES.index("qr")
# Per-sample score columns: every structure score, its chance value, and whether the map had mass.
SCORE_COLUMNS = (*SCORE_NAMES, *(f"chance_{k}" for k in SCORE_NAMES), "valid")
STRUCTURE_GROUPS = ("config", "split", "method", "distortion", "severity")


class Scorer:
    """The model, its CAM engine and normalisation, on one device."""

    def __init__(self, model: torch.nn.Module, mean: tuple, std: tuple, device: torch.device):
        self.model = model.to(device).eval()
        self.engine = CamEngine(self.model)
        self.mean, self.std, self.device = mean, std, device

    @torch.no_grad()
    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of uint8-range images (B,3,H,W)."""
        return self.model(normalize(images, self.mean, self.std))

    def explain(self, images: torch.Tensor, methods: tuple[str, ...]):
        """One engine call: CamOutput with raw maps for ``methods`` and the logits."""
        return self.engine(normalize(images, self.mean, self.std), methods=methods)


def score_maps(maps: dict[str, torch.Tensor], parts: torch.Tensor, module_px: torch.Tensor,
               size: tuple[int, int]) -> dict[str, dict[str, torch.Tensor]]:
    """Raw maps (B,h,w) -> {method: structure scores at the input resolution}, ReLU + sum-normalised.
    The part masks and distance transforms are prepared once and shared by every method."""
    prepared = prepare_parts(parts, module_px=module_px)
    return {m: structure_scores(upsample(raw.float(), size), prepared, signed=True)
            for m, raw in maps.items()}


@dataclass
class QrSamples:
    """The QR samples of one batch: uint8 images (n,3,H,W), part maps (n,H,W), module pitch (n,) and
    dataset row numbers (n,)."""

    image: torch.Tensor
    parts: torch.Tensor
    module_px: torch.Tensor
    index: torch.Tensor


@dataclass
class SampleScores:
    """Per-sample results (first dimension: samples), keyed by map (CAM method or null map) and column.

    ``scores``: map -> ``SCORE_COLUMNS`` column -> (n,) float64; ``iou``: map -> (n, 19) threshold IoU;
    ``faithfulness``: CAM method -> ``FAITHFULNESS_COLUMNS`` column -> (n,) float64 (NaN for samples
    without curves); ``drops``: ``OCCLUSION_COLUMNS`` column -> (n,) occlusion logit drops."""

    scores: dict[str, dict[str, torch.Tensor]]
    iou: dict[str, torch.Tensor]
    faithfulness: dict[str, dict[str, torch.Tensor]]
    drops: dict[str, torch.Tensor]


def score_qr_samples(scorer: Scorer, qr: QrSamples, cams: dict[str, torch.Tensor], size: tuple[int, int],
                     faithful: torch.Tensor, steps: int, chunk: int, seed: int) -> SampleScores | None:
    """Score the raw CAMs ``cams`` (method -> (n,h,w)) and the null maps of the QR samples ``qr``;
    insertion / deletion curves (``steps`` steps) for the samples where ``faithful`` (n,) is set. None when
    there is no QR sample."""
    if not len(qr.index):
        return None
    maps = {m: upsample(raw.float(), size) for m, raw in cams.items()}
    maps.update(null_maps(qr.image, qr.index, seed))
    box = region_masks(qr.parts)["box"]
    prepared = prepare_parts(qr.parts, module_px=qr.module_px)
    scores, iou, faithfulness = {}, {}, {}
    for name, saliency in maps.items():
        scored = structure_scores(saliency, prepared, signed=True)
        scores[name] = {k: scored[k].double() for k in SCORE_COLUMNS}
        iou[name] = threshold_iou(saliency, box)
        if name in cams:
            curves = {k: torch.full((len(qr.index),), torch.nan, dtype=torch.float64, device=saliency.device)
                      for k in FAITHFULNESS_COLUMNS}
            if faithful.any():
                auc = insertion_deletion(scorer.classify, qr.image[faithful], saliency[faithful], QR_LABEL,
                                         steps, chunk=4 * chunk)
                for column, values in zip(FAITHFULNESS_COLUMNS, auc, strict=True):
                    curves[column][faithful] = values.double()
            faithfulness[name] = curves
    drops = part_drops(scorer.classify, qr.image, qr.parts, qr.index, seed, QR_LABEL)
    return SampleScores(scores, iou, faithfulness, drops)


def structure_summary(columns: dict[str, list], n_boot: int, seed: int) -> list[StructureRow]:
    """Aggregate the per-sample rows per config / split / method / distortion / severity and score of
    ``SUMMARY_SCORES`` (``metrics.aggregate``: mean, std, bootstrap CI), with the mean chance value of the
    score on the same samples (what a uniform map gets)."""
    by = list(STRUCTURE_GROUPS)
    rows = aggregate(columns, list(SUMMARY_SCORES), by, n_boot=n_boot, seed=seed)
    chance = aggregate(columns, [f"chance_{s}" for s in SUMMARY_SCORES], by, n_boot=1, seed=seed)
    chance_mean = {(*(r[b] for b in by), r["score"].removeprefix("chance_")): r["mean"] for r in chance}
    return [StructureRow(**r, chance=chance_mean[(*(r[b] for b in by), r["score"])]) for r in rows]
