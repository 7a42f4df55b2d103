"""Build one config into a local folder laid out like a Hub dataset repo (docs/architecture.md s.2.3).

    DIR/README.md                                  card with `configs:` YAML (all configs built so far)
    DIR/data/<config>/<split>-0000k-of-0000n.parquet
    DIR/figures/<config>.png                       sample images with their part maps

Rows come from `Dataset.from_generator` (list-valued `gen_kwargs` are sharded over `num_proc` workers; row i
depends only on `(config, split, i, seed)`, never on the worker count). Images are PNG-encoded once, here.
Parquet bytes are deterministic: fixed row-group and shard sizes, no timestamps.

The build is atomic: everything is written into a staging folder inside DIR (which also holds the
`datasets` cache, so a rebuild really regenerates and nothing lands in ~/.cache), then moved into place
with `os.replace`, the card last, under a lock file beside DIR (`.<DIR name>.cambench-build.lock` in its
parent) so that builds into one DIR at once keep each other's configs. An interrupted build leaves every
existing config as it was. The staging folder's name records its owner (`.cambench-build-<host>-<pid>-*`):
a build killed outright (SIGKILL) cannot remove it, and the next build into DIR on the same host removes
every staging folder whose process is gone. A failed build removes the output folder when it created it.

Sizes are bounded before anything is allocated (`cambench_qr.limits`): the canvas side, the row counts, and
the memory `num_proc` workers generating rows of that side need; `num_proc` is capped at the CPU count.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import socket
import struct
import tempfile
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import cv2
import datasets
import numpy as np
import pyarrow.parquet as pq
from datasets.exceptions import DatasetGenerationError
from huggingface_hub.utils import WeakFileLock

from ..errors import remove_if_empty
from ..limits import BUILD_BYTES_PER_PIXEL, MAX_IMAGE_SIZE, MAX_ROWS, cap_num_proc, check_int, check_memory
from .card import add_config, is_cambench_card, load_card_data, render_card, sample_figure
from .features import IMAGE_COLUMNS, features_for
from .interventions import interventions_row
from .publish import PushError, check_push_ready, push_dataset
from .samples import CONFIG_NAMES, SPLITS, generate_row

# Test-only configs besides those `generate_row` makes; `real` is built from photos (`real.build_real`).
TEST_ONLY_CONFIGS: tuple[str, ...] = ("interventions", "real")
ALL_CONFIGS: tuple[str, ...] = (*CONFIG_NAMES, *TEST_ONLY_CONFIGS)

RowFn = Callable[..., dict]

STAGING_PREFIX = ".cambench-build-"
ROWS_PER_ROW_GROUP = 100  # parquet row group size (the Hub viewer's choice for image datasets)
ROWS_PER_SHARD = 5000  # rows per parquet file: a few hundred MB at most at 224 px
ROWS_PER_CHUNK = 250  # rows per generator shard (see _row_chunks)
# PNG encoding (lossless): every row gets PNG's "up" filter (row minus the row above, computed in NumPy) and
# zlib level 1. On 224 px standard images that is ~25% faster than OpenCV's encoder with the same filter and
# level (no channel flip, no libpng overhead) and 2.5x faster than OpenCV's default adaptive filter at level
# 3, for files ~10% larger (~21 KB). Label maps compress to < 1 KB the same way. The all-zero map (the
# `occluded` column of almost every row) is encoded once per size.
PNG_LEVEL = 1
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_FILTER_UP = 2
FIGURE_SAMPLES = 6  # rows shown in the card figure


def build_dataset(config: str, out_dir: str | Path, *, num_train: int, num_test: int, seed: int = 0,
                  num_proc: int = 1, image_size: int | None = None, quiet: bool = False,
                  push: str | None = None, row_fn: RowFn | None = None) -> Path:
    """Generate `config` (`num_train` + `num_test` rows) into `out_dir`, keeping the configs already there.

    `row_fn(config, split, index, seed, image_size=...)` makes one row (numpy images + scalar columns;
    default: `interventions_row` for `interventions`, else `generate_row`);
    `push`, a repo id, also uploads the folder to the Hub afterwards. Returns the folder.
    """
    _check_arguments(config, num_train, num_test, seed, num_proc, image_size)
    num_proc = cap_num_proc(num_proc, num_train + num_test)
    if image_size is not None:
        check_memory(f"{num_proc} worker(s) generating {image_size} px rows",
                     num_proc * BUILD_BYTES_PER_PIXEL * image_size**2)
    if row_fn is None:
        if config == "real":
            raise ValueError("the real config is built from a folder of photos: "
                             "`cambench-qr build --config real --photos DIR` (real.build_real)")
        row_fn = interventions_row if config == "interventions" else generate_row
    sizes = {split: n for split, n in zip(SPLITS, (num_train, num_test), strict=True) if n > 0}
    row_fn(config, next(iter(sizes)), 0, seed, image_size=image_size)  # the row's own checks, before any I/O
    out = Path(out_dir)
    check_output_dir(out)
    if push:
        check_push_ready()
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(out)
        staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(), dir=out))
    except OSError as exc:
        raise ValueError(f"cannot write to {out}: {exc.strerror or exc}") from None
    try:
        with _progress_bars(enabled=not quiet):
            splits = _generate_splits(config, sizes, seed, image_size, num_proc, row_fn, staging / "cache")
            split_sizes = {split: (len(ds), _write_parquet(ds, staging / "data" / config, split))
                           for split, ds in splits.items()}
            # the figure shows rows of the last split that has any (test, unless it is empty)
            figure_rows = next(filter(None, map(_figure_rows, reversed(list(splits.values())))), [])
        (staging / "figures").mkdir()
        _write_png(staging / "figures" / f"{config}.png", sample_figure(figure_rows))
        download_size = sum(f.stat().st_size for f in (staging / "data" / config).iterdir())
        with WeakFileLock(_lock_path(out)):
            card_data = load_card_data(out / "README.md")
            settings = {"seed": seed, "image_size": image_size}
            add_config(card_data, config, split_sizes, download_size, build=settings)
            (staging / "README.md").write_text(render_card(card_data), encoding="utf-8")
            _move_into_place(staging, out, config)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            remove_if_empty(out)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    if push:
        try:
            push_dataset(out, push, quiet=quiet)
        except PushError as exc:
            raise PushError(f"{exc} (the dataset built in {out} is intact)") from exc
    return out


def _check_arguments(config: str, num_train: int, num_test: int, seed: int, num_proc: int,
                     image_size: int | None) -> None:
    if config not in ALL_CONFIGS:
        raise ValueError(f"unknown config {config!r}; choose one of: {', '.join(ALL_CONFIGS)}")
    if config in TEST_ONLY_CONFIGS and num_train:
        raise ValueError(f"the {config} config has a test split only; pass num_train=0 (--num-train 0)")
    check_int("num_train", num_train, 0, MAX_ROWS)
    check_int("num_test", num_test, 0, MAX_ROWS)
    check_int("seed", seed, 0, 2**63 - 1)
    if num_train + num_test == 0:
        raise ValueError("nothing to build: num_train and num_test are both 0")
    check_int("num_proc", num_proc, 1, 2**31)
    if image_size is not None:
        check_int("image_size", image_size, 1, MAX_IMAGE_SIZE)


def check_output_dir(out: Path) -> None:
    """Refuse a non-folder target, or a non-empty folder holding something other than CAMBench-QR."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a folder")
    if not out.is_dir():
        return
    content = [p for p in out.iterdir() if not p.name.startswith((STAGING_PREFIX, ".git"))]
    if content and not is_cambench_card(out / "README.md"):
        raise ValueError(f"output {out} is not empty and holds no CAMBench-QR dataset card (README.md); "
                         f"choose a new or empty folder")


