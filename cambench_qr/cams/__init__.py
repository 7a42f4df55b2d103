"""Batched CAM engine: one forward and one backward pass per batch yield every gradient CAM.

Raw maps ``(B, h, w)`` stay on the model's device at the target layer's resolution; upsampling and
normalisation are explicit (``upsample``, ``normalize_maps``, ``postprocess``). pytorch-grad-cam is the
reference the tests compare against, and every CAM class of it runs through the engine as ``pgc:<name>``
(``cams.pgc``).
"""

from cambench_qr.cams.engine import (
    DEFAULT_METHODS,
    CamEngine,
    CamOutput,
    available_methods,
    check_methods,
    compute_cams,
)
from cambench_qr.cams.layers import TargetLayer, default_target_layer
from cambench_qr.cams.methods import METHODS, principal_projection
from cambench_qr.cams.pgc import pgc_methods
from cambench_qr.cams.postprocess import normalize_maps, postprocess, upsample

__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "CamEngine",
    "CamOutput",
    "TargetLayer",
    "available_methods",
    "check_methods",
    "compute_cams",
    "default_target_layer",
    "normalize_maps",
    "pgc_methods",
    "postprocess",
    "principal_projection",
    "upsample",
]
