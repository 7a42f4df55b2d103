"""Compiled (numba) kernels of the CPU path, where NumPy and OpenCV would be slower: the exact distance
transform (a sequential scan per row), the runs of equal part ids and their sums, the sort keys (one
pass instead of three) and the rank statistics of each sorted row (cut positions by binary search, the
class counts below them in one pass, the ties). They release the GIL, so ``_rows`` runs them on several
threads.

The torch path of other devices does the same work with batched torch ops (the distance transform
excepted: it always runs here); the tests require the same numbers from both.
"""

from __future__ import annotations

import numpy as np
from numba import njit

KEY_OFFSET = 1 << 31  # sort keys are int32: the uint32 key (float32 bits << 2 | class) minus 2**31
KEY_SIGN = np.uint32(KEY_OFFSET)  # XOR-ing it into a uint32 key = subtracting 2**31 read as int32


@njit(nogil=True, cache=True)
def exact_distance(labels: np.ndarray, least: int, out: np.ndarray, totals: np.ndarray) -> None:
    """Exact Euclidean distance from every pixel of each (H, W) image of ``labels`` (uint8, (B, H, W))
    to the nearest pixel labelled ``least`` or more (a target), into float32 ``out`` (1e20 in an image
    without targets), and each image's float64 sum of distances into ``totals``.

    Felzenszwalb & Huttenlocher (2012): per column the distance g to the nearest target in that column,
    then per row d(x)^2 = min_q (x - q)^2 + g(q)^2, the lower envelope of the parabolas of the columns
    that hold a target, read off left to right.

    Exact although two parabolas intersect at ``(h_q - h_p) / (2 (q - p))`` (h = g^2 + column^2) computed
    as h_q - h_p times a table of 1 / (2 d), not divided: two distinct intersections differ by at least
    1 / (2 W)^2, far more than the rounding, and at an integer column the parabolas of two equal
    intersections give the same (integer) squared distance. Indices are unsigned: numba then checks
    no negative index (with the table and whole-segment readout loops: 1.4x the speed here)."""
    batch, height, width = labels.shape
    far = height + width  # more than any in-column distance
    g = np.empty((height, width), np.int64)
    parabola = np.empty(width + 1, np.uint64)  # column of the k-th parabola of the envelope (k >= 1)
    bound = np.empty(width + 2, np.float64)  # the k-th parabola is lowest on [bound[k], bound[k + 1]]
    f = np.empty(width, np.float64)  # g(q)^2
    h = np.empty(width, np.float64)  # g(q)^2 + q^2
    half_inverse = np.empty(width, np.float64)
    for d in range(1, width):
        half_inverse[d] = 1.0 / (2.0 * d)
    one, end = np.uint64(1), np.uint64(width)
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
            column_distance = g[y]
            k = np.uint64(0)  # parabolas in the envelope
            for q in range(width):
                if column_distance[q] >= far:
                    continue
                f[q] = float(column_distance[q] * column_distance[q])
                h[q] = f[q] + q * q
                s = -np.inf
                while k > 0:
                    p = parabola[k]
                    s = (h[q] - h[p]) * half_inverse[np.uint64(q) - p]
                    if s > bound[k]:
                        break
                    k -= one
                k += one
                parabola[k] = q
                bound[k] = s if k > 1 else -np.inf
                bound[k + one] = np.inf
            row = out[b, y]
            if k == 0:
                row[:] = np.float32(1e20)
                total += 1e20 * width
                continue
            x = np.uint64(0)
            for j in range(one, k + one):  # the j-th parabola is lowest on [x, bound[j + 1]]
                if bound[j + one] < x:
                    continue
                p = np.int64(parabola[j])
                stop = end if bound[j + one] >= width - 1 else np.uint64(bound[j + one]) + one
                for column in range(x, stop):
                    offset = np.int64(column) - p
                    # float32 square root of an exact integer: the rounded float64 one, cheaper
                    distance = np.sqrt(np.float32(offset * offset + f[p]))
                    row[column] = distance
                    total += distance
                x = stop
        totals[b] = total


@njit(nogil=True, cache=True)
def count_part_runs(parts: np.ndarray, class_bits: int, classes: np.ndarray, row_runs: np.ndarray) -> None:
    """For (B, n) uint8 part maps: each pixel's class ``(class_bits >> 2 id) & 3`` into ``classes`` and the
    cumulative count of runs of equal ids along each row into ``row_runs`` (B + 1,)."""
    batch, n = parts.shape
    row_runs[0] = 0
    for b in range(batch):
        row, row_classes = parts[b], classes[b]
        runs = 1
        for i in range(n - 1):
            runs += row[i + 1] != row[i]
        for i in range(n):
            row_classes[i] = (class_bits >> (2 * np.uint32(row[i]))) & 3
        row_runs[b + 1] = row_runs[b] + runs


