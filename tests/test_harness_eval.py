"""Evaluation: result files and their keys, the methods against the null maps and the grouped accuracy
recomputed from the per-sample rows and the dataset, competence and the CAM grid, hand-checked pieces,
bad input, and one 2-process run (training and evaluation under `accelerate launch`) checked against the
single-process results."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from cambench_qr.cams import CamEngine
from cambench_qr.dataset_builder.build import build_dataset
from cambench_qr.harness.accuracy import version_band
from cambench_qr.harness.evaluate import evaluate
from cambench_qr.harness.evaluate import main as evaluate_main
from cambench_qr.harness.faithfulness import control_mask, insertion_deletion, threshold_iou
from cambench_qr.harness.models import load_checkpoint
from cambench_qr.harness.train import train
from cambench_qr.results import NULL_BASELINES, VS_NULL_SCORES, Summary

METHODS = ("layercam", "xgradcam")
EVAL = {"methods": METHODS, "batch_size": 4, "n_boot": 20, "faithfulness_samples": 2,
        "cross_resolution": (64, 80), "latency_batch": 2, "quiet": True}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("data") / "cambench"
    build_dataset("standard", root, num_train=16, num_test=10, image_size=64, quiet=True)
    build_dataset("blur", root, num_train=0, num_test=6, image_size=64, quiet=True)
    return str(root)


@pytest.fixture(scope="module")
def model(data, tmp_path_factory) -> Path:
    return train(data=data, out=tmp_path_factory.mktemp("zs") / "model", backbone="test_resnet",
                 pretrained="none", epochs=1, image_size=64, batch_size=8, quiet=True)


@pytest.fixture(scope="module")
def results(model, data, tmp_path_factory) -> Path:
    return evaluate(model=model, data=data, out=tmp_path_factory.mktemp("eval") / "res",
                    configs=("standard", "blur"), **EVAL)


def _qr_ids(data: str, config: str) -> list[str]:
    rows = datasets.load_dataset(data, config)["test"]
    return [i for i, label in zip(rows["id"], rows["label"], strict=True) if label == 1]


def test_result_files_hold_every_qr_sample_once_per_method(results, data):
    table = pq.read_table(results / "per_sample.parquet").to_pydict()
    for key in ("id", "config", "split", "distortion", "severity", "method", "label", "pred", "fmr", "tmr",
                "bl", "dts", "auc_misf", "chance_fmr", "valid", "iou_mean", "insertion_auc", "deletion_auc",
                "drop_finder", "drop_timing", "drop_finder_control", "drop_timing_control"):
        assert key in table, key
    pairs = list(zip(table["config"], table["id"], table["method"], strict=True))
    assert len(pairs) == len(set(pairs))
    for config in ("standard", "blur"):
        ids = _qr_ids(data, config)
        for method in (*METHODS, *NULL_BASELINES):
            got = sorted(i for c, i, m in pairs if c == config and m == method)
            assert got == sorted(ids), (config, method)
    assert set(table["label"]) == {1}
    blur_severity = {s for c, s in zip(table["config"], table["severity"], strict=True) if c == "blur"}
    assert blur_severity and blur_severity <= {1, 2, 3, 4, 5}


def test_uniform_baseline_scores_its_chance_values(results):
    table = pq.read_table(results / "per_sample.parquet").to_pydict()
    rows = [i for i, m in enumerate(table["method"]) if m == "null_uniform"]
    for score in ("fmr", "tmr", "bl", "auc_misf"):
        got = np.array([table[score][i] for i in rows])
        chance = np.array([table[f"chance_{score}"][i] for i in rows])
        ok = np.isfinite(chance)
        assert ok.any() and np.allclose(got[ok], chance[ok], atol=1e-9), score


def test_summary_has_the_contract_sections(results, model):
    summary = json.loads((results / "summary.json").read_text())
    assert summary["schema_version"] == 1
    assert json.dumps(Summary.from_json(summary).as_json()) == json.dumps(summary)  # typed, key for key
    assert {"package_version", "created", "model", "data", "hardware", "accuracy", "structure",
            "faithfulness", "causal", "robustness", "latency"} <= set(summary)
    assert summary["model"]["regime"] == "zs" and summary["model"]["path"] == str(model.resolve())
    assert len(summary["data"]["revision"]) == 16 and summary["hardware"]["num_processes"] == 1
    assert [(a["config"], a["n"]) for a in summary["accuracy"] if "group" not in a] == [
        ("standard", 10), ("blur", 6)]
    row = summary["structure"][0]
    assert {"config", "split", "method", "distortion", "severity", "score", "n", "n_invalid", "mean", "std",
            "ci_low", "ci_high", "chance"} <= set(row)
    assert {r["method"] for r in summary["faithfulness"]} == set(METHODS)
    assert all(r["n"] == 2 for r in summary["faithfulness"])
    causal_keys = {"rho_fmr_drop_finder", "rho_tmr_drop_timing", "mean_drop_finder_control"}
    assert causal_keys <= set(summary["causal"][0])
    kinds = {(r["kind"], r.get("image_size")) for r in summary["robustness"]}
    assert {("cross_resolution", 64), ("cross_resolution", 80), ("threshold_iou", None)} <= kinds
    assert [r["method"] for r in summary["latency"]] == [*METHODS, "all"]
    assert all(r["ms_per_img"] > 0 and r["batch_size"] == 2 for r in summary["latency"])


VS_NULL_FIELDS = ["kind", "method", "config", "split", "distortion", "severity", "score", "null", "n",
                  "diff_mean", "ci_low", "ci_high", "verdict"]


def test_vs_null_rows_pair_every_method_with_every_null_map(results):
    summary = json.loads((results / "summary.json").read_text())
    table = pq.read_table(results / "per_sample.parquet").to_pydict()
    rows = summary["vs_null"]
    assert all(list(r) == VS_NULL_FIELDS and r["kind"] == "vs_null" for r in rows)
    groups = {(r["method"], r["config"], r["split"], r["distortion"], r["severity"])
              for r in summary["structure"] if r["method"] in METHODS}
    keys = [(r["method"], r["config"], r["split"], r["distortion"], r["severity"], r["score"], r["null"])
            for r in rows]
    assert len(keys) == len(set(keys)) == len(groups) * len(VS_NULL_SCORES) * len(NULL_BASELINES)
    assert set(keys) == {(*g, s, n) for g in groups for s in VS_NULL_SCORES for n in NULL_BASELINES}

    def scores(config: str, method: str, score: str) -> dict:
        return {i: v for i, c, m, v in zip(table["id"], table["config"], table["method"], table[score],
                                           strict=True) if c == config and m == method}

    clean = [r for r in rows if r["distortion"] == "none"]
    assert len(clean) == len(METHODS) * len(VS_NULL_SCORES) * len(NULL_BASELINES)
    for row in clean:  # recomputed from the per-sample rows, paired by image id
        a = scores(row["config"], row["method"], row["score"])
        b = scores(row["config"], row["null"], row["score"])
        d = np.array([a[i] - b[i] for i in a if np.isfinite(a[i]) and np.isfinite(b[i])])
        assert row["n"] == len(d) > 1 and row["diff_mean"] == pytest.approx(d.mean(), abs=1e-12), row
        assert row["ci_low"] <= row["diff_mean"] + 1e-12 and row["diff_mean"] <= row["ci_high"] + 1e-12, row
        low, high = (row["ci_low"], row["ci_high"]) if row["score"] in ("fmr", "tmr") else (
            -row["ci_high"], -row["ci_low"])  # BL, DtS: lower is better, so the good side is below 0
        assert row["verdict"] == ("better" if low > 0 else "worse" if high < 0 else "indistinguishable"), row


def test_accuracy_groups_add_up_and_match_the_dataset(results, data):
    summary = json.loads((results / "summary.json").read_text())
    table = pq.read_table(results / "per_sample.parquet").to_pydict()
    overall = {a["config"]: a for a in summary["accuracy"] if "group" not in a}
    grouped = [a for a in summary["accuracy"] if "group" in a]
    assert {a["group"] for a in grouped} == {"negative_kind", "version_band", "distortion"}
    for config, total in overall.items():
        part = [a for a in grouped if a["config"] == config and a["split"] == "test"]
        for groups in (("negative_kind", "version_band"), ("distortion",)):  # each splits the config's images
            subsets = [a for a in part if a["group"] in groups]
            assert sum(a["n"] for a in subsets) == total["n"], (config, groups)
            assert sum(a["n"] * a["value"] for a in subsets) == pytest.approx(total["n"] * total["value"])
        rows = datasets.load_dataset(data, config)["test"]
        kinds = [k for k in rows["negative_kind"] if k is not None]
        assert {a["negative_kind"]: a["n"] for a in part if a["group"] == "negative_kind"} == {
            k: kinds.count(k) for k in set(kinds)}
        # the QR rows' predictions (per_sample.parquet) by the dataset's version band
        version = dict(zip(rows["id"], rows["version"], strict=True))
        hits: dict[str, list[bool]] = {}
        columns = (table[k] for k in ("id", "config", "method", "label", "pred"))
        for i, c, m, label, pred in zip(*columns, strict=True):
            if c == config and m == METHODS[0]:
                hits.setdefault(version_band(version[i]), []).append(label == pred)
        assert {a["version_band"]: (a["n"], a["value"]) for a in part if a["group"] == "version_band"} == {
            band: (len(h), pytest.approx(np.mean(h))) for band, h in hits.items()}
    blur = {(a["distortion"], a["severity"]) for a in grouped
            if a["config"] == "blur" and a["group"] == "distortion"}
    assert blur and all(d == "blur" and 1 <= s <= 5 for d, s in blur)


def test_competence_and_cam_grid(results, model):
    summary = json.loads((results / "summary.json").read_text())
    standard = next(a for a in summary["accuracy"] if a["config"] == "standard" and "group" not in a)
    assert summary["model"]["competence_floor"] == 0.9
    assert summary["model"]["competent"] is (standard["value"] >= 0.9)
    net, _ = load_checkpoint(model)
    maps = CamEngine(net)(torch.zeros(2, 3, 64, 64), methods=("layercam",)).maps["layercam"]
    assert summary["model"]["cam_grid"] == list(maps.shape[-2:]) and maps.shape[0] == 2


def _null_rows(folder: Path) -> list[dict]:
    summary = json.loads((folder / "summary.json").read_text())
    return [r for r in summary["structure"] if r["method"] in NULL_BASELINES]


def test_null_map_rows_do_not_depend_on_the_model(results, data, tmp_path):
    """What the leaderboard relies on to show the null maps once per config and input size."""
    other = train(data=data, out=tmp_path / "other", backbone="test_resnet", pretrained="none", epochs=1,
                  image_size=64, batch_size=8, seed=1, quiet=True)
    again = evaluate(model=other, data=data, out=tmp_path / "eval", configs=("standard", "blur"), **EVAL)
    first = json.loads((results / "summary.json").read_text())
    second = json.loads((again / "summary.json").read_text())
    assert [r["mean"] for r in first["structure"] if r["method"] in METHODS] != [
        r["mean"] for r in second["structure"] if r["method"] in METHODS]  # another model, other CAMs
    assert _null_rows(results) and json.dumps(_null_rows(results)) == json.dumps(_null_rows(again))


def test_deletion_auc_by_hand():
    """Left half black, right half white; p(target) = 0.05 + 0.9 * (share of black pixels). Deleting the
    left half first (mean fill is grey) leaves max(0, 0.5 - x) black: AUC = 0.05 + 0.9 / 8 exactly."""
    image = torch.full((1, 3, 20, 20), 255.0)
    image[..., :10] = 0
    saliency = torch.zeros(1, 20, 20)
    saliency[..., :10] = 1 + torch.rand(1, 20, 10, generator=torch.Generator().manual_seed(0))

    def classify(x: torch.Tensor) -> torch.Tensor:
        q = 0.05 + 0.9 * (x[:, 0] == 0).float().mean(dim=(1, 2))
        return torch.stack([torch.zeros_like(q), torch.log(q / (1 - q))], 1)

    insertion, deletion = insertion_deletion(classify, image, saliency, target=1, steps=21)
    assert deletion.item() == pytest.approx(0.05 + 0.9 / 8, abs=1e-6)
    insertion_reversed, deletion_reversed = insertion_deletion(classify, image, -saliency, target=1, steps=21)
    assert deletion_reversed.item() > deletion.item() and insertion.item() > insertion_reversed.item()


def test_threshold_iou_and_controls_by_hand():
    box = torch.zeros(2, 8, 8, dtype=torch.bool)
    box[:, 2:6, 2:6] = True
    iou = threshold_iou(torch.stack([box[0].float(), torch.ones(8, 8)]), box)
    assert torch.equal(iou[0], torch.ones(19, dtype=torch.float64)) and iou[1].isnan().all()
    pool = ~box
    drawn = control_mask(pool, torch.tensor([5, 100]), seeds=[1, 2])
    assert drawn[0].sum() == 5 and drawn[1].sum() == pool[1].sum()  # capped at the pool size
    assert not (drawn & box).any()
    assert torch.equal(drawn, control_mask(pool, torch.tensor([5, 100]), seeds=[1, 2]))


def test_bad_inputs(model, data, tmp_path):
    with pytest.raises(ValueError, match="has no config 'noise'"):
        evaluate(model=model, data=data, out=tmp_path / "a", configs=("noise",), **EVAL)
    with pytest.raises(ValueError, match="not a model folder"):
        evaluate(model=tmp_path, data=data, out=tmp_path / "b", **EVAL)
    with pytest.raises(ValueError, match="unknown CAM method"):
        evaluate(model=model, data=data, out=tmp_path / "c", **{**EVAL, "methods": ("gradcam", "nope")})
    negatives = tmp_path / "negatives"
    (negatives / "data" / "standard").mkdir(parents=True)
    (negatives / "README.md").write_text("---\nconfigs:\n- config_name: standard\n  data_files:\n"
                                         "  - split: train\n    path: data/standard/train-*\n"
                                         "  - split: test\n    path: data/standard/test-*\n---\n")
    for split in ("train", "test"):
        rows = datasets.load_dataset(data, "standard")[split]
        rows.filter(lambda r: r["label"] == 0).to_parquet(str(negatives / "data" / "standard" /
                                                              f"{split}-00000-of-00001.parquet"))
    with pytest.raises(ValueError, match="no QR samples"):
        evaluate(model=model, data=str(negatives), out=tmp_path / "d", **EVAL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(module: str, *args: str) -> None:
    """``accelerate launch`` with 2 CPU processes (gloo), as a user would run it."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", module, *args, "--quiet"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_train_and_evaluate_every_sample_once(model, data, results, tmp_path):
    # FT-LeakMin: DDP through the differentiable CAM (double backward), the hardest training path.
    _launch("cambench_qr.harness.train", "--data", data, "--init-from", str(model), "--regime", "ft_leakmin",
            "--epochs", "1", "--image-size", "64", "--batch-size", "4", "--out", str(tmp_path / "ddp_model"))
    training = json.loads((tmp_path / "ddp_model" / "training.json").read_text())
    assert training["num_processes"] == 2 and training["history"][0]["n"] >= 16
    assert training["history"][0]["penalty"] > 0

    _launch("cambench_qr.harness.evaluate", "--model", str(model), "--data", data,
            "--configs", "standard,blur", "--methods", ",".join(METHODS), "--batch-size", "3",
            "--n-boot", "20", "--faithfulness-samples", "2", "--cross-resolution", "64",
            "--latency-batch", "0", "--out", str(tmp_path / "ddp_eval"))
    summary = json.loads((tmp_path / "ddp_eval" / "summary.json").read_text())
    assert summary["hardware"]["num_processes"] == 2
    assert [(a["config"], a["n"]) for a in summary["accuracy"] if "group" not in a] == [
        ("standard", 10), ("blur", 6)]
    assert summary["vs_null"] and summary["model"]["cam_grid"]
    distributed = pq.read_table(tmp_path / "ddp_eval" / "per_sample.parquet").to_pydict()
    single = pq.read_table(results / "per_sample.parquet").to_pydict()
    key = lambda t, i: (t["config"][i], t["id"][i], t["method"][i])  # noqa: E731
    dist_rows = {key(distributed, i): i for i in range(len(distributed["id"]))}
    assert len(dist_rows) == len(distributed["id"])  # no duplicates
    assert set(dist_rows) == {key(single, i) for i in range(len(single["id"]))}  # complete
    for i in range(len(single["id"])):
        j = dist_rows[key(single, i)]
        for score in ("fmr", "bl", "drop_finder", "drop_timing_control", "insertion_auc"):
            a, b = single[score][i], distributed[score][j]
            assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, rel=1e-4, abs=1e-6), score


