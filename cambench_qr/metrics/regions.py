"""The one encoding of region membership the metrics use: a pixel class per pixel.

The named regions of ``cambench_qr.parts.REGIONS`` nest: finder (part 2) lies in the structure (parts 2
and 4), the structure in the box (parts 2..8); timing = structure minus finder and outside = not box.
So one small integer per pixel says which regions hold it:

    class 0: outside the box     class 1: box, not structure     class 2: timing     class 3: finder

and every region is a threshold or a band on the class (``MIN_CLASS``, ``region_of_class``). The mask
mode changes only which pixels are class 2 (the paper's timing mask adds the timing lines' end
modules, part 3). Both backends sort the class with the saliency (2 bits of the sort key) and count
regions from it; ``region_masks`` reads the masks off it. The nesting is checked at import: a change to
``parts.REGIONS`` that breaks it fails here, by name, not as wrong numbers.
"""

from __future__ import annotations

import torch

from cambench_qr.parts import NUM_PARTS, REGIONS

REGION_NAMES = ("finder", "timing", "structure", "box", "outside")
NESTED = ("box", "structure", "finder")  # each inside the one before: class >= 1, >= 2, >= 3
MIN_CLASS: dict[str, int] = {region: i + 1 for i, region in enumerate(NESTED)}
CLASS_BITS = 2  # bits of the sort key that hold the class
RANK_REGIONS = ("finder", "structure", "box")  # relevance-rank accuracy
ROC_REGIONS = ("structure", "box")  # ROC-AUC against the complement
POINTING_REGIONS = ("finder", "box")  # pointing game

_ids = {r: set(ids) for r, ids in REGIONS.items()}
if not (_ids["finder"] < _ids["structure"] < _ids["box"]
        and _ids["timing"] == _ids["structure"] - _ids["finder"]
        and _ids["outside"] == set(range(NUM_PARTS)) - _ids["box"] and len(NESTED) < 1 << CLASS_BITS):
    raise ImportError("the metrics' pixel classes need finder < structure < box, timing = structure - "
                      "finder and outside = not box in parts.REGIONS")

CLASS_OF_PART = torch.tensor([sum(i in REGIONS[r] for r in NESTED) for i in range(NUM_PARTS)],
                             dtype=torch.uint8)
# The classes of the ids, 2 bits an id, for the compiled kernel: (CLASS_TABLE >> 2 id) & 3.
CLASS_TABLE = sum(int(c) << (CLASS_BITS * i) for i, c in enumerate(CLASS_OF_PART))


def pixel_classes(parts: torch.Tensor) -> torch.Tensor:
    """uint8 pixel classes of (B, ...) part ids (standard mode)."""
    return CLASS_OF_PART.to(parts.device)[parts.long()]


def region_of_class(pixel_class: torch.Tensor, region: str) -> torch.Tensor:
    """Boolean membership of ``region`` for each pixel class."""
    if region == "timing":
        return pixel_class == MIN_CLASS["structure"]
    if region == "outside":
        return pixel_class < MIN_CLASS["box"]
    return pixel_class >= MIN_CLASS[region]


def region_counts(position: torch.Tensor, at_least: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every region's pixels among ``position`` pixels (float64), from the pixels of each ``NESTED``
    region (``at_least[r]``: those of class >= MIN_CLASS[r])."""
    counts = {r: at_least[r].double() for r in NESTED}
    counts["timing"] = counts["structure"] - counts["finder"]
    counts["outside"] = position - counts["box"]
    return counts


def region_sums(per_part: torch.Tensor, whole, timing: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
    """Every region's sum (pixels or mass) from the (B, NUM_PARTS) sums per part id and the sum over
    the whole map (``whole``): finder, timing and box over their ids, structure = finder + timing,
    outside = whole - box; ``timing`` (B,) replaces the timing sum (the paper's timing mask)."""
    sums = {r: per_part[:, list(REGIONS[r])].sum(1) for r in ("finder", "timing", "box")}
    if timing is not None:
        sums["timing"] = timing
    sums["structure"] = sums["finder"] + sums["timing"]
    sums["outside"] = whole - sums["box"]
    return sums
