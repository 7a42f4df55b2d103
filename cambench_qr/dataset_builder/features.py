"""The row schema of every CAMBench-QR config (docs/architecture.md s.2.3) as `datasets.Features`.

`image` is RGB, `parts` holds one part id per pixel (mode L, ids from `cambench_qr.parts`), `occluded` is
0 or 255 (mode L). Columns that do not apply to a row (e.g. `version` of a negative) are null. A config
may add columns after the common ones (`features_for`): `interventions` names the intervened part and the
`id` of the original row it pairs with.
"""

from __future__ import annotations

from datasets import ClassLabel, Features, Image, List, Value

from ..parts import LABEL_NAMES

IMAGE_COLUMNS: tuple[str, ...] = ("image", "parts", "occluded")

FEATURES = Features(
    {
        "id": Value("string"),
        "image": Image(),
        "parts": Image(),
        "occluded": Image(),
        "label": ClassLabel(names=list(LABEL_NAMES)),
        "corners": List(List(Value("float32"))),
        "version": Value("int8"),
        "ecc": Value("string"),
        "mask_pattern": Value("int8"),
        "payload": Value("string"),
        "module_px": Value("float32"),
        "distortion": Value("string"),
        "severity": Value("int8"),
        "background": Value("string"),
        "negative_kind": Value("string"),
        "seed": Value("int64"),
        "decodable": Value("bool"),
        "source": Value("string"),
    }
)

EXTRA_FEATURES: dict[str, dict[str, Value]] = {
    "interventions": {"intervention": Value("string"), "pair_id": Value("string")},
}


def features_for(config: str) -> Features:
    """The columns of `config`: the common schema plus the config's own extra columns, if any."""
    return Features({**FEATURES, **EXTRA_FEATURES.get(config, {})})
