"""Benchmark: the batched CAM engine vs pytorch-grad-cam 1.5.7 (the anchor), in one run.

ResNet-50 (timm, random init, 2-class head), 224 px, batch 16:
  (a) ours: CamEngine computing gradcam, xgradcam, layercam, eigengradcam together (one forward, one
      backward to layer4), plus ``postprocess(..., "pytorch-grad-cam")`` to 224 px so the output equals (b)'s;
  (b) pytorch-grad-cam: one object per method, as a user writes it, called on the same batch;
  (c) a bare ``torch.no_grad()`` forward pass (the floor);
  (d) EigenGrad-CAM at ``layer3`` (14x14x1024): ours vs the reference, end to end and the projection alone.
Goals: (b)/(a) >= 8, (a)/(c) <= 1.3, EigenGrad-CAM layer3 reference/ours >= 20 (projection alone; end
to end both sides also pay a forward pass).

``--model vit-b16-transformers``: a ``transformers`` ViT-B/16 (``ViTForImageClassification`` from the
default ``ViTConfig``, random init, 2 labels, no download), 224 px, batch 8 by default: (a) the engine given
the model as it is (target: the last encoder layer's ``layernorm_before``), (b) pytorch-grad-cam with its
documented logits wrapper and a hand-written token reshape at the same layer, (c) the bare forward.

Wall and CPU times are medians of ``--repeats`` interleaved rounds after a warm-up (CUDA: synchronised);
peak memory as in ``PeakMemory``. Lower is better for every time and memory figure.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import time
from collections.abc import Callable

import timm
import torch
from pytorch_grad_cam import EigenGradCAM, GradCAM, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection
from tqdm import tqdm

from cambench_qr.cams import DEFAULT_METHODS, CamEngine, postprocess, principal_projection

REFERENCE = {"gradcam": GradCAM, "xgradcam": XGradCAM, "layercam": LayerCAM, "eigengradcam": EigenGradCAM}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


class PeakMemory:
    """Peak memory rise during one call, in MiB: CUDA's max allocated, or on Linux the peak RSS (VmHWM)
    over the RSS at the start, after returning freed heap pages to the OS (``malloc_trim``) and resetting
    the peak (``/proc/self/clear_refs``). None where neither is available."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.linux = os.path.exists("/proc/self/clear_refs")
        self.libc = ctypes.CDLL("libc.so.6") if self.linux else None
        self.start = 0

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        elif self.linux:
            self.libc.malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.start = _rss_kib("VmRSS:") * 1024

    def peak_mib(self) -> float | None:
        if self.cuda:
            return (torch.cuda.max_memory_allocated() - self.start) / 2**20
        return (_rss_kib("VmHWM:") * 1024 - self.start) / 2**20 if self.linux else None


def measure(
    variants: dict[str, Callable[[], object]], device: torch.device, repeats: int
) -> dict[str, tuple[float, float, float | None]]:
    """``{name: (median wall s, median CPU s, peak memory MiB or None)}``.

    One warm-up call each, then ``repeats`` rounds that call every variant once in turn, so a load
    change on a shared machine hits all variants alike. CPU time (``time.process_time``, all threads)
    is reported beside wall time because it is less sensitive to other processes.
    """
    memory = PeakMemory(device)
    for fn in variants.values():
        fn()
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    peak: dict[str, float | None] = dict.fromkeys(variants)
    for _ in tqdm(range(repeats), desc="rounds"):
        for name, fn in variants.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            memory.reset()
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            mib = memory.peak_mib()
            peak[name] = mib if peak[name] is None else max(peak[name], mib)
    median = statistics.median
    return {name: (median(wall[name]), median(cpu[name]), peak[name]) for name in variants}


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


