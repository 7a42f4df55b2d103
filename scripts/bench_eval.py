"""Harness benchmarks (CPU): evaluation throughput against the authors' per-image loop, the cost of an
FT-LeakMin training step against an FT-Struct step, and (``--leakmin``) the quick-preset penalty check.

    .venv/bin/python scripts/bench_eval.py [--images 32] [--anchor-images 8] [--threads 2] [--leakmin]

1. Evaluation, ResNet-50 (random init, 2 classes), 224 px ``standard`` QR images, the three paper CAMs
   (LayerCAM, EigenGrad-CAM, XGrad-CAM) and every structure score:
   - ours: ``CamEngine`` once per batch of 16 (all three maps + logits), bilinear upsampling, then
     ``metrics.structure_scores`` per method (all scores, batched);
   - anchor, the authors' loop reimplemented (docs/paper.md s.4 and s.6): per image
     and per method, a forward pass for the predicted class (input requires grad), then pytorch-grad-cam's
     CAM (its own forward + full backward, batch 1) at the last Conv2d, bicubic resize, and per-image
     NumPy FMR / TMR / BL, the three 31-threshold SLC AUCs and DtS (cv2 distance transform).
   Goal: ours >= 8x faster per image.
2. Training step, ResNet-50 at 224 px, batch 8 (4 QR + 4 non-QR), last stage + head trainable: FT-LeakMin
   (one differentiable CamEngine pass: CE + Grad-CAM leakage penalty) vs FT-Struct (forward + CE).
   Goal: ratio <= 1.8.
3. ``--leakmin``: the ``quick`` preset's data, ZS model, then FT-LeakMin with lambda = 0.25 and with
   lambda = 0 (same seed); Grad-CAM background leakage (BL, lower is better) and accuracy on the test split,
   and the paired per-sample BL difference (penalised - control) with a bootstrap 95% CI.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402

from cambench_qr.cams import CamEngine, upsample  # noqa: E402
from cambench_qr.dataset_builder.samples import generate_row  # noqa: E402
from cambench_qr.harness.data import normalize  # noqa: E402
from cambench_qr.harness.models import set_trainable  # noqa: E402
from cambench_qr.harness.options import PAPER_METHODS  # noqa: E402
from cambench_qr.harness.train import batch_loss, penalty_engine  # noqa: E402
from cambench_qr.metrics import bootstrap_mean_ci, structure_scores  # noqa: E402
from cambench_qr.parts import FINDER, REGIONS, TIMING  # noqa: E402

SIZE = 224


class Clock:
    """Wall time (perf_counter) and this process's CPU time (process_time) since construction, seconds.
    On a shared machine CPU time is the steadier measure; both are reported."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self) -> np.ndarray:
        return np.array([time.perf_counter() - self.wall, time.process_time() - self.cpu])
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def qr_rows(n: int) -> list[dict]:
    """The first ``n`` QR rows of the standard test split (even indices are QR)."""
    return [generate_row("standard", "test", 2 * i, 0, image_size=SIZE) for i in range(n)]


def make_model() -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return timm.create_model("resnet50", num_classes=2).eval()


# ----- ours ---------------------------------------------------------------------------------------------
def ours(model: torch.nn.Module, rows: list[dict], batch: int) -> tuple[np.ndarray, dict]:
    """(wall, CPU) seconds per image of batched CAMs + all structure scores (median of 3 passes)."""
    engine = CamEngine(model)
    images = torch.from_numpy(np.stack([r["image"] for r in rows])).permute(0, 3, 1, 2)
    parts = torch.from_numpy(np.stack([r["parts"] for r in rows]))
    module_px = torch.tensor([r["module_px"] for r in rows])

    def one_pass() -> dict:
        out = {}
        for i in range(0, len(rows), batch):
            cams = engine(normalize(images[i:i + batch], MEAN, STD), methods=PAPER_METHODS)
            for m in PAPER_METHODS:
                scores = structure_scores(upsample(cams.maps[m], SIZE), parts[i:i + batch],
                                          module_px=module_px[i:i + batch], signed=True)
                out.setdefault(m, []).append(scores)
        return out

    one_pass()  # warm-up
    times = []
    for _ in range(3):
        clock = Clock()
        scores = one_pass()
        times.append(clock.elapsed())
    return np.median(times, axis=0) / len(rows), scores


