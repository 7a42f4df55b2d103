"""Cards for the Hub repos: model cards with `model-index` + `.eval_results/`, the benchmark `eval.yaml`
of the dataset repo, and the metric Space folder.

Model-index results are grouped on the Hub by (task, dataset, config, split, revision) and each group's
`source` and `task.name` are read from its first result, so every result built here shares one task name
and one source (a result with a different source would be dropped silently).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import yaml
from huggingface_hub import (
    DatasetCard,
    EvalResult,
    EvalResultEntry,
    ModelCard,
    ModelCardData,
    eval_result_entries_to_yaml,
)

from .. import __version__
from ..harness.accuracy import competence_accuracy, model_competence
from ..results import (
    HEADLINE_SCORES,
    PAPER_SCORES,
    SCORE_LABELS,
    VERDICT_SCORES,
    StructureRow,
    Summary,
    is_null_baseline,
    method_label,
)
from ._io import write_text_atomic
from .layout import HUB_URL, HubRoot
from .scores import headline_rows, is_clean, is_graded, score_label
from .verdicts import VERDICT_LEGEND, null_comparisons, verdict_cell

TASK_TYPE = "image-classification"
TASK_NAME = "QR detection with structure-aware CAM explanations"
DATASET_PRETTY_NAME = "CAMBench-QR"
EVAL_RESULTS_FILE = ".eval_results/cambench-qr.yaml"
# Scores declared as benchmark tasks in eval.yaml (besides accuracy), one task per (score, method, config).
BENCHMARK_SCORES = PAPER_SCORES
PAPER = "https://arxiv.org/abs/2509.16745"


def task_id(score: str, config: str, method: str | None = None) -> str:
    """The eval.yaml task id of `score` on `config` (and CAM `method` for structure scores)."""
    return f"{score}_{method}_{config}" if method else f"{score}_{config}"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _structure_args(row: StructureRow) -> dict:
    return {k: row[k] for k in ("method", "distortion", "severity") if row[k] is not None}


def _is_card_row(row: StructureRow) -> bool:
    """Structure rows the model card reports: headline scores of the model's CAMs (no null baselines)."""
    return row.score in HEADLINE_SCORES and not is_null_baseline(row.method) and row.mean is not None


def as_summary(summary: Summary | dict) -> Summary:
    """A summary.json's contents read through the results schema (a `Summary` as it is)."""
    return summary if isinstance(summary, Summary) else Summary.from_json(summary)


def model_index_results(summary: Summary | dict, hub: HubRoot) -> list[EvalResult]:
    """`EvalResult`s of one evaluation (a `Summary` or a summary.json's contents): accuracy per (config,
    split), and the headline structure scores (mean over valid samples) per CAM method on clean images and
    per severity of each distortion family."""
    summary = as_summary(summary)
    revision = summary.data.revision

    def common(config: str, split: str) -> dict:
        return dict(
            task_type=TASK_TYPE,
            task_name=TASK_NAME,
            dataset_type=hub.dataset_id,
            dataset_name=DATASET_PRETTY_NAME,
            dataset_config=config,
            dataset_split=split,
            dataset_revision=revision,
            source_name="CAMBench-QR",
            source_url=hub.metric_url,
        )

    results = [
        EvalResult(
            **common(r.config, r.split),
            metric_type="accuracy",
            metric_name="Accuracy",
            metric_value=float(r.value),
        )
        for r in summary.config_accuracy()
    ]
    for row in summary.structure:
        if _is_card_row(row) and (is_clean(row) or is_graded(row)):
            name = f"{SCORE_LABELS[row.score]} ({method_label(row.method)})"
            results.append(
                EvalResult(
                    **common(row.config, row.split),
                    metric_type=row.score,
                    metric_name=name,
                    metric_value=float(row.mean),
                    metric_args=_structure_args(row),
                )
            )
    return results


def eval_result_entries(summary: Summary | dict, hub: HubRoot, model_repo: str) -> list[EvalResultEntry]:
    """`.eval_results` entries for the tasks that `eval.yaml` declares (test split, clean severity rows)
    of one evaluation (a `Summary` or a summary.json's contents)."""
    summary = as_summary(summary)
    revision = summary.data.revision
    date = summary.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    common = dict(
        dataset_id=hub.dataset_id,
        dataset_revision=revision,
        date=date,
        source_url=f"{HUB_URL}/{model_repo}",
        source_name="Model card",
    )
    entries = [
        EvalResultEntry(
            task_id=task_id("accuracy", r.config),
            value=float(r.value),
            notes=f"{r.n} test images",
            **common,
        )
        for r in summary.config_accuracy()
        if r.split == "test"
    ]
    for row in summary.structure:
        if row.split == "test" and row.score in BENCHMARK_SCORES and _is_card_row(row) and is_clean(row):
            entries.append(
                EvalResultEntry(
                    task_id=task_id(row.score, row.config, row.method),
                    value=float(row.mean),
                    notes=f"n={row.n}",
                    **common,
                )
            )
    return entries


