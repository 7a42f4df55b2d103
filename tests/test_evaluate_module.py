"""The cambench_structure evaluate module: loads offline, and gives the core's numbers."""

import math
from pathlib import Path

import evaluate
import numpy as np
import pytest
import torch
from PIL import Image

import cambench_qr.metrics as metrics
from cambench_qr.metrics.scores import score_table_markdown
from cambench_qr.parts import part_table_markdown

MODULE = Path(metrics.EVALUATE_MODULE)
PARTS_4 = np.array([[[2, 2, 0, 0], [2, 2, 0, 0], [4, 4, 8, 1], [8, 8, 8, 1]]], np.uint8)
SAL_4 = np.array([[[1, 0, 0, 0], [0, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 4]]], np.float32)


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(metrics.EVALUATE_MODULE, keep_in_memory=True)


def test_folder_is_a_complete_module():
    assert {p.name for p in MODULE.iterdir()} >= {"cambench_structure.py", "README.md", "requirements.txt",
                                                  "app.py"}
    card = (MODULE / "README.md").read_text()
    assert card.startswith("---\ntitle: cambench_structure\n") and "app_file: app.py" in card
    assert part_table_markdown() in card and score_table_markdown() in card
    assert "keep_in_memory=True" in card
    assert "cambench-qr" in (MODULE / "requirements.txt").read_text().split()
    assert "launch_gradio_widget(" not in (MODULE / "app.py").read_text()


def test_worked_example_of_the_card(metric):
    r = metric.compute(saliency=SAL_4, parts=PARTS_4)
    got = {k: round(r[k], 4) for k in ("fmr", "chance_fmr", "tmr", "bl", "chance_bl", "rank_finder", "dts")}
    assert got == {"fmr": 0.25, "chance_fmr": 0.25, "tmr": 0.25, "bl": 0.5, "chance_bl": 0.375,
                   "rank_finder": 0.5, "dts": round(0.5 * math.sqrt(5) / math.sqrt(32), 4)}
    assert str(got) in (MODULE / "README.md").read_text()


def test_same_numbers_as_the_core(metric):
    g = torch.Generator().manual_seed(0)
    sal = torch.rand(5, 12, 14, generator=g)
    sal[3] = 0  # invalid map: NaN, counted
    parts = torch.randint(0, 10, (5, 12, 14), generator=g).to(torch.uint8)
    parts[4][parts[4] == 2] = 8  # no finder: finder scores NaN, counted
    core = metrics.structure_scores(sal, parts, module_px=2.0)
    r = metric.compute(saliency=sal, parts=parts, module_px=2.0, return_per_sample=True)
    for name in ("fmr", "tmr", "bl", "auc_misf", "auc_mist", "auc_bg", "dts", "dts_modules", "roc_auc_box",
                 "chance_fmr", "chance_dts"):
        np.testing.assert_allclose(r["per_sample"][name], core[name].numpy(), rtol=1e-12, err_msg=name)
        assert r[name] == pytest.approx(float(np.nanmean(core[name].numpy())), rel=1e-12)
    assert r["n"] == 5 and r["n_invalid"]["fmr"] == 2 and r["n_invalid"]["bl"] == 1
    assert r["per_sample"]["valid"] == [True, True, True, False, True]


def test_add_batch_with_pil_parts_and_mixed_sizes(metric):
    rng = np.random.default_rng(1)
    maps = [rng.random((6, 8)).astype(np.float32), rng.random((5, 5)).astype(np.float32)]
    parts = [np.full((6, 8), 2, np.uint8), np.full((5, 5), 8, np.uint8)]
    parts[0][:, :4] = 0
    metric.add_batch(saliency=maps[:1], parts=[Image.fromarray(parts[0])])
    metric.add(saliency=torch.from_numpy(maps[1]), parts=Image.fromarray(parts[1]))
    r = metric.compute(return_per_sample=True)
    expected = float(metrics.structure_scores(maps[0][None], parts[0][None])["fmr"][0])
    assert r["per_sample"]["fmr"][0] == pytest.approx(expected) and expected == pytest.approx(0.5, abs=0.3)
    assert math.isnan(r["per_sample"]["fmr"][1])  # the second map has no finder
    with pytest.raises(ValueError, match="^saliency map 1 is 5x5 but its part map is 4x5$"):
        metric.compute(saliency=maps, parts=[parts[0], parts[1][:4]])
    with pytest.raises(ValueError, match="non-finite"):
        metric.compute(saliency=[np.full((3, 3), np.nan, np.float32)], parts=[np.zeros((3, 3), np.uint8)])