FAST = {**EVAL, "configs": ("standard",), "max_samples": 6, "cross_resolution": (), "latency_batch": 0}


def test_results_are_never_overwritten_unless_asked(model, data, tmp_path, capsys):
    out = evaluate(model=model, data=data, out=tmp_path / "res", **FAST)
    before = (out / "summary.json").read_bytes()
    with pytest.raises(FileExistsError, match="already holds results.*--overwrite"):
        evaluate(model=model, data=data, out=out, **FAST)
    args = ["--model", str(model), "--data", data, "--out", str(out), "--max-samples", "6",
            "--cross-resolution", "", "--latency-batch", "0", "--n-boot", "20", "--quiet"]
    assert evaluate_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--overwrite" in err
    assert (out / "summary.json").read_bytes() == before
    evaluate(model=model, data=data, out=out, overwrite=True, **{**FAST, "seed": 1})
    assert json.loads((out / "summary.json").read_text())["settings"]["seed"] == 1


def test_a_model_without_training_json_needs_the_input_size(model, data, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((model / name).read_bytes())
    net, _ = load_checkpoint(bare)
    assert net.pretrained_cfg["input_size"][-1] != 64  # timm's default, not the trained 64 px
    with pytest.raises(ValueError, match="no training.json.*--image-size"):
        evaluate(model=bare, data=data, out=tmp_path / "a", **FAST)
    assert not (tmp_path / "a").exists()
    out = evaluate(model=bare, data=data, out=tmp_path / "b", image_size=64, **FAST)
    assert json.loads((out / "summary.json").read_text())["model"]["image_size"] == 64
