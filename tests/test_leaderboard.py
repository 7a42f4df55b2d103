"""Leaderboard from hand-written summary.json files (tests/hub_summaries.py): values, CIs, chance, latency,
the Pareto front, revision guards, and the command line."""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from hub_summaries import summary, write_summary

from cambench_qr.cli import main
from cambench_qr.hub_cards import build_leaderboard
from cambench_qr.hub_cards.leaderboard import PARQUET_PATH, collect_rows
from cambench_qr.hub_cards.plot import FRONT_COLOUR, pareto_front

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
    assert set(written) == {"parquet", "plot", "markdown", "card"}
    rows = pq.read_table(out / PARQUET_PATH).to_pylist()
    # models x (standard: 4 CAMs + 1 null map; blur: 4 CAMs x severities 1, 3) + A's paper: 4 CAMs x 2 groups
    assert len(rows) == 3 * (5 + 8) + 8
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
    assert standard[-3].startswith(
        "| test_resnet-ft_leakmin | test_resnet | ft_leakmin | null: uniform | 0.900 | 0.490"
    )
    assert standard[-2].startswith("| chance (uniform map) |") and "0.300" in standard[-2]
    assert "### paper\n\n2 distortion groups without severity levels" in text
    assert (
        "| test_resnet-zs | LayerCAM | 0.420 [0.370, 0.470] | 0.220 [0.170, 0.270] |" in text
    )  # by severity
    front = text.split("Pareto front: ")[1].splitlines()[0]
    assert "test_resnet-ft_leakmin" not in front and front.count("test_resnet-zs") == 4

    plot = cv2.imdecode(np.frombuffer((out / "leaderboard.png").read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert plot.shape == (640, 1000, 3)
    assert np.all(plot == FRONT_COLOUR, axis=-1).sum() > 100  # the front is drawn

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
    assert {"plot-0.1.0-rev-a", "plot-0.2.0-rev-b"} <= set(written)
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