# ----- the authors' per-image loop, reimplemented ---------------------------------------------------
def paper_metrics(sal: np.ndarray, parts: np.ndarray) -> dict[str, float]:
    """docs/paper.md s.4, per image in NumPy: FMR, TMR, BL, SLC AUCs (31 quantile thresholds), DtS."""
    eps = 1e-6
    finder, timing = parts == FINDER, parts == TIMING
    box = np.isin(parts, REGIONS["box"])
    total = sal.sum() + eps
    out = {"fmr": (sal * finder).sum() / total, "tmr": (sal * timing).sum() / total,
           "bl": (sal * ~box).sum() / total}
    for name, mask in (("auc_misf", finder), ("auc_mist", timing), ("auc_bg", ~box)):
        fractions = []
        for q in np.linspace(0, 0.99, 31):
            b = sal >= np.quantile(sal, q)
            fractions.append((b & mask).sum() / (b.sum() + eps))
        out[name] = float(np.mean(fractions))
    dist = cv2.distanceTransform((~(finder | timing)).astype(np.uint8), cv2.DIST_L2, 3)
    out["dts"] = (sal * dist).sum() / total / np.hypot(*sal.shape)
    return out


def authors_loop(model: torch.nn.Module, rows: list[dict]) -> dict[str, np.ndarray]:
    """(wall, CPU) seconds per image per method of the authors' loop (one untimed warm-up image each)."""
    from pytorch_grad_cam import EigenGradCAM, LayerCAM, XGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    classes = {"layercam": LayerCAM, "eigengradcam": EigenGradCAM, "xgradcam": XGradCAM}
    target_layer = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in target_layer.parameters():
        p.requires_grad_(True)
    per_method = {}
    for method in PAPER_METHODS:
        cam = classes[method](model=model, target_layers=[target_layer])

        def one(row: dict, cam=cam) -> dict:
            x = normalize(torch.from_numpy(row["image"]).permute(2, 0, 1)[None], MEAN, STD)
            x.requires_grad_(True)
            pred = int(model(x).argmax(1))
            grey = cam(input_tensor=x, targets=[ClassifierOutputTarget(pred)])[0]
            h, w = row["parts"].shape
            sal = cv2.resize(grey, (w, h), interpolation=cv2.INTER_CUBIC)
            return paper_metrics(sal, row["parts"])

        one(rows[0])
        clock = Clock()
        for row in rows:
            one(row)
        per_method[method] = clock.elapsed() / len(rows)
    for p in model.parameters():
        p.requires_grad_(True)
    return per_method


# ----- training step --------------------------------------------------------------------------------
def step_times(batch_size: int = 8, repeats: int = 3) -> dict[str, np.ndarray]:
    """Median (wall, CPU) seconds of one optimiser step, FT-Struct vs FT-LeakMin (Grad-CAM, lambda 0.25)."""
    rows = [generate_row("standard", "train", i, 0, image_size=SIZE) for i in range(batch_size)]
    images = normalize(torch.from_numpy(np.stack([r["image"] for r in rows])).permute(0, 3, 1, 2), MEAN, STD)
    labels = torch.tensor([r["label"] for r in rows])
    parts = torch.from_numpy(np.stack([r["parts"] for r in rows]))
    out = {}
    for regime in ("ft_struct", "ft_leakmin"):
        model = make_model().train()
        set_trainable(model, "last")
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-4)
        engine = penalty_engine(model, model, "gradcam") if regime == "ft_leakmin" else None
        times = []
        for i in range(repeats + 1):
            clock = Clock()
            terms = batch_loss(model, engine, images, labels, parts, "gradcam", 0.25, 0.0)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            if i:  # the first step is a warm-up
                times.append(clock.elapsed())
        out[regime] = np.median(times, axis=0)
    return out


