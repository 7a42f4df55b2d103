"""`cambench-qr push`: send the repo folders of a local Hub root to the Hub with huggingface_hub.

Each repo is pushed with `create_repo(exist_ok=True)` and one `upload_folder` commit that makes the Hub repo
equal to the local folder's files of the repo's layout (`LAYOUTS`; files that are gone locally are deleted
remotely; unchanged files are skipped, so pushing twice is a no-op). Nothing else in a folder (a killed
build's staging folder, Arrow caches, lock and temporary files, an interrupted training's `state/`) is
uploaded. A failure is reported for its repo and the others still go; local folders
are only read, never changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..dataset_builder.publish import DATASET_LAYOUT, SEGMENT, layout_files, upload_patterns
from .layout import HubRoot

PUSH_TARGETS = ("dataset", "metric", "models", "leaderboard", "spaces")
# The files of each repo kind's layout (relative paths, matched in full); see layout.py, cards.py, space.py.
LAYOUTS = {
    "dataset": DATASET_LAYOUT,
    "leaderboard": re.compile(
        rf"README\.md|{SEGMENT}\.md|leaderboard[^/]*\.(png|svg)|galleries/{SEGMENT}\.png|data/{SEGMENT}\.parquet"),
    "space": re.compile(rf"README\.md|{SEGMENT}\.py|requirements\.txt|space\.json"),
    "model": re.compile(
        rf"README\.md|{SEGMENT}\.json|{SEGMENT}\.safetensors|\.eval_results/{SEGMENT}\.yaml"),
}


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    repo_type: str
    folder: Path
    ok: bool
    message: str  # the commit URL, or the one-line error

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.repo_type:7s} {self.repo_id}: {self.message}"


def _targets(hub: HubRoot, what: str) -> list[tuple[str, Path, re.Pattern]]:
    if what not in (*PUSH_TARGETS, "all"):
        raise ValueError(f"unknown push target {what!r}; choose one of {', '.join((*PUSH_TARGETS, 'all'))}")
    chosen = PUSH_TARGETS if what == "all" else (what,)
    targets: list[tuple[str, Path, re.Pattern]] = []
    for name in chosen:
        if name == "dataset":
            targets.append(("dataset", hub.dataset_dir, LAYOUTS["dataset"]))
        elif name == "metric":
            targets.append(("space", hub.metric_dir, LAYOUTS["space"]))
        elif name == "models":
            targets += [("model", folder, LAYOUTS["model"]) for folder in hub.model_dirs()]
        elif name == "leaderboard":
            targets.append(("dataset", hub.leaderboard_dir, LAYOUTS["leaderboard"]))
        else:  # "spaces": the leaderboard Space (the metric Space is "metric")
            targets.append(("space", hub.leaderboard_space_dir, LAYOUTS["space"]))
    return targets


def push(hub: HubRoot, what: str = "all", token: str | None = None, quiet: bool = False) -> list[PushResult]:
    """Push the chosen repos of `hub` (`what` in PUSH_TARGETS or "all") under `hub.user`.

    Raises ValueError before any upload when `what` is unknown, no token is available, or none of the
    chosen local folders exists."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    targets = _targets(hub, what)
    token = token or get_token()
    if not token:
        raise ValueError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (nothing was pushed)")
    existing = [folder for _, folder, _ in targets if folder.is_dir()]
    if not existing:
        raise ValueError(
            f"nothing to push for {what!r} under {hub.root} for user {hub.user!r} "
            f"(build it first with `cambench-qr run --user {hub.user} --hub-root {hub.root}`)"
        )
    api = HfApi(token=token)
    results = []
    if quiet:
        disable_progress_bars()
    try:
        for kind, folder, layout in targets:
            repo_id = hub.repo_id(folder)
            if not folder.is_dir():
                results.append(PushResult(repo_id, kind, folder, False, f"no local folder {folder}"))
                continue
            try:
                api.create_repo(
                    repo_id, repo_type=kind, exist_ok=True, space_sdk="gradio" if kind == "space" else None
                )
                info = api.upload_folder(
                    repo_id=repo_id,
                    repo_type=kind,
                    folder_path=folder,
                    commit_message=f"cambench-qr push of {folder.name}",
                    delete_patterns="*",
                    allow_patterns=upload_patterns(layout_files(folder, layout)),
                )
                results.append(PushResult(repo_id, kind, folder, True, info.commit_url))
            except Exception as exc:  # every failure is reported for its repo; the others still go
                message = " ".join(str(exc).split()) or type(exc).__name__
                results.append(PushResult(repo_id, kind, folder, False, f"{type(exc).__name__}: {message}"))
    finally:
        if quiet:
            enable_progress_bars()
    return results