def _generate_splits(config: str, sizes: dict[str, int], seed: int, image_size: int | None, num_proc: int,
                     row_fn: RowFn, cache_dir: Path) -> dict[str, datasets.Dataset]:
    """Rows 0..n-1 of every split (``sizes``: split -> n) as Arrow datasets, generated over `num_proc`
    workers in one `from_generator` call (one worker pool for all splits: its start-up costs ~0.5 s).

    An error raised by the row function reaches the caller as itself, not wrapped by `datasets`.
    """
    threads = cv2.getNumThreads()
    if num_proc > 1:
        # The forked workers inherit this: OpenCV's own threads would only contend with the other workers for
        # the same cores (2 workers, 2000 rows: 294 -> 337 rows/s). Set here, never in a forked child, where
        # resizing OpenCV's thread pool can hang.
        cv2.setNumThreads(1)
    try:
        rows = datasets.Dataset.from_generator(
            _encoded_rows,
            features=features_for(config),
            cache_dir=str(cache_dir),
            num_proc=num_proc if num_proc > 1 else None,
            split=datasets.NamedSplit("_".join(sizes)),
            gen_kwargs={"chunks": _row_chunks(sizes, num_proc), "config": config, "seed": seed,
                        "image_size": image_size, "row_fn": row_fn},
        )
    except DatasetGenerationError as exc:
        if exc.__cause__ is None:
            raise
        raise exc.__cause__ from None
    finally:
        cv2.setNumThreads(threads)
    starts = np.cumsum([0, *sizes.values()])
    return {split: rows.select(range(lo, hi))
            for split, lo, hi in zip(sizes, starts[:-1], starts[1:], strict=True)}


