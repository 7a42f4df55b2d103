"""Backbones this package registers with timm, for training from random init on a CPU.

``vit_convstem_tiny``: a Vision Transformer whose 16x16 patchify is replaced by a convolutional stem, as in
"Early Convolutions Help Transformers See Better" (Xiao et al., 2021): four 3x3 stride-2 convolutions with
BatchNorm and ReLU (stride 16, widths ``stem_widths``), then timm's ``HybridEmbed`` projects each cell of
the stem's grid to a token (1x1; ``ConvStemEmbed`` also knows the grid of input sides that are not
multiples of 16). The rest is timm's ``VisionTransformer`` (pre-norm blocks, a class token or pooled tokens,
learned position embeddings, dynamic image size). A plain ViT trained from scratch on a few thousand images
learns the QR task slowly (a 16 px patchify must learn translation-invariant finder detectors from
scratch); the stem gives it a CNN's locality while every layer after it is a transformer. At 128 px the
token grid, and hence the CAM grid, is 8x8.

Importing this module (every harness entry point does, through ``harness.models``) registers the name, so
``timm.create_model("vit_convstem_tiny")`` and checkpoints saved from it (``timm.create_model("local-dir:
...")``, ``"hf-hub:..."``) load after ``import cambench_qr.harness.backbones``.
"""

from __future__ import annotations

from functools import partial

from timm.layers import HybridEmbed
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import VisionTransformer, _cfg
from torch import nn


class ConvStemEmbed(HybridEmbed):
    """timm's ``HybridEmbed`` over a :func:`conv_stem`, with the token grid of any input size: each
    3x3 stride-2 convolution with padding 1 maps a side ``n`` to ``ceil(n / 2)`` (timm's default assumes
    sides divisible by the stride), so a CAM reads the true grid at every resolution."""

    def dynamic_feat_size(self, img_size: tuple[int, int]) -> tuple[int, int]:
        h, w = img_size
        for layer in self.backbone:
            if isinstance(layer, nn.Conv2d):
                h, w = -(-h // layer.stride[0]), -(-w // layer.stride[1])
        return h, w


def conv_stem(widths: tuple[int, ...] | list[int], in_chans: int = 3, per_stage: int = 1) -> nn.Sequential:
    """``len(widths)`` stages, each of ``per_stage`` 3x3 convolutions (no bias) with BatchNorm and ReLU, the
    first of a stage with stride 2."""
    layers: list[nn.Module] = []
    for width in widths:
        for k in range(per_stage):
            layers += [nn.Conv2d(in_chans, width, 3, stride=2 if k == 0 else 1, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            in_chans = width
    return nn.Sequential(*layers)


default_cfgs = generate_default_cfgs({
    "vit_convstem_tiny.untrained": _cfg(input_size=(3, 128, 128), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                                        num_classes=2),
})


@register_model
def vit_convstem_tiny(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """ViT with a 4-layer convolutional stem (stride 16), embed 128, depth 4, 4 heads, 128 px input."""
    stem_widths = kwargs.pop("stem_widths", (24, 48, 96, 128))
    stem_per_stage = kwargs.pop("stem_per_stage", 1)
    args = {"img_size": 128, "embed_dim": 128, "depth": 4, "num_heads": 4, "mlp_ratio": 4.0,
            "dynamic_img_size": True, **kwargs}
    stem = conv_stem(stem_widths, args.get("in_chans", 3), stem_per_stage)
    return build_model_with_cfg(VisionTransformer, "vit_convstem_tiny", pretrained, patch_size=1,
                                embed_layer=partial(ConvStemEmbed, backbone=stem), **args)

