"""Benchmark: the batched CAM engine vs pytorch-grad-cam 1.5.7 (the anchor), in one run.

ResNet-50 (timm, random init, 2-class head), 224 px, batch 16:
  (a) ours: CamEngine computing gradcam, xgradcam, layercam, eigengradcam together (one forward, one
      backward to layer4), plus ``postprocess(..., "pytorch-grad-cam")`` to 224 px so the output equals (b)'s;
  (b) pytorch-grad-cam: one object per method, as a user writes it, called on the same batch;
  (c) a bare ``torch.no_grad()`` forward pass (the floor);
  (d) EigenGrad-CAM at ``layer3`` (14x14x1024): ours vs the reference, end to end and the projection alone.
Goals: (b)/(a) >= 8, (a)/(c) <= 1.3, EigenGrad-CAM layer3 reference/ours >= 20. Times are medians of
``--repeats`` runs after a warm-up (CUDA: synchronised). Peak memory: the rise of the process's peak RSS
over its RSS at the start of each variant (Linux ``/proc/self/clear_refs``), or CUDA's max allocated.
Lower is better for every time and memory figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import timm
import torch
from pytorch_grad_cam import EigenGradCAM, GradCAM, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

from cambench_qr.cams import DEFAULT_METHODS, CamEngine, postprocess, principal_projection

REFERENCE = {"gradcam": GradCAM, "xgradcam": XGradCAM, "layercam": LayerCAM, "eigengradcam": EigenGradCAM}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def measure(fn: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float | None]:
    """(median seconds over ``repeats`` after one warm-up, peak memory rise in MiB or None)."""
    fn()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start_mem = torch.cuda.memory_allocated()
    elif os.path.exists("/proc/self/clear_refs"):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak RSS (VmHWM) to the current RSS
        start_mem = _rss_kib("VmRSS:") * 1024
    else:
        start_mem = None
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if cuda:
        peak = (torch.cuda.max_memory_allocated() - start_mem) / 2**20
    else:
        peak = None if start_mem is None else (_rss_kib("VmHWM:") * 1024 - start_mem) / 2**20
    return statistics.median(times), peak


def _layer3_grad_times_act(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``G * A`` at timm ResNet-50's layer3 for the predicted class (the input of EigenGrad-CAM's SVD)."""
    captured: dict[str, torch.Tensor] = {}
    hook = model.layer3.register_forward_hook(lambda module, args, out: captured.update(acts=out.detach()))
    try:
        with torch.no_grad():
            model(images)
    finally:
        hook.remove()
    acts = captured["acts"].requires_grad_()
    logits = model.fc(model.global_pool(model.layer4(acts)))
    (grads,) = torch.autograd.grad(logits.max(dim=1).values.sum(), acts)
    return (grads * acts).detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = timm.create_model("resnet50", pretrained=False, num_classes=2).to(device).eval()
    images = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    images = images.to(device)
    size = (args.size, args.size)
    engine = CamEngine(model)

    def ours() -> None:
        maps = engine(images, methods=DEFAULT_METHODS).maps
        for m in maps.values():
            postprocess(m, size)

    def theirs() -> None:
        for cls in REFERENCE.values():
            with cls(model, [model.layer4]) as cam:
                cam(images, None)

    def theirs_layer3() -> None:
        with EigenGradCAM(model, [model.layer3]) as cam:
            cam(images, None)

    def forward() -> None:
        with torch.no_grad():
            model(images)

    engine3 = CamEngine(model, "layer3")
    product = _layer3_grad_times_act(model, images)  # the matrix EigenGrad-CAM decomposes
    product_np = product.cpu().numpy()

    rows = {
        "(a) ours: 4 methods, one pass, + postprocess": measure(ours, device, args.repeats),
        "(b) pytorch-grad-cam: 4 methods": measure(theirs, device, args.repeats),
        "(c) bare no_grad forward": measure(forward, device, args.repeats),
        "(d1) ours: EigenGrad-CAM layer3 + postprocess": measure(
            lambda: postprocess(engine3(images, methods=("eigengradcam",)).maps["eigengradcam"], size),
            device, args.repeats),
        "(d2) pytorch-grad-cam: EigenGrad-CAM layer3": measure(theirs_layer3, device, args.repeats),
        "(d3) ours: projection alone, layer3": measure(
            lambda: principal_projection(product), device, args.repeats),
        "(d4) reference get_2d_projection alone, layer3": measure(
            lambda: get_2d_projection(product_np), device, args.repeats),
    }
    print(f"device={device} threads={torch.get_num_threads()} batch={args.batch} size={args.size} "
          f"repeats={args.repeats} torch={torch.__version__}")
    print(f"{'variant':50s} {'median s':>9s} {'ms/img':>8s} {'peak MiB':>9s}")
    for name, (sec, peak) in rows.items():
        peak_text = "n/a" if peak is None else f"{peak:.0f}"
        print(f"{name:50s} {sec:9.3f} {1000 * sec / args.batch:8.1f} {peak_text:>9s}")
    t = {k[:4]: v[0] for k, v in rows.items()}
    print(f"speed-up (b)/(a): {t['(b) '] / t['(a) ']:.1f}x (goal >= 8)")
    print(f"overhead (a)/(c): {t['(a) '] / t['(c) ']:.2f}x (goal <= 1.3)")
    print(f"EigenGrad-CAM layer3 end to end (d2)/(d1): {t['(d2)'] / t['(d1)']:.1f}x")
    print(f"EigenGrad-CAM layer3 projection (d4)/(d3): {t['(d4)'] / t['(d3)']:.1f}x (goal >= 20)")
    mine = principal_projection(product).flatten(1).cpu().numpy()
    ref = get_2d_projection(product_np).reshape(args.batch, -1)
    err = [min(abs(m - r).max(), abs(m + r).max()) / abs(r).max() for m, r in zip(mine, ref, strict=True)]
    print(f"check: layer3 projection ours vs reference up to sign, max relative difference {max(err):.1e}")


if __name__ == "__main__":
    main()
