"""`cambench-qr run`: from nothing to a leaderboard, offline, in one command.

It runs a harness preset (`harness.presets.PRESETS`, default `quick`) with the paper config added, into
the local Hub root (folders laid out like Hub repos). Steps, each skipped when its stamp says it is done
with the same settings:

1. build the preset's dataset configs (+ `paper`) into the dataset repo folder, add `eval.yaml`;
2. copy the `cambench_structure` evaluate module into the metric Space folder;
3. per backbone, train the preset's runs in order (a run with `init_from` starts from that run's model)
   into the model repo folders, and evaluate each model into `<work>/eval/<model>` (summary.json,
   per_sample.parquet);
4. write the model cards, the leaderboard repo with its figures, one overlay gallery per model (into the
   leaderboard repo too), the leaderboard Space folder and `<report>/index.md` + `index.html`.

A step's stamp (`<work>/stamps/<step>.json`) holds a key: the sha256 of the step's settings, the keys of
the steps it depends on, the seed and the package version. Changing any of them redoes the step and every
step downstream of it; cards, leaderboard and report are cheap and always rewritten.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from . import __version__
from .harness.presets import PRESETS, Preset
from .hub_cards import HubRoot, build_leaderboard, write_eval_yaml, write_metric_space, write_model_card
from .hub_cards._io import write_text_atomic
from .hub_cards.layout import DEFAULT_USER
from .hub_cards.report import draw_gallery, png_bytes, write_report
from .hub_cards.space import write_galleries, write_leaderboard_space

# The main job also shows the paper config (the authors' generator at its native sizes), test rows only,
# next to whatever the preset builds.
PAPER_TEST_ROWS = 40
GALLERY_IMAGES = 4


def main_job_preset(preset: str | Preset) -> Preset:
    """The harness preset (by name or as given) with the paper config added to its data and evaluation."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    if any(config == "paper" for config, _, _ in preset.datasets):
        return preset
    return replace(
        preset,
        datasets=(*preset.datasets, ("paper", 0, PAPER_TEST_ROWS)),
        eval_configs=(*preset.eval_configs, "paper"),
    )


@dataclass
class StepLog:
    name: str
    skipped: bool
    seconds: float


