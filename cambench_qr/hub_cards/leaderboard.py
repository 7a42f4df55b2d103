"""The leaderboard: harness `summary.json` files -> one tidy table (parquet), markdown tables, a headline
and a plot.

One row per (model, CAM method, config, split, distortion, severity) with the model's accuracy on that
config/split, whether the model is competent (`competent`, `competence_floor`: accuracy on `standard`
at least the floor, `harness.accuracy`), its CAM grid (`cam_grid`, [h, w]), every structure score's
mean, 95% bootstrap CI and chance value (what a uniform map scores on the same masks), the method's
latency (ms per image at the largest measured batch) and, for CAM methods, the verdicts against the null
maps (`<score>_vs_uniform`, `<score>_best_null`, `<score>_vs_best_null`: better / indistinguishable /
worse, `hub_cards.verdicts`) and `passes_sanity` (yes / no / undetermined from the summary's sanity
rows, `harness.sanity.passes_sanity`; None where the sanity checks were not run). Rows of the
`interventions` config also carry the method's causal agreement (`harness.causal`).

`leaderboard.md`: per config the clean-image table of the CAM methods, with the null maps once per
config and input size under it (null maps depend on the images and the seed only, not on the model); FMR
by severity; the verdict table (clean headline config: `standard`, else the first); causal agreement and
real-photo transfer (`standard` -> `real`) when the results hold those configs; accuracy by negative
kind, QR version band and distortion severity; the sanity checks (per model evaluated with `--sanity`:
`hub_cards.sanity`'s table and cascading figure). Models below the competence floor are marked
"not competent". `headline.md`: the short table of the competent models' CAMs on the clean headline
config (passes sanity, scores, verdicts, causal agreement) and the models left out; the run report opens
with it.

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
import yaml

from .. import __version__
from ..harness.accuracy import COMPETENCE_FLOOR, headline_config, model_competence
from ..harness.sanity import passes_sanity
from ..harness.transfer import SOURCE, TARGET
from ..results import (
    ACCURACY_GROUPS,
    CAUSAL_SCORE,
    HEADLINE_SCORES,
    PLOT_SCORE,
    SCORE_LABELS,
    SUMMARY_FILE,
    TRANSFER_SCORES,
    VERDICT_SCORES,
    InterventionAgreementRow,
    LatencyRow,
    Summary,
    is_null_baseline,
    method_label,
)
from ._io import write_bytes_atomic, write_text_atomic
from .figures import pareto_front, write_figures
from .sanity import sanity_figure, sanity_table_markdown
from .scores import headline_rows, higher_is_better, is_clean, is_graded, score_label
from .verdicts import VERDICT_LEGEND, null_comparisons, verdict_cell, verdict_columns

PARQUET_PATH = "data/leaderboard-00000-of-00001.parquet"
HEADLINE_FILE = "headline.md"
# The card's pretty_name: how `build_leaderboard` recognises a folder it may overwrite.
LEADERBOARD_TITLE = "CAMBench-QR leaderboard"
KEY_COLUMNS = ("model", "method", "config", "split", "distortion", "severity")
# `passes_sanity` column: the sanity verdict of a CAM method (`harness.sanity.passes_sanity`)
SANITY_MARKS = {True: "yes", False: "no", None: "undetermined"}


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


def load_summary(path: str | Path) -> Summary:
    """Read one summary.json through the results schema (`Summary.from_json`: schema version, sections,
    rows); a one-line ValueError naming the file otherwise."""
    path = Path(path)
    try:
        return Summary.from_json(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc} (cambench-qr {__version__})") from None


def model_name(summary: Summary) -> str:
    model = summary.model
    return model.name or f"{model.backbone}-{model.regime}"


def model_columns(summary: Summary) -> dict:
    """The model-level columns of a summary's rows; `competent` is judged from the accuracy rows (with this
    package's floor) for summaries written before it was recorded."""
    competent, floor = model_competence(summary)
    return {
        "model": model_name(summary),
        "competent": competent,
        "competence_floor": floor,
        "cam_grid": summary.model.cam_grid,
        "schema_version": summary.schema_version,
        "package_version": summary.package_version,
        "data_revision": str(summary.data.revision),
    }


