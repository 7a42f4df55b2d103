"""Means over a set of maps: the one entry point behind the evaluate module (and handy on its own).

Maps may come as one (B, H, W) tensor/array or as a list of (H, W) arrays, tensors or PIL images of
different sizes; each size is scored as one batch by ``structure_scores`` and the per-sample results
are put back in input order.
"""

from __future__ import annotations

import numpy as np
import torch

from cambench_qr.metrics.scores import SCORE_NAMES, structure_scores

SUMMARY_KEYS: tuple[str, ...] = (*SCORE_NAMES, *(f"chance_{name}" for name in SCORE_NAMES))


def as_map_list(maps) -> list[np.ndarray]:
    """(H, W) numpy arrays from a (B, H, W) tensor/array or a sequence of 2-D maps or PIL images."""
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().numpy()
    return [np.asarray(m.detach().cpu() if isinstance(m, torch.Tensor) else m) for m in maps]


def _module_px_list(module_px, count: int) -> list[float] | None:
    if module_px is None:
        return None
    values = np.asarray(module_px.cpu() if isinstance(module_px, torch.Tensor) else module_px,
                        dtype=np.float64).reshape(-1)
    if values.size == 1:
        return [float(values[0])] * count
    if values.size != count:
        raise ValueError(f"module_px must be one number or one per map ({count}), got {values.size}")
    return values.tolist()


def summarize(saliency, parts, *, module_px=None, normalize: str = "sum", mask_mode: str = "standard",
              signed: bool = False, pointing_tolerance: float = 0.0, return_per_sample: bool = False) -> dict:
    """Mean of every score and its chance value over the finite samples, as floats.

    Returns ``{<score>: mean, "chance_<score>": mean, "n": number of maps, "n_invalid": {score: number
    of NaN samples}}`` and, with ``return_per_sample``, ``"per_sample": {key: list}`` (``valid`` included).
    """
    maps, part_maps = as_map_list(saliency), as_map_list(parts)
    if len(maps) != len(part_maps):
        raise ValueError(f"got {len(maps)} saliency maps and {len(part_maps)} part maps")
    if not maps:
        raise ValueError("no maps to score")
    px = _module_px_list(module_px, len(maps))
    groups: dict[tuple, list[int]] = {}
    for i, (m, prt) in enumerate(zip(maps, part_maps, strict=True)):
        groups.setdefault((m.shape, prt.shape), []).append(i)  # a mismatched pair fails in its own group
    columns = {key: np.full(len(maps), np.nan) for key in (*SUMMARY_KEYS, "valid")}
    for index in groups.values():
        try:
            scores = structure_scores(
                torch.from_numpy(np.stack([maps[i] for i in index]).astype(np.float32)),
                torch.from_numpy(np.stack([part_maps[i] for i in index])),
                module_px=None if px is None else [px[i] for i in index], normalize=normalize,
                mask_mode=mask_mode, signed=signed, pointing_tolerance=pointing_tolerance)
        except ValueError as error:
            if len(groups) == 1:
                raise
            raise ValueError(f"{error}; sample numbers count among the maps of shape {maps[index[0]].shape}, "
                             f"which are inputs {index}") from None
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
