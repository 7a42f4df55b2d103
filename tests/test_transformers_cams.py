"""CAMs of Hugging Face ``transformers`` image classifiers, taken as they are (no wrapper, no reshape).

Reference: pytorch-grad-cam 1.5.7 given the logits wrapper of its Hugging Face tutorial and a
hand-written ``reshape_transform`` per family (grid sizes and prefix-token counts written out below, not
computed by the package). Grad-CAM, LayerCAM and XGrad-CAM must match within 1e-4, EigenGrad-CAM per
image up to the sign (the library's SVD sign is arbitrary). Tiny random configs, built locally.
"""

import numpy as np
import pytest
import torch
import transformers as tf
from pytorch_grad_cam import EigenGradCAM, GradCAM, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from cambench_qr.cams import CamEngine, TargetLayer, compute_cams, default_target_layer, postprocess

REFERENCE = {"gradcam": GradCAM, "layercam": LayerCAM, "xgradcam": XGradCAM, "eigengradcam": EigenGradCAM}
TOL = 1e-4
VIT_LIKE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
            "image_size": 32, "patch_size": 8}
DINO = {**VIT_LIKE, "image_size": 28, "patch_size": 7}
SWIN = {"image_size": 32, "patch_size": 4, "embed_dim": 16, "depths": [1, 1], "num_heads": [2, 2],
        "window_size": 4}
STAGED = {"hidden_sizes": [8, 16], "depths": [1, 1]}


def tokens(prefix: int, h: int, w: int):
    """Hand-written reshape: drop ``prefix`` tokens, (B, h*w, C) -> (B, C, h, w)."""
    return lambda t: t[:, prefix:, :].reshape(t.size(0), h, w, t.size(2)).permute(0, 3, 1, 2)


# case: (config class, model class, config kwargs, image side, the layer pytorch-grad-cam gets, reshape)
CASES = {
    "vit": (tf.ViTConfig, tf.ViTForImageClassification, VIT_LIKE, 32,
            lambda m: m.vit.layers[-1].layernorm_before, tokens(1, 4, 4)),
    "vit-48px": (tf.ViTConfig, tf.ViTForImageClassification, VIT_LIKE, 48,
                 lambda m: m.vit.layers[-1].layernorm_before, tokens(1, 6, 6)),
    "deit-distilled": (tf.DeiTConfig, tf.DeiTForImageClassificationWithTeacher, VIT_LIKE, 32,
                       lambda m: m.deit.layers[-1].layernorm_before, tokens(2, 4, 4)),
    "beit": (tf.BeitConfig, tf.BeitForImageClassification, VIT_LIKE, 32,
             lambda m: m.beit.layers[-1].layernorm_before, tokens(1, 4, 4)),
    "dinov2": (tf.Dinov2Config, tf.Dinov2ForImageClassification, DINO, 28,
               lambda m: m.dinov2.encoder.layer[-1].norm1, tokens(1, 4, 4)),
    "dinov2-registers": (tf.Dinov2WithRegistersConfig, tf.Dinov2WithRegistersForImageClassification,
                         {**DINO, "num_register_tokens": 4}, 35,
                         lambda m: m.dinov2_with_registers.encoder.layer[-1].norm1, tokens(5, 5, 5)),
    "swin": (tf.SwinConfig, tf.SwinForImageClassification, SWIN, 32, lambda m: m.swin.layernorm,
             tokens(0, 4, 4)),
    # 36 px: 9x9 patches after padding to 40, then 5x5 after the merge pads to 10x10
    "swin-36px": (tf.SwinConfig, tf.SwinForImageClassification, SWIN, 36, lambda m: m.swin.layernorm,
                  tokens(0, 5, 5)),
    "swinv2": (tf.Swinv2Config, tf.Swinv2ForImageClassification, SWIN, 32, lambda m: m.swinv2.layernorm,
               tokens(0, 4, 4)),
    "convnext": (tf.ConvNextConfig, tf.ConvNextForImageClassification, {**STAGED, "num_stages": 2}, 32,
                 lambda m: m.convnext.encoder.stages[-1], None),
    "convnextv2": (tf.ConvNextV2Config, tf.ConvNextV2ForImageClassification, {**STAGED, "num_stages": 2}, 32,
                   lambda m: m.convnextv2.encoder.stages[-1], None),
    "resnet": (tf.ResNetConfig, tf.ResNetForImageClassification, {**STAGED, "embedding_size": 8}, 32,
               lambda m: m.resnet.encoder.stages[-1], None),
    "regnet": (tf.RegNetConfig, tf.RegNetForImageClassification,
               {**STAGED, "embedding_size": 8, "groups_width": 4}, 32, lambda m: m.regnet.encoder.stages[-1],
               None),
    "efficientnet": (tf.EfficientNetConfig, tf.EfficientNetForImageClassification,
                     {"image_size": 96, "width_coefficient": 0.1, "depth_coefficient": 0.1, "hidden_dim": 128,
                      "initializer_range": 0.4},  # the default 0.02 makes the tiny net's output vanish
                     96, lambda m: m.efficientnet.encoder.top_activation, None),
    "mobilevit": (tf.MobileViTConfig, tf.MobileViTForImageClassification,
                  {"image_size": 96, "hidden_sizes": [16, 16, 16], "num_attention_heads": 2,
                   "neck_hidden_sizes": [8, 8, 16, 16, 16, 32, 64], "initializer_range": 0.2}, 96,
                  lambda m: m.mobilevit.conv_1x1_exp, None),
}


