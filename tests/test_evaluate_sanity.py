"""`evaluate --sanity` and pytorch-grad-cam methods through the evaluation: the sanity rows of the own and
the `pgc:` methods (cascading, random logit, data randomization against a permuted-label model), their
verdicts re-derived from the estimate rows by the documented rule, a method the library cannot run on the
model reported with its reason while the others are scored, and unknown method names."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cambench_qr.dataset_builder.build import build_dataset
from cambench_qr.harness.evaluate import evaluate
from cambench_qr.harness.evaluate import main as evaluate_main
from cambench_qr.harness.train import train
from cambench_qr.results import SanityRow, Summary

RUN = ("gradcam", "pgc:scorecam", "pgc:ablationcam", "pgc:kpcacam")
FAILS = "pgc:fullgrad"  # FullGrad's bias gradients do not broadcast on timm's test_resnet
EVAL = {"batch_size": 4, "n_boot": 20, "faithfulness_samples": 1, "cross_resolution": (), "latency_batch": 2,
        "quiet": True}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("data") / "cambench"
    build_dataset("standard", root, num_train=16, num_test=10, image_size=64, quiet=True)
    return str(root)


def _train(data: str, out: Path, permute: bool) -> Path:
    return train(data=data, out=out, backbone="test_resnet", pretrained="none", epochs=1, image_size=64,
                 batch_size=8, quiet=True, permute_labels=permute)


@pytest.fixture(scope="module")
def models(data, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    return _train(data, root / "real", False), _train(data, root / "permuted", True)


@pytest.fixture(scope="module")
def summary(data, models, tmp_path_factory) -> dict:
    model, permuted = models
    out = evaluate(model=model, data=data, out=tmp_path_factory.mktemp("eval") / "res", configs=("standard",),
                   methods=(*RUN, FAILS), sanity=True, sanity_images=4, sanity_steps=2,
                   permuted_model=permuted, **EVAL)
    return json.loads((out / "summary.json").read_text())


def test_sanity_rows_for_own_and_pgc_methods(summary):
    rows = summary["sanity"]
    assert {r["kind"] for r in rows} == {"sanity"}
    verdicts = {(r["test"], r["method"]): r for r in rows if r["score"] == "verdict"}
    for test in ("cascading", "random_logit", "data"):
        for method in (*RUN, FAILS):
            assert (test, method) in verdicts
    estimates = {(r["test"], r["method"], r["step"], r["score"]): r for r in rows
                 if r["score"] not in ("verdict", "error")}
    # the cascading test has sanity_steps + 1 steps, depth 0 -> 1; 4 images per estimate
    assert [estimates[("cascading", "gradcam", s, "spearman")]["depth"] for s in range(3)] == [0.0, 0.5, 1.0]
    assert estimates[("cascading", "gradcam", 0, "spearman")]["mean"] == pytest.approx(1.0)
    assert estimates[("cascading", "pgc:scorecam", 2, "fmr")]["n"] == 4
    for (test, method), v in verdicts.items():
        if method == FAILS:
            assert v["passed"] is None
            continue
        rho, fmr = (estimates[(test, method, v["step"], s)] for s in ("spearman", "fmr"))
        # the documented rule, recomputed from the estimate rows; a missing number is undetermined
        numbers = [rho["mean"]]
        if test != "random_logit":
            numbers += [fmr["ci_low"], fmr["chance"], fmr["ci_high"]]
        checks = [(rho["mean"] if test == "random_logit" else abs(rho["mean"])) < 0.3]
        if test != "random_logit":
            checks.append(fmr["ci_low"] <= fmr["chance"] <= fmr["ci_high"])
        expected = all(checks) if all(math.isfinite(x) for x in numbers) else None
        assert v["passed"] is expected, (test, method)
    assert any(v["passed"] is not None for v in verdicts.values())
    errors = [r for r in rows if r["score"] == "error"]
    assert {r["method"] for r in errors} == {FAILS} and all("broadcast" in r["error"] for r in errors)
    loaded = Summary.from_json(summary)
    assert all(isinstance(r, SanityRow) for r in loaded.sanity)
    assert loaded.as_json()["sanity"] == json.loads(json.dumps(rows))


def test_failing_pgc_method_is_reported_while_the_others_are_scored(summary):
    assert summary["method_errors"] == [{"kind": "method_error", "method": FAILS,
                                         "error": summary["method_errors"][0]["error"]}]
    assert "broadcast" in summary["method_errors"][0]["error"]
    scored = {r["method"] for r in summary["structure"] if not r["method"].startswith("null_")}
    assert scored == set(RUN)
    fmr = [r["mean"] for r in summary["structure"] if r["method"] in RUN and r["score"] == "fmr"]
    assert len(fmr) == len(RUN) and all(math.isfinite(v) for v in fmr)
    latency = {r["method"]: r for r in summary["latency"]}
    assert latency[FAILS]["ms_per_img"] is None and "broadcast" in latency[FAILS]["error"]
    assert all(latency[m]["ms_per_img"] > 0 and "error" not in latency[m] for m in (*RUN, "all"))
    assert summary["settings"]["methods"] == [*RUN, FAILS]


def test_summary_without_sanity_still_loads(summary):
    old = {k: v for k, v in summary.items() if k not in ("sanity", "method_errors")}
    loaded = Summary.from_json(old)
    assert loaded.sanity is None and "sanity" not in loaded.as_json()


def test_unknown_method_lists_the_available_names(data, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"unknown CAM method\(s\) \['pgc:nosuch'\].*pgc:\{.*scorecam"):
        evaluate(model=tmp_path, data=data, out=tmp_path / "out", methods=("gradcam", "pgc:nosuch"))
    model = _train(data, tmp_path / "m", False)
    code = evaluate_main(["--model", str(model), "--data", data, "--out", str(tmp_path / "o"),
                          "--methods", "gradcam,nosuch", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "nosuch" in err and "kpcacam" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("settings", "message"), [
    ({"sanity": True, "permuted_model": "REAL"}, "must be a ResNet trained with --permute-labels"),
    ({"permuted_model": "PERMUTED"}, "pass --sanity too"),
    ({"sanity": True, "sanity_images": 1}, "at least 2 images"),
])
def test_bad_sanity_settings_fail_before_the_evaluation(data, models, tmp_path, settings, message):
    named = {"REAL": models[0], "PERMUTED": models[1]}
    settings = {k: named.get(v, v) if isinstance(v, str) else v for k, v in settings.items()}
    with pytest.raises(ValueError, match=message):
        evaluate(model=models[0], data=data, out=tmp_path / "out", methods=("gradcam",), **settings, **EVAL)
    assert not (tmp_path / "out").exists()


def test_cli_sanity_options(data, models, tmp_path):
    out = tmp_path / "cli"
    code = evaluate_main(["--model", str(models[0]), "--data", data, "--out", str(out), "--methods",
                          "layercam, pgc:kpcacam", "--sanity", "--sanity-images", "3", "--sanity-steps", "1",
                          "--sanity-permuted-model", str(models[1]), "--batch-size", "4", "--n-boot", "5",
                          "--faithfulness-samples", "0", "--cross-resolution", "64", "--latency-batch", "0",
                          "--quiet"])
    assert code == 0
    rows = json.loads((out / "summary.json").read_text())["sanity"]
    verdicts = {(r["test"], r["method"]) for r in rows if r["score"] == "verdict"}
    tests, methods = ("cascading", "random_logit", "data"), ("layercam", "pgc:kpcacam")
    assert verdicts == {(t, m) for t in tests for m in methods}
    assert {r["n"] for r in rows if r["score"] == "spearman"} == {3}
    assert max(r["step"] for r in rows if r["test"] == "cascading" and "step" in r) == 1