def _row_chunks(sizes: dict[str, int], num_proc: int) -> list[tuple[tuple[str, int, int], ...]]:
    """The rows of every split in order (split by split), cut into a multiple of `num_proc` chunks of
    near-equal size; a chunk is a tuple of ``(split, first, stop)`` row ranges. `datasets` makes one shard
    (one generator call) per list element and deals the workers equal runs of shards, so few equal chunks
    balance the workers and avoid a per-row shard overhead."""
    total = sum(sizes.values())
    count = num_proc * max(1, math.ceil(total / (num_proc * ROWS_PER_CHUNK)))
    bounds = np.linspace(0, total, count + 1).astype(int)
    offsets = np.cumsum([0, *sizes.values()])
    chunks = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        parts = tuple((split, int(max(lo, a) - a), int(min(hi, b) - a))
                      for split, a, b in zip(sizes, offsets[:-1], offsets[1:], strict=True)
                      if max(lo, a) < min(hi, b))
        if parts:
            chunks.append(parts)
    return chunks


def _encoded_rows(chunks: list[tuple[tuple[str, int, int], ...]], config: str, seed: int,
                  image_size: int | None, row_fn: RowFn):
    columns = features_for(config).keys()
    for split, first, stop in (part for chunk in chunks for part in chunk):
        for index in range(first, stop):
            row = row_fn(config, split, index, seed, image_size=image_size)
            if row.keys() != columns:
                missing, extra = sorted(columns - row.keys()), sorted(row.keys() - columns)
                raise ValueError(f"row {config}/{split}/{index} does not match the schema: "
                                 f"missing {missing}, unexpected {extra}")
            yield {**row, **{col: {"bytes": png_bytes(row[col]), "path": None} for col in IMAGE_COLUMNS}}


def png_bytes(array: np.ndarray) -> bytes:
    """Lossless PNG of an RGB (H, W, 3) or single-channel (H, W) uint8 array (8-bit truecolour or grey, no
    interlacing, filter "up" on every row, zlib level ``PNG_LEVEL``)."""
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"expected a uint8 (H, W) or (H, W, 3) array, got {array.dtype} {array.shape}")
    if array.ndim == 2 and not array.any():
        return _blank_png(array.shape)
    return _encode_png(array)


@lru_cache(maxsize=8)
def _blank_png(shape: tuple[int, int]) -> bytes:
    return _encode_png(np.zeros(shape, np.uint8), level=9)  # encoded once: the smallest file is worth it


