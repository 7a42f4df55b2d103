"""Hand-written harness results in the summary.json shape, for the cards and leaderboard tests.

Values are chosen by hand so the tests can compute what the leaderboard must show: for a model with
`quality` q, every structure mean of method index m at severity s is q - 0.1*s + 0.01*m (BL, AUC-BG, DtS:
1 - that), and its latency is `ms` + m milliseconds per image. The clean `standard` rows also hold two
null maps (uniform: index 4, edge: index 5, so the edge map is the best null map of every score), the
`blur` rows the uniform map.

`vs_null` rows (FMR, TMR, BL, DtS on every CAM row): against the uniform map the verdict of method index
m is `UNIFORM_VERDICTS[m]`, against the edge map `EDGE_VERDICTS[m]`, with a mean difference of +-0.1 (0
for indistinguishable) on the score's good (bad) side and a CI of +-0.05 around it. Accuracy rows by
group: `NEGATIVE_ACCURACY`, `BAND_ACCURACY` and, per graded severity s, 0.9 - 0.1 * s. `legacy=True`
leaves out everything a summary written before these fields existed lacks.

`with_sanity` adds a `sanity` section by hand: per method a cascading test over depths 0, 0.5, 1 with
Spearman rho 1, 0.5, `SANITY_RHO[m]` and FMR 0.5, 0.4, 0.3 [CI +-0.05] (chance 0.25), and verdicts of the
cascading and random-logit tests `SANITY_VERDICTS[m]`; eigengradcam could not run (an error row, its
verdicts undetermined).
"""

from __future__ import annotations

import json
from pathlib import Path

METHODS = ("gradcam", "xgradcam", "layercam", "eigengradcam")
SCORES = ("fmr", "tmr", "bl", "auc_misf", "auc_mist", "auc_bg", "dts")
NULLS = ("null_uniform", "null_edge")
VS_NULL_SCORES = ("fmr", "tmr", "bl", "dts")
UNIFORM_VERDICTS = ("better", "better", "indistinguishable", "worse")
EDGE_VERDICTS = ("indistinguishable", "worse", "worse", "worse")
NEGATIVE_ACCURACY = {"finderless_qr": (10, 0.7), "qr_clutter": (10, 1.0)}  # kind -> (n, accuracy)
BAND_ACCURACY = {"1-3": (8, 1.0), "4-6": (6, 0.5), "7-10": (6, 0.75)}
LOWER_IS_BETTER = ("bl", "auc_bg", "dts")
SANITY_RHO = (0.1, 0.6, 0.2, float("nan"))
SANITY_VERDICTS = ((True, True), (False, True), (True, None), (None, None))  # (cascading, random_logit)


def structure_mean(quality: float, method_index: int, score: str) -> float:
    value = round(quality + 0.01 * method_index, 4)
    return round(1 - value, 4) if score in LOWER_IS_BETTER else value


def vs_null_row(row: dict, score: str, null: str, verdict: str) -> dict:
    """A vs_null row of the structure row `row` against `null` whose verdict is `verdict`."""
    good = -1 if score in LOWER_IS_BETTER else 1
    diff = {"better": 0.1 * good, "indistinguishable": 0.0, "worse": -0.1 * good}[verdict]
    keys = ("method", "config", "split", "distortion", "severity")
    return {
        "kind": "vs_null",
        **{k: row[k] for k in keys},
        "score": score,
        "null": null,
        "n": 19,
        "diff_mean": diff,
        "ci_low": round(diff - 0.05, 4),
        "ci_high": round(diff + 0.05, 4),
        "verdict": verdict,
    }


def accuracy_groups(config: str, groups: list[tuple]) -> list[dict]:
    """Grouped accuracy rows of one config: negative kinds, version bands, distortion severities."""
    base = {"config": config, "split": "test"}
    rows = [
        {**base, "group": "negative_kind", "negative_kind": kind, "n": n, "value": value}
        for kind, (n, value) in NEGATIVE_ACCURACY.items()
    ]
    rows += [
        {**base, "group": "version_band", "version_band": band, "n": n, "value": value}
        for band, (n, value) in BAND_ACCURACY.items()
    ]
    return rows + [
        {
            **base,
            "group": "distortion",
            "distortion": d,
            "severity": s,
            "n": 20,
            "value": 0.9 - 0.1 * (s or 0),
        }
        for d, s, _ in groups
    ]


