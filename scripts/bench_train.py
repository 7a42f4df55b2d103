"""Training throughput: the package's from-scratch recipe against a plain timm + torch loop, same run.

For each backbone of the ``quick`` preset (read at run time; ``--backbones`` picks some by name), on the
same ``standard`` rows (built here at ``--image-size`` px, or reused with ``--data``), the same model
(``timm_name`` + ``model_args``, seed 0), batch size, image size, number of epochs, precision (bf16 autocast
where the backbone's overrides say so) and device, three loops are timed:

(a) recipe: ``harness.train.train(regime="scratch", ...)`` with the backbone's model_args and overrides;
    the wall time of the whole call: loading the split, building the model, the one-time decode of the
    rows into tensors, per-batch augmentation on tensors, AdamW + warm-up/cosine + label smoothing under
    Accelerate, a validation pass over the 10% held out after each epoch, the per-epoch state and the
    final model written to disk. It trains on the rows left after its hold-out.
(b) plain: what a plain timm + torch loop does: ``timm.create_model``, ``torch.optim.AdamW`` at the
    recipe's learning rate and weight decay, a ``DataLoader`` (shuffle, ``--workers`` worker processes)
    over a Dataset that decodes and resizes each row's PIL image per item (no caching), uint8 batches
    normalised on the device, forward + cross-entropy + backward + step; the same rows as (a)'s training
    rows, so the same images per epoch. Timed from loading the split to the last step.
(c) plain, cached: (b)'s loop over tensors decoded before the timer (the decode is timed on its own and
    printed), shuffled by index on the device: the fastest loop, no augmentation, no validation, no I/O.

Throughput = training images processed / wall seconds (best of ``--repeats``, the three loops alternating
so that a change in machine load hits all alike); process CPU seconds are printed beside (they count
every torch thread of this process, not DataLoader workers). Goal: (a) >= 0.95x (b).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_train.py [--num-train 1536] [--epochs 2]
        [--batch-size 64] [--image-size 128] [--backbones resnet-tiny,vit-tiny] [--repeats 1]
        [--data DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import fields
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from cambench_qr.harness.data import holdout, load_split  # noqa: E402
from cambench_qr.harness.presets import PRESETS  # noqa: E402
from cambench_qr.harness.recipe import Recipe, resolve_recipe  # noqa: E402
from cambench_qr.harness.train import train  # noqa: E402

GOAL = 0.95  # recipe throughput / plain loop (b) throughput
CONFIG = "standard"
REGIME = "scratch"
SEED = 0
LOOPS = ("recipe", "plain", "plain_cached")


class Clock:
    """Wall (perf_counter) and process CPU (process_time) seconds since construction."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self) -> tuple[float, float]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


class PlainRows(torch.utils.data.Dataset):
    """Rows of a split, each decoded and resized on access: (uint8 (3,S,S) image, int64 label)."""

    def __init__(self, split, image_size: int):
        self.rows = split.select_columns(["image", "label"])
        self.size = (image_size, image_size)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = self.rows[index]
        image = np.asarray(row["image"].convert("RGB").resize(self.size, Image.BILINEAR))
        return torch.from_numpy(image.copy()).permute(2, 0, 1), torch.tensor(row["label"], dtype=torch.int64)


# ----- settings shared by the three loops ---------------------------------------------------------------
def train_settings(backbone, args: argparse.Namespace) -> dict:
    """``train()`` keyword arguments of the recipe run: the backbone's model_args and overrides, then the
    benchmark's epochs, batch size, image size and number of rows."""
    return {"config": CONFIG, "backbone": backbone.timm_name, "model_args": dict(backbone.model_args),
            "pretrained": backbone.pretrained, "regime": REGIME, "seed": SEED, "quiet": True,
            **backbone.overrides, "epochs": args.epochs, "batch_size": args.batch_size,
            "image_size": args.image_size, "num_train": args.num_train}


def recipe_of(settings: dict) -> Recipe:
    """The recipe ``train()`` resolves from ``settings`` (for the plain loops' lr, weight decay, hold-out)."""
    names = {f.name for f in fields(Recipe)}
    return resolve_recipe(REGIME, **{k: v for k, v in settings.items() if k in names})


def training_rows(data: str, num_train: int, val_share: float) -> np.ndarray:
    """The row numbers the recipe trains on: its stratified hold-out of the first ``num_train`` rows."""
    split = load_split(data, CONFIG, "train")
    labels = np.asarray(split.select(range(min(num_train, len(split))))["label"])
    return holdout(labels, val_share, SEED)[0]


