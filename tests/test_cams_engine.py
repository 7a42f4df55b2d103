"""CAM engine: hand-computed maps, targets, state hygiene, differentiable mode, memory, post-processing."""

import gc
import os

import numpy as np
import pytest
import timm
import torch
from torch import nn

from cambench_qr.cams import (
    METHODS,
    CamEngine,
    TargetLayer,
    compute_cams,
    default_target_layer,
    normalize_maps,
    postprocess,
    principal_projection,
)
from cambench_qr.cams.layers import token_grid


class PoolHead(nn.Module):
    """features = identity on the input (the target layer), logits = W @ mean_ij(features) + b."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.features = nn.Identity()
        self.fc = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(weight)
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.layer4 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer4(self.stem(x)).mean((2, 3)))


def _seeded(factory, seed: int = 0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return factory()


def _images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_maps_match_hand_computed_formulas():
    # logits_c = sum_k W_ck mean_ij A_k(i,j)  =>  G_k(i,j) = W_ck / (h w), the same at every position.
    weight = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    acts = _images(2, 3, 4, 5).abs()
    targets = torch.tensor([0, 1])
    maps = compute_cams(PoolHead(weight), acts, targets, methods=METHODS, target_layer="features")
    grads = weight[targets][:, :, None, None].expand_as(acts) / 20
    w_grad = weight[targets] / 20
    expected = {
        "gradcam": torch.einsum("bc,bchw->bhw", w_grad, acts),
        "hirescam": (grads * acts).sum(1),
        "layercam": (grads.clamp(min=0) * acts).sum(1),
        # sum_ij G A / sum_ij A = G when G is constant over positions
        "xgradcam": torch.einsum("bc,bchw->bhw", w_grad, acts),
    }
    for name, value in expected.items():
        torch.testing.assert_close(maps[name], value, rtol=1e-5, atol=1e-6)
    # Grad-CAM++ with constant G: a = 1 / (2 + S G), w = ReLU(G) * hw * a
    s = acts.sum((2, 3))
    alpha = torch.where(w_grad != 0, w_grad**2 / (2 * w_grad**2 + s * w_grad**3 + 1e-6), 0)
    w_pp = w_grad.clamp(min=0) * 20 * alpha
    expected_pp = torch.einsum("bc,bchw->bhw", w_pp, acts)
    torch.testing.assert_close(maps["gradcampp"], expected_pp, rtol=1e-4, atol=1e-6)


def test_principal_projection_matches_float64_svd_and_sign_rule():
    threads = torch.get_num_threads()
    for shape in [(3, 16, 3, 3), (3, 4, 6, 5)]:  # h*w <= C and h*w > C branches
        feats = _images(*shape, seed=1)
        torch.set_num_threads(2)  # the eigen-decomposition runs on one thread, then restores the count
        try:
            proj = principal_projection(feats).flatten(1).double()
            assert torch.get_num_threads() == 2
        finally:
            torch.set_num_threads(threads)
        for b in range(shape[0]):
            x = feats[b].flatten(1).T.double().numpy()
            x = x - x.mean(0)
            _, _, vt = np.linalg.svd(x, full_matrices=False)
            ref = torch.from_numpy(x @ vt[0])
            sign = 1.0 if float(ref @ torch.from_numpy(x.sum(1))) >= 0 else -1.0
            torch.testing.assert_close(proj[b], sign * ref, rtol=1e-4, atol=1e-4)


def test_principal_projection_of_rank_one_features_is_the_spatial_pattern():
    pattern = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 9.0]])
    channels = torch.tensor([0.5, 2.0, 1.0, 0.25])  # all positive: the channel sum is the pattern itself
    feats = (channels[:, None, None] * pattern)[None]
    proj = principal_projection(feats)[0]
    centred = pattern - pattern.mean()
    expected = centred * channels.norm()  # s_1 u_1 of (pattern - mean) outer channels
    torch.testing.assert_close(proj, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(principal_projection(-feats)[0], -expected, rtol=1e-4, atol=1e-4)


def test_batch_images_are_independent_and_targets_default_to_prediction():
    model = _seeded(TinyCNN)
    images = _images(4, 3, 16, 16)
    out = CamEngine(model)(images, methods=METHODS)
    model.eval()
    with torch.no_grad():
        logits = model(images)
    torch.testing.assert_close(out.logits, logits)
    assert torch.equal(out.targets, logits.argmax(1))
    for b in range(4):
        alone = compute_cams(model, images[b : b + 1], out.targets[b : b + 1], methods=METHODS)
        for name in METHODS:
            torch.testing.assert_close(out.maps[name][b : b + 1], alone[name], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("targets", "message"),
    [([0, 1, 2], "3 targets for a batch of 2"), ([0.0, 1.0], "integer"), ([0, 3], r"\[0, 3\)"),
     ([[0, 1]], "1-D")],
)
def test_bad_targets_raise(targets, message):
    with pytest.raises(ValueError, match=message):
        compute_cams(_seeded(TinyCNN), _images(2, 3, 8, 8), torch.tensor(targets))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_pixels_name_the_image_not_an_eigh_failure(bad):
    # A NaN pixel used to surface as "linalg.eigh failed to converge" from the Eigen methods.
    images = _images(3, 3, 16, 16)
    images[1, 2, 5, 7] = bad
    for methods in (("eigencam", "eigengradcam"), ("gradcam",)):
        with pytest.raises(ValueError, match=r"images \[1\] of the batch contain NaN or inf pixels"):
            compute_cams(_seeded(TinyCNN), images, methods=methods)


@pytest.mark.parametrize(("images", "message"), [
    (torch.zeros(3, 8, 8), r"\(B, C, H, W\) tensor, got \(3, 8, 8\)"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "floating-point"),
])
def test_bad_images_raise(images, message):
    with pytest.raises(ValueError, match=message):
        compute_cams(_seeded(TinyCNN), images)


def test_bad_methods_and_layers_raise():
    model = _seeded(TinyCNN)
    with pytest.raises(ValueError, match="unknown CAM method"):
        compute_cams(model, _images(1, 3, 8, 8), methods=("gradcam", "scorecam"))
    with pytest.raises(ValueError, match="no submodule 'layer9'"):
        CamEngine(model, "layer9")
    with pytest.raises(ValueError, match="target_layer"):
        default_target_layer(nn.Sequential(nn.Conv2d(3, 4, 3)))
    with pytest.raises(ValueError, match=r"expected \(B, C, h, w\)"):
        compute_cams(model, _images(1, 3, 8, 8), target_layer="fc")


def test_target_layer_running_twice_raises():
    class SharedAct(TinyCNN):
        def forward(self, x):
            return self.fc(self.layer4[1](self.layer4(self.stem(x))).mean((2, 3)))

    model = _seeded(SharedAct)
    with pytest.raises(ValueError, match="ran 2 times"):
        compute_cams(model, _images(1, 3, 8, 8), target_layer="layer4.1")


def _state(model: nn.Module) -> tuple[list[bool], list[bool], int]:
    hooks = sum(len(m._forward_hooks) for m in model.modules())
    return [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()], hooks


def test_state_restored_after_success_and_exception():
    model = _seeded(TinyCNN)
    model.train()
    model.stem[1].eval()  # a mixed train/eval state must come back as it was
    model.stem[0].weight.requires_grad_(False)
    before = _state(model)
    out = compute_cams(model, _images(2, 3, 8, 8))
    assert _state(model) == before
    assert all(not m.requires_grad for m in out.values())
    assert all(p.grad is None for p in model.parameters())  # no parameter gradients computed

    def broken_grid(output, image_hw):
        raise IndexError("bad reshape")  # pytorch-grad-cam swallows IndexError in __exit__; we must not

    with pytest.raises(IndexError, match="bad reshape"):
        CamEngine(model, TargetLayer(model.layer4, broken_grid))(_images(2, 3, 8, 8))
    assert _state(model) == before
    with pytest.raises(ValueError):
        compute_cams(model, _images(2, 3, 8, 8), torch.tensor([0]))
    assert _state(model) == before


def test_differentiable_mode_backpropagates_into_layer4():
    model = _seeded(TinyCNN)
    model.train()
    model.stem.requires_grad_(False)
    targets = torch.tensor([0, 1, 2, 0])
    out = CamEngine(model)(_images(4, 3, 16, 16), targets, methods=METHODS, differentiable=True)
    assert model.training  # differentiable mode leaves the mode to the training loop
    loss = sum(normalize_maps(m, "sum").nan_to_num()[:, :2].sum() for m in out.maps.values())
    loss = loss + nn.functional.cross_entropy(out.logits, out.targets)
    loss.backward()
    assert model.layer4[0].weight.grad is not None and model.layer4[0].weight.grad.abs().sum() > 0
    assert model.fc.weight.grad.abs().sum() > 0
    assert model.stem[0].weight.grad is None
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def _live_tensors() -> int:
    return sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects())


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux) to read the RSS")
def test_no_memory_growth_over_1000_batches():
    model = _seeded(TinyCNN)
    engine = CamEngine(model)
    images = _images(4, 3, 32, 32)  # layer4 activation: 4 x 16 x 16 x 16 floats = 64 KiB per batch
    for _ in range(50):
        engine(images)
    rss = _rss_bytes()
    tensors = _live_tensors()
    for _ in range(1000):
        engine(images)
    assert _live_tensors() <= tensors
    assert _rss_bytes() - rss < 16 * 2**20  # a leaked activation per batch would add 64 MiB
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_works_inside_no_grad_and_inference_mode():
    model = _seeded(TinyCNN)
    images = _images(2, 3, 8, 8)
    expected = compute_cams(model, images, methods=METHODS)
    with torch.no_grad():
        inside_no_grad = compute_cams(model, images, methods=METHODS)
    with torch.inference_mode():
        inside_inference = compute_cams(model, images.clone(), methods=METHODS)
    for name in METHODS:
        torch.testing.assert_close(inside_no_grad[name], expected[name])
        torch.testing.assert_close(inside_inference[name], expected[name])
    wrapped = nn.DataParallel(model)
    assert default_target_layer(wrapped).module is model.layer4
    torch.testing.assert_close(compute_cams(wrapped, images)["gradcam"], expected["gradcam"])


def test_default_layers_and_token_grid():
    effnet = _seeded(lambda: timm.create_model("test_efficientnet", pretrained=False, num_classes=2))
    assert default_target_layer(effnet).module is effnet.bn2
    vit = _seeded(lambda: timm.create_model("test_vit", pretrained=False, num_classes=2))
    layer = default_target_layer(vit)
    assert layer.module is vit.blocks[-1].norm1
    tokens = torch.arange(2 * 26 * 3, dtype=torch.float32).reshape(2, 26, 3)  # 1 class token + 5x5 patches
    grid = token_grid(vit)(tokens, (80, 80))  # patch 16 -> 5x5
    assert grid.shape == (2, 3, 5, 5)
    assert torch.equal(grid[1, 2, 0, 1], tokens[1, 1 + 1, 2])  # token 1 + row 0 * 5 + col 1, channel 2
    with pytest.raises(ValueError, match="do not form the 4x4 grid"):
        token_grid(vit)(tokens, (64, 64))
    maps = compute_cams(vit, _images(2, 3, 160, 160), methods=("gradcam", "eigencam"))
    assert maps["gradcam"].shape == (2, 10, 10)


def test_normalize_and_postprocess():
    maps = torch.tensor([[[1.0, -2.0], [3.0, 0.0]], [[0.0, 0.0], [0.0, -1.0]]])
    torch.testing.assert_close(normalize_maps(maps, "sum")[0], torch.tensor([[0.25, 0.0], [0.75, 0.0]]))
    torch.testing.assert_close(normalize_maps(maps, "minmax")[0], torch.tensor([[1 / 3, 0.0], [1.0, 0.0]]))
    assert normalize_maps(maps, "sum")[1].isnan().all()  # an empty map is not silently zero
    up = postprocess(maps[:1], 4, mode="sum")
    assert up.shape == (1, 4, 4) and abs(float(up.sum()) - 1) < 1e-6
    ref = postprocess(maps[:1], (2, 2))
    torch.testing.assert_close(ref[0], torch.tensor([[1 / 3, 0.0], [1.0, 0.0]]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown post-processing mode"):
        postprocess(maps, 4, mode="gaussian")
    with pytest.raises(ValueError, match="unknown normalisation mode"):
        normalize_maps(maps, "l2")
    with pytest.raises(ValueError, match="float tensor"):
        normalize_maps(maps[0], "sum")