class Stamps:
    """Per-step stamp files: a step is done when its stamp holds the step's key."""

    def __init__(self, folder: Path, seed: int) -> None:
        self.folder, self.seed = folder, seed

    def key(self, step: str, settings: dict, upstream: tuple[str, ...] = ()) -> str:
        payload = {
            "step": step,
            "settings": settings,
            "upstream": list(upstream),
            "seed": self.seed,
            "package_version": __version__,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def done(self, step: str, key: str) -> bool:
        path = self.folder / f"{step}.json"
        return path.is_file() and json.loads(path.read_text()).get("key") == key

    def mark(self, step: str, key: str) -> None:
        stamp = {
            "key": key,
            "package_version": __version__,
            "seed": self.seed,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_text_atomic(self.folder / f"{step}.json", json.dumps(stamp, indent=1) + "\n")


@dataclass
class RunResult:
    hub: HubRoot
    models: dict[str, Path]
    evaluations: dict[str, Path]
    leaderboard: dict[str, Path]
    report: Path
    galleries: list[Path]
    steps: list[StepLog]

    def outputs(self) -> list[str]:
        paths = [self.hub.dataset_dir, self.hub.dataset_dir / "eval.yaml", self.hub.metric_dir]
        for model_dir in self.models.values():
            paths += [model_dir, model_dir / "README.md", model_dir / ".eval_results" / "cambench-qr.yaml"]
        paths += [p / "summary.json" for p in self.evaluations.values()]
        paths += [*self.leaderboard.values(), self.report, self.report.with_name("index.html")]
        paths += self.galleries
        return [str(p) for p in paths]


def _gallery(model_dir: Path, data: str, image_size: int, methods: tuple[str, ...]) -> bytes:
    """Overlay gallery of a model on the first QR test images of `standard`."""
    import timm
    import torch

    from .cams import CamEngine, postprocess
    from .harness.data import TensorRows, load_split, normalize
    from .harness.models import load_checkpoint
    from .parts import LABEL_NAMES

    model, _ = load_checkpoint(model_dir)
    split = load_split(data, "standard", "test")
    qr = [i for i, label in enumerate(split["label"]) if label == LABEL_NAMES.index("qr")]
    rows = TensorRows(split.select(qr[:GALLERY_IMAGES]), image_size)
    batch = {k: torch.stack([rows[i][k] for i in range(len(rows))]) for k in ("image", "parts")}
    config = timm.data.resolve_model_data_config(model)
    inputs = normalize(batch["image"], tuple(config["mean"]), tuple(config["std"]))
    out = CamEngine(model)(inputs, methods=methods)
    maps = {m: postprocess(out.maps[m], image_size, mode="minmax").numpy() for m in methods}
    probs = out.logits.softmax(dim=1)
    captions = [f"pred {LABEL_NAMES[int(t)]} p={float(probs[i, t]):.2f}" for i, t in enumerate(out.targets)]
    images = batch["image"].permute(0, 2, 3, 1).numpy()
    return png_bytes(draw_gallery(images, batch["parts"].numpy(), maps, captions))


def _settings(kwargs: dict, *drop: str) -> dict:
    """The keyword arguments that decide a step's result (paths and progress flags removed)."""
    return {k: v for k, v in kwargs.items() if k not in {"out", "out_dir", "data", "model", "quiet", *drop}}


def run(
    preset: str | Preset = "quick",
    *,
    user: str = DEFAULT_USER,
    hub_root: str | Path = "hub",
    work_dir: str | Path = "runs",
    report_dir: str | Path = "report",
    quiet: bool = False,
) -> RunResult:
    """Run the whole benchmark with a harness preset (`harness.presets.PRESETS`, plus the paper config)
    and return what it wrote. The seed is the preset's."""
    from .dataset_builder import build_dataset
    from .harness.evaluate import evaluate
    from .harness.train import train
    from .metrics import EVALUATE_MODULE

    spec = main_job_preset(preset)
    hub, work = HubRoot(Path(hub_root), user), Path(work_dir)
    stamps = Stamps(work / "stamps", spec.seed)
    data = str(hub.dataset_dir)
    methods = tuple(spec.evaluation["methods"])
    logs: list[StepLog] = []
    n_steps = len(spec.datasets) + 2 * len(spec.backbones) * len(spec.runs) + 2
    bar = tqdm(total=n_steps, desc="cambench-qr run", unit="step", disable=quiet)

    def step(name: str, key: str, action: Callable[[], object], done_when: Path) -> None:
        bar.set_postfix_str(name)
        start = time.perf_counter()
        skipped = stamps.done(name, key) and done_when.exists()
        if not skipped:
            action()
            stamps.mark(name, key)
        logs.append(StepLog(name, skipped, time.perf_counter() - start))
        bar.update(1)

    data_keys: dict[str, str] = {}
    for config, num_train, num_test in spec.datasets:
        kwargs = spec.build_kwargs(config, num_train, num_test, hub.dataset_dir, quiet=quiet)
        data_keys[config] = key = stamps.key(f"data-{config}", _settings(kwargs))
        step(
            f"data-{config}",
            key,
            lambda kwargs=kwargs: build_dataset(**kwargs),
            hub.dataset_dir / "data" / config,
        )
    write_eval_yaml(hub.dataset_dir, methods)
    write_metric_space(EVALUATE_MODULE, hub.metric_dir)

    models: dict[str, Path] = {}
    train_keys: dict[str, str] = {}
    run_names: dict[str, str] = {}
    for backbone in spec.backbones:
        for run_spec in spec.runs:
            out = hub.model_dir(backbone.name, run_spec.name)
            parent = None if run_spec.init_from is None else hub.model_dir(backbone.name, run_spec.init_from)
            kwargs = spec.train_kwargs(run_spec, backbone, data, out, init_from=parent, quiet=quiet)
            upstream = (data_keys[spec.train_config],)
            if parent is not None:
                upstream += (train_keys[str(parent)],)
            name = f"train-{out.name}"
            train_keys[str(out)] = key = stamps.key(name, _settings(kwargs, "init_from"), upstream)

            def train_model(kwargs: dict = kwargs, out: Path = out) -> None:
                shutil.rmtree(out, ignore_errors=True)  # a stale or interrupted model of this step
                train(**kwargs)

            step(name, key, train_model, out / "training.json")
            models[out.name] = out
            run_names[out.name] = run_spec.name

    evaluations: dict[str, Path] = {}
    for name, model_dir in models.items():
        out = work / "eval" / name
        kwargs = spec.evaluate_kwargs(model_dir, data, out, quiet=quiet, run=run_names[name])
        upstream = (*(data_keys[c] for c in spec.eval_configs), train_keys[str(model_dir)])
        key = stamps.key(f"eval-{name}", _settings(kwargs), upstream)

        def evaluate_model(kwargs: dict = kwargs, out: Path = out) -> None:
            shutil.rmtree(out, ignore_errors=True)
            evaluate(**kwargs)

        step(f"eval-{name}", key, evaluate_model, out / "summary.json")
        evaluations[name] = out

    bar.set_postfix_str("cards + leaderboard")
    start = time.perf_counter()
    for name, model_dir in models.items():
        write_model_card(model_dir, json.loads((evaluations[name] / "summary.json").read_text()), hub)
    leaderboard = build_leaderboard(list(evaluations.values()), hub.leaderboard_dir)
    logs.append(StepLog("cards + leaderboard", False, time.perf_counter() - start))
    bar.update(1)

    floors = floor_lines(spec, evaluations)
    bar.set_postfix_str("report")
    start = time.perf_counter()
    galleries = {
        name: _gallery(model_dir, data, spec.image_size, methods) for name, model_dir in models.items()
    }
    write_galleries(hub.leaderboard_dir, galleries)
    leaderboard.update(write_leaderboard_space(hub))
    report_dir = Path(report_dir)
    result = RunResult(
        hub,
        models,
        evaluations,
        leaderboard,
        report_dir / "index.md",
        [report_dir / f"gallery-{name}.png" for name in galleries],
        logs,
    )
    write_report(report_dir, hub.leaderboard_dir, galleries, result.outputs(), floors)
    logs.append(StepLog("report", False, time.perf_counter() - start))
    bar.update(1)
    bar.close()
    return result


def floor_lines(spec: Preset, evaluations: dict[str, Path]) -> list[str]:
    """Markdown lines on the preset's accuracy floors for the report; every miss is also printed to stderr
    (the run still finishes). Empty for a preset without floors."""
    from .harness.accuracy import floor_misses

    if spec.accuracy_floors is None:
        return []
    clean, distorted = spec.accuracy_floors
    misses = []
    for out in evaluations.values():
        misses += floor_misses(json.loads((out / "summary.json").read_text()), clean, distorted)
    for miss in misses:
        print(f"cambench-qr run: warning: {miss}", file=sys.stderr)
    rule = (f"accuracy >= {clean:.2f} on clean `standard` and >= {distorted:.2f} averaged over severities "
            "1-3 of each distortion config")
    if not misses:
        return [f"Every model meets the preset's accuracy floors ({rule})."]
    return [f"**Accuracy floors missed** (the preset asks {rule}):", "", *(f"- {m}" for m in misses)]


def summary_lines(result: RunResult, wall_s: float) -> list[str]:
    """The final summary: every step (done or skipped, seconds), then every output path."""
    lines = [f"cambench-qr run finished in {wall_s:.1f} s"]
    lines += [
        f"  {'skipped' if s.skipped else 'done   '} {s.name:32s} {s.seconds:7.1f} s" for s in result.steps
    ]
    lines += ["outputs:", *(f"  {path}" for path in result.outputs())]
    lines.append(f"leaderboard: {result.leaderboard['markdown']}   report: {result.report}")
    return lines
