"""`cambench-qr run` end to end on a miniature preset (tiny data, test_resnet, one epoch), then again to
check that every done step is skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hub_server import hub_server_fixture, run_client  # noqa: F401 - the fixture `hub_server`

from cambench_qr.harness.accuracy import config_accuracy
from cambench_qr.harness.presets import Backbone, Preset, RunSpec
from cambench_qr.pipeline import PAPER_TEST_ROWS, Stamps, main_job_preset, run, summary_lines

pytestmark = pytest.mark.slow

TINY = Preset(
    name="tiny",
    description="test miniature",
    expected_runtime="seconds",
    backbones=(Backbone("test_resnet", "test_resnet"),),
    image_size=64,
    batch_size=8,
    datasets=(("standard", 16, 8), ("blur", 0, 4), ("occlusion", 0, 4), ("paper", 0, 4)),
    train_config="standard",
    eval_configs=("standard", "blur", "occlusion", "paper"),
    runs=(
        RunSpec("zs", "zs", {"epochs": 1}),
        RunSpec("ft_struct", "ft_struct", {"epochs": 1}, init_from="zs"),
        RunSpec("ft_leakmin", "ft_leakmin", {"epochs": 1}, init_from="zs"),
    ),
    evaluation={
        "methods": ("layercam", "gradcam"),
        "batch_size": 8,
        "faithfulness_samples": 2,
        "faithfulness_steps": 2,
        "cross_resolution": (),
        "latency_batch": 4,
        "n_boot": 10,
    },
    canvas_size=64,
    sanity_images=4,
    sanity_runs=("zs",),
    sanity_steps=2,
)


def test_stamp_keys_follow_settings_upstream_and_seed(tmp_path):
    stamps = Stamps(tmp_path, seed=0)
    key = stamps.key("train-x", {"lr": 1e-3}, ("data",))
    assert key == Stamps(tmp_path, seed=0).key("train-x", {"lr": 1e-3}, ("data",))
    assert key != stamps.key("train-x", {"lr": 3e-4}, ("data",))
    assert key != stamps.key("train-x", {"lr": 1e-3}, ("other data",))
    assert key != Stamps(tmp_path, seed=1).key("train-x", {"lr": 1e-3}, ("data",))
    assert not stamps.done("train-x", key)
    stamps.mark("train-x", key)
    assert stamps.done("train-x", key) and not stamps.done("train-x", "0" * 16)


def test_main_job_adds_the_paper_config():
    quick = main_job_preset("quick")
    assert ("paper", 0, PAPER_TEST_ROWS) in quick.datasets and quick.eval_configs[-1] == "paper"
    assert main_job_preset(TINY) is TINY
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        main_job_preset("nope")


def test_run_end_to_end_then_skips_what_is_done(tmp_path, hub_server):
    import evaluate
    import timm
    from datasets import load_dataset
    from huggingface_hub import ModelCard

    paths = dict(
        user="alice",
        hub_root=tmp_path / "hub",
        work_dir=tmp_path / "runs",
        report_dir=tmp_path / "report",
        quiet=True,
    )
    result = run(TINY, **paths)
    outputs = result.outputs()
    assert all(Path(p).exists() for p in outputs), [p for p in outputs if not Path(p).exists()]
    assert not any(s.skipped for s in result.steps)

    hub = result.hub
    assert load_dataset(str(hub.dataset_dir), "paper", split="test").num_rows == 4
    metric = evaluate.load(str(hub.metric_dir))
    assert "fmr" in metric.compute(saliency=[[[1.0, 0.0], [0.0, 0.0]]], parts=[[[2, 0], [0, 0]]])
    for name, model_dir in result.models.items():
        model = timm.create_model(f"local-dir:{model_dir.resolve()}", pretrained=True)
        assert model.num_classes == 2
        card = ModelCard.load(model_dir / "README.md")
        accuracy = [r for r in card.data.eval_results if r.metric_type == "accuracy"]
        summary = json.loads((result.evaluations[name] / "summary.json").read_text())
        per_config = config_accuracy(summary["accuracy"])  # not the rows by negative kind, version band, ...
        assert [r.metric_value for r in accuracy] == [a["value"] for a in per_config]
    rows = pq.read_table(result.leaderboard["parquet"]).to_pylist()
    assert {r["regime"] for r in rows} == {"zs", "ft_struct", "ft_leakmin"}
    assert {r["method"] for r in rows} >= {"layercam", "gradcam"}
    index = result.report.read_text()
    assert "gallery-test_resnet-ft_leakmin.png" in index and "leaderboard.png" in index
    assert (result.report.parent / "leaderboard.png").is_file()
    # the sanity checks ran for the zs model only; the report shows its table, figure and verdicts
    sanity = {name: json.loads((folder / "summary.json").read_text()).get("sanity")
              for name, folder in result.evaluations.items()}
    assert sanity["test_resnet-ft_struct"] is None and sanity["test_resnet-ft_leakmin"] is None
    verdicts = {(r["test"], r["method"]) for r in sanity["test_resnet-zs"] if r["score"] == "verdict"}
    assert verdicts == {(t, m) for t in ("cascading", "random_logit") for m in ("layercam", "gradcam")}
    details = index.split("### Sanity checks")[1]
    assert "#### test_resnet-zs" in details and "| layercam | cascading | 1.00 |" in details
    assert "(leaderboard-sanity-test_resnet-zs.png)" in index.split("## Figures")[1]
    assert (result.report.parent / "leaderboard-sanity-test_resnet-zs.png").is_file()
    # which methods pass: one marked line per ruled test and method (no tiny model is competent, so the
    # headline has no table here; its "passes sanity" column is checked in test_leaderboard.py)
    marked = [line for line in details.split("## Figures")[0].splitlines()
              if line.startswith(("| layercam |", "| gradcam |"))
              and line.endswith(("| pass |", "| FAIL |", "| undetermined |"))]
    assert len(marked) == len(verdicts)
    assert result.leaderboard["space app"] == hub.leaderboard_space_dir / "app.py"  # outputs exist: above
    galleries = {p.name for p in (hub.leaderboard_dir / "galleries").iterdir()}
    assert galleries == {f"{m}.png" for m in result.models}

    before = (result.evaluations["test_resnet-zs"] / "summary.json").stat().st_mtime_ns
    again = run(TINY, **paths)
    heavy = [s for s in again.steps if s.name.startswith(("data-", "train-", "eval-"))]
    assert len(heavy) == 4 + 3 + 3 and all(s.skipped for s in heavy)
    assert (result.evaluations["test_resnet-zs"] / "summary.json").stat().st_mtime_ns == before
    text = "\n".join(summary_lines(again, 1.0))
    assert all(p in text for p in outputs)

    # the same folders pushed with `cambench-qr push` load back from a Hub (the local test server)
    code = """
    import sys
    from pathlib import Path
    import pyarrow.parquet as pq
    import timm, torch
    from datasets import load_dataset
    from huggingface_hub import ModelCard
    from cambench_qr.cli import main

    root = Path(sys.argv[1])
    assert main(["--quiet", "push", "--user", "alice", "--hub-root", str(root)]) == 0
    folder = root / "models" / "alice" / "test_resnet-ft_leakmin"
    local = timm.create_model(f"local-dir:{folder}", pretrained=True).state_dict()
    remote = timm.create_model("hf-hub:alice/test_resnet-ft_leakmin", pretrained=True).state_dict()
    assert local.keys() == remote.keys() and all(torch.equal(local[k], remote[k]) for k in local)
    results = ModelCard.load("alice/test_resnet-ft_leakmin").data.eval_results
    assert results and results == ModelCard.load(folder / "README.md").data.eval_results
    assert load_dataset("alice/cambench-qr", "paper", split="test").num_rows == 4
    board = root / "datasets" / "alice" / "cambench-qr-leaderboard" / "data"
    rows = pq.read_table(next(board.glob("*.parquet"))).num_rows
    assert load_dataset("alice/cambench-qr-leaderboard", split="train").num_rows == rows
    print("OK")
    """
    proc = run_client(hub_server, tmp_path, code, str(result.hub.root.resolve()))
    assert proc.stdout.strip().endswith("OK")
