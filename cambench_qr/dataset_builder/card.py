"""The dataset card (README.md with `configs:` YAML) and the sample figure of a built CAMBench-QR folder.

The card's YAML is the single record of what the folder holds: one `configs:` entry per built config
(`standard` is the default), `dataset_info` with the features and split sizes, and `cambench_builds` with the
settings that regenerate each config (seed, image size, package version). The markdown body is rendered from
that YAML every time, so it never disagrees with it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from .. import __version__
from ..parts import NUM_PARTS, PART_NAMES, part_table_markdown
from .distortions import DISTORTION_FAMILIES
from .features import EXTRA_FEATURES, features_for
from .samples import DEFAULT_CONFIG

PRETTY_NAME = "CAMBench-QR"

# One colour per part id (RGB), used by the sample figure's part maps.
PART_COLORS = np.array(
    [
        (40, 40, 40),  # background
        (200, 200, 200),  # quiet_zone
        (230, 25, 75),  # finder
        (255, 225, 25),  # separator
        (60, 180, 75),  # timing
        (0, 130, 200),  # alignment
        (245, 130, 48),  # format_info
        (145, 30, 180),  # version_info
        (70, 240, 240),  # data
        (240, 50, 230),  # distractor
    ],
    dtype=np.uint8,
)
assert len(PART_COLORS) == NUM_PARTS

CONFIG_DESCRIPTIONS: dict[str, str] = {
    "standard": "procedural backgrounds around a real quiet zone, QR versions 1-10, all ECC levels, varied "
    "scale and position, hard negatives, distractors beside some codes",
    "paper": "the authors' generator (arXiv 2509.16745) reproduced faithfully, with correct masks",
    "interventions": "standard test QR codes re-rendered with one part's modules randomised, each paired "
    "with its original (FunnyBirds-style causal ground truth)",
    "real": "photographs of QR codes (test only, built from a folder of photos), part maps from the decoder "
    "corner points through a homography",
}


def describe_config(config: str) -> str:
    """One line saying what a config holds."""
    if config in DISTORTION_FAMILIES:
        return f"`{config}` distortion at severities 1-5 (ImageNet-C style; column `severity`)"
    return CONFIG_DESCRIPTIONS[config]


def is_cambench_card(readme: Path) -> bool:
    """True when `readme` is a CAMBench-QR dataset card (its YAML says `pretty_name: CAMBench-QR`)."""
    if not readme.is_file():
        return False
    return DatasetCard.load(readme).data.to_dict().get("pretty_name") == PRETTY_NAME


def load_card_data(readme: Path) -> DatasetCardData:
    """The YAML of an existing card, or a fresh one when there is none yet."""
    if readme.is_file():
        return DatasetCard.load(readme).data
    return DatasetCardData(
        pretty_name=PRETTY_NAME,
        license="cc-by-4.0",
        task_categories=["image-classification", "image-segmentation"],
        tags=["cambench-qr", "qr-code", "explainability", "saliency", "synthetic"],
        size_categories=["1K<n<10K"],
    )


def add_config(card_data: DatasetCardData, config: str, split_sizes: dict[str, tuple[int, int]],
               download_size: int, build: dict) -> None:
    """Record `config` in the card YAML (replacing an older build of it, keeping every other config).

    `split_sizes` maps split -> (num_examples, num_bytes); `build` holds the settings that regenerate it.
    """
    configs = MetadataConfigs.from_dataset_card_data(card_data)
    configs[config] = {
        "data_files": [{"split": s, "path": f"data/{config}/{s}-*"} for s in split_sizes],
    }
    ordered = sorted(configs, key=_default_first)
    for name in ordered:
        configs[name].pop("default", None)
    if DEFAULT_CONFIG in configs:
        configs[DEFAULT_CONFIG]["default"] = True
    MetadataConfigs({name: configs[name] for name in ordered}).to_dataset_card_data(card_data)

    infos = DatasetInfosDict.from_dataset_card_data(card_data)
    splits = SplitDict()
    for split, (num_examples, num_bytes) in split_sizes.items():
        splits.add(SplitInfo(split, num_bytes=num_bytes, num_examples=num_examples))
    infos[config] = DatasetInfo(features=features_for(config), splits=splits, config_name=config,
                                download_size=download_size,
                                dataset_size=sum(b for _, b in split_sizes.values()))
    DatasetInfosDict({name: infos[name] for name in ordered if name in infos}).to_dataset_card_data(card_data)

    builds = {b["config"]: b for b in card_data.to_dict().get("cambench_builds", [])}
    builds[config] = {"config": config, **build, "package_version": __version__}
    card_data.cambench_builds = [builds[name] for name in ordered if name in builds]
    total = sum(s["num_examples"] for info in _config_infos(card_data) for s in info["splits"])
    card_data.size_categories = [_size_category(total)]


def _default_first(config: str) -> tuple[bool, str]:
    """Sort key: the default config first, then the others by name."""
    return config != DEFAULT_CONFIG, config


def _config_infos(card_data: DatasetCardData) -> list[dict]:
    """`dataset_info` as a list (the YAML holds a single mapping when there is one config)."""
    infos = card_data.to_dict()["dataset_info"]
    return infos if isinstance(infos, list) else [infos]


def _size_category(n: int) -> str:
    for upper, name in ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M")):
        if n < upper:
            return name
    return "n>1M"


def render_card(card_data: DatasetCardData) -> str:
    """The whole README.md: YAML header plus a markdown body rendered from it."""
    meta = card_data.to_dict()
    infos = sorted(_config_infos(card_data), key=lambda info: _default_first(info["config_name"]))
    builds = {b["config"]: b for b in meta.get("cambench_builds", [])}
    rows = []
    for info in infos:
        name = info["config_name"]
        sizes = {s["name"]: s["num_examples"] for s in info["splits"]}
        default = " (default)" if name == DEFAULT_CONFIG else ""
        rows.append(f"| `{name}`{default} | {sizes.get('train', 0)} | {sizes.get('test', 0)} | "
                    f"{builds[name]['seed']} | {describe_config(name)} |")
    figures = "\n\n".join(f"**{info['config_name']}**\n\n![{info['config_name']} samples]"
                          f"(figures/{info['config_name']}.png)" for info in infos)
    first = infos[0]["config_name"]
    extras = "".join(f"\n`{name}` adds: {', '.join(f'`{column}`' for column in EXTRA_FEATURES[name])}."
                     for name in builds if name in EXTRA_FEATURES)
    body = f"""# CAMBench-QR

