"""Means over a set of maps: the one entry point behind the evaluate module (and handy on its own).

Maps may come as one (B, H, W) tensor/array or as a list of (H, W) arrays, tensors or PIL images of
different sizes; each size is scored as one batch by ``structure_scores`` and the per-sample results
are put back in input order.
"""

from __future__ import annotations

import numpy as np
import torch

from cambench_qr.metrics.inputs import check_module_px, check_options, check_pairs, map_list
from cambench_qr.metrics.scores import SCORE_NAMES, structure_scores

SUMMARY_KEYS: tuple[str, ...] = (*SCORE_NAMES, *(f"chance_{name}" for name in SCORE_NAMES))


def summarize(saliency, parts, *, module_px=None, normalize: str = "sum", mask_mode: str = "standard",
              signed: bool = False, pointing_tolerance: float = 0.0, return_per_sample: bool = False) -> dict:
    """Mean of every score and its chance value over the finite samples, as floats.

    Returns ``{<score>: mean, "chance_<score>": mean, "n": number of maps, "n_invalid": {score: number
    of NaN samples}}`` and, with ``return_per_sample``, ``"per_sample": {key: list}`` (``valid`` included).
    """
    check_options(normalize=normalize, mask_mode=mask_mode, signed=signed,
                  pointing_tolerance=pointing_tolerance)
    maps, part_maps = map_list(saliency, "saliency"), map_list(parts, "parts")
    check_pairs(maps, part_maps)
    px = check_module_px(module_px, len(maps), torch.device("cpu")).tolist()
    groups: dict[tuple, list[int]] = {}
    for i, m in enumerate(maps):
        groups.setdefault(m.shape, []).append(i)
    columns = {key: np.full(len(maps), np.nan) for key in (*SUMMARY_KEYS, "valid")}
    for index in groups.values():
        try:
            scores = structure_scores(
                torch.from_numpy(np.stack([maps[i] for i in index])),
                torch.from_numpy(np.stack([part_maps[i] for i in index])),
                module_px=[px[i] for i in index], normalize=normalize,
                mask_mode=mask_mode, signed=signed, pointing_tolerance=pointing_tolerance)
        except ValueError as error:
            if len(groups) == 1:
                raise
            inputs = ", ".join(map(str, index[:5])) + (", ..." if len(index) > 5 else "")
            raise ValueError(f"{error} (samples numbered among the {len(index)} maps of size "
                             f"{'x'.join(map(str, maps[index[0]].shape))}: inputs {inputs})") from None
        for key in columns:
            columns[key][index] = scores[key].double().cpu().numpy()
    result: dict = {key: float(np.nanmean(columns[key])) if np.isfinite(columns[key]).any() else float("nan")
                    for key in SUMMARY_KEYS}
    result["n"] = len(maps)
    result["n_invalid"] = {name: int((~np.isfinite(columns[name])).sum()) for name in SCORE_NAMES}
    if return_per_sample:
        per_sample = {key: columns[key].tolist() for key in SUMMARY_KEYS}
        per_sample["valid"] = columns["valid"].astype(bool).tolist()
        result["per_sample"] = per_sample
    return result
