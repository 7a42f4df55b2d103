"""Training recipes: what each regime trains, with which optimiser, schedule, loss and data handling.

A :class:`Recipe` is resolved from the regime's defaults (``REGIME_DEFAULTS``) and the caller's overrides,
and validated before any work starts (one-line ``ValueError``):

- ``scratch``: every parameter from random init. AdamW (decoupled weight decay 0.05), a linear warm-up
  over the first 5% of the optimiser steps then a cosine decay to 0, cross-entropy with label smoothing
  0.1, augmentation that keeps the task (``harness.augment``, builder distortions up to severity 3), 10%
  of ``train`` held out for validation and the epoch with the best validation accuracy kept.
- ``zs`` / ``ft_struct`` / ``ft_leakmin``: the paper's regimes (linear probe on a frozen backbone; last
  stage + head; last stage + head with the leakage penalty). Adam with L2 weight decay 1e-4 at a constant
  learning rate, plain cross-entropy, no augmentation and no validation split: ZS lr 1e-3 for 2 epochs,
  FT-Struct lr 1e-3 for 2 epochs, FT-LeakMin lr 3e-4 for 4 epochs.

Learning-rate factor at optimiser step ``s`` of ``T`` with ``W = round(warmup * T)`` warm-up steps
(``schedule == "cosine"``): ``(s + 1) / W`` for ``s < W``, else ``(1 + cos(pi (s - W) / (T - W))) / 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

REGIMES = ("scratch", "zs", "ft_struct", "ft_leakmin")
DEPTHS = ("head", "last", "last2", "full")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class Recipe:
    """Every setting that decides how a model trains, beside the data and the model itself.

    ``augment``: the highest severity of the builder distortions used as augmentation (0 = none).
    ``val_share``: share of ``train`` held out for validation (0 = none; the last epoch is kept).
    """

    depth: str
    lr: float
    epochs: int
    optimizer: str = "adam"
    weight_decay: float = 1e-4
    schedule: str = "constant"
    warmup: float = 0.0
    label_smoothing: float = 0.0
    augment: int = 0
    val_share: float = 0.0

    def __post_init__(self) -> None:
        if self.depth not in DEPTHS:
            raise ValueError(f"unknown depth {self.depth!r}; choose one of {', '.join(DEPTHS)}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"the learning rate must be a positive number, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not 0.0 <= self.weight_decay < 1.0:
            raise ValueError(f"weight decay must be in [0, 1), got {self.weight_decay!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"the warm-up share must be in [0, 1), got {self.warmup!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if isinstance(self.augment, bool) or self.augment not in range(6):
            raise ValueError(f"the augmentation severity must be an integer in 0..5, got {self.augment!r}")
        if not 0.0 <= self.val_share < 1.0:
            raise ValueError(f"the validation share must be in [0, 1), got {self.val_share!r}")

    def lr_factor(self, step: int, total: int) -> float:
        """The learning-rate multiplier at optimiser step ``step`` (0-based) of ``total``."""
        if self.schedule == "constant":
            return 1.0
        warm = round(self.warmup * total)
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))


_PAPER = {"optimizer": "adam", "weight_decay": 1e-4, "schedule": "constant"}
REGIME_DEFAULTS: dict[str, Recipe] = {
    "scratch": Recipe(depth="full", lr=2e-3, epochs=3, optimizer="adamw", weight_decay=0.05,
                      schedule="cosine", warmup=0.05, label_smoothing=0.1, augment=3, val_share=0.1),
    "zs": Recipe(depth="head", lr=1e-3, epochs=2, **_PAPER),
    "ft_struct": Recipe(depth="last", lr=1e-3, epochs=2, **_PAPER),
    "ft_leakmin": Recipe(depth="last", lr=3e-4, epochs=4, **_PAPER),
}


def resolve_recipe(regime: str, **overrides) -> Recipe:
    """The regime's default recipe with every override that is not None applied (and validated)."""
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}")
    return replace(REGIME_DEFAULTS[regime], **{k: v for k, v in overrides.items() if v is not None})