@njit(nogil=True, cache=True)
def part_runs(parts: np.ndarray, row_runs: np.ndarray, run_start: np.ndarray, run_bin: np.ndarray,
              part_px: np.ndarray) -> None:
    """The runs counted by ``count_part_runs``: each one's flat start (row * n + column) and bin (row *
    ids + part id), and each row's pixels per part id (``part_px`` (B, ids), zeroed by the caller)."""
    batch, n = parts.shape
    ids = part_px.shape[1]
    for b in range(batch):
        row = parts[b]
        r = row_runs[b]
        run_start[r] = b * n
        for i in range(n - 1):
            if row[i + 1] != row[i]:
                r += 1
                run_start[r] = b * n + i + 1
        for j in range(row_runs[b], row_runs[b + 1]):
            stop = (b + 1) * n if j + 1 == row_runs[b + 1] else run_start[j + 1]
            part = row[run_start[j] - b * n]
            run_bin[j] = b * ids + part
            part_px[b, part] += stop - run_start[j]


@njit(nogil=True, cache=True)
def run_sums(values: np.ndarray, starts: np.ndarray, out: np.ndarray) -> None:
    """``out[j]`` = float64 sum of float32 ``values[starts[j]:starts[j + 1]]`` (the last run ends at the
    end of ``values``): one row's part-run sums (``torch_batched.run_sums`` in torch)."""
    runs = starts.shape[0]
    for j in range(runs):
        stop = values.shape[0] if j + 1 == runs else starts[j + 1]
        out[j] = _float64_sum(values[starts[j]:stop])


@njit(nogil=True, cache=True, fastmath={"reassoc"})
def _float64_sum(values: np.ndarray) -> float:
    """Sum in float64; reassociated, so it vectorises (2x NumPy's ``reduceat`` on the part runs)."""
    total = 0.0
    for i in range(values.shape[0]):
        total += np.float64(values[i])
    return total


@njit(nogil=True, cache=True)
def row_keys(bits: np.ndarray, classes: np.ndarray, out: np.ndarray) -> None:
    """``out = ((bits << 2) | classes) XOR 2**31`` (uint32): the unsorted sort keys of one row
    (``torch_batched.sorted_keys``)."""
    for j in range(bits.shape[0]):
        out[j] = ((bits[j] << 2) | classes[j]) ^ KEY_SIGN


TIE_BLOCK = 64  # the tie scan checks blocks of sorted keys for ties at once and walks only those with one


@njit(nogil=True, cache=True)
def _value_key(bits: int) -> int:
    """The smallest int32 key of the float32 value with ``bits`` (class 0)."""
    return (bits << 2) - KEY_OFFSET


