"""The leaderboard Space folder, `<root>/spaces/<user>/cambench-qr-leaderboard`:

- `app.py`: the gradio app (`cambench_qr/spaces/leaderboard_app.py`, copied verbatim);
- `space.json`: what the app needs to know (the leaderboard dataset's Hub id, the results schema version
  it reads, score and method labels, the null maps' method-name prefix, the headline config, the "how to
  submit" text);
- `requirements.txt`: the pinned packages the app imports;
- `README.md`: the Space card (`sdk: gradio`, `app_file: app.py`) with the submission commands.

`write_galleries` puts the run's overlay galleries into the leaderboard dataset folder
(`galleries/<model>.png`), where the Space shows them.
"""

from __future__ import annotations

import json
import shutil
import sys
from importlib import metadata
from pathlib import Path

import pyarrow.parquet as pq

from ..results import (
    HEADLINE_SCORES,
    METHOD_LABELS,
    NULL_PREFIX,
    PLOT_SCORE,
    SCHEMA_VERSION,
    VERDICT_SCORES,
    is_null_baseline,
)
from ..spaces import LEADERBOARD_APP
from ._io import write_bytes_atomic, write_text_atomic
from .layout import HubRoot
from .leaderboard import PARQUET_PATH
from .scores import higher_is_better, score_label
from .verdicts import VERDICT_LABELS, VERDICT_LEGEND

# The gradio the Space runs on: the version the browser tests exercise (tests/test_browser.py checks it).
GRADIO_VERSION = "6.31.0"
# The Python the Space runs on: this interpreter's, which the pins below are installed for.
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
# The app's other imports, pinned to the versions installed here.
APP_PACKAGES = ("pandas", "pyarrow", "huggingface_hub")
HEADLINE_CONFIG = "standard"


def requirements() -> str:
    """requirements.txt: gradio at GRADIO_VERSION and APP_PACKAGES at the installed versions."""
    pins = [f"gradio=={GRADIO_VERSION}", *(f"{p}=={metadata.version(p)}" for p in APP_PACKAGES)]
    return "\n".join(pins) + "\n"


def _configs_and_methods(leaderboard_dir: Path) -> tuple[list[str], list[str]]:
    """The configs and CAM methods (null maps left out) of the leaderboard table, in table order; empty
    lists when the folder has no table yet."""
    path = leaderboard_dir / PARQUET_PATH
    if not path.is_file():
        return [], []
    table = pq.read_table(path, columns=["config", "method"]).to_pydict()
    methods = [m for m in dict.fromkeys(table["method"]) if not is_null_baseline(m)]
    return list(dict.fromkeys(table["config"])), methods


def submit_markdown(hub: HubRoot, configs: list[str], methods: list[str]) -> str:
    """How to submit a model: evaluate it on this leaderboard's configs and methods, check the rows
    locally, then open a pull request with its summary.json on the leaderboard dataset."""
    configs_arg = ",".join(configs) or HEADLINE_CONFIG
    methods_arg = f" --methods {','.join(methods)}" if methods else ""
    leaderboard_id = hub.repo_id(hub.leaderboard_dir)
    return "\n".join(
        [
            "## How to submit a model",
            "",
            "1. Install the benchmark and evaluate your model folder (timm Hub layout with `training.json`, "
            "as `cambench-qr train` writes it) on this leaderboard's configs and CAM methods:",
            "",
            "```bash",
            "pip install cambench-qr",
            f"cambench-qr evaluate --model path/to/your-model --data {hub.dataset_id} "
            f"--configs {configs_arg}{methods_arg} --out runs/eval/your-model",
            "```",
            "",
            "2. Check the rows it gives, in a leaderboard of your own:",
            "",
            "```bash",
            "cambench-qr leaderboard --results runs/eval/your-model --out my-leaderboard",
            "```",
            "",
            "3. Open a pull request that adds its `summary.json` to the leaderboard dataset:",
            "",
            "```bash",
            f"hf upload {leaderboard_id} runs/eval/your-model/summary.json "
            "submissions/your-model/summary.json --repo-type dataset --create-pr",
            "```",
            "",
            "Results are compared only within one results schema, package version and data revision.",
        ]
    )


def space_settings(hub: HubRoot, leaderboard_dir: Path) -> dict:
    """space.json: see the module docstring."""
    configs, methods = _configs_and_methods(leaderboard_dir)
    return {
        "dataset": hub.repo_id(hub.leaderboard_dir),
        "schema_version": SCHEMA_VERSION,
        "scores": [[s, score_label(s)] for s in HEADLINE_SCORES],
        "verdict_scores": list(VERDICT_SCORES),
        "verdict_labels": VERDICT_LABELS,
        "sort": [PLOT_SCORE, higher_is_better(PLOT_SCORE)],
        "methods": METHOD_LABELS,
        "null_prefix": NULL_PREFIX,
        "headline_config": HEADLINE_CONFIG,
        "legend": f"Cells are mean and 95% bootstrap CI; ↑ higher is better, ↓ lower is better. "
        f"Verdicts against the null maps: {VERDICT_LEGEND}.",
        "submit": submit_markdown(hub, configs, methods),
    }


CARD = """---
title: CAMBench-QR leaderboard
emoji: 🔳
colorFrom: gray
colorTo: red
sdk: gradio
sdk_version: {gradio}
python_version: "{python}"
app_file: app.py
pinned: false
license: apache-2.0
datasets:
- {dataset}
tags:
- leaderboard
- cambench-qr
---

# CAMBench-QR leaderboard

Structure scores of CAM explanations on QR codes with exact part masks, read from the leaderboard dataset
[{dataset}](https://huggingface.co/datasets/{dataset}): filters by config, distortion, severity, backbone,
regime, method and competence, a sortable table with 95% CIs and verdicts against the null maps, the
figures and each model's overlay gallery.

{submit}
"""


def write_leaderboard_space(hub: HubRoot, leaderboard_dir: str | Path | None = None) -> dict[str, Path]:
    """Write the leaderboard Space folder of `hub` (for the leaderboard table in `leaderboard_dir`,
    default the hub's leaderboard dataset folder). Returns {name: path} of what it wrote."""
    leaderboard_dir = Path(leaderboard_dir or hub.leaderboard_dir)
    folder = hub.leaderboard_space_dir
    settings = space_settings(hub, leaderboard_dir)
    card = CARD.format(
        gradio=GRADIO_VERSION, python=PYTHON_VERSION, dataset=settings["dataset"], submit=settings["submit"]
    )
    return {
        "space app": write_bytes_atomic(folder / "app.py", LEADERBOARD_APP.read_bytes()),
        "space settings": write_text_atomic(
            folder / "space.json", json.dumps(settings, indent=1, ensure_ascii=False) + "\n"
        ),
        "space requirements": write_text_atomic(folder / "requirements.txt", requirements()),
        "space card": write_text_atomic(folder / "README.md", card),
    }


def write_galleries(leaderboard_dir: str | Path, galleries: dict[str, bytes]) -> list[Path]:
    """`leaderboard_dir/galleries/<model>.png` for each {model: PNG bytes}, replacing older galleries."""
    folder = Path(leaderboard_dir) / "galleries"
    shutil.rmtree(folder, ignore_errors=True)
    return [write_bytes_atomic(folder / f"{name}.png", png) for name, png in galleries.items()]
