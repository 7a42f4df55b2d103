"""The ``interventions`` config: true causal ground truth, FunnyBirds-style (docs/architecture.md s.2.4).

Each QR row of the ``standard`` test split (rows ``0, 2, 4, ...``, same seeds) is rendered once as it is
(intervention ``none``: byte-identical to the ``standard`` row) and once per intervention, each acting on
exactly one part:

- ``finder``: the three 7x7 finder patterns replaced by data-like modules,
- ``timing``: the timing lines scrambled,
- ``alignment``: the alignment patterns scrambled (versions >= 2 only: version 1 has none),
- ``data``: data and error-correction modules re-randomised (function patterns and format intact),
- ``quiet_zone``: the quiet zone cluttered with data-like modules.

One rule does all five: every module of the part gets an independent fair coin (dark with p = 1/2), drawn
from ``default_rng([seed, crc32(intervention)])``. The change is made to the module grid before it is
drawn (``standard_sample(edit_grid=...)``), so background, colours, homography, distractors and the part
map are those of the original: image differences are exactly the intervention (plus bilinear
anti-aliasing within a pixel of the part's border). ``decodable`` is measured on the intervened image
(zxing-cpp reads the original payload), never assumed.

Rows: ``id`` ``interventions/test/<index>``, ``seed`` the original's (regenerates it), ``intervention``
(``none`` for the original), ``pair_id`` the original's ``standard`` id. Row ``index`` walks the originals
in order, ``len(interventions_for(version)) `` rows each, so a build of ``n`` rows holds complete groups
except possibly the last.
"""

from __future__ import annotations

import zlib
from functools import cache

import numpy as np

from cambench_qr.dataset_builder.render import Grid
from cambench_qr.dataset_builder.samples import DEFAULT_IMAGE_SIZE, row_seed, standard_sample
from cambench_qr.parts import PART_IDS

CONFIG = "interventions"
SOURCE_CONFIG = "standard"
SPLIT = "test"
NONE = "none"
# Each intervention is named after the part (cambench_qr.parts) it acts on.
INTERVENED_PARTS: tuple[str, ...] = ("finder", "timing", "alignment", "data", "quiet_zone")
INTERVENTIONS: tuple[str, ...] = (NONE, *INTERVENED_PARTS)
EXTRA_COLUMNS: tuple[str, ...] = ("intervention", "pair_id")


def interventions_for(version: int) -> tuple[str, ...]:
    """The rows of one original, in order: ``none`` then every intervention whose part the symbol has
    (``alignment`` needs version >= 2)."""
    return tuple(k for k in INTERVENTIONS if k != "alignment" or version >= 2)


def scramble_part(grid: Grid, part: str, rng: np.random.Generator) -> Grid:
    """A copy of ``grid`` whose cells labelled ``part`` get independent fair-coin ink (1 dark, 0 light)."""
    if part not in INTERVENED_PARTS:
        raise ValueError(f"unknown intervention {part!r}; choose from {', '.join(INTERVENED_PARTS)}")
    cells = grid.labels == PART_IDS[part]
    if not cells.any():
        raise ValueError(f"the grid has no {part!r} cells to intervene on")
    ink = grid.ink.copy()
    ink[cells] = rng.random(int(cells.sum())) < 0.5
    return Grid(ink, grid.labels, grid.margin, grid.smooth)


def intervention_rng(seed: int, intervention: str) -> np.random.Generator:
    """The intervention's own generator, ``default_rng([seed, crc32(intervention)])``: independent of the
    draws that lay out the original."""
    return np.random.default_rng([int(seed), zlib.crc32(intervention.encode())])


def intervened_sample(seed: int, intervention: str, image_size: int = DEFAULT_IMAGE_SIZE) -> dict:
    """The ``standard`` QR sample of ``seed`` with ``intervention`` applied (``none``: the original)."""
    if intervention not in INTERVENTIONS:
        raise ValueError(f"unknown intervention {intervention!r}; choose from {', '.join(INTERVENTIONS)}")
    if intervention == NONE:
        return standard_sample(seed, True, image_size)
    rng = intervention_rng(seed, intervention)
    return standard_sample(seed, True, image_size,
                           edit_grid=lambda grid: scramble_part(grid, intervention, rng))


@cache
def _original(base_seed: int, image_size: int, number: int) -> tuple[int, int]:
    """(seed, version) of the ``number``-th QR row of the ``standard`` test split (row ``2 number``)."""
    seed = row_seed(SOURCE_CONFIG, SPLIT, 2 * number, base_seed)
    return seed, int(standard_sample(seed, True, image_size)["version"])


def locate(index: int, base_seed: int, image_size: int) -> tuple[int, int, str]:
    """Row ``index`` -> (original's ``standard`` test index, its seed, intervention)."""
    number = 0
    while True:
        seed, version = _original(base_seed, image_size, number)
        kinds = interventions_for(version)
        if index < len(kinds):
            return 2 * number, seed, kinds[index]
        index -= len(kinds)
        number += 1


def interventions_row(config: str, split: str, index: int, base_seed: int,
                      image_size: int | None = None) -> dict:
    """Row ``index`` of the ``interventions`` config (the ``generate_row`` signature; test split only)."""
    if config != CONFIG:
        raise ValueError(f"interventions_row builds the {CONFIG!r} config, got {config!r}")
    if split != SPLIT:
        raise ValueError(f"the {CONFIG} config has a {SPLIT!r} split only, got {split!r}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")
    size = DEFAULT_IMAGE_SIZE if image_size is None else image_size
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 64:
        raise ValueError(f"image_size must be an integer >= 64, got {image_size!r}")
    original, seed, intervention = locate(int(index), int(base_seed), int(size))
    row = intervened_sample(seed, intervention, size)
    return {"id": f"{CONFIG}/{SPLIT}/{index:06d}", "seed": seed, **row, "intervention": intervention,
            "pair_id": f"{SOURCE_CONFIG}/{SPLIT}/{original:06d}"}