@njit(nogil=True, cache=True)
def rank_stats(keys: np.ndarray, quantile: np.ndarray, low: np.ndarray, top_k: np.ndarray,
               offsets: np.ndarray, positions: np.ndarray, counts: np.ndarray, sums: np.ndarray) -> None:
    """What the rank-based scores read off one row of n sorted int32 keys (``torch_batched.sorted_keys``:
    key + 2**31 = float32 value bits << 2 | pixel class); ``torch_batched.rank_stats`` is the same for a
    batch, in torch.

    ``positions`` (Q,) int64, Q = len(quantile) + 2 len(top_k) + 1, the first sorted positions (each
    group from its column in ``offsets``: ``contract.query_offsets``):
      - ``auc_kept``: at or above each AUC threshold ``tau_j = v[low_j] + (v[low_j + 1] - v[low_j]) *
        (quantile_j - low_j)`` (float64, then rounded up to float32; v the sorted values, ``low_j + 1``
        at most n - 1);
      - ``cut_first``, ``cut_end``: of the run of values tied at the cut of the ``top_k[r]`` highest
        pixels, for each r, and the first position after it;
      - ``top``: of the run of the maximum.
    ``counts`` (Q, 3) int64: pixels of class >= 1, >= 2 and >= 3 before each position.
    ``sums`` (4,) int64: the position sums of the pixels of class >= 1 and of class >= 2, then the tied
    pairs of each with its complement: sum over runs of equal values of #(class < c) #(class >= c)."""
    n = keys.shape[0]
    word = np.empty(1, np.uint32)  # float32 bits <-> value
    value = word.view(np.float32)
    auc_at, cut_first_at, cut_end_at, top_at = offsets[0], offsets[1], offsets[2], offsets[3]
    for j in range(quantile.shape[0]):
        word[0] = (keys[low[j]] + KEY_OFFSET) >> 2
        v_low = np.float64(value[0])
        word[0] = (keys[min(low[j] + 1, n - 1)] + KEY_OFFSET) >> 2
        tau = v_low + (np.float64(value[0]) - v_low) * (quantile[j] - low[j])
        value[0] = np.float32(tau)
        if np.float64(value[0]) < tau:  # round up: the next float32
            word[0] += np.uint32(1)
        positions[auc_at + j] = _first_at_least(keys, _value_key(np.int64(word[0])))
    for r in range(top_k.shape[0]):
        cut = keys[min(max(n - top_k[r], 0), n - 1)] & -4
        positions[cut_first_at + r] = _first_at_least(keys, cut)
        positions[cut_end_at + r] = _first_at_least(keys, cut + 4)
    positions[top_at] = _first_at_least(keys, keys[n - 1] & -4)

    order = _argsort_small(positions)
    box = structure = finder = box_sum = structure_sum = 0
    start = 0
    for i in range(order.shape[0] + 1):
        stop = n if i == order.shape[0] else positions[order[i]]
        if stop > start:
            counted = _class_counts(keys[start:stop], start)
            box, structure, finder = box + counted[0], structure + counted[1], finder + counted[2]
            box_sum, structure_sum = box_sum + counted[3], structure_sum + counted[4]
            start = stop
        if i < order.shape[0]:
            counts[order[i], 0], counts[order[i], 1], counts[order[i], 2] = box, structure, finder
    sums[0], sums[1] = box_sum, structure_sum

    # Ties across classes: a run of equal values is sorted by class, so it holds #(class < c) #(class >= c)
    # such pairs, both counts read off at its one step from class < c to class >= c.
    sums[2] = sums[3] = 0
    for first in range(0, n - 1, TIE_BLOCK):
        block = keys[first:min(first + TIE_BLOCK + 1, n)]
        if _class_steps(block) == 0:
            continue
        for j in range(block.shape[0] - 1):
            if not _class_step(block[j], block[j + 1]):
                continue
            run = block[j + 1] & -4
            below = first + j + 1 - _first_at_least(keys, run)
            above = _first_at_least(keys, run + 4) - (first + j + 1)
            lower, upper = block[j] & 3, block[j + 1] & 3
            for c in range(1, 3):
                if lower < c <= upper:
                    sums[1 + c] += below * above


@njit(nogil=True, cache=True)
def _first_at_least(keys: np.ndarray, key: int) -> int:
    """The first position of sorted ``keys`` holding ``key`` or more (a binary search; the first with a
    greater value than a class-0 key k is the first at least k + 4). Here rather than np.searchsorted,
    whose numba version takes seconds to compile."""
    lo, hi = 0, keys.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(nogil=True, cache=True)
def _argsort_small(values: np.ndarray) -> np.ndarray:
    """Indices that sort a few ``values`` (insertion sort: cheap for tens, quick to compile)."""
    order = np.arange(values.shape[0])
    for i in range(1, order.shape[0]):
        j = i
        while j > 0 and values[order[j - 1]] > values[order[j]]:
            order[j - 1], order[j] = order[j], order[j - 1]
            j -= 1
    return order


# Loops over whole slices (indices from range(len)): numba then needs no negative-index wrap per element
# and LLVM vectorises them (an offset index, start + i, made these 5-10x slower).
@njit(nogil=True, cache=True)
def _class_counts(keys: np.ndarray, offset: int) -> tuple[int, int, int, int, int]:
    """Keys of class >= 1, >= 2 and 3, and the position sums (``offset`` + index) of those of class >= 1
    and >= 2."""
    box = structure = finder = box_sum = structure_sum = 0
    for i in range(keys.shape[0]):
        cls = keys[i] & 3
        in_box, in_structure = np.int64(cls >= 1), np.int64(cls >= 2)
        box += in_box
        structure += in_structure
        finder += np.int64(cls == 3)
        box_sum += i * in_box
        structure_sum += i * in_structure
    return box, structure, finder, box_sum + offset * box, structure_sum + offset * structure


@njit(nogil=True, cache=True)
def _class_steps(keys: np.ndarray) -> int:
    """How many neighbouring keys hold the same value and different classes."""
    steps = 0
    for i in range(keys.shape[0] - 1):
        steps += _class_step(keys[i], keys[i + 1])
    return steps


@njit(nogil=True, cache=True, inline="always")
def _class_step(key: np.int32, next_key: np.int32) -> bool:
    """Whether two keys hold the same value and different classes: their XOR is 1, 2 or 3."""
    return np.uint32(key ^ next_key) - np.uint32(1) < np.uint32(3)
