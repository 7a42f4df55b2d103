"""The one place where metric inputs are checked: every entry point (``structure_scores``,
``prepare_parts``, ``grid_scores``, ``summarize`` and the evaluate module) calls these, so all take the
same inputs and reject bad ones with the same one-line ValueError (TypeError for a wrong kind of object).

Accepted:
  - saliency: a (B, H, W) tensor or array, or a sequence of (H, W) maps (tensors, arrays, nested lists,
    PIL images), of float16, bfloat16, float32 or float64 values (scored as float32). Integer, bool and
    complex maps are refused: a CAM is real-valued, and an integer map is most likely a part map passed
    in the wrong place.
  - parts: the same containers of integer part ids 0..9 (``cambench_qr.parts``); bool and float maps are
    refused.
  - a batch (``structure_scores``, ``prepare_parts``) holds maps of one size; ``summarize`` and the
    evaluate module take maps of mixed sizes.
Messages name the argument, the sample and the problem, never the values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import numpy as np
import torch

from cambench_qr.parts import NUM_PARTS

NORMALIZATIONS = ("sum", "minmax")
MASK_MODES = ("standard", "paper")
_CONTAINERS = "a tensor, a numpy array or a sequence of 2-D maps"
_WIDE_UNSIGNED = (torch.uint16, torch.uint32, torch.uint64)  # few torch ops support them


def _shape(shape) -> str:
    return "x".join(str(int(s)) for s in shape) if len(shape) else "scalar"


def _from_numpy(array: np.ndarray, what: str) -> torch.Tensor:
    """A tensor of a numeric numpy array (unsigned ids wider than 8 bits as int64)."""
    if array.dtype.kind not in "biufc":
        raise ValueError(f"{what} must hold numbers, got a numpy array of dtype {array.dtype}")
    if array.dtype.kind == "u" and array.dtype.itemsize > 1:
        if array.dtype.itemsize == 8:
            array = np.minimum(array, np.uint64(np.iinfo(np.int64).max))
        array = array.astype(np.int64)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(np.ascontiguousarray(array))


def _is_map(x) -> bool:
    return isinstance(x, (torch.Tensor, np.ndarray)) or hasattr(x, "__array_interface__")  # PIL images


def as_tensor(x, what: str) -> torch.Tensor:
    """``x`` (tensor, array, PIL image or a sequence of them or of nested lists of numbers) as one
    detached tensor; a sequence of maps of different sizes is a ValueError naming the first two sizes."""
    if isinstance(x, torch.Tensor):
        if x.dtype in _WIDE_UNSIGNED:
            return _from_numpy(x.detach().cpu().numpy(), what).to(x.device)
        return x.detach()
    if _is_map(x):
        return _from_numpy(np.asarray(x), what)
    if not isinstance(x, (list, tuple)):
        raise TypeError(f"{what} must be {_CONTAINERS}, got {type(x).__name__}")
    if not x:
        raise ValueError(f"{what} is empty: no maps to score")
    if not any(_is_map(item) for item in x):
        try:
            return _from_numpy(np.asarray(x), what)
        except ValueError as error:  # ragged nested lists
            if "inhomogeneous" not in str(error):
                raise
            raise ValueError(f"{what}: nested lists of different lengths (maps must be rectangular, and "
                             f"a batch of one size)") from None
    items = [as_tensor(item, f"{what} map {i}") for i, item in enumerate(x)]
    for i, item in enumerate(items[1:], 1):
        if item.shape != items[0].shape:
            raise ValueError(f"{what} maps differ in size: map 0 is {_shape(items[0].shape)}, map {i} is "
                             f"{_shape(item.shape)}; a batch holds maps of one size (summarize and the "
                             f"evaluate module take mixed sizes)")
        if item.device != items[0].device:
            raise ValueError(f"{what} maps lie on different devices ({items[0].device}, {item.device})")
    return torch.stack(items)


def _check_batch_shape(t: torch.Tensor, what: str) -> None:
    if t.ndim != 3:
        raise ValueError(f"{what} must be (B, H, W), got shape {tuple(t.shape)}")
    if 0 in t.shape:
        raise ValueError(f"{what} must hold at least one map of at least one pixel, got shape "
                         f"{tuple(t.shape)}")


def _float_map(t: torch.Tensor, what: str) -> torch.Tensor:
    """float32 (contiguous) of a floating tensor, or a ValueError naming the dtype."""
    if not t.is_floating_point():
        raise ValueError(f"{what} must hold floating-point values (float16, bfloat16, float32 or float64), "
                         f"got {t.dtype}")
    return t.float().contiguous()


def _id_map(t: torch.Tensor, what: str, first_index: int = 0, item: str = "sample") -> torch.Tensor:
    """uint8 (contiguous) of an integer (B, ...) tensor of part ids 0..9, or a ValueError naming the first
    bad ``item`` (numbered from ``first_index``)."""
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{what} must hold integer part ids 0..{NUM_PARTS - 1}, got {t.dtype}")
    flat = t.reshape(t.shape[0], -1)
    highest = flat.amax(1)
    lowest = flat.amin(1) if t.dtype.is_signed else torch.zeros_like(highest)
    bad = (lowest < 0) | (highest >= NUM_PARTS)
    if bad.any():
        i = int(bad.nonzero()[0])
        wrong = int(lowest[i]) if lowest[i] < 0 else int(highest[i])
        raise ValueError(f"{what} {item} {first_index + i} holds id {wrong}; part ids are "
                         f"0..{NUM_PARTS - 1}")
    return t.to(torch.uint8).contiguous()


def check_saliency(saliency, shape: torch.Size | None = None) -> torch.Tensor:
    """(B, H, W) float32 saliency (detached, contiguous), or a ValueError; ``shape`` is the part maps'
    shape, which the saliency must match."""
    sal = as_tensor(saliency, "saliency")
    _check_batch_shape(sal, "saliency")
    if shape is not None and sal.shape != shape:
        raise ValueError(f"saliency and parts must both be (B, H, W) of one shape; got saliency "
                         f"{tuple(sal.shape)} and parts {tuple(shape)}")
    return _float_map(sal, "saliency")


def check_parts(parts, device: torch.device | None = None) -> torch.Tensor:
    """(B, H, W) uint8 part ids, or a ValueError naming the first sample with an id outside 0..9."""
    prt = as_tensor(parts, "parts")
    if device is not None:
        prt = prt.to(device)
    _check_batch_shape(prt, "parts")
    return _id_map(prt, "parts")


def check_module_px(module_px, batch: int, device: torch.device) -> torch.Tensor:
    """(B,) float64 module pitches from None, one number or one per sample; NaN means unknown."""
    if module_px is None:
        return torch.full((batch,), float("nan"), dtype=torch.float64, device=device)
    problem = f"module_px must be one positive number or {batch} positive numbers (one per sample; NaN " \
              f"where unknown)"
    try:
        px = as_tensor(module_px, "module_px") if not isinstance(module_px, Real) else torch.tensor(module_px)
    except (TypeError, ValueError):
        raise ValueError(f"{problem}, got {type(module_px).__name__}") from None
    if px.dtype == torch.bool or px.is_complex():
        raise ValueError(f"{problem}, got {px.dtype} values")
    px = px.to(device=device, dtype=torch.float64).reshape(-1)
    if px.numel() == 1:
        px = px.expand(batch)
    if px.numel() != batch:
        raise ValueError(f"{problem}, got {px.numel()} numbers")
    if not bool((torch.isnan(px) | (torch.isfinite(px) & (px > 0))).all()):
        raise ValueError(f"{problem}; got a zero, negative or infinite pitch")
    return px


def check_options(*, normalize: str = "sum", mask_mode: str = "standard", signed: bool = False,
                  pointing_tolerance: float = 0.0) -> None:
    """A ValueError (TypeError for a wrong type) for an option outside its documented values."""
    if not isinstance(normalize, str) or normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {_short(normalize)}")
    if not isinstance(mask_mode, str) or mask_mode not in MASK_MODES:
        raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {_short(mask_mode)}")
    if not isinstance(signed, (bool, np.bool_)):
        raise TypeError(f"signed must be True or False, got {_short(signed)}")
    if isinstance(pointing_tolerance, (bool, np.bool_)) or not isinstance(pointing_tolerance, Real) \
            or not (0 <= pointing_tolerance < math.inf):
        raise ValueError(f"pointing_tolerance must be a finite number of pixels >= 0, got "
                         f"{_short(pointing_tolerance)}")


def _short(value) -> str:
    """A value for a message: its repr when short, else its type."""
    text = repr(value)
    return text if len(text) <= 40 else f"a {type(value).__name__}"


def map_list(maps, what: str) -> list[np.ndarray]:
    """Checked (H, W) maps from a (B, H, W) tensor/array or a sequence of 2-D maps of any sizes: float32
    for ``what="saliency"``, uint8 part ids for ``what="parts"``; a ValueError names the first bad map."""
    if not isinstance(maps, (list, tuple)):  # one batch: checked whole, its maps numbered as samples
        checked = check_saliency(maps) if what == "saliency" else check_parts(maps)
        return list(checked.cpu().numpy())
    if not maps:
        raise ValueError(f"{what} is empty: no maps to score")
    items = [as_tensor(m, f"{what} map {i}") for i, m in enumerate(maps)]
    for i, item in enumerate(items):
        if item.ndim != 2 or 0 in item.shape:
            raise ValueError(f"{what} map {i} must be a non-empty 2-D (H, W) map, got shape "
                             f"{tuple(item.shape)}")
    if what == "saliency":
        return [_float_map(item, f"saliency map {i}").cpu().numpy() for i, item in enumerate(items)]
    return [_id_map(item[None], "parts", i, "map")[0].cpu().numpy() for i, item in enumerate(items)]


def check_pairs(maps: Sequence[np.ndarray], part_maps: Sequence[np.ndarray]) -> None:
    """A ValueError unless there is one part map per saliency map, of the same size."""
    if len(maps) != len(part_maps):
        raise ValueError(f"got {len(maps)} saliency maps and {len(part_maps)} part maps")
    for i, (m, prt) in enumerate(zip(maps, part_maps, strict=True)):
        if m.shape != prt.shape:
            raise ValueError(f"saliency map {i} is {_shape(m.shape)} but its part map is {_shape(prt.shape)}")
