"""Experiment presets as data: which datasets to build, which backbones and regimes to train, how to evaluate.

``PRESETS["quick"]``: a random-init ResNet-18 at 128 px on a small ``standard`` dataset, the three regimes;
minutes on 2 CPU cores.
``PRESETS["paper"]``: ResNet-50 (torchvision's ImageNet V2 weights, as the authors used) and ConvNeXt-B
(ImageNet-22k -> 1k) from the Hub, 224 px, the paper's data sizes (600 + 600 train, 300 + 300 test) and
hyper-parameters (notes/paper.md s.1.5, s.2); for a GPU (estimate in ``expected_runtime``).

A pipeline builds ``datasets``, then for each backbone trains ``zs`` and the FT regimes from it
(``train_kwargs``), then evaluates every model (``evaluate_kwargs``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .options import PAPER_METHODS

DISTORTION_FAMILIES = ("blur", "motion_blur", "noise", "jpeg", "contrast", "illumination", "rotation",
                       "perspective", "occlusion", "scale")


@dataclass(frozen=True)
class RunSpec:
    """One model to train: a regime, the name of its run folder, and ``train()`` overrides."""

    name: str
    regime: str
    overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    """A complete experiment. ``datasets``: (config, num_train, num_test) to build; ``train_config``: the
    config the models train on; ``runs``: trained in order, FT runs starting from the run named ``zs``."""

    name: str
    description: str
    expected_runtime: str
    backbones: tuple[tuple[str, str], ...]  # (timm name, --pretrained)
    image_size: int
    batch_size: int
    datasets: tuple[tuple[str, int, int], ...]
    train_config: str
    eval_configs: tuple[str, ...]
    runs: tuple[RunSpec, ...]
    evaluation: dict
    canvas_size: int | None = None  # dataset canvas side (None: the builder's default); `paper` is native
    seed: int = 0

    def build_kwargs(self, config: str, num_train: int, num_test: int, out: str | Path,
                     quiet: bool = False) -> dict:
        """Keyword arguments of ``dataset_builder.build_dataset`` for one entry of ``datasets``."""
        size = None if config == "paper" else self.canvas_size
        return {"config": config, "out_dir": out, "num_train": num_train, "num_test": num_test,
                "seed": self.seed, "image_size": size, "quiet": quiet}

    def train_kwargs(self, run: RunSpec, backbone: str, pretrained: str, data: str, out: str | Path,
                     init_from: str | Path | None = None, quiet: bool = False) -> dict:
        """Keyword arguments of ``harness.train.train`` for ``run`` of ``backbone`` (FT runs: ``init_from``
        is the ZS model folder)."""
        base = {"data": data, "out": out, "config": self.train_config, "regime": run.regime,
                "seed": self.seed, "image_size": self.image_size, "batch_size": self.batch_size,
                "quiet": quiet}
        if run.regime == "zs":
            base.update(backbone=backbone, pretrained=pretrained)
        else:
            if init_from is None:
                raise ValueError(f"run {run.name!r} ({run.regime}) starts from the ZS model: give init_from")
            base["init_from"] = init_from
        return {**base, **run.overrides}

    def evaluate_kwargs(self, model: str | Path, data: str, out: str | Path, quiet: bool = False) -> dict:
        """Keyword arguments of ``harness.evaluate.evaluate`` for one trained model."""
        return {"model": model, "data": data, "out": out, "configs": self.eval_configs, "seed": self.seed,
                "quiet": quiet, **self.evaluation}


_REGIME_RUNS = (
    RunSpec("zs", "zs"),
    RunSpec("ft_struct", "ft_struct"),
    RunSpec("ft_leakmin", "ft_leakmin", {"leak_lambda": 0.25}),
)

PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        description="random-init ResNet-18 at 128 px, 400 train / 100 test standard rows, the three regimes, "
                    "evaluated on standard, blur, occlusion and interventions (causal agreement); the "
                    "FT-LeakMin lambda = 0 control is run by scripts/bench_eval.py --leakmin",
        expected_runtime="`make run` measured 166 s on an idle 2-core CPU, 6 min 45 s on a loaded one "
                         "(BENCHMARKS.md, main job)",
        backbones=(("resnet18", "none"),),
        image_size=128,
        batch_size=32,
        datasets=(("standard", 400, 100), ("blur", 0, 40), ("occlusion", 0, 40), ("interventions", 0, 60)),
        train_config="standard",
        eval_configs=("standard", "blur", "occlusion", "interventions"),
        runs=_REGIME_RUNS,
        evaluation={"methods": ("gradcam", *PAPER_METHODS), "batch_size": 32, "faithfulness_samples": 4,
                    "faithfulness_steps": 10, "cross_resolution_samples": 16, "latency_batch": 8,
                    "n_boot": 200},
        canvas_size=128,
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
        backbones=(("resnet50", "timm/resnet50.tv2_in1k"),
                   ("convnext_base", "timm/convnext_base.fb_in22k_ft_in1k")),
        image_size=224,
        batch_size=128,
        datasets=(("paper", 1200, 600), ("standard", 1200, 600),
                  *((family, 0, 300) for family in DISTORTION_FAMILIES)),
        train_config="paper",
        eval_configs=("paper", "standard", *DISTORTION_FAMILIES),
        runs=_REGIME_RUNS,
        evaluation={"methods": PAPER_METHODS, "batch_size": 64, "faithfulness_samples": 100,
                    "cross_resolution_samples": 200, "latency_batch": 64, "n_boot": 1000},
        canvas_size=224,
    ),
}
