"""Dataset builder throughput, against the authors' generator in the same run.

(a) End to end: `build_dataset("standard", ..., image_size=224, num_proc=2)` (render, PNG-encode, write
    parquet, card and figure included), in samples/s of wall time. Goal: >= 400 samples/s on a 2-core
    machine. Also printed: the CPU time per row (this process + its workers) and the rate it projects on
    2 idle cores (2 / CPU time per row), which a loaded, shared machine changes far less than the wall rate.
(b) In memory, one process, one thread: the `paper` config's `generate_row` loop against the authors'
    generator (arXiv 2509.16745, `qr_ft_compare.py`: `generate_qr_rich_with_meta` + `make_negative`),
    reimplemented below step for step. Timed in CPU seconds (`time.process_time`: samples/s on one idle
    core). Goal: >= 2x the authors' QR samples/s per core (they measured about 558 QR samples/s on one
    core of a quiet 2-core EPYC). Rates are the median of `--repeats` runs, ours and theirs alternating
    so that a change in machine load hits both alike; higher is better.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_dataset.py [--rows-a 2000] [--rows-b 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import string
import tempfile
import time

import cv2
import numpy as np
import qrcode

from cambench_qr.dataset_builder import build_dataset, generate_row

# ---- the authors' generator (docs/paper.md s.1 and s.6), reimplemented ----------------
ALPHANUMERIC = string.ascii_uppercase + string.digits + " $%*+-./:"
ECC_LEVELS = {"L": qrcode.constants.ERROR_CORRECT_L, "M": qrcode.constants.ERROR_CORRECT_M,
              "Q": qrcode.constants.ERROR_CORRECT_Q, "H": qrcode.constants.ERROR_CORRECT_H}


def authors_matrix(text: str, ecc: str) -> np.ndarray:
    """qrcode module matrix, auto-fit version, 1 px modules, no quiet zone (border 0)."""
    code = qrcode.QRCode(version=None, error_correction=ECC_LEVELS[ecc], box_size=1, border=0)
    code.add_data(text)
    code.make(fit=True)
    return np.array(code.get_matrix(), dtype=np.uint8)


def authors_module_masks(mat: np.ndarray) -> list[np.ndarray]:
    """Finder (three 7x7 blocks), timing (row/col 6 minus the finder blocks), box (all ones)."""
    n = mat.shape[0]
    finder, timing = np.zeros_like(mat), np.zeros_like(mat)
    timing[6, :] = 1
    timing[:, 6] = 1
    for r, c in ((0, 0), (0, n - 7), (n - 7, 0)):
        finder[r:r + 7, c:c + 7] = 1
        timing[r:r + 7, c:c + 7] = 0
    return [finder, timing, np.ones_like(mat)]


def authors_qr_sample(rnd: random.Random, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """One QR sample: image (grey uint8) and its finder/timing/box pixel masks, all distortions drawn."""
    for _ in range(12):  # their version cap (6) with retries; 6-16 alphanumeric chars never exceed it
        ecc = rnd.choice("LMQH")
        text = "".join(rnd.choice(ALPHANUMERIC) for _ in range(rnd.randint(6, 16)))
        mat = authors_matrix(text, ecc)
        if (mat.shape[0] - 21) // 4 + 1 <= 6:
            break
    scale, bg = rnd.choice((8, 10, 12)), rnd.randint(230, 255)
    block = np.ones((scale, scale), dtype=np.uint8)
    image = np.kron(1 - mat, block) * 255
    if bg != 255:
        image = image.copy()
        image[image == 255] = bg
    masks = [np.kron(m, block) for m in authors_module_masks(mat)]
    rotation, blur = rnd.choice((0, 5, -5, 10, -10)), rnd.choice((0, 1, 2, 3))
    contrast, brightness = rnd.choice((0.85, 1.0, 1.15)), rnd.choice((-15, -5, 0, 5, 15))
    occlude, motion, perspective = rnd.random() < 0.25, rnd.random() < 0.20, rnd.random() < 0.30

    h, w = image.shape
    out = np.clip(image.astype(np.float32) * contrast + brightness, 0, 255)
    if rotation:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rotation, 1.0)
        out = cv2.warpAffine(out, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=255)
        masks = [(cv2.warpAffine(k * 255, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0) > 127)
                 .astype(np.uint8) for k in masks]
    if perspective:
        src = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
        jitter = [[rng.uniform(-0.12, 0.12) * w, rng.uniform(-0.12, 0.12) * h] for _ in range(4)]
        dst = src + np.float32(jitter)
        hm = cv2.getPerspectiveTransform(src, dst)
        out = cv2.warpPerspective(out, hm, (w, h), flags=cv2.INTER_NEAREST, borderValue=255)
        masks = [(cv2.warpPerspective(k * 255, hm, (w, h), flags=cv2.INTER_NEAREST, borderValue=0) > 127)
                 .astype(np.uint8) for k in masks]
    if blur:
        k = blur if blur % 2 else blur + 1
        out = cv2.GaussianBlur(out, (k, k), 0)
    if motion:
        k = rnd.choice((5, 7, 9))
        kernel = np.zeros((k, k), dtype=np.float32)
        kernel[k // 2, :] = 1.0 / k
        out = cv2.filter2D(out, -1, kernel)
    if occlude:
        x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
        side = rng.integers(h // 10, h // 4)
        out[y0:y0 + side, x0:x0 + side] = 255
    return out.astype(np.uint8), [(k > 0).astype(np.uint8) for k in masks]


def authors_negative(rnd: random.Random, rng: np.random.Generator, size: int = 280) -> np.ndarray:
    """Their negative: a 20 px checkerboard, or 20 random filled rectangles, on white."""
    image = np.full((size, size), 255, np.uint8)
    if rnd.random() < 0.5:
        for i in range(0, size, 20):
            for j in range(0, size, 20):
                if (i // 20 + j // 20) % 2 == 0:
                    image[i:i + 20, j:j + 20] = 0
        return image
    for _ in range(20):
        x1, y1 = rng.integers(0, size - 10, 2)
        x2, y2 = rng.integers(x1 + 5, min(size, x1 + 80)), rng.integers(y1 + 5, min(size, y1 + 80))
        cv2.rectangle(image, (int(x1), int(y1)), (int(x2), int(y2)), rnd.choice((0, 80, 160, 200)), -1)
    return image


# ---- measurements ----------------------------------------------------------------------------------------
def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def authors_rates(n: int, seed: int) -> tuple[float, float]:
    """(QR samples/s, negatives/s) of the authors' generator, n of each."""
    rnd, rng = random.Random(seed), np.random.default_rng(seed)
    start = time.process_time()
    for _ in range(n):
        authors_qr_sample(rnd, rng)
    qr_seconds = time.process_time() - start
    start = time.process_time()
    for _ in range(n):
        authors_negative(rnd, rng)
    return rate(n, qr_seconds), rate(n, time.process_time() - start)