def _latency_by_method(summary: Summary) -> dict[str, LatencyRow]:
    """Each method's latency row at the largest measured batch."""
    latency: dict[str, LatencyRow] = {}
    for r in summary.latency:
        if r.method not in latency or r.batch_size > latency[r.method].batch_size:
            latency[r.method] = r
    return latency


def summary_rows(summary: Summary, source: str = "") -> list[dict]:
    """Leaderboard rows of one summary (see the module docstring)."""
    model = summary.model
    name = model_name(summary)
    accuracy = {(r.config, r.split): r.value for r in summary.config_accuracy()}
    comparisons = null_comparisons(summary)
    latency = _latency_by_method(summary)
    sanity = passes_sanity(summary.sanity) if summary.sanity else {}
    model_cols = model_columns(summary)
    grouped: dict[tuple, dict] = {}
    for r in summary.structure:
        key = (name, r.method, r.config, r.split, r.distortion, r.severity)
        row = grouped.get(key)
        if row is None:  # the first score of the key: its model, method and sample columns
            timing = latency.get(r.method)
            row = grouped[key] = {
                **dict(zip(KEY_COLUMNS, key, strict=True)),
                "backbone": model.backbone,
                "regime": model.regime,
                "pretrained": model.pretrained,
                "image_size": model.image_size,
                "accuracy": accuracy.get((r.config, r.split)),
                "ms_per_img": timing.ms_per_img if timing else None,
                "latency_batch_size": timing.batch_size if timing else None,
                "device": summary.hardware.get("device"),
                "n": r.n,
                "n_invalid": r.n_invalid,
                **model_cols,
                **verdict_columns(comparisons.get(key[1:], {})),
                "source": source,
                "passes_sanity": None if r.method not in sanity else SANITY_MARKS[sanity[r.method]],
            }
        if r.score in HEADLINE_SCORES:
            row.update(
                {
                    r.score: r.mean,
                    f"{r.score}_ci_low": r.ci_low,
                    f"{r.score}_ci_high": r.ci_high,
                    f"{r.score}_chance": r.chance,
                    f"{r.score}_n_invalid": r.n_invalid,
                }
            )
    for r in summary.rows(InterventionAgreementRow):  # harness.causal: the interventions config's clean rows
        row = grouped.get((name, r.method, r.config, r.split, "none", 0))
        if row is not None:
            row.update(
                {
                    CAUSAL_SCORE: r.mean,
                    f"{CAUSAL_SCORE}_ci_low": r.ci_low,
                    f"{CAUSAL_SCORE}_ci_high": r.ci_high,
                }
            )
    return list(grouped.values())


def revision_of(row: dict) -> Revision:
    return Revision(row["schema_version"], row["package_version"], row["data_revision"])


def load_summaries(paths: list[str | Path]) -> list[tuple[str, Summary]]:
    """(source path, summary) of every summary under `paths` (`find_summaries`, `load_summary`)."""
    return [(str(path), load_summary(path)) for path in find_summaries(paths)]


def collect_rows(paths: list[str | Path], by_revision: bool = False) -> list[dict]:
    """All leaderboard rows of the summaries under `paths` (see `checked_rows`)."""
    return checked_rows(load_summaries(paths), by_revision)


def checked_rows(summaries: list[tuple[str, Summary]], by_revision: bool = False) -> list[dict]:
    """The leaderboard rows of (source, summary) pairs; raises ValueError when they mix revisions (unless
    `by_revision`) or when two summaries give the same row."""
    rows: list[dict] = []
    for source, summary in summaries:
        rows += summary_rows(summary, source)
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


def accuracy_rows(summaries: list[tuple[str, Summary]]) -> list[dict]:
    """The grouped accuracy rows (`harness.accuracy`: by negative kind, QR version band, distortion
    severity) of (source, summary) pairs, each with its model's columns (`model_columns`)."""
    return [
        {**model_columns(summary), **r.as_json()}
        for _, summary in summaries
        for r in summary.grouped_accuracy()
    ]


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


def _model_cell(row: dict) -> str:
    """The model's name, marked when the model is below the competence floor."""
    return f"{row['model']} (not competent)" if row.get("competent") is False else row["model"]