Synthetic QR / non-QR images, each with an exact **part-label map** computed from the QR specification
(ISO/IEC 18004): does a CAM explanation sit on the finder patterns, timing lines and module grid a QR
reader needs, or does it leak onto the background? Built with the `cambench-qr` package
(a reimplementation and extension of CAMBench-QR, arXiv 2509.16745).

## Configs

| config | train | test | seed | what |
|---|---|---|---|---|
{chr(10).join(rows)}

Every row is deterministic from `(config, split, index, seed)`; the `seed` column regenerates it exactly.

## Usage

```python
from datasets import load_dataset

ds = load_dataset("<this repo or folder>", "{first}")
row = ds["test"][0]
row["image"]     # PIL RGB
row["parts"]     # PIL L: one part id per pixel (table below)
row["occluded"]  # PIL L: 255 where an occluder covers the symbol
```

## Part-label map

`parts` is a disjoint partition of the canvas; occlusion does not change it (see `occluded`).

{part_table_markdown()}

Named regions: `finder` = {{2}}, `timing` = {{4}}, `structure` = {{2, 4}}, `box` = {{2..8}} (the symbol),
`outside` = {{0, 1, 9}} (background leakage is saliency mass here).

## Columns

`id`, `image` (RGB), `parts` (L, part ids), `occluded` (L, 0/255), `label` (`non_qr` / `qr`),
`corners` (4 x [x, y]: outer symbol corners without quiet zone, TL, TR, BR, BL), `version`, `ecc`,
`mask_pattern`, `payload`, `module_px` (mean module pitch, px), `distortion` (`none` when clean),
`severity` (0 = clean, 1-5), `background`, `negative_kind`, `seed`, `decodable` (zxing-cpp decodes the image
to `payload`), `source`. Values that do not apply are null.{extras}

