"""Loading CAMBench-QR rows (the dataset row schema) as fixed-size tensors for training and evaluation.

A dataset is a local folder laid out like a Hub dataset repo or a Hub repo id; both load with
``datasets.load_dataset(data, config)``. Images are resized to ``image_size`` x ``image_size`` with
bilinear filtering (aspect ratio not kept, as in the paper); part-label maps are resized with nearest
neighbour so every pixel keeps a valid part id. Tensors stay uint8 in the loader and are normalised on
the device (``normalize``) with the model's own mean / std.

Training decodes and resizes each row once per run (``CachedRows``), then every epoch indexes tensors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

# Columns every harness batch needs besides the two images.
_META_COLUMNS = ("label", "module_px")


def load_split(data: str, config: str, split: str) -> datasets.Dataset:
    """One split of one config; ValueError (one line) when the config or split does not exist."""
    try:
        names = datasets.get_dataset_config_names(data)
    except FileNotFoundError as exc:
        raise ValueError(f"dataset {data!r} not found: {exc}") from exc
    if config not in names:
        raise ValueError(f"dataset {data!r} has no config {config!r} (it has: {', '.join(sorted(names))})")
    splits = datasets.load_dataset(data, config)
    if split not in splits:
        raise ValueError(f"config {config!r} of {data!r} has no split {split!r} "
                         f"(it has: {', '.join(splits)})")
    return splits[split]


def data_revision(data: str, configs: list[str]) -> str:
    """A content hash of the parquet files behind ``configs`` of a local folder (sha256, 16 hex chars);
    for a Hub repo id, the id itself (the Hub revision is resolved by ``datasets``)."""
    root = Path(data)
    if not root.is_dir():
        return data
    digest = hashlib.sha256()
    for config in sorted(configs):
        for path in sorted((root / "data" / config).glob("*.parquet")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class TensorRows(torch.utils.data.Dataset):
    """Rows of a split as dicts of tensors: ``image`` (3,S,S) uint8, ``parts`` (S,S) uint8, ``label``
    int64, ``module_px`` float32 (module pitch rescaled to S px; NaN for non-QR), ``index`` int64 (the row
    number in the split, which identifies the sample after a distributed gather)."""

    def __init__(self, split: datasets.Dataset, image_size: int, with_parts: bool = True):
        columns = ["image", *_META_COLUMNS] + (["parts"] if with_parts else [])
        missing = [c for c in columns if c not in split.column_names]
        if missing:
            raise ValueError(f"dataset rows lack the columns {missing} of the CAMBench-QR schema")
        self.rows = split.select_columns(columns)
        self.image_size = image_size
        self.with_parts = with_parts

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = self.rows[index]
        size = (self.image_size, self.image_size)
        image = row["image"].convert("RGB")
        scale = self.image_size / ((image.width + image.height) / 2)
        item = {
            "image": torch.from_numpy(np.array(image.resize(size, Image.BILINEAR))).permute(2, 0, 1),
            "label": torch.tensor(row["label"], dtype=torch.int64),
            "module_px": torch.tensor(np.nan if row["module_px"] is None else row["module_px"] * scale,
                                      dtype=torch.float32),
            "index": torch.tensor(index, dtype=torch.int64),
        }
        if self.with_parts:
            item["parts"] = torch.from_numpy(np.array(row["parts"].convert("L").resize(size, Image.NEAREST)))
        return item


class CachedRows(torch.utils.data.Dataset):
    """The items of a :class:`TensorRows`, decoded and resized once and kept as stacked tensors."""

    def __init__(self, rows: TensorRows, quiet: bool = False):
        items = [rows[i] for i in tqdm(range(len(rows)), desc="decode rows", leave=False, disable=quiet)]
        if not items:
            raise ValueError("the split has no rows to train on")
        self.tensors = {key: torch.stack([item[key] for item in items]) for key in items[0]}

    def __len__(self) -> int:
        return len(self.tensors["label"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[index] for key, value in self.tensors.items()}


def holdout(labels: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split row numbers into (train, validation), stratified by label: ``round(share * n_c)`` rows of each
    class ``c`` (at least one when ``share`` > 0 and the class has two rows or more) go to validation,
    drawn with ``numpy.random.default_rng(seed)``. ``share`` 0 keeps every row for training."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val = []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        k = min(max(round(share * len(rows)), int(share > 0 and len(rows) > 1)), len(rows) - 1)
        val.append(rows[:k])
    val_rows = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    return np.setdiff1d(np.arange(len(labels)), val_rows), val_rows


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (B,3,H,W) in [0,255] -> float (x/255 - mean) / std, per channel."""
    mean_t = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean_t) / std_t
