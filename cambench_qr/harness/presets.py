"""Experiment presets as data: which datasets to build, which backbones and regimes to train, how to evaluate.

``PRESETS["quick"]`` (what ``make run`` runs): a small ResNet and a Vision Transformer with a convolutional
stem (``harness.backbones``) trained from random init with the ``scratch`` recipe on fresh ``standard`` rows
at 128 px, then FT-LeakMin from each competent model; minutes on 2 CPU cores. ZS is left out: offline
there are no pretrained weights, and a linear probe on a random backbone measures nothing.
``PRESETS["paper"]``: ResNet-50 (torchvision's ImageNet V2 weights, as the authors used) and ConvNeXt-B
(ImageNet-22k -> 1k) from the Hub, 224 px, the paper's data sizes (600 + 600 train, 300 + 300 test) and
hyper-parameters (``docs/paper.md``); ZS, then FT-Struct and FT-LeakMin from it; for a GPU (estimate in
``expected_runtime``).

A pipeline builds ``datasets``, then for each backbone trains ``runs`` in order, a run with ``init_from``
starting from the model of the run it names (``train_kwargs``), then evaluates every model
(``evaluate_kwargs``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .options import PAPER_METHODS

DISTORTION_FAMILIES = ("blur", "motion_blur", "noise", "jpeg", "contrast", "illumination", "rotation",
                       "perspective", "occlusion", "scale")


@dataclass(frozen=True)
class Backbone:
    """A timm architecture to train: ``name`` names its model folders, ``timm_name`` and ``model_args``
    build it, ``pretrained`` is ``none`` (random init), a weights file or a Hub tag; ``overrides`` are
    ``train()`` arguments for this backbone only (for example its learning rate)."""

    name: str
    timm_name: str
    pretrained: str = "none"
    model_args: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunSpec:
    """One model to train: a regime, the name of its run folder, ``train()`` overrides, and the run whose
    model it starts from (``init_from``, None: built from the backbone)."""

    name: str
    regime: str
    overrides: dict = field(default_factory=dict)
    init_from: str | None = None


@dataclass(frozen=True)
class Preset:
    """A complete experiment. ``datasets``: (config, num_train, num_test) to build; ``train_config``: the
    config the models train on; ``runs``: trained in order per backbone."""

    name: str
    description: str
    expected_runtime: str
    backbones: tuple[Backbone, ...]
    image_size: int
    batch_size: int
    datasets: tuple[tuple[str, int, int], ...]
    train_config: str
    eval_configs: tuple[str, ...]
    runs: tuple[RunSpec, ...]
    evaluation: dict
    canvas_size: int | None = None  # dataset canvas side (None: the builder's default); `paper` is native
    seed: int = 0
    # (clean `standard`, mean over severities 1-3 of each distortion config): accuracies every model of the
    # preset must reach; a miss is reported on stderr and in the report, never silently. None: no floors.
    accuracy_floors: tuple[float, float] | None = None
    # the sanity checks (``evaluate(sanity=True)``: cascading model randomization in ``sanity_steps`` chunks
    # (None: one per block) and random logit) on this many QR test images, for the models of the runs
    # named in ``sanity_runs``; 0: none
    sanity_images: int = 0
    sanity_runs: tuple[str, ...] = ()
    sanity_steps: int | None = None

    def build_kwargs(self, config: str, num_train: int, num_test: int, out: str | Path,
                     quiet: bool = False) -> dict:
        """Keyword arguments of ``dataset_builder.build_dataset`` for one entry of ``datasets``."""
        size = None if config == "paper" else self.canvas_size
        return {"config": config, "out_dir": out, "num_train": num_train, "num_test": num_test,
                "seed": self.seed, "image_size": size, "quiet": quiet}

    def train_kwargs(self, run: RunSpec, backbone: Backbone, data: str, out: str | Path,
                     init_from: str | Path | None = None, quiet: bool = False) -> dict:
        """Keyword arguments of ``harness.train.train`` for ``run`` of ``backbone`` (a run with
        ``run.init_from``: ``init_from`` is that run's model folder)."""
        base = {"data": data, "out": out, "config": self.train_config, "regime": run.regime,
                "seed": self.seed, "image_size": self.image_size, "batch_size": self.batch_size,
                "quiet": quiet}
        if run.init_from is None:
            base.update(backbone=backbone.timm_name, pretrained=backbone.pretrained,
                        model_args=dict(backbone.model_args))
        else:
            if init_from is None:
                raise ValueError(f"run {run.name!r} ({run.regime}) starts from the {run.init_from!r} model: "
                                 "give init_from")
            base["init_from"] = init_from
        return {**base, **backbone.overrides, **run.overrides}

    def evaluate_kwargs(self, model: str | Path, data: str, out: str | Path, quiet: bool = False,
                        run: str | None = None) -> dict:
        """Keyword arguments of ``harness.evaluate.evaluate`` for one trained model, the model of the run
        named ``run`` (its sanity checks when ``run`` is in ``sanity_runs``)."""
        sanity = {}
        if self.sanity_images and run in self.sanity_runs:
            sanity = {"sanity": True, "sanity_images": self.sanity_images, "sanity_steps": self.sanity_steps}
        return {"model": model, "data": data, "out": out, "configs": self.eval_configs, "seed": self.seed,
                "quiet": quiet, **self.evaluation, **sanity}


_PAPER_RUNS = (
    RunSpec("zs", "zs"),
    RunSpec("ft_struct", "ft_struct", init_from="zs"),
    RunSpec("ft_leakmin", "ft_leakmin", {"leak_lambda": 0.25}, init_from="zs"),
)
# FT-LeakMin from the competent model: one epoch at the paper's FT-LeakMin rate on 3 000 clean rows, in
# float32 (the penalty differentiates a gradient), validated on a held-out share as the scratch run is.
_SCRATCH_RUNS = (
    RunSpec("scratch", "scratch"),
    RunSpec("ft_leakmin", "ft_leakmin",
            {"leak_lambda": 0.25, "epochs": 1, "num_train": 3000, "val_share": 0.1, "precision": "no"},
            init_from="scratch"),
)

PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        description="two models trained from random init with the scratch recipe on 12 000 fresh "
                    "standard rows at 128 px: a small ResNet (timm test_resnet at output stride 16: an "
                    "8x8 CAM grid) and a ViT with a convolutional stem (vit_convstem_tiny, 2 blocks, "
                    "average-pooled tokens: an 8x8 token grid); then FT-LeakMin (lambda 0.25) from each on "
                    "3 000 rows; evaluated on standard, blur, occlusion and interventions (causal "
                    "agreement); sanity checks (cascading randomization, random logit) of the scratch "
                    "models on 32 images",
        expected_runtime="under 10 minutes on 2 idle CPU cores after setup (BENCHMARKS.md, main job)",
        backbones=(
            Backbone("resnet-tiny", "test_resnet", model_args={"output_stride": 16},
                     overrides={"precision": "bf16", "epochs": 2}),
            Backbone("vit-convstem", "vit_convstem_tiny",
                     model_args={"depth": 2, "global_pool": "avg", "class_token": False},
                     overrides={"precision": "bf16", "epochs": 6}),
        ),
        image_size=128,
        batch_size=64,
        datasets=(("standard", 12000, 400), ("blur", 0, 100), ("occlusion", 0, 100),
                  ("interventions", 0, 60)),
        train_config="standard",
        eval_configs=("standard", "blur", "occlusion", "interventions"),
        runs=_SCRATCH_RUNS,
        evaluation={"methods": ("gradcam", *PAPER_METHODS), "batch_size": 64, "faithfulness_samples": 4,
                    "faithfulness_steps": 10, "cross_resolution_samples": 16, "latency_batch": 8,
                    "n_boot": 200},
        canvas_size=128,
        accuracy_floors=(0.97, 0.90),
        sanity_images=32,
        sanity_runs=("scratch",),
    ),
    "paper": Preset(
        name="paper",
        description="ResNet-50 (timm/resnet50.tv2_in1k = torchvision IMAGENET1K_V2, the authors' weights) "
                    "and ConvNeXt-B (timm/convnext_base.fb_in22k_ft_in1k) at 224 px; the paper's sizes "
                    "(600 + 600 train, 300 + 300 test), batch 128, Adam wd 1e-4, ZS 1e-3 x 2, FT-Struct "
                    "1e-3 x 2, FT-LeakMin 3e-4 x 4 epochs; trained on `paper`, evaluated on `paper`, "
                    "`standard` and the ten distortion families",
        expected_runtime="estimate, not measured: about 30-60 minutes on one modern GPU (H100 class) "
                         "for both backbones, dominated by evaluation (3 CAMs + 4 null maps on 6 900 test "
                         "images, 100 insertion/deletion curves per config); many hours on a CPU",
        backbones=(Backbone("resnet50", "resnet50", "timm/resnet50.tv2_in1k"),
                   Backbone("convnext_base", "convnext_base", "timm/convnext_base.fb_in22k_ft_in1k")),
        image_size=224,
        batch_size=128,
        datasets=(("paper", 1200, 600), ("standard", 1200, 600),
                  *((family, 0, 300) for family in DISTORTION_FAMILIES)),
        train_config="paper",
        eval_configs=("paper", "standard", *DISTORTION_FAMILIES),
        runs=_PAPER_RUNS,
        evaluation={"methods": PAPER_METHODS, "batch_size": 64, "faithfulness_samples": 100,
                    "cross_resolution_samples": 200, "latency_batch": 64, "n_boot": 1000},
        canvas_size=224,
    ),
}
