"""Run a numpy/OpenCV routine over chunks of batch rows on a few threads (both release the GIL)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

MIN_PIXELS_PER_THREAD = 1 << 18  # below this a thread costs more than it saves


def for_row_chunks(fn: Callable[[slice], None], batch: int, row_pixels: int) -> None:
    """Call ``fn(rows)`` on contiguous row slices covering ``range(batch)``, one per thread
    (up to ``torch.get_num_threads()``, at least MIN_PIXELS_PER_THREAD pixels each)."""
    workers = max(1, min(torch.get_num_threads(), batch, batch * row_pixels // MIN_PIXELS_PER_THREAD))
    bounds = np.linspace(0, batch, workers + 1).astype(int)
    chunks = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    if workers == 1:
        fn(chunks[0])
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, chunks))