def null_rows_once(rows: list[dict]) -> dict:
    """The null-map rows among `rows` once per input size: {image_size: the rows of the first model (by
    name) evaluated at that size}. A null map depends on the images, their size and the seed only
    (`harness.baselines`), never on the model, so every model's null rows at one size are the same."""
    chosen: dict = {}
    out: dict = defaultdict(list)
    nulls = sorted(
        (r for r in rows if is_null_baseline(r["method"])), key=lambda r: (r["model"], r["method"])
    )
    for r in nulls:
        if chosen.setdefault(r.get("image_size"), r["model"]) == r["model"]:
            out[r.get("image_size")].append(r)
    return dict(out)


def _n_cell(row: dict) -> str:
    return f"{row['n']} ({row.get(f'{PLOT_SCORE}_n_invalid')})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table: the header, the separator and one line per row of cells."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cells) + " |" for cells in rows),
    ]


def _clean_table(config: str, table: list[dict], scores: list[str]) -> list[str]:
    """One config's clean-image table: the CAM rows (best plot score first), the chance row, then the null
    maps once per input size."""
    labels = [score_label(s) for s in scores]
    n_label = f"n ({SCORE_LABELS[PLOT_SCORE]} NaN)"
    cams = sorted((r for r in table if not is_null_baseline(r["method"])), key=_sort_key)
    lines = [
        [_model_cell(r), r["backbone"], r["regime"], method_label(r["method"]), _num(r["accuracy"])]
        + [_cell(r, s) for s in scores]
        + [_num(r["ms_per_img"], 1), _n_cell(r)]
        for r in cams
    ]
    chance = [sorted({_num(r.get(f"{s}_chance")) for r in table} - {"–"}) for s in scores]
    lines.append(["chance (uniform map)", "", "", "", "", *("/".join(c) or "–" for c in chance), "", ""])
    header = ["model", "backbone", "regime", "method", "accuracy", *labels, "ms/img", n_label]
    out = [f"### {config} (clean, split {table[0]['split']})", "", *_table(header, lines)]
    for size, nulls in null_rows_once(table).items():
        out += [
            "",
            f"Null maps at {size} px input, the same for every model (they depend on the images and the "
            f"seed only; values from {nulls[0]['model']}):",
            "",
        ]
        rows = [
            [method_label(r["method"]), *(_cell(r, s) for s in scores), _n_cell(r)]
            for r in sorted(nulls, key=_sort_key)
        ]
        out += _table(["null map", *labels, n_label], rows)
    return out + [""]


def _severity_table(config: str, table: list[dict]) -> list[str]:
    """One graded config's plot score by severity: the CAM rows per model, then the null maps once per
    input size."""
    severities = sorted({r["severity"] for r in table})
    cells: dict[tuple, dict] = defaultdict(dict)
    for r in table:
        if not is_null_baseline(r["method"]):
            cells[(_model_cell(r), method_label(r["method"]))][r["severity"]] = _cell(r, PLOT_SCORE)
    lines = sorted(cells.items())
    for size, nulls in null_rows_once(table).items():
        for r in nulls:
            cells[(f"null maps ({size} px)", method_label(r["method"]))][r["severity"]] = _cell(r, PLOT_SCORE)
        lines += [(key, c) for key, c in cells.items() if key[0] == f"null maps ({size} px)"]
    return [
        f"### {config}: {score_label(PLOT_SCORE)} by severity",
        "",
        "| model | method | " + " | ".join(f"severity {s}" for s in severities) + " |",
        "|" + "---|" * (2 + len(severities)),
        *(
            f"| {model} | {method} | " + " | ".join(c.get(s, "–") for s in severities) + " |"
            for (model, method), c in lines
        ),
        "",
    ]


