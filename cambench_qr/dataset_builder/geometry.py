"""QR symbol geometry from ISO/IEC 18004, independent of any encoder, plus the encoder wrapper.

Module space: a version-``v`` symbol is an ``N x N`` grid, ``N = 4 v + 17``; module ``(r, c)`` (row,
column) covers the square ``[c, c + 1) x [r, r + 1)`` in module coordinates ``(u, v) = (x, y)``. The quiet
zone and the background live on the canvas, outside ``[0, N]^2``; nothing here describes them.

``part_map(version)`` labels every module with a ``cambench_qr.parts`` id; ``expected_colours(version)``
gives the colour the specification fixes for each function-pattern module (1 dark, 0 light, -1 free:
data, format and version information). ``encode`` builds the module matrix with NumPy exactly as the
``qrcode`` library does (same segment, padding, Reed-Solomon blocks, placement and mask choice; the tests
compare them bit for bit), using qrcode's capacity and block tables.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import qrcode.constants
from qrcode.base import rs_blocks
from qrcode.util import BIT_LIMIT_TABLE

from cambench_qr.parts import ALIGNMENT, DATA, FINDER, FORMAT_INFO, SEPARATOR, TIMING, VERSION_INFO

ECC_LEVELS: tuple[str, ...] = ("L", "M", "Q", "H")
# The 2-bit error-correction indicator written into the format information (ISO/IEC 18004 Table 12).
ECC_FORMAT_BITS: dict[str, int] = {"L": 0b01, "M": 0b00, "Q": 0b11, "H": 0b10}
QRCODE_ECC = {"L": qrcode.constants.ERROR_CORRECT_L, "M": qrcode.constants.ERROR_CORRECT_M,
              "Q": qrcode.constants.ERROR_CORRECT_Q, "H": qrcode.constants.ERROR_CORRECT_H}

# Row/column coordinates of alignment-pattern centres, versions 1..40 (ISO/IEC 18004 Annex E, Table E.1).
ALIGNMENT_CENTRES: tuple[tuple[int, ...], ...] = (
    (), (6, 18), (6, 22), (6, 26), (6, 30), (6, 34),
    (6, 22, 38), (6, 24, 42), (6, 26, 46), (6, 28, 50), (6, 30, 54), (6, 32, 58), (6, 34, 62),
    (6, 26, 46, 66), (6, 26, 48, 70), (6, 26, 50, 74), (6, 30, 54, 78), (6, 30, 56, 82), (6, 30, 58, 86),
    (6, 34, 62, 90),
    (6, 28, 50, 72, 94), (6, 26, 50, 74, 98), (6, 30, 54, 78, 102), (6, 28, 54, 80, 106),
    (6, 32, 58, 84, 110), (6, 30, 58, 86, 114), (6, 34, 62, 90, 118),
    (6, 26, 50, 74, 98, 122), (6, 30, 54, 78, 102, 126), (6, 26, 52, 78, 104, 130),
    (6, 30, 56, 82, 108, 134), (6, 34, 60, 86, 112, 138), (6, 30, 58, 86, 114, 142),
    (6, 34, 62, 90, 118, 146),
    (6, 30, 54, 78, 102, 126, 150), (6, 24, 50, 76, 102, 128, 154), (6, 28, 54, 80, 106, 132, 158),
    (6, 32, 58, 84, 110, 136, 162), (6, 26, 54, 82, 110, 138, 166), (6, 30, 58, 86, 114, 142, 170),
)


def check_version(version: int) -> int:
    """Return ``version`` if it is an int in 1..40, else raise ValueError."""
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or not 1 <= version <= 40:
        raise ValueError(f"QR version must be an integer in 1..40, got {version!r}")
    return int(version)


def symbol_size(version: int) -> int:
    """Modules per side: ``N = 4 * version + 17``."""
    return 4 * check_version(version) + 17


def finder_origins(version: int) -> tuple[tuple[int, int], ...]:
    """Top-left (row, col) of the three 7x7 finder patterns: top-left, top-right, bottom-left."""
    n = symbol_size(version)
    return ((0, 0), (0, n - 7), (n - 7, 0))


def alignment_centres(version: int) -> tuple[tuple[int, int], ...]:
    """(row, col) centres of the alignment patterns: every pair from the table except the three that
    would overlap a finder pattern."""
    coords = ALIGNMENT_CENTRES[check_version(version) - 1]
    if not coords:
        return ()
    first, last = coords[0], coords[-1]
    corners = {(first, first), (first, last), (last, first)}
    return tuple((r, c) for r in coords for c in coords if (r, c) not in corners)


def format_info_positions(version: int) -> tuple[np.ndarray, np.ndarray]:
    """The two copies of the 15 format bits as (15, 2) arrays of (row, col); bit i is the i-th least
    significant bit of the BCH-coded word (ISO/IEC 18004 Figure 25)."""
    n = symbol_size(version)
    # The first copy runs down column 8 (rows 0..8 skipping 6) then left along row 8 (cols 7, 5..0).
    near = [(i, 8) if i < 6 else (i + 1, 8) if i < 8 else (8, 7) if i == 8 else (8, 14 - i)
            for i in range(15)]
    far = [(8, n - 1 - i) if i < 8 else (n - 15 + i, 8) for i in range(15)]
    return np.array(near), np.array(far)


def dark_module(version: int) -> tuple[int, int]:
    """The always-dark module beside the bottom-left separator: (row, col) = (N - 8, 8)."""
    return (symbol_size(version) - 8, 8)


def version_info_slices(version: int) -> tuple[tuple[slice, slice], ...]:
    """The two 6x3 / 3x6 version-information blocks (versions >= 7), else ()."""
    n = symbol_size(version)
    if version < 7:
        return ()
    return ((slice(0, 6), slice(n - 11, n - 8)), (slice(n - 11, n - 8), slice(0, 6)))


@cache
def _part_map(version: int) -> np.ndarray:
    n = symbol_size(version)
    parts = np.full((n, n), DATA, np.uint8)
    parts[6, 8:n - 8] = TIMING
    parts[8:n - 8, 6] = TIMING
    for r, c in finder_origins(version):
        rs, cs = slice(max(r - 1, 0), min(r + 8, n)), slice(max(c - 1, 0), min(c + 8, n))
        parts[rs, cs] = SEPARATOR
        parts[r:r + 7, c:c + 7] = FINDER
    for r, c in alignment_centres(version):
        parts[r - 2:r + 3, c - 2:c + 3] = ALIGNMENT
    for copy in format_info_positions(version):
        parts[copy[:, 0], copy[:, 1]] = FORMAT_INFO
    parts[dark_module(version)] = FORMAT_INFO
    for rs, cs in version_info_slices(version):
        parts[rs, cs] = VERSION_INFO
    parts.flags.writeable = False
    return parts


def part_map(version: int) -> np.ndarray:
    """N x N uint8 part ids (finder, separator, timing, alignment, format_info incl. the dark module,
    version_info, data) for a QR symbol of ``version`` (read-only, cached).

    Alignment patterns that sit on a timing line (versions >= 7) are labelled alignment."""
    return _part_map(check_version(version))


@cache
def _expected_colours(version: int) -> np.ndarray:
    n = symbol_size(version)
    colours = np.full((n, n), -1, np.int8)
    idx = np.arange(n)
    colours[6, :] = (idx % 2 == 0)
    colours[:, 6] = (idx % 2 == 0)
    ring7 = np.maximum(*np.abs(np.mgrid[-3:4, -3:4]))  # Chebyshev distance from a finder centre
    for r, c in finder_origins(version):
        colours[max(r - 1, 0):min(r + 8, n), max(c - 1, 0):min(c + 8, n)] = 0
        colours[r:r + 7, c:c + 7] = ring7 != 2
    ring5 = np.maximum(*np.abs(np.mgrid[-2:3, -2:3]))
    for r, c in alignment_centres(version):
        colours[r - 2:r + 3, c - 2:c + 3] = ring5 != 1
    parts = part_map(version)
    colours[(parts == FORMAT_INFO) | (parts == VERSION_INFO) | (parts == DATA)] = -1
    colours[dark_module(version)] = 1
    colours.flags.writeable = False
    return colours


def expected_colours(version: int) -> np.ndarray:
    """N x N int8: 1 where the specification fixes a dark module, 0 light, -1 free (data, format and
    version information). Finders: dark unless at Chebyshev distance 2 from the centre; separators
    light; timing dark at even index; alignment: dark unless at distance 1; dark module dark."""
    return _expected_colours(check_version(version))


def bch_format_bits(ecc: str, mask_pattern: int) -> int:
    """The 15-bit format word: BCH(15,5) with generator x^10+x^8+x^5+x^4+x^2+x+1 (0x537) over the 5 data
    bits ``ecc_bits << 3 | mask``, XORed with 0x5412 (ISO/IEC 18004 7.9)."""
    data = ECC_FORMAT_BITS[ecc] << 3 | mask_pattern
    rem = data << 10
    for shift in range(4, -1, -1):
        if rem >> (shift + 10) & 1:
            rem ^= 0x537 << shift
    return (data << 10 | rem) ^ 0x5412


def mask_grids(n: int) -> np.ndarray:
    """The eight N x N boolean data masks, (8, N, N), mask pattern k at [k] (ISO/IEC 18004 Table 10;
    i = row, j = column)."""
    i, j = np.indices((n, n))
    return np.stack((
        (i + j) % 2 == 0, i % 2 == 0, j % 3 == 0, (i + j) % 3 == 0,
        (i // 2 + j // 3) % 2 == 0, (i * j) % 2 + (i * j) % 3 == 0,
        ((i * j) % 2 + (i * j) % 3) % 2 == 0, ((i + j) % 2 + (i * j) % 3) % 2 == 0,
    ))


@cache
def _mask_stack(version: int) -> np.ndarray:
    stack = mask_grids(symbol_size(version)) & (part_map(version) == DATA)
    stack.flags.writeable = False
    return stack


_FINDER_LIKE = (0b10111010000, 0b00001011101)  # 1:1:3:1:1 then 4 light modules, and its mirror


def penalty(modules: np.ndarray) -> np.ndarray:
    """The mask-selection penalty exactly as the ``qrcode`` library scores it (lower is better), for one
    N x N matrix or a (K, N, N) stack (returns shape () or (K,)): each run of L >= 5 same-coloured
    modules in a row or column costs L - 2; each uniform 2x2 block 3; each 11-module window reading
    1011101 0000 or its mirror (a finder-like 1:1:3:1:1 with a light margin) 40; and 10 per full 5% of
    dark-module share away from 50%.

    Runs: with ``e5`` = windows of 5 equal modules, a run of length L holds L - 4 of them and starts one
    where the previous window is not uniform, so the run cost is ``sum(e5) + 2 * #starts``."""
    m = np.asarray(modules, dtype=bool)
    stack = m.reshape(-1, *m.shape[-2:])
    n = stack.shape[1]
    lines = np.concatenate([stack, stack.transpose(0, 2, 1)], axis=1)  # (K, 2N, N): rows then columns
    same = lines[..., 1:] == lines[..., :-1]
    e5 = same[..., :-3] & same[..., 1:-2] & same[..., 2:-1] & same[..., 3:]
    starts = e5[..., 0].sum(1) + (e5[..., 1:] & ~e5[..., :-1]).sum((1, 2))
    points = e5.sum((1, 2)) + 2 * starts
    across = same[:, :n, :]  # (K, N, N - 1): module (r, c + 1) equals (r, c)
    down = stack[:, 1:, :] == stack[:, :-1, :]  # (K, N - 1, N): module (r + 1, c) equals (r, c)
    points += 3 * (across[:, :-1, :] & across[:, 1:, :] & down[:, :, :-1]).sum((1, 2))
    wide = lines.astype(np.int16)
    codes = np.zeros(wide[..., 10:].shape, np.int16)  # each 11-module window read as a binary number
    for bit in range(11):
        codes |= wide[..., bit:n - 10 + bit] << (10 - bit)
    points += 40 * ((codes == _FINDER_LIKE[0]) | (codes == _FINDER_LIKE[1])).sum((1, 2))
    dark_percent = stack.sum((1, 2)) * 100.0 / (n * n)
    points += 10 * (np.abs(dark_percent - 50) / 5).astype(np.int64)
    points = points.astype(np.int64)
    return points[0] if m.ndim == 2 else points


