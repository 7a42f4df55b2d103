"""Causal agreement: per-image Spearman between CAM mass and intervention logit drop, on hand-made cases."""

import json
import math

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.stats
from hub_summaries import summary, write_summary

from cambench_qr.dataset_builder.build import build_dataset
from cambench_qr.harness.causal import causal_summary, intervention_table, rank_agreement
from cambench_qr.harness.evaluate import evaluate
from cambench_qr.harness.train import train
from cambench_qr.hub_cards.leaderboard import build_leaderboard

PARTS = ("finder", "timing", "alignment", "data", "quiet_zone")


def test_rank_agreement_hand_computed():
    mass = np.array([
        [0.1, 0.2, 0.3, 0.4],
        [0.1, 0.2, 0.3, 0.4],
        [0.1, 0.2, 0.3, 0.4],  # rho = 1 - 6 * (1 + 1) / (4 * 15) = 0.8
        [0.1, 0.2, np.nan, 0.3],  # the missing part is left out: 3 parts, reversed
        [0.1, 0.2, 0.3, 0.4],  # constant drop: undefined
        [0.1, 0.2, np.nan, np.nan],  # 2 parts: undefined
    ])
    drop = np.array([[1, 2, 3, 4], [4, 3, 2, 1], [1, 3, 2, 4], [3, 2, 9, 1], [1, 1, 1, 1], [1, 2, 3, 4]],
                    float)
    rho = rank_agreement(mass, drop)
    np.testing.assert_allclose(rho[:4], [1.0, -1.0, 0.8, -1.0])
    assert np.isnan(rho[4:]).all()
    with pytest.raises(ValueError, match="same"):
        rank_agreement(mass, drop[:, :3])


def _columns(rows: list[tuple]) -> dict[str, list]:
    """Evaluation columns from (id, method, logits, masses) tuples."""
    columns = {"id": [], "config": [], "split": [], "method": [], "logit_non_qr": [], "logit_qr": [],
               **{f"mass_{p}": [] for p in PARTS}}
    for row_id, method, logits, masses in rows:
        columns["id"].append(row_id)
        columns["config"].append("interventions")
        columns["split"].append("test")
        columns["method"].append(method)
        columns["logit_non_qr"].append(logits[0])
        columns["logit_qr"].append(logits[1])
        for p, m in zip(PARTS, masses, strict=True):
            columns[f"mass_{p}"].append(m)
    return columns


# Image A (all five parts) is predicted qr; image B (version 1: no alignment copy) is predicted non_qr,
# so its drops are of the non_qr logit.
LOGITS = {
    "a/none": (0, 5), "a/finder": (0, 1), "a/timing": (0, 4), "a/alignment": (0, 4.5), "a/data": (3, 2),
    "a/quiet_zone": (0, 5),
    "b/none": (2, 1), "b/finder": (0, 1), "b/timing": (1, 0), "b/data": (2, 0), "b/quiet_zone": (1.5, 0),
}
MASSES = {  # mass on (finder, timing, alignment, data, quiet_zone) of the original, per method
    ("a", "gradcam"): (0.4, 0.1, 0.05, 0.3, 0.15),
    ("b", "gradcam"): (0.1, 0.2, 0.0, 0.3, 0.4),
    ("a", "null_uniform"): (0.2, 0.2, 0.2, 0.2, 0.2),
    ("b", "null_uniform"): (0.4, 0.3, 0.0, 0.1, 0.2),
}


def _hand_made() -> tuple[dict, dict]:
    rows, pairs = [], {}
    for method in ("gradcam", "null_uniform"):
        for key, logits in LOGITS.items():
            image, intervention = key.split("/")
            rows.append((f"interventions/test/{key}", method, logits, MASSES[(image, method)]))
            pairs[f"interventions/test/{key}"] = (intervention, f"standard/test/{image}")
    rows.append(("standard/test/zzz", "gradcam", (0, 1), (0.2,) * 5))  # another config: ignored
    return _columns(rows), pairs


