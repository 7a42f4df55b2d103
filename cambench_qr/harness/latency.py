"""Latency and peak memory of the CAM engine: ms per image of one engine call (raw maps + logits) per
method and for all methods together."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import torch

from ..results import LatencyRow
from .data import TensorRows
from .scoring import QR_LABEL, Scorer


def peak_rss_reset() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """This process's peak resident set since the last reset (VmHWM), in MiB."""
    match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) / 1024


def latency(scorer: Scorer, rows, methods: tuple[str, ...], image_size: int, batch: int,
            repeats: int = 3) -> list[LatencyRow]:
    """Per method, then all methods together: ms per image on ``batch`` QR images of ``rows`` (cycled when
    fewer): one warm-up call, then the median of ``repeats`` timed calls with a device sync. Peak memory:
    ``torch.cuda.max_memory_allocated`` on GPU; on CPU the process's peak resident set (VmHWM after a
    reset), which includes the model and the Python process; None where it cannot be reset."""
    qr_rows = np.flatnonzero(np.asarray(rows["label"]) == QR_LABEL)
    picked = [int(qr_rows[i % len(qr_rows)]) for i in range(batch)]
    tensors = TensorRows(rows, image_size, with_parts=False)
    device = scorer.device
    images = torch.stack([tensors[i]["image"] for i in picked]).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out = []
    for label, chosen in [*((m, (m,)) for m in methods), ("all", methods)]:
        scorer.explain(images, chosen)
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            mem_kind = "cuda_max_memory_allocated"
        else:
            mem_kind = "cpu_peak_rss" if peak_rss_reset() else None
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            scorer.explain(images, chosen)
            sync()
            times.append(time.perf_counter() - start)
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            peak = peak_rss_mb() if mem_kind else None
        ms_per_img = 1000 * float(np.median(times)) / batch
        out.append(LatencyRow(method=label, batch_size=batch, ms_per_img=ms_per_img, peak_mem_mb=peak,
                              mem_kind=mem_kind, device=str(device), image_size=image_size, repeats=repeats))
    return out
