"""The package's registered timm backbone: a ViT with a convolutional stem."""

from __future__ import annotations

import json

import timm
import torch

from cambench_qr.cams import CamEngine
from cambench_qr.harness.backbones import conv_stem
from cambench_qr.harness.models import build_model, load_checkpoint


def test_conv_stem_vit_has_an_8x8_token_cam_grid_at_128_px_and_reloads(tmp_path):
    model = build_model("vit_convstem_tiny", "none", seed=0, model_args={"depth": 2})
    assert len(model.blocks) == 2 and model.num_prefix_tokens == 1
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    out = CamEngine(model)(images, methods=("gradcam", "layercam"))
    assert out.maps["gradcam"].shape == (2, 8, 8)  # 128 px / stride 16
    odd = CamEngine(model)(torch.randn(1, 3, 146, 146), methods=("gradcam",))  # 146 -> 73 -> 37 -> 19 -> 10
    assert odd.maps["gradcam"].shape == (1, 10, 10) and odd.logits.shape == (1, 2)
    timm.models.save_for_hf(model, str(tmp_path), safe_serialization=True)
    assert json.loads((tmp_path / "config.json").read_text())["model_args"]["depth"] == 2
    reloaded, _ = load_checkpoint(tmp_path)
    model.eval()
    assert torch.equal(model(images), reloaded.eval()(images))


def test_conv_stem_halves_the_side_per_layer():
    stem = conv_stem((4, 8, 16))
    assert stem(torch.zeros(1, 3, 64, 64)).shape == (1, 16, 8, 8)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in stem) == 3
