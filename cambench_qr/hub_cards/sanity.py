"""The sanity-check results (``kind: "sanity"`` rows of ``harness.sanity.sanity_rows``) as a markdown table
and a matplotlib figure of similarity to the original map and FMR against randomization depth, per method
(a bare ``Figure`` rendered by the Agg and SVG backends: no pyplot, no display)."""

from __future__ import annotations

import io
import math
from pathlib import Path

from ._io import write_bytes_atomic

SIMILARITY = "spearman"  # the similarity the table, the figure and the pass/fail rule use
VERDICT_MARKS = {True: "pass", False: "FAIL", None: "undetermined"}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _sanity(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("kind") == "sanity"]


def sanity_table_markdown(rows: list[dict]) -> str:
    """One line per test and method at its last step: depth, Spearman rho (mean [95% CI]) to the
    original map, FMR (mean [95% CI]), chance FMR and the verdict (pass / FAIL / undetermined; ``-``
    for the independent test, which has no rule). A method that could not run shows its error."""
    rows = _sanity(rows)
    if not rows:
        raise ValueError("no sanity rows to tabulate")
    lines = ["| method | test | depth | similarity (Spearman rho) | FMR [95% CI] | chance FMR | pass/fail |",
             "|---|---|---|---|---|---|---|"]
    verdicts = {(r["test"], r["method"]): r for r in rows if r["score"] == "verdict"}
    errors = {(r["test"], r["method"]): r["error"] for r in rows if r["score"] == "error"}
    last: dict[tuple[str, str], int] = {}
    for r in rows:
        if "step" in r and r["score"] not in ("verdict", "error"):
            key = (r["test"], r["method"])
            last[key] = max(last.get(key, 0), r["step"])
    final = {(r["test"], r["method"], r["score"]): r for r in rows if "step" in r
             and r["score"] in (SIMILARITY, "fmr") and r["step"] == last[(r["test"], r["method"])]}
    for test, method in dict.fromkeys((r["test"], r["method"]) for r in rows if r["score"] != "verdict"):
        if (test, method) in errors:
            lines.append(f"| {method} | {test} | - | error: {errors[(test, method)]} | | | undetermined |")
            continue
        rho, fmr = final[(test, method, SIMILARITY)], final[(test, method, "fmr")]
        verdict = verdicts.get((test, method))
        mark = "-" if verdict is None else VERDICT_MARKS[verdict["passed"]]
        lines.append(
            f"| {method} | {test} | {_fmt(rho['depth'], 2)} | {_fmt(rho['mean'])} "
            f"[{_fmt(rho['ci_low'])}, {_fmt(rho['ci_high'])}] | {_fmt(fmr['mean'])} "
            f"[{_fmt(fmr['ci_low'])}, {_fmt(fmr['ci_high'])}] | {_fmt(fmr.get('chance'))} | {mark} |")
    return "\n".join(lines) + "\n"


def sanity_figure(rows: list[dict], out: str | Path, test: str = "cascading") -> tuple[Path, Path]:
    """Write ``out`` with ``.png`` and ``.svg`` suffixes: for ``test``, the mean Spearman rho to the
    original map (left) and the mean FMR with its 95% CI band and the mean chance FMR dashed (right)
    against the share of blocks randomized, one line per method with a finite value (a method that could
    not run is only in the table). Returns the two paths."""
    from matplotlib.figure import Figure  # no pyplot: saved through the Agg / SVG canvases, no display

    chosen = [r for r in _sanity(rows) if r["test"] == test and r["score"] in (SIMILARITY, "fmr")]
    if not chosen:
        raise ValueError(f"no {test!r} sanity rows to plot")
    figure = Figure(figsize=(10, 4), layout="constrained")
    left, right = figure.subplots(1, 2)
    # a method without a single finite value (one that could not run) is in the table, not in the figure
    for method in dict.fromkeys(r["method"] for r in chosen if math.isfinite(r["mean"])):
        for axis, score in ((left, SIMILARITY), (right, "fmr")):
            series = sorted((r for r in chosen if r["method"] == method and r["score"] == score),
                            key=lambda r: r["depth"])
            depth = [r["depth"] for r in series]
            (line,) = axis.plot(depth, [r["mean"] for r in series], marker="o", label=method)
            axis.fill_between(depth, [r["ci_low"] for r in series], [r["ci_high"] for r in series],
                              color=line.get_color(), alpha=0.15)
            if score == "fmr":
                axis.plot(depth, [r["chance"] for r in series], linestyle="--", color=line.get_color(),
                          alpha=0.6)
    left.set(xlabel="share of blocks randomized (top-down)", ylabel="Spearman rho to the original map",
             title=f"{test}: similarity (lower = sane)")
    left.axhline(0.0, color="grey", linewidth=0.5)
    right.set(xlabel="share of blocks randomized (top-down)", ylabel="FMR (finder mass ratio)",
              title=f"{test}: FMR, 95% CI; dashed = chance")
    left.legend(fontsize="small")
    out = Path(out)
    paths = []
    for suffix in (".png", ".svg"):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=suffix[1:], dpi=120)
        paths.append(write_bytes_atomic(out.with_suffix(suffix), buffer.getvalue()))
    return paths[0], paths[1]
