"""Run numpy/numba/torch work over chunks of batch rows on a few threads (their kernels release
the GIL; numpy's row sort scales worst: 1.4-1.6x on 2 threads here)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch

MIN_PIXELS_PER_THREAD = 1 << 18  # below this a thread costs more than it saves
T = TypeVar("T")
_worker = threading.local()  # .active: this thread already runs one chunk of a map_row_chunks call


def _threads() -> int:
    """Threads for one call: torch.get_num_threads(), or 1 inside a map_row_chunks worker."""
    return 1 if getattr(_worker, "active", False) else torch.get_num_threads()


def numpy_kernels(device: torch.device) -> bool:
    """Whether tensors on ``device`` are scored by the numpy/numba kernels (CPU) rather than the
    batched torch ones (any other device). Both give the same numbers; tests patch this to run the
    torch kernels on the CPU."""
    return device.type == "cpu"


def for_row_chunks(fn: Callable[[slice], None], batch: int, row_pixels: int) -> None:
    """Call ``fn(rows)`` on contiguous row slices covering ``range(batch)``, one per thread
    (up to ``torch.get_num_threads()``, at least MIN_PIXELS_PER_THREAD pixels each)."""
    workers = max(1, min(_threads(), batch, batch * row_pixels // MIN_PIXELS_PER_THREAD))
    bounds = np.linspace(0, batch, workers + 1).astype(int)
    chunks = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    if workers == 1:
        fn(chunks[0])
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, chunks))


class Scratch:
    """Arrays one thread reuses from chunk to chunk: a fresh large array costs a page fault per 4 KiB
    page on first touch (here ~2x the work of a pass over it), a reused one none."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised C-contiguous array ``shape``/``dtype`` held under ``name`` (grown as needed;
        the previous contents of ``name`` are given up)."""
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        held = self._arrays.get(name)
        if held is None or held.nbytes < nbytes:
            held = self._arrays[name] = np.empty(nbytes, np.uint8)
        return held[:nbytes].view(dtype).reshape(shape)


def map_row_chunks(fn: Callable[[slice, Scratch], T], batch: int, most_rows: int) -> list[T]:
    """``[fn(slice(i, i + rows), scratch) for i in range(0, batch, rows)]``, the chunks spread over up
    to ``torch.get_num_threads()`` threads (each chunk whole in one thread; its own for_row_chunks
    calls then run serially), ``scratch`` the calling thread's ``Scratch`` for this call. ``rows`` is
    ``most_rows``, or fewer so that every thread gets a chunk. An exception of the first failing chunk
    is raised."""
    threads = _threads()
    rows = max(1, min(most_rows, -(-batch // threads)))
    chunks = [slice(i, min(i + rows, batch)) for i in range(0, batch, rows)]
    workers = min(threads, len(chunks))
    if workers <= 1:
        scratch = Scratch()
        return [fn(chunk, scratch) for chunk in chunks]
    scratches: dict[int, Scratch] = {}

    def run(rows: slice) -> T:
        _worker.active = True
        # The chunks are the parallelism: a chunk's torch ops run on its own thread. (With torch's
        # OpenMP team in each chunk thread, the teams' idle threads spin-wait between ops and take the
        # core the other chunk needs: 1.4x the wall time here.)
        torch.set_num_threads(1)
        try:
            return fn(rows, scratches.setdefault(threading.get_ident(), Scratch()))
        finally:
            _worker.active = False

    try:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(run, chunks))
    finally:
        torch.set_num_threads(threads)  # the caller's setting (also what new threads start with)
