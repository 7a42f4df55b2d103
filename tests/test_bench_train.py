"""scripts/bench_train.py at its smallest: one quick-preset backbone, 32 rows at 64 px, one epoch; the JSON
result has a positive throughput for each of the three loops, all over the same number of images."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from cambench_qr.harness.presets import PRESETS

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_train.py"


def load_script():
    spec = importlib.util.spec_from_file_location("bench_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_train_smallest(tmp_path):
    bench = load_script()
    name = PRESETS["quick"].backbones[0].name
    out = tmp_path / "bench.json"
    bench.main(["--num-train", "32", "--epochs", "1", "--batch-size", "8", "--image-size", "64",
                "--backbones", name, "--json", str(out)])
    report = json.loads(out.read_text())
    assert list(report["backbones"]) == [name]
    result = report["backbones"][name]
    images = {loop: result[loop]["images"] for loop in bench.LOOPS}
    assert len(set(images.values())) == 1 and images["recipe"] == result["decode"]["rows"] < 32
    for loop in bench.LOOPS:
        assert result[loop]["images_per_s"] > 0 and result[loop]["wall_s"] > 0
    assert result["ratio_recipe_plain"] == result["recipe"]["images_per_s"] / result["plain"]["images_per_s"]
    assert report["goal_met"] == (result["ratio_recipe_plain"] >= report["goal"])
