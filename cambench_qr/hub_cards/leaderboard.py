"""The leaderboard: harness `summary.json` files -> one tidy table (parquet), markdown tables and a plot.

One row per (model, CAM method, config, split, distortion, severity) with the model's accuracy on that
config/split, every structure score's mean, 95% bootstrap CI and chance value (what a uniform map
scores on the same masks), and the method's latency (ms per image at the largest measured batch).
Rows of the `interventions` config also carry the method's causal agreement (`harness.causal`); the
markdown adds a causal-agreement table and a real-photo transfer table (`standard` -> `real`) when the
results hold those configs.

Results are comparable only within one (results schema, package version, data revision): rows from
different revisions are never mixed silently. Either all inputs share one revision, or `by_revision=True`
keeps them apart (one table and one plot per revision); a summary with another schema version is an error.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ._io import write_bytes_atomic, write_text_atomic
from .plot import draw_pareto_plot, pareto_front
from .scores import (
    HEADLINE_SCORES,
    PLOT_SCORE,
    SCORE_LABELS,
    higher_is_better,
    is_clean,
    is_graded,
    is_null_baseline,
    method_label,
    score_label,
)

SCHEMA_VERSION = 1
SUMMARY_FILE = "summary.json"
PARQUET_PATH = "data/leaderboard-00000-of-00001.parquet"
KEY_COLUMNS = ("model", "method", "config", "split", "distortion", "severity")
# Causal agreement (harness.causal, higher is better) and the real-photo transfer table's configs and scores.
CAUSAL_SCORE = "causal_agreement"
TRANSFER_CONFIGS = ("standard", "real")
TRANSFER_SCORES = ("fmr", "tmr", "bl", "dts")


@dataclass(frozen=True)
class Revision:
    """What makes two results comparable: same results schema, package version and data revision."""

    schema_version: int
    package_version: str
    data_revision: str

    def label(self) -> str:
        return f"cambench-qr {self.package_version}, data {self.data_revision}, schema {self.schema_version}"

    def slug(self) -> str:
        return f"{self.package_version}-{self.data_revision}".replace("/", "_")


def find_summaries(paths: list[str | Path]) -> list[Path]:
    """The summary.json files in `paths`: each is a summary.json, an evaluation folder, or a folder
    searched recursively. A path with none is an error."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_file():
            hits = [path]
        elif (path / SUMMARY_FILE).is_file():
            hits = [path / SUMMARY_FILE]
        elif path.is_dir():
            hits = sorted(path.rglob(SUMMARY_FILE))
        else:
            raise FileNotFoundError(f"results path {path} does not exist")
        if not hits:
            raise FileNotFoundError(f"no {SUMMARY_FILE} under {path}")
        found += hits
    return sorted(set(found))


def load_summary(path: str | Path) -> dict:
    """Read one summary.json and check its schema version (one-line ValueError otherwise)."""
    path = Path(path)
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    version = summary.get("schema_version") if isinstance(summary, dict) else None
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"{path} has results schema_version {version!r}; cambench-qr {__version__} reads "
            f"schema {SCHEMA_VERSION} (re-run the evaluation with this version)"
        )
    missing = [
        k
        for k in ("package_version", "model", "data", "accuracy", "structure", "latency")
        if k not in summary
    ]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: not a cambench-qr evaluation summary")
    return summary