def markdown_tables(rows: list[dict], accuracy: list[dict] = ()) -> str:
    """Markdown: per config, a clean-image table (CAM method x model: accuracy, every score as mean
    [95% CI], ms/img, maps and NaN maps; best plot score first) closed by the chance row and the null maps
    once per input size; per distortion family, FMR by severity (null maps once per input size); configs
    with neither (the paper's mixed distortions) are named; then the verdicts against the null maps,
    causal agreement, real-photo transfer and the grouped `accuracy` rows (`accuracy_rows`). Models
    below the competence floor are marked "not competent"."""
    scores = [s for s in HEADLINE_SCORES if any(s in r for r in rows)]
    out: list[str] = []
    for config in dict.fromkeys(r["config"] for r in rows if is_clean(r)):
        out += _clean_table(config, [r for r in rows if r["config"] == config and is_clean(r)], scores)
    for config in dict.fromkeys(r["config"] for r in rows if is_graded(r)):
        out += _severity_table(config, [r for r in rows if r["config"] == config and is_graded(r)])
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
    out += verdict_table(rows) + causal_and_transfer_tables(rows) + accuracy_tables(list(accuracy))
    return "\n".join(out)


def _verdicts(row: dict, versus: str) -> list[str]:
    """The row's verdict cells for VERDICT_SCORES against the uniform map (`versus="uniform"`) or the best
    null map (`"best_null"`, named)."""
    if versus == "uniform":
        return [verdict_cell(row.get(f"{s}_vs_uniform")) for s in VERDICT_SCORES]
    return [verdict_cell(row.get(f"{s}_vs_best_null"), row.get(f"{s}_best_null")) for s in VERDICT_SCORES]


def verdict_table(rows: list[dict]) -> list[str]:
    """Markdown lines: per model x CAM method on the clean headline config, the verdict against the uniform
    map and against the best null map for each of VERDICT_SCORES; empty when no row has verdicts."""
    table = [r for r in headline_rows(rows) if any(f"{s}_vs_uniform" in r for s in VERDICT_SCORES)]
    if not table:
        return []
    header = [f"{score_label(s)} vs {null}" for s in VERDICT_SCORES for null in ("uniform", "best null")]
    lines = []
    for r in sorted(table, key=lambda r: (r["model"], _sort_key(r))):
        pairs = zip(_verdicts(r, "uniform"), _verdicts(r, "best_null"), strict=True)
        lines.append([_model_cell(r), method_label(r["method"]), *(cell for pair in pairs for cell in pair)])
    return [
        f"### {table[0]['config']} (clean): CAMs against the null maps",
        "",
        f"{VERDICT_LEGEND}. The best null map of a score has the best mean score on these images.",
        "",
        *_table(["model", "method", *header], lines),
        "",
    ]


def headline_markdown(rows: list[dict]) -> str:
    """The headline of one revision: per competent model (backbone, regime, accuracy and CAM grid) and CAM
    method, FMR / BL / DtS on the clean headline config as mean [95% CI], the verdicts against the uniform
    map and against the best null map, and the causal agreement; then the models left out as not
    competent."""
    table = headline_rows(rows)
    if not table:
        return "No clean results to headline."
    config, floor = table[0]["config"], table[0].get("competence_floor", COMPETENCE_FLOOR)
    causal = {(r["model"], r["method"]): r for r in rows if CAUSAL_SCORE in r}
    competent = sorted(
        (r for r in table if r.get("competent") is not False), key=lambda r: (r["model"], _sort_key(r))
    )
    left_out = {r["model"]: r["accuracy"] for r in table if r.get("competent") is False}
    labels = ", ".join(SCORE_LABELS[s] for s in VERDICT_SCORES)
    out = [
        f"Competent models (accuracy on clean `{config}` at least {floor:.2f}) and their CAMs on the clean "
        f"`{config}` test images: scores as mean [95% bootstrap CI]; verdicts ({labels}) against the uniform "
        f"map and against the best null map ({VERDICT_LEGEND}); causal agreement on the `interventions` "
        "config (Spearman of CAM part mass vs intervention logit drop); passes sanity: the method's "
        "verdict in the sanity checks (yes / no / undetermined; – not run).",
        "",
    ]
    header = ["model", "backbone", "regime", "accuracy", "CAM grid", "method", "passes sanity"]
    header += [score_label(s) for s in VERDICT_SCORES]
    header += [f"vs uniform ({labels})", f"vs best null ({labels})", "causal agreement ↑"]
    lines = [
        [r["model"], r["backbone"], r["regime"], _num(r["accuracy"]), _grid(r.get("cam_grid"))]
        + [method_label(r["method"]), r.get("passes_sanity") or "–", *(_cell(r, s) for s in VERDICT_SCORES)]
        + [", ".join(_verdicts(r, "uniform")), ", ".join(_verdicts(r, "best_null"))]
        + [_cell(causal.get((r["model"], r["method"]), {}), CAUSAL_SCORE)]
        for r in competent
    ]
    out += _table(header, lines) if competent else ["No competent model."]
    out.append("")
    if left_out:
        names = ", ".join(f"{m} ({_num(a)})" for m, a in sorted(left_out.items()))
        out.append(f"Left out as not competent (accuracy on clean `{config}` below {floor:.2f}): {names}.")
    else:
        out.append(f"No model left out: every model reaches the competence floor {floor:.2f}.")
    return "\n".join(out)


