"""summary.json ``accuracy`` rows and the competence floor.

Accuracy (higher is better) = share of images whose predicted class is the label. The ``accuracy`` section
holds one row per config ``{config, split, n, value}`` (all images of the config) and, per config, rows
with a ``group`` field that name the subset they count:

- ``{"group": "negative_kind", "negative_kind": k}``: the non-QR images of negative kind ``k``;
- ``{"group": "version_band", "version_band": "1-3"}``: the QR images whose version is in the band
  (``VERSION_BANDS``: 1-3, 4-6, 7-10 and, for real photos, 11-40);
- ``{"group": "distortion", "distortion": d, "severity": s}``: the images of one distortion and severity.

A model is *competent* when its accuracy on the ``standard`` config (the first config when ``standard``
was not evaluated) is at least ``COMPETENCE_FLOOR``; CAM scores of a model below it explain a classifier
that does not solve the task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..dataset_builder.distortions import DISTORTION_FAMILIES
from ..metrics import aggregate
from ..results import ACCURACY_GROUPS

COMPETENCE_FLOOR = 0.90
HEADLINE_CONFIG = "standard"  # the config a model is judged and headlined on, when evaluated
# the per-row columns the groups are read from
META_COLUMNS: tuple[str, ...] = ("negative_kind", "version", "distortion", "severity")
VERSION_BANDS: tuple[tuple[int, int], ...] = ((1, 3), (4, 6), (7, 10), (11, 40))


def version_band(version: int | None) -> str | None:
    """The ``VERSION_BANDS`` label (``"lo-hi"``) of a QR version; None for a non-QR row (no version)."""
    if version is None:
        return None
    for low, high in VERSION_BANDS:
        if low <= version <= high:
            return f"{low}-{high}"
    raise ValueError(f"QR version {version} is outside 1-40")


def accuracy_groups(correct: np.ndarray, meta: Mapping[str, Sequence]) -> list[dict]:
    """Grouped accuracy rows ``{group, <the group's columns>, n, value}`` of one config (see the module
    docstring), from ``correct`` (n,) bools and the rows' ``negative_kind``, ``version``, ``distortion``
    and ``severity`` columns; a group whose columns are absent from ``meta`` is skipped, and subsets with
    a None key (a QR row's negative kind, a negative's version) are left out. Subsets are sorted."""
    table = {"correct": np.asarray(correct, dtype=np.float64), **meta}
    if "version" in meta:
        table["version_band"] = [version_band(v) for v in meta["version"]]
    out = []
    for group, by in ACCURACY_GROUPS.items():
        if not all(c in table for c in by):
            continue
        rows = aggregate(table, ["correct"], list(by), n_boot=1)
        rows = [r for r in rows if all(r[c] is not None for c in by) or group == "distortion"]
        out += [{"group": group, **{c: r[c] for c in by}, "n": r["n"], "value": r["mean"]}
                for r in sorted(rows, key=lambda r: tuple(_order(c, r[c]) for c in by))]
    return out


def _order(column: str, value) -> tuple:
    """Sort key of a subset key: None last, version bands in band order, numbers as numbers."""
    if value is None:
        return (1, 0)
    if column == "version_band":
        return (0, [f"{low}-{high}" for low, high in VERSION_BANDS].index(value))
    return (0, value if isinstance(value, (int, float)) else str(value))


def config_accuracy(accuracy: Sequence[dict]) -> list[dict]:
    """The per-config rows of an ``accuracy`` section (those without a ``group``)."""
    return [r for r in accuracy if "group" not in r]


def headline_config(configs: Sequence[str]) -> str | None:
    """``HEADLINE_CONFIG`` when it is among ``configs``, else the first of them (None for none)."""
    configs = list(configs)
    return HEADLINE_CONFIG if HEADLINE_CONFIG in configs else (configs[0] if configs else None)


def competence_accuracy(accuracy: Sequence[dict]) -> dict | None:
    """The per-config accuracy row competence is judged on: that of ``headline_config``."""
    rows = config_accuracy(accuracy)
    config = headline_config([r["config"] for r in rows])
    return next((r for r in rows if r["config"] == config), None)


def is_competent(accuracy: Sequence[dict]) -> bool:
    """Accuracy of ``competence_accuracy`` >= ``COMPETENCE_FLOOR`` (False without an accuracy row)."""
    row = competence_accuracy(accuracy)
    return row is not None and row["value"] is not None and row["value"] >= COMPETENCE_FLOOR


def model_competence(summary: dict) -> tuple[bool, float]:
    """(competent, floor) as a summary.json records them in ``model``; for a summary written before they
    were recorded, judged from its ``accuracy`` rows with ``COMPETENCE_FLOOR``."""
    model = summary["model"]
    if "competent" in model:
        return bool(model["competent"]), float(model.get("competence_floor", COMPETENCE_FLOOR))
    return is_competent(summary["accuracy"]), COMPETENCE_FLOOR


def floor_misses(summary: dict, clean_floor: float, distorted_floor: float,
                 severities: Sequence[int] = (1, 2, 3)) -> list[str]:
    """One line per accuracy floor a model's summary misses: the clean ``standard`` accuracy below
    ``clean_floor``, and for each distortion-family config (blur, noise, ...; not ``paper``, whose
    distortions are the authors' mix without severities) the mean over ``severities`` of its per-severity
    accuracy below ``distorted_floor`` (a config without those severities is named as unmeasured)."""
    name = summary["model"].get("name", "model")
    misses = []
    for row in config_accuracy(summary["accuracy"]):
        if row["config"] == HEADLINE_CONFIG and row["value"] < clean_floor:
            misses.append(f"{name}: accuracy {row['value']:.3f} on clean `{HEADLINE_CONFIG}` is below the "
                          f"preset's floor {clean_floor:.2f}")
    graded = [r for r in summary["accuracy"]
              if r.get("group") == "distortion" and r["config"] in DISTORTION_FAMILIES]
    for config in sorted({r["config"] for r in graded}):
        values = [r["value"] for r in graded if r["config"] == config and r["severity"] in severities]
        if len(values) < len(severities):
            misses.append(f"{name}: `{config}` lacks rows at severities {list(severities)}; its floor is "
                          "unmeasured")
        elif float(np.mean(values)) < distorted_floor:
            misses.append(f"{name}: mean accuracy {np.mean(values):.3f} over severities "
                          f"{min(severities)}-{max(severities)} of `{config}` is below the preset's floor "
                          f"{distorted_floor:.2f}")
    return misses
