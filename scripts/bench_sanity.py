"""Benchmark: the cascading model-randomization test (``harness.sanity``) vs Quantus's ``MPRT`` (the anchor),
in one run, and the cost of the sanity run planned for ``make run``.

(a) ours: ``model_randomization`` of timm ResNet-50 (random init, 2-class head) at ``--size`` px for the
    four paper methods (gradcam, xgradcam, layercam, eigengradcam) on ``--images`` rendered ``standard``
    QR images in batches of ``--batch``: blocks randomized top-down (18 for ResNet-50, or ``--steps``
    chunks), one engine pass per batch and step computing all four methods, plus per step the four
    similarity measures and FMR / BL / DtS of every map. Engine passes are counted by wrapping
    ``CamEngine.__call__`` (goal: at most ``(steps + 1) * ceil(images / batch)``).
(b) Quantus 0.6 ``MPRT`` (cascading, ``layer_order="top_down"``, its default Spearman similarity), one
    metric call per method on the same model, images and targets, its ``explain_func`` being our engine
    for that one method (upsampled to the input size): Quantus re-initialises every module with
    ``reset_parameters`` one at a time (107 for ResNet-50) and explains after each.
Goal: (b) / (a) >= 10 (wall time). Both start from the same model; the first-call compile of the metric
kernels (numba) is paid by a warm-up before timing.

``--budget``: the sanity run planned for ``make run``: timm ``test_resnet`` at 128 px, ``--budget-images``
images, cascading (one step per block) + random logit for the four paper methods (timed end to end), and
the cost of one engine pass of ``pgc:scorecam``, ``pgc:ablationcam`` and ``pgc:kpcacam`` on the first
``--budget-pgc-images`` of those images (timed), from which their share of the same run is computed
(per-image time x images x passes: their cost is linear in the images, one library call per batch).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import timm
import torch

from cambench_qr.cams import DEFAULT_METHODS, CamEngine, upsample
from cambench_qr.dataset_builder.samples import standard_sample
from cambench_qr.harness.randomization import randomization_blocks
from cambench_qr.harness.sanity import model_randomization, random_logit

PGC_BUDGET = ("pgc:scorecam", "pgc:ablationcam", "pgc:kpcacam")


def benchmark_images(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` clean ``standard`` QR rows at ``size`` px: ImageNet-normalised images, parts, module pitch."""
    rows = [standard_sample(seed, True, size) for seed in range(n)]
    images = torch.stack([torch.from_numpy(r["image"]).permute(2, 0, 1) for r in rows]).float() / 255
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    images = (images - mean[:, None, None]) / std[:, None, None]
    parts = torch.stack([torch.from_numpy(r["parts"]) for r in rows])
    return images, parts, torch.tensor([r["module_px"] for r in rows], dtype=torch.float32)


class PassCounter:
    """Counts ``CamEngine.__call__`` calls while active."""

    def __init__(self) -> None:
        self.count = 0
        self.original = CamEngine.__call__

    def __enter__(self) -> PassCounter:
        counter = self

        def counted(engine, *args, **kwargs):
            counter.count += 1
            return counter.original(engine, *args, **kwargs)

        CamEngine.__call__ = counted
        return self

    def __exit__(self, *exc) -> None:
        CamEngine.__call__ = self.original


def run_ours(model, images, parts, px, steps, batch) -> tuple[float, int, int]:
    with PassCounter() as counter:
        start = time.perf_counter()
        result = model_randomization(model, images, parts, px, DEFAULT_METHODS, steps=steps, batch_size=batch)
        seconds = time.perf_counter() - start
    return seconds, counter.count, len(result.steps) - 1


def run_quantus(model, images, targets, batch) -> tuple[float, int]:
    import quantus

    size = tuple(images.shape[-2:])
    calls = 0

    def explain(model, inputs, targets, method, **kwargs):
        nonlocal calls
        calls += 1
        x = torch.as_tensor(inputs)
        maps = CamEngine(model)(x, torch.as_tensor(targets), (method,)).maps[method]
        return upsample(maps.float(), size).abs()[:, None].numpy()  # |a|: what MPRT (abs=True) uses

    x, y = images.numpy(), targets.numpy()
    start = time.perf_counter()
    for method in DEFAULT_METHODS:
        metric = quantus.MPRT(layer_order="top_down", seed=0, disable_warnings=True,
                              display_progressbar=False)
        metric(model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=explain,
               explain_func_kwargs={"method": method}, batch_size=batch, device="cpu")
    return time.perf_counter() - start, calls


def budget(n_images: int, pgc_images: int, batch: int) -> None:
    model = timm.create_model("test_resnet", pretrained=False, num_classes=2)
    images, parts, px = benchmark_images(n_images, 128)
    steps = len(randomization_blocks(model))
    start = time.perf_counter()
    cascade = model_randomization(model, images, parts, px, DEFAULT_METHODS, batch_size=batch)
    logit = random_logit(model, images, parts, px, DEFAULT_METHODS, batch_size=batch)
    own = time.perf_counter() - start
    passes = (cascade.engine_passes + logit.engine_passes) // math.ceil(n_images / batch)
    print(f"budget: test_resnet 128 px, {n_images} images, batch {batch}: cascading ({steps} steps) + random "
          f"logit, 4 paper methods: {own:.1f} s ({passes} engine passes per batch of images)")
    engine = CamEngine(model)
    for method in PGC_BUDGET:
        start = time.perf_counter()
        for lo in range(0, pgc_images, batch):
            out = engine(images[lo:min(lo + batch, pgc_images)], None, (method,))
            if out.failed:
                raise RuntimeError(out.failed)
        per_image = (time.perf_counter() - start) / pgc_images
        print(f"budget: {method}: {per_image:.2f} s per image per pass (measured on {pgc_images} images) -> "
              f"{passes} passes x {n_images} images ~ {per_image * passes * n_images:.0f} s in the same run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, help="chunks of blocks (default: one step per block)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--budget", action="store_true", help="also time the make-run sanity budget")
    parser.add_argument("--budget-images", type=int, default=60)
    parser.add_argument("--budget-pgc-images", type=int, default=4)
    parser.add_argument("--skip-main", action="store_true", help="only the budget")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if not args.skip_main:
        model = timm.create_model("resnet50", pretrained=False, num_classes=2).eval()
        images, parts, px = benchmark_images(args.images, args.size)
        model_randomization(model, images[:2], parts[:2], px[:2], DEFAULT_METHODS, steps=1)  # warm-up
        with torch.no_grad():
            targets = model(images).argmax(1)
        ours, passes, steps = run_ours(model, images, parts, px, args.steps, args.batch)
        bound = (steps + 1) * math.ceil(args.images / args.batch)
        print(f"ours: ResNet-50 {args.size} px, {args.images} images, batch {args.batch}, {steps} steps: "
              f"{ours:.1f} s, {passes} engine passes (bound (steps + 1) x batches = {bound}: "
              f"{'met' if passes <= bound else 'NOT met'})")
        quantus_s, calls = run_quantus(model, images, targets, args.batch)
        layers = sum(1 for _, m in model.named_modules() if hasattr(m, "reset_parameters"))
        ratio = quantus_s / ours
        print(f"quantus MPRT: {quantus_s:.1f} s, {calls} explain calls ({layers} layers + 1, x 4 methods)")
        print(f"ratio quantus / ours = {ratio:.1f} (goal >= 10: {'met' if ratio >= 10 else 'NOT met'}); "
              f"threads {torch.get_num_threads()}")
    if args.budget:
        budget(args.budget_images, args.budget_pgc_images, args.batch)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
