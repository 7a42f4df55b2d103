"""pytorch-grad-cam's CAM classes through the engine (``pgc:<name>``): names, maps, failures, state."""

import numpy as np
import pytest
import timm
import torch
from pytorch_grad_cam import KPCA_CAM, AblationCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from cambench_qr.cams import METHODS, CamEngine, available_methods, check_methods, pgc_methods, postprocess


def _model(name: str = "test_resnet") -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(1)
        return timm.create_model(name, num_classes=3)


def test_names_are_listed_from_the_installed_package():
    import pytorch_grad_cam

    names = pgc_methods()
    for cls in ("ScoreCAM", "AblationCAM", "KPCA_CAM", "FullGrad", "GradCAMElementWise", "ShapleyCAM",
                "FinerCAM", "RandomCAM", "HiResCAM", "EigenGradCAM", "LayerCAM"):
        assert hasattr(pytorch_grad_cam, cls)
        assert "pgc:" + cls.lower().replace("_", "") in names
    assert "pgc:guidedbackpropreluModel".lower() not in names  # not a CAM class
    assert available_methods() == (*METHODS, *names)


def test_unknown_method_is_an_error_listing_the_available_names():
    with pytest.raises(ValueError, match=r"unknown CAM method\(s\) \['pgc:nosuchcam'\].*pgc:\{.*scorecam"):
        check_methods(["gradcam", "pgc:nosuchcam"])
    with pytest.raises(ValueError, match=r"pgc:\{.*kpcacam"):
        CamEngine(_model())(torch.randn(1, 3, 64, 64), methods=("nosuch",))


@pytest.mark.parametrize(("name", "cls"), [("pgc:scorecam", ScoreCAM), ("pgc:ablationcam", AblationCAM),
                                           ("pgc:kpcacam", KPCA_CAM)])
def test_raw_maps_postprocess_to_the_library_output(name, cls):
    """The raw map kept from the library, post-processed like the engine's maps, is what the library
    itself returns for the same model, layer and targets."""
    model = _model()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([2, 0])
    out = CamEngine(model)(images, targets, methods=(name,))
    assert out.failed == {}
    with cls(model, [model.layer4]) as cam:
        reference = cam(images, [ClassifierOutputTarget(int(t)) for t in targets])
    assert reference.max() > 0.99
    assert np.abs(postprocess(out.maps[name], 64).numpy() - reference).max() <= 1e-4


def test_a_method_that_cannot_run_is_reported_while_the_others_run():
    model = _model("resnet18")  # the library's FullGrad cannot pair the bias layers of a timm ResNet
    out = CamEngine(model)(torch.randn(2, 3, 64, 64), methods=("gradcam", "pgc:fullgrad", "pgc:gradcam"))
    assert set(out.maps) == {"gradcam", "pgc:gradcam"}
    assert list(out.failed) == ["pgc:fullgrad"]
    assert out.failed["pgc:fullgrad"].startswith("ValueError: operands could not be broadcast")


def test_library_runs_leave_the_model_as_it_was():
    model = _model()
    model.train()
    model.fc.weight.requires_grad_(False)
    hooks_before = sum(len(m._forward_hooks) for m in model.modules())
    out = CamEngine(model)(torch.randn(2, 3, 64, 64), methods=("pgc:gradcam", "pgc:scorecam", "pgc:fullgrad"))
    assert "pgc:gradcam" in out.maps
    assert all(m.training for m in model.modules())
    assert not model.fc.weight.requires_grad and model.layer1[0].conv1.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert sum(len(m._forward_hooks) for m in model.modules()) == hooks_before


def test_input_resolution_methods_and_vit_reshape():
    model = _model("test_vit")
    methods = ("pgc:fullgrad", "pgc:layercam", "pgc:ablationcam")
    out = CamEngine(model)(torch.randn(2, 3, 160, 160), methods=methods)
    assert out.failed == {}
    assert tuple(out.maps["pgc:fullgrad"].shape) == (2, 160, 160)
    assert tuple(out.maps["pgc:layercam"].shape) == (2, 10, 10) == tuple(out.maps["pgc:ablationcam"].shape)


def test_library_methods_cannot_be_differentiable():
    with pytest.raises(ValueError, match="cannot be differentiable"):
        CamEngine(_model())(torch.randn(1, 3, 64, 64), methods=("pgc:gradcam",), differentiable=True)


def test_methods_option_parses_own_and_library_names():
    from cambench_qr.harness.options import parse_methods

    assert parse_methods(" gradcam, pgc:scorecam ,,gradcam") == ("gradcam", "pgc:scorecam")
    with pytest.raises(ValueError, match="unknown CAM method.*choose from gradcam"):
        parse_methods("gradcam,pgc:scorecamm")


def test_pgc_methods_run_a_transformers_vit_at_another_input_size():
    """A transformers ViT trained at 32 px explained at 48 px: the library method gets the engine's forward
    (logits with interpolated position embeddings) and the engine's token grid, so pgc:gradcam equals the
    engine's own Grad-CAM."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=8, num_labels=2)
    model = ViTForImageClassification(config).eval()
    out = CamEngine(model)(torch.randn(2, 3, 48, 48), methods=("gradcam", "pgc:gradcam"))
    assert out.failed == {}
    assert out.maps["gradcam"].shape == (2, 6, 6)
    torch.testing.assert_close(out.maps["pgc:gradcam"], out.maps["gradcam"], atol=1e-4, rtol=1e-4)