def _grid(grid: list[int] | None) -> str:
    return "×".join(str(v) for v in grid) if grid else "–"


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
        out += [
            f"| {_model_cell(r)} | {method_label(r['method'])} | {_cell(r, CAUSAL_SCORE)} |" for r in causal
        ]
        out.append("")
    source, target = SOURCE, TARGET
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
            out.append(f"| {_model_cell(a)} | {method_label(method)} | " + " | ".join(cells) + " |")
        out.append("")
    return out


ACCURACY_TITLES = {
    "negative_kind": "negative kind (non-QR images)",
    "version_band": "QR version band (QR images)",
    "distortion": "distortion severity",
}


def _accuracy_table(title: str, rows: list[dict], by: tuple[str, ...]) -> list[str]:
    """One accuracy table: a row per (model, config), a column per subset, cells `accuracy (n images)`."""

    def level(row: dict) -> str:
        return " ".join(str(row[c]) for c in by)

    levels = list(dict.fromkeys(level(r) for r in rows))
    cells: dict[tuple, dict] = defaultdict(dict)
    for r in rows:
        cells[(_model_cell(r), r["config"])][level(r)] = f"{_num(r['value'])} ({r['n']})"
    lines = [
        [m, c, *(cell.get(v, "–") for v in levels)]
        for (m, c), cell in sorted(cells.items(), key=lambda item: item[0][0])
    ]
    return [f"### accuracy by {title}", "", *_table(["model", "config", *levels], lines), ""]


def accuracy_tables(rows: list[dict]) -> list[str]:
    """Markdown lines from grouped accuracy rows (`accuracy_rows`): accuracy (n images) per model and
    config by negative kind and by QR version band, and per config with graded distortions by distortion
    severity (clean and ungraded groups are the per-config accuracy already); empty without such rows."""
    out: list[str] = []
    for group, by in ACCURACY_GROUPS.items():
        part = [r for r in rows if r["group"] == group and (group != "distortion" or is_graded(r))]
        if group != "distortion":
            out += _accuracy_table(ACCURACY_TITLES[group], part, by) if part else []
            continue
        for config in dict.fromkeys(r["config"] for r in part):
            table = [r for r in part if r["config"] == config]
            out += _accuracy_table(f"{ACCURACY_TITLES[group]}: {config}", table, by)
    return out


def plot_rows(rows: list[dict]) -> list[dict]:
    """The rows the plot shows: clean rows of the `standard` config (else the first config) that have a
    latency and a plot score."""
    clean = [r for r in rows if is_clean(r) and _finite(r.get(PLOT_SCORE)) and _finite(r.get("ms_per_img"))]
    config = headline_config(list(dict.fromkeys(r["config"] for r in clean)))
    return [r for r in clean if r["config"] == config]


