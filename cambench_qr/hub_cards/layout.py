"""The local Hub root: folders laid out exactly like Hub repos.

```
<root>/datasets/<user>/cambench-qr               the dataset repo (parquet + card + eval.yaml)
<root>/spaces/<user>/cambench_structure          the evaluate metric module, publishable as a Space
<root>/models/<user>/<backbone>-<regime>         timm checkpoint + model card + .eval_results/
<root>/datasets/<user>/cambench-qr-leaderboard   leaderboard parquet + markdown + figures + galleries
<root>/spaces/<user>/cambench-qr-leaderboard     the leaderboard Space (gradio app over that dataset)
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DATASET_NAME = "cambench-qr"
METRIC_NAME = "cambench_structure"
LEADERBOARD_NAME = "cambench-qr-leaderboard"
DEFAULT_USER = "cambench"
HUB_URL = "https://huggingface.co"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def check_name(name: str, what: str = "user") -> str:
    """Return `name` if it is a valid Hub namespace / repo name, else raise ValueError."""
    if not _NAME.fullmatch(name) or ".." in name or name.endswith((".", "-")):
        raise ValueError(f"invalid Hub {what} name {name!r} (letters, digits, '.', '_', '-')")
    return name


@dataclass(frozen=True)
class HubRoot:
    """Paths of the repos of one Hub user inside a local Hub root folder."""

    root: Path
    user: str = DEFAULT_USER

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        check_name(self.user)

    @property
    def dataset_dir(self) -> Path:
        return self.root / "datasets" / self.user / DATASET_NAME

    @property
    def metric_dir(self) -> Path:
        return self.root / "spaces" / self.user / METRIC_NAME

    @property
    def leaderboard_dir(self) -> Path:
        return self.root / "datasets" / self.user / LEADERBOARD_NAME

    @property
    def leaderboard_space_dir(self) -> Path:
        return self.root / "spaces" / self.user / LEADERBOARD_NAME

    def model_dir(self, backbone: str, regime: str) -> Path:
        return self.root / "models" / self.user / check_name(f"{backbone}-{regime}", "model")

    def model_dirs(self) -> list[Path]:
        folder = self.root / "models" / self.user
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def repo_id(self, folder: Path) -> str:
        return f"{self.user}/{Path(folder).name}"

    @property
    def dataset_id(self) -> str:
        return f"{self.user}/{DATASET_NAME}"

    @property
    def metric_id(self) -> str:
        return f"{self.user}/{METRIC_NAME}"

    @property
    def metric_url(self) -> str:
        return f"{HUB_URL}/spaces/{self.metric_id}"
