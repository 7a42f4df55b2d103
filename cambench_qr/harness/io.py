"""Atomic result files and the run's provenance (package version, hardware)."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, then ``os.replace`` it onto ``path``,
    so a reader never sees a half-written file (on any error, a full disk included, the temporary file is
    removed and ``path`` is as it was). The file gets the permissions of a plain ``open``: 0o666 less the
    process umask (``mkstemp`` alone would leave 0o600). The package's one atomic-write implementation."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def current_umask() -> int:
    """The process umask, read from /proc/self/status on Linux (no change to it); elsewhere set and
    restored at once."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | Path, payload: dict) -> Path:
    """``payload`` as indented JSON, atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2, default=float) + "\n"))


def hardware(device: torch.device, num_processes: int) -> dict:
    """Where a run happened: device name, torch version, process count, CPU model and thread count."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"device": name, "torch": torch.__version__, "num_processes": num_processes,
            "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads()}


def _cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else the platform's processor / machine string."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()

