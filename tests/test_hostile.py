"""What a hostile user found (bounds, impossible corners, killed builds, push filters, tracebacks, file
modes, worker counts, lock files, card bytes): each defect reproduced, and now a clear one-line error or
the right behaviour."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import timm
from huggingface_hub.utils import filter_repo_objects

from cambench_qr import cli, limits
from cambench_qr.dataset_builder import build as build_module
from cambench_qr.dataset_builder.build import STAGING_PREFIX, build_dataset, remove_stale_staging
from cambench_qr.dataset_builder.publish import DATASET_LAYOUT, layout_files, push_dataset, upload_patterns
from cambench_qr.dataset_builder.real import build_real, read_manifest
from cambench_qr.harness.io import write_atomic
from cambench_qr.hub_cards import HubRoot
from cambench_qr.hub_cards import publish as hub_publish
from cambench_qr.hub_cards._io import write_text_atomic

REPO = Path(__file__).resolve().parents[1]


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = cli.main(["--quiet", *argv])
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return build_dataset("standard", tmp_path_factory.mktemp("data") / "ds", num_train=4, num_test=4,
                         image_size=64, quiet=True)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "m"
    model = timm.create_model("test_resnet", num_classes=2)
    timm.models.save_for_hf(model, str(folder), model_config={"label_names": ["non_qr", "qr"]},
                            safe_serialization=True)
    (folder / "training.json").write_text(json.dumps({"backbone": "test_resnet", "image_size": 64}))
    return folder


# --- 2. size-like arguments are bounded before anything is allocated --------------------------------------

@pytest.mark.parametrize("argv", [
    ["build", "--config", "standard", "--image-size", "100000"],
    ["build", "--config", "standard", "--num-test", "100000000"],
    ["build", "--config", "standard", "--num-proc", "-2"],
    ["train", "--data", "D", "--backbone", "test_resnet", "--pretrained", "none", "--image-size", "100000"],
    ["train", "--data", "D", "--backbone", "test_resnet", "--pretrained", "none", "--batch-size", "10000000"],
    ["train", "--data", "D", "--backbone", "test_resnet", "--pretrained", "none", "--epochs", "0"],
    ["train", "--data", "D", "--backbone", "test_resnet", "--pretrained", "none", "--lr", "nan"],
    ["evaluate", "--model", "M", "--data", "D", "--image-size", "100000"],
    ["evaluate", "--model", "M", "--data", "D", "--n-boot", "-1"],
    ["evaluate", "--model", "M", "--data", "D", "--max-samples", "0"],
])
def test_size_arguments_have_a_documented_maximum(tmp_path, capsys, argv):
    out = tmp_path / "out"
    code, err = run_cli([*argv, "--out", str(out)], capsys)
    assert_one_line_error(code, err, "argument --")
    assert not out.exists()


def test_sizes_beyond_the_memory_available_are_refused_before_allocating(tmp_path, capsys, monkeypatch,
                                                                         tiny_data, model_dir):
    monkeypatch.setattr(limits, "available_memory", lambda: 64 * 2**20)  # 64 MiB left
    out = tmp_path / "out"
    code, err = run_cli(["build", "--config", "standard", "--image-size", "2048", "--num-test", "2",
                         "--out", str(out)], capsys)
    assert_one_line_error(code, err, "1 worker(s) generating 2048 px rows needs about 0.1 GiB")
    code, err = run_cli(["evaluate", "--model", str(model_dir), "--data", str(tiny_data), "--batch-size",
                         "4096", "--image-size", "512", "--out", str(out)], capsys)
    assert_one_line_error(code, err, "--batch-size 4096 at 512 px needs about 12.0 GiB")
    code, err = run_cli(["train", "--data", str(tiny_data), "--backbone", "test_resnet", "--pretrained",
                         "none", "--num-train", "1000000", "--image-size", "64", "--out", str(out)], capsys)
    assert_one_line_error(code, err, "--num-train 1000000 at --image-size 64 needs about 15.3 GiB")
    assert not out.exists()


# --- 3. the real build rejects impossible corners, naming each row ----------------------------------------

def photo_folder(folder: Path, corners: list) -> Path:
    """A 100x80 photo and a manifest with one decoded version-1 row per entry of ``corners``."""
    (folder / "images").mkdir(parents=True)
    cv2.imwrite(str(folder / "images" / "p.png"), np.full((80, 100, 3), 200, np.uint8))
    lines = ["file,decoded,corners,version,expected_text"]
    lines += [f'images/p.png,True,"{json.dumps(c)}",1,x' for c in corners]
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder


GOOD = [[10, 10], [73, 10], [73, 73], [10, 73]]  # 63 px / 21 modules = 3 px pitch


def test_real_corners_are_validated_and_each_rejected_row_named(tmp_path):
    bad = {
        "NaN": [[10, 10], [73, 10], [73, float("nan")], [10, 73]],
        "Infinity": [[10, 10], [73, 10], [73, float("inf")], [10, 73]],
        "off the photo": [[10, 10], [173, 10], [173, 73], [10, 73]],
        "all four equal": [[20, 20]] * 4,
        "self-intersecting": [[10, 10], [73, 73], [73, 10], [10, 73]],
        "module pitch below 1 px": [[10, 10], [25, 10], [25, 25], [10, 25]],
        "a sliver": [[10, 10], [73, 10], [73, 12], [10, 11]],
    }
    folder = photo_folder(tmp_path / "photos", [GOOD, *bad.values()])
    with pytest.raises(ValueError) as info:
        read_manifest(folder)
    message = str(info.value)
    assert "\n" not in message and f"{len(bad)} decoded row(s) rejected" in message
    for line in range(3, 3 + len(bad)):  # line 1 the header, line 2 the good row
        assert f"line {line} (images/p.png)" in message
    assert "line 2 " not in message
    reasons = ("finite", "outside the 100x80 photo", "not a convex quadrilateral", "module pitch of 0.71")
    for reason in reasons:
        assert reason in message
    assert message.count("not a convex quadrilateral") == 2  # the degenerate and the self-intersecting one
    photos, skipped = read_manifest(photo_folder(tmp_path / "ok", [GOOD, [[0, -2], [63, -2], [63, 61],
                                                                          [0, 61]]]))
    assert (len(photos), skipped) == (2, 0)  # 2 px outside is within the one-module (3 px) tolerance


def test_failed_real_build_leaves_no_output_folder(tmp_path, capsys):
    folder = photo_folder(tmp_path / "photos", [GOOD])
    (folder / "images" / "p.png").write_bytes((folder / "images" / "p.png").read_bytes()[:60])  # truncated
    out = tmp_path / "built" / "ds"
    with pytest.raises(ValueError):
        build_real(folder, out, quiet=True)
    assert not out.exists()
    code, err = run_cli(["build", "--config", "real", "--photos", str(folder), "--out", str(out)], capsys)
    assert_one_line_error(code, err, "p.png")
    assert not out.exists() and not out.parent.exists()


def test_binary_manifest_is_named(tmp_path, capsys):
    (tmp_path / "manifest.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 10)
    code, err = run_cli(["build", "--config", "real", "--photos", str(tmp_path), "--out",
                         str(tmp_path / "out")], capsys)
    assert_one_line_error(code, err, f"{tmp_path / 'manifest.csv'} is not a UTF-8 CSV file")


# --- 6. killed builds' staging folders are cleaned; push uploads the repo layout only ----------------------

def test_sigkilled_build_staging_is_removed_by_the_next_build(tmp_path):
    out = tmp_path / "ds"
    script = ("from cambench_qr.dataset_builder.build import build_dataset\n"
              f"build_dataset('standard', {str(out)!r}, num_train=0, num_test=5000, image_size=64, "
              f"quiet=True)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob(f"{STAGING_PREFIX}*/cache")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(out.glob(f"{STAGING_PREFIX}*")), "the build never started"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (stale,) = out.glob(f"{STAGING_PREFIX}*")
    assert f"-{proc.pid}-" in stale.name
    live = out / f"{STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-live"  # a running build's
    elsewhere = out / f"{STAGING_PREFIX}otherhost-{proc.pid}-abc"  # another host's: its pid says nothing
    live.mkdir()
    elsewhere.mkdir()
    build_dataset("standard", out, num_train=0, num_test=2, image_size=64, quiet=True)
    assert not stale.exists() and live.exists() and elsewhere.exists()
    assert remove_stale_staging(out) == []


def test_push_uploads_only_the_files_of_the_repo_layout(tmp_path, monkeypatch, tiny_data, model_dir):
    hub = HubRoot(tmp_path / "hub", "alice")
    dataset = hub.dataset_dir
    shutil.copytree(tiny_data, dataset)
    junk = [f"{STAGING_PREFIX}host-1-x/data/standard/test-00000-of-00001.parquet",
            f"{STAGING_PREFIX}host-1-x/cache/standard/cache-0.arrow", "data/standard/cache-1.arrow",
            "data/standard/.test.parquet.abc.tmp", ".ds.lock", "notes.txt"]
    model = hub.model_dir("test_resnet", "zs")
    model.mkdir(parents=True)
    for file in model_dir.iterdir():
        (model / file.name).write_bytes(file.read_bytes())
    model_junk = ["state/settings.json", "state/epoch_0001/model.safetensors", ".training.json.x.tmp"]
    for path in [dataset / j for j in junk] + [model / j for j in model_junk]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"junk")

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    results = hub_publish.push(hub, "all", token="hf_fake", quiet=True)
    assert {r.repo_id: r.ok for r in results}["alice/cambench-qr"]
    expected = {"README.md", "figures/standard.png", "data/standard/train-00000-of-00001.parquet",
                "data/standard/test-00000-of-00001.parquet"}
    assert FakeApi.uploaded["alice/cambench-qr"] == expected
    assert FakeApi.uploaded["alice/test_resnet-zs"] == {"config.json", "model.safetensors", "training.json"}
    assert set(layout_files(dataset, DATASET_LAYOUT)) == expected
    with pytest.raises(ValueError, match="no file of the repo layout"):
        upload_patterns([])

    # `build --push` goes through dataset_builder.publish: the same filter
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("cambench_qr.dataset_builder.publish.HfApi", FakeApi)
    push_dataset(dataset, "alice/built", token="hf_fake", quiet=True)
    assert FakeApi.uploaded["alice/built"] == expected


class FakeApi:
    """Stands in for huggingface_hub.HfApi: records the files `upload_folder` would send, selected by
    huggingface_hub's own pattern filter."""

    uploaded: dict[str, set[str]] = {}

    def __init__(self, token=None):
        pass

    def create_repo(self, repo_id, **kwargs):
        pass

    def upload_folder(self, *, repo_id, folder_path, allow_patterns, **kwargs):
        files = [p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file()]
        FakeApi.uploaded[repo_id] = set(filter_repo_objects(files, allow_patterns=allow_patterns))
        return type("Commit", (), {"commit_url": "ok"})()


