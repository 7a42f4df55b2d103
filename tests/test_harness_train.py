"""Training regimes: checkpoints, freezing, resume, the FT-LeakMin penalty, bad input."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors.torch import load_file

from cambench_qr.cams import CamEngine
from cambench_qr.cli import main as cli_main
from cambench_qr.dataset_builder.build import build_dataset
from cambench_qr.harness import train as train_module
from cambench_qr.harness.models import build_model, load_checkpoint, set_trainable
from cambench_qr.harness.penalty import leak_penalty
from cambench_qr.parts import BACKGROUND, DATA, FINDER, QUIET_ZONE, TIMING

TINY = {"image_size": 64, "batch_size": 8, "quiet": True}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("data") / "cambench"
    return str(build_dataset("standard", root, num_train=24, num_test=4, image_size=64, quiet=True))


@pytest.fixture(scope="module")
def zs_model(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("zs") / "model"
    return train_module.train(data=data, out=out, backbone="test_resnet", pretrained="none", regime="zs",
                              epochs=1, **TINY)


def test_zs_checkpoint_reloads_with_timm_and_only_the_head_trained(zs_model):
    info = json.loads((zs_model / "training.json").read_text())
    assert info["regime"] == "zs" and info["depth"] == "head" and info["num_processes"] == 1
    assert info["lr"] == 1e-3 and len(info["history"]) == 1 and 0 <= info["history"][0]["train_acc"] <= 1
    assert not (zs_model / "state").exists()
    reloaded = timm.create_model(f"local-dir:{zs_model}", pretrained=True)
    assert reloaded.num_classes == 2 and list(reloaded.pretrained_cfg["label_names"]) == ["non_qr", "qr"]
    saved = load_file(zs_model / "model.safetensors")
    state = reloaded.state_dict()
    assert set(saved) == set(state) and all(torch.equal(saved[k], state[k]) for k in saved)
    initial = build_model("test_resnet", "none", seed=0).state_dict()
    params = dict(reloaded.named_parameters())
    changed = {k for k in params if not torch.equal(params[k], initial[k])}
    assert changed == {"fc.weight", "fc.bias"}


def test_resume_after_interruption_matches_an_uninterrupted_run(data, zs_model, tmp_path, monkeypatch):
    settings = dict(data=data, init_from=zs_model, regime="ft_struct", epochs=2, **TINY)
    straight = train_module.train(out=tmp_path / "straight", **settings)

    original = train_module._save_state

    def save_then_crash(accelerator, state_root, epoch, *args):
        original(accelerator, state_root, epoch, *args)
        if epoch == 1:
            raise KeyboardInterrupt("simulated interruption after epoch 1")

    monkeypatch.setattr(train_module, "_save_state", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train_module.train(out=tmp_path / "resumed", **settings)
    monkeypatch.setattr(train_module, "_save_state", original)
    with pytest.raises(FileExistsError, match="--resume"):
        train_module.train(out=tmp_path / "resumed", **settings)
    # a resume with other settings would train with the saved ones but record the new: an error naming them
    with pytest.raises(ValueError, match=r"lr 0\.001 -> 0\.01; .*seed 0 -> 5") as info:
        train_module.train(out=tmp_path / "resumed", resume=True, **{**settings, "lr": 0.01, "seed": 5})
    assert "\n" not in str(info.value) and "batch_size" not in str(info.value)
    with pytest.raises(ValueError, match=r"permute_labels False -> True"):  # real and permuted labels mixed
        train_module.train(out=tmp_path / "resumed", resume=True, **{**settings, "permute_labels": True})
    resumed = train_module.train(out=tmp_path / "resumed", resume=True, **settings)

    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    history = json.loads((resumed / "training.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history == json.loads((straight / "training.json").read_text())["history"]


def test_leak_penalty_by_hand():
    parts = torch.full((1, 4, 4), DATA, dtype=torch.uint8)
    parts[0, 0, :] = BACKGROUND  # 4 outside pixels
    parts[0, 1, 0] = QUIET_ZONE  # 1 more outside pixel
    parts[0, 3, :2] = FINDER
    parts[0, 3, 2] = TIMING  # 3 structure pixels
    cams = torch.ones(1, 2, 2)  # uniform after bilinear upsampling: every pixel holds 1/16
    penalty, outside = leak_penalty(cams, parts, leak_lambda=0.5, leak_alpha=2.0)
    assert outside.item() == pytest.approx(5 / 16)
    assert penalty.item() == pytest.approx(0.5 * 5 / 16 - 2.0 * 3 / 16)
    zero_penalty, _ = leak_penalty(-cams, parts, 1.0, 0.0)  # all-negative CAM: C = 0
    assert zero_penalty.item() == 0


def test_penalty_gradient_reaches_the_trainable_stage_only():
    model = build_model("test_resnet", "none", seed=0)
    set_trainable(model, "last")
    model.train()
    parts = torch.zeros(2, 64, 64, dtype=torch.uint8)
    parts[:, 16:48, 16:48] = FINDER
    out = CamEngine(model)(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)),
                           targets=torch.tensor([1, 1]), methods=("gradcam",), differentiable=True)
    penalty, _ = leak_penalty(out.maps["gradcam"], parts, 1.0, 0.0)
    penalty.sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("layer4."))
    assert all(g is None for n, g in grads.items() if n.startswith(("layer1.", "conv1.")))


def test_leakmin_reduces_cam_leakage_over_epochs_and_against_lambda_zero(data, zs_model, tmp_path):
    def leakage(leak_lambda: float) -> list[dict]:
        out = train_module.train(data=data, out=tmp_path / f"lm{leak_lambda}", init_from=zs_model,
                                 regime="ft_leakmin", leak_lambda=leak_lambda, epochs=4, lr=3e-3, **TINY)
        return json.loads((out / "training.json").read_text())["history"]

    penalised, plain = leakage(5.0), leakage(0.0)
    assert penalised[-1]["cam_leakage"] < penalised[0]["cam_leakage"]
    assert penalised[-1]["cam_leakage"] < plain[-1]["cam_leakage"]
    assert penalised[-1]["penalty"] == pytest.approx(5.0 * penalised[-1]["cam_leakage"], rel=1e-5)
    assert all(h["penalty"] == 0 for h in plain)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"backbone": "no_such_net"}, "unknown timm backbone"),
        ({"config": "blur"}, "has no config 'blur'"),
        ({"backbone": "test_vit3"}, "cannot take 64x64 input"),
        ({"pretrained": "timm/test_resnet.no_such_tag"}, "cannot load weights"),
        ({"pretrained": "weights.bin"}, "neither 'none'"),
        ({"regime": "ft_magic"}, "unknown regime"),
        ({"resume": True}, "no saved epoch"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"regime": "scratch", "val_share": 1.0}, "validation share must be in"),
        ({"regime": "scratch", "val_share": -0.1}, "validation share must be in"),
        ({"regime": "scratch", "augment": 6}, "augmentation severity must be an integer in 0..5"),
        ({"regime": "scratch", "label_smoothing": 1.0}, "label smoothing"),
        ({"model_args": {"patch_sizes": 8}}, "does not take the arguments"),
        ({"model_args": {"num_classes": 3}}, "set by the harness"),
    ],
)
def test_bad_input_is_a_one_line_error(data, tmp_path, overrides, message):
    settings = dict(data=data, out=tmp_path / "m", backbone="test_resnet", pretrained="none", epochs=1,
                    **TINY)
    if overrides.get("resume"):
        (tmp_path / "m" / "state").mkdir(parents=True)
    with pytest.raises(ValueError, match=message) as info:
        train_module.train(**{**settings, **overrides})
    assert "\n" not in str(info.value)


def test_cli_train_reports_errors_on_one_line(data, tmp_path, capsys):
    argv = ["--quiet", "train", "--data", data, "--out", str(tmp_path / "m"), "--backbone", "test_resnet",
            "--image-size", "64", "--epochs", "1"]
    assert cli_main(argv) == 2  # --pretrained is missing: random init must be asked for
    assert "--pretrained" in capsys.readouterr().err
    assert cli_main([*argv, "--pretrained", "none", "--batch-size", "8"]) == 0
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert load_checkpoint(tmp_path / "m")[1]["pretrained"] == "none"


def test_presets_produce_valid_train_and_evaluate_arguments():
    import inspect

    from cambench_qr.dataset_builder.build import build_dataset as build
    from cambench_qr.harness.evaluate import evaluate
    from cambench_qr.harness.presets import PRESETS

    for preset in PRESETS.values():
        names = [run.name for run in preset.runs]
        assert preset.runs[0].init_from is None
        for config, num_train, num_test in preset.datasets:
            inspect.signature(build).bind(**preset.build_kwargs(config, num_train, num_test, "d"))
        for backbone in preset.backbones:
            for run in preset.runs:
                assert run.init_from is None or names.index(run.init_from) < names.index(run.name)
                init = None if run.init_from is None else "parent_dir"
                kwargs = preset.train_kwargs(run, backbone, "d", "o", init_from=init)
                inspect.signature(train_module.train).bind(**kwargs)
                assert ("init_from" in kwargs) == (run.init_from is not None)
        inspect.signature(evaluate).bind(**preset.evaluate_kwargs("m", "d", "o"))
        for run in preset.runs:
            kwargs = preset.evaluate_kwargs("m", "d", "o", run=run.name)
            inspect.signature(evaluate).bind(**kwargs)
            wanted = run.name in preset.sanity_runs and preset.sanity_images > 0
            assert kwargs.get("sanity", False) == wanted
    quick = PRESETS["quick"]
    assert quick.evaluate_kwargs("m", "d", "o", run="scratch")["sanity_images"] == 32
    assert "sanity" not in quick.evaluate_kwargs("m", "d", "o", run="ft_leakmin")
    assert "zs" not in {run.regime for run in quick.runs}  # no linear probe on a random backbone
    assert {run.regime for run in quick.runs if run.init_from is None} == {"scratch"}
    with pytest.raises(ValueError, match="init_from"):
        quick.train_kwargs(quick.runs[1], quick.backbones[0], "d", "o")