class LogitsWrapper(torch.nn.Module):
    """pytorch-grad-cam's documented wrapper for Hugging Face models: the output's logits."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logits


def vit_rows(args: argparse.Namespace, device: torch.device, images: torch.Tensor) -> dict:
    """(a), (b), (c) for a random-init ``transformers`` ViT-B/16."""
    from transformers import ViTConfig, ViTForImageClassification

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ViTForImageClassification(ViTConfig(num_labels=2, image_size=args.size)).to(device).eval()
    grid = args.size // model.config.patch_size
    layer = model.vit.layers[-1].layernorm_before
    size = (args.size, args.size)
    engine = CamEngine(model)
    assert engine.layer.module is layer
    wrapper = LogitsWrapper(model)

    def reshape(t: torch.Tensor) -> torch.Tensor:
        return t[:, 1:, :].reshape(t.size(0), grid, grid, t.size(2)).permute(0, 3, 1, 2)

    def ours() -> None:
        for m in engine(images, methods=DEFAULT_METHODS).maps.values():
            postprocess(m, size)

    def theirs() -> None:
        for cls in REFERENCE.values():
            with cls(wrapper, [layer], reshape_transform=reshape) as cam:
                cam(images, None)

    def forward() -> None:
        with torch.no_grad():
            model(images)

    return measure({"(a) ours: 4 methods, one pass, + postprocess": ours,
                    "(b) pytorch-grad-cam: 4 methods": theirs,
                    "(c) bare no_grad forward": forward}, device, args.repeats)


def resnet_rows(args: argparse.Namespace, device: torch.device, images: torch.Tensor) -> dict:
    """(a)-(d) for a random-init timm ResNet-50; also prints the layer3 projection check."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = timm.create_model("resnet50", pretrained=False, num_classes=2).to(device).eval()
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

    rows = measure({
        "(a) ours: 4 methods, one pass, + postprocess": ours,
        "(b) pytorch-grad-cam: 4 methods": theirs,
        "(c) bare no_grad forward": forward,
        "(d1) ours: EigenGrad-CAM layer3 + postprocess":
            lambda: postprocess(engine3(images, methods=("eigengradcam",)).maps["eigengradcam"], size),
        "(d2) pytorch-grad-cam: EigenGrad-CAM layer3": theirs_layer3,
        "(d3) ours: projection alone, layer3": lambda: principal_projection(product),
        "(d4) reference get_2d_projection alone, layer3": lambda: get_2d_projection(product_np),
    }, device, args.repeats)
    mine = principal_projection(product).flatten(1).cpu().numpy()
    ref = get_2d_projection(product_np).reshape(args.batch, -1)
    err = [min(abs(m - r).max(), abs(m + r).max()) / abs(r).max() for m, r in zip(mine, ref, strict=True)]
    print(f"check: layer3 projection ours vs reference up to sign, max relative difference {max(err):.1e}")
    return rows



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", choices=("resnet50", "vit-b16-transformers"), default="resnet50")
    parser.add_argument("--batch", type=int, help="default: 16 for resnet50, 8 for the ViT")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.batch = args.batch or (16 if args.model == "resnet50" else 8)
    images = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    images = images.to(device)
    if args.model == "resnet50":
        rows = resnet_rows(args, device, images)
    else:
        rows = vit_rows(args, device, images)
    print(f"model={args.model} device={device} threads={torch.get_num_threads()} batch={args.batch} "
          f"size={args.size} repeats={args.repeats} torch={torch.__version__} "
          f"load average={os.getloadavg()[0]:.1f}")
    print(f"{'variant':50s} {'wall s':>8s} {'ms/img':>8s} {'CPU s':>8s} {'peak MiB':>9s}")
    for name, (sec, cpu_sec, peak) in rows.items():
        peak_text = "n/a" if peak is None else f"{peak:.0f}"
        print(f"{name:50s} {sec:8.3f} {1000 * sec / args.batch:8.1f} {cpu_sec:8.3f} {peak_text:>9s}")
    for label, col in (("wall", 0), ("CPU", 1)):
        t = {k.split(")")[0] + ")": v[col] for k, v in rows.items()}
        line = (f"[{label}] speed-up (b)/(a): {t['(b)'] / t['(a)']:.1f}x (goal >= 8); "
                f"overhead (a)/(c): {t['(a)'] / t['(c)']:.2f}x (goal <= 1.3)")
        if "(d1)" in t:
            line += (f"; EigenGrad-CAM layer3 (d2)/(d1): {t['(d2)'] / t['(d1)']:.1f}x end to end, "
                     f"(d4)/(d3): {t['(d4)'] / t['(d3)']:.1f}x projection alone (goal >= 20)")
        print(line)

if __name__ == "__main__":
    main()