def make_model(backbone, device: torch.device) -> tuple[torch.nn.Module, tuple, tuple]:
    """The plain loops' model (seeded as the recipe's) and its normalisation mean / std."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = timm.create_model(backbone.timm_name, num_classes=2, **backbone.model_args)
    cfg = timm.data.resolve_model_data_config(model)
    return model.to(device).train(), tuple(cfg["mean"]), tuple(cfg["std"])


def train_step(model, optimizer, images: torch.Tensor, labels: torch.Tensor, mean, std,
               bf16: bool) -> None:
    """Normalise a uint8 batch on the device, forward (bf16 autocast if asked) + CE + backward + step."""
    device = images.device
    x = (images.float() / 255 - torch.tensor(mean, device=device).view(1, 3, 1, 1)) / \
        torch.tensor(std, device=device).view(1, 3, 1, 1)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


# ----- the three timed loops ----------------------------------------------------------------------------
def time_recipe(settings: dict, data: str, out: Path, device: torch.device) -> dict:
    """(a) One ``train()`` call, wall to wall; images = the training samples its history counts."""
    clock = Clock(device)
    folder = train(data=data, out=out, **settings)
    wall, cpu = clock.elapsed()
    history = json.loads((folder / "training.json").read_text())["history"]
    return {"images": sum(h["n"] for h in history), "wall_s": wall, "cpu_s": cpu}


def time_plain(backbone, settings: dict, recipe: Recipe, data: str, rows: np.ndarray, workers: int,
               device: torch.device) -> dict:
    """(b) The plain loop, from loading the split to the last step; each item decoded on access."""
    clock = Clock(device)
    split = load_split(data, CONFIG, "train").select(rows.tolist())
    loader = torch.utils.data.DataLoader(PlainRows(split, settings["image_size"]),
                                         batch_size=settings["batch_size"], shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(SEED))
    model, mean, std = make_model(backbone, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    bf16 = settings.get("precision", "no") == "bf16"
    images_seen = 0
    for _ in range(recipe.epochs):
        for images, labels in loader:
            train_step(model, optimizer, images.to(device), labels.to(device), mean, std, bf16)
            images_seen += len(labels)
    wall, cpu = clock.elapsed()
    return {"images": images_seen, "wall_s": wall, "cpu_s": cpu}


def decode_rows(data: str, rows: np.ndarray, image_size: int, device: torch.device) -> tuple[dict, dict]:
    """(c)'s tensors: every training row decoded once and moved to the device; and the time it took."""
    clock = Clock(device)
    dataset = PlainRows(load_split(data, CONFIG, "train").select(rows.tolist()), image_size)
    items = [dataset[i] for i in range(len(dataset))]
    tensors = {"image": torch.stack([image for image, _ in items]).to(device),
               "label": torch.stack([label for _, label in items]).to(device)}
    wall, cpu = clock.elapsed()
    return tensors, {"rows": len(items), "wall_s": wall, "cpu_s": cpu}


def time_cached(backbone, settings: dict, recipe: Recipe, tensors: dict, device: torch.device) -> dict:
    """(c) The plain loop over pre-decoded tensors (a fresh permutation per epoch)."""
    clock = Clock(device)
    model, mean, std = make_model(backbone, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    bf16 = settings.get("precision", "no") == "bf16"
    n, batch = len(tensors["label"]), settings["batch_size"]
    generator = torch.Generator().manual_seed(SEED)
    images_seen = 0
    for _ in range(recipe.epochs):
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, batch):
            index = order[start:start + batch]
            train_step(model, optimizer, tensors["image"][index], tensors["label"][index], mean, std, bf16)
            images_seen += len(index)
    wall, cpu = clock.elapsed()
    return {"images": images_seen, "wall_s": wall, "cpu_s": cpu}