def competence_markdown(summary: Summary) -> str:
    """One line: whether the model is competent (accuracy on `standard`, else the first config, at least
    the competence floor; judged here for summaries that do not record it)."""
    (competent, floor), row = model_competence(summary), competence_accuracy(summary.accuracy)
    accuracy = f"accuracy {_fmt(row['value'])} on `{row['config']}`" if row else "no accuracy"
    if competent:
        return f"Competent: {accuracy}, at least the competence floor {floor:.2f}."
    return (
        f"**Not competent**: {accuracy}, below the competence floor {floor:.2f}. Its CAM scores "
        "explain a classifier that does not solve the task; the report's headline leaves it out."
    )


def verdicts_markdown(summary: Summary) -> list[str]:
    """Markdown lines: per CAM method and score of VERDICT_SCORES on the clean headline config, the mean
    per-image difference to the uniform map and to the best null map with its 95% CI and verdict; empty
    for summaries without `vs_null` rows."""
    config = next((r.config for r in headline_rows(summary.structure)), None)
    comparisons = {
        key: c for key, c in null_comparisons(summary).items() if key[1] == config and key[3] == "none"
    }
    if not comparisons:
        return []
    lines = [
        "",
        f"Against the null maps on clean `{config}` images ({VERDICT_LEGEND}); cells: verdict, mean "
        "per-image difference method − null map [95% CI]; the best null map has the best mean score:",
        "",
        "| method | score | vs uniform | best null | vs best null |",
        "|---|---|---|---|---|",
    ]
    for (method, *_), scores in comparisons.items():
        for score in VERDICT_SCORES:
            sides = scores.get(score, {})
            uniform, best = sides.get("uniform", {}), sides.get("best", {})
            lines.append(
                f"| {method_label(method)} | {score_label(score)} | {_versus(uniform)} | "
                f"{method_label(best['null']) if best else '–'} | {_versus(best)} |"
            )
    return lines


def _versus(row: dict) -> str:
    """`verdict: diff_mean [ci_low, ci_high]` of a vs_null row (`–` without one)."""
    if not row:
        return "–"
    low, high = _fmt(row.get("ci_low")), _fmt(row.get("ci_high"))
    return f"{verdict_cell(row.get('verdict'))}: {_fmt(row.get('diff_mean'))} [{low}, {high}]"


def _results_markdown(summary: Summary) -> str:
    lines = [competence_markdown(summary), "", "| config | split | n | accuracy |", "|---|---|---|---|"]
    lines += [f"| {r.config} | {r.split} | {r.n} | {_fmt(r.value)} |" for r in summary.config_accuracy()]
    clean = [r for r in summary.structure if _is_card_row(r) and is_clean(r)]
    if clean:
        lines += [
            "",
            "Structure scores on clean images (mean [95% bootstrap CI]; chance = a uniform map):",
            "",
            "| config | method | score | mean [95% CI] | chance | n (invalid) |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.config} | {method_label(r.method)} | {score_label(r.score)} | "
            f"{_fmt(r.mean)} [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}] | "
            f"{_fmt(r.chance)} | {r.n} ({r.n_invalid or 0}) |"
            for r in clean
        ]
    return "\n".join(lines + verdicts_markdown(summary))