# --- 9. one-line errors naming the file or argument, nothing half-written ---------------------------------

def test_full_disk_is_one_line_and_leaves_no_output_folder(tmp_path, capsys, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(build_module, "_write_parquet", full_disk)
    out = tmp_path / "new" / "ds"
    code, err = run_cli(["build", "--config", "standard", "--num-train", "2", "--num-test", "2",
                         "--image-size", "64", "--out", str(out)], capsys)
    assert_one_line_error(code, err, "No space left on device", str(out))
    assert not out.exists() and not out.parent.exists()


def test_full_disk_during_an_atomic_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old")

    def fill_disk(tmp: Path) -> None:
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    with pytest.raises(OSError):
        write_atomic(target, fill_disk)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


@pytest.mark.parametrize(("damage", "fragment"), [
    (lambda m: (m / "model.safetensors").write_bytes((m / "model.safetensors").read_bytes()[:1000]),
     "model.safetensors is truncated or corrupt"),
    (lambda m: (m / "training.json").write_text("{not json"), "training.json is not valid JSON"),
    (lambda m: (m / "training.json").write_bytes(b"\x89PNG\x00\xff\xfe"), "training.json is not valid JSON"),
    (lambda m: (m / "config.json").unlink(), "is not a model folder (no config.json)"),
])
def test_damaged_model_folders_are_named(tmp_path, capsys, model_dir, tiny_data, damage, fragment):
    model = tmp_path / "model"
    model.mkdir()
    for file in model_dir.iterdir():
        (model / file.name).write_bytes(file.read_bytes())
    damage(model)
    out = tmp_path / "eval"
    code, err = run_cli(["evaluate", "--model", str(model), "--data", str(tiny_data), "--out", str(out)],
                        capsys)
    assert_one_line_error(code, err, fragment)
    code, err = run_cli(["train", "--data", str(tiny_data), "--init-from", str(model), "--regime",
                         "ft_struct", "--out", str(out)], capsys)
    assert_one_line_error(code, err, fragment)
    assert not out.exists()


def test_missing_data_folder_is_named(tmp_path, capsys, model_dir):
    missing = tmp_path / "nowhere"
    for argv in (["evaluate", "--model", str(model_dir)],
                 ["train", "--backbone", "test_resnet", "--pretrained", "none"]):
        code, err = run_cli([*argv, "--data", str(missing), "--out", str(tmp_path / "o")], capsys)
        assert_one_line_error(code, err, f"--data {missing}: does not exist")
    code, err = run_cli(["evaluate", "--model", str(model_dir), "--data", "alice/nothing", "--out",
                         str(tmp_path / "o")], capsys)
    assert_one_line_error(code, err, "--data alice/nothing: does not exist (HF_HUB_OFFLINE is set and it is "
                                     "not in the local cache)")


def test_offline_hub_dataset_in_the_cache_passes_the_data_check(tmp_path, monkeypatch):
    from cambench_qr.harness.options import check_data_folder

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="not in the local cache"):
        check_data_folder("alice/cached")
    (tmp_path / "datasets--alice--cached").mkdir()
    check_data_folder("alice/cached")  # load_dataset reads it from the cache offline