# --- the encoder -------------------------------------------------------------------------------------------
# A NumPy re-implementation of what ``qrcode`` does for a single-segment payload (the tests hold it
# bit-for-bit against ``qrcode``): about 20x faster, because qrcode writes bits, computes Reed-Solomon
# parity and places modules in pure-Python loops. Block structure and capacities come from qrcode's tables.

MODES: dict[str, int] = {"numeric": 0b0001, "alphanumeric": 0b0010, "byte": 0b0100}
_ALNUM_VALUES = {ch: i for i, ch in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")}
_COUNT_BITS = {"numeric": (10, 12, 14), "alphanumeric": (9, 11, 13), "byte": (8, 16, 16)}
_PAD_BYTES = (0xEC, 0x11)

# GF(256) with the QR polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D): exp/log tables.
_GF_EXP = np.zeros(512, np.int64)
_GF_LOG = np.zeros(256, np.int64)
_value = 1
for _power in range(255):
    _GF_EXP[_power] = _value
    _GF_LOG[_value] = _power
    _value = _value << 1 ^ (0x11D if _value & 0x80 else 0)
_GF_EXP[255:] = _GF_EXP[:257]


_GF_EXP_LIST, _GF_LOG_LIST = _GF_EXP.tolist(), _GF_LOG.tolist()  # plain ints: fast scalar lookups


def _gf_mul(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else _GF_EXP_LIST[_GF_LOG_LIST[a] + _GF_LOG_LIST[b]]


@cache
def _parity_rows(data_count: int, ec_count: int) -> np.ndarray:
    """Row i = the remainder of x^(ec_count + data_count - 1 - i) modulo the generator
    prod_{j < ec_count} (x - a^j), as GF logs (-1 for zero): Reed-Solomon parity is linear, so
    parity = XOR_i data_i * row_i."""
    generator = [1]
    for j in range(ec_count):
        nxt = generator + [0]
        for k, coef in enumerate(generator):
            nxt[k + 1] ^= _gf_mul(coef, _GF_EXP_LIST[j])
        generator = nxt
    rows = np.zeros((data_count, ec_count), np.int64)
    remainder = list(generator[1:])  # x^ec_count mod g
    for power in range(data_count):
        rows[data_count - 1 - power] = remainder
        lead = remainder[0]
        remainder = remainder[1:] + [0]
        if lead:
            remainder = [r ^ _gf_mul(lead, g) for r, g in zip(remainder, generator[1:], strict=True)]
    logs = np.where(rows > 0, _GF_LOG[rows], -1)
    logs.flags.writeable = False
    return logs


def _reed_solomon(data: np.ndarray, ec_count: int) -> np.ndarray:
    """The ``ec_count`` parity bytes of one block (ISO/IEC 18004 7.5.2)."""
    rows = _parity_rows(len(data), ec_count)
    live = data > 0
    logs = _GF_LOG[data[live]][:, None] + rows[live]
    terms = np.where(rows[live] >= 0, _GF_EXP[logs % 255], 0)
    return np.bitwise_xor.reduce(terms, axis=0) if len(terms) else np.zeros(ec_count, np.int64)


def payload_mode(payload: str) -> str:
    """The most compact single mode holding every character: numeric, alphanumeric, else byte (UTF-8)."""
    if payload.isascii() and payload.isdigit():
        return "numeric"
    if all(ch in _ALNUM_VALUES for ch in payload):
        return "alphanumeric"
    return "byte"


def _segment_fields(payload: str, mode: str) -> tuple[list[int], list[int]]:
    """(values, widths) of the data bits after the count field: numeric 10 bits per 3 digits (7 / 4 for a
    tail of 2 / 1), alphanumeric 11 bits per pair (45 a + b; 6 for a single), byte 8 bits per byte."""
    if mode == "numeric":
        groups = [payload[i:i + 3] for i in range(0, len(payload), 3)]
        return [int(g) for g in groups], [(0, 4, 7, 10)[len(g)] for g in groups]
    if mode == "alphanumeric":
        v = [_ALNUM_VALUES[ch] for ch in payload]
        pairs = [v[i] * 45 + v[i + 1] if i + 1 < len(v) else v[i] for i in range(0, len(v), 2)]
        return pairs, [11 if i + 1 < len(v) else 6 for i in range(0, len(v), 2)]
    raw = payload.encode("utf-8")
    return list(raw), [8] * len(raw)


def _count_bits(mode: str, version: int) -> int:
    return _COUNT_BITS[mode][0 if version <= 9 else 1 if version <= 26 else 2]


def _bits(values: list[int], widths: list[int]) -> np.ndarray:
    """Concatenate ``values`` written MSB-first in ``widths`` bits each, as a uint8 0/1 array."""
    v = np.asarray(values, np.int64)[:, None]
    w = np.asarray(widths, np.int64)[:, None]
    shifts = w - 1 - np.arange(16)[None, :]
    bits = (v >> np.maximum(shifts, 0)) & 1
    return bits[shifts >= 0].astype(np.uint8)


def _data_bit_limit(version: int, ecc: str) -> int:
    return BIT_LIMIT_TABLE[QRCODE_ECC[ecc]][version]


def _codewords(payload: str, mode: str, version: int, ecc: str) -> np.ndarray:
    """Interleaved data + error-correction codewords (ISO/IEC 18004 7.4-7.6)."""
    values, widths = _segment_fields(payload, mode)
    count = len(payload.encode("utf-8")) if mode == "byte" else len(payload)
    bits = _bits([MODES[mode], count, *values], [4, _count_bits(mode, version), *widths])
    limit = _data_bit_limit(version, ecc)
    if len(bits) > limit:
        raise ValueError(f"payload of {len(payload)} chars does not fit version {version} ecc {ecc}")
    terminator = min(limit - len(bits), 4)
    bits = np.concatenate([bits, np.zeros(terminator + (-(len(bits) + terminator)) % 8, np.uint8)])
    data = np.packbits(bits).astype(np.int64)
    fill = (limit - 8 * len(data)) // 8
    data = np.concatenate([data, np.resize(np.array(_PAD_BYTES, np.int64), fill)])
    blocks, ec_blocks, offset = [], [], 0
    for block in rs_blocks(version, QRCODE_ECC[ecc]):
        chunk = data[offset:offset + block.data_count]
        offset += block.data_count
        blocks.append(chunk)
        ec_blocks.append(_reed_solomon(chunk, block.total_count - block.data_count))
    return np.concatenate([_interleave(blocks), _interleave(ec_blocks)]).astype(np.uint8)


def _interleave(blocks: list[np.ndarray]) -> np.ndarray:
    """Codeword i of every block in turn, skipping blocks that are shorter (column-major read-out)."""
    table = np.full((len(blocks), max(map(len, blocks))), -1, np.int64)
    for k, block in enumerate(blocks):
        table[k, :len(block)] = block
    flat = table.T.ravel()
    return flat[flat >= 0]


@cache
def _placement(version: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the data modules in bit order: two-column strips from the right edge, upward then
    downward in turn, skipping the vertical timing column (ISO/IEC 18004 7.7.3)."""
    n = symbol_size(version)
    free = (part_map(version) == DATA).tolist()
    rows, cols = [], []
    upward = True
    for right in range(n - 1, 0, -2):
        right = right - 1 if right <= 6 else right
        for r in (range(n - 1, -1, -1) if upward else range(n)):
            for c in (right, right - 1):
                if free[r][c]:
                    rows.append(r)
                    cols.append(c)
        upward = not upward
    return np.array(rows), np.array(cols)


def bch_version_bits(version: int) -> int:
    """The 18-bit version word: 6 version bits then the BCH(18,6) remainder, generator 0x1F25."""
    rem = version << 12
    for shift in range(5, -1, -1):
        if rem >> (shift + 12) & 1:
            rem ^= 0x1F25 << shift
    return version << 12 | rem


@cache
def _function_modules(version: int) -> np.ndarray:
    """Finders, separators, timing, alignment, dark module and version information; format bits and data
    left light."""
    modules = expected_colours(version) == 1
    n = modules.shape[0]
    if version >= 7:
        word = bch_version_bits(version)
        bits = np.array([(word >> i) & 1 for i in range(18)], bool).reshape(6, 3)  # bit i at (i // 3, i % 3)
        modules[0:6, n - 11:n - 8] = bits
        modules[n - 11:n - 8, 0:6] = bits.T
    modules.flags.writeable = False
    return modules


@cache
def _info_modules(version: int) -> np.ndarray:
    """Format information (incl. the dark module) and version information modules."""
    info = np.isin(part_map(version), (FORMAT_INFO, VERSION_INFO))
    info.flags.writeable = False
    return info


def encode(payload: str, version: int | None = None, ecc: str = "M",
           mask_pattern: int | None = None) -> tuple[np.ndarray, int, str, int]:
    """Encode ``payload`` as one segment in ``payload_mode(payload)``; returns (modules N x N bool, dark =
    True; version; ecc; mask_pattern). The same symbol as ``qrcode`` with ``border=0`` gives for such
    payloads.

    ``version=None`` picks the smallest version that fits (ValueError if none does, or if a fixed
    version is too small). ``mask_pattern=None`` picks the lowest ``penalty`` as ``qrcode`` does (first
    on ties), scoring each candidate with format and version information light as qrcode does.
    """
    if ecc not in QRCODE_ECC:
        raise ValueError(f"ecc must be one of {ECC_LEVELS}, got {ecc!r}")
    if mask_pattern is not None and mask_pattern not in range(8):
        raise ValueError(f"mask_pattern must be in 0..7 or None, got {mask_pattern!r}")
    mode = payload_mode(payload)
    if version is None:
        values, widths = _segment_fields(payload, mode)
        needed = [4 + _count_bits(mode, v) + sum(widths) for v in range(1, 41)]
        fits = [v for v in range(1, 41) if needed[v - 1] <= _data_bit_limit(v, ecc)]
        if not fits:
            raise ValueError(f"payload of {len(payload)} chars does not fit any QR version at ecc {ecc}")
        version = fits[0]
    version = check_version(version)
    codewords = _codewords(payload, mode, version, ecc)
    bits = np.unpackbits(codewords)
    rows, cols = _placement(version)
    unmasked = _function_modules(version).copy()
    unmasked[rows[:len(bits)], cols[:len(bits)]] = bits.astype(bool)  # remainder bits stay light
    masks = _mask_stack(version)
    if mask_pattern is None:
        candidates = (unmasked[None] ^ masks) & ~_info_modules(version)  # qrcode scores them light
        mask_pattern = int(np.argmin(penalty(candidates)))
    modules = unmasked ^ masks[mask_pattern]
    word = bch_format_bits(ecc, mask_pattern)
    format_bits = np.array([(word >> i) & 1 for i in range(15)], bool)
    for copy in format_info_positions(version):
        modules[copy[:, 0], copy[:, 1]] = format_bits
    return modules, version, ecc, mask_pattern
