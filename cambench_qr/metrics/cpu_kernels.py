"""Compiled (numba) kernels of the CPU path, where NumPy and OpenCV would be slower: the exact distance
transform (a sequential scan per row), the sort keys (one pass instead of three) and the tie scan (one
pass instead of four). They release the GIL, so ``_rows`` runs them on several threads.

The torch path of other devices does the same work with batched torch ops (the distance transform
excepted: it always runs here); the tests require the same numbers from both.
"""

from __future__ import annotations

import numpy as np
from numba import njit

KEY_SIGN = np.uint32(1 << 31)  # XOR-ing it into a uint32 key = subtracting 2**31 read as int32


@njit(nogil=True, cache=True)
def exact_distance(labels: np.ndarray, least: int, out: np.ndarray, totals: np.ndarray) -> None:
    """Exact Euclidean distance from every pixel of each (H, W) image of ``labels`` (uint8, (B, H, W))
    to the nearest pixel labelled ``least`` or more (a target), into float32 ``out`` (1e20 in an image
    without targets), and each image's float64 sum of distances into ``totals``.

    Felzenszwalb & Huttenlocher (2012): per column the distance g to the nearest target in that column,
    then per row d(x)^2 = min_q (x - q)^2 + g(q)^2, the lower envelope of the parabolas of the columns
    that hold a target, read off left to right."""
    batch, height, width = labels.shape
    far = height + width  # more than any in-column distance
    g = np.empty((height, width), np.int64)
    parabola = np.empty(width, np.int64)  # column of the k-th parabola of the envelope
    bound = np.empty(width + 1, np.float64)  # the k-th parabola is lowest on [bound[k], bound[k + 1]]
    f = np.empty(width, np.float64)  # g(q)^2
    for b in range(batch):
        image = labels[b]
        for x in range(width):
            g[0, x] = 0 if image[0, x] >= least else far
        for y in range(1, height):
            for x in range(width):
                g[y, x] = 0 if image[y, x] >= least else g[y - 1, x] + 1
        for y in range(height - 2, -1, -1):
            for x in range(width):
                g[y, x] = min(g[y, x], g[y + 1, x] + 1)
        total = 0.0
        for y in range(height):
            k = -1
            for q in range(width):
                if g[y, q] >= far:
                    continue
                f[q] = float(g[y, q] * g[y, q])
                s = -np.inf
                while k >= 0:
                    p = parabola[k]
                    s = ((f[q] + q * q) - (f[p] + p * p)) / (2.0 * (q - p))
                    if s > bound[k]:
                        break
                    k -= 1
                k += 1
                parabola[k] = q
                bound[k] = s if k > 0 else -np.inf
                bound[k + 1] = np.inf
            row = out[b, y]
            if k < 0:
                row[:] = np.float32(1e20)
                total += 1e20 * width
                continue
            k = 0
            for x in range(width):
                while bound[k + 1] < x:
                    k += 1
                p = parabola[k]
                row[x] = np.float32(np.sqrt((x - p) * (x - p) + f[p]))
                total += row[x]
        totals[b] = total


@njit(nogil=True, cache=True)
def row_keys(bits: np.ndarray, classes: np.ndarray, out: np.ndarray) -> None:
    """``out = ((bits << 2) | classes) XOR 2**31`` (uint32): the unsorted sort keys of one row
    (``scores.sorted_keys``)."""
    for j in range(bits.shape[0]):
        out[j] = ((bits[j] << 2) | classes[j]) ^ KEY_SIGN


@njit(nogil=True, cache=True)
def row_ties(keys: np.ndarray, col: np.ndarray, start: np.ndarray, end: np.ndarray) -> int:
    """``scores.class_steps`` of one sorted uint32 key row: the positions ``col`` whose key and the next
    hold the same value but different classes (XOR in 1..3), each with the sorted positions
    ``[start, end)`` of that value's run. Returns how many were written."""
    n = keys.shape[0]
    found = 0
    for j in range(n - 1):
        if (keys[j] ^ keys[j + 1]) - np.uint32(1) < np.uint32(3):
            value = keys[j + 1] >> 2
            first = j
            while first > 0 and keys[first - 1] >> 2 == value:
                first -= 1
            last = j + 2
            while last < n and keys[last] >> 2 == value:
                last += 1
            col[found] = j
            start[found] = first
            end[found] = last
            found += 1
    return found