def test_module_entry_points_share_the_translation(tmp_path, capsys, model_dir):
    from cambench_qr.harness import evaluate, train

    code = train.main(["--data", str(tmp_path / "x"), "--backbone", "b", "--pretrained", "none", "--out",
                       str(tmp_path / "o"), "--image-size", "99999"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "argument --image-size: must be in 8..2048" in err
    code = evaluate.main(["--model", str(model_dir), "--data", str(tmp_path / "x"), "--out",
                          str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err == f"evaluate: error: --data {tmp_path / 'x'}: does not exist\n"


# --- 10. atomically written files honour the umask ---------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_atomic_writes_honour_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        written = [write_atomic(tmp_path / "a.json", lambda tmp: tmp.write_text("{}")),
                   write_text_atomic(tmp_path / "b.md", "x")]
        (tmp_path / "plain").write_text("x")
    finally:
        os.umask(previous)
    expected = 0o666 & ~umask
    assert (tmp_path / "plain").stat().st_mode & 0o777 == expected
    assert [p.stat().st_mode & 0o777 for p in written] == [expected, expected]


def test_one_atomic_write_implementation():
    sources = [p for p in (REPO / "cambench_qr").rglob("*.py")]
    users = sorted(str(p.relative_to(REPO)) for p in sources
                   if "mkstemp(" in p.read_text() or "NamedTemporaryFile(" in p.read_text())
    assert users == ["cambench_qr/harness/io.py"]


# --- 11. worker count capped, lock files beside the folder, byte-identical cards ----------------------------

def test_num_proc_is_capped_and_said(tmp_path, capsys):
    build_dataset("standard", tmp_path / "ds", num_train=0, num_test=3, image_size=64, num_proc=64,
                  quiet=True)
    cpus = limits.cpu_count()
    assert f"note: --num-proc 64 capped at {min(cpus, 3)} ({cpus} CPUs, 3 rows)" in capsys.readouterr().err


def test_lock_file_sits_beside_the_output_folder_not_in_the_temp_folder(tmp_path):
    before = set(Path(tempfile.gettempdir()).glob("cambench-qr-build-*.lock"))
    for name in ("a", "b"):
        build_dataset("standard", tmp_path / name, num_train=0, num_test=2, image_size=64, quiet=True)
    assert set(Path(tempfile.gettempdir()).glob("cambench-qr-build-*.lock")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.cambench-build.lock", ".b.cambench-build.lock",
                                                         "a", "b"]


def test_card_is_byte_identical_whatever_num_proc(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "cpu_count", lambda: 8)  # let 3 workers run even on fewer cores
    folders = [build_dataset("standard", tmp_path / str(n), num_train=7, num_test=5, image_size=64,
                             num_proc=n, quiet=True) for n in (1, 3)]
    files = [{p.relative_to(f).as_posix(): p.read_bytes() for p in f.rglob("*") if p.is_file()}
             for f in folders]
    assert files[0].keys() == files[1].keys() and "README.md" in files[0]
    assert [k for k in files[0] if files[0][k] != files[1][k]] == []
