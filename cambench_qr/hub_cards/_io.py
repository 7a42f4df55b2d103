"""Atomic writes of bytes and text, through the harness's `write_atomic` (temporary file + os.replace)."""

from __future__ import annotations

from pathlib import Path

from ..harness.io import write_atomic


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