def test_space_app_scores_uploaded_images():
    """app.py (the Space demo) with the real gradio: its interface is built on ``score``, which gives the
    core's numbers for an uploaded pair and turns bad input (nothing uploaded, a part map of another size
    than the saliency map, part ids above 9) into a one-line ``gr.Error``. In a browser:
    tests/test_browser.py."""
    import importlib.util
    import os

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    spec = importlib.util.spec_from_file_location("cambench_structure_app", MODULE / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    assert isinstance(app.demo, gr.Interface) and app.demo.fn is app.score

    parts = np.kron(PARTS_4[0], np.ones((4, 4), np.uint8))
    saliency = np.kron(SAL_4[0], np.ones((4, 4), np.float32)) * 60
    upload, part_image = Image.fromarray(saliency.astype(np.uint8)), Image.fromarray(parts)
    for pitch in (0, 4.0):  # 0: unknown pitch (dts_modules NaN)
        rows = app.score(upload, part_image, pitch, "sum", "standard")
        core = metrics.summarize(saliency[None], parts[None], module_px=pitch or None)
        assert [r[0] for r in rows] == list(app.HEADLINE)
        for name, value, chance in rows:
            assert value == pytest.approx(core[name], abs=1e-4, nan_ok=True), name
            assert chance == pytest.approx(core[f"chance_{name}"], abs=1e-4, nan_ok=True), name
        assert math.isnan(rows[app.HEADLINE.index("dts_modules")][1]) == (pitch == 0)
    assert app.score(upload, part_image, 0, "sum", "standard")[0] == ["fmr", 0.25, 0.25]  # the card's example
    with pytest.raises(gr.Error, match="upload"):
        app.score(None, part_image, 0, "sum", "standard")
    with pytest.raises(gr.Error, match="the part map is 16x16 px but the saliency map is 8x8 px"):
        app.score(upload.resize((8, 8), Image.NEAREST), part_image, 0, "sum", "standard")
    with pytest.raises(gr.Error, match="the part map holds id 18: part ids are 0..9"):
        app.score(upload, Image.fromarray(parts + 10), 0, "sum", "standard")


def test_bfloat16_saliency_scores_as_its_float32_values(metric):
    """It raised "Got unsupported ScalarType BFloat16"."""
    sal = torch.from_numpy(SAL_4).bfloat16()
    r = metric.compute(saliency=sal, parts=PARTS_4)
    assert r["fmr"] == pytest.approx(float(metrics.structure_scores(sal.float(), PARTS_4)["fmr"][0]))


@pytest.mark.parametrize("saliency, parts, message", [
    (SAL_4, PARTS_4 > 3, "parts must hold integer part ids 0..9, got torch.bool"),
    (SAL_4.astype(np.int64), PARTS_4, "floating-point values .* got torch.int64"),
    (SAL_4 > 0, PARTS_4, "floating-point values .* got torch.bool"),
])
def test_bool_and_integer_inputs_are_refused_as_by_structure_scores(metric, saliency, parts, message):
    """The module stored bool parts as ids 0/1 (all-NaN scores) and integer saliency as floats."""
    with pytest.raises(ValueError, match=message):
        metrics.structure_scores(saliency, parts)
    with pytest.raises(ValueError, match=message):
        metric.compute(saliency=saliency, parts=parts)


@pytest.mark.parametrize("saliency, parts", [
    (np.random.default_rng(0).random((40, 3, 64, 64), np.float32), np.zeros((40, 64, 64), np.uint8)),
    (np.random.default_rng(0).random((40, 64, 64), np.float32), np.full((40, 64, 64), 300, np.int64)),
])
def test_errors_are_one_short_line_without_the_arrays(metric, saliency, parts):
    """The module's errors dumped the inputs (up to 1.1 MB)."""
    with pytest.raises(ValueError) as error:
        metric.compute(saliency=saliency, parts=parts)
    assert "\n" not in str(error.value) and len(str(error.value)) < 120