def paper_rates(n: int, seed: int) -> tuple[float, float, float]:
    """(QR rows/s, negative rows/s, all rows/s) of generate_row("paper", ...) over rows 0..n-1."""
    seconds = {0: 0.0, 1: 0.0}
    counts = {0: 0, 1: 0}
    for index in range(n):
        start = time.process_time()
        row = generate_row("paper", "train", index, seed)
        seconds[row["label"]] += time.process_time() - start
        counts[row["label"]] += 1
    return rate(counts[1], seconds[1]), rate(counts[0], seconds[0]), rate(n, seconds[0] + seconds[1])


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the build's worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def end_to_end_rates(rows: int, num_proc: int, image_size: int) -> tuple[float, float]:
    """(samples/s, samples per CPU-second) of a full `standard` build (80% train / 20% test), fresh folder."""
    num_test = rows // 5
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu_start = time.perf_counter(), cpu_seconds()
        build_dataset("standard", os.path.join(tmp, "ds"), num_train=rows - num_test, num_test=num_test,
                      num_proc=num_proc, image_size=image_size, quiet=True)
        return rate(rows, time.perf_counter() - start), rate(rows, cpu_seconds() - cpu_start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-a", type=int, default=2000, help="rows of the end-to-end standard build")
    parser.add_argument("--rows-b", type=int, default=300, help="rows per in-memory repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)

    e2e, per_cpu = end_to_end_rates(args.rows_a, num_proc=2, image_size=224)
    print(f"(a) standard, 224 px, num_proc=2, end to end (render + PNG + parquet), {args.rows_a} rows: "
          f"{e2e:.0f} samples/s wall; {1000 / per_cpu:.2f} ms CPU per row -> {2 * per_cpu:.0f} samples/s "
          f"on 2 idle cores; goal >= 400/s -> wall {'met' if e2e >= 400 else 'NOT met'}, "
          f"CPU projection {'met' if 2 * per_cpu >= 400 else 'NOT met'}")

    ours, theirs = [], []
    for r in range(args.repeats):
        ours.append(paper_rates(args.rows_b, seed=r))
        theirs.append(authors_rates(args.rows_b // 2, seed=r))
    our_qr, our_neg, our_all = (statistics.median(x[i] for x in ours) for i in range(3))
    their_qr, their_neg = (statistics.median(x[i] for x in theirs) for i in range(2))
    # Their 50/50 split (build_splits): time per pair = 1/qr + 1/neg, two samples per pair.
    their_all = 2 / (1 / their_qr + 1 / their_neg)
    print(f"(b) paper config, 1 process, 1 thread, CPU time, median of {args.repeats} x {args.rows_b} rows:")
    print(f"    QR rows:       ours {our_qr:7.0f}/s   authors {their_qr:7.0f}/s   "
          f"ratio {our_qr / their_qr:.2f}x")
    print(f"    negative rows: ours {our_neg:7.0f}/s   authors {their_neg:7.0f}/s   "
          f"ratio {our_neg / their_neg:.2f}x")
    print(f"    all rows:      ours {our_all:7.0f}/s   authors {their_all:7.0f}/s   "
          f"ratio {our_all / their_all:.2f}x (50/50 QR/negative)")
    print(f"    goal: QR rows >= 2x the authors' -> {'met' if our_qr >= 2 * their_qr else 'NOT met'}; "
          f"all rows >= 2x -> {'met' if our_all >= 2 * their_all else 'NOT met'}")


if __name__ == "__main__":
    main()
