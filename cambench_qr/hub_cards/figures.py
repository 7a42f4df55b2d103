"""The leaderboard's figures, drawn with matplotlib and written as PNG and SVG side by side.

- the Pareto plot: the plot score (FMR) of each (model, CAM method) against its latency, with 95% CI bars,
  the chance line (mean value of a uniform map) and the Pareto front (no other point is both faster and
  better);
- severity curves: the plot score by distortion severity, one panel per (model, distortion family), one
  line per method (null maps dashed), with 95% CI bands and the chance line;
- region mass: per model, one stacked bar per method of where its sum-normalised map mass lies on clean
  images: finder (FMR), timing (TMR), outside the symbol box (BL) and the rest of the symbol box
  (1 - FMR - TMR - BL, clipped at 0 because the three means may be over different valid maps).

Figures are built on `matplotlib.figure.Figure` with the Agg canvas, never through pyplot, so nothing
global (backend, open figures) is touched.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..harness.accuracy import headline_config
from ._io import write_bytes_atomic
from .scores import (
    PLOT_SCORE,
    higher_is_better,
    is_clean,
    is_graded,
    is_null_baseline,
    method_label,
    score_label,
)

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<")
FRONT_COLOUR = "#c00000"
CHANCE_COLOUR = "#777777"
# (label, colour) of the region-mass stack, bottom to top
REGIONS = (
    ("finder (FMR)", "#d62728"),
    ("timing (TMR)", "#ff7f0e"),
    ("rest of symbol", "#9ecae1"),
    ("outside symbol (BL)", "#bbbbbb"),
)


@dataclass(frozen=True)
class FigureFiles:
    """One written figure: its name in the leaderboard's outputs, its caption and its two files."""

    name: str
    caption: str
    png: Path
    svg: Path


def pareto_front(points: list[dict], score: str) -> list[int]:
    """Indices of the points no other point dominates, in order of latency. q dominates p when
    q.ms_per_img <= p.ms_per_img and q's score is at least as good (higher, or lower for a
    lower-is-better score), one of them strictly."""
    sign = 1.0 if higher_is_better(score) else -1.0

    def dominates(q: dict, p: dict) -> bool:
        q_ms, p_ms, q_s, p_s = q["ms_per_img"], p["ms_per_img"], sign * q[score], sign * p[score]
        return q_ms <= p_ms and q_s >= p_s and (q_ms < p_ms or q_s > p_s)

    front = [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]
    return sorted(front, key=lambda i: (points[i]["ms_per_img"], -sign * points[i][score]))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _error(row: dict, score: str) -> tuple[float, float]:
    """(below, above) the mean of the row's 95% CI; (0, 0) when the bootstrap gave none."""
    mean, low, high = row[score], row.get(f"{score}_ci_low"), row.get(f"{score}_ci_high")
    if not (_finite(low) and _finite(high)):
        return 0.0, 0.0
    return max(mean - low, 0.0), max(high - mean, 0.0)


def _chance(rows: list[dict], score: str) -> float | None:
    """The mean chance value of `score` over `rows` (None when no row has one)."""
    values = [r[f"{score}_chance"] for r in rows if _finite(r.get(f"{score}_chance"))]
    return sum(values) / len(values) if values else None


def _colours(methods: list[str]) -> dict[str, str]:
    return {m: COLOURS[i % len(COLOURS)] for i, m in enumerate(dict.fromkeys(methods))}