def model_card(summary: Summary | dict, training: dict, hub: HubRoot, repo_name: str) -> ModelCard:
    """The model card: YAML (license, library, datasets, model-index) and our own body, no placeholders.
    ``summary``: a `Summary` or a summary.json's contents."""
    summary = as_summary(summary)
    repo_id = f"{hub.user}/{repo_name}"
    data = ModelCardData(
        model_name=repo_name,
        license="apache-2.0",
        library_name="timm",
        pipeline_tag=TASK_TYPE,
        tags=["cambench-qr", "timm", "image-classification", "explainability", "qr-code"],
        datasets=[hub.dataset_id],
        metrics=["accuracy", hub.metric_id],
        eval_results=model_index_results(summary, hub),
    )
    regime = training.get("regime", summary.model.regime)
    backbone = training.get("backbone", summary.model.backbone)
    pretrained = training.get("pretrained", summary.model.pretrained)
    weights = "random initialisation" if pretrained in (None, "none") else f"`{pretrained}`"
    data_revision = training.get("data_revision")
    labels = json.dumps(training.get("label_names", ["non_qr", "qr"]))
    body = f"""
# {repo_name}

A `{backbone}` image classifier (QR code vs. no QR code) trained on
[{DATASET_PRETTY_NAME}]({HUB_URL}/datasets/{hub.dataset_id}) with the `{regime}` regime, and scored by
where its CAM explanations put their mass: on the finder patterns and timing lines a QR reader needs, or on
the background ([cambench_structure]({hub.metric_url})).

## Use

```python
import timm
model = timm.create_model("hf-hub:{repo_id}", pretrained=True)   # label_names: {labels}
```

## Training

| field | value |
|---|---|
| backbone | `{backbone}` |
| regime | `{regime}` |
| initial weights | {weights} |
| data | `{hub.dataset_id}` config `{training.get("config", "")}`, revision `{data_revision}` |
| epochs / lr / seed | {training.get("epochs")} / {training.get("lr")} / {training.get("seed")} |
| image size | {training.get("image_size", summary.model.image_size)} |
| cambench-qr version | {training.get("package_version", __version__)} |

## Results

Data revision `{summary.data.revision}`, evaluated on {summary.hardware.get("device")} with
cambench-qr {summary.package_version} (results schema {summary.schema_version}).

{_results_markdown(summary)}

The accuracy and structure scores are also in the `model-index` above and in `{EVAL_RESULTS_FILE}`.

## Limitations

The images are synthetic QR codes and synthetic negatives; accuracy and structure scores describe this
benchmark, not QR detection in the wild. A CAM on a model with random initial weights and a few epochs of
training says little about CAMs on large pretrained models.

## Citation

CAMBench-QR reimplements and extends "CAMBench-QR" ({PAPER}).
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def write_model_card(model_dir: str | Path, summary: Summary | dict, hub: HubRoot) -> Path:
    """Write README.md (model card) and `.eval_results/cambench-qr.yaml` into a model repo folder that
    holds the harness's `training.json`; returns the README path. ``summary``: a `Summary` or a
    summary.json's contents."""
    summary = as_summary(summary)
    model_dir = Path(model_dir)
    training_file = model_dir / "training.json"
    if not training_file.is_file():
        raise FileNotFoundError(f"{training_file} is missing: not a harness model folder")
    training = json.loads(training_file.read_text())
    card = model_card(summary, training, hub, model_dir.name)
    readme = write_text_atomic(model_dir / "README.md", str(card))
    entries = eval_result_entries(summary, hub, hub.repo_id(model_dir))
    write_text_atomic(
        model_dir / EVAL_RESULTS_FILE, yaml.safe_dump(eval_result_entries_to_yaml(entries), sort_keys=False)
    )
    return readme


def dataset_test_configs(dataset_dir: str | Path) -> list[str]:
    """Configs of a dataset repo folder (from its card's `configs:`) that have a test split."""
    card = DatasetCard.load(Path(dataset_dir) / "README.md")
    configs = card.data.to_dict().get("configs") or []
    return [
        c["config_name"]
        for c in configs
        if any(f.get("split") == "test" for f in c.get("data_files", []) if isinstance(f, dict))
    ]


def write_eval_yaml(dataset_dir: str | Path, methods: tuple[str, ...] | list[str]) -> Path:
    """`eval.yaml` declaring the benchmark tasks of the dataset repo: accuracy and FMR/TMR/BL per CAM
    method, one task per config with a test split. (HF must allow-list a dataset before the Hub shows it
    as a Benchmark; that step is manual.)"""
    configs = dataset_test_configs(dataset_dir)
    if not configs:
        raise ValueError(f"{dataset_dir}/README.md declares no config with a test split")
    tasks = []
    for config in configs:
        tasks.append(
            {
                "id": task_id("accuracy", config),
                "name": f"Accuracy ({config})",
                "config": config,
                "split": "test",
            }
        )
        tasks += [
            {
                "id": task_id(score, config, method),
                "name": f"{SCORE_LABELS[score]} {method_label(method)} ({config})",
                "config": config,
                "split": "test",
            }
            for method in methods
            for score in BENCHMARK_SCORES
        ]
    spec = {
        "name": DATASET_PRETTY_NAME,
        "description": "Does a CAM explanation sit on the structures a QR reader needs (finder patterns, "
        "timing lines) or leak onto the background? Exact part masks for every image.",
        "evaluation_framework": "cambench-qr",
        "tasks": tasks,
    }
    return write_text_atomic(Path(dataset_dir) / "eval.yaml", yaml.safe_dump(spec, sort_keys=False))


def write_metric_space(module_dir: str | Path, space_dir: str | Path) -> Path:
    """Copy the evaluate module folder (script, metric card with the Spaces header, app.py, requirements)
    into the Space folder, replacing what was there."""
    module_dir, space_dir = Path(module_dir), Path(space_dir)
    script = module_dir / f"{module_dir.name}.py"
    if not script.is_file():
        raise FileNotFoundError(f"{script} is missing: not an evaluate module folder")
    staging = space_dir.with_name(f".{space_dir.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(module_dir, staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if space_dir.exists():
        shutil.rmtree(space_dir)
    staging.replace(space_dir)
    return space_dir