# ----- quick-preset penalty check ---------------------------------------------------------------------
def leakmin_check(workdir: Path) -> dict:
    """Quick preset's first backbone: its base run, then FT-LeakMin lambda 0.25 vs lambda 0 from it; Grad-CAM
    BL and accuracy on test."""
    from cambench_qr.dataset_builder.build import build_dataset
    from cambench_qr.harness.evaluate import evaluate
    from cambench_qr.harness.presets import PRESETS, RunSpec
    from cambench_qr.harness.train import train

    preset = PRESETS["quick"]
    data = workdir / "data"
    config, num_train, num_test = "standard", 600, 200  # more data than `make run` uses, for a tighter CI
    build_dataset(**preset.build_kwargs(config, num_train, num_test, data, quiet=True))
    backbone, base = preset.backbones[0], preset.runs[0]
    leakmin = next(r for r in preset.runs if r.regime == "ft_leakmin")
    control = RunSpec("ft_leakmin_lambda0", "ft_leakmin", {**leakmin.overrides, "leak_lambda": 0.0},
                      init_from=base.name)
    runs = {r.name: r for r in (*preset.runs, control)}
    parent = train(**preset.train_kwargs(base, backbone, str(data), workdir / base.name, quiet=True))
    result, per_sample_bl = {}, {}
    for name in ("ft_leakmin", "ft_leakmin_lambda0"):
        model = train(**preset.train_kwargs(runs[name], backbone, str(data), workdir / name,
                                            init_from=parent, quiet=True))
        summary_dir = evaluate(model=model, data=str(data), out=workdir / f"eval_{name}",
                               configs=("standard",), methods=("gradcam",), batch_size=32,
                               faithfulness_samples=0, cross_resolution=(), latency_batch=0, quiet=True)
        summary = json.loads((summary_dir / "summary.json").read_text())
        bl = next(r for r in summary["structure"] if r["method"] == "gradcam" and r["score"] == "bl")
        table = pq.read_table(summary_dir / "per_sample.parquet").to_pydict()
        per_sample_bl[name] = {i: v for i, m, v in zip(table["id"], table["method"], table["bl"], strict=True)
                               if m == "gradcam"}
        result[name] = {"leak_lambda": runs[name].overrides["leak_lambda"],
                        "accuracy": summary["accuracy"][0]["value"],
                        "bl_mean": bl["mean"], "bl_ci": [bl["ci_low"], bl["ci_high"]], "n_qr": bl["n"],
                        "train_cam_leakage": [h["cam_leakage"] for h in
                                              json.loads((model / "training.json").read_text())["history"]]}
    penalised, control = per_sample_bl["ft_leakmin"], per_sample_bl["ft_leakmin_lambda0"]
    diff = np.array([penalised[i] - control[i] for i in sorted(control)])
    low, high = bootstrap_mean_ci(diff, 2000, 0.95, np.random.default_rng(0))
    result["paired_bl_difference"] = {"mean": float(diff.mean()), "ci": [low, high],
                                      "share_lower": float((diff < 0).mean())}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="QR images for our batched path")
    parser.add_argument("--anchor-images", type=int, default=8, help="QR images for the authors' loop")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--leakmin", action="store_true", help="also run the quick-preset penalty check")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, CPU")

    rows = qr_rows(max(args.images, args.anchor_images))
    model = make_model()
    ours_s, _ = ours(model, rows[:args.images], args.batch_size)
    anchor = authors_loop(model, rows[:args.anchor_images])
    anchor_total = sum(anchor.values())

    def ms(x: np.ndarray) -> str:
        return f"{1000 * x[0]:.1f} / {1000 * x[1]:.1f}"

    print("evaluation, resnet50 224 px, 3 CAMs + all structure scores, ms per image (wall / CPU):")
    print(f"  ours (batch {args.batch_size}, {args.images} images): {ms(ours_s)}")
    for method, seconds in anchor.items():
        print(f"  authors' loop {method}: {ms(seconds)}")
    print(f"  authors' loop, all three ({args.anchor_images} images): {ms(anchor_total)}")
    ratio = anchor_total / ours_s
    print(f"  speed-up (wall / CPU): {ratio[0]:.1f}x / {ratio[1]:.1f}x (goal >= 8x)")

    steps = step_times()
    ratio = steps["ft_leakmin"] / steps["ft_struct"]
    print("training step, resnet50 224 px, batch 8, last stage + head, ms (wall / CPU):")
    print(f"  ft_struct {ms(steps['ft_struct'])}, ft_leakmin {ms(steps['ft_leakmin'])}, "
          f"ratio {ratio[0]:.2f} / {ratio[1]:.2f} (goal <= 1.8)")

    if args.leakmin:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = leakmin_check(Path(tmp))
            print(f"quick-preset penalty check ({time.perf_counter() - start:.0f} s):")
            print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