def test_causal_summary_hand_computed():
    columns, pairs = _hand_made()
    table = intervention_table(columns, pairs)
    assert table["explained"] == ["qr", "non_qr"] * 2
    np.testing.assert_allclose([table[f"drop_{p}"][0] for p in PARTS], [4, 1, 0.5, 3, 0])
    np.testing.assert_allclose([table[f"drop_{p}"][1] for p in PARTS], [2, 1, np.nan, 0, 0.5])
    np.testing.assert_allclose([table[f"flip_{p}"][1] for p in PARTS], [1, 0, np.nan, 0, 0])
    rows = causal_summary(columns, pairs, n_boot=200)
    agreement = {r["method"]: r for r in rows if r["kind"] == "intervention_agreement"}
    # gradcam: A: rho = 1 - 6 * (4 + 1 + 1) / (5 * 24) = 0.7; B: ranks mass 1,2,3,4 vs drop 4,3,1,2:
    # rho = 1 - 6 * (9 + 1 + 4 + 4) / (4 * 15) = -0.8; mean -0.05.
    assert agreement["gradcam"]["n"] == 2 and agreement["gradcam"]["n_invalid"] == 0
    assert math.isclose(agreement["gradcam"]["mean"], -0.05)
    assert agreement["gradcam"]["ci_low"] <= -0.05 <= agreement["gradcam"]["ci_high"]
    # null_uniform: A's masses are all equal (undefined, counted); B's order matches the drops exactly.
    assert agreement["null_uniform"]["n"] == 1 and agreement["null_uniform"]["n_invalid"] == 1
    assert math.isclose(agreement["null_uniform"]["mean"], 1.0)
    drops = {(r["intervention"], r["score"]): r for r in rows if r["kind"] == "intervention_drop"}
    expected = {"finder": (3, 0.5, 2), "timing": (1, 0, 2), "alignment": (0.5, 0, 1), "data": (1.5, 0.5, 2),
                "quiet_zone": (0.25, 0, 2)}
    for part, (drop, flip, n) in expected.items():
        assert math.isclose(drops[(part, "logit_drop")]["mean"], drop)
        assert math.isclose(drops[(part, "flip_rate")]["mean"], flip)
        assert drops[(part, "logit_drop")]["n"] == n and drops[(part, "logit_drop")]["n_invalid"] == 0


def test_causal_summary_errors():
    columns, pairs = _hand_made()
    del pairs["interventions/test/b/none"]
    with pytest.raises(ValueError, match="standard/test/b.*none"):
        causal_summary(columns, pairs)
    columns, pairs = _hand_made()
    del columns["logit_qr"]
    with pytest.raises(ValueError, match="logit_qr"):
        causal_summary(columns, pairs)
    assert causal_summary(_hand_made()[0], {}) == []


def test_evaluate_reports_causal_agreement(tmp_path):
    """End to end: a tiny model evaluated on the interventions config; the summary's agreement equals the
    mean per-image Spearman recomputed with scipy from per_sample.parquet and the dataset's pairing."""
    root = tmp_path / "data"
    build_dataset("standard", root, num_train=8, num_test=0, image_size=64, quiet=True)
    build_dataset("interventions", root, num_train=0, num_test=14, image_size=64, quiet=True)
    model = train(data=str(root), out=tmp_path / "model", backbone="test_resnet", pretrained="none", epochs=1,
                  image_size=64, batch_size=8, quiet=True)
    out = evaluate(model=model, data=str(root), out=tmp_path / "eval", configs=("interventions",),
                   methods=("gradcam",), batch_size=7, n_boot=20, faithfulness_samples=0,
                   cross_resolution=(), latency_batch=0, quiet=True)
    summary = json.loads((out / "summary.json").read_text())
    agreement = {r["method"]: r for r in summary["causal"] if r.get("kind") == "intervention_agreement"}
    drops = {r["intervention"] for r in summary["causal"] if r.get("kind") == "intervention_drop"}
    assert drops == set(PARTS) and set(agreement) >= {"gradcam", "null_uniform"}

    table = pq.read_table(out / "per_sample.parquet").to_pydict()
    logits = list(zip(table["logit_non_qr"], table["logit_qr"], strict=True))
    rows = datasets.load_dataset(str(root), "interventions")["test"]
    pairs = dict(zip(rows["id"], zip(rows["intervention"], rows["pair_id"], strict=True), strict=True))
    picked = [i for i, m in enumerate(table["method"]) if m == "gradcam"]
    by_pair: dict[str, dict[str, int]] = {}
    for i in picked:
        intervention, pair = pairs[table["id"][i]]
        by_pair.setdefault(pair, {})[intervention] = i
    rhos = []
    for group in by_pair.values():
        o = group["none"]
        c = int(np.argmax(logits[o]))
        parts = [p for p in PARTS if p in group]
        mass = [table[f"mass_{p}"][o] for p in parts]
        drop = [logits[o][c] - logits[group[p]][c] for p in parts]
        if np.ptp(mass) > 0 and np.ptp(drop) > 0:
            rhos.append(scipy.stats.spearmanr(mass, drop).statistic)
    assert agreement["gradcam"]["n"] == len(rhos) == len(by_pair) - agreement["gradcam"]["n_invalid"]
    assert math.isclose(agreement["gradcam"]["mean"], float(np.mean(rhos)), abs_tol=1e-9)


