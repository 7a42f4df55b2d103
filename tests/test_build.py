"""build_dataset: Hub-layout folder, offline load_dataset, determinism, atomicity, bad input, push errors.

The builder is tested with a small stand-in row function (fast, and it exercises every column type); the
real generator end to end is covered by the CLI test at the bottom.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard

from cambench_qr import cli
from cambench_qr.dataset_builder.build import STAGING_PREFIX, build_dataset
from cambench_qr.dataset_builder.card import PART_COLORS, sample_figure
from cambench_qr.dataset_builder.publish import PushError, push_dataset
from cambench_qr.dataset_builder.samples import generate_row

SPLIT_CODES = {"train": 0, "test": 1}


def tiny_row(config: str, split: str, index: int, base_seed: int, image_size: int | None = None) -> dict:
    """A schema-complete row from (config, split, index, seed) only: even indices QR, odd negatives."""
    size = image_size or 24
    rng = np.random.default_rng([base_seed, index, SPLIT_CODES[split], len(config)])
    qr = index % 2 == 0
    return {
        "id": f"{config}/{split}/{index:06d}",
        "image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        "parts": rng.integers(0, 10, (size, size), dtype=np.uint8),
        "occluded": (rng.random((size, size)) < 0.2).astype(np.uint8) * 255,
        "label": int(qr),
        "corners": [[1.0, 2.0], [20.0, 2.0], [20.0, 21.0], [1.0, 21.0]] if qr else None,
        "version": 1 if qr else None,
        "ecc": "M" if qr else None,
        "mask_pattern": index % 8 if qr else None,
        "payload": f"P{index}" if qr else None,
        "module_px": 1.0 if qr else None,
        "distortion": "none",
        "severity": 0,
        "background": "flat",
        "negative_kind": None if qr else "checkerboard",
        "seed": base_seed * 10_000 + index,
        "decodable": qr,
        "source": "synthetic",
    }


def failing_row(config: str, split: str, index: int, base_seed: int, image_size: int | None = None) -> dict:
    if index == 3:
        raise RuntimeError("generator crashed")
    return tiny_row(config, split, index, base_seed, image_size)


def build(config: str, out: Path, **kwargs) -> Path:
    kwargs = {"num_train": 6, "num_test": 4, "quiet": True, "row_fn": tiny_row, **kwargs}
    return build_dataset(config, out, **kwargs)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> sha256), to prove a failed build changed nothing."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def parquet_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def two_configs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "cambench"
    build("paper", out)
    build("standard", out, num_proc=2)
    return out


def test_layout_and_card(two_configs):
    names = {str(p.relative_to(two_configs)) for p in two_configs.rglob("*") if p.is_file()}
    assert names == {
        "README.md", "figures/paper.png", "figures/standard.png",
        "data/paper/train-00000-of-00001.parquet", "data/paper/test-00000-of-00001.parquet",
        "data/standard/train-00000-of-00001.parquet", "data/standard/test-00000-of-00001.parquet",
    }
    card = DatasetCard.load(two_configs / "README.md")
    meta = card.data.to_dict()
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert set(configs) == {"paper", "standard"}
    assert configs["standard"].get("default") is True and "default" not in configs["paper"]
    assert configs["paper"]["data_files"] == [{"split": "train", "path": "data/paper/train-*"},
                                              {"split": "test", "path": "data/paper/test-*"}]
    sizes = {info["config_name"]: {s["name"]: s["num_examples"] for s in info["splits"]}
             for info in meta["dataset_info"]}
    assert sizes == {"paper": {"train": 6, "test": 4}, "standard": {"train": 6, "test": 4}}
    assert "| 2 | finder |" in card.text and "(figures/standard.png)" in card.text
    # paper was built first, yet the default config leads the table and the usage snippet
    standard_row = card.text.index("| `standard` (default) | 6 | 4 | 0 |")
    assert standard_row < card.text.index("| `paper` | 6 | 4 | 0 |")
    assert 'load_dataset("<this repo or folder>", "standard")' in card.text
    figure = PIL.Image.open(two_configs / "figures/standard.png")
    assert figure.mode == "RGB" and figure.width > 6 * 100


def test_sample_figure_draws_image_and_colour_coded_parts():
    parts = np.zeros((40, 40), np.uint8)
    parts[:20, 20:] = 2  # finder, top right
    parts[20:, :20] = 9  # distractor, bottom left
    occluded = np.zeros((40, 40), np.uint8)
    occluded[20:, 20:] = 255  # bottom right: background, occluded
    image = np.zeros((40, 40, 3), np.uint8)
    image[..., 0] = 200
    row = {"image": image, "parts": parts, "occluded": occluded, "label": 0, "version": None, "ecc": None,
           "negative_kind": "checkerboard", "distortion": "none", "severity": 0}
    figure = sample_figure([row], tile=80)
    top, bottom = 34, 34 + 80 + 6  # caption height, then the image tile, a gap, the part tile
    assert figure[top + 40, 6 + 40].tolist() == [200, 0, 0]
    assert figure[bottom + 20, 6 + 20].tolist() == PART_COLORS[0].tolist()
    assert figure[bottom + 20, 6 + 60].tolist() == PART_COLORS[2].tolist()
    assert figure[bottom + 60, 6 + 20].tolist() == PART_COLORS[9].tolist()
    assert figure[bottom + 60, 6 + 60].tolist() == (PART_COLORS[0] // 3).tolist()
    with pytest.raises(ValueError, match="at least one sample"):
        sample_figure([])


def test_load_dataset_offline_decodes_pil(two_configs, tmp_path):
    assert sorted(datasets.get_dataset_config_names(str(two_configs))) == ["paper", "standard"]
    for config in ("standard", "paper"):
        ds = datasets.load_dataset(str(two_configs), config, cache_dir=str(tmp_path / "cache"))
        assert {s: len(ds[s]) for s in ds} == {"train": 6, "test": 4}
        row = ds["test"][2]
        assert row["id"] == f"{config}/test/000002"
        assert row["image"].mode == "RGB" and row["parts"].mode == "L" and row["occluded"].mode == "L"
        expected = tiny_row(config, "test", 2, 0)
        np.testing.assert_array_equal(np.asarray(row["image"]), expected["image"])
        np.testing.assert_array_equal(np.asarray(row["parts"]), expected["parts"])
        np.testing.assert_array_equal(np.asarray(row["occluded"]), expected["occluded"])
        assert ds["test"].features["label"].names == ["non_qr", "qr"]
        assert row["corners"] == expected["corners"] and row["ecc"] == "M" and row["negative_kind"] is None
        negative = ds["test"][1]
        assert negative["label"] == 0 and negative["corners"] is None and negative["version"] is None
    default = datasets.load_dataset(str(two_configs), split="test", cache_dir=str(tmp_path / "cache"))
    assert default[0]["id"] == "standard/test/000000"


def test_rebuild_is_byte_identical_and_num_proc_free(two_configs, tmp_path):
    again = build("standard", tmp_path / "again")
    first = {k: v for k, v in parquet_files(two_configs).items() if k.startswith("data/standard")}
    assert parquet_files(again) == first  # built with num_proc=2 there, 1 here: same bytes
    figure = "figures/standard.png"
    assert (again / figure).read_bytes() == (two_configs / figure).read_bytes()


def test_rebuild_in_place_regenerates(tmp_path):
    out = build("paper", tmp_path / "ds")
    original = parquet_files(out)
    build("paper", out, seed=1)
    assert parquet_files(out).keys() == original.keys() and parquet_files(out) != original
    build("paper", out)
    assert parquet_files(out) == original
    assert not any(p.name.startswith(STAGING_PREFIX) for p in out.iterdir())


def test_build_leaves_nothing_in_the_datasets_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf_datasets_cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    build("standard", tmp_path / "ds", num_proc=2)
    assert not cache.exists() or not any(cache.rglob("*"))


def test_test_only_config_and_shards(tmp_path, monkeypatch):
    monkeypatch.setattr("cambench_qr.dataset_builder.build.ROWS_PER_SHARD", 4)
    out = build("standard", tmp_path / "ds", num_train=0, num_test=10)
    assert sorted(p.name for p in (out / "data/standard").iterdir()) == [
        "test-00000-of-00003.parquet", "test-00001-of-00003.parquet", "test-00002-of-00003.parquet"]
    assert sum(pq.read_metadata(p).num_rows for p in (out / "data/standard").iterdir()) == 10
    ds = datasets.load_dataset(str(out), "standard", cache_dir=str(tmp_path / "cache"))
    assert list(ds) == ["test"] and ds["test"]["id"] == [f"standard/test/{i:06d}" for i in range(10)]


def row_without_payload(config: str, split: str, index: int, base_seed: int, image_size: int | None = None):
    row = tiny_row(config, split, index, base_seed, image_size)
    del row["payload"]
    return {**row, "colour": "red"}


def test_row_schema_mismatch_is_named(tmp_path):
    message = r"does not match the schema: missing \['payload'\], unexpected \['colour'\]"
    with pytest.raises(ValueError, match=message):
        build("standard", tmp_path / "ds", row_fn=row_without_payload)


def test_interrupted_build_keeps_existing_configs(two_configs, tmp_path):
    before = snapshot(two_configs)
    with pytest.raises(RuntimeError, match="generator crashed"):
        build("standard", two_configs, row_fn=failing_row)
    assert snapshot(two_configs) == before
    assert not any(p.name.startswith(STAGING_PREFIX) for p in two_configs.iterdir())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"config": "nope"}, "unknown config 'nope'"),
    ({"num_train": -1}, r"num_train must be in 0\.\.1000000, got -1"),
    ({"num_train": 10**7}, r"num_train must be in 0\.\.1000000, got 10000000"),
    ({"num_test": 2.5}, "num_test must be an integer, got 2.5"),
    ({"num_train": 0, "num_test": 0}, "nothing to build"),
    ({"seed": -3}, r"seed must be in 0\.\."),
    ({"num_proc": 0}, r"num_proc must be in 1\.\.\d+, got 0"),
    ({"image_size": 100_000, "row_fn": generate_row}, r"image_size must be in 1\.\.2048, got 100000"),
    ({"image_size": 4, "row_fn": generate_row}, "image_size must be an integer >= 64, got 4"),
    ({"image_size": 224, "row_fn": generate_row, "config": "paper"}, "paper config keeps the authors'"),
])
def test_bad_arguments(two_configs, kwargs, message):
    before = snapshot(two_configs)
    kwargs = {"config": "standard", **kwargs}
    with pytest.raises(ValueError, match=message):
        build(kwargs.pop("config"), two_configs, **kwargs)
    assert snapshot(two_configs) == before


def test_refuses_a_folder_holding_something_else(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    other_card = tmp_path / "other"
    other_card.mkdir()
    (other_card / "README.md").write_text("---\npretty_name: Some Other Dataset\n---\n# other\n")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    not_ours = "holds no CAMBench-QR dataset card"
    cases = [(foreign, not_ours), (other_card, not_ours), (a_file, "exists and is not a folder"),
             (a_file / "sub", "cannot write to")]
    for target, message in cases:
        before = snapshot(tmp_path)
        with pytest.raises(ValueError, match=message) as excinfo:
            build("standard", target)
        assert "\n" not in str(excinfo.value)
        assert snapshot(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_refuses_a_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="cannot write to .*locked"):
            build("standard", locked)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_push_fails_cleanly_offline_and_without_token(two_configs, monkeypatch):
    before = snapshot(two_configs)
    with pytest.raises(ValueError, match="is not a built CAMBench-QR dataset folder"):
        push_dataset(two_configs / "data", "alice/cambench-qr")
    with pytest.raises(PushError, match="HF_HUB_OFFLINE is set"):
        push_dataset(two_configs, "alice/cambench-qr")
    with pytest.raises(PushError, match="HF_HUB_OFFLINE is set"):  # refused before anything is built
        build("paper", two_configs, push="alice/cambench-qr")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("cambench_qr.dataset_builder.publish.get_token", lambda: None)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(PushError, match="no Hugging Face token"):
        push_dataset(two_configs, "alice/cambench-qr")
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(PushError, match="push to alice/cambench-qr failed"):
        push_dataset(two_configs, "alice/cambench-qr", token="hf_fake")
    assert snapshot(two_configs) == before


@pytest.mark.parametrize(("argv", "message"), [
    (["--config", "nope"], "unknown config 'nope'"),
    (["--config", "standard", "--num-train", "-1"], "argument --num-train: must be in 0..1000000, got -1"),
    (["--config", "standard", "--image-size", "100000"], "--image-size: must be in 64..2048, got 100000"),
    (["--config", "standard", "--push", "alice/cambench-qr"], "HF_HUB_OFFLINE is set"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, argv, message):
    code = cli.main(["--quiet", "build", "--out", str(tmp_path / "ds"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "ds").exists()


def test_cli_builds_real_configs_end_to_end(tmp_path, capsys):
    out, again = tmp_path / "ds", tmp_path / "again"
    common = ["--quiet", "build", "--num-train", "4", "--num-test", "4"]
    assert cli.main([*common, "--config", "standard", "--out", str(out), "--num-proc", "2"]) == 0
    assert cli.main([*common, "--config", "paper", "--out", str(out)]) == 0
    assert cli.main([*common, "--config", "standard", "--out", str(again)]) == 0
    assert "built paper (4 train, 4 test rows)" in capsys.readouterr().out
    standard_files = {k: v for k, v in parquet_files(out).items() if k.startswith("data/standard")}
    assert parquet_files(again) == standard_files  # num_proc 2 vs 1: byte-identical
    for config in ("standard", "paper"):
        ds = datasets.load_dataset(str(out), config, split="test", cache_dir=str(tmp_path / "cache"))
        row = ds[1]
        expected = generate_row(config, "test", 1, 0)
        assert row["image"].mode == "RGB" and row["parts"].mode == "L" and row["occluded"].mode == "L"
        np.testing.assert_array_equal(np.asarray(row["image"]), expected["image"])
        np.testing.assert_array_equal(np.asarray(row["parts"]), expected["parts"])
        assert row["seed"] == expected["seed"] and row["label"] == expected["label"]
