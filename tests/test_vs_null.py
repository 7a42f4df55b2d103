"""CAM methods against the null maps (``harness.vs_null``) and the grouped accuracy rows and competence
(``harness.accuracy``): hand-computed cases, a direct numpy bootstrap, and the three verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cambench_qr.harness.accuracy import (
    COMPETENCE_FLOOR,
    accuracy_groups,
    competence_accuracy,
    is_competent,
    model_competence,
    version_band,
)
from cambench_qr.harness.vs_null import higher_is_better, paired_differences, verdict, vs_null_summary

NULLS = ("null_uniform", "null_edge")


def _columns(method: list[float], nulls: dict[str, list[float]], score: str = "fmr", ids=None) -> dict:
    """Per-sample columns of one clean config: the method `gradcam` on images a0, a1, ... and each null map
    on the same images in reverse order (so pairing must go by id, not position)."""
    ids = ids or [f"a{i}" for i in range(len(method))]
    columns = {k: [] for k in ("id", "config", "split", "method", "distortion", "severity", score)}
    for name, values, order in [
        ("gradcam", method, ids),
        *((n, v[::-1], ids[::-1]) for n, v in nulls.items()),
    ]:
        columns["id"] += order
        columns["method"] += [name] * len(order)
        columns[score] += values
    n = len(columns["id"])
    columns.update(config=["standard"] * n, split=["test"] * n, distortion=["none"] * n, severity=[0] * n)
    return columns


def test_paired_differences_by_hand():
    columns = _columns([0.5, 0.6, np.nan, 0.9], {"null_uniform": [0.2, 0.2, 0.2, np.nan]})
    pairs = paired_differences(columns, ["fmr"], ["null_uniform"])
    assert pairs["method"] == ["gradcam"] * 4 and pairs["null"] == ["null_uniform"] * 4
    assert pairs["severity"] == [0] * 4 and pairs["distortion"] == ["none"] * 4
    np.testing.assert_allclose(pairs["diff_fmr"], [0.3, 0.4, np.nan, np.nan])
    (row,) = vs_null_summary(columns, ["null_uniform"], ["fmr"], n_boot=200, seed=0)
    assert list(row) == [
        "kind",
        "method",
        "config",
        "split",
        "distortion",
        "severity",
        "score",
        "null",
        "n",
        "diff_mean",
        "ci_low",
        "ci_high",
        "verdict",
    ]
    assert (row["kind"], row["method"], row["config"], row["score"], row["null"]) == (
        "vs_null",
        "gradcam",
        "standard",
        "fmr",
        "null_uniform",
    )
    # two finite pairs, d = (0.3, 0.4): mean 0.35; every resampled mean lies in [0.3, 0.4]
    assert row["n"] == 2 and row["diff_mean"] == pytest.approx(0.35)
    assert 0.3 - 1e-12 <= row["ci_low"] <= row["ci_high"] <= 0.4 + 1e-12
    assert row["verdict"] == "better"


def test_a_missing_null_row_is_no_pair_and_a_repeated_row_is_an_error():
    columns = _columns([0.5, 0.6, 0.7], {"null_uniform": [0.1, 0.2, 0.3]})
    for key in columns:  # drop the null map's row of image a0 (the last null row)
        columns[key] = columns[key][:-1]
    pairs = paired_differences(columns, ["fmr"], ["null_uniform"])
    np.testing.assert_allclose(pairs["diff_fmr"], [np.nan, 0.4, 0.4])
    repeated = {k: v + v[:1] for k, v in columns.items()}
    with pytest.raises(ValueError, match="repeat a"):
        paired_differences(repeated, ["fmr"], ["null_uniform"])
    with pytest.raises(ValueError, match="lack bl"):
        paired_differences(columns, ["bl"], ["null_uniform"])


def test_ci_matches_a_direct_numpy_percentile_bootstrap():
    rng = np.random.default_rng(7)
    method, null = rng.normal(0.3, 0.2, 40).tolist(), rng.normal(0.25, 0.2, 40).tolist()
    seed, n_boot = 3, 500
    (row,) = vs_null_summary(
        _columns(method, {"null_edge": null}), ["null_edge"], ["fmr"], n_boot=n_boot, seed=seed
    )
    d = np.asarray(method) - np.asarray(null)
    # metrics.aggregate's resamples: default_rng([seed, group 0, score 0]), n_boot rows of n indices
    draws = np.random.default_rng([seed, 0, 0]).integers(0, len(d), size=(n_boot, len(d)))
    low, high = np.percentile(d[draws].mean(1), [2.5, 97.5])
    assert row["n"] == 40 and row["diff_mean"] == pytest.approx(d.mean(), abs=1e-12)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=1e-12)


def test_ci_agrees_with_scipy_bootstrap():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(11)
    method, null = rng.normal(0.5, 0.1, 300), rng.normal(0.4, 0.1, 300)
    (row,) = vs_null_summary(
        _columns(method.tolist(), {"null_edge": null.tolist()}), ["null_edge"], ["fmr"], n_boot=4000, seed=0
    )
    ref = scipy_stats.bootstrap(
        (method - null,),
        np.mean,
        n_resamples=4000,
        method="percentile",
        random_state=np.random.default_rng(1),
    ).confidence_interval
    width = ref.high - ref.low  # different resamples: the bounds agree to a small share of the width
    assert abs(row["ci_low"] - ref.low) < 0.1 * width and abs(row["ci_high"] - ref.high) < 0.1 * width


@pytest.mark.parametrize(
    ("score", "shift", "expected"),
    [
        ("fmr", 0.2, "better"),  # higher is better: the method's mass ratio is above the null's
        ("fmr", -0.2, "worse"),
        ("fmr", 0.0, "indistinguishable"),
        ("tmr", 0.2, "better"),
        ("bl", -0.2, "better"),  # lower is better: less leakage than the null map
        ("bl", 0.2, "worse"),
        ("dts", -0.2, "better"),
        ("dts", 0.2, "worse"),
        ("dts", 0.0, "indistinguishable"),
    ],
)
def test_the_three_verdicts_follow_each_scores_direction(score, shift, expected):
    noise = [0.05, -0.05] * 10  # a symmetric per-image difference around `shift`
    null = [0.4] * 20
    method = [0.4 + shift + e for e in noise]
    (row,) = vs_null_summary(
        _columns(method, {"null_centre": null}, score=score), ["null_centre"], [score], n_boot=300, seed=0
    )
    assert row["verdict"] == expected, row
    assert row["diff_mean"] == pytest.approx(shift, abs=1e-12)


def test_verdict_rule_and_directions():
    assert (
        higher_is_better("fmr"),
        higher_is_better("tmr"),
        higher_is_better("bl"),
        higher_is_better("dts"),
    ) == (True, True, False, False)
    with pytest.raises(ValueError, match="no better direction"):
        higher_is_better("mass_finder")
    assert verdict(0.01, 0.2, higher=True) == "better" and verdict(0.01, 0.2, higher=False) == "worse"
    assert verdict(-0.2, -0.01, higher=True) == "worse" and verdict(-0.2, -0.01, higher=False) == "better"
    assert verdict(0.0, 0.2, higher=True) == "indistinguishable"  # the CI touches 0
    assert verdict(-0.1, 0.1, higher=False) == "indistinguishable"
    assert (
        verdict(float("nan"), float("nan"), higher=True) is None and verdict(None, 0.1, higher=True) is None
    )


def test_one_pair_has_no_ci_and_no_verdict_and_rows_cover_every_group():
    columns = _columns([0.5], {"null_uniform": [0.2], "null_edge": [0.6]})
    rows = vs_null_summary(columns, NULLS, ["fmr"], n_boot=10)
    assert [(r["null"], r["n"], r["verdict"]) for r in rows] == [
        ("null_uniform", 1, None),
        ("null_edge", 1, None),
    ]
    assert all(math.isnan(r["ci_low"]) for r in rows)
    assert vs_null_summary(_columns([], {"null_uniform": []}), ["null_uniform"], ["fmr"]) == []


def test_accuracy_groups_by_hand():
    correct = np.array([1, 0, 1, 1, 0, 1, 1, 0], dtype=bool)
    meta = {
        "negative_kind": [None, "qr_clutter", "finderless_qr", None, "qr_clutter", None, None, "qr_clutter"],
        "version": [1, None, None, 11, None, 4, 3, None],
        "distortion": ["blur"] * 8,
        "severity": [1, 1, 1, 1, 2, 2, 2, 2],
    }
    rows = accuracy_groups(correct, meta)
    assert [r for r in rows if r["group"] == "negative_kind"] == [
        {"group": "negative_kind", "negative_kind": "finderless_qr", "n": 1, "value": 1.0},
        {"group": "negative_kind", "negative_kind": "qr_clutter", "n": 3, "value": 0.0},
    ]
    assert [(r["version_band"], r["n"], r["value"]) for r in rows if r["group"] == "version_band"] == [
        ("1-3", 2, 1.0),
        ("4-6", 1, 1.0),
        ("11-40", 1, 1.0),
    ]  # band order, not string order
    assert [
        (r["distortion"], r["severity"], r["n"], r["value"]) for r in rows if r["group"] == "distortion"
    ] == [("blur", 1, 4, 0.75), ("blur", 2, 4, 0.5)]
    # every image is a negative of one kind or a QR code of one version: the subsets add up
    counted = [r for r in rows if r["group"] in ("negative_kind", "version_band")]
    assert sum(r["n"] for r in counted) == len(correct)
    assert sum(r["n"] * r["value"] for r in counted) == correct.sum()
    assert [r["group"] for r in accuracy_groups(correct, {"version": meta["version"]})] == [
        "version_band"
    ] * 3


def test_version_bands():
    assert [version_band(v) for v in (None, 1, 3, 4, 6, 7, 10, 11, 40)] == [
        None,
        "1-3",
        "1-3",
        "4-6",
        "4-6",
        "7-10",
        "7-10",
        "11-40",
        "11-40",
    ]
    with pytest.raises(ValueError, match="outside 1-40"):
        version_band(41)


def test_competence_is_judged_on_standard_else_the_first_config():
    def row(config: str, value: float, **extra) -> dict:
        return {"config": config, "split": "test", "n": 10, "value": value, **extra}

    assert COMPETENCE_FLOOR == 0.90
    accuracy = [row("blur", 0.5), row("standard", 0.9), row("standard", 0.1, group="negative_kind")]
    assert competence_accuracy(accuracy)["value"] == 0.9 and is_competent(accuracy)  # the floor is included
    assert not is_competent([row("blur", 0.899), row("paper", 0.99)])
    assert not is_competent([])
    recorded = {"model": {"competent": False, "competence_floor": 0.8}, "accuracy": accuracy}
    assert model_competence(recorded) == (False, 0.8)
    assert model_competence({"model": {}, "accuracy": accuracy}) == (True, COMPETENCE_FLOOR)