def tiny_model(config_cls, model_cls, kwargs, seed: int = 0, num_labels: int = 3):
    """A random-init model from a tiny config, seeded without touching the global RNG. BatchNorm scales are
    set to 1 (some families draw them from N(0, 0.02), which makes a deep random net's output vanish)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = model_cls(config_cls(num_labels=num_labels, **kwargs))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)
    return model


class HuggingfaceToTensorModelWrapper(torch.nn.Module):
    """pytorch-grad-cam's documented wrapper for Hugging Face models: the output's logits."""

    def __init__(self, model, **kwargs):
        super().__init__()
        self.model, self.kwargs = model, kwargs

    def forward(self, x):
        return self.model(x, **self.kwargs).logits


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    config_cls, model_cls, kwargs, side, layer, reshape = CASES[request.param]
    model = tiny_model(config_cls, model_cls, kwargs)
    images = torch.randn(3, 3, side, side, generator=torch.Generator().manual_seed(7))
    targets = torch.tensor([0, 2, 1])
    ours = compute_cams(model, images, targets, methods=tuple(REFERENCE))
    resized = side != kwargs.get("image_size", side) and request.param.startswith("vit")
    kwargs = {"interpolate_pos_encoding": True} if resized else {}
    wrapper = HuggingfaceToTensorModelWrapper(model, **kwargs)
    return model, wrapper, layer(model), reshape, images, targets, ours


def _reference(case, method) -> np.ndarray:
    _, wrapper, layer, reshape, images, targets, _ = case
    with REFERENCE[method](wrapper, [layer], reshape_transform=reshape) as cam:
        return cam(images, [ClassifierOutputTarget(int(t)) for t in targets])


@pytest.mark.parametrize("method", ["gradcam", "layercam", "xgradcam"])
def test_gradient_methods_match_pytorch_grad_cam(case, method):
    images, ours = case[4], case[6]
    reference = _reference(case, method)
    mine = postprocess(ours[method], tuple(images.shape[-2:])).numpy()
    assert mine.shape == reference.shape
    assert reference.max() > 0.99  # a real, non-empty map is compared
    assert np.abs(mine - reference).max() <= TOL


def test_eigengradcam_matches_pytorch_grad_cam_up_to_sign(case):
    images, ours = case[4], case[6]
    reference = _reference(case, "eigengradcam")
    size = tuple(images.shape[-2:])
    plus = postprocess(ours["eigengradcam"], size).numpy()
    minus = postprocess(-ours["eigengradcam"], size).numpy()
    for b in range(len(images)):
        err = min(np.abs(plus[b] - reference[b]).max(), np.abs(minus[b] - reference[b]).max())
        assert err <= TOL, f"image {b}: {err}"


def test_default_layer_is_the_hand_picked_module(case):
    model, _, layer = case[:3]
    assert default_target_layer(model).module is layer


def test_engine_logits_are_the_models_and_state_is_restored():
    config_cls, model_cls, kwargs, side, _, _ = CASES["vit"]
    model = tiny_model(config_cls, model_cls, kwargs).train()
    images = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    out = CamEngine(model)(images, methods=("gradcam",))
    assert model.training and all(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        expected = model.eval()(images).logits
    torch.testing.assert_close(out.logits, expected)
    assert out.maps["gradcam"].shape == (2, 4, 4)


def test_not_an_image_classifier_is_a_one_line_error():
    text = tf.BertForSequenceClassification(tf.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    with pytest.raises(ValueError, match="BertForSequenceClassification .* not a transformers image"):
        CamEngine(text)
    detector = tf.YolosForObjectDetection(tf.YolosConfig(**{**VIT_LIKE, "image_size": [32, 32]},
                                                         num_detection_tokens=5))
    with pytest.raises(ValueError, match="YolosForObjectDetection .* not a transformers image classifier"):
        compute_cams(detector, torch.randn(1, 3, 32, 32))


def test_unknown_family_says_how_to_pass_a_target_layer():
    model = tf.PoolFormerForImageClassification(tf.PoolFormerConfig(
        num_labels=2, hidden_sizes=[8, 16], depths=[1, 1], num_encoder_blocks=2, patch_sizes=[7, 3],
        strides=[4, 2], padding=[2, 1], pool_size=3, mlp_ratio=2.0))
    with pytest.raises(ValueError, match=r"model type 'poolformer'.*TargetLayer\(module, to_grid\)") as err:
        CamEngine(model)
    assert "\n" not in str(err.value)
    # ... and with an explicit layer it works
    layer = TargetLayer(model.norm, lambda out, hw: out)
    maps = compute_cams(model, torch.randn(2, 3, 32, 32), methods=("gradcam",), target_layer=layer)
    assert maps["gradcam"].shape == (2, 4, 4)


def test_tokens_off_the_grid_are_an_error_not_a_reshape():
    config_cls, model_cls, kwargs, side, _, _ = CASES["swin"]
    model = tiny_model(config_cls, model_cls, kwargs)
    # the embeddings' 8x8 = 64 tokens are not the last stage's 4x4 grid
    with pytest.raises(ValueError, match="64 patch tokens .* do not form the 4x4 grid of a 32x32 input"):
        compute_cams(model, torch.randn(1, 3, side, side), target_layer="swin.embeddings.norm")
    # a named layer on the grid gets the token reshape (the last stage's last block output)
    maps = compute_cams(model, torch.randn(1, 3, side, side), methods=("gradcam",),
                        target_layer="swin.layernorm")
    assert maps["gradcam"].shape == (1, 4, 4)
