"""Cross-resolution check: do a method's paper scores hold when the same images are fed at other input
sides? Mean and std of FMR / TMR / BL per method and side, on the first QR samples of one config."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from ..results import PAPER_SCORES, CrossResolutionRow
from .data import TensorRows
from .models import check_input_size
from .scoring import QR_LABEL, Scorer, score_maps


def default_sides(image_size: int) -> tuple[int, ...]:
    """The input side scaled by 224 / 256 / 320 over 224 (the paper's sides at its 224 px input)."""
    return tuple(sorted({round(image_size * side / 224) for side in (224, 256, 320)}))


def scores_across_sides(accelerator: Accelerator, scorer: Scorer, rows, config: str, split: str,
                        methods: tuple[str, ...], sizes: tuple[int, ...], max_samples: int, batch_size: int,
                        quiet: bool) -> list[CrossResolutionRow]:
    """Mean and std (ddof 1) of each of ``PAPER_SCORES`` per method at each input side, over the finite
    values on the first ``max_samples`` QR samples of ``config``; a side the model cannot take is
    reported with its error, not skipped silently."""
    qr_rows = np.flatnonzero(np.asarray(rows["label"]) == QR_LABEL)[:max_samples].tolist()
    subset = rows.select(qr_rows)
    out = []
    for side in sizes:
        try:
            check_input_size(scorer.model, side)
        except ValueError as exc:
            out.append(CrossResolutionRow(config=config, split=split, image_size=side, error=str(exc)))
            continue
        loader = accelerator.prepare(torch.utils.data.DataLoader(TensorRows(subset, side), batch_size))
        values: dict[str, dict[str, list[torch.Tensor]]] = defaultdict(lambda: defaultdict(list))
        for batch in tqdm(loader, desc=f"cross-resolution {side}px", leave=False,
                          disable=quiet or not accelerator.is_main_process):
            cams = scorer.explain(batch["image"], methods)
            scored = score_maps(cams.maps, batch["parts"], batch["module_px"], (side, side))
            record = {m: {k: scored[m][k] for k in PAPER_SCORES} for m in methods}
            for m, by_score in accelerator.gather_for_metrics(record).items():
                for k, v in by_score.items():
                    values[m][k].append(v.cpu())
        for m in methods:
            for score in PAPER_SCORES:
                column = torch.cat(values[m][score]).numpy()
                finite = column[np.isfinite(column)]
                out.append(CrossResolutionRow(
                    config=config, split=split, method=m, image_size=side, score=score, n=len(finite),
                    mean=float(finite.mean()) if len(finite) else None,
                    std=float(finite.std(ddof=1)) if len(finite) > 1 else None))
    return out
