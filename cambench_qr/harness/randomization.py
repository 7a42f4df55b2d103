"""Model-parameter randomization for the sanity checks: the model's blocks, top-down, and how a block is
re-drawn.

Blocks: for a timm model, the fine layer groups of its ``group_matcher`` (the groups timm uses for
layer-wise learning-rate decay: the stem with its embeddings, each block, the head), so ResNet-50 has
18 (stem, 16 bottlenecks, fc) and a ViT its patch embedding, each transformer block and its head. For
any other model (e.g. ``transformers``), a parameter belongs to the first module on its path that is an
element of an ``nn.Sequential`` / ``nn.ModuleList`` (one encoder layer, one stage), else to the module
that holds it. Blocks are listed top-down: head first, stem last.

Randomizing a block (with a seeded generator, so a run is repeatable): every module owning a parameter of
the block that has ``reset_parameters`` (and no parameter outside the block) is re-initialised by it,
PyTorch's default initialisation (Kaiming-uniform convolution and linear weights, uniform biases; the
same operation as Quantus's MPRT).
Normalisation layers are thereby reset to their knowledge-free state: weight 1, bias 0 and, for
BatchNorm, running mean 0 and variance 1, which is safe (never a negative variance, so no NaN). A
parameter no such module covers (position embeddings, class tokens, layer-scale factors) is drawn from
``N(0, rms^2)``, ``rms`` the root mean square of its current values, which keeps its scale.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Block:
    """A named group of parameters that is randomized together."""

    name: str
    parameters: tuple[str, ...]


def _container_groups(model: nn.Module) -> dict[str, list[str]]:
    containers = {name for name, m in model.named_modules() if isinstance(m, (nn.Sequential, nn.ModuleList))}
    groups: dict[str, list[str]] = {}
    for name, _ in model.named_parameters():
        parts = name.split(".")
        group = ".".join(parts[:-1]) or name
        for depth in range(1, len(parts)):
            if ".".join(parts[:depth - 1]) in containers:
                group = ".".join(parts[:depth])
                break
        groups.setdefault(group, []).append(name)
    return groups


def randomization_blocks(model: nn.Module) -> list[Block]:
    """The model's blocks, top-down (head first); ValueError when the model has no parameters."""
    matcher = getattr(model, "group_matcher", None)
    if callable(matcher):
        from timm.models import group_parameters

        groups = group_parameters(model, matcher(coarse=False))
        ordered = sorted(groups.items(), key=lambda item: item[0])
        blocks = [Block(_common_prefix(names), tuple(names)) for _, names in ordered]
    else:
        blocks = [Block(name, tuple(names)) for name, names in _container_groups(model).items()]
    blocks = [b for b in blocks if b.parameters]
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no parameters to randomize")
    return blocks[::-1]


def _common_prefix(names: list[str]) -> str:
    """The longest dotted prefix shared by ``names`` (or ``first..last`` when they share none)."""
    split = [n.split(".") for n in names]
    common = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    prefix = ".".join(common[: min(len(s) for s in split) - 1] if len(names) == 1 else common)
    return prefix or f"{names[0].rsplit('.', 1)[0]}..{names[-1].rsplit('.', 1)[0]}"


def chunk_blocks(blocks: list[Block], steps: int | None) -> list[list[Block]]:
    """Split the top-down blocks into ``steps`` contiguous chunks (None: one block per chunk); chunk k
    holds ``blocks[round(k n / steps) : round((k + 1) n / steps)]``, so the last one ends at the stem."""
    n = len(blocks)
    steps = n if steps is None else steps
    if not 1 <= steps <= n:
        raise ValueError(f"steps must be in 1..{n} (the model's blocks), got {steps}")
    bounds = [round(k * n / steps) for k in range(steps + 1)]
    return [blocks[bounds[k]:bounds[k + 1]] for k in range(steps)]


def _owners(model: nn.Module, names: tuple[str, ...]) -> Iterator[tuple[str, nn.Module, str]]:
    for name in names:
        module_name, _, attr = name.rpartition(".")
        yield module_name, model.get_submodule(module_name), attr


@torch.no_grad()
def randomize_(model: nn.Module, blocks: list[Block], seed: int) -> None:
    """Re-draw the parameters of ``blocks`` in place (see the module docstring), from ``seed``."""
    params = [name for b in blocks for name in b.parameters]
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        generator = torch.Generator(device=device).manual_seed(seed)
        done: set[str] = set()
        chosen = set(params)
        for module_name, module, attr in _owners(model, tuple(params)):
            reset = getattr(module, "reset_parameters", None)
            prefix = f"{module_name}." if module_name else ""
            inside = all(prefix + n in chosen for n, _ in module.named_parameters())
            if callable(reset) and inside:
                if module_name not in done:
                    reset()
                    done.add(module_name)
                continue
            value = getattr(module, attr)
            rms = value.float().square().mean().sqrt()
            value.copy_(torch.randn(value.shape, generator=generator, device=device) * rms)
