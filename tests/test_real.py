"""The real config: one row per decoded photo of assets/realqr, part maps that sit on the photographed
symbol (finder dark rings darker than the light separators), clear errors for bad manifests."""

import contextlib
import io
import json
import math
from pathlib import Path

import cv2
import datasets
import numpy as np
import pytest

from cambench_qr.cli import main
from cambench_qr.dataset_builder.build import build_dataset
from cambench_qr.dataset_builder.geometry import expected_colours
from cambench_qr.dataset_builder.real import photo_row, read_manifest, real_row, symbol_homography
from cambench_qr.dataset_builder.render import apply_homography
from cambench_qr.harness.accuracy import config_accuracy
from cambench_qr.harness.evaluate import evaluate
from cambench_qr.harness.train import train
from cambench_qr.harness.transfer import transfer_summary
from cambench_qr.parts import FINDER, SEPARATOR

# 138 real photographs with their decoder corners, shipped with the repository (sources and licence in
# assets/realqr/README.md).
PHOTOS = Path(__file__).resolve().parents[1] / "assets" / "realqr"


def finder_contrast(row: dict, shift: float = 0.0, window: float = 0.3) -> float:
    """(mean separator luminance - mean luminance of the finder's dark modules) / 255, over pixels whose
    centre is within ``window`` of a module's middle. Module positions come from the stored corners;
    ``shift`` (modules) moves the expected pattern, to show that the check notices a misplaced map."""
    lum = cv2.cvtColor(row["image"], cv2.COLOR_RGB2GRAY).astype(float)
    ys, xs = np.nonzero(np.isin(row["parts"], (FINDER, SEPARATOR)))
    h = symbol_homography(np.array(row["corners"]), row["version"])
    uv = apply_homography(np.linalg.inv(h), np.stack([xs + 0.5, ys + 0.5], 1)) + shift
    middle = (np.abs(uv - np.floor(uv) - 0.5) < window).all(1)
    col, r = np.floor(uv[middle]).astype(int).T
    n = 4 * row["version"] + 17
    inside = (r >= 0) & (r < n) & (col >= 0) & (col < n)
    colour = np.full(len(r), -1)
    colour[inside] = expected_colours(row["version"])[r[inside], col[inside]]
    part, value = row["parts"][ys[middle], xs[middle]], lum[ys[middle], xs[middle]]
    return float(value[part == SEPARATOR].mean() - value[(part == FINDER) & (colour == 1)].mean()) / 255


def test_manifest_counts_and_rows():
    photos, skipped = read_manifest(PHOTOS)
    assert (len(photos), skipped) == (127, 11)
    row = real_row("real", "test", 0, 0, photos=PHOTOS)
    assert row["id"] == f"real/test/{photos[0].path.stem}" and row["source"] == "real"
    assert row["image"].shape == (*row["parts"].shape, 3) and row["label"] == 1 and row["decodable"]
    assert len(row["corners"]) == 4 and row["version"] == photos[0].version and row["module_px"] > 1


def test_part_maps_sit_on_the_photographed_symbol():
    photos, _ = read_manifest(PHOTOS)
    sample = [photo_row(p) for p in photos[::3]]  # 43 photos of every source folder
    contrast = np.array([finder_contrast(row) for row in sample])
    shifted = np.array([finder_contrast(row, shift=1.0) for row in sample])
    # Dark finder rings are clearly darker than the separators on all but inverted (light-on-dark) codes.
    assert np.median(contrast) > 0.3 and np.mean(contrast > 0.05) >= 0.95, np.round(contrast, 2)
    assert np.median(shifted) < 0.5 * np.median(contrast)  # a map one module off is noticed


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """A folder with the real config (through the CLI) and a tiny standard config; the CLI's output."""
    out = tmp_path_factory.mktemp("real") / "ds"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(["--quiet", "build", "--config", "real", "--photos", str(PHOTOS), "--out", str(out)]) == 0
    build_dataset("standard", out, num_train=8, num_test=8, image_size=64, quiet=True)
    return out, printed.getvalue()


def test_cli_builds_one_row_per_decoded_photo(built):
    out, printed = built
    assert "127 test rows" in printed and "11 photos not decoded" in printed
    test = datasets.load_dataset(str(out), "real")["test"]
    assert len(test) == 127 and set(test["source"]) == {"real"} and set(test["label"]) == {1}
    assert all(len(c) == 4 for c in test["corners"]) and min(test["version"]) >= 1
    assert main(["build", "--config", "real", "--out", str(out)]) == 2  # --photos is required


def test_evaluation_reports_the_transfer_gap(built, tmp_path):
    out, _ = built
    model = train(data=str(out), out=tmp_path / "model", backbone="test_resnet", pretrained="none", epochs=1,
                  image_size=64, batch_size=8, quiet=True)
    result = evaluate(model=model, data=str(out), out=tmp_path / "eval", configs=("standard", "real"),
                      methods=("gradcam",), batch_size=8, max_samples=16, n_boot=20, faithfulness_samples=0,
                      cross_resolution=(), latency_batch=0, quiet=True)
    summary = json.loads((result / "summary.json").read_text())
    accuracy = {r["config"]: r["value"] for r in config_accuracy(summary["accuracy"])}
    fmr = {r["config"]: r["mean"] for r in summary["structure"]
           if r["method"] == "gradcam" and r["score"] == "fmr" and r["distortion"] == "none"}
    gaps = {(r["method"], r["score"]): r for r in summary["robustness"] if r.get("kind") == "transfer"}
    assert math.isclose(gaps[(None, "accuracy")]["gap"], accuracy["real"] - accuracy["standard"])
    assert math.isclose(gaps[("gradcam", "fmr")]["gap"], fmr["real"] - fmr["standard"])
    assert {s for _, s in gaps} == {"accuracy", "fmr", "tmr", "bl", "dts"}
    standard_only = [r for r in summary["accuracy"] if r["config"] == "standard"]
    assert transfer_summary(standard_only, summary["structure"]) == []


def test_bad_manifests_are_named(tmp_path):
    with pytest.raises(ValueError, match="no manifest.csv"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("file,decoded,corners,version\n")
    with pytest.raises(ValueError, match="expected_text"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text(
        'file,decoded,corners,version,expected_text\nimages/a.png,True,"[[0, 0], [1, 0]]",2,x\n')
    with pytest.raises(ValueError, match="a.png.*not found"):
        read_manifest(tmp_path)
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="4 \\[x, y\\] points"):
        read_manifest(tmp_path)
    with pytest.raises(ValueError, match="image_size"):
        real_row("real", "test", 0, 0, image_size=224, photos=PHOTOS)
