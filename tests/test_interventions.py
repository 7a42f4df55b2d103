"""The interventions config: pairs with the standard originals, changes only the intervened part's pixels,
and decodes (or not) as the intervention implies."""

import cv2
import datasets
import numpy as np
import pytest

from cambench_qr.dataset_builder.build import build_dataset
from cambench_qr.dataset_builder.interventions import (
    INTERVENED_PARTS,
    interventions_for,
    interventions_row,
    locate,
)
from cambench_qr.dataset_builder.samples import generate_row
from cambench_qr.parts import PART_IDS

SEED = 3
ROWS = 72  # 12-14 originals


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [interventions_row("interventions", "test", i, SEED) for i in range(ROWS)]


def _groups(rows: list[dict]) -> dict[str, dict[str, dict]]:
    groups: dict[str, dict[str, dict]] = {}
    for row in rows:
        groups.setdefault(row["pair_id"], {})[row["intervention"]] = row
    return groups


def test_rows_pair_with_their_standard_originals(rows):
    groups = _groups(rows)
    complete = list(groups.items())[:-1]  # the last group may be cut short by ROWS
    assert len(complete) >= 10
    for k, (pair_id, group) in enumerate(complete):
        assert pair_id == f"standard/test/{2 * k:06d}"
        original = generate_row("standard", "test", 2 * k, SEED)
        assert tuple(group) == interventions_for(original["version"])
        assert ("alignment" in group) == (original["version"] >= 2)
        none = group["none"]
        assert np.array_equal(none["image"], original["image"]) and none["seed"] == original["seed"]
        for row in group.values():
            assert row["label"] == 1 and row["seed"] == original["seed"]
            assert np.array_equal(row["parts"], original["parts"]) and row["corners"] == original["corners"]
            assert row["id"].startswith("interventions/test/")
    assert len({row["id"] for row in rows}) == ROWS
    assert locate(ROWS - 1, SEED, 224)[0] == 2 * (len(groups) - 1)


def test_pixels_change_only_at_the_intervened_part(rows):
    changed = {part: 0 for part in INTERVENED_PARTS}
    for group in _groups(rows).values():
        original = group["none"]["image"].astype(int)
        for part, row in group.items():
            if part == "none":
                continue
            diff = np.abs(row["image"].astype(int) - original).max(2) > 0
            region = (row["parts"] == PART_IDS[part]).astype(np.uint8)
            border = cv2.dilate(region, np.ones((3, 3), np.uint8)) > 0  # bilinear edges: one pixel around
            assert not (diff & ~border).any(), (row["id"], part, int((diff & ~border).sum()))
            # most of the part's pixels take the other colour when their module flips (1/2 of them)
            changed[part] += (diff & (region > 0)).sum() > 0.2 * region.sum()
    assert all(n >= 10 for n in changed.values()), changed


def test_decoding_follows_the_intervention(rows):
    decoded: dict[str, list[bool]] = {}
    for row in rows:
        decoded.setdefault(row["intervention"], []).append(row["decodable"])
    rate = {k: float(np.mean(v)) for k, v in decoded.items()}
    assert rate["none"] >= 0.9  # the clean originals decode
    assert rate["finder"] <= 0.1  # no finder patterns: zxing cannot locate the symbol
    assert rate["data"] <= 0.1  # random codewords: Reed-Solomon fails (or the payload differs)
    assert rate["timing"] >= 0.8 and rate["alignment"] >= 0.8  # zxing samples without them at these sizes
    assert rate["quiet_zone"] <= 0.5  # clutter next to the finders defeats the finder scan


def test_row_errors():
    with pytest.raises(ValueError, match="test"):
        interventions_row("interventions", "train", 0, 0)
    with pytest.raises(ValueError, match="standard"):
        interventions_row("standard", "test", 0, 0)
    with pytest.raises(ValueError, match="non-negative"):
        interventions_row("interventions", "test", -1, 0)
    with pytest.raises(ValueError, match="image_size"):
        interventions_row("interventions", "test", 0, 0, image_size=32)


def test_build_writes_the_paired_config(tmp_path):
    out = build_dataset("interventions", tmp_path / "ds", num_train=0, num_test=8, seed=SEED, quiet=True)
    test = datasets.load_dataset(str(out), "interventions")["test"]
    assert test.column_names[-2:] == ["intervention", "pair_id"] and len(test) == 8
    assert test["intervention"][:2] == ["none", "finder"] and test["pair_id"][0] == "standard/test/000000"
    with pytest.raises(ValueError, match="test split only"):
        build_dataset("interventions", tmp_path / "ds", num_train=4, num_test=8, quiet=True)