def test_vit_trains_under_leakmin(tmp_path):
    """FT-LeakMin differentiates a gradient CAM (a second derivative): a timm ViT must train (fused CPU
    attention has no double backward; the harness switches it to the explicit path)."""
    root = tmp_path / "data"
    build_dataset("standard", root, num_train=8, num_test=0, image_size=64, quiet=True)
    common = {"data": str(root), "epochs": 1, "image_size": 64, "batch_size": 8, "quiet": True}
    zs = train(out=tmp_path / "zs", backbone="test_vit", pretrained="none", **common)
    model = train(out=tmp_path / "leakmin", init_from=zs, regime="ft_leakmin", **common)
    history = json.loads((model / "training.json").read_text())["history"]
    assert history[-1]["penalty"] > 0 and math.isfinite(history[-1]["loss"])


def test_leaderboard_shows_causal_agreement_and_transfer(tmp_path):
    s = summary(configs=("standard",))
    gradcam = [r for r in s["structure"] if r["method"] == "gradcam"]
    for config, shift in (("real", -0.2), ("interventions", 0.0)):
        s["structure"] += [{**r, "config": config, "mean": round(r["mean"] + shift, 4)} for r in gradcam]
    s["accuracy"] += [{"config": "real", "split": "test", "n": 127, "value": 0.6},
                      {"config": "interventions", "split": "test", "n": 60, "value": 0.7}]
    s["causal"] = [
        {"config": "standard", "split": "test", "method": "gradcam",  # occlusion (harness.causal)
         **{f"{k}_{part}": v for part in ("finder", "timing") for k, v in (("n", 10), ("mean_drop", 0.2),)},
         **{f"mean_drop_{part}_control": 0.1 for part in ("finder", "timing")},
         **{f"{k}_{mass}_drop_{part}": 0.1 for mass, part in (("fmr", "finder"), ("tmr", "timing"))
            for k in ("rho", "p")}},
        {"kind": "intervention_agreement", "config": "interventions", "split": "test", "method": "gradcam",
         "score": "causal_agreement", "n": 10, "n_invalid": 0, "mean": 0.42, "std": 0.1, "ci_low": 0.3,
         "ci_high": 0.5},
        {"kind": "intervention_drop", "config": "interventions", "split": "test", "intervention": "finder",
         "score": "logit_drop", "n": 10, "n_invalid": 0, "mean": 1.5, "std": 0.1, "ci_low": 1, "ci_high": 2},
    ]
    written = build_leaderboard([write_summary(tmp_path / "run", s)], tmp_path / "board")
    text = written["markdown"].read_text()
    assert "| test_resnet-zs | Grad-CAM | 0.420 [0.300, 0.500] |" in text
    # standard FMR of gradcam (method 0, quality 0.5) is 0.5, real 0.3; BL 0.5 -> 0.3 too (shift applies)
    transfer = "| 0.900 -> 0.600 |" + " 0.500 -> 0.300 |" * 4  # accuracy, FMR, TMR, BL, DtS
    assert f"| test_resnet-zs | Grad-CAM {transfer}" in text
    table = pq.read_table(written["parquet"]).to_pydict()
    agreement = {(c, m): v for c, m, v in zip(table["config"], table["method"], table["causal_agreement"],
                                              strict=True)}
    assert agreement[("interventions", "gradcam")] == 0.42 and agreement[("standard", "gradcam")] is None