def warm_up(backbone, settings: dict, recipe: Recipe, tensors: dict, device: torch.device) -> None:
    """One untimed optimiser step of the plain loop on one batch, so that no loop pays the process's
    first-use costs (kernel selection for these shapes and this precision, lazy initialisation)."""
    model, mean, std = make_model(backbone, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    batch = slice(0, settings["batch_size"])
    train_step(model, optimizer, tensors["image"][batch], tensors["label"][batch], mean, std,
               settings.get("precision", "no") == "bf16")


def best(runs: list[dict]) -> dict:
    """The run with the highest throughput, with ``images_per_s`` added and every run's seconds listed."""
    rates = [run["images"] / run["wall_s"] for run in runs]
    top = int(np.argmax(rates))
    return {**runs[top], "images_per_s": rates[top],
            "cpu_images_per_s": runs[top]["images"] / runs[top]["cpu_s"],
            "all_wall_s": [run["wall_s"] for run in runs]}


# ----- driver -------------------------------------------------------------------------------------------
def pick_backbones(names: str | None) -> list:
    """The quick preset's backbones (as they are now), or those named in ``names`` (comma-separated)."""
    backbones = list(PRESETS["quick"].backbones)
    if not names:
        return backbones
    known = {b.name: b for b in backbones}
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SystemExit(f"unknown --backbones {unknown}; the quick preset has {sorted(known)}")
    return [known[name] for name in wanted]


def bench_backbone(backbone, args: argparse.Namespace, data: str, rows: np.ndarray, tensors: dict,
                   workdir: Path, device: torch.device) -> dict:
    """All three loops for one backbone, ``--repeats`` times in turn; the best of each and the ratios."""
    settings = train_settings(backbone, args)
    recipe = recipe_of(settings)
    warm_up(backbone, settings, recipe, tensors, device)
    runs: dict[str, list[dict]] = {loop: [] for loop in LOOPS}
    for repeat in range(args.repeats):
        runs["recipe"].append(time_recipe(settings, data, workdir / f"{backbone.name}_{repeat}", device))
        runs["plain"].append(time_plain(backbone, settings, recipe, data, rows, args.workers, device))
        runs["plain_cached"].append(time_cached(backbone, settings, recipe, tensors, device))
    result = {loop: best(runs[loop]) for loop in LOOPS}
    rate = {loop: result[loop]["images_per_s"] for loop in LOOPS}
    result.update(timm_name=backbone.timm_name, model_args=dict(backbone.model_args),
                  overrides=dict(backbone.overrides), precision=settings.get("precision", "no"),
                  lr=recipe.lr, epochs=recipe.epochs,
                  ratio_recipe_plain=rate["recipe"] / rate["plain"],
                  ratio_recipe_plain_cached=rate["recipe"] / rate["plain_cached"])
    result["goal_met"] = result["ratio_recipe_plain"] >= GOAL
    return result


def print_report(results: dict, args: argparse.Namespace, device: torch.device) -> None:
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, device {device}, "
          f"torch {torch.__version__}, torch threads {torch.get_num_threads()}, DataLoader workers "
          f"{args.workers}")
    print(f"{CONFIG} train rows: {args.num_train} at {args.image_size} px, {args.epochs} epochs, batch "
          f"{args.batch_size}, best of {args.repeats}")
    labels = {"recipe": "(a) recipe train()", "plain": "(b) plain, decode per item",
              "plain_cached": "(c) plain, pre-decoded"}
    for name, result in results.items():
        print(f"\n{name} ({result['timm_name']} {result['model_args']}, precision {result['precision']}, "
              f"lr {result['lr']:g}):")
        decode = result["decode"]
        print(f"  {decode['rows']} rows trained on per epoch (the recipe's, after its hold-out); (c)'s "
              f"one-time decode of them (untimed in (c)): {decode['wall_s']:.2f} s, "
              f"{decode['rows'] / decode['wall_s']:.0f} rows/s")
        print(f"  {'loop':<28}{'images':>8}{'wall s':>9}{'CPU s':>9}{'images/s':>10}{'CPU images/s':>14}")
        for loop in LOOPS:
            r = result[loop]
            print(f"  {labels[loop]:<28}{r['images']:>8}{r['wall_s']:>9.2f}{r['cpu_s']:>9.2f}"
                  f"{r['images_per_s']:>10.1f}{r['cpu_images_per_s']:>14.1f}")
        print(f"  recipe / plain: {result['ratio_recipe_plain']:.2f}x, recipe / plain cached: "
              f"{result['ratio_recipe_plain_cached']:.2f}x; goal recipe >= {GOAL}x plain: "
              f"{'met' if result['goal_met'] else 'missed'}")
    print(f"\ngoal (recipe >= {GOAL}x the plain timm + torch loop, every backbone): "
          f"{'met' if all(r['goal_met'] for r in results.values()) else 'missed'}")


def main(argv: list[str] | None = None) -> dict:
    preset = PRESETS["quick"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-train", type=int, default=1536, help="standard train rows to build and use")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=preset.batch_size)
    parser.add_argument("--image-size", type=int, default=preset.image_size,
                        help="canvas of the built rows and the training input size")
    parser.add_argument("--backbones", default=None,
                        help="comma-separated quick-preset backbone names (default: all)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the plain loop (b)")
    parser.add_argument("--data", default=None, help="reuse a dataset folder with a standard train split")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.num_train < 2 or args.epochs < 1 or args.batch_size < 1 or args.repeats < 1:
        parser.error("--num-train must be >= 2, --epochs, --batch-size and --repeats >= 1")
    backbones = pick_backbones(args.backbones)
    datasets.disable_progress_bars()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        workdir = Path(tmp)
        data = args.data
        if data is None:
            from cambench_qr.dataset_builder.build import build_dataset

            data = str(build_dataset(CONFIG, workdir / "data", num_train=args.num_train, num_test=0,
                                     image_size=args.image_size, quiet=True))
        # the same hold-out for every backbone unless an override changes val_share
        rows_by_share: dict[float, tuple[np.ndarray, dict, dict]] = {}
        results = {}
        for backbone in backbones:
            share = recipe_of(train_settings(backbone, args)).val_share
            if share not in rows_by_share:  # also warms the datasets cache before any timing
                rows = training_rows(data, args.num_train, share)
                rows_by_share[share] = (rows, *decode_rows(data, rows, args.image_size, device))
            rows, tensors, decode = rows_by_share[share]
            results[backbone.name] = {**bench_backbone(backbone, args, data, rows, tensors, workdir, device),
                                      "decode": decode}

    print_report(results, args, device)
    report = {"settings": {**vars(args), "config": CONFIG, "regime": REGIME, "seed": SEED},
              "device": str(device), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "goal": GOAL,
              "goal_met": all(r["goal_met"] for r in results.values()), "backbones": results}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
