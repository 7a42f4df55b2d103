"""Random QR payloads sized to land on a chosen version, from an explicit generator."""

from __future__ import annotations

import string
from functools import cache

import numpy as np
from qrcode.util import BIT_LIMIT_TABLE

from cambench_qr.dataset_builder.geometry import QRCODE_ECC, check_version

ALPHANUMERIC = string.ascii_uppercase + string.digits + " $%*+-./:"  # the QR alphanumeric set
URL_CHARS = string.ascii_lowercase + string.digits + "-._~/?=&"
PAYLOAD_STYLES: tuple[str, ...] = ("alphanumeric", "numeric", "url")


def _bits(style: str, length: int, version: int) -> int:
    """Data bits of a single-segment payload: 4-bit mode + character count + data
    (numeric 10 bits / 3 digits, alphanumeric 11 bits / 2 chars, byte 8 bits / char; ISO/IEC 18004 7.4)."""
    band = 0 if version <= 9 else 1 if version <= 26 else 2
    if style == "numeric":
        return 4 + (10, 12, 14)[band] + 10 * (length // 3) + (0, 4, 7)[length % 3]
    if style == "alphanumeric":
        return 4 + (9, 11, 13)[band] + 11 * (length // 2) + 6 * (length % 2)
    return 4 + (8, 16, 16)[band] + 8 * length


@cache
def capacity(version: int, ecc: str, style: str) -> int:
    """Most characters of ``style`` that fit a symbol of ``version`` / ``ecc`` in one segment."""
    limit = BIT_LIMIT_TABLE[QRCODE_ECC[ecc]][check_version(version)]
    length = 0
    while _bits(style, length + 1, version) <= limit:
        length += 1
    return length


def random_text(rng: np.random.Generator, alphabet: str, length: int) -> str:
    """``length`` characters drawn uniformly from ``alphabet``."""
    return "".join(np.array(list(alphabet))[rng.integers(0, len(alphabet), length)])


def payload_for_version(rng: np.random.Generator, version: int, ecc: str) -> str:
    """A payload of a random style whose length is uniform over the lengths that need exactly
    ``version`` at ``ecc`` (more than the previous version holds, at most this one's capacity).
    URLs of 16 or more characters start with ``https://``."""
    style = PAYLOAD_STYLES[int(rng.integers(len(PAYLOAD_STYLES)))]
    low = capacity(version - 1, ecc, style) + 1 if version > 1 else 1
    length = int(rng.integers(low, capacity(version, ecc, style) + 1))
    if style == "numeric":
        return random_text(rng, string.digits, length)
    if style == "alphanumeric":
        return random_text(rng, ALPHANUMERIC, length)
    prefix = "https://" if length >= 16 else ""
    return prefix + random_text(rng, URL_CHARS, length - len(prefix))
