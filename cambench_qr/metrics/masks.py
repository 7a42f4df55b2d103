"""Region masks from a part-label map, in the package's own mode and in the paper's
(docs/architecture.md s.2.1).

``standard``: finder = {2}, timing = {4}, structure = {2, 4}, box = {2..8}, outside = {0, 1, 9}.

``paper`` reproduces the masks of the CAMBench-QR scripts (docs/paper.md s.1.2): finder = {2} and
box = {2..8} as above, but the paper's timing mask is "row 6 and column 6 minus the three finder
blocks", i.e. the true timing modules (row 6, columns 8..N-9 and column 6, rows 8..N-9) plus the one
separator module at each end of each line, 2(N-14) modules in all. Those four end modules are exactly
the separator modules that touch a timing module *along the timing line*: every other module beside
the timing lines is format information or data, and the separator modules beside the end modules
((5,7), (7,7), ...) touch the timing line only diagonally. On the pixel map this becomes: a separator
pixel joins the paper's timing mask when a timing pixel lies within one module pitch of it in the
same pixel row or the same pixel column. On an axis-aligned map with an integer module pitch this
reproduces the paper's mask pixel for pixel; under rotation or perspective the end modules are
approximate along their long edges (a few pixels), because the shift follows the pixel axes, not the
warped module axes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cambench_qr.metrics.inputs import check_options
from cambench_qr.metrics.regions import MIN_CLASS, REGION_NAMES, pixel_classes, region_of_class
from cambench_qr.parts import FINDER, SEPARATOR, TIMING

FINDER_MODULES = 3 * 7 * 7  # three 7x7 finder patterns: the module pitch follows from their area


def estimated_module_px(parts: torch.Tensor) -> torch.Tensor:
    """Module pitch per sample from the finder area: sqrt(|finder pixels| / 147); 0 without finders."""
    finder_px = (parts == FINDER).flatten(1).sum(1).to(torch.float64)
    return torch.sqrt(finder_px / FINDER_MODULES)


def paper_timing_mask(parts: torch.Tensor, module_px: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's timing mask (B, H, W): timing pixels plus the separator pixels that a timing pixel
    reaches by a horizontal or vertical step of at most one module pitch (``ceil(module_px)`` pixels;
    estimated from the finder area where not given or NaN)."""
    pitch = estimated_module_px(parts)
    if module_px is not None:  # known pitches win; NaN (unknown) falls back to the estimate
        pitch = torch.where(torch.isnan(module_px), pitch, module_px.to(pitch))
    reach = torch.ceil(pitch - 1e-6).long()  # an exact integer pitch of 8 reaches 8 pixels
    timing = (parts == TIMING).float()[:, None]
    grown = timing[:, 0] > 0
    max_reach = int(reach.max()) if reach.numel() else 0
    for k in range(1, max_reach + 1):
        active = (k <= reach)[:, None, None]
        pad = F.pad(timing, (k, k, k, k))
        h, w = timing.shape[-2:]
        shifted = (pad[..., k:k + h, :w] + pad[..., k:k + h, 2 * k:] + pad[..., :h, k:k + w]
                   + pad[..., 2 * k:, k:k + w])[:, 0] > 0
        grown |= shifted & active
    return (parts == TIMING) | (grown & (parts == SEPARATOR))


def mode_classes(parts: torch.Tensor, mask_mode: str, module_px: torch.Tensor | None = None,
                 standard: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(pixel_class, paper_timing)``: the pixel classes (``regions``) of (B, H, W) part maps in
    ``mask_mode`` (``standard``: their standard-mode classes when already computed) and, in paper mode,
    the paper's timing mask (None in standard mode)."""
    classes = pixel_classes(parts) if standard is None else standard
    if mask_mode == "standard":
        return classes, None
    paper_timing = paper_timing_mask(parts, module_px).view(classes.shape)
    timing_class = torch.full_like(classes, MIN_CLASS["structure"])  # structure, not finder
    return torch.where(paper_timing, timing_class, classes), paper_timing


def region_masks(parts: torch.Tensor, mask_mode: str = "standard",
                 module_px: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Boolean (B, H, W) masks ``finder, timing, structure, box, outside`` for ``mask_mode``.

    ``structure = finder | timing`` and ``outside = ~box`` in both modes; only the timing mask differs
    (see the module docstring)."""
    check_options(mask_mode=mask_mode)
    classes, _ = mode_classes(parts, mask_mode, module_px)
    return {r: region_of_class(classes, r) for r in REGION_NAMES}
