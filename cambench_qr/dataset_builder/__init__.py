"""Dataset builder: QR geometry from the specification, rendering with one homography, backgrounds,
negatives, distortions and configs -> rows (``generate_row``)."""

from cambench_qr.dataset_builder.build import build_dataset
from cambench_qr.dataset_builder.distortions import DISTORTION_FAMILIES, SEVERITIES, SEVERITY_TABLES
from cambench_qr.dataset_builder.geometry import encode, expected_colours, part_map
from cambench_qr.dataset_builder.samples import (
    CONFIG_NAMES,
    DEFAULT_CONFIG,
    SPLITS,
    generate_row,
    make_sample,
    row_seed,
)

__all__ = [
    "CONFIG_NAMES",
    "DEFAULT_CONFIG",
    "DISTORTION_FAMILIES",
    "SEVERITIES",
    "SEVERITY_TABLES",
    "SPLITS",
    "build_dataset",
    "encode",
    "expected_colours",
    "generate_row",
    "make_sample",
    "part_map",
    "row_seed",
]
