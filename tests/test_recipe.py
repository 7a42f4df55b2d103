"""The from-scratch recipe: schedule, validation hold-out, augmentation, best-epoch selection."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cambench_qr.dataset_builder import distortions as dist
from cambench_qr.dataset_builder.build import build_dataset
from cambench_qr.harness import train as train_module
from cambench_qr.harness.augment import FAMILIES, Augmentation
from cambench_qr.harness.data import holdout
from cambench_qr.harness.recipe import REGIME_DEFAULTS, Recipe, resolve_recipe


def test_warmup_cosine_schedule_by_hand():
    recipe = Recipe(depth="full", lr=1.0, epochs=1, schedule="cosine", warmup=0.2)
    factors = [recipe.lr_factor(s, 10) for s in range(10)]  # 2 warm-up steps, then 8 cosine steps
    assert factors[:2] == [0.5, 1.0]
    assert factors[2] == 1.0 and factors[6] == pytest.approx(0.5)
    assert factors[9] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert all(a >= b for a, b in zip(factors[1:], factors[2:], strict=False))
    assert Recipe(depth="full", lr=1.0, epochs=1).lr_factor(5, 10) == 1.0  # the paper's constant rate


def test_regime_defaults_and_overrides():
    scratch = REGIME_DEFAULTS["scratch"]
    assert (scratch.depth, scratch.optimizer, scratch.schedule) == ("full", "adamw", "cosine")
    assert scratch.label_smoothing == 0.1 and scratch.augment == 3 and scratch.val_share == 0.1
    paper = resolve_recipe("ft_leakmin", epochs=1, lr=None)
    assert (paper.epochs, paper.lr, paper.optimizer, paper.augment) == (1, 3e-4, "adam", 0)


def test_holdout_is_stratified_disjoint_and_seeded():
    labels = np.array([0] * 30 + [1] * 10)
    train, val = holdout(labels, 0.1, seed=3)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 40
    assert (labels[val] == 0).sum() == 3 and (labels[val] == 1).sum() == 1
    assert np.array_equal(val, holdout(labels, 0.1, seed=3)[1])
    assert not np.array_equal(val, holdout(labels, 0.1, seed=4)[1])
    assert len(holdout(labels, 0.0, seed=0)[1]) == 0


def test_symmetries_are_exact_and_the_builder_distortions_are_used():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (16, 3, 32, 32), dtype=np.uint8))
    turned = Augmentation(max_severity=0, max_rotation=0, max_zoom=0)(images, np.random.default_rng(1))
    seen = set()
    for original, out in zip(images, turned, strict=True):  # each output is one of the 8 symmetries
        candidates = [torch.rot90(original, k, (1, 2)) for k in range(4)]
        candidates += [c.flip(2) for c in candidates]
        matches = [j for j, c in enumerate(candidates) if torch.equal(out, c)]
        assert matches
        seen.add(matches[0])
    assert len(seen) >= 5  # 16 draws reach most of the 8

    # p_distort 1 with only the blur family's severity 1: the builder's own blur, pixel for pixel
    only = Augmentation(max_severity=1, p_distort=1.0, symmetries=False, max_rotation=0, max_zoom=0)
    for seed in range(4):  # replay the augmentation's random stream: draw, family, severity, distortion
        out = only(images[:1], np.random.default_rng(seed))
        replay = np.random.default_rng(seed)
        replay.random(1)
        family = FAMILIES[int(replay.integers(len(FAMILIES)))]
        assert int(replay.integers(1, 2)) == 1
        if family == "occlusion":
            changed = (out[0] != images[0]).any(0)
            assert changed.any() and len(torch.unique(out[0][:, changed], dim=1).T) == 1  # one flat colour
        else:
            expected = dist.photometric(family, 1, images[0].permute(1, 2, 0).numpy().copy(), replay)
            assert torch.equal(out[0], torch.from_numpy(expected).permute(2, 0, 1))


def test_augmentation_is_reproducible_and_checks_its_settings():
    images = torch.full((8, 3, 64, 64), 128, dtype=torch.uint8)
    aug = Augmentation()
    a, b = aug(images, np.random.default_rng(7)), aug(images, np.random.default_rng(7))
    assert a.dtype == torch.uint8 and a.shape == images.shape and torch.equal(a, b)
    with pytest.raises(ValueError, match="0..5"):
        Augmentation(max_severity=6)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("data") / "cambench"
    return str(build_dataset("standard", root, num_train=40, num_test=4, image_size=64, quiet=True))


def test_scratch_logs_validation_accuracy_and_keeps_the_best_epoch(data, tmp_path, monkeypatch):
    scores = iter([0.6, 0.9, 0.7])  # epoch 2 validates best
    weights = {}
    original = train_module.validation_accuracy

    def scripted(model, *args):
        original(model, *args)  # the real pass runs (and must not fail); its value is replaced
        epoch = len(weights) + 1
        weights[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return next(scores)

    monkeypatch.setattr(train_module, "validation_accuracy", scripted)
    out = train_module.train(data=data, out=tmp_path / "m", backbone="test_resnet", pretrained="none",
                             regime="scratch", epochs=3, image_size=64, batch_size=8, quiet=True)
    info = json.loads((out / "training.json").read_text())
    assert [h["val_acc"] for h in info["history"]] == [0.6, 0.9, 0.7]
    assert info["best_epoch"] == 2 and info["best_val_acc"] == 0.9
    assert info["n_val"] == 4 and info["n_train"] == 36 and info["optimizer"] == "adamw"
    assert info["history"][-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine ends at 0
    saved = load_file(out / "model.safetensors")
    assert all(torch.equal(saved[k], weights[2][k]) for k in saved)
    assert not all(torch.equal(saved[k], weights[3][k]) for k in saved)


def test_validation_accuracy_by_hand(data):
    from cambench_qr.harness.data import CachedRows, TensorRows, load_split

    rows = CachedRows(TensorRows(load_split(data, "standard", "train"), 64, with_parts=False), quiet=True)

    class Constant(torch.nn.Module):  # always predicts "qr"
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.stack([torch.zeros(len(x)), torch.ones(len(x))], 1)

    val = np.arange(10)
    expected = float((rows.tensors["label"][:10] == 1).float().mean())
    acc = train_module.validation_accuracy(Constant(), rows, val, (0.5,) * 3, (0.5,) * 3)
    assert acc == pytest.approx(expected)


def test_one_process_trains_bf16_then_float32(data, tmp_path):
    """`cambench-qr run` trains several backbones in one process, each with its own precision."""
    common = dict(data=data, backbone="test_resnet", pretrained="none", regime="scratch", epochs=1,
                  image_size=64, batch_size=8, quiet=True)
    for precision in ("bf16", "no"):
        out = train_module.train(out=tmp_path / precision, precision=precision, **common)
        assert json.loads((out / "training.json").read_text())["precision"] == precision
