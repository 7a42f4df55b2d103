"""Exact Euclidean distance transform of a batch of masks.

``distance_to(mask)[b, y, x]`` = the Euclidean distance in pixels from pixel (y, x) to the nearest
``True`` pixel of ``mask[b]`` (0 inside the mask, ``inf`` where the mask is empty). It is exact: OpenCV's
``DIST_L2`` with ``DIST_MASK_PRECISE`` runs the Felzenszwalb-Huttenlocher lower-envelope algorithm and
equals ``scipy.ndimage.distance_transform_edt`` (to float32 rounding; tested). The paper used
``DIST_L2`` with the 3x3 mask, a chamfer approximation that is off by up to about 8% on diagonals.

The transform runs on the CPU (one OpenCV call per mask, which releases the GIL, spread over a
thread pool) and the result is returned on the mask's device.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch


def _edt_chunk(not_mask: np.ndarray, out: np.ndarray, rows: range) -> None:
    for b in rows:
        out[b] = cv2.distanceTransform(not_mask[b], cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def distance_to(mask: torch.Tensor, num_threads: int | None = None) -> torch.Tensor:
    """Exact distance (float32, pixels) from every pixel to the nearest True pixel of each (H, W) mask."""
    not_mask = np.ascontiguousarray((~mask).to(torch.uint8).cpu().numpy())
    out = np.empty(not_mask.shape, dtype=np.float32)
    batch = not_mask.shape[0]
    workers = max(1, min(num_threads or torch.get_num_threads(), batch))
    bounds = np.linspace(0, batch, workers + 1).astype(int)
    chunks = [range(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    if workers == 1:
        _edt_chunk(not_mask, out, chunks[0])
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda rows: _edt_chunk(not_mask, out, rows), chunks))
    dist = torch.from_numpy(out).to(mask.device)
    empty = ~mask.flatten(1).any(1)
    dist[empty] = float("inf")
    return dist
