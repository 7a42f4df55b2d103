"""Sanity checks: map similarity against scipy / scikit-image / hand counts, randomization blocks and their
safe re-draw, the tests' bookkeeping, the pass/fail rule, and training on permuted labels."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats
import timm
import torch
from skimage.metrics import structural_similarity

from cambench_qr.harness.map_similarity import map_similarity, spearman, ssim, topk_intersection
from cambench_qr.harness.randomization import chunk_blocks, randomization_blocks, randomize_
from cambench_qr.harness.sanity import (
    RHO_MAX,
    SanityResult,
    SanityStep,
    data_randomization,
    model_randomization,
    passes_sanity,
    random_logit,
    sanity_rows,
)
from tests.test_cams_parity import benchmark_batch


def _model(name: str = "test_resnet", seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return timm.create_model(name, num_classes=2)


@pytest.fixture(scope="module")
def batch():
    return benchmark_batch(64, 5)


# --- similarity measures -------------------------------------------------------------------------------

def test_spearman_matches_scipy_with_ties_and_constant_maps():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4, 9, 11, generator=gen)
    b = a + torch.randn(4, 9, 11, generator=gen)
    a[0, :4] = 0.0  # ties
    b[1] = b[1].round()  # many ties
    ours = spearman(a, b).numpy()
    ref = [scipy.stats.spearmanr(a[i].flatten(), b[i].flatten()).statistic for i in range(4)]
    assert np.abs(ours - ref).max() < 1e-12
    assert spearman(a[:1], torch.zeros(1, 9, 11)).isnan().all()


def test_ssim_matches_scikit_image():
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(3, 20, 17, generator=gen, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(3, 20, 17, generator=gen, dtype=torch.float64)).clamp(0, 1)
    ours = ssim(a, b).numpy()
    ref = [structural_similarity(a[i].numpy(), b[i].numpy(), data_range=1.0) for i in range(3)]
    assert np.abs(ours - ref).max() < 1e-12
    assert ssim(a, a).numpy() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="smaller than the 7-px SSIM window"):
        ssim(torch.rand(1, 5, 5), torch.rand(1, 5, 5))


def test_topk_intersection_by_hand():
    a = torch.arange(20.0).view(1, 4, 5)  # top 4 (share 0.2): pixels 16..19
    b = a.clone()
    b[0, 3, 4] = -1.0  # pixel 19 leaves b's top 4, pixel 15 enters
    assert topk_intersection(a, b, 0.2).item() == pytest.approx(3 / 4)
    assert topk_intersection(a, -a, 0.2).item() == 0.0
    assert topk_intersection(a, a, 0.01).item() == 1.0  # k = ceil(0.2) = 1
    with pytest.raises(ValueError, match="top-k share"):
        topk_intersection(a, a, 0.0)


def test_map_similarity_columns():
    a = torch.randn(2, 16, 16, generator=torch.Generator().manual_seed(2))
    same = map_similarity(a, a)
    for name in ("spearman", "spearman_abs", "ssim", "topk"):
        assert torch.allclose(same[name], torch.ones(2, dtype=same[name].dtype)), name
    flipped = map_similarity(a, -a)
    assert torch.allclose(flipped["spearman"], -torch.ones(2, dtype=torch.float64))
    assert torch.allclose(flipped["spearman_abs"], torch.ones(2, dtype=torch.float64))


# --- randomization -------------------------------------------------------------------------------------

def test_blocks_are_top_down_and_chunks_reach_the_stem():
    names = [b.name for b in randomization_blocks(timm.create_model("resnet18", num_classes=2))]
    assert names == ["fc", "layer4.1", "layer4.0", "layer3.1", "layer3.0", "layer2.1", "layer2.0",
                     "layer1.1", "layer1.0", "conv1..bn1"]
    toy = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    blocks = randomization_blocks(toy)
    assert [b.name for b in blocks] == ["2", "0"]
    chunks = chunk_blocks(randomization_blocks(timm.create_model("resnet18", num_classes=2)), 3)
    assert [len(c) for c in chunks] == [3, 4, 3] and chunks[-1][-1].name == "conv1..bn1"
    with pytest.raises(ValueError, match=r"steps must be in 1\.\.2"):
        chunk_blocks(blocks, 3)


def test_a_model_without_parameters_is_an_error(batch):
    images, parts, px = batch
    with pytest.raises(ValueError, match="has no parameters to randomize"):
        randomization_blocks(torch.nn.Sequential(torch.nn.ReLU()))
    with pytest.raises(ValueError, match="no parameters to randomize"):
        model_randomization(torch.nn.Sequential(torch.nn.Identity()), images, parts, px)


@pytest.mark.parametrize("name", ["test_resnet", "test_vit"])
def test_full_randomization_of_norm_layers_is_finite(name):
    model = _model(name)
    with torch.no_grad():  # trained-looking normalisation layers: random scales and running statistics
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                m.weight.uniform_(0.5, 2.0)
                m.bias.normal_()
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.1, 5.0)
    blocks = randomization_blocks(model)
    randomize_(model, blocks, seed=0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.equal(m.running_var, torch.ones_like(m.running_var))
            assert torch.equal(m.weight, torch.ones_like(m.weight))
    size = 160 if name == "test_vit" else 64
    assert torch.isfinite(model.eval()(torch.randn(2, 3, size, size))).all()


def test_randomize_is_seeded_and_touches_only_its_blocks():
    a, b = _model(), _model()
    blocks = randomization_blocks(a)
    randomize_(a, blocks[:2], seed=5)
    randomize_(b, blocks[:2], seed=5)
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    assert all(torch.equal(x, y) for x, y in pairs)
    fresh = _model()
    inside = {p for blk in blocks[:2] for p in blk.parameters}
    for key, value in a.named_parameters():
        if key not in inside:
            assert torch.equal(value, fresh.get_parameter(key)), key
        elif value.ndim > 1:
            assert not torch.equal(value, fresh.get_parameter(key)), key


# --- the tests -----------------------------------------------------------------------------------------

def test_cascading_costs_steps_plus_one_passes_per_batch_and_restores_the_model(batch):
    images, parts, px = batch
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = model_randomization(model, images, parts, px, ("gradcam", "eigencam"), steps=3, batch_size=2)
    assert result.engine_passes == (3 + 1) * math.ceil(5 / 2)
    assert [s.step for s in result.steps] == [0, 1, 2, 3]
    assert result.steps[-1].depth == 1.0 and result.steps[-1].blocks[-1] == "conv1.0..bn1"
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    cols = {k: np.asarray(v) for k, v in result.columns.items()}
    assert len(cols["method"]) == 2 * 4 * 5
    first = cols["step"] == 0
    assert np.allclose(cols["spearman"][first], 1.0) and np.allclose(cols["topk"][first], 1.0)
    again = model_randomization(model, images, parts, px, ("gradcam", "eigencam"), steps=3, batch_size=2)
    assert np.array_equal(np.asarray(again.columns["spearman"]), cols["spearman"], equal_nan=True)


def test_independent_randomizes_one_chunk_at_a_time(batch):
    images, parts, px = batch
    result = model_randomization(_model(), images, parts, px, ("gradcam",), order="independent", steps=2)
    assert [s.depth for s in result.steps] == [0.0, 3 / 6, 3 / 6]
    assert result.steps[1].blocks == ("fc", "layer4.0", "layer3.0")
    with pytest.raises(ValueError, match="order must be"):
        model_randomization(_model(), images, parts, px, order="bottom_up")


def test_random_logit_a_class_blind_method_keeps_its_map(batch):
    images, parts, px = batch
    result = random_logit(_model(), images, parts, px, ("eigencam", "gradcam"))
    cols = {k: np.asarray(v) for k, v in result.columns.items()}
    eigen = (cols["method"] == "eigencam") & (cols["step"] == 1)
    assert np.allclose(cols["spearman"][eigen], 1.0)  # EigenCAM ignores the class
    grad = (cols["method"] == "gradcam") & (cols["step"] == 1)
    assert not np.allclose(cols["spearman"][grad], 1.0)
    verdicts = {r["method"]: r["passed"] for r in sanity_rows([result], n_boot=50) if r["score"] == "verdict"}
    assert verdicts["eigencam"] is False


def test_data_randomization_of_a_model_against_itself_is_identical(batch):
    images, parts, px = batch
    model = _model()
    result = data_randomization(model, model, images, parts, px, ("gradcam",))
    assert result.engine_passes == 2
    assert np.allclose(np.asarray(result.columns["spearman"]), 1.0)
    other = data_randomization(model, _model(seed=9), images, parts, px, ("gradcam",))
    assert not np.allclose(np.asarray(other.columns["spearman"])[5:], 1.0)


def test_a_failing_library_method_is_reported_and_the_others_scored(batch):
    images, parts, px = batch
    result = model_randomization(_model(), images, parts, px, ("gradcam", "pgc:fullgrad"), steps=1)
    assert list(result.failed) == ["pgc:fullgrad"] and "broadcast" in result.failed["pgc:fullgrad"]
    rows = sanity_rows([result], n_boot=20)
    assert any(r["score"] == "error" and r["method"] == "pgc:fullgrad" for r in rows)
    grad = [r for r in rows if r["method"] == "gradcam" and r["score"] == "spearman"]
    assert all(r["n"] + r["n_invalid"] == 5 for r in grad)
    verdict = next(r for r in rows if r["score"] == "verdict" and r["method"] == "pgc:fullgrad")
    assert verdict["passed"] is None


# --- rows and the rule ---------------------------------------------------------------------------------

def _hand_result(test: str, rho: list[float], fmr: list[float], chance: float) -> SanityResult:
    result = SanityResult(test, [SanityStep(0, 0.0), SanityStep(1, 1.0, ("fc",))])
    n = len(rho)
    cols = result.columns
    for step, (rhos, fmrs) in enumerate([([1.0] * n, [0.5] * n), (rho, fmr)]):
        cols["method"] += ["m"] * n
        cols["step"] += [step] * n
        for name in ("spearman", "spearman_abs", "ssim", "topk"):
            cols[name] += rhos
        cols["fmr"] += fmrs
        for name in ("bl", "dts"):
            cols[name] += [0.1] * n
        for name in ("fmr", "bl", "dts"):
            cols[f"chance_{name}"] += [chance] * n
    return result


def test_rule_by_hand():
    low_rho = [0.1, -0.1, 0.2, 0.0]  # mean 0.05 < RHO_MAX
    at_chance = [0.1, 0.3, 0.2, 0.2]  # mean 0.2, CI within [0.1, 0.3], chance 0.2 inside
    passing = sanity_rows([_hand_result("cascading", low_rho, at_chance, 0.2)], n_boot=200)
    verdict = next(r for r in passing if r["score"] == "verdict")
    assert verdict["passed"] is True and verdict["rho"] == pytest.approx(0.05) and verdict["n"] == 4
    fmr_row = next(r for r in passing if r["score"] == "fmr" and r["step"] == 1)
    assert fmr_row["chance"] == pytest.approx(0.2) and fmr_row["kind"] == "sanity" and fmr_row["depth"] == 1.0
    high_rho = [RHO_MAX + 0.1] * 4
    assert next(r for r in sanity_rows([_hand_result("cascading", high_rho, at_chance, 0.2)], n_boot=50)
                if r["score"] == "verdict")["passed"] is False
    above_chance = [0.6, 0.7, 0.65, 0.62]
    assert next(r for r in sanity_rows([_hand_result("data", low_rho, above_chance, 0.2)], n_boot=50)
                if r["score"] == "verdict")["passed"] is False
    # random logit: the rho condition only, signed: a map that flips with the class passes, one that stays
    # positively correlated fails
    for rho, passed in ((low_rho, True), ([-0.9, -0.95, -0.97, -0.92], True), (high_rho, False)):
        assert next(r for r in sanity_rows([_hand_result("random_logit", rho, above_chance, 0.2)], n_boot=50)
                    if r["score"] == "verdict")["passed"] is passed
    # cascading: anti-correlation is still the same structure, a failure
    assert next(r for r in sanity_rows([_hand_result("cascading", [-0.9] * 4, at_chance, 0.2)], n_boot=50)
                if r["score"] == "verdict")["passed"] is False
    one = sanity_rows([_hand_result("cascading", [0.0], [0.2], 0.2)], n_boot=50)  # no CI from one image
    assert next(r for r in one if r["score"] == "verdict")["passed"] is None
    assert not any(r["score"] == "verdict" for r in sanity_rows([_hand_result("independent", low_rho,
                                                                               at_chance, 0.2)], n_boot=5))


def test_passes_sanity_combines_the_ruled_tests():
    rows = [{"kind": "sanity", "score": "verdict", "method": "a", "passed": True},
            {"kind": "sanity", "score": "verdict", "method": "a", "passed": True},
            {"kind": "sanity", "score": "verdict", "method": "b", "passed": True},
            {"kind": "sanity", "score": "verdict", "method": "b", "passed": False},
            {"kind": "sanity", "score": "verdict", "method": "c", "passed": None},
            {"kind": "sanity", "score": "fmr", "method": "d"}]
    assert passes_sanity(rows) == {"a": True, "b": False, "c": None}


# --- data randomization: training on permuted labels ---------------------------------------------------

def test_training_on_permuted_labels(tmp_path, monkeypatch):
    from cambench_qr.dataset_builder.build import build_dataset
    from cambench_qr.harness import train as train_module

    data = str(build_dataset("standard", tmp_path / "data", num_train=16, num_test=2, image_size=64,
                             quiet=True))
    seen = []
    original = train_module.batch_loss

    def spy(model, engine, images, labels, *args, **kwargs):
        seen.append(labels.clone())
        return original(model, engine, images, labels, *args, **kwargs)

    monkeypatch.setattr(train_module, "batch_loss", spy)
    settings = dict(data=data, backbone="test_resnet", pretrained="none", regime="zs", epochs=1,
                    image_size=64, batch_size=16, quiet=True)
    train_module.train(out=tmp_path / "real", **settings)
    real = torch.cat(seen)
    seen.clear()
    out = train_module.train(out=tmp_path / "permuted", permute_labels=True, **settings)
    permuted = torch.cat(seen)
    assert json.loads((out / "training.json").read_text())["permute_labels"] is True
    assert sorted(permuted.tolist()) == sorted(real.tolist()) and not torch.equal(permuted, real)
    with pytest.raises(ValueError, match="--permute-labels"):
        train_module.train(out=tmp_path / "leak", permute_labels=True, regime="ft_leakmin", augment=0,
                           **{k: v for k, v in settings.items() if k != "regime"})


# --- the hub card table and figure ---------------------------------------------------------------------

def test_sanity_table_and_figure(tmp_path):
    from cambench_qr.hub_cards.sanity import sanity_figure, sanity_table_markdown

    rows = sanity_rows([_hand_result("cascading", [0.1, -0.1, 0.2, 0.0], [0.1, 0.3, 0.2, 0.2], 0.2),
                        _hand_result("independent", [0.9] * 4, [0.5] * 4, 0.2)], n_boot=100)
    rows.append({"kind": "sanity", "test": "cascading", "method": "pgc:fullgrad", "score": "error",
                 "error": "ValueError: boom"})
    table = sanity_table_markdown(rows).splitlines()
    assert table[0].startswith("| method | test | depth | similarity")
    line = next(t for t in table if t.startswith("| m | cascading"))
    assert "| 1.00 | 0.050 [" in line and "| 0.200 [" in line and line.endswith("| 0.200 | pass |")
    assert next(t for t in table if t.startswith("| m | independent")).endswith("| - |")
    assert any("pgc:fullgrad" in t and "error: ValueError: boom" in t for t in table)
    png, svg = sanity_figure(rows, tmp_path / "sanity")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and svg.read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match="no 'data' sanity rows"):
        sanity_figure(rows, tmp_path / "x", test="data")
    with pytest.raises(ValueError, match="no sanity rows"):
        sanity_table_markdown([{"kind": "structure"}])