def pareto_figure(points: list[dict], score: str = PLOT_SCORE, title: str = "") -> Figure:
    """Each point is one (model, CAM method) at (ms/img, score mean) with its 95% CI as an error bar,
    coloured by method, shaped by model; the Pareto front is joined and ringed; a dashed line marks the
    mean chance value (a uniform map)."""
    if not points or not all(_finite(p.get(score)) and _finite(p.get("ms_per_img")) for p in points):
        raise ValueError("nothing to plot: every point needs a finite latency and score")
    colours = _colours([p["method"] for p in points])
    models = list(dict.fromkeys(p["model"] for p in points))
    fig = Figure(figsize=(8.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    for p in points:
        below, above = _error(p, score)
        ax.errorbar(
            p["ms_per_img"],
            p[score],
            yerr=[[below], [above]],
            fmt=MARKERS[models.index(p["model"]) % 10],
            color=colours[p["method"]],
            markersize=7,
            capsize=3,
            linewidth=1,
        )
    front = [points[i] for i in pareto_front(points, score)]
    ax.plot(
        [p["ms_per_img"] for p in front],
        [p[score] for p in front],
        color=FRONT_COLOUR,
        linewidth=1.5,
        marker="o",
        markersize=14,
        markerfacecolor="none",
        markeredgewidth=1.5,
        label="Pareto front",
    )
    chance = _chance(points, score)
    if chance is not None:
        ax.axhline(chance, color=CHANCE_COLOUR, linestyle="--", linewidth=1, label="chance (uniform map)")
    for method, colour in colours.items():
        ax.plot([], [], "o", color=colour, label=method_label(method))
    for k, model in enumerate(models):
        ax.plot([], [], MARKERS[k % 10], color="black", markerfacecolor="none", label=model)
    ax.set_xlim(left=0, right=max(p["ms_per_img"] for p in points) * 1.15)
    ax.set_xlabel("latency (ms per image)")
    ax.set_ylabel(f"{score_label(score)} (mean, 95% CI)")
    ax.set_title(f"{score_label(score)} vs latency" + (f"\n{title}" if title else ""), fontsize=10)
    ax.grid(True, color="#e6e6e6")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    return fig


def _panel_grid(n: int, columns: int, size: tuple[float, float]) -> tuple[Figure, list]:
    rows = max(1, math.ceil(n / columns))
    columns = min(columns, n)
    fig = Figure(figsize=(size[0] * columns + 2.2, size[1] * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def severity_figure(rows: list[dict], score: str = PLOT_SCORE, title: str = "") -> Figure:
    """One panel per (model, distortion family) of the graded rows: `score` mean against severity per
    method with its 95% CI band (null maps dashed), and the panel's mean chance value dashed grey."""
    graded = [r for r in rows if is_graded(r) and _finite(r.get(score))]
    if not graded:
        raise ValueError("nothing to plot: no graded distortion rows with a finite score")
    panels: dict[tuple, list[dict]] = defaultdict(list)
    for r in graded:
        panels[(r["model"], r["distortion"])].append(r)
    colours = _colours([r["method"] for r in graded])
    fig, axes = _panel_grid(len(panels), min(4, len({d for _, d in panels})), (3.0, 2.4))
    for ax, ((model, distortion), part) in zip(axes, sorted(panels.items()), strict=True):
        for method in dict.fromkeys(r["method"] for r in part):
            line = sorted((r for r in part if r["method"] == method), key=lambda r: r["severity"])
            x = [r["severity"] for r in line]
            style = "--" if is_null_baseline(method) else "-"
            ax.plot(x, [r[score] for r in line], style, marker="o", markersize=3, color=colours[method],
                    label=method_label(method))
            errors = [_error(r, score) for r in line]
            ax.fill_between(
                x,
                [r[score] - e[0] for r, e in zip(line, errors, strict=True)],
                [r[score] + e[1] for r, e in zip(line, errors, strict=True)],
                color=colours[method],
                alpha=0.15,
                linewidth=0,
            )
        chance = _chance(part, score)
        if chance is not None:
            ax.axhline(chance, color=CHANCE_COLOUR, linestyle=":", linewidth=1)
        ax.set_title(f"{model}\n{distortion}", fontsize=8)
        ax.set_xticks(sorted({r["severity"] for r in part}))
        ax.tick_params(labelsize=7)
        ax.grid(True, color="#eeeeee")
    for ax in axes:
        if ax.get_subplotspec().is_last_row():
            ax.set_xlabel("severity", fontsize=8)
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel(score_label(score), fontsize=8)
    handles = [axes[0].plot([], [], color=c, label=method_label(m))[0] for m, c in colours.items()]
    handles.append(axes[0].plot([], [], ":", color=CHANCE_COLOUR, label="chance (uniform map)")[0])
    _legend_and_heading(fig, handles, f"{score_label(score)} by distortion severity", title)
    return fig


def region_masses(row: dict) -> tuple[float, float, float, float] | None:
    """(finder, timing, rest of symbol, outside) mass of a row's sum-normalised maps: FMR, TMR,
    max(0, 1 - FMR - TMR - BL), BL; None when one of the three means is missing."""
    fmr, tmr, bl = row.get("fmr"), row.get("tmr"), row.get("bl")
    if not (_finite(fmr) and _finite(tmr) and _finite(bl)):
        return None
    return fmr, tmr, max(0.0, 1.0 - fmr - tmr - bl), bl


def region_mass_figure(rows: list[dict], title: str = "") -> Figure:
    """One panel per model: a stacked bar per method (CAMs, then null maps; the uniform map's bar is the
    area share of each region, i.e. chance) of `region_masses` on the clean rows of the headline config
    (`standard`, else the first config with clean rows)."""
    clean = [r for r in rows if is_clean(r)]
    config = headline_config(list(dict.fromkeys(r["config"] for r in clean))) if clean else None
    bars: dict[str, list[tuple[str, tuple]]] = defaultdict(list)
    for r in sorted(clean, key=lambda r: (is_null_baseline(r["method"]), r["method"])):
        masses = region_masses(r) if r["config"] == config else None
        if masses is not None:
            bars[r["model"]].append((method_label(r["method"]), masses))
    if not bars:
        raise ValueError("nothing to plot: no clean rows with FMR, TMR and BL")
    fig, axes = _panel_grid(len(bars), 3, (3.6, 2.8))
    for ax, (model, part) in zip(axes, sorted(bars.items()), strict=True):
        labels = [label for label, _ in part]
        bottom = [0.0] * len(part)
        for k, (region, colour) in enumerate(REGIONS):
            heights = [masses[k] for _, masses in part]
            ax.bar(labels, heights, bottom=bottom, color=colour, label=region, width=0.7)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        ax.set_title(model, fontsize=9)
        ax.set_ylim(0, max(1.0, *bottom))
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        ax.tick_params(axis="y", labelsize=7)
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("share of map mass", fontsize=8)
    handles, _ = axes[0].get_legend_handles_labels()
    _legend_and_heading(fig, handles[::-1], "Where the map mass lies on clean images", title)
    return fig


def _legend_and_heading(fig: Figure, handles: list, heading: str, title: str) -> None:
    """The panel figures' shared legend (outside, right) and heading, with `title` in brackets when given."""
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle(heading + (f" ({title})" if title else ""), fontsize=10)


def figure_bytes(fig: Figure, fmt: str) -> bytes:
    """The figure encoded as `fmt` ("png" at 110 dpi, or "svg": text kept as text, fixed ids and no date,
    so the same figure gives the same bytes), through the Agg canvas."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "cambench-qr"}):
        fig.savefig(buffer, format=fmt, dpi=110, metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


def write_figure(fig: Figure, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """`out_dir/<stem>.png` and `.svg`, written atomically."""
    return tuple(
        write_bytes_atomic(Path(out_dir) / f"{stem}.{fmt}", figure_bytes(fig, fmt)) for fmt in ("png", "svg")
    )


def write_figures(
    points: list[dict], rows: list[dict], out_dir: str | Path, stem: str, title: str = ""
) -> list[FigureFiles]:
    """The figures of one revision that have data, as `<stem>.{png,svg}` (the Pareto plot of `points`),
    `<stem>-severity.*` and `<stem>-mass.*` (of `rows`) in `out_dir`."""
    plan = [
        (
            "plot",
            stem,
            f"{score_label(PLOT_SCORE)} vs latency",
            bool(points),
            lambda: pareto_figure(points, PLOT_SCORE, title),
        ),
        (
            "severity",
            f"{stem}-severity",
            f"{score_label(PLOT_SCORE)} by distortion severity",
            any(is_graded(r) and _finite(r.get(PLOT_SCORE)) for r in rows),
            lambda: severity_figure(rows),
        ),
        (
            "mass",
            f"{stem}-mass",
            "where the map mass lies on clean images",
            any(is_clean(r) and region_masses(r) for r in rows),
            lambda: region_mass_figure(rows),
        ),
    ]
    written = []
    for name, file_stem, caption, has_data, draw in plan:
        if has_data:
            png, svg = write_figure(draw(), Path(out_dir), file_stem)
            written.append(FigureFiles(name, caption, png, svg))
    return written
