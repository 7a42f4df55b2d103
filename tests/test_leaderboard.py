"""Leaderboard from hand-written summary.json files (tests/hub_summaries.py): values, CIs, chance, latency,
the null maps once per config and input size, the verdicts against the null maps, competence, the
headline, the accuracy breakdowns, the Pareto front, revision guards, old summaries, the report and the
command line."""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from hub_summaries import summary, with_sanity, write_summary

from cambench_qr.cli import main
from cambench_qr.hub_cards import build_leaderboard
from cambench_qr.hub_cards.figures import pareto_front
from cambench_qr.hub_cards.leaderboard import PARQUET_PATH, collect_rows
from cambench_qr.hub_cards.report import write_report
from cambench_qr.hub_cards.verdicts import best_nulls
from cambench_qr.results import StructureRow

# A: fast and good; B: slow and best; C: slower than A and worse -> dominated by A.
MODELS = {  # the first also has the paper config (mixed distortions, no severity levels)
    "A": dict(regime="zs", quality=0.5, ms=10.0),
    "B": dict(regime="ft_struct", quality=0.6, ms=20.0),
    "C": dict(regime="ft_leakmin", quality=0.45, ms=15.0),
}


@pytest.fixture
def results(tmp_path):
    configs = {"A": ("standard", "blur", "paper")}
    return [
        write_summary(
            tmp_path / "runs" / name, summary(**spec, configs=configs.get(name, ("standard", "blur")))
        )
        for name, spec in MODELS.items()
    ]


def test_pareto_front_hand_computed():
    points = [
        {"ms_per_img": ms, "fmr": s, "bl": 1 - s}
        for ms, s in [(1.0, 0.5), (2.0, 0.4), (3.0, 0.7), (3.0, 0.6), (0.5, 0.1)]
    ]
    assert pareto_front(points, "fmr") == [4, 0, 2]  # (2, .4) is beaten by (1, .5); (3, .6) by (3, .7)
    assert pareto_front(points, "bl") == [4, 0, 2]  # lower-is-better score: same front for 1 - s
    assert pareto_front(points[:1] * 2, "fmr") == [0, 1]  # equal points do not dominate each other


