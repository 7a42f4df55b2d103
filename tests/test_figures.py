"""The matplotlib figures (hub_cards.figures) and the HTML report renderer (hub_cards.html_report), checked
against hand-computed values: what each figure plots is read back from its matplotlib artists."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hub_summaries import structure_mean

from cambench_qr.hub_cards.figures import (
    pareto_figure,
    region_mass_figure,
    region_masses,
    severity_figure,
    write_figures,
)
from cambench_qr.hub_cards.html_report import markdown_to_html


def point(model: str, method: str, ms: float, fmr: float, ci: float | None = 0.05, **extra) -> dict:
    low, high = (fmr - ci, fmr + ci) if ci is not None else (math.nan, math.nan)
    return {"model": model, "method": method, "ms_per_img": ms, "fmr": fmr, "fmr_ci_low": low,
            "fmr_ci_high": high, "fmr_chance": 0.25, **extra}


POINTS = [
    point("a", "gradcam", 1.0, 0.5),
    point("a", "layercam", 2.0, 0.4),  # beaten by (1, .5)
    point("b", "gradcam", 3.0, 0.7, ci=None),  # no CI: no error bar
    point("b", "layercam", 3.0, 0.6),  # beaten by (3, .7)
    point("c", "gradcam", 0.5, 0.2, fmr_chance=0.35),
]


def _line(ax, label: str):
    [line] = [line for line in ax.get_lines() if line.get_label() == label]
    return line


def test_pareto_figure_plots_the_front_the_cis_and_the_chance_line():
    ax = pareto_figure(POINTS, "fmr", title="rev").axes[0]
    front = _line(ax, "Pareto front")
    assert list(front.get_xdata()) == [0.5, 1.0, 3.0] and list(front.get_ydata()) == [0.2, 0.5, 0.7]
    chance = _line(ax, "chance (uniform map)")
    assert list(chance.get_ydata()) == pytest.approx([0.27, 0.27])  # mean of 0.25 x 4 and 0.35
    # one error bar per point, 2 x 0.05 long, none for the point without a CI
    segments = [seg for c in ax.collections for seg in c.get_segments()]
    lengths = sorted(round(float(abs(s[1][1] - s[0][1])), 6) for s in segments)
    assert lengths == [0.0, 0.1, 0.1, 0.1, 0.1]
    ticks = [t for t in ax.get_xticks() if 0 <= t <= ax.get_xlim()[1]]
    steps = set(np.round(np.diff(ticks), 9))
    assert len(steps) == 1 and steps.pop() in (0.5, 1.0)  # readable ticks: a round step
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"Grad-CAM", "LayerCAM", "a", "b", "c"}
    with pytest.raises(ValueError, match="finite latency and score"):
        pareto_figure([point("a", "gradcam", math.nan, 0.5)], "fmr")


def test_severity_figure_has_one_panel_per_model_and_family(results_rows):
    fig = severity_figure(results_rows)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["test_resnet-ft\nblur", "test_resnet-zs\nblur"]
    # test_resnet-zs (quality 0.5): Grad-CAM (method 0) at severity s scores 0.5 - 0.1 s
    line = _line(panels[1], "Grad-CAM")
    assert list(line.get_xdata()) == [1, 3]
    assert list(line.get_ydata()) == [structure_mean(0.4, 0, "fmr"), structure_mean(0.2, 0, "fmr")]
    with pytest.raises(ValueError, match="no graded distortion rows"):
        severity_figure([r for r in results_rows if r["distortion"] == "none"])


def test_region_masses_and_their_bars():
    assert region_masses({"fmr": 0.5, "tmr": 0.2, "bl": 0.2}) == pytest.approx((0.5, 0.2, 0.1, 0.2))
    assert region_masses({"fmr": 0.5, "tmr": 0.3, "bl": 0.3}) == pytest.approx((0.5, 0.3, 0.0, 0.3))
    assert region_masses({"fmr": 0.5, "tmr": math.nan, "bl": 0.2}) is None
    clean = {"config": "standard", "distortion": "none", "severity": 0}
    rows = [
        {"model": "m", "method": "gradcam", "fmr": 0.5, "tmr": 0.2, "bl": 0.2, **clean},
        {"model": "m", "method": "null_uniform", "fmr": 0.1, "tmr": 0.05, "bl": 0.6, **clean},
        {"model": "m", "method": "gradcam", "fmr": 0.9, "tmr": 0.0, "bl": 0.0, **clean, "config": "blur"},
    ]
    ax = region_mass_figure(rows).axes[0]
    heights = [round(p.get_height(), 6) for p in ax.patches]  # region by region, a bar per method
    assert heights == [0.5, 0.1, 0.2, 0.05, 0.1, 0.25, 0.2, 0.6]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Grad-CAM", "null: uniform"]


def test_write_figures_writes_png_and_svg_of_what_has_data(tmp_path, results_rows):
    clean = [r for r in results_rows if r["distortion"] == "none"]
    written = write_figures(POINTS, clean, tmp_path / "out", "board", "rev")
    assert [f.name for f in written] == ["plot", "mass"]  # no graded rows: no severity figure
    for f in written:
        assert f.png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and "<svg" in f.svg.read_text()
    names = ["board-mass.png", "board-mass.svg", "board.png", "board.svg"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names


@pytest.fixture
def results_rows(tmp_path):
    from hub_summaries import summary, write_summary

    from cambench_qr.hub_cards.leaderboard import collect_rows

    for regime, quality in (("zs", 0.5), ("ft", 0.6)):
        write_summary(tmp_path / regime, summary(regime=regime, quality=quality))
    return collect_rows([tmp_path])


def test_markdown_to_html_renders_the_report_constructs(tmp_path):
    (tmp_path / "plot.png").write_bytes(b"\x89PNG-bytes")
    text = "\n".join([
        "# Title <1>",
        "",
        "A paragraph with `code` and **bold**",
        "over two lines; a [link](https://x.org/a).",
        "",
        "| a | b |",
        "|---|---|",
        "| 1 & 2 | `x` |",
        "",
        "![a plot](plot.png)",
        "",
        "- one",
        "- two",
        "### Three",
    ])
    assert markdown_to_html(text, tmp_path).split("\n") == [
        "<h1>Title &lt;1&gt;</h1>",
        "<p>A paragraph with <code>code</code> and <strong>bold</strong> over two lines; a "
        '<a href="https://x.org/a">link</a>.</p>',
        "<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1 &amp; 2</td>"
        "<td><code>x</code></td></tr></tbody></table>",
        '<figure><img src="data:image/png;base64,iVBORy1ieXRlcw==" alt="a plot"><figcaption>a plot'
        "</figcaption></figure>",
        "<ul><li>one</li><li>two</li></ul>",
        "<h3>Three</h3>",
    ]
    with pytest.raises(FileNotFoundError, match="refers to gone.png"):
        markdown_to_html("![x](gone.png)", tmp_path)
    with pytest.raises(ValueError, match="separator"):
        markdown_to_html("| a |\n| 1 |", tmp_path)