CARD_HEADER = """---
license: apache-2.0
pretty_name: {title}
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
    the parquet table, `leaderboard.md`, `headline.md`, the figures per revision (and a sanity figure per
    model with sanity rows), and
    README.md (the headline, then leaderboard.md). Returns {name: path} of what it wrote. `out_dir` must be
    new, empty or an earlier leaderboard (`check_leaderboard_folder`)."""
    out_dir = Path(out_dir)
    check_leaderboard_folder(out_dir)
    summaries = load_summaries(paths)
    rows = checked_rows(summaries, by_revision)
    accuracy = accuracy_rows(summaries)
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
        f"map scores on the same masks; null maps are shown once per config and input size. Models whose "
        f"accuracy on `standard` is below the competence floor are marked not competent. The plot shows "
        f"{score_label(PLOT_SCORE)} against latency with the Pareto front (no other point is both faster "
        f"and better) marked.",
        "",
    ]
    headline = ["## Headline", ""]
    for revision in revisions:
        part = [r for r in rows if revision_of(r) == revision]
        suffix = "" if len(revisions) == 1 else f"-{revision.slug()}"
        points = plot_rows(part)
        figures = write_figures(points, part, out_dir, f"leaderboard{suffix}", revision.label())
        written.update({f"{f.name}{suffix}": f.png for f in figures})
        front = {(points[i]["model"], points[i]["method"]) for i in pareto_front(points, PLOT_SCORE)}
        sections += [f"## {revision.label()}", ""]
        for f in figures:
            sections += [f"![{f.caption}]({f.png.name})", ""]
        if points:
            names = ", ".join(f"{m} / {method_label(k)}" for m, k in sorted(front))
            sections += [f"Pareto front: {names}", ""]
        sections.append(markdown_tables(part, [r for r in accuracy if revision_of(r) == revision]))
        sources = {r["source"] for r in part}
        sanity = [(model_name(s), list(s.sanity)) for where, s in summaries if s.sanity and where in sources]
        sections += sanity_sections(sanity, out_dir, f"leaderboard{suffix}-sanity", written)
        headline += [f"### {revision.label()}", ""] if len(revisions) > 1 else []
        headline += [headline_markdown(part), ""]
    text = "\n".join(sections)
    written["markdown"] = write_text_atomic(out_dir / "leaderboard.md", text)
    written["headline"] = write_text_atomic(out_dir / HEADLINE_FILE, "\n".join(headline))
    card = "\n".join(sections[:4] + headline + sections[4:])
    written["card"] = write_text_atomic(
        out_dir / "README.md", CARD_HEADER.format(title=LEADERBOARD_TITLE, parquet=PARQUET_PATH) + card
    )
    return written


def sanity_sections(sanity: list[tuple[str, list]], out_dir: Path, prefix: str, written: dict) -> list[str]:
    """Markdown lines of the sanity checks (`harness.sanity`): per model its table
    (`sanity_table_markdown`) and its cascading figure (`sanity_figure`, `<prefix>-<model>.png` / `.svg`,
    added to `written` under its file stem); empty without sanity rows."""
    if not sanity:
        return []
    lines = ["### Sanity checks", "",
             "Does each method's map collapse when the model's knowledge is destroyed (docs/sanity.md)? "
             "Per model and method, at each test's last step: the Spearman rho to the original maps and "
             "the FMR against chance; pass/fail by the documented rule (`harness.sanity.RULE`).", ""]
    for model, rows in sorted(sanity, key=lambda pair: pair[0]):
        lines += [f"#### {model}", "", sanity_table_markdown(rows)]
        if any(r["test"] == "cascading" and r["score"] not in ("verdict", "error") for r in rows):
            png, _ = sanity_figure(rows, out_dir / f"{prefix}-{model}")
            written[png.stem] = png
            caption = f"sanity checks of {model}: similarity and FMR against randomization depth"
            lines += [f"![{caption}]({png.name})", ""]
    return lines


def card_title(readme: Path) -> str | None:
    """The `pretty_name` of a README.md's YAML header; None without a readable header."""
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("---\n") or "\n---" not in text[4:]:
        return None
    try:
        header = yaml.safe_load(text[4 : text.index("\n---", 4)])
    except yaml.YAMLError:
        return None
    return header.get("pretty_name") if isinstance(header, dict) else None


def check_leaderboard_folder(out_dir: Path) -> None:
    """ValueError unless `out_dir` is absent, empty, or a leaderboard this package wrote (its README.md
    card's `pretty_name` is `LEADERBOARD_TITLE`): a dataset card, a project README or any other folder
    is never overwritten."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ValueError(f"leaderboard folder {out_dir} is a file")
    if any(out_dir.iterdir()) and card_title(out_dir / "README.md") != LEADERBOARD_TITLE:
        raise ValueError(
            f"{out_dir} holds files and no {LEADERBOARD_TITLE} card (README.md): not overwriting it; "
            "choose a new or empty folder, or a leaderboard folder"
        )