def summary_rows(summary: dict, source: str = "") -> list[dict]:
    """Leaderboard rows of one summary (see the module docstring)."""
    model = summary["model"]
    name = model.get("name") or f"{model['backbone']}-{model['regime']}"
    accuracy = {(r["config"], r["split"]): r["value"] for r in summary["accuracy"]}
    latency: dict[str, dict] = {}
    for r in summary["latency"]:
        if r["method"] not in latency or r["batch_size"] > latency[r["method"]]["batch_size"]:
            latency[r["method"]] = r
    grouped: dict[tuple, dict] = {}
    for r in summary["structure"]:
        key = (name, r["method"], r["config"], r["split"], r.get("distortion"), r.get("severity"))
        row = grouped.setdefault(
            key,
            {
                **dict(zip(KEY_COLUMNS, key, strict=True)),
                "backbone": model["backbone"],
                "regime": model["regime"],
                "pretrained": model.get("pretrained"),
                "image_size": model.get("image_size"),
                "accuracy": accuracy.get((r["config"], r["split"])),
                "ms_per_img": latency.get(r["method"], {}).get("ms_per_img"),
                "latency_batch_size": latency.get(r["method"], {}).get("batch_size"),
                "device": summary["hardware"].get("device"),
                "n": r["n"],
                "n_invalid": r.get("n_invalid"),
                "schema_version": summary["schema_version"],
                "package_version": summary["package_version"],
                "data_revision": str(summary["data"].get("revision")),
                "source": source,
            },
        )
        score = r["score"]
        if score in HEADLINE_SCORES:
            row.update(
                {
                    score: r["mean"],
                    f"{score}_ci_low": r.get("ci_low"),
                    f"{score}_ci_high": r.get("ci_high"),
                    f"{score}_chance": r.get("chance"),
                    f"{score}_n_invalid": r.get("n_invalid"),
                }
            )
    for r in summary.get("causal", []):  # harness.causal: on the interventions config's clean rows
        if r.get("kind") != "intervention_agreement":
            continue
        row = grouped.get((name, r["method"], r["config"], r["split"], "none", 0))
        if row is not None:
            row.update(
                {
                    CAUSAL_SCORE: r["mean"],
                    f"{CAUSAL_SCORE}_ci_low": r["ci_low"],
                    f"{CAUSAL_SCORE}_ci_high": r["ci_high"],
                }
            )
    return list(grouped.values())


def revision_of(row: dict) -> Revision:
    return Revision(row["schema_version"], row["package_version"], row["data_revision"])


def collect_rows(paths: list[str | Path], by_revision: bool = False) -> list[dict]:
    """All leaderboard rows of the summaries under `paths`; raises ValueError when they mix revisions
    (unless `by_revision`) or when two summaries give the same row."""
    rows: list[dict] = []
    for path in find_summaries(paths):
        rows += summary_rows(load_summary(path), str(path))
    revisions = sorted({revision_of(r) for r in rows}, key=Revision.label)
    if len(revisions) > 1 and not by_revision:
        raise ValueError(
            f"results mix {len(revisions)} revisions ({'; '.join(r.label() for r in revisions)}); "
            "pass --by-revision to build one table per revision"
        )
    seen: dict[tuple, str] = {}
    for row in rows:
        key = (revision_of(row), *(row[k] for k in KEY_COLUMNS))
        if key in seen and seen[key] != row["source"]:
            raise ValueError(
                f"{row['source']} and {seen[key]} both report {row['model']} / {row['method']} / "
                f"{row['config']}: remove one of them"
            )
        seen[key] = row["source"]
    return sorted(rows, key=lambda r: (revision_of(r).label(), *(str(r[k]) for k in KEY_COLUMNS)))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _cell(row: dict, score: str) -> str:
    """`mean [ci_low, ci_high]`, `mean` when the CI is missing, `–` when the mean is (all maps invalid)."""
    mean, low, high = row.get(score), row.get(f"{score}_ci_low"), row.get(f"{score}_ci_high")
    if not _finite(mean):
        return "–"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]" if _finite(low) and _finite(high) else f"{mean:.3f}"


