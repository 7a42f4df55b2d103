"""Send a built dataset folder (Hub repo layout) to a Hugging Face dataset repo with huggingface_hub.

One commit makes the Hub repo equal to the folder's files of the repo layout (`DATASET_LAYOUT`: README
card, `eval.yaml`, `data/<config>/*.parquet`, `figures/*.png`): files gone locally are deleted remotely, so
a rebuilt config never keeps stale shards that its `data/<config>/<split>-*` pattern would still match, and
nothing else in the folder (a killed build's staging folder, Arrow caches, lock or temporary files) is ever
uploaded. The folder is only read, so a failed push leaves it intact for another try.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HTTPError
from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

from .card import is_cambench_card

# A path segment that is not hidden (hidden names are staging folders, temporary and lock files).
SEGMENT = r"[^/.][^/]*"
DATASET_LAYOUT = re.compile(
    rf"README\.md|eval\.yaml|data/{SEGMENT}/{SEGMENT}\.parquet|figures/{SEGMENT}\.png")


class PushError(RuntimeError):
    """The Hub could not be reached or refused the upload; the message is one line."""


def check_push_ready(token: str | None = None) -> str:
    """Fail early (before a long build) when a push cannot work: offline or no token. Returns the token."""
    if constants.HF_HUB_OFFLINE:
        raise PushError("cannot push: HF_HUB_OFFLINE is set (unset it to reach the Hub)")
    token = token or get_token()
    if not token:
        raise PushError("cannot push: no Hugging Face token (set HF_TOKEN or run `hf auth login`)")
    return token


def push_dataset(folder: str | Path, repo_id: str, token: str | None = None, quiet: bool = False) -> str:
    """Create the dataset repo `repo_id` if needed and upload `folder` into it; returns the commit URL."""
    folder = Path(folder)
    if not is_cambench_card(folder / "README.md"):
        raise ValueError(f"{folder} is not a built CAMBench-QR dataset folder (no CAMBench-QR card)")
    token = check_push_ready(token)
    files = layout_files(folder, DATASET_LAYOUT)
    api = HfApi(token=token)
    was_disabled = are_progress_bars_disabled()
    if quiet:
        disable_progress_bars()
    try:
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            repo_type="dataset",
            commit_message="Upload CAMBench-QR dataset",
            allow_patterns=upload_patterns(files),
            delete_patterns="*",
        )
    except (HTTPError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PushError(f"push to {repo_id} failed: {first_line}") from exc
    finally:
        if quiet and not was_disabled:
            enable_progress_bars()
    return str(commit.commit_url)


def layout_files(folder: Path, layout: re.Pattern) -> list[str]:
    """The files under ``folder`` (relative POSIX paths, sorted) whose path matches ``layout`` in full."""
    paths = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return sorted(path for path in paths if layout.fullmatch(path))


def upload_patterns(files: list[str]) -> list[str]:
    """``upload_folder``'s ``allow_patterns`` that select exactly ``files`` (fnmatch patterns, escaped)."""
    if not files:
        raise ValueError("no file of the repo layout to upload")
    return [glob.escape(path) for path in files]
