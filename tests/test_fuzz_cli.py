"""Fuzz: generated bad inputs thrown at every CLI command (in-process, ``cambench_qr.cli.main``) and at the
CAM engine (``cams.compute_cams`` on a tiny timm model). Each must end in a clear error: exit status 2
with one line on stderr (the CLI), or a ValueError / TypeError with a short one-line message (the engine);
never a traceback, never a silent success. The counts of each outcome are printed."""

from __future__ import annotations

import collections
import itertools
import json
import shutil
from pathlib import Path

import pytest
import timm
import torch

from cambench_qr import cli
from cambench_qr.cams import METHODS, compute_cams
from cambench_qr.dataset_builder.build import build_dataset

BAD_INTS = ["-1", "abc", "", "1.5", "nan", "99999999999999999999", "0x10"]
BAD_SIZES = ["0", "-5", "7", "100000", "inf", "1e3"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A tiny dataset, a model folder and damaged copies, a photo folder with a binary manifest, files."""
    root = tmp_path_factory.mktemp("fuzz")
    data = build_dataset("standard", root / "data", num_train=4, num_test=4, image_size=64, quiet=True)
    model = root / "model"
    timm.models.save_for_hf(timm.create_model("test_resnet", num_classes=2), str(model),
                            model_config={"label_names": ["non_qr", "qr"]}, safe_serialization=True)
    (model / "training.json").write_text(json.dumps({"backbone": "test_resnet", "image_size": 64}))
    damaged = {
        "truncated": lambda m: (m / "model.safetensors").write_bytes(
            (m / "model.safetensors").read_bytes()[:99]),
        "garbage_json": lambda m: (m / "training.json").write_text("{]"),
        "binary_json": lambda m: (m / "training.json").write_bytes(bytes(range(256))),
        "binary_config": lambda m: (m / "config.json").write_bytes(b"\x00\xff" * 50),
        "empty_weights": lambda m: (m / "model.safetensors").write_bytes(b""),
        "no_weights": lambda m: (m / "model.safetensors").unlink(),
    }
    world = {"data": data, "model": model, "root": root}
    for name, damage in damaged.items():
        shutil.copytree(model, root / name)
        damage(root / name)
        world[name] = root / name
    world["file"] = root / "a_file.txt"
    world["file"].write_text("not a folder")
    world["foreign"] = root / "foreign"
    (world["foreign"] / "notes.txt").parent.mkdir()
    (world["foreign"] / "notes.txt").write_text("someone else's folder")
    photos = {"binary_manifest": b"\x89PNG\r\n\x1a\n\x00\x00" * 20,
              "no_columns": b"a,b\n1,2\n",
              "bad_rows": b'file,decoded,corners,version,expected_text\nx.png,True,"[[nan]]",1,t\n'
                          b'y.png,True,"[[0,0],[1,0],[1,1],[0,1]]",99,t\nz.png,True\n'}
    for name, content in photos.items():
        (root / name).mkdir()
        (root / name / "manifest.csv").write_bytes(content)
        world[name] = root / name
    world["summary_garbage"] = root / "results_garbage"
    world["summary_garbage"].mkdir()
    (world["summary_garbage"] / "summary.json").write_bytes(b"\x00\x01garbage")
    world["summary_wrong"] = root / "results_wrong"
    world["summary_wrong"].mkdir()
    (world["summary_wrong"] / "summary.json").write_text(json.dumps({"schema_version": 99}))
    return world


def cli_inputs(w: dict[str, Path]) -> list[list[str]]:
    """Bad command lines (without --out where the command writes one; the test adds it)."""
    build = ["build", "--config", "standard", "--num-train", "2", "--num-test", "2", "--image-size", "64"]
    inputs: list[list[str]] = [[], ["nope"], ["--bogus"], ["build"], ["train"], ["evaluate"], ["leaderboard"]]
    inputs += [["build", "--config", name] for name in ("nope", "", "STANDARD", "../standard", "real")]
    inputs += [["build", "--config", "standard", flag, value]
               for flag, value in itertools.product(("--num-train", "--num-test", "--seed", "--num-proc"),
                                                    BAD_INTS)]
    inputs += [[*build, "--image-size", value] for value in BAD_SIZES]
    inputs += [["build", "--config", "standard", "--num-train", "0", "--num-test", "0"],
               ["build", "--config", "interventions", "--num-train", "5"],
               ["build", "--config", "paper", "--image-size", "128"],
               ["build", "--config", "standard", "--photos", str(w["root"])],
               [*build, "--push", "alice/x"]]
    inputs += [["build", "--config", "real", "--photos", str(w[name])]
               for name in ("binary_manifest", "no_columns", "bad_rows", "file", "data")]
    inputs += [["build", "--config", "real", "--photos", str(w["root"] / "missing")]]
    train = ["train", "--data", str(w["data"]), "--backbone", "test_resnet", "--pretrained", "none",
             "--image-size", "64"]
    inputs += [[*train, flag, value] for flag, value in (
        ("--epochs", "0"), ("--epochs", "-1"), ("--epochs", "1e9"), ("--lr", "nan"), ("--lr", "inf"),
        ("--lr", "-1"), ("--lr", "x"), ("--weight-decay", "-inf"), ("--warmup", "2"),
        ("--label-smoothing", "1.5"),
        ("--val-share", "1.0"), ("--augment", "9"), ("--num-train", "1"), ("--batch-size", "0"),
        ("--batch-size", "99999999"), ("--image-size", "4"), ("--image-size", "100000"), ("--seed", "-1"),
        ("--model-args", "{bad"), ("--regime", "nope"), ("--depth", "nope"), ("--optimizer", "sgd2"),
        ("--precision", "fp8"), ("--schedule", "nope"), ("--leak-lambda", "-1"), ("--leak-alpha", "nan"),
        ("--config", "nope"), ("--data", str(w["root"] / "missing")), ("--data", str(w["file"])),
        ("--data", "nobody/nothing"))]
    inputs += [["train", "--data", str(w["data"]), "--pretrained", "none"],
               ["train", "--data", str(w["data"]), "--backbone", "test_resnet"],
               [*train, "--resume"]]
    inputs += [["train", "--data", str(w["data"]), "--init-from", str(w[name]), "--regime", "ft_struct"]
               for name in ("truncated", "garbage_json", "binary_json", "binary_config", "empty_weights",
                            "no_weights", "file", "data")]
    inputs += [["train", "--data", str(w["data"]), "--init-from", str(w["root"] / "missing")]]
    evaluate = ["evaluate", "--model", str(w["model"]), "--data", str(w["data"])]
    inputs += [[*evaluate, flag, value] for flag, value in (
        ("--batch-size", "0"), ("--batch-size", "-3"), ("--image-size", "7"), ("--image-size", "1e9"),
        ("--max-samples", "0"), ("--n-boot", "0"), ("--n-boot", "x"), ("--seed", "-2"),
        ("--cross-resolution", "a,b"), ("--cross-resolution", "0"), ("--cross-resolution", "5000"),
        ("--latency-batch", "-1"), ("--faithfulness-samples", "-1"), ("--data", str(w["root"] / "missing")),
        ("--data", "nobody/nothing"), ("--methods", "nope"), ("--configs", "nope"))]
    inputs += [["evaluate", "--model", str(w[name]), "--data", str(w["data"])]
               for name in ("truncated", "garbage_json", "binary_json", "binary_config", "empty_weights",
                            "no_weights", "file", "data")]
    inputs += [["evaluate", "--model", str(w["root"] / "missing"), "--data", str(w["data"])]]
    inputs += [["leaderboard", "--results", str(w[name])]
               for name in ("summary_garbage", "summary_wrong", "data", "file")]
    inputs += [["leaderboard", "--results", str(w["root"] / "missing")]]
    inputs += [["push", "--user", user] for user in ("bad name!", "", "a/b")]
    inputs += [["push", "--user", "alice", "--what", "nope"],
               ["push", "--user", "alice", "--hub-root", str(w["root"] / "missing")]]
    inputs += [["run", "--preset", "nope"], ["run", "--user", "bad/user"]]
    return inputs


WRITES_OUT = ("build", "train", "evaluate", "leaderboard")


def test_cli_answers_every_bad_input_with_one_line(world, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    outcomes: collections.Counter = collections.Counter()
    failures = []
    for k, argv in enumerate(cli_inputs(world)):
        out = tmp_path / f"out{k}" / "o"
        if argv and argv[0] in WRITES_OUT and len(argv) > 1:
            argv = [*argv, "--out", str(out)]
        if argv and argv[0] == "run":
            argv = [*argv, "--hub-root", str(out), "--work", str(out), "--report", str(out)]
        try:
            code = cli.main(["--quiet", *argv])
        except BaseException as exc:  # noqa: BLE001 - a traceback is the defect this test looks for
            failures.append((argv, f"raised {type(exc).__name__}: {exc}"))
            outcomes["traceback"] += 1
            continue
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line and not line.startswith("note: ")]
        if code != 2 or len(lines) != 1 or "error: " not in lines[0]:
            failures.append((argv, f"exit {code}, stderr {err!r}"))
            outcomes["silent or unclear"] += 1
        elif out.parent.exists():
            failures.append((argv, f"left {out.parent} behind"))
            outcomes["left output behind"] += 1
        else:
            outcomes["parser error" if "(see --help)" in lines[0] else "checked error"] += 1
    print(f"\nCLI: {sum(outcomes.values())} bad inputs: {dict(outcomes)}")
    assert sum(outcomes.values()) >= 100
    assert failures == []


@pytest.fixture(scope="module")
def tiny_model():
    return timm.create_model("test_resnet", num_classes=2).eval()


def cam_inputs() -> list[dict]:
    """Bad calls the engine rejects today (shapes, targets, methods, target layers)."""
    x = torch.randn(2, 3, 32, 32)
    cases: list[dict] = [{"images": x[0]}, {"images": x[None]}, {"images": x.flatten()},
                         {"images": torch.zeros(2, 3, 32, 32, 1)}]
    cases += [{"images": x, "targets": t} for t in (
        torch.tensor([0.5, 1.0]), torch.tensor([-1, 0]), torch.tensor([5, 0]), torch.tensor([2, 2]),
        torch.tensor([0]), torch.tensor([0, 1, 0]), torch.tensor([[0], [1]]), torch.tensor([True, False]),
        torch.tensor([float("nan"), 0.0]), [0.5, 1], [7, 0], [0], "ab", torch.zeros(0, dtype=torch.long))]
    cases += [{"images": x, "methods": m} for m in (
        ("nope",), (), (1,), ("GradCAM",), ("gradcam", "nope"), "nope", ("",), (None,), None, 3)]
    cases += [{"images": x, "target_layer": layer} for layer in ("nope", "layer4.nope", "", 3, 2.5, object())]
    return cases


def throw_at_engine(model, cases: list[dict]) -> tuple[collections.Counter, list]:
    """Call ``compute_cams`` with each case; count the outcomes and list the calls that did not end in a
    short one-line ValueError / TypeError."""
    outcomes: collections.Counter = collections.Counter()
    failures = []
    for case in cases:
        try:
            compute_cams(model, **case)
        except (ValueError, TypeError) as exc:
            message = str(exc)
            # 400 characters: room for the list of available method names an unknown name must get,
            # far below an array dump
            if "\n" in message or not 0 < len(message) <= 400:
                failures.append((case, f"unclear {type(exc).__name__}: {message[:500]!r}"))
                outcomes["unclear error"] += 1
            else:
                outcomes[type(exc).__name__] += 1
        except Exception as exc:  # noqa: BLE001 - anything else is the defect this test looks for
            failures.append((case, f"{type(exc).__name__}: {exc}"))
            outcomes["other exception"] += 1
        else:
            failures.append((case, "returned maps"))
            outcomes["silent"] += 1
    return outcomes, failures


def test_cam_engine_answers_every_bad_input_with_a_short_error(tiny_model):
    outcomes, failures = throw_at_engine(tiny_model, cam_inputs())
    print(f"\nCAM engine: {sum(outcomes.values())} bad inputs: {dict(outcomes)}")
    assert sum(outcomes.values()) >= 30 and failures == []
    good = compute_cams(tiny_model, torch.randn(2, 3, 32, 32), methods=METHODS)
    assert set(good) == set(METHODS)  # the engine still works after the barrage


def test_cam_engine_rejects_bad_images(tiny_model):
    x = torch.randn(2, 3, 32, 32)
    nan, inf = x.clone(), x.clone()
    nan[1, 0, 3, 3] = float("nan")
    inf[0, 2, 0, 0] = -float("inf")
    cases = [{"images": images} for images in (
        nan, inf, torch.full_like(x, float("nan")), x.to(torch.int64), (x * 50).to(torch.uint8), x > 0,
        x.tolist(), x.numpy(), None, "images", x[:0], x[:, :1], x.double(), x.half())]
    outcomes, failures = throw_at_engine(tiny_model, cases)
    print(f"\nCAM engine, bad images: {sum(outcomes.values())} bad inputs: {dict(outcomes)}")
    assert failures == []