## Samples

Each figure shows images (top) and their part maps (bottom; occluded pixels darkened).

{figures}
"""
    return f"---\n{card_data.to_yaml()}\n---\n\n{body}"


def sample_figure(samples: list[dict], tile: int = 160) -> np.ndarray:
    """A figure (H, W, 3 uint8 RGB): images on top, colour-coded part maps below, a legend of part colours.

    `samples` are rows with `image` (HxWx3), `parts` (HxW part ids), `occluded` (HxW 0/255) as arrays and
    `label`, `version`, `ecc`, `negative_kind`, `distortion` for the caption.
    """
    if not samples:
        raise ValueError("sample_figure needs at least one sample")
    caption_h, pad = 34, 6
    width = pad + len(samples) * (tile + pad)
    grid = np.full((caption_h + 2 * (tile + pad) + pad, width, 3), 255, np.uint8)
    for k, row in enumerate(samples):
        x = pad + k * (tile + pad)
        image = cv2.resize(np.asarray(row["image"]), (tile, tile), interpolation=cv2.INTER_AREA)
        parts = np.asarray(row["parts"])
        coloured = PART_COLORS[parts]
        occluded = np.asarray(row["occluded"]) > 0
        coloured[occluded] = coloured[occluded] // 3
        coloured = cv2.resize(coloured, (tile, tile), interpolation=cv2.INTER_NEAREST)
        grid[caption_h:caption_h + tile, x:x + tile] = image
        grid[caption_h + tile + pad:caption_h + 2 * tile + pad, x:x + tile] = coloured
        for line, text in enumerate(_caption(row)):
            _put_text(grid, text, (x, 13 + 13 * line), tile)
    return np.concatenate([grid, _legend(width)], axis=0)


def _caption(row: dict) -> tuple[str, str]:
    """Two caption lines: what the sample is, and its distortion (or intervention)."""
    ecc = f" {row['ecc']}" if row["ecc"] else ""
    what = f"QR v{row['version']}{ecc}" if row["label"] == 1 else f"non-QR {row['negative_kind']}"
    if row.get("intervention"):
        return what, f"intervention: {row['intervention']}"
    severity = f" s{row['severity']}" if row["severity"] else ""
    return what, f"{row['distortion']}{severity}"


def _put_text(image: np.ndarray, text: str, origin: tuple[int, int], max_width: int) -> None:
    """Draw `text` in black, cut short with '..' so that it fits in `max_width` pixels."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.35
    while cv2.getTextSize(text, font, scale, 1)[0][0] > max_width and len(text) > 2:
        text = text[:-3] + ".."
    cv2.putText(image, text, origin, font, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _legend(width: int, swatch: int = 12) -> np.ndarray:
    per_row = max(1, width // 110)
    lines = -(-NUM_PARTS // per_row)
    legend = np.full((lines * (swatch + 8) + 6, width, 3), 255, np.uint8)
    for i, name in enumerate(PART_NAMES):
        x, y = 6 + (i % per_row) * 110, 4 + (i // per_row) * (swatch + 8)
        legend[y:y + swatch, x:x + swatch] = PART_COLORS[i]
        _put_text(legend, f"{i} {name}", (x + swatch + 4, y + swatch - 2), 110 - swatch - 6)
    return legend
