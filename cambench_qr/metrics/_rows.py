"""Run a numpy/OpenCV routine over chunks of batch rows on a few threads (both release the GIL)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch


def for_row_chunks(fn: Callable[[slice], None], batch: int, num_threads: int | None = None) -> None:
    """Call ``fn(rows)`` on contiguous row slices covering ``range(batch)``, one per thread
    (``torch.get_num_threads()`` by default)."""
    workers = max(1, min(num_threads or torch.get_num_threads(), batch))
    bounds = np.linspace(0, batch, workers + 1).astype(int)
    chunks = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    if workers == 1:
        fn(chunks[0])
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, chunks))