def summary(
    backbone: str = "test_resnet",
    regime: str = "zs",
    quality: float = 0.5,
    ms: float = 10.0,
    accuracy: float = 0.9,
    package_version: str = "0.1.0",
    revision: str = "rev-a",
    schema_version: int = 1,
    configs: tuple[str, ...] = ("standard", "blur"),
    legacy: bool = False,
) -> dict:
    structure, vs_null, grouped = [], [], []
    # (distortion, severity, methods) groups of each config, as the harness writes them: clean rows with
    # severity 0 (plus the null-baseline maps), graded families 1..5, the paper's mixed distortions (None).
    groups = {
        "standard": [("none", 0, (*METHODS, *NULLS))],
        "blur": [("blur", 1, (*METHODS, "null_uniform")), ("blur", 3, (*METHODS, "null_uniform"))],
        "paper": [("contrast+blur", None, METHODS), ("rotation", None, METHODS)],
    }
    for config in configs:
        grouped += accuracy_groups(config, groups[config])
        for distortion, severity, methods in groups[config]:
            for m, method in enumerate(methods):
                for score in SCORES:
                    mean = structure_mean(quality - 0.1 * (severity or 0), m, score)
                    structure.append(
                        {
                            "config": config,
                            "split": "test",
                            "method": method,
                            "distortion": distortion,
                            "severity": severity,
                            "score": score,
                            "n": 20,
                            "n_invalid": 1,
                            "mean": mean,
                            "std": 0.1,
                            "ci_low": round(mean - 0.05, 4),
                            "ci_high": round(mean + 0.05, 4),
                            "chance": 0.25 if score != "dts" else 0.3,
                        }
                    )
                    if score in VS_NULL_SCORES and method in METHODS and "null_edge" in methods:
                        vs_null += [
                            vs_null_row(structure[-1], score, "null_uniform", UNIFORM_VERDICTS[m]),
                            vs_null_row(structure[-1], score, "null_edge", EDGE_VERDICTS[m]),
                        ]
    config_accuracy = [
        {"config": c, "split": "test", "n": 40, "value": accuracy - 0.05 * i} for i, c in enumerate(configs)
    ]
    model = {
        "path": f"models/{backbone}-{regime}",
        "backbone": backbone,
        "regime": regime,
        "pretrained": None,
        "image_size": 64,
        "name": f"{backbone}-{regime}",
    }
    if not legacy:
        model.update(cam_grid=[2, 2], competent=accuracy >= 0.9, competence_floor=0.9)
    return {
        "schema_version": schema_version,
        "package_version": package_version,
        "created": "2026-11-27T05:00:00+00:00",
        "model": model,
        "data": {"path": "hub/datasets/alice/cambench-qr", "revision": revision, "configs": list(configs)},
        "hardware": {"device": "cpu", "torch": "2.14.1", "num_processes": 1, "cpu": "x86_64"},
        "accuracy": config_accuracy + ([] if legacy else grouped),
        "structure": structure,
        **({} if legacy else {"vs_null": vs_null}),
        "faithfulness": [],
        "causal": [],
        "robustness": [],
        "latency": [
            {"method": method, "batch_size": 8, "ms_per_img": ms + m, "peak_mem_mb": 100.0, "device": "cpu"}
            for m, method in enumerate(METHODS)
        ]
        + [{"method": "all", "batch_size": 8, "ms_per_img": 2 * ms, "peak_mem_mb": 100.0, "device": "cpu"}],
    }


def write_summary(folder: Path, payload: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(payload, indent=1))
    return folder


def training(backbone: str = "test_resnet", regime: str = "zs") -> dict:
    return {
        "backbone": backbone,
        "regime": regime,
        "depth": "head",
        "pretrained": None,
        "data": "hub/datasets/alice/cambench-qr",
        "config": "standard",
        "epochs": 2,
        "lr": 0.001,
        "seed": 0,
        "image_size": 64,
        "history": [{"epoch": 0, "loss": 0.7}, {"epoch": 1, "loss": 0.6}],
        "package_version": "0.1.0",
        "label_names": ["non_qr", "qr"],
    }


def with_sanity(payload: dict) -> dict:
    """`payload` with the hand-written `sanity` section described in the module docstring."""
    rows = []
    for m, method in enumerate(METHODS):
        if method == "eigengradcam":
            rows.append({"kind": "sanity", "test": "cascading", "method": method, "score": "error",
                         "error": "ValueError: cannot run"})
        steps = zip((0.0, 0.5, 1.0), (1.0, 0.5, SANITY_RHO[m]), (0.5, 0.4, 0.3), strict=True)
        for step, (depth, rho, fmr) in enumerate(steps):
            for score, mean, chance in (("spearman", rho, None), ("fmr", fmr, 0.25)):
                finite = mean == mean
                rows.append({"kind": "sanity", "test": "cascading", "method": method, "step": step,
                             "score": score, "n": 8, "n_invalid": 0 if finite else 8, "mean": mean,
                             "std": 0.1,
                             "ci_low": mean - 0.05, "ci_high": mean + 0.05, "depth": depth, "blocks": [],
                             **({} if chance is None else {"chance": chance})})
        for test, passed in zip(("cascading", "random_logit"), SANITY_VERDICTS[m], strict=True):
            rows.append({"kind": "sanity", "test": test, "method": method, "score": "verdict", "step": 2,
                         "passed": passed, "rho": SANITY_RHO[m], "fmr": 0.3, "fmr_ci": [0.25, 0.35],
                         "chance_fmr": 0.25, "n": 8, "rule": "hand-written"})
    return {**payload, "sanity": rows}
