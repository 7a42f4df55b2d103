"""Send a built dataset folder (Hub repo layout) to a Hugging Face dataset repo with huggingface_hub.

One commit makes the Hub repo equal to the folder (README card, `data/<config>/*.parquet`, `figures/`): files
gone locally are deleted remotely, so a rebuilt config never keeps stale shards that its
`data/<config>/<split>-*` pattern would still match. The folder is only read, so a failed push leaves it
intact for another try.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HTTPError
from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

from .card import is_cambench_card

# Left behind only by a build killed mid-way (see build.STAGING_PREFIX); never published.
UPLOAD_IGNORE = [".cambench-build-*", ".cambench-build-*/**"]


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
            ignore_patterns=UPLOAD_IGNORE,
            delete_patterns="*",
        )
    except (HTTPError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PushError(f"push to {repo_id} failed: {first_line}") from exc
    finally:
        if quiet and not was_disabled:
            enable_progress_bars()
    return str(commit.commit_url)
