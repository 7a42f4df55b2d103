"""Exact Euclidean distance transform of a batch of masks.

``distance_to(mask)[b, y, x]`` = the Euclidean distance in pixels from pixel (y, x) to the nearest
``True`` pixel of ``mask[b]`` (0 inside the mask, ``inf`` where the mask is empty). It is exact: the
Felzenszwalb-Huttenlocher lower-envelope algorithm (``cpu_kernels.exact_distance``, compiled; 3.7x
faster than OpenCV's ``DIST_MASK_PRECISE`` version of it here) equals
``scipy.ndimage.distance_transform_edt`` (to float32 rounding; tested). The paper used OpenCV's
``DIST_L2`` with the 3x3 mask, a chamfer approximation that is off by up to about 8% on diagonals.

The transform runs on the CPU (images spread over threads) and the result is returned on the mask's
device.
"""

from __future__ import annotations

import numpy as np
import torch

from cambench_qr.metrics._rows import for_row_chunks
from cambench_qr.metrics.cpu_kernels import exact_distance


def distance_to(mask: torch.Tensor) -> torch.Tensor:
    """Exact distance (float32, pixels) from every pixel to the nearest True pixel of each (H, W) mask."""
    dist = torch.from_numpy(distance_to_labels(mask.contiguous().view(torch.uint8).cpu().numpy(), 1)[0])
    dist = dist.to(mask.device)
    empty = (~mask.flatten(1).any(1)).nonzero()[:, 0]
    dist[empty] = float("inf")  # (indexing the few empty rows, not masking every pixel)
    return dist


def distance_to_labels(labels: np.ndarray, least: int, out: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(distance, totals)``: the exact distance (float32) from every pixel of (B, H, W) uint8 ``labels``
    to the nearest pixel labelled ``least`` or more (written into ``out`` when given; undefined, a large
    number, in an image without such pixels) and each image's float64 sum of it."""
    labels = np.ascontiguousarray(labels)
    out = np.empty(labels.shape, dtype=np.float32) if out is None else out
    totals = np.empty(len(labels))

    def transform(rows: slice) -> None:
        exact_distance(labels[rows], least, out[rows], totals[rows])

    for_row_chunks(transform, len(out), out[0].size)
    return out, totals
