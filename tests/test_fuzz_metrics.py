"""Fuzz: generated bad inputs thrown at structure_scores, prepare_parts and the evaluate module.

Every input must end in a one-line error raised by this package's own checks (ValueError or TypeError,
short, no array dump), or in a result: exact where the input is valid (a bf16 map scores as its float32
values), with invalid samples flagged (``valid=False``, every score NaN) where a map has no mass. Never a
traceback from deep inside torch/numpy/datasets, never a number for an input that is wrong.
"""

from __future__ import annotations

import collections
import math
import traceback
from pathlib import Path

import evaluate
import numpy as np
import pytest
import torch

import cambench_qr
import cambench_qr.metrics as metrics
from cambench_qr.metrics import SCORE_NAMES, prepare_parts, structure_scores

B, H, W = 3, 16, 16
MAX_MESSAGE = 300
PACKAGE_DIR = str(Path(cambench_qr.__file__).parent)
ENTRIES = ("structure_scores", "prepare_parts", "evaluate")


def base_parts() -> np.ndarray:
    parts = np.zeros((B, H, W), np.uint8)
    parts[:, 2:14, 2:14] = 8  # data
    parts[:, 2:5, 2:5] = 2  # finder
    parts[:, 6, 2:14] = 4  # timing
    parts[:, 0, :] = 1  # quiet zone
    return parts