def _encode_png(array: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    height, width = array.shape[:2]
    rows = array.reshape(height, -1)
    filtered = np.empty((height, rows.shape[1] + 1), np.uint8)  # each row: filter type byte, then the row
    filtered[:, 0] = PNG_FILTER_UP
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8 arithmetic wraps modulo 256, as PNG's does
    colour_type = 2 if array.ndim == 3 else 0  # truecolour / greyscale
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"".join((PNG_SIGNATURE, _png_chunk(b"IHDR", header),
                     _png_chunk(b"IDAT", zlib.compress(filtered.data, level)), _png_chunk(b"IEND", b"")))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """Length, type, data, CRC-32 of type + data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _write_png(path: Path, rgb: np.ndarray) -> None:
    path.write_bytes(png_bytes(rgb))


def _write_parquet(ds: datasets.Dataset, folder: Path, split: str) -> int:
    """Contiguous shards `<split>-0000k-of-0000n.parquet`; returns the split's uncompressed size in bytes:
    the sum of the row groups' `total_byte_size` in the parquet footers. That depends on the files only
    (the size of the in-memory Arrow table also counts its chunking, which follows the worker count)."""
    folder.mkdir(parents=True, exist_ok=True)
    num_shards = max(1, math.ceil(len(ds) / ROWS_PER_SHARD))
    num_bytes = 0
    for k in range(num_shards):
        shard = ds.shard(num_shards=num_shards, index=k, contiguous=True)
        path = folder / f"{split}-{k:05d}-of-{num_shards:05d}.parquet"
        shard.to_parquet(path, batch_size=ROWS_PER_ROW_GROUP)
        metadata = pq.read_metadata(path)
        num_bytes += sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    return num_bytes


def _figure_rows(ds: datasets.Dataset) -> list[dict]:
    """Up to FIGURE_SAMPLES rows for the card figure, in index order: QR rows (all but one slot), then
    negatives to fill the rest."""
    labels = list(ds["label"])
    qr = [i for i, y in enumerate(labels) if y == 1][:FIGURE_SAMPLES - 1]
    negatives = [i for i, y in enumerate(labels) if y == 0][:FIGURE_SAMPLES - len(qr)]
    rows = [ds[i] for i in qr + negatives]
    return [{**row, **{col: np.asarray(row[col]) for col in IMAGE_COLUMNS}} for row in rows]


def _lock_path(out: Path) -> Path:
    """The lock file of an output folder: beside it in its parent, so DIR stays clean and the lock stays
    with the folder (one per folder, never piling up elsewhere)."""
    out = out.resolve()
    return out.parent / f".{out.name}.cambench-build.lock"


def _staging_prefix() -> str:
    """`.cambench-build-<host>-<pid>-`: the staging folder's owner, for `remove_stale_staging`."""
    return f"{STAGING_PREFIX}{_host()}-{os.getpid()}-"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove the staging folders in ``out`` left by builds on this host whose process is gone; returns
    them. Folders of live processes, of other hosts, and of unknown owners are kept."""
    removed = []
    for folder in out.glob(f"{STAGING_PREFIX}*"):
        owner = folder.name[len(STAGING_PREFIX):].rsplit("-", 2)
        if len(owner) == 3 and owner[0] == _host() and owner[1].isdigit() and not _alive(int(owner[1])):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user holds the pid
        return True
    return True


def _move_into_place(staging: Path, out: Path, config: str) -> None:
    """Swap the new config's data folder and figure in, then publish it by replacing the card."""
    data, dest = staging / "data" / config, out / "data" / config
    dest.parent.mkdir(exist_ok=True)
    if dest.exists():
        os.replace(dest, staging / "previous")
    os.replace(data, dest)
    (out / "figures").mkdir(exist_ok=True)
    os.replace(staging / "figures" / f"{config}.png", out / "figures" / f"{config}.png")
    os.replace(staging / "README.md", out / "README.md")


@contextmanager
def _progress_bars(enabled: bool):
    was_enabled = datasets.is_progress_bar_enabled()
    (datasets.enable_progress_bars if enabled else datasets.disable_progress_bars)()
    try:
        yield
    finally:
        (datasets.enable_progress_bars if was_enabled else datasets.disable_progress_bars)()
