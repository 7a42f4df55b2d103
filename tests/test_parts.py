from cambench_qr import parts


def test_ids_are_contiguous_and_named():
    assert parts.NUM_PARTS == 10
    assert [parts.PART_IDS[n] for n in parts.PART_NAMES] == list(range(10))
    assert parts.FINDER == 2 and parts.TIMING == 4 and parts.DISTRACTOR == 9


def test_box_and_outside_partition_the_ids():
    box, outside = set(parts.REGIONS["box"]), set(parts.REGIONS["outside"])
    assert box.isdisjoint(outside)
    assert box | outside == set(range(parts.NUM_PARTS))
    assert set(parts.REGIONS["structure"]) == {parts.FINDER, parts.TIMING}


def test_part_table_lists_every_part():
    table = parts.part_table_markdown()
    for name in parts.PART_NAMES:
        assert f"| {name} |" in table