def base_saliency(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((B, H, W)).astype(np.float32)


class Case:
    """One input: ``sal``/``parts``/``options`` and the outcome each entry point must give: "error",
    "result" (checked against ``reference``: the float32/uint8 form of the same maps) or "flagged"."""

    def __init__(self, name, sal, parts, options=None, expect="error", reference=None, **per_entry):
        self.name, self.sal, self.parts, self.options = name, sal, parts, options or {}
        self.reference = reference
        self.expect = {entry: per_entry.get(entry, expect) for entry in ENTRIES}


def cases() -> list[Case]:
    sal, parts = base_saliency(), base_parts()
    ok_parts = {"prepare_parts": "result"}  # the saliency is at fault: the part maps alone are fine
    out: list[Case] = []
    # Saliency dtypes: every float type is scored as float32; others are refused.
    for dtype in (torch.bfloat16, torch.float16, torch.float64):
        t = torch.from_numpy(sal).to(dtype)
        out.append(Case(f"saliency {dtype}", t, parts, expect="result", reference=(t.float().numpy(), parts)))
    out.append(Case("saliency float64 array", sal.astype(np.float64), parts, expect="result",
                    reference=(sal, parts)))
    for dtype in (torch.bool, torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64,
                  torch.complex64):
        out.append(Case(f"saliency {dtype}", (torch.from_numpy(sal) * 5).to(dtype), parts, **ok_parts))
    for dtype in (np.int32, np.uint16, np.uint64, np.complex128, np.bool_, object, "U3", "datetime64[s]"):
        out.append(Case(f"saliency numpy {dtype}", (sal * 5).astype(dtype), parts, **ok_parts))
    # Part dtypes: any integer type holding ids 0..9 works; bool, float and the rest are refused.
    for dtype in (np.int8, np.int16, np.int32, np.int64, np.uint16, np.uint32, np.uint64):
        out.append(Case(f"parts numpy {np.dtype(dtype)}", sal, parts.astype(dtype), expect="result",
                        reference=(sal, parts)))
    for dtype in (torch.int16, torch.int32, torch.int64):
        out.append(Case(f"parts {dtype}", sal, torch.from_numpy(parts).to(dtype), expect="result",
                        reference=(sal, parts)))
    for dtype in (np.bool_, np.float16, np.float32, np.float64, np.complex64, object, "U2"):
        out.append(Case(f"parts numpy {np.dtype(dtype)}", sal, parts.astype(dtype)))
    for dtype in (torch.bool, torch.bfloat16, torch.float32):
        out.append(Case(f"parts {dtype}", sal, torch.from_numpy(parts).to(dtype)))
    # Part ids out of range.
    for bad_id in (10, 11, 255, -1, -128, 1000, 2**40):
        wrong = parts.astype(np.int64)
        wrong[1, 3, 3] = bad_id
        out.append(Case(f"parts id {bad_id}", sal, wrong))
    # Values.
    for value in (np.nan, np.inf, -np.inf, -0.5, 3e38, 1e-40, 2.0**-120):  # the whole map
        bad = sal.copy()
        bad[1] = value
        out.append(Case(f"saliency map of {value}", bad, parts, **ok_parts))
    for value in (np.nan, np.inf, -np.inf, -1e-30):  # one pixel
        bad = sal.copy()
        bad[2, 4, 4] = value
        out.append(Case(f"saliency pixel {value}", bad, parts, **ok_parts))
    signed = sal - 0.5
    out.append(Case("signed map without signed=True", signed, parts, **ok_parts))
    out.append(Case("signed map with signed=True", signed, parts, {"signed": True}, expect="result",
                    reference=(signed, parts)))
    for name, bad in (("all zero", 0.0), ("all negative, signed", -1.0)):
        flat = sal.copy()
        flat[2] = bad
        options = {"signed": True} if bad < 0 else {}
        out.append(Case(f"saliency sample {name}", flat, parts, options, expect="flagged"))
    constant = sal.copy()
    constant[0] = 0.25
    out.append(Case("constant map under minmax", constant, parts, {"normalize": "minmax"}, expect="flagged"))
    # Shapes.
    shaped = {"2-D": (H, W), "4-D": (B, 1, H, W), "1-D": (H,), "empty batch": (0, H, W),
              "zero height": (B, 0, W), "zero width": (B, H, 0), "one pixel": None}
    for name, shape in shaped.items():
        if shape is None:
            continue
        out.append(Case(f"saliency {name}", np.zeros(shape, np.float32) + 0.5, parts, **ok_parts))
        out.append(Case(f"parts {name}", sal, np.zeros(shape, np.uint8)))
    out.append(Case("saliency 0-d", np.float32(0.5), parts, **ok_parts))
    out.append(Case("parts 0-d", sal, np.uint8(2)))
    out.append(Case("batch 2 vs 3", sal[:2], parts, **ok_parts))
    out.append(Case("height 15 vs 16", sal[:, :15], parts, **ok_parts))
    out.append(Case("width 16 vs 15", sal, parts[:, :, :15]))
    out.append(Case("transposed saliency", np.ascontiguousarray(sal.transpose(0, 2, 1))[:, :, :8], parts,
                    **ok_parts))
    one = (np.ones((1, 1, 1), np.float32), np.full((1, 1, 1), 2, np.uint8))
    out.append(Case("one pixel, all finder", *one, expect="result", reference=one))
    # Containers.
    listed = [torch.from_numpy(m) for m in sal]
    out.append(Case("list of tensors", listed, list(parts), expect="result", reference=(sal, parts)))
    out.append(Case("nested python lists", sal.tolist(), parts.tolist(), expect="result",
                    reference=(sal, parts)))
    mixed_sal = [sal[0], sal[1, :8, :12]]
    mixed_parts = [parts[0], parts[1, :8, :12]]
    out.append(Case("list of mixed sizes", mixed_sal, mixed_parts, evaluate="result",
                    prepare_parts="error"))
    out.append(Case("mixed sizes, parts only", sal, mixed_parts))
    out.append(Case("ragged nested lists", [[0.1, 0.2], [0.3]], [[1, 2], [3]]))
    out.append(Case("empty list", [], []))
    out.append(Case("list of strings", ["a", "b"], list(parts), **ok_parts))
    out.append(Case("list of 3-D maps", [sal, sal], [parts, parts]))
    out.append(Case("saliency on a different pair size", [sal[0]], [parts[0][:, :8]], prepare_parts="result"))
    for name, thing in (("None", None), ("string", "saliency.png"), ("dict", {"a": 1}), ("int", 3),
                        ("set", {1, 2}), ("bytes", b"\x00\x01")):
        out.append(Case(f"saliency is a {name}", thing, parts, **ok_parts))
        out.append(Case(f"parts is a {name}", sal, thing))
    # Options.
    options_bad = [
        ("normalize", "max"), ("normalize", None), ("normalize", np.array(["sum"])),
        ("mask_mode", "Paper"), ("mask_mode", 3), ("mask_mode", np.array([1, 2])),
        ("signed", "yes"), ("signed", np.array([True, False])), ("signed", 1),
        *(("pointing_tolerance", v) for v in (-1.0, math.nan, math.inf, "2", np.array([1.0, 2.0]), True)),
        ("module_px", -1.0), ("module_px", 0.0), ("module_px", float("inf")), ("module_px", [1.0, 2.0]),
        ("module_px", "8"), ("module_px", np.arange(1, 1001, dtype=float)), ("module_px", [True] * B),
        ("module_px", {"a": 1}),
    ]
    for key, value in options_bad:
        score_only = key in ("normalize", "signed")
        out.append(Case(f"{key}={value!r}"[:60], sal, parts, {key: value},
                        **({"prepare_parts": "result"} if score_only else {})))
    for key, value in (("module_px", 8), ("module_px", [8.0, float("nan"), 4.0]), ("pointing_tolerance", 2),
                       ("mask_mode", "paper"), ("normalize", "minmax")):
        out.append(Case(f"valid {key}={value!r}", sal, parts, {key: value}, expect="result",
                        reference=(sal, parts)))
    return out


CASES = cases()
PREPARE_OPTIONS = ("mask_mode", "module_px", "pointing_tolerance")


def call(entry: str, case: Case, metric):
    if entry == "structure_scores":
        return structure_scores(case.sal, case.parts, **case.options)
    if entry == "prepare_parts":
        return prepare_parts(case.parts, **{k: v for k, v in case.options.items() if k in PREPARE_OPTIONS})
    return metric.compute(saliency=case.sal, parts=case.parts, return_per_sample=True, **case.options)


def own_check(error: BaseException) -> bool:
    """Whether the error was raised by this package's code (the evaluate module's copy included)."""
    frame = traceback.extract_tb(error.__traceback__)[-1].filename
    return frame.startswith(PACKAGE_DIR) or frame.endswith("cambench_structure.py")


def reference_scores(case: Case) -> dict:
    sal, parts = case.reference
    return structure_scores(torch.from_numpy(np.asarray(sal, np.float32)),
                            torch.from_numpy(np.asarray(parts, np.uint8)), **case.options)


def equal(a, b) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


def check_result(entry: str, case: Case, result) -> str:
    """The outcome of a returned result, asserting it is what the case allows."""
    if entry == "prepare_parts":
        assert isinstance(result, metrics.PreparedParts)
        return "result"
    valid = np.asarray(result["valid"] if entry == "structure_scores" else result["per_sample"]["valid"])
    per_sample = result if entry == "structure_scores" else result["per_sample"]
    scores = np.stack([np.asarray(per_sample[name], np.float64) for name in SCORE_NAMES])
    assert np.isnan(scores[:, ~valid]).all(), "an invalid sample got a number"
    if not valid.all():
        assert case.expect[entry] == "flagged", f"{case.name}: unexpected invalid samples"
        return "flagged"
    assert case.expect[entry] == "result", f"{case.name}: a number for an input that should fail"
    if case.reference is not None:
        ref = reference_scores(case)
        for name in SCORE_NAMES:
            got = per_sample[name]
            assert equal(got, ref[name]), f"{case.name}: {name} differs from the float32/uint8 input's"
    return "result"


def test_fuzz_inputs_get_a_clear_error_or_a_flagged_result(capsys):
    assert len(CASES) * len(ENTRIES) >= 120
    metric = evaluate.load(metrics.EVALUATE_MODULE, keep_in_memory=True)
    counts: collections.Counter = collections.Counter()
    for case in CASES:
        for entry in ENTRIES:
            try:
                result = call(entry, case, metric)
            except (ValueError, TypeError) as error:
                message = str(error)
                assert own_check(error), f"{entry} / {case.name}: {type(error).__name__} from deep inside: " \
                                         f"{traceback.extract_tb(error.__traceback__)[-1]}"
                assert "\n" not in message and 0 < len(message) <= MAX_MESSAGE, \
                    f"{entry} / {case.name}: message of {len(message)} chars: {message[:200]!r}"
                assert case.expect[entry] == "error", f"{entry} / {case.name}: unexpected error: {message}"
                counts[(entry, "error")] += 1
                continue
            except Exception as error:  # noqa: BLE001 - any other exception is a failure of the test
                pytest.fail(f"{entry} / {case.name}: {type(error).__name__}: {str(error)[:200]}")
            counts[(entry, check_result(entry, case, result))] += 1
    total = sum(counts.values())
    with capsys.disabled():
        print(f"\nfuzz: {len(CASES)} inputs x {len(ENTRIES)} entry points = {total} calls")
        for (entry, outcome), count in sorted(counts.items()):
            print(f"  {entry:17s} {outcome:8s} {count}")
    outcomes = {outcome for _, outcome in counts}
    assert outcomes == {"error", "result", "flagged"}, f"the inputs reach only {outcomes}"
