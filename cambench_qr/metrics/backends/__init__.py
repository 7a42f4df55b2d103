"""Backends of the structure scores: ``numba_cpu`` (compiled kernels, CPU tensors) and
``torch_batched`` (batched torch ops, every other device). Each offers ``part_runs`` and ``row_pass``
and returns the named results of ``contract``."""

from __future__ import annotations

from types import ModuleType

import torch

from cambench_qr.metrics import _rows
from cambench_qr.metrics.backends import numba_cpu, torch_batched


def for_device(device: torch.device) -> ModuleType:
    """The backend that scores tensors on ``device`` (``_rows.numpy_kernels`` decides; tests patch it
    to run the torch backend on the CPU)."""
    return numba_cpu if _rows.numpy_kernels(device) else torch_batched
