"""The evaluation's method check and sanity step (``cambench-qr evaluate --sanity``).

``probe_methods``: each requested CAM method runs once on a few QR images of the first config; a method
that cannot run on the model (a ``pgc:`` method the library cannot apply, ``CamOutput.failed``) is
returned with its reason, to be reported in ``summary.json`` (``MethodErrorRow``, and the error in its
latency row) while the others are evaluated.

``sanity_summary``: the sanity checks of ``harness.sanity`` on the first ``images`` QR test images of the
clean headline config (``standard`` when evaluated, else the first config): the cascading model
randomization, the random-logit test and, with a model trained on permuted labels
(``cambench-qr train --permute-labels``), the data randomization; for every requested method (one that
cannot run is an error row with an undetermined verdict). Under ``accelerate launch`` only the main
process runs it (the images are few; the other processes wait).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..results import SanityRow
from .accuracy import headline_config
from .data import TensorRows, normalize
from .models import load_model
from .sanity import data_randomization, model_randomization, random_logit, sanity_rows
from .scoring import QR_LABEL, Scorer


def _qr_batch(rows, image_size: int, count: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The first ``count`` QR rows of a split as stacked tensors on ``device``."""
    picked = np.flatnonzero(np.asarray(rows["label"]) == QR_LABEL)[:count]
    tensors = TensorRows(rows, image_size)
    items = [tensors[int(i)] for i in picked]
    return {k: torch.stack([item[k] for item in items]).to(device) for k in ("image", "parts", "module_px")}


def probe_methods(scorer: Scorer, rows, methods: tuple[str, ...], image_size: int, images: int = 2
                  ) -> dict[str, str]:
    """``{method: reason}`` of the methods that cannot run on the model, from one engine call on the first
    ``images`` QR rows of ``rows``."""
    batch = _qr_batch(rows, image_size, images, scorer.device)
    return dict(scorer.explain(batch["image"], methods).failed)


def check_sanity_settings(sanity: bool, images: int, steps: int | None, permuted_model: str | Path | None
                          ) -> None:
    """ValueError for sanity settings that cannot work, before anything is loaded."""
    if permuted_model is not None and not sanity:
        raise ValueError("a permuted-label model is used only by the sanity checks: pass --sanity too")
    if sanity and images < 2:
        raise ValueError(f"the sanity checks need at least 2 images (bootstrap CIs), got {images}")
    if sanity and steps is not None and steps < 1:
        raise ValueError(f"sanity steps must be >= 1, got {steps}")


def load_permuted(source: str | Path, model: torch.nn.Module) -> torch.nn.Module:
    """The model trained with ``--permute-labels`` at ``source`` (a folder or Hub id); ValueError unless it
    is of ``model``'s class and its ``training.json`` records ``permute_labels``."""
    permuted, training, _ = load_model(source)
    if type(permuted) is not type(model) or training.get("permute_labels") is not True:
        raise ValueError(f"--sanity-permuted-model {source} must be a {type(model).__name__} trained with "
                         "--permute-labels")
    return permuted


def sanity_summary(scorer: Scorer, splits: dict, methods: tuple[str, ...], image_size: int, *, images: int,
                   steps: int | None, permuted: torch.nn.Module | None, batch_size: int, n_boot: int,
                   seed: int) -> list[SanityRow]:
    """The ``sanity`` section's rows (see the module docstring). ``steps``: chunks of blocks of the
    cascading test (None: one per block). ``permuted``: the model trained on permuted labels
    (``load_permuted``; None: no data randomization)."""
    config = headline_config(list(splits))
    batch = _qr_batch(splits[config], image_size, images, scorer.device)
    inputs = normalize(batch["image"], scorer.mean, scorer.std)
    common = {"methods": methods, "batch_size": batch_size}
    parts, pitch = batch["parts"], batch["module_px"]
    results = [model_randomization(scorer.model, inputs, parts, pitch, order="cascading", steps=steps,
                                   seed=seed, **common),
               random_logit(scorer.model, inputs, parts, pitch, seed=seed, **common)]
    if permuted is not None:
        results.append(data_randomization(scorer.model, permuted.to(scorer.device).eval(), inputs, parts,
                                          pitch, **common))
    return [SanityRow.from_json(r) for r in sanity_rows(results, n_boot=n_boot, seed=seed)]
