"""Hub cards room: the local Hub root, model / dataset / metric cards, the leaderboard, and publishing.

- `HubRoot(root, user)`: paths of the repo folders.
- `write_model_card(model_dir, summary, hub)`: README.md with `model-index`, and
  `.eval_results/cambench-qr.yaml`.
- `write_eval_yaml(dataset_dir, methods)`: the benchmark `eval.yaml` of the dataset repo.
- `write_metric_space(module_dir, space_dir)`: the evaluate module folder as a Space.
- `build_leaderboard(results, out_dir, by_revision=False)`: summary.json files -> parquet, markdown, the
  headline (competent models' CAMs against the null maps), the matplotlib figures (`figures`).
- `space.write_leaderboard_space(hub)`: the leaderboard Space folder (gradio app over the leaderboard).
- `report.write_report(...)`: the run report, `index.md` and a self-contained `index.html`.
- `push(hub, what, token)`: upload the folders with huggingface_hub, one `PushResult` per repo.
"""

from .cards import write_eval_yaml, write_metric_space, write_model_card
from .layout import HubRoot
from .leaderboard import build_leaderboard
from .publish import PUSH_TARGETS, PushResult, push

__all__ = [
    "HubRoot",
    "build_leaderboard",
    "PUSH_TARGETS",
    "PushResult",
    "push",
    "write_eval_yaml",
    "write_metric_space",
    "write_model_card",
]
