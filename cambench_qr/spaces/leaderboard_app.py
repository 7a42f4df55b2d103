"""CAMBench-QR leaderboard Space: the leaderboard dataset as a filterable, sortable table, with its
headline, figures, overlay galleries and how to submit a model.

The leaderboard is read from `$CAMBENCH_LEADERBOARD` when set (a local folder or a Hub dataset id), else
from the Hub dataset id in `space.json` (written next to this file with the schema version this Space
reads and the labels of the scores and methods). Bad input (a missing or empty folder, a table of another
schema version, an unreachable Hub id) is shown as one message in the page.

Needs gradio, pandas (with pyarrow) and huggingface_hub only.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import gradio as gr
import pandas as pd

HERE = Path(__file__).resolve().parent
SETTINGS_FILE = HERE / "space.json"
SOURCE_VARIABLE = "CAMBENCH_LEADERBOARD"
PARQUET_GLOB = "data/leaderboard-*.parquet"
GALLERY_GLOB = "galleries/*.png"
ALL = "all"
FILTERS = ("revision", "config", "distortion", "severity", "backbone", "regime", "method")


class LeaderboardError(Exception):
    """A leaderboard that cannot be shown; its message is one line for the page."""


def read_settings(path: Path = SETTINGS_FILE) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def fetch(source: str) -> Path:
    """The leaderboard folder: `source` itself when it is a folder, else the Hub dataset `source`
    (`user/name`) downloaded with huggingface_hub."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if source.count("/") != 1 or source.startswith((".", "/", "~")):
        raise LeaderboardError(f"{source!r} is neither a folder nor a Hub dataset id (user/name)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source, repo_type="dataset"))
    except Exception as exc:  # every failure of the download is shown as one line
        reason = " ".join(str(exc).split()[:40]) or "no reason given"
        raise LeaderboardError(
            f"cannot download the Hub dataset {source!r}: {type(exc).__name__}: {reason}"
        ) from None


def load_rows(folder: Path, schema_version: int) -> pd.DataFrame:
    """The leaderboard rows of `folder` (its parquet files), checked to be of `schema_version`, with a
    `revision` column (package version and data revision)."""
    files = sorted(Path(folder).glob(PARQUET_GLOB))
    if not files:
        raise LeaderboardError(
            f"{folder} holds no leaderboard table ({PARQUET_GLOB}); build one with `cambench-qr leaderboard`"
        )
    try:
        rows = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    except Exception as exc:  # a damaged or foreign parquet file
        raise LeaderboardError(f"cannot read the leaderboard table in {folder}: {exc}") from None
    if "schema_version" not in rows or rows.empty:
        raise LeaderboardError(f"the table in {folder} is empty or not a CAMBench-QR leaderboard")
    versions = sorted({int(v) for v in rows["schema_version"]})
    if versions != [schema_version]:
        raise LeaderboardError(
            f"the leaderboard in {folder} has results schema {', '.join(map(str, versions))}; this Space "
            f"reads schema {schema_version} (rebuild it with the matching cambench-qr version)"
        )
    # results are comparable only within one package version and data revision
    return rows.assign(revision=rows["package_version"] + ", data " + rows["data_revision"])


def _key(value) -> str:
    """A filter key of a cell: integers without a decimal point, a missing value as '–'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _ci(row: pd.Series, score: str) -> str:
    low, high = row.get(f"{score}_ci_low"), row.get(f"{score}_ci_high")
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return "–"
    return f"[{low:.3f}, {high:.3f}]"


def _verdicts(row: pd.Series, scores: list[str], versus: str, settings: dict) -> str:
    """The row's verdicts of `scores` against `versus` ("uniform" or "best_null", named), joined."""
    cells = []
    for score in scores:
        verdict = row.get(f"{score}_vs_{versus}")
        if not isinstance(verdict, str):
            cells.append("–")
            continue
        null = row.get(f"{score}_best_null") if versus == "best_null" else None
        label = settings["verdict_labels"].get(verdict, verdict)
        named = isinstance(null, str)
        cells.append(f"{label} ({null.removeprefix(settings['null_prefix'])})" if named else label)
    return ", ".join(cells)


def display_table(rows: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """The table the page shows: one line per leaderboard row, the method's sanity verdict, every score's
    mean (and the 95% CI of the verdict scores), latency and the verdicts against the null maps; CAM
    methods first, each group sorted best first by the settings' sort score."""
    score, higher = settings["sort"]
    nulls = rows["method"].str.startswith(settings["null_prefix"])
    order = rows.assign(_null=nulls).sort_values(
        ["_null", score], ascending=[True, not higher], na_position="last", kind="stable"
    )
    rows = rows.loc[order.index]
    methods, verdict_scores = settings["methods"], settings["verdict_scores"]
    table = pd.DataFrame(
        {
            "model": rows["model"],
            "competent": rows["competent"].map({True: "yes", False: "no"}).fillna("–"),
            "backbone": rows["backbone"],
            "regime": rows["regime"],
            "method": rows["method"].map(lambda m: methods.get(m, m)),
            # the method's sanity-check verdict (leaderboards written before it have no such column)
            "passes sanity": rows["passes_sanity"].fillna("–") if "passes_sanity" in rows else "–",
            "config": rows["config"],
            "distortion": rows["distortion"].map(_key),
            "severity": rows["severity"].map(_key),
            "accuracy": rows["accuracy"].round(3),
        }
    )
    for score, label in settings["scores"]:
        if score in rows:
            table[label] = rows[score].round(3)
            if score in verdict_scores:
                table[f"{label} 95% CI"] = [_ci(r, score) for _, r in rows.iterrows()]
    table["ms/img"] = rows["ms_per_img"].round(1)
    labels = dict(settings["scores"])
    names = ", ".join(labels[s] for s in verdict_scores)
    for versus, title in (("uniform", "uniform map"), ("best_null", "best null map")):
        table[f"vs {title} ({names})"] = [
            _verdicts(r, verdict_scores, versus, settings) for _, r in rows.iterrows()
        ]
    table["n"] = rows["n"]
    return table.reset_index(drop=True)


def filter_rows(rows: pd.DataFrame, choices: dict[str, str], competent_only: bool) -> pd.DataFrame:
    """The rows whose filter columns equal the chosen keys (`ALL` keeps every value) and, with
    `competent_only`, whose model is not marked not competent."""
    keep = pd.Series(True, index=rows.index)
    for column, choice in choices.items():
        if choice not in (ALL, None):
            keep &= rows[column].map(_key) == choice
    if competent_only:
        keep &= rows["competent"].map(lambda v: v is not False)
    return rows[keep]


def _choices(rows: pd.DataFrame, column: str, labels: dict) -> list[tuple[str, str]]:
    keys = sorted(set(rows[column].map(_key)), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else k))
    return [(ALL, ALL), *((labels.get(k, k), k) for k in keys)]


def _default(rows: pd.DataFrame, column: str, preferred: str) -> str:
    return preferred if preferred in set(rows[column].map(_key)) else ALL


def _count(table: pd.DataFrame, rows: pd.DataFrame) -> str:
    return f"**{len(table)} of {len(rows)} rows** ({table['model'].nunique()} models)"


def build_demo(source: str, settings: dict) -> gr.Blocks:
    """The page for the leaderboard at `source` (see `fetch`); one error message when it cannot be read."""
    with gr.Blocks(title="CAMBench-QR leaderboard") as demo:
        gr.Markdown("# CAMBench-QR leaderboard")
        try:
            folder = fetch(source)
            rows = load_rows(folder, settings["schema_version"])
        except LeaderboardError as exc:
            gr.Markdown(f"**The leaderboard cannot be shown.** {exc}", elem_id="leaderboard-error")
            return demo
        headline = folder / "headline.md"
        if headline.is_file():
            gr.Markdown(headline.read_text(encoding="utf-8"), elem_id="headline")
        with gr.Tab("Table"):
            defaults = {
                # one revision at a time: the last (by name) when the leaderboard holds several
                "revision": sorted(set(rows["revision"]))[-1],
                "config": _default(rows, "config", settings["headline_config"]),
                "distortion": _default(rows, "distortion", "none"),
            }
            with gr.Row():
                widgets = [
                    gr.Dropdown(
                        _choices(rows, column, settings["methods"] if column == "method" else {}),
                        value=defaults.get(column, ALL),
                        label=column,
                        elem_id=f"filter-{column}",
                    )
                    for column in FILTERS
                ]
                competent = gr.Checkbox(value=True, label="competent models only", elem_id="filter-competent")
            first = display_table(filter_rows(rows, defaults, True), settings)
            count = gr.Markdown(_count(first, rows), elem_id="row-count")
            table = gr.Dataframe(first, interactive=False, wrap=True, elem_id="leaderboard-table")

            def update(*values):
                *keys, competent_only = values
                chosen = dict(zip(FILTERS, keys, strict=True))
                shown = display_table(filter_rows(rows, chosen, competent_only), settings)
                return shown, _count(shown, rows)

            for widget in (*widgets, competent):
                widget.change(update, [*widgets, competent], [table, count])
            gr.Markdown(f"Source: `{source}`. {settings['legend']}")
        with gr.Tab("Figures"):
            for png in sorted(folder.glob("leaderboard*.png")):
                gr.Image(str(png), label=png.stem, interactive=False, elem_id=f"figure-{png.stem}")
        with gr.Tab("Overlay galleries"):
            galleries = sorted(folder.glob(GALLERY_GLOB))
            if not galleries:
                gr.Markdown("This leaderboard has no overlay galleries (`cambench-qr run` writes them).")
            for png in galleries:
                gr.Image(str(png), label=png.stem, interactive=False, elem_id=f"gallery-{png.stem}")
        with gr.Tab("How to submit a model"):
            gr.Markdown(settings["submit"], elem_id="submit")
    return demo


if __name__ == "__main__":
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    SETTINGS = read_settings()
    build_demo(os.environ.get(SOURCE_VARIABLE) or SETTINGS["dataset"], SETTINGS).launch()