def test_leaderboard_table_values(results, tmp_path):
    out = tmp_path / "board"
    written = build_leaderboard(results, out)
    assert set(written) == {"parquet", "plot", "severity", "mass", "markdown", "headline", "card"}
    rows = pq.read_table(out / PARQUET_PATH).to_pylist()
    # models x (standard: 4 CAMs + 2 null maps; blur: (4 CAMs + 1 null map) x severities 1, 3)
    # + A's paper: 4 CAMs x 2 groups
    assert len(rows) == 3 * (6 + 10) + 8
    row = next(
        r for r in rows if r["regime"] == "zs" and r["method"] == "layercam" and r["config"] == "standard"
    )
    assert (row["fmr"], row["fmr_ci_low"], row["fmr_ci_high"], row["fmr_chance"]) == (0.52, 0.47, 0.57, 0.25)
    assert (row["bl"], row["dts_chance"], row["accuracy"], row["ms_per_img"]) == (0.48, 0.3, 0.9, 12.0)
    blur = next(
        r for r in rows if r["regime"] == "ft_struct" and r["method"] == "gradcam" and r["severity"] == 3
    )
    assert blur["fmr"] == pytest.approx(0.3) and blur["accuracy"] == pytest.approx(0.85)

    text = (out / "leaderboard.md").read_text()
    standard = text.split("### standard")[1].split("###")[0].splitlines()
    assert standard[4].startswith(
        "| test_resnet-ft_struct | test_resnet | ft_struct | EigenGrad-CAM | 0.900 | 0.630 [0.580, 0.680]"
    )  # best FMR first
    assert standard[4].endswith("| 23.0 | 20 (1) |")  # ms/img, maps (NaN FMR maps)
    assert standard[15].startswith("| test_resnet-ft_leakmin | test_resnet | ft_leakmin | Grad-CAM | 0.900")
    assert standard[16].startswith("| chance (uniform map) |") and "0.300" in standard[16]
    # the null maps once, from the first model by name (ft_leakmin: quality 0.45, uniform = index 4)
    assert "Null maps at 64 px input" in standard[18] and "values from test_resnet-ft_leakmin" in standard[18]
    assert standard[22].startswith("| null: edge | 0.500 [0.450, 0.550] |")  # best FMR first
    assert standard[23].startswith("| null: uniform | 0.490 [0.440, 0.540] |")
    assert sum("null:" in line for line in standard) == 2
    assert "### paper\n\n2 distortion groups without severity levels" in text
    assert (
        "| test_resnet-zs | LayerCAM | 0.420 [0.370, 0.470] | 0.220 [0.170, 0.270] |" in text
    )  # by severity
    blur = text.split("### blur: FMR")[1].split("###")[0]
    assert blur.count("null: uniform") == 1
    assert "| null maps (64 px) | null: uniform | 0.390 [0.340, 0.440] | 0.190 [0.140, 0.240] |" in blur
    front = text.split("Pareto front: ")[1].splitlines()[0]
    assert "test_resnet-ft_leakmin" not in front and front.count("test_resnet-zs") == 4

    plot = cv2.imdecode(np.frombuffer((out / "leaderboard.png").read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert plot is not None and min(plot.shape[:2]) > 300  # the figures themselves: tests/test_figures.py
    for stem in ("leaderboard", "leaderboard-severity", "leaderboard-mass"):
        assert "<svg" in (out / f"{stem}.svg").read_text() and f"({stem}.png)" in text

    from datasets import load_dataset

    assert load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache")).num_rows == len(rows)


def test_mixed_revisions_are_an_error_unless_kept_apart(tmp_path):
    old = write_summary(tmp_path / "old", summary(package_version="0.1.0", revision="rev-a"))
    new = write_summary(
        tmp_path / "new", summary(package_version="0.2.0", revision="rev-b", regime="ft_struct")
    )
    with pytest.raises(ValueError, match="mix 2 revisions.*--by-revision"):
        collect_rows([old, new])
    written = build_leaderboard([old, new], tmp_path / "board", by_revision=True)
    assert {"plot-0.1.0-rev-a", "plot-0.2.0-rev-b", "mass-0.2.0-rev-b"} <= set(written)
    text = (tmp_path / "board" / "leaderboard.md").read_text()
    assert text.count("\n## cambench-qr ") == 2
    section = text.split("## cambench-qr 0.2.0")[1]
    assert "test_resnet-ft_struct" in section and "test_resnet-zs" not in section


def test_duplicate_rows_are_an_error(tmp_path):
    first = write_summary(tmp_path / "a", summary())
    second = write_summary(tmp_path / "b", summary())
    with pytest.raises(ValueError, match="both report test_resnet-zs"):
        collect_rows([first, second])


def test_cli_leaderboard_and_its_errors(results, tmp_path, capsys):
    assert main(["leaderboard", "--results", str(tmp_path / "runs"), "--out", str(tmp_path / "o")]) == 0
    assert "markdown: " in capsys.readouterr().out
    future = write_summary(tmp_path / "future", summary(schema_version=2))
    assert main(["leaderboard", "--results", str(future), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "schema_version 2" in err
    assert not (tmp_path / "o2").exists()
    assert main(["leaderboard", "--results", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_best_null_follows_each_scores_direction():
    def row(method: str, score: str, mean: float) -> StructureRow:
        return StructureRow(
            config="standard",
            split="test",
            distortion="none",
            severity=0,
            method=method,
            score=score,
            n=20,
            mean=mean,
        )

    structure = [
        row("null_uniform", "fmr", 0.2),
        row("null_edge", "fmr", 0.3),
        row("null_centre", "fmr", 0.1),
        row("null_uniform", "bl", 0.5),
        row("null_edge", "bl", 0.6),
        row("null_centre", "bl", 0.4),
        row("null_uniform", "dts", 0.2),
        row("null_edge", "dts", float("nan")),
        row("gradcam", "dts", 0.0),
    ]  # higher FMR is better, lower BL / DtS; NaN means and CAM rows never win
    assert best_nulls(structure) == {
        ("standard", "test", "none", 0, "fmr"): "null_edge",
        ("standard", "test", "none", 0, "bl"): "null_centre",
        ("standard", "test", "none", 0, "dts"): "null_uniform",
    }


def _with_causal(payload: dict) -> dict:
    """`payload` with Grad-CAM's clean rows copied to the interventions config and its causal agreement."""
    gradcam = [r for r in payload["structure"] if r["method"] == "gradcam" and r["config"] == "standard"]
    payload["structure"] += [{**r, "config": "interventions"} for r in gradcam]
    payload["causal"] = [
        {
            "kind": "intervention_agreement",
            "config": "interventions",
            "split": "test",
            "method": "gradcam",
            "score": "causal_agreement",
            "n": 10,
            "n_invalid": 0,
            "mean": 0.42,
            "std": 0.1,
            "ci_low": 0.3,
            "ci_high": 0.5,
        }
    ]
    return payload


def test_verdicts_competence_headline_accuracy_and_report(tmp_path):
    results = [
        write_summary(tmp_path / "A", _with_causal(summary(regime="zs"))),
        write_summary(tmp_path / "B", summary(regime="ft_struct", quality=0.6)),
        write_summary(tmp_path / "C", summary(regime="ft_leakmin", quality=0.45, accuracy=0.6)),
    ]
    out = tmp_path / "board"
    written = build_leaderboard(results, out)
    rows = pq.read_table(written["parquet"]).to_pylist()
    key = {(r["model"], r["method"], r["config"], r["severity"]): r for r in rows}
    layercam = key[("test_resnet-zs", "layercam", "standard", 0)]  # method index 2
    assert (layercam["fmr_vs_uniform"], layercam["bl_vs_uniform"]) == ("indistinguishable",) * 2
    assert (layercam["dts_best_null"], layercam["dts_vs_best_null"]) == ("null_edge", "worse")
    gradcam = key[("test_resnet-zs", "gradcam", "standard", 0)]  # method index 0
    assert (gradcam["tmr_vs_uniform"], gradcam["fmr_vs_best_null"]) == ("better", "indistinguishable")
    assert key[("test_resnet-zs", "null_edge", "standard", 0)]["fmr_vs_uniform"] is None
    assert key[("test_resnet-zs", "gradcam", "blur", 1)]["fmr_vs_uniform"] is None  # no vs_null rows there
    assert layercam["cam_grid"] == [2, 2] and layercam["competence_floor"] == 0.9
    assert {r["model"]: r["competent"] for r in rows} == {
        "test_resnet-zs": True,
        "test_resnet-ft_struct": True,
        "test_resnet-ft_leakmin": False,
    }

    text = written["markdown"].read_text()
    verdicts = text.split("CAMs against the null maps")[1].split("###")[0]
    assert (
        "| test_resnet-zs | LayerCAM | ≈ | worse (edge) | ≈ | worse (edge) | ≈ | worse (edge) |" in verdicts
    )
    assert "| test_resnet-ft_leakmin (not competent) | EigenGrad-CAM | worse | worse (edge) |" in verdicts
    clean = text.split("### standard (clean")[1].split("###")[0]
    assert clean.count("test_resnet-ft_leakmin (not competent) |") == 4 and "ft_struct (not" not in clean
    negatives = text.split("### accuracy by negative kind")[1].split("###")[0]
    assert "| model | config | finderless_qr | qr_clutter |" in negatives
    assert "| test_resnet-zs | standard | 0.700 (10) | 1.000 (10) |" in negatives
    bands = text.split("### accuracy by QR version band")[1].split("###")[0]
    assert "| model | config | 1-3 | 4-6 | 7-10 |" in bands
    assert "| test_resnet-ft_leakmin (not competent) | blur | 1.000 (8) | 0.500 (6) | 0.750 (6) |" in bands
    severity = text.split("### accuracy by distortion severity: blur")[1].split("###")[0]
    assert "| test_resnet-ft_struct | blur | 0.800 (20) | 0.600 (20) |" in severity
    assert "distortion severity: standard" not in text  # clean only: the per-config accuracy already

    headline = written["headline"].read_text()
    table = [line for line in headline.splitlines() if line.startswith("| test_resnet")]
    assert len(table) == 2 * 4 and not any("ft_leakmin" in line for line in table)
    assert (
        "| test_resnet-zs | test_resnet | zs | 0.900 | 2×2 | Grad-CAM | – | 0.500 [0.450, 0.550] | "
        "0.500 [0.450, 0.550] | 0.500 [0.450, 0.550] | better, better, better | "
        "≈ (edge), ≈ (edge), ≈ (edge) | 0.420 [0.300, 0.500] |" in table
    )
    assert table[-1].startswith(
        "| test_resnet-zs | test_resnet | zs | 0.900 | 2×2 | Grad-CAM | – |"
    )  # worst last (– : no sanity checks were run)
    assert table[0].endswith("| worse, worse, worse | worse (edge), worse (edge), worse (edge) | – |")
    assert headline.splitlines()[-1] == (
        "Left out as not competent (accuracy on clean `standard` below 0.90): test_resnet-ft_leakmin (0.600)."
    )
    card = written["card"].read_text()
    assert card.index("## Headline") < card.index("## cambench-qr 0.1.0") < card.index("### standard (clean")

    index = write_report(tmp_path / "report", out, {"test_resnet-zs": b"png"}, ["somewhere"]).read_text()
    assert index.startswith("# CAMBench-QR run report\n\n## Headline\n")
    assert index.index("Left out as not competent") < index.index("### standard (clean")
    assert (
        "### accuracy by QR version band" in index
        and "![test_resnet-zs](gallery-test_resnet-zs.png)" in index
    )
    assert (tmp_path / "report" / "leaderboard.png").is_file()


def test_summaries_without_the_new_fields_still_load(tmp_path):
    old = [
        write_summary(tmp_path / "A", summary(legacy=True)),
        write_summary(tmp_path / "C", summary(regime="ft_leakmin", accuracy=0.85, legacy=True)),
    ]
    written = build_leaderboard(old, tmp_path / "board")
    rows = pq.read_table(written["parquet"]).to_pylist()
    assert {r["model"]: r["competent"] for r in rows} == {
        "test_resnet-zs": True,
        "test_resnet-ft_leakmin": False,
    }
    assert all(r["cam_grid"] is None and "fmr_vs_uniform" not in r for r in rows)
    text = written["markdown"].read_text()
    assert "against the null maps" not in text and "### accuracy by" not in text
    headline = written["headline"].read_text()
    assert "| test_resnet-zs | test_resnet | zs | 0.900 | – | Grad-CAM |" in headline
    assert "| –, –, – | –, –, – | – |" in headline
    assert "test_resnet-ft_leakmin (0.850)." in headline


def test_null_maps_once_per_input_size(tmp_path):
    small = summary(regime="zs", configs=("standard",))
    large = summary(regime="ft_struct", configs=("standard",))
    large["model"]["image_size"] = 96
    text = build_leaderboard(
        [write_summary(tmp_path / "small", small), write_summary(tmp_path / "large", large)],
        tmp_path / "board",
    )["markdown"].read_text()
    clean = text.split("### standard (clean")[1].split("###")[0]
    assert clean.count("Null maps at") == 2 and clean.count("| null: uniform |") == 2
    assert "Null maps at 64 px input" in clean and "values from test_resnet-zs" in clean
    assert "Null maps at 96 px input" in clean and "values from test_resnet-ft_struct" in clean


def test_headline_without_a_competent_model(tmp_path):
    weak = write_summary(tmp_path / "weak", summary(accuracy=0.5, configs=("standard",)))
    headline = build_leaderboard([weak], tmp_path / "board")["headline"].read_text().splitlines()
    assert "No competent model." in headline and not any(
        line.startswith("| test_resnet") for line in headline
    )
    assert headline[-1].endswith("below 0.90): test_resnet-zs (0.500).")


def test_leaderboard_never_overwrites_a_folder_it_did_not_write(results, tmp_path, capsys):
    dataset = tmp_path / "dataset"  # a dataset repo folder: its card declares the configs
    (dataset / "data" / "standard").mkdir(parents=True)
    card = "---\npretty_name: CAMBench-QR\nconfigs:\n- config_name: standard\n---\n# CAMBench-QR\n"
    (dataset / "README.md").write_text(card)
    project = tmp_path / "project"  # a folder with a README without a card header
    project.mkdir()
    (project / "README.md").write_text("# my project\n")
    (project / "notes.txt").write_text("keep me\n")
    unreadable = tmp_path / "binary"
    unreadable.mkdir()
    (unreadable / "README.md").write_bytes(b"---\n\xff\xfe\x00---\n")
    for folder in (dataset, project, unreadable):
        before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        with pytest.raises(ValueError, match="not overwriting"):
            build_leaderboard(results, folder)
        assert main(["leaderboard", "--results", *map(str, results), "--out", str(folder)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(folder) in err
        assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    empty = tmp_path / "empty"
    empty.mkdir()
    build_leaderboard(results, empty)
    build_leaderboard(results[:1], empty)  # our own leaderboard folder is rebuilt
    assert pq.read_table(empty / PARQUET_PATH).num_rows < 3 * (6 + 10) + 8


def test_sanity_table_headline_column_and_figure(tmp_path):
    results = [write_summary(tmp_path / "A", with_sanity(summary(regime="zs"))),
               write_summary(tmp_path / "B", summary(regime="ft_struct", quality=0.6))]
    plain = build_leaderboard([results[1]], tmp_path / "plain")
    out = tmp_path / "board"
    written = build_leaderboard(results, out)
    rows = pq.read_table(written["parquet"]).to_pylist()
    # the model without sanity rows has the same rows either way, with passes_sanity None
    alone = pq.read_table(plain["parquet"]).to_pylist()
    assert alone == [r for r in rows if r["model"] == "test_resnet-ft_struct"]
    assert {r["passes_sanity"] for r in alone} == {None}
    marks = {(r["model"], r["method"]): r["passes_sanity"] for r in rows if r["config"] == "standard"}
    # SANITY_VERDICTS: gradcam passes both tests, xgradcam fails cascading, layercam and eigengradcam
    # have an undetermined test; null maps and a model without sanity rows get no mark
    assert [marks[("test_resnet-zs", m)] for m in ("gradcam", "xgradcam", "layercam", "eigengradcam")] == [
        "yes", "no", "undetermined", "undetermined"]
    assert marks[("test_resnet-zs", "null_edge")] is None

    headline = written["headline"].read_text()
    assert "| model | backbone | regime | accuracy | CAM grid | method | passes sanity | FMR ↑ |" in headline
    assert "| test_resnet-zs | test_resnet | zs | 0.900 | 2×2 | XGrad-CAM | no | " in headline
    assert "| test_resnet-ft_struct | test_resnet | ft_struct | 0.900 | 2×2 | Grad-CAM | – | " in headline

    text = written["markdown"].read_text()
    sanity = text.split("### Sanity checks")[1]
    assert "#### test_resnet-zs" in sanity and "test_resnet-ft_struct" not in sanity
    # gradcam, cascading, last step: depth 1, rho 0.1 [0.05, 0.15], FMR 0.3 [0.25, 0.35], chance 0.25
    fmr = "0.300 [0.250, 0.350] | 0.250"
    assert f"| gradcam | cascading | 1.00 | 0.100 [0.050, 0.150] | {fmr} | pass |" in sanity
    assert f"| xgradcam | cascading | 1.00 | 0.600 [0.550, 0.650] | {fmr} | FAIL |" in sanity
    assert "| eigengradcam | cascading | - | error: ValueError: cannot run | | | undetermined |" in sanity
    figure = out / "leaderboard-sanity-test_resnet-zs.png"
    assert written["leaderboard-sanity-test_resnet-zs"] == figure and figure.with_suffix(".svg").is_file()
    assert cv2.imread(str(figure)) is not None
    assert "![sanity checks of test_resnet-zs" in sanity

    index = write_report(tmp_path / "report", out, {}, []).read_text()
    assert "### Sanity checks" in index and "| gradcam | cascading |" in index
    figures = index.split("## Figures")[1]
    assert "(leaderboard-sanity-test_resnet-zs.png)" in figures
    assert (tmp_path / "report" / "leaderboard-sanity-test_resnet-zs.svg").is_file()
