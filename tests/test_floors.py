"""A preset's accuracy floors: misses are reported on stderr and in the report, never silently."""

from __future__ import annotations

import json
from dataclasses import replace

from cambench_qr.harness.accuracy import floor_misses
from cambench_qr.harness.presets import PRESETS
from cambench_qr.pipeline import floor_lines


def summary(name: str, clean: float, blur: list[float]) -> dict:
    rows = [{"config": "standard", "split": "test", "n": 400, "value": clean},
            {"config": "blur", "split": "test", "n": 100, "value": 0.5}]
    rows += [{"config": "blur", "split": "test", "group": "distortion", "distortion": "blur", "severity": s,
              "n": 20, "value": v} for s, v in enumerate(blur, start=1)]
    return {"model": {"name": name}, "accuracy": rows}


def test_floor_misses_by_hand():
    assert floor_misses(summary("good", 0.98, [0.95, 0.9, 0.88, 0.1, 0.0]), 0.97, 0.90) == []
    misses = floor_misses(summary("bad", 0.96, [0.95, 0.85, 0.85, 1.0, 1.0]), 0.97, 0.90)
    assert len(misses) == 2
    assert "bad: accuracy 0.960 on clean `standard`" in misses[0]
    assert "mean accuracy 0.883 over severities 1-3 of `blur`" in misses[1]
    assert "unmeasured" in floor_misses(summary("few", 0.99, [1.0, 1.0]), 0.97, 0.90)[0]
    paper = summary("paper", 0.99, [])  # the paper config's mixed distortions have no severities
    paper["accuracy"].append({"config": "paper", "split": "test", "group": "distortion",
                              "distortion": "blur+noise", "severity": None, "n": 20, "value": 0.5})
    assert floor_misses(paper, 0.97, 0.90) == []


def test_floor_lines_warn_on_stderr(tmp_path, capsys):
    folders = {}
    for name, clean in (("ok", 0.99), ("weak", 0.80)):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        (folders[name] / "summary.json").write_text(json.dumps(summary(name, clean, [1.0, 1.0, 1.0])))
    preset = replace(PRESETS["quick"], accuracy_floors=(0.97, 0.90))
    lines = floor_lines(preset, folders)
    assert lines[0].startswith("**Accuracy floors missed**")
    assert any("weak: accuracy 0.800" in line for line in lines)
    assert "warning: weak: accuracy 0.800" in capsys.readouterr().err
    assert floor_lines(preset, {"ok": folders["ok"]})[0].startswith("Every model meets")
    assert floor_lines(replace(preset, accuracy_floors=None), folders) == []