def _num(value: float | None, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if _finite(value) else "–"


def _sort_key(row: dict) -> tuple:
    higher = higher_is_better(PLOT_SCORE)
    value = row.get(PLOT_SCORE)
    known = _finite(value)
    best_first = (-value if higher else value) if known else 0.0
    return (is_null_baseline(row["method"]), not known, best_first, row["model"], row["method"])


def markdown_tables(rows: list[dict]) -> str:
    """Markdown: per config, a clean-image table (method x backbone x regime: accuracy, every score as
    mean [95% CI], ms/img, maps and NaN maps; best plot score first, null-baseline maps last) closed by
    the chance row; per distortion family, FMR by severity; configs with neither (the paper's mixed
    distortions) are named."""
    scores = [s for s in HEADLINE_SCORES if any(s in r for r in rows)]
    out: list[str] = []
    for config in dict.fromkeys(r["config"] for r in rows if is_clean(r)):
        table = sorted((r for r in rows if r["config"] == config and is_clean(r)), key=_sort_key)
        out += [
            f"### {config} (clean, split {table[0]['split']})",
            "",
            "| model | backbone | regime | method | accuracy | "
            + " | ".join(score_label(s) for s in scores)
            + f" | ms/img | n ({SCORE_LABELS[PLOT_SCORE]} NaN) |",
            "|" + "---|" * (7 + len(scores)),
        ]
        out += [
            f"| {r['model']} | {r['backbone']} | {r['regime']} | {method_label(r['method'])} | "
            f"{_num(r['accuracy'])} | "
            + " | ".join(_cell(r, s) for s in scores)
            + f" | {_num(r['ms_per_img'], 1)} | {r['n']} ({r.get(f'{PLOT_SCORE}_n_invalid')}) |"
            for r in table
        ]
        chance = [sorted({_num(r.get(f"{s}_chance")) for r in table} - {"–"}) for s in scores]
        out += [
            "| chance (uniform map) | | | | | " + " | ".join("/".join(cs) or "–" for cs in chance) + " | | |",
            "",
        ]
    for config in dict.fromkeys(r["config"] for r in rows if is_graded(r)):
        table = [r for r in rows if r["config"] == config and is_graded(r)]
        severities = sorted({r["severity"] for r in table})
        out += [
            f"### {config}: {score_label(PLOT_SCORE)} by severity",
            "",
            "| model | method | " + " | ".join(f"severity {s}" for s in severities) + " |",
            "|" + "---|" * (2 + len(severities)),
        ]
        cells: dict[tuple, dict] = defaultdict(dict)
        for r in table:
            cells[(r["model"], r["method"])][r["severity"]] = _cell(r, PLOT_SCORE)
        out += [
            f"| {model} | {method_label(method)} | " + " | ".join(c.get(s, "–") for s in severities) + " |"
            for (model, method), c in sorted(cells.items())
        ]
        out.append("")
    for config in dict.fromkeys(r["config"] for r in rows if not (is_clean(r) or is_graded(r))):
        groups = {
            r["distortion"] for r in rows if r["config"] == config and not (is_clean(r) or is_graded(r))
        }
        out += [
            f"### {config}",
            "",
            f"{len(groups)} distortion groups without severity levels: see the parquet "
            "table (columns `distortion`, `severity`).",
            "",
        ]
    return "\n".join(out + causal_and_transfer_tables(rows))


def causal_and_transfer_tables(rows: list[dict]) -> list[str]:
    """Markdown lines: the causal agreement per model / method (interventions config), and the real-photo
    transfer (clean `standard` -> `real`: accuracy and structure scores side by side); each only when
    the rows have it."""
    out: list[str] = []
    causal = sorted((r for r in rows if CAUSAL_SCORE in r), key=lambda r: (r["model"], r["method"]))
    if causal:
        out += [
            f"### causal agreement ({causal[0]['config']}): Spearman of CAM part mass vs intervention "
            "logit drop ↑",
            "",
            "| model | method | agreement [95% CI] |",
            "|---|---|---|",
        ]
        out += [f"| {r['model']} | {method_label(r['method'])} | {_cell(r, CAUSAL_SCORE)} |" for r in causal]
        out.append("")
    source, target = TRANSFER_CONFIGS
    clean = {(r["model"], r["method"], r["config"]): r for r in rows if is_clean(r)}
    pairs = sorted((m, meth) for m, meth, c in clean if c == target and (m, meth, source) in clean)
    if pairs:
        out += [
            f"### real-photo transfer ({source} -> {target})",
            "",
            "| model | method | accuracy | " + " | ".join(score_label(s) for s in TRANSFER_SCORES) + " |",
            "|" + "---|" * (3 + len(TRANSFER_SCORES)),
        ]
        for model, method in pairs:
            a, b = clean[(model, method, source)], clean[(model, method, target)]
            cells = [f"{_num(a.get(k))} -> {_num(b.get(k))}" for k in ("accuracy", *TRANSFER_SCORES)]
            out.append(f"| {model} | {method_label(method)} | " + " | ".join(cells) + " |")
        out.append("")
    return out


def plot_rows(rows: list[dict]) -> list[dict]:
    """The rows the plot shows: clean rows of the `standard` config (else the first config) that have a
    latency and a plot score."""
    clean = [r for r in rows if is_clean(r) and _finite(r.get(PLOT_SCORE)) and _finite(r.get("ms_per_img"))]
    configs = list(dict.fromkeys(r["config"] for r in clean))
    config = "standard" if "standard" in configs else (configs[0] if configs else None)
    return [r for r in clean if r["config"] == config]


CARD_HEADER = """---
license: apache-2.0
pretty_name: CAMBench-QR leaderboard
tags:
- cambench-qr
- leaderboard
configs:
- config_name: default
  data_files:
  - split: train
    path: {parquet}
---
"""


def build_leaderboard(
    paths: list[str | Path], out_dir: str | Path, by_revision: bool = False
) -> dict[str, Path]:
    """Write the leaderboard into `out_dir` (a dataset repo folder, loadable with `load_dataset`):
    the parquet table, `leaderboard.md`, one structure-vs-latency PNG per revision, and README.md.
    Returns {name: path} of what it wrote."""
    rows = collect_rows(paths, by_revision)
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    sink = pa.BufferOutputStream()
    columns = list(dict.fromkeys(k for r in rows for k in r))  # from_pylist keeps only the first row's keys
    pq.write_table(pa.Table.from_pylist([{k: r.get(k) for k in columns} for r in rows]), sink)
    written["parquet"] = write_bytes_atomic(out_dir / PARQUET_PATH, sink.getvalue().to_pybytes())
    revisions = list(dict.fromkeys(revision_of(r) for r in rows))
    sections = [
        "# CAMBench-QR leaderboard",
        "",
        f"{len(rows)} rows from {len({r['source'] for r in rows})} result files. Cells are "
        f"mean [95% bootstrap CI]; ↑ higher is better, ↓ lower is better; chance is what a uniform "
        f"map scores on the same masks. The plot shows {score_label(PLOT_SCORE)} against latency "
        f"with the Pareto front (no other point is both faster and better) marked.",
        "",
    ]
    for revision in revisions:
        part = [r for r in rows if revision_of(r) == revision]
        name = "plot" if len(revisions) == 1 else f"plot-{revision.slug()}"
        png = f"leaderboard-{revision.slug()}.png" if len(revisions) > 1 else "leaderboard.png"
        points = plot_rows(part)
        if points:
            written[name] = write_bytes_atomic(
                out_dir / png, draw_pareto_plot(points, PLOT_SCORE, title=revision.label())
            )
        front = {(points[i]["model"], points[i]["method"]) for i in pareto_front(points, PLOT_SCORE)}
        sections += [f"## {revision.label()}", ""]
        if points:
            sections += [
                f"![{score_label(PLOT_SCORE)} vs latency]({png})",
                "",
                "Pareto front: " + ", ".join(f"{m} / {method_label(k)}" for m, k in sorted(front)),
                "",
            ]
        sections.append(markdown_tables(part))
    text = "\n".join(sections)
    written["markdown"] = write_text_atomic(out_dir / "leaderboard.md", text)
    written["card"] = write_text_atomic(
        out_dir / "README.md", CARD_HEADER.format(parquet=PARQUET_PATH) + text
    )
    return written
