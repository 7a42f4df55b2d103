"""The results schema (cambench_qr.results): typed rows read and write summary.json rows key for key, and
bad summaries are one-line errors naming what is wrong."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
from hub_summaries import summary

from cambench_qr.results import (
    ROW_KINDS,
    SCHEMA_VERSION,
    CrossResolutionRow,
    GroupedAccuracyRow,
    Record,
    Summary,
    VsNullRow,
    method_label,
    row_kind,
)


def test_rows_read_like_their_json():
    payload = summary()
    typed = Summary.from_json(payload)
    row = typed.structure[0]
    assert row.mean == row["mean"] == payload["structure"][0]["mean"]
    assert row.as_json() == payload["structure"][0] and list(row) == list(payload["structure"][0])
    grouped = typed.grouped_accuracy()[0]
    assert isinstance(grouped, GroupedAccuracyRow) and "group" in grouped
    assert grouped.as_json() == next(r for r in payload["accuracy"] if "group" in r)
    assert isinstance(typed.vs_null[0], VsNullRow) and typed.vs_null[0].as_json() == payload["vs_null"][0]
    assert typed.model.competent is True and "competent" in typed.model


def test_cross_resolution_error_rows_keep_only_their_fields():
    failed = {"kind": "cross_resolution", "config": "standard", "split": "test", "image_size": 33,
              "error": "too small"}
    assert CrossResolutionRow.from_json(failed).as_json() == failed
    scored = {"kind": "cross_resolution", "config": "standard", "split": "test", "method": "gradcam",
              "image_size": 64, "score": "fmr", "n": 3, "mean": None, "std": None}
    assert CrossResolutionRow.from_json(scored).as_json() == scored


def test_legacy_summaries_omit_what_they_lack():
    typed = Summary.from_json(summary(legacy=True))
    assert typed.vs_null is None and "vs_null" not in typed.as_json()
    assert typed.model.competent is None and "competent" not in typed.model.as_json()


def _broken(edit) -> dict:
    payload = copy.deepcopy(summary())
    edit(payload)
    return payload


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.update(schema_version=SCHEMA_VERSION + 1), "schema_version 2"),
    (lambda s: s.pop("structure"), "lacks structure"),
    (lambda s: s["structure"][0].update(colour="red"), "'structure': StructureRow has no field.* colour"),
    (lambda s: s["structure"][0].pop("score"), "section 'structure': StructureRow missing .*'score'"),
    (lambda s: s["vs_null"][0].update(kind="nope"), "section 'vs_null': row kind 'nope'"),
    (lambda s: s["accuracy"].append({"config": "standard", "split": "test", "group": "mood", "n": 1,
                                     "value": 1.0}), "accuracy group 'mood'"),
])
def test_bad_summaries_are_one_line_errors(edit, message):
    with pytest.raises(ValueError, match=message) as error:
        Summary.from_json(_broken(edit))
    assert "\n" not in str(error.value)


def test_method_labels():
    assert [method_label(m) for m in ("gradcampp", "null_uniform", "something")] == [
        "Grad-CAM++", "null: uniform", "something"]


def test_a_new_row_kind_is_one_dataclass():
    @row_kind("probe", "robustness")
    @dataclass(frozen=True, kw_only=True)
    class ProbeRow(Record):
        kind: str = "probe"
        method: str
        value: float

    try:
        payload = summary()
        payload["robustness"] = [{"kind": "probe", "method": "gradcam", "value": 0.5}]
        typed = Summary.from_json(payload)
        assert typed.rows(ProbeRow) == [ProbeRow(method="gradcam", value=0.5)]
        assert typed.as_json()["robustness"] == payload["robustness"]
        payload["vs_null"] = payload["robustness"]  # a kind is read only in its own section
        with pytest.raises(ValueError, match="'vs_null': row kind 'probe' is not one of 'vs_null'"):
            Summary.from_json(payload)
    finally:
        del ROW_KINDS["probe"]
