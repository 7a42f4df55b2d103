"""QR geometry from ISO/IEC 18004 against hand counts, the codeword tables and the qrcode encoder."""

import numpy as np
import pytest
import qrcode
from qrcode.base import rs_blocks
from qrcode.util import lost_point

from cambench_qr import parts as P
from cambench_qr.dataset_builder.geometry import (
    ECC_LEVELS,
    QRCODE_ECC,
    alignment_centres,
    bch_format_bits,
    encode,
    expected_colours,
    format_info_positions,
    part_map,
    penalty,
    symbol_size,
)
from cambench_qr.dataset_builder.payloads import ALPHANUMERIC, payload_for_version, random_text

# Remainder bits after the last codeword (ISO/IEC 18004 Table 1).
REMAINDER_BITS = {**dict.fromkeys(range(1, 2), 0), **dict.fromkeys(range(2, 7), 7),
                  **dict.fromkeys(range(7, 14), 0), **dict.fromkeys(range(14, 21), 3),
                  **dict.fromkeys(range(21, 28), 4), **dict.fromkeys(range(28, 35), 3),
                  **dict.fromkeys(range(35, 41), 0)}


def read_format(modules: np.ndarray) -> tuple[str, int]:
    """(ecc, mask_pattern) from the first format-information copy of a module matrix: the one valid
    format word it equals (ValueError when none)."""
    near, _ = format_info_positions((modules.shape[0] - 17) // 4)
    word = int(sum(int(modules[r, c]) << i for i, (r, c) in enumerate(near)))
    for ecc in ECC_LEVELS:
        for mask in range(8):
            if bch_format_bits(ecc, mask) == word:
                return ecc, mask
    raise ValueError(f"format information {word:015b} is not a valid QR format word")


def test_hand_counted_versions():
    v1 = part_map(1)
    counts = {name: int((v1 == i).sum()) for i, name in enumerate(P.PART_NAMES)}
    assert counts["finder"] == 147 and counts["separator"] == 45 and counts["timing"] == 10
    assert counts["format_info"] == 31 and counts["alignment"] == 0 and counts["version_info"] == 0
    assert counts["data"] == 208  # 26 codewords
    v7 = part_map(7)
    assert int((v7 == P.ALIGNMENT).sum()) == 6 * 25
    assert int((v7 == P.TIMING).sum()) == 2 * (45 - 16) - 2 * 5  # two alignment patterns sit on timing
    assert int((v7 == P.VERSION_INFO).sum()) == 36
    assert alignment_centres(2) == ((18, 18),)
    assert len(alignment_centres(40)) == 46


@pytest.mark.parametrize("version", range(1, 41))
def test_data_modules_match_codeword_capacity(version):
    # Every non-function module carries a codeword bit or a remainder bit: an independent check of
    # the whole part map against the encoder's codeword tables.
    total_codewords = sum(block.total_count for block in rs_blocks(version, QRCODE_ECC["L"]))
    data_modules = int((part_map(version) == P.DATA).sum())
    assert data_modules == 8 * total_codewords + REMAINDER_BITS[version]
    assert part_map(version).shape == (symbol_size(version),) * 2


def test_format_words():
    assert bch_format_bits("M", 0) == 0x5412  # all-zero data: only the XOR mask is left
    assert bch_format_bits("L", 0) == 0b111011111000100  # ISO/IEC 18004 Table C.1
    words = {bch_format_bits(e, m) for e in ECC_LEVELS for m in range(8)}
    assert len(words) == 32


def test_encoder_agrees_with_spec_on_every_function_module():
    rng = np.random.default_rng(0)
    for trial in range(60):
        version = int(rng.integers(1, 41)) if trial % 2 else int(rng.integers(1, 11))
        ecc = ECC_LEVELS[int(rng.integers(4))]
        payload = payload_for_version(rng, version, ecc)
        mask = int(rng.integers(8))
        modules, got_version, got_ecc, got_mask = encode(payload, version, ecc, mask)
        qr = qrcode.QRCode(version=version, error_correction=QRCODE_ECC[ecc], box_size=1, border=0,
                           mask_pattern=mask)
        qr.add_data(payload)
        qr.make(fit=False)
        reference = np.array(qr.modules, bool)
        assert (modules == reference).all()
        expected = expected_colours(version)
        fixed = expected >= 0
        assert fixed.sum() > 150
        np.testing.assert_array_equal(reference[fixed], expected[fixed] == 1)
        assert (got_version, got_ecc, got_mask) == (version, ecc, mask)
        assert read_format(reference) == (ecc, mask)


def test_auto_version_and_mask_match_qrcode():
    rng = np.random.default_rng(1)
    payloads = ["héllo wörld ✓", "0", "12345678901234567890123", "https://example.com/a?b=c"]
    payloads += [random_text(rng, ALPHANUMERIC, int(rng.integers(1, 60))) for _ in range(12)]
    payloads += [payload_for_version(rng, int(rng.integers(1, 15)), "M") for _ in range(12)]
    for payload in payloads:
        ecc = ECC_LEVELS[int(rng.integers(4))]
        modules, version, _, mask = encode(payload, None, ecc)
        qr = qrcode.QRCode(error_correction=QRCODE_ECC[ecc], box_size=1, border=0)
        qr.add_data(payload)
        qr.make(fit=True)
        np.testing.assert_array_equal(modules, np.array(qr.modules, bool))
        assert read_format(modules) == (ecc, mask)
        assert penalty(modules) == lost_point(qr.modules)


def test_penalty_equals_qrcode_lost_point_on_random_matrices():
    rng = np.random.default_rng(2)
    for trial in range(60):
        n = int(rng.choice([21, 25, 33, 57]))
        matrix = rng.random((n, n)) < rng.uniform(0.2, 0.8)
        if trial % 3 == 0:
            matrix[:, :9] = False  # long runs
        assert penalty(matrix) == lost_point(matrix.tolist())
    stack = rng.random((8, 21, 21)) < 0.5
    np.testing.assert_array_equal(penalty(stack), [lost_point(m.tolist()) for m in stack])


def test_bad_input():
    with pytest.raises(ValueError, match="version"):
        part_map(41)
    with pytest.raises(ValueError, match="version"):
        part_map(0)
    with pytest.raises(ValueError, match="ecc"):
        encode("A", None, "X")
    with pytest.raises(ValueError, match="mask_pattern"):
        encode("A", None, "L", 8)
    with pytest.raises(ValueError, match="does not fit"):
        encode("A" * 100, 1, "H")
