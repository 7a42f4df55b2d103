"""Parity of the CAM engine with pytorch-grad-cam 1.5.7 (the independent reference), random timm models.

With ``postprocess(mode="pytorch-grad-cam")`` our maps must equal the library's within 1e-4; the Eigen
methods must equal it per image up to the sign (the library's sign is arbitrary, ours follows a rule).
"""

from functools import partial

import cv2
import numpy as np
import pytest
import timm
import torch
from pytorch_grad_cam import EigenCAM, EigenGradCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

from cambench_qr.cams import METHODS, compute_cams, default_target_layer, postprocess, upsample

REFERENCE = {
    "gradcam": GradCAM,
    "gradcampp": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "hirescam": HiResCAM,
    "eigencam": EigenCAM,
    "eigengradcam": EigenGradCAM,
}
TOL = 1e-4

# (timm name, image size, our target layer name, the module pytorch-grad-cam is given)
CASES = {
    "test_resnet": (96, None, lambda m: m.layer4),
    "test_resnet-layer3": (96, "layer3", lambda m: m.layer3),
    "test_convnext": (128, None, lambda m: m.stages[-1]),
    "resnet18": (96, None, lambda m: m.layer4),
    "test_vit": (160, None, lambda m: m.blocks[-1].norm1),
}


def seeded_model(name: str, seed: int = 0) -> torch.nn.Module:
    """A random-init timm model whose weights come from ``seed`` (the global RNG is left untouched)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return timm.create_model(name, pretrained=False, num_classes=5)


def _reference_maps(model, layer, images, targets, method, reshape=None) -> np.ndarray:
    with REFERENCE[method](model, [layer], reshape_transform=reshape) as cam:
        return cam(images, [ClassifierOutputTarget(int(t)) for t in targets])


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    name = request.param
    size, layer_name, ref_layer = CASES[name]
    model = seeded_model(name.split("-")[0])
    gen = torch.Generator().manual_seed(7)
    images = torch.randn(3, 3, size, size, generator=gen)
    targets = torch.tensor([0, 4, 2])
    reshape = None
    if name == "test_vit":
        grid = size // model.patch_embed.patch_size[0]
        reshape = partial(vit_reshape_transform, height=grid, width=grid)
    ours = compute_cams(model, images, targets, methods=METHODS, target_layer=layer_name)
    return model, ref_layer(model), images, targets, reshape, ours


@pytest.mark.parametrize("method", ["gradcam", "xgradcam", "layercam", "gradcampp", "hirescam"])
def test_gradient_methods_match_reference(case, method):
    model, layer, images, targets, reshape, ours = case
    reference = _reference_maps(model, layer, images, targets, method, reshape)
    mine = postprocess(ours[method], tuple(images.shape[-2:])).numpy()
    assert mine.shape == reference.shape
    assert reference.max() > 0.99  # a real, non-empty map is compared
    assert np.abs(mine - reference).max() <= TOL


@pytest.mark.parametrize("method", ["eigencam", "eigengradcam"])
def test_eigen_methods_match_reference_up_to_sign(case, method):
    model, layer, images, targets, reshape, ours = case
    reference = _reference_maps(model, layer, images, targets, method, reshape)
    size = tuple(images.shape[-2:])
    plus, minus = postprocess(ours[method], size).numpy(), postprocess(-ours[method], size).numpy()
    for b in range(len(images)):
        err = min(np.abs(plus[b] - reference[b]).max(), np.abs(minus[b] - reference[b]).max())
        assert err <= TOL, f"image {b}: {err}"


def test_default_layers_are_the_reference_choices():
    for name, (_, _, ref_layer) in CASES.items():
        if "-" in name:
            continue
        model = seeded_model(name)
        assert default_target_layer(model).module is ref_layer(model)


@pytest.mark.parametrize(("src", "dst"), [((7, 7), (224, 224)), ((7, 5), (100, 61)), ((13, 13), (5, 5)),
                                          ((64, 64), (24, 24)), ((30, 40), (17, 23))])
def test_upsample_matches_cv2_bilinear(src, dst):
    maps = np.random.default_rng(0).random((2, *src), dtype=np.float32)
    expected = np.stack([cv2.resize(m, dst[::-1], interpolation=cv2.INTER_LINEAR) for m in maps])
    assert np.abs(upsample(torch.from_numpy(maps), dst).numpy() - expected).max() < 1e-5


# --- The engine's own methods against their pytorch-grad-cam namesakes run through the engine (``pgc:``),
# on rendered benchmark images: the same raw stage, so the same post-processed map and the same scores.
NAMESAKES = {"gradcam": "pgc:gradcam", "gradcampp": "pgc:gradcamplusplus", "xgradcam": "pgc:xgradcam",
             "layercam": "pgc:layercam", "hirescam": "pgc:hirescam", "eigencam": "pgc:eigencam",
             "eigengradcam": "pgc:eigengradcam"}


def benchmark_batch(size: int, n: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` clean ``standard`` QR rows rendered at ``size`` px: normalised images, parts, module pitch."""
    from cambench_qr.dataset_builder.samples import standard_sample

    rows = [standard_sample(seed, True, size) for seed in range(n)]
    images = torch.stack([torch.from_numpy(r["image"]).permute(2, 0, 1) for r in rows]).float() / 255
    images = (images - 0.5) / 0.25
    parts = torch.stack([torch.from_numpy(r["parts"]) for r in rows])
    return images, parts, torch.tensor([r["module_px"] for r in rows], dtype=torch.float32)


@pytest.fixture(scope="module", params=["test_resnet", "test_vit"])
def namesake_case(request):
    size = {"test_resnet": 96, "test_vit": 160}[request.param]
    model = seeded_model(request.param, seed=3)
    images, parts, module_px = benchmark_batch(size)
    targets = torch.tensor([0, 1, 4, 2])
    out = compute_cams(model, images, targets, methods=[*NAMESAKES, *NAMESAKES.values()])
    return images, parts, module_px, out


@pytest.mark.parametrize("method", list(NAMESAKES))
def test_own_methods_equal_their_library_namesakes_on_benchmark_images(namesake_case, method):
    from cambench_qr.metrics import structure_scores

    images, parts, module_px, out = namesake_case
    size = tuple(images.shape[-2:])
    mine, library = postprocess(out[method], size), postprocess(out[NAMESAKES[method]], size)
    assert library.amax(dim=(1, 2)).min() > 0.99  # real, non-empty maps are compared
    if method.startswith("eigen"):  # the library's sign is arbitrary, ours follows a rule
        flipped = postprocess(-out[NAMESAKES[method]], size)
        err = torch.minimum((mine - library).abs().flatten(1).amax(1),
                            (mine - flipped).abs().flatten(1).amax(1))
        assert err.max() <= TOL
        return
    assert (mine - library).abs().max() <= TOL
    ours = structure_scores(upsample(out[method], size), parts, module_px=module_px, signed=True)
    theirs = structure_scores(upsample(out[NAMESAKES[method]], size), parts, module_px=module_px, signed=True)
    for score in ("fmr", "tmr", "bl", "dts"):
        assert torch.allclose(ours[score], theirs[score], atol=TOL, equal_nan=True), score
