"""Sanity checks of every CAM method on CAMBench-QR ("Sanity Checks for Saliency Maps", Adebayo et al.,
2018): a structure score is evidence about the model only if it collapses when the model's knowledge is
destroyed.

Tests (each a :class:`SanityResult`; step 0 is always the original model's maps):

- ``cascading``: the model's blocks (``harness.randomization``) are randomized top-down, head first,
  in ``steps`` contiguous chunks, each step adding one chunk, until the stem is reached (full
  randomization). The explained class stays the original model's prediction.
- ``independent``: one chunk at a time, every other parameter at its original value.
- ``random_logit``: the original model explaining a class it does not predict (a seeded random one of
  the others; for two classes, the other class).
- ``data``: a model trained through the harness on permuted labels (``cambench-qr train
  --permute-labels``) against the real model, each explaining its own prediction.

One engine pass per batch and step computes every method (own and ``pgc:``). At each step and per
method and image: the similarity to the original map (``harness.map_similarity``: Spearman rho of the
signed maps and of their absolute values, SSIM, top-k intersection; higher = more similar) and the
structure scores of the map (FMR, BL, DtS from ``metrics.structure_scores``, ReLU + sum-normalised at
the input resolution, with their chance values: what a uniform map gets). ``sanity_rows`` aggregates
them with bootstrap CIs (``metrics.aggregate``).

Pass/fail rule, per method, at the last step of ``cascading`` and of ``data`` (full knowledge
destruction): the method passes when

1. the mean Spearman rho between the original and the randomized maps (signed maps) has absolute value
   below ``RHO_MAX`` = 0.3 (at most a weak rank correlation), and
2. the 95% bootstrap CI of the randomized maps' mean FMR contains the mean chance FMR (the finder mass
   is no longer distinguishable from a uniform map's).

``random_logit`` has a signed rule 1 only: the mean rho must be below ``RHO_MAX`` (a map that stays
positively rank-correlated when another class is explained does not explain the class). Anti-correlation
passes: with two classes a class-sensitive map of the other class is roughly the negated original
(Grad-CAM of a linear head: the other class's weights minus the predicted one's), which is exactly the
change the test asks for. ``independent`` is diagnostic, without a rule. A method passes sanity when it
passes every ruled test that was run; a test whose numbers are missing (a failed method, fewer than two
images) is undetermined (``passed`` None), never a pass. Caveat: with few images the FMR CI is wide and
rule 2 is easy to meet; the rows carry ``n``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..cams import CamEngine, TargetLayer, check_methods, upsample
from ..metrics import aggregate, prepare_parts, structure_scores
from .map_similarity import SIMILARITY_NAMES, SimilarityReference
from .randomization import chunk_blocks, randomization_blocks, randomize_

TESTS = ("cascading", "independent", "random_logit", "data")
RULED_TESTS = ("cascading", "data", "random_logit")
STRUCTURE_NAMES = ("fmr", "bl", "dts")
RHO_MAX = 0.3
RULE = (f"|mean Spearman rho (signed maps) vs the original| < {RHO_MAX} at full randomization, and the "
        f"95% CI of FMR contains chance (random_logit: mean rho < {RHO_MAX} only, anti-correlation passes)")


@dataclass(frozen=True)
class SanityStep:
    """One step of a test: ``depth`` = share of the model's blocks randomized (0 = original; the data
    and random-logit tests use 1 for their second map), ``blocks`` = the blocks randomized at this step."""

    step: int
    depth: float
    blocks: tuple[str, ...] = ()


@dataclass
class SanityResult:
    """A test's per-image table ``columns`` (``method``, ``step``, similarity and structure scores with
    ``chance_<score>``), its steps, the methods that failed (``{method: reason}``) and the number of
    engine passes it cost."""

    test: str
    steps: list[SanityStep]
    columns: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    failed: dict[str, str] = field(default_factory=dict)
    engine_passes: int = 0


class _Explainer:
    """Every method's maps of all images at the input resolution, batched, one engine pass per batch."""

    def __init__(self, model: nn.Module, methods: tuple[str, ...], batch_size: int,
                 target_layer: TargetLayer | nn.Module | str | None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.engine = CamEngine(model, target_layer)
        self.methods, self.batch_size = methods, batch_size
        self.passes = 0

    def __call__(self, images: torch.Tensor, targets: torch.Tensor | None, result: SanityResult, step: int
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        size = tuple(images.shape[-2:])
        maps: dict[str, list[torch.Tensor]] = defaultdict(list)
        logits = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start:start + self.batch_size]
            chosen = None if targets is None else targets[start:start + self.batch_size]
            out = self.engine(batch, chosen, self.methods)
            self.passes += 1
            logits.append(out.logits)
            for m in self.methods:
                if m in out.maps:
                    maps[m].append(upsample(out.maps[m].float(), size))
                else:  # reported in result.failed; its images are NaN, counted as invalid downstream
                    result.failed.setdefault(m, f"step {step}: {out.failed[m]}")
                    maps[m].append(torch.full((len(batch), *size), torch.nan, device=batch.device))
        return {m: torch.cat(v) for m, v in maps.items()}, torch.cat(logits)


class _Original:
    """The original maps of every method and their similarity references (NaN maps of a failed method
    enter as zeros; their rows are NaN in every comparison)."""

    def __init__(self, maps: dict[str, torch.Tensor]) -> None:
        self.valid = {m: torch.isfinite(v).flatten(1).all(1) for m, v in maps.items()}
        self.reference = {m: SimilarityReference(torch.where(self.valid[m][:, None, None], v, 0.0))
                          for m, v in maps.items()}


def _record(result: SanityResult, step: int, original: _Original, maps: dict[str, torch.Tensor],
            prepared) -> None:
    """Append one step's per-image similarity and structure scores of every method to ``result``."""
    cols = result.columns
    for m, current in maps.items():
        valid = torch.isfinite(current).flatten(1).all(1) & original.valid[m]
        safe = torch.where(valid[:, None, None], current, 0.0)
        scores = structure_scores(safe, prepared, signed=True)
        similarity = original.reference[m].compare(safe)
        n = len(current)
        cols["method"] += [m] * n
        cols["step"] += [step] * n
        for name, values in similarity.items():
            cols[name] += torch.where(valid, values.double(), torch.nan).tolist()
        for name in STRUCTURE_NAMES:
            cols[name] += torch.where(valid, scores[name].double(), torch.nan).tolist()
            cols[f"chance_{name}"] += scores[f"chance_{name}"].double().tolist()


def _check_inputs(images: torch.Tensor, parts: torch.Tensor, module_px: torch.Tensor | None) -> None:
    if images.ndim != 4 or parts.ndim != 3 or parts.shape != (len(images), *images.shape[-2:]):
        raise ValueError(f"images (N, C, H, W) and parts (N, H, W) must match, got {tuple(images.shape)} "
                         f"and {tuple(parts.shape)}")
    if len(images) == 0:
        raise ValueError("the sanity checks need at least one image")
    if module_px is not None and module_px.shape != (len(images),):
        raise ValueError(f"module_px must be ({len(images)},), got {tuple(module_px.shape)}")


def model_randomization(model: nn.Module, images: torch.Tensor, parts: torch.Tensor,
                        module_px: torch.Tensor | None = None, methods: Sequence[str] = ("gradcam",), *,
                        order: str = "cascading", steps: int | None = None, seed: int = 0,
                        batch_size: int = 16, target_layer: TargetLayer | nn.Module | str | None = None
                        ) -> SanityResult:
    """The ``cascading`` or ``independent`` model-parameter randomization test (see the module docstring).

    ``images``: normalised model inputs ``(N, C, H, W)``; ``parts``: their part maps ``(N, H, W)``;
    ``module_px``: module pitches (DtS in modules; optional). ``steps``: number of chunks of blocks
    (default: one per block). Costs ``(steps + 1) * ceil(N / batch_size)`` engine passes. The model is
    randomized in place and restored (parameters and buffers) on every exit."""
    if order not in ("cascading", "independent"):
        raise ValueError(f"order must be cascading or independent, got {order!r}")
    _check_inputs(images, parts, module_px)
    methods = check_methods(methods)
    chunks = chunk_blocks(randomization_blocks(model), steps)
    total = sum(len(c) for c in chunks)
    explain = _Explainer(model, methods, batch_size, target_layer)
    prepared = prepare_parts(parts, module_px=module_px)
    result = SanityResult(order, [SanityStep(0, 0.0)])
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        first, logits = explain(images, None, result, 0)
        targets = logits.argmax(1)
        original = _Original(first)
        _record(result, 0, original, first, prepared)
        done = 0
        for k, chunk in enumerate(chunks, start=1):
            if order == "independent":
                model.load_state_dict(saved)
            randomize_(model, chunk, seed * 1_000_003 + k)
            done = done + len(chunk) if order == "cascading" else len(chunk)
            result.steps.append(SanityStep(k, done / total, tuple(b.name for b in chunk)))
            maps, _ = explain(images, targets, result, k)
            _record(result, k, original, maps, prepared)
    finally:
        model.load_state_dict(saved)
    result.engine_passes = explain.passes
    return result


def random_logit(model: nn.Module, images: torch.Tensor, parts: torch.Tensor,
                 module_px: torch.Tensor | None = None, methods: Sequence[str] = ("gradcam",), *,
                 seed: int = 0, batch_size: int = 16,
                 target_layer: TargetLayer | nn.Module | str | None = None) -> SanityResult:
    """The random-logit test: step 0 explains the predicted class, step 1 a seeded random other class."""
    _check_inputs(images, parts, module_px)
    explain = _Explainer(model, check_methods(methods), batch_size, target_layer)
    prepared = prepare_parts(parts, module_px=module_px)
    result = SanityResult("random_logit", [SanityStep(0, 0.0), SanityStep(1, 1.0)])
    first, logits = explain(images, None, result, 0)
    original = _Original(first)
    classes = logits.shape[1]
    if classes < 2:
        raise ValueError("the random-logit test needs a model with at least two classes")
    generator = torch.Generator().manual_seed(seed)
    offset = torch.randint(1, classes, (len(images),), generator=generator).to(logits.device)
    other = (logits.argmax(1) + offset) % classes
    _record(result, 0, original, first, prepared)
    _record(result, 1, original, explain(images, other, result, 1)[0], prepared)
    result.engine_passes = explain.passes
    return result


def data_randomization(model: nn.Module, permuted_model: nn.Module, images: torch.Tensor, parts: torch.Tensor,
                       module_px: torch.Tensor | None = None, methods: Sequence[str] = ("gradcam",), *,
                       batch_size: int = 16, target_layer: TargetLayer | nn.Module | str | None = None
                       ) -> SanityResult:
    """The data randomization test: the real model's maps (step 0) against those of the same architecture
    trained on permuted labels (step 1), each model explaining its own prediction. ``target_layer``
    applies to both (a name; None: each model's default)."""
    _check_inputs(images, parts, module_px)
    methods = check_methods(methods)
    real = _Explainer(model, methods, batch_size, target_layer)
    permuted = _Explainer(permuted_model, methods, batch_size, target_layer)
    prepared = prepare_parts(parts, module_px=module_px)
    result = SanityResult("data", [SanityStep(0, 0.0), SanityStep(1, 1.0)])
    first, _ = real(images, None, result, 0)
    original = _Original(first)
    _record(result, 0, original, first, prepared)
    _record(result, 1, original, permuted(images, None, result, 1)[0], prepared)
    result.engine_passes = real.passes + permuted.passes
    return result


def sanity_rows(results: Sequence[SanityResult], n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Summary rows of ``kind: "sanity"`` (plain dicts):

    - per test, method, step and score (``SIMILARITY_NAMES`` and ``STRUCTURE_NAMES``): the
      ``metrics.aggregate`` row (n, n_invalid, mean, std, ci_low, ci_high) with ``test``, ``depth``,
      ``blocks`` and, for structure scores, ``chance`` (the mean chance value on the same images);
    - per test and failed method: ``{"score": "error", "error": reason}``;
    - per ruled test and method: ``{"score": "verdict", "passed": True / False / None, "rule": RULE}``.
    """
    rows: list[dict] = []
    for result in results:
        depth = {s.step: s for s in result.steps}
        cols = result.columns
        scores = [*SIMILARITY_NAMES, *STRUCTURE_NAMES]
        table = aggregate(cols, scores, ["method", "step"], n_boot=n_boot, seed=seed)
        chance = aggregate(cols, [f"chance_{s}" for s in STRUCTURE_NAMES], ["method", "step"], n_boot=1)
        chance_mean = {(r["method"], r["step"], r["score"].removeprefix("chance_")): r["mean"]
                       for r in chance}
        test_rows = []
        for r in table:
            step = depth[r["step"]]
            row = {"kind": "sanity", "test": result.test, **r, "depth": step.depth,
                   "blocks": list(step.blocks)}
            if r["score"] in STRUCTURE_NAMES:
                row["chance"] = chance_mean[(r["method"], r["step"], r["score"])]
            test_rows.append(row)
        rows += test_rows
        rows += [{"kind": "sanity", "test": result.test, "method": m, "score": "error", "error": reason}
                 for m, reason in result.failed.items()]
        if result.test in RULED_TESTS:
            rows += _verdicts(result.test, test_rows, max(depth))
    return rows


def _verdicts(test: str, rows: list[dict], last: int) -> list[dict]:
    final = {(r["method"], r["score"]): r for r in rows if r["step"] == last}
    out = []
    for method in dict.fromkeys(m for m, _ in final):
        rho, fmr = final[(method, "spearman")], final[(method, "fmr")]
        low, high, chance = fmr["ci_low"], fmr["ci_high"], fmr["chance"]
        similarity = rho["mean"] if test == "random_logit" else abs(rho["mean"])
        checks = [similarity < RHO_MAX] if np.isfinite(rho["mean"]) else [None]
        if test != "random_logit":
            known = all(np.isfinite(v) for v in (low, high, chance))
            checks.append(bool(low <= chance <= high) if known else None)
        passed = None if None in checks else all(checks)
        out.append({"kind": "sanity", "test": test, "method": method, "score": "verdict", "step": last,
                    "passed": passed, "rho": rho["mean"], "fmr": fmr["mean"], "fmr_ci": [low, high],
                    "chance_fmr": chance, "n": rho["n"], "rule": RULE})
    return out


def passes_sanity(rows: Sequence[dict]) -> dict[str, bool | None]:
    """Per method: True when every ruled test run passed, False when one failed, else None."""
    verdicts: dict[str, list] = defaultdict(list)
    for r in rows:
        if r.get("kind") == "sanity" and r.get("score") == "verdict":
            verdicts[r["method"]].append(r["passed"])
    return {m: False if False in v else (None if None in v else True) for m, v in verdicts.items()}
