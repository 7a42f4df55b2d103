"""The structure metric core against hand-computed values and independent references."""

import math
import threading

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from sklearn.metrics import roc_auc_score

from cambench_qr.metrics import (
    SCORE_NAMES,
    aggregate,
    distance_to,
    normalized_mass,
    paper_timing_mask,
    prepare_parts,
    structure_scores,
)
from cambench_qr.metrics.backends.numba_cpu import sort_row_keys
from cambench_qr.metrics.backends.torch_batched import sorted_keys
from cambench_qr.parts import DATA, FINDER, FORMAT_INFO, NUM_PARTS, QUIET_ZONE, SEPARATOR, TIMING

# A 4x4 part map and saliency small enough to score by hand (ids: 2 finder, 4 timing, 8 data, 0/1 out).
PARTS_4 = torch.tensor([[2, 2, 0, 0],
                        [2, 2, 0, 0],
                        [4, 4, 8, 1],
                        [8, 8, 8, 1]], dtype=torch.uint8)[None]
SAL_4 = torch.tensor([[1., 0, 0, 0],
                      [0, 1, 0, 0],
                      [0, 2, 0, 0],
                      [0, 0, 0, 4]])[None]


def close(actual, expected, rtol: float = 1.3e-6, atol: float = 1e-5, msg: str = "") -> None:
    """allclose with NaN == NaN (numpy's: torch.testing's first call costs seconds of imports)."""
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol, equal_nan=True,
                               err_msg=msg)


def qr_module_parts(n: int = 21) -> np.ndarray:
    """Module-space part map of a version-(n-17)/4 symbol's function patterns (alignment omitted)."""
    m = np.full((n, n), DATA, np.uint8)
    for r, c in ((0, 0), (0, n - 7), (n - 7, 0)):
        m[r:r + 7, c:c + 7] = FINDER
    m[7, :8] = m[:8, 7] = SEPARATOR
    m[7, n - 8:] = m[:8, n - 8] = SEPARATOR
    m[n - 8, :8] = m[n - 8:, 7] = SEPARATOR
    m[8, :9] = m[:9, 8] = FORMAT_INFO
    m[8, n - 8:] = m[n - 7:, 8] = FORMAT_INFO
    m[n - 8, 8] = FORMAT_INFO
    m[6, 8:n - 8] = m[8:n - 8, 6] = TIMING
    return m


def random_batch(seed: int, batch: int = 6, h: int = 23, w: int = 29, levels: int | None = None):
    g = torch.Generator().manual_seed(seed)
    sal = torch.rand(batch, h, w, generator=g)
    if levels:  # force ties
        sal = torch.round(sal * levels) / levels + 0.01
    parts = torch.randint(0, NUM_PARTS, (batch, h, w), generator=g).to(torch.uint8)
    return sal, parts


def test_hand_computed_4x4():
    s = structure_scores(SAL_4, PARTS_4, module_px=2.0, pointing_tolerance=0)
    got = {k: float(v[0]) for k, v in s.items()}
    assert got["fmr"] == pytest.approx(2 / 8)
    assert got["tmr"] == pytest.approx(2 / 8)
    assert got["bl"] == pytest.approx(4 / 8)  # box = {2,4,8}: 1+1+2 of 8
    assert got["mass_quiet_zone"] == pytest.approx(4 / 8)
    assert got["lift_finder"] == pytest.approx((2 / 8) / (4 / 16))
    assert got["lift_timing"] == pytest.approx((2 / 8) / (2 / 16))
    # Half the mass sits at (3,3); its nearest structure pixel is (2,1): distance sqrt(5).
    assert got["dts"] == pytest.approx(0.5 * math.sqrt(5) / math.sqrt(32))
    assert got["dts_modules"] == pytest.approx(0.5 * math.sqrt(5) / 2)
    # Top-4 pixels: 4 (quiet zone), 2 (timing), 1, 1 (finder) -> 2 of 4 in the finder.
    assert got["rank_finder"] == pytest.approx(2 / 4)
    # Top-6 (structure has 6 px): 4, 2, 1, 1 (3 in structure), then 2 places among the twelve tied
    # zeros, of which (0,1), (1,0), (2,0) are structure -> (3 + 2 * 3/12) hits of 6.
    assert got["rank_structure"] == pytest.approx((3 + 2 * 3 / 12) / 6)
    assert got["pointing_finder"] == 0 and got["pointing_box"] == 0  # the maximum is in the quiet zone
    assert got["chance_pointing_box"] == pytest.approx(10 / 16)  # box: 4 finder + 2 timing + 4 data
    near = structure_scores(SAL_4, PARTS_4, pointing_tolerance=1.0)
    assert float(near["pointing_box"][0]) == 1  # (3,2) is data, one pixel away
    assert float(near["pointing_finder"][0]) == 0  # nearest finder pixel is sqrt(8) away
    assert float(structure_scores(SAL_4, PARTS_4, pointing_tolerance=2.9)["pointing_finder"][0]) == 1
    assert math.isnan(float(structure_scores(SAL_4, PARTS_4)["dts_modules"][0]))  # no module_px


def test_partition_and_scale_invariance():
    sal, parts = random_batch(1)
    s = structure_scores(sal, parts)
    total = sum(s[f"mass_{name}"] for name in ("background", "quiet_zone", "finder", "separator", "timing",
                                                "alignment", "format_info", "version_info", "data",
                                                "distractor"))
    close(total, torch.ones_like(total), rtol=0, atol=1e-6)
    close(s["mass_box"] + s["mass_outside"], torch.ones_like(total), rtol=0, atol=1e-6)
    for normalize in ("sum", "minmax"):
        a = structure_scores(sal, parts, normalize=normalize, module_px=3.0)
        b = structure_scores(sal * 7.25, parts, normalize=normalize, module_px=3.0)
        for name in SCORE_NAMES:
            close(a[name], b[name], rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("mask_mode", ["standard", "paper"])
def test_uniform_map_scores_chance(mask_mode):
    _, parts = random_batch(2)
    s = structure_scores(torch.full(parts.shape, 0.3), parts, module_px=2.5, mask_mode=mask_mode,
                         pointing_tolerance=1.5)
    for name in SCORE_NAMES:
        # p is float32: "exactly" up to its rounding
        close(s[name], s[f"chance_{name}"], rtol=1e-6, atol=1e-9,
                                   msg=name)
    assert torch.allclose(s["lift_finder"], torch.ones(len(parts), dtype=torch.float64))


def test_dts_against_scipy_edt():
    empty_and_one = torch.zeros(2, 3, 4, dtype=torch.bool)
    empty_and_one[1, 0, 0] = True
    d = distance_to(empty_and_one)
    assert torch.isinf(d[0]).all() and float(d[1, 2, 3]) == pytest.approx(math.hypot(2, 3))
    sal, parts = random_batch(3, h=31, w=17)
    parts[parts == TIMING] = DATA
    parts[:, 5:9, 3:6] = FINDER  # a blob so the distances are not all tiny
    s = structure_scores(sal, parts, module_px=torch.arange(1.0, 7.0))
    for b in range(len(sal)):
        d = ndi.distance_transform_edt(parts[b].numpy() != FINDER)
        p = sal[b].double().numpy() / sal[b].double().sum().item()
        assert float(s["dts"][b]) == pytest.approx((p * d).sum() / math.hypot(31, 17), rel=1e-6)
        assert float(s["dts_modules"][b]) == pytest.approx((p * d).sum() / (b + 1), rel=1e-6)
        assert float(s["chance_dts"][b]) == pytest.approx(d.mean() / math.hypot(31, 17), rel=1e-6)


@pytest.mark.parametrize("shape,density", [((1, 1), 1.0), ((1, 9), 0.2), ((9, 1), 0.2), ((5, 8), 0.1),
                                           ((64, 47), 0.002), ((40, 40), 0.5), ((33, 70), 0.0)])
def test_distance_transform_against_scipy(shape, density):
    """The compiled exact EDT equals scipy's on random masks of every shape class (one pixel, one row,
    one column, sparse, dense), a mask with one pixel in a corner, and an empty mask (inf)."""
    g = torch.Generator().manual_seed(shape[0] * 100 + shape[1])
    mask = torch.rand(4, *shape, generator=g) < density
    mask[1] = False
    mask[1, -1, 0] = True  # a single pixel: distances up to the far corner
    d = distance_to(mask)
    for b in range(len(mask)):
        if not mask[b].any():
            assert torch.isinf(d[b]).all()
            continue
        expected = ndi.distance_transform_edt(~mask[b].numpy())
        np.testing.assert_allclose(d[b].numpy(), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("levels", [None, 3])
def test_roc_auc_against_sklearn(levels):
    sal, parts = random_batch(4, levels=levels)
    s = structure_scores(sal, parts)
    for b in range(len(sal)):
        x = sal[b].numpy().ravel()
        for region, ids in (("structure", [FINDER, TIMING]), ("box", list(range(2, 9)))):
            y = np.isin(parts[b].numpy().ravel(), ids)
            assert float(s[f"roc_auc_{region}"][b]) == pytest.approx(roc_auc_score(y, x), abs=1e-12)


def paper_slc_auc(sal: np.ndarray, mask: np.ndarray) -> float:
    """docs/paper.md s.4, written out as the scripts do: min-max, 31 quantiles, mean precision."""
    s = (sal - sal.min()) / (sal.max() - sal.min() + 1e-7)
    fractions = []
    for q in np.linspace(0, 0.99, 31):
        kept = (s >= np.quantile(s, q)).astype(np.float64)
        fractions.append((kept * mask).sum() / (kept.sum() + 1e-6))
    return float(np.mean(fractions))


@pytest.mark.parametrize("levels", [None, 4])
def test_auc_against_paper_loop(levels):
    sal, parts = random_batch(5, levels=levels)
    s = structure_scores(sal, parts, normalize="minmax", mask_mode="paper", module_px=1.0)
    masks = paper_mask_dict(parts)
    for b in range(len(sal)):
        for score, region in (("auc_misf", "finder"), ("auc_mist", "timing"), ("auc_bg", "outside")):
            ref = paper_slc_auc(sal[b].numpy().astype(np.float64), masks[region][b])
            assert float(s[score][b]) == pytest.approx(ref, abs=1e-6), score


@pytest.mark.parametrize("kernels", ["cpu", "torch"])
def test_auc_thresholds_between_adjacent_float32_values(monkeypatch, kernels):
    """Maps of two adjacent float32 values a < b (m pixels of a): a quantile threshold between them is
    rounded up to b, never down to a, so it keeps only the b pixels (np.quantile's float64 reference)."""
    if kernels == "torch":
        torch_kernels(monkeypatch)
    a = np.float32(0.5)
    b = np.nextafter(a, np.float32(1))
    g = np.random.default_rng(3)
    n = 7 * 9
    sal = np.stack([np.where(np.arange(n) < m, a, b) for m in range(1, n)]).astype(np.float32)
    parts = np.where(g.random(sal.shape) < 0.5, FINDER, 0).astype(np.uint8)
    s = structure_scores(torch.from_numpy(sal).view(-1, 7, 9), torch.from_numpy(parts).view(-1, 7, 9))
    for row in range(len(sal)):
        fractions = []
        for q in np.linspace(0, 0.99, 31):
            kept = sal[row] >= np.quantile(sal[row].astype(np.float64), q)
            fractions.append((kept & (parts[row] == FINDER)).sum() / kept.sum())
        assert float(s["auc_misf"][row]) == pytest.approx(np.mean(fractions), abs=1e-12), row


def paper_mask_dict(parts: torch.Tensor) -> dict[str, np.ndarray]:
    timing = paper_timing_mask(parts, torch.ones(len(parts))).numpy()
    box = np.isin(parts.numpy(), list(range(2, 9)))
    return {"finder": parts.numpy() == FINDER, "timing": timing, "outside": ~box}


@pytest.mark.parametrize("n,scale", [(21, 4), (25, 3)])
def test_paper_timing_mask_matches_paper_formula(n, scale):
    modules = qr_module_parts(n)
    parts = torch.from_numpy(np.kron(modules, np.ones((scale, scale), np.uint8)))[None]
    paper = np.zeros((n, n), bool)  # row 6 and column 6, minus the three finder blocks
    paper[6, :] = paper[:, 6] = True
    for r, c in ((0, 0), (0, n - 7), (n - 7, 0)):
        paper[r:r + 7, c:c + 7] = False
    assert paper.sum() == 2 * (n - 14)
    expected = np.kron(paper, np.ones((scale, scale), bool))
    for module_px in (torch.tensor([float(scale)]), None, torch.tensor([float("nan")])):  # NaN: estimated
        got = paper_timing_mask(parts, module_px)[0].numpy()
        np.testing.assert_array_equal(got, expected)
    s = structure_scores(torch.ones(parts.shape), parts, mask_mode="paper")
    assert float(s["chance_tmr"][0]) == pytest.approx(2 * (n - 14) / n**2)
    assert float(s["chance_fmr"][0]) == pytest.approx(147 / n**2)


@pytest.mark.parametrize("step", [2, 3, 5])
def test_distance_transform_on_lattices_against_scipy(step):
    """Targets on a regular lattice, and a rendered symbol's structure: many parabolas of the envelope
    meet at one point (often a pixel centre), where rounding could pick either; the distances stay exact."""
    lattice = torch.zeros(2, 37, 41, dtype=torch.bool)
    lattice[0, ::step, ::step] = True
    lattice[1, 1::step, 2::2 * step] = True
    symbol = torch.from_numpy(np.kron(np.pad(qr_module_parts(), 4, constant_values=QUIET_ZONE),
                                      np.ones((step, step), np.uint8)))
    masks = [*lattice, (symbol == FINDER) | (symbol == TIMING)]
    for mask in masks:
        expected = ndi.distance_transform_edt(~mask.numpy())
        np.testing.assert_allclose(distance_to(mask[None])[0].numpy(), expected, rtol=1e-6, atol=0)


def test_rank_and_pointing_ties():
    parts = torch.tensor([[2, 2, 8, 8, 0, 0]], dtype=torch.uint8)[:, None].expand(1, 2, 6).contiguous()
    sal = torch.tensor([[3., 1, 1, 1, 1, 0], [3, 1, 1, 1, 1, 0]])[None]
    s = structure_scores(sal, parts)
    # finder has 4 px: two 3s are in it; the other 2 places go to the eight tied 1s, 2 of which are finder.
    assert float(s["rank_finder"][0]) == pytest.approx((2 + 2 * 2 / 8) / 4)
    # two pixels share the maximum: one in the finder, one outside the box -> half a hit each.
    sal2 = torch.tensor([[3., 0, 0, 0, 3, 0], [0, 0, 0, 0, 0, 0]])[None]
    s2 = structure_scores(sal2, parts)
    assert float(s2["pointing_finder"][0]) == 0.5 and float(s2["pointing_box"][0]) == 0.5


def test_empty_masks_and_zero_maps_are_nan_and_counted():
    sal, parts = random_batch(6, batch=4)
    parts[1] = 0  # a negative image: no symbol at all
    sal[2] = 0  # an all-zero map
    s = structure_scores(sal, parts, module_px=2.0)
    assert s["valid"].tolist() == [True, True, False, True]
    for name in ("fmr", "tmr", "bl", "auc_misf", "auc_bg", "dts", "rank_box", "roc_auc_box", "pointing_box"):
        assert torch.isnan(s[name][1]) and torch.isnan(s[name][2]), name
        assert torch.isfinite(s[name][[0, 3]]).all(), name
    rows = aggregate({k: v for k, v in s.items()}, ["fmr", "mass_data"], n_boot=50)
    assert [(r["score"], r["n"], r["n_invalid"]) for r in rows] == [("fmr", 2, 2), ("mass_data", 3, 1)]


def test_bad_input_is_a_clear_error():
    sal, parts = random_batch(7, batch=3)
    with pytest.raises(ValueError, match="one shape"):
        structure_scores(sal, parts[:, :, :-1])
    bad = sal.clone()
    bad[2, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="sample 2 holds non-finite"):
        structure_scores(bad, parts)
    bad_parts = parts.clone()
    bad_parts[1, 3, 3] = 12
    with pytest.raises(ValueError, match="parts sample 1 holds id 12"):
        structure_scores(sal, bad_parts)
    with pytest.raises(ValueError, match="integer"):
        structure_scores(sal, parts.float())
    with pytest.raises(ValueError, match="sample 0 has negative values.*signed=True"):
        structure_scores(sal - 0.5, parts)
    signed = structure_scores(sal - 0.5, parts, signed=True)
    relu = structure_scores((sal - 0.5).clamp_min(0), parts)
    close(signed["fmr"], relu["fmr"])
    with pytest.raises(ValueError, match="sample 1 peaks at.*rescale"):
        structure_scores(sal * torch.tensor([1.0, 1e35, 1.0])[:, None, None], parts)
    with pytest.raises(ValueError, match="module_px"):
        structure_scores(sal, parts, module_px=[1.0, 2.0])
    with pytest.raises(ValueError, match="module_px"):
        structure_scores(sal, parts, module_px=[1.0, -2.0, 3.0])
    unknown = structure_scores(sal, parts, module_px=[2.0, float("nan"), 4.0])["dts_modules"]
    assert torch.isnan(unknown[1]) and torch.isfinite(unknown[[0, 2]]).all()
    with pytest.raises(ValueError, match="normalize"):
        structure_scores(sal, parts, normalize="max")
    with pytest.raises(ValueError, match="mask_mode"):
        structure_scores(sal, parts, mask_mode="spec")


def test_standard_mode_on_a_rendered_symbol():
    modules = np.pad(qr_module_parts(21), 4, constant_values=QUIET_ZONE)
    parts = torch.from_numpy(np.kron(modules, np.ones((3, 3), np.uint8)))[None]
    s = structure_scores(torch.ones(parts.shape), parts)
    assert float(s["chance_fmr"][0]) == pytest.approx(147 / 29**2)
    assert float(s["chance_tmr"][0]) == pytest.approx(2 * (21 - 16) / 29**2)  # true timing: 2(N-16)
    assert float(s["chance_bl"][0]) == pytest.approx(1 - 21**2 / 29**2)


def test_bootstrap_ci_is_seeded_and_shrinks():
    rng = np.random.default_rng(0)
    values = rng.normal(size=400)
    group = ["small"] * 40 + ["large"] * 360
    rows = aggregate({"x": values, "g": group}, ["x"], ["g"], n_boot=500, seed=3)
    again = aggregate({"x": values, "g": group}, ["x"], ["g"], n_boot=500, seed=3)
    other = aggregate({"x": values, "g": group}, ["x"], ["g"], n_boot=500, seed=4)
    assert rows == again and rows != other
    small, large = rows
    for r in rows:
        assert r["ci_low"] < r["mean"] < r["ci_high"]
    assert small["g"] == "small" and small["n"] == 40 and large["n"] == 360
    assert (large["ci_high"] - large["ci_low"]) < (small["ci_high"] - small["ci_low"]) / 2
    assert small["mean"] == pytest.approx(values[:40].mean()) and small["std"] == pytest.approx(
        values[:40].std(ddof=1))
    # A 95% CI of the mean of N(0,1) samples is about +-1.96/sqrt(n) wide.
    assert large["ci_high"] - large["ci_low"] == pytest.approx(2 * 1.96 / math.sqrt(360), rel=0.2)


def torch_kernels(monkeypatch) -> None:
    """Run the batched torch kernels (every device but the CPU) on CPU tensors."""
    import cambench_qr.metrics._rows as rows_module

    monkeypatch.setattr(rows_module, "numpy_kernels", lambda device: False)


def cpu_sorted_keys(w_unit: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``sort_row_keys`` (the CPU path) of every row, as int32 keys."""
    bits = w_unit.contiguous().numpy().view(np.uint32)
    keys = np.empty(bits.shape, np.uint32)
    for row in range(len(keys)):
        sort_row_keys(bits[row], classes[row].numpy(), keys[row])
    return torch.from_numpy(keys.view(np.int32))


def test_cpu_and_torch_sorts_agree():
    sal, parts = random_batch(8, levels=5)
    w_unit = sal / 2  # values in [0, 1)
    classes = torch.randint(0, 4, sal.flatten(1).shape, dtype=torch.uint8)
    by_numpy = cpu_sorted_keys(w_unit.flatten(1), classes)
    by_torch = sorted_keys(w_unit.flatten(1), classes)
    assert torch.equal(by_numpy, by_torch)
    bits = ((by_torch.long() + 2**31) >> 2).int()
    assert torch.equal(bits.view(torch.float32), torch.sort(w_unit.flatten(1), dim=1).values)


def test_rank_statistics_of_the_cpu_kernel_and_torch_against_brute_force():
    """Tied maps, one set with dyadic values (neighbouring distinct values whose keys share every low bit
    but the class bits), random classes: the compiled row kernel and the batched torch kernels give the
    same cut positions, and both give the brute-force class counts below them, position sums and ties
    across classes (sum over runs of equal values of #(class < c) #(class >= c))."""
    from cambench_qr.metrics import cpu_kernels
    from cambench_qr.metrics.backends.contract import quantile_positions, query_offsets
    from cambench_qr.metrics.backends.torch_batched import Ranked, _block_sums, rank_stats

    sal, _ = random_batch(9, levels=3)
    g = torch.Generator().manual_seed(9)
    dyadic = torch.randint(0, 4, sal.shape, generator=g) / 8
    w_unit = torch.cat([sal / 2, dyadic]).flatten(1)
    batch, n = w_unit.shape
    classes = torch.randint(0, 4, (batch, n), dtype=torch.uint8, generator=g)
    top_k = torch.randint(0, n + 1, (batch, 3), generator=g)
    top_k[0] = torch.tensor([0, 1, n])  # empty, one pixel, every pixel
    keys = sorted_keys(w_unit, classes)
    block = 29  # n = 23 * 29
    torch_stats = rank_stats(Ranked(keys, block, _block_sums(keys, block)), top_k)
    groups = ("auc_kept", "cut_first", "cut_end", "top")
    torch_positions = torch.cat([getattr(torch_stats, g).at for g in groups], 1)
    torch_below = {r: torch.cat([getattr(torch_stats, g).below[r] for g in groups], 1)
                   for r in ("box", "structure", "finder")}
    offsets = np.array(list(query_offsets(3).values()))
    q, low = (x.numpy() for x in quantile_positions(n, keys.device))
    for row in range(batch):
        positions = np.empty(len(q) + 7, np.int64)
        counts, sums = np.empty((len(positions), 3), np.int64), np.empty(4, np.int64)
        cpu_kernels.rank_stats(keys[row].numpy(), q, low, top_k[row].numpy(), offsets, positions, counts,
                               sums)
        assert np.array_equal(positions, torch_positions[row].numpy()), row
        sorted_class = (keys[row].numpy() & 3).astype(np.int64)
        value = keys[row].numpy() >> 2
        for c, region in enumerate(("box", "structure", "finder"), start=1):
            prefix = np.concatenate([[0], np.cumsum(sorted_class >= c)])
            assert np.array_equal(counts[:, c - 1], prefix[positions]), (row, region)
            assert torch.equal(torch_below[region][row], torch.from_numpy(prefix[positions]).double())
        for c, region in enumerate(("box", "structure"), start=1):
            position_sum = np.flatnonzero(sorted_class >= c).sum()
            pairs = sum(int((sorted_class[value == v] < c).sum()) * int((sorted_class[value == v] >= c).sum())
                        for v in np.unique(value))
            assert (sums[c - 1], sums[c + 1]) == (position_sum, pairs), (row, region)
            assert float(torch_stats.position_sum[region][row]) == position_sum
            assert float(torch_stats.tied_pairs[region][row]) == pairs
    assert (torch_stats.tied_pairs["structure"] > 0).any()  # the maps do tie across classes


def test_large_and_wide_maps_against_references():
    """More than 2**16 pixels, a long row, and a pixel count whose largest small divisor is 1 (prime)."""
    from cambench_qr.metrics.backends.contract import block_length

    assert block_length(224 * 224) == 64 and block_length(3 * 5000) == 60 and block_length(7 * 11) == 11
    g = torch.Generator().manual_seed(9)
    for shape in ((1, 260, 270), (1, 3, 5000), (1, 1, 4999)):
        sal = torch.rand(shape, generator=g) ** 4
        sal[sal < 0.2] = 0  # a large tied run
        parts = torch.randint(0, NUM_PARTS, shape, generator=g).to(torch.uint8)
        s = structure_scores(sal, parts)
        y = np.isin(parts[0].numpy().ravel(), list(range(2, 9)))
        reference = roc_auc_score(y, sal[0].numpy().ravel())
        assert float(s["roc_auc_box"][0]) == pytest.approx(reference, abs=1e-12)
        ref = paper_slc_auc(sal[0].numpy().astype(np.float64), parts[0].numpy() == FINDER)
        minmax = structure_scores(sal, parts, normalize="minmax")
        assert float(minmax["auc_misf"][0]) == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("mask_mode,tolerance", [("standard", 0.0), ("paper", 1.5)])
def test_prepared_parts_give_the_same_scores(mask_mode, tolerance):
    sal, parts = random_batch(10, levels=6)
    prepared = prepare_parts(parts, mask_mode=mask_mode, module_px=2.0, pointing_tolerance=tolerance)
    for maps in (sal, sal.flip(1) + 0.1):
        direct = structure_scores(maps, parts, mask_mode=mask_mode, module_px=2.0,
                                  pointing_tolerance=tolerance)
        reused = structure_scores(maps, prepared)
        for name in direct:
            close(reused[name], direct[name], rtol=0, atol=0, msg=name)
    with pytest.raises(ValueError, match="prepare_parts"):
        structure_scores(sal, prepared, mask_mode="paper")
    with pytest.raises(ValueError, match="one shape"):
        structure_scores(sal[:2], prepared)


def test_maps_that_require_grad_are_scored_detached():
    sal, parts = random_batch(11, batch=2)
    s = structure_scores(sal.clone().requires_grad_(True), parts)
    close(s["fmr"], structure_scores(sal, parts)["fmr"])


def test_aggregate_groups_missing_keys_and_rejects_bad_columns():
    columns = {"x": [1.0, 2.0, 3.0, float("nan")], "severity": [1.0, float("nan"), None, 1.0]}
    rows = aggregate(columns, ["x"], ["severity"], n_boot=20)
    assert [(r["severity"], r["n"], r["n_invalid"], r["mean"]) for r in rows] == [(1.0, 1, 1, 1.0),
                                                                                 (None, 2, 0, 2.5)]
    assert math.isnan(rows[0]["std"]) and math.isnan(rows[0]["ci_low"])
    with pytest.raises(ValueError, match="missing"):
        aggregate(columns, ["y"], ["severity"])
    with pytest.raises(ValueError, match="rows"):
        aggregate({"x": [1.0, 2.0], "g": [1]}, ["x"], ["g"])


def test_paper_mode_dts_uses_the_papers_structure():
    modules = qr_module_parts(21)
    parts = torch.from_numpy(np.kron(modules, np.ones((2, 2), np.uint8)))[None]
    sal = torch.rand(parts.shape, generator=torch.Generator().manual_seed(3))
    s = structure_scores(sal, parts, mask_mode="paper", module_px=2.0)
    structure = (parts[0] == FINDER).numpy() | paper_timing_mask(parts, torch.tensor([2.0]))[0].numpy()
    d = ndi.distance_transform_edt(~structure)
    p = sal[0].double().numpy() / sal[0].double().sum().item()
    assert float(s["dts_modules"][0]) == pytest.approx((p * d).sum() / 2.0, rel=1e-6)
    standard = structure_scores(sal, parts, module_px=2.0)
    assert float(standard["dts_modules"][0]) > float(s["dts_modules"][0])  # the end modules are closer


def test_normalized_mass():
    sal = torch.tensor([[[1.0, 3.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [2.0, 4.0]]])
    p, valid = normalized_mass(sal)
    assert valid.tolist() == [True, False, True]
    close(p[0], torch.tensor([[0.25, 0.75], [0.0, 0.0]]))
    p, valid = normalized_mass(sal, normalize="minmax")
    close(p[2], torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    assert valid.tolist() == [True, False, True]


def test_large_batches_are_chunked_with_the_same_numbers(monkeypatch):
    import cambench_qr.metrics.scores as scores_module

    sal, parts = random_batch(12, batch=7, levels=4)
    whole = structure_scores(sal, parts, module_px=torch.arange(1.0, 8.0), pointing_tolerance=1.0)
    monkeypatch.setattr(scores_module, "CHUNK_ROWS", 3)
    chunked = structure_scores(sal, parts, module_px=torch.arange(1.0, 8.0), pointing_tolerance=1.0)
    for name in whole:
        close(chunked[name], whole[name], rtol=0, atol=0, msg=name)
    bad = sal.clone()
    bad[5, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="sample 5 holds non-finite"):
        structure_scores(bad, parts)
    with pytest.raises(ValueError, match="sample 4 has negative"):
        structure_scores(sal - (torch.arange(7) == 4)[:, None, None].float(), parts)


@pytest.mark.parametrize("mask_mode,tolerance", [("standard", 0.0), ("paper", 1.5), ("standard", 2.0)])
def test_batched_torch_kernels_give_the_cpu_kernels_numbers(monkeypatch, mask_mode, tolerance):
    """The batched torch kernels (every device but the CPU) run here on CPU tensors: same scores as the
    numpy/numba row kernels, on tied maps over random part maps and on CAM-like maps over a rendered
    symbol (long runs of equal part ids)."""
    sal, parts = random_batch(13, batch=5, levels=5)
    symbol = torch.from_numpy(np.kron(np.pad(qr_module_parts(), 4, constant_values=QUIET_ZONE),
                                      np.ones((3, 3), np.uint8)))[None].repeat(3, 1, 1)
    coarse = torch.rand(3, 1, 5, 5, generator=torch.Generator().manual_seed(13))
    cam = torch.nn.functional.interpolate(coarse, size=symbol.shape[1:], mode="bilinear")[:, 0]
    cases = [(sal, parts), (cam, symbol)]
    kwargs = {"mask_mode": mask_mode, "module_px": 3.0, "pointing_tolerance": tolerance}
    on_cpu = [structure_scores(s, p, **kwargs) for s, p in cases]
    torch_kernels(monkeypatch)
    on_torch = [structure_scores(s, p, **kwargs) for s, p in cases]
    for cpu, batched in zip(on_cpu, on_torch, strict=True):
        assert cpu.keys() == batched.keys()
        for name in cpu:
            close(batched[name], cpu[name], rtol=1e-6, atol=1e-12, msg=name)


def test_chunk_threads_run_torch_serially_and_the_callers_setting_is_restored():
    """Each chunk thread runs its torch ops on one thread (no OpenMP team per chunk spinning on the other
    chunk's core); the caller's torch.get_num_threads() is the same afterwards, also after a failure."""
    from cambench_qr.metrics._rows import map_row_chunks

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = map_row_chunks(lambda rows, scratch: torch.get_num_threads(), 8, 4)
        assert seen == [1, 1] and torch.get_num_threads() == 2
        later = []  # a thread started afterwards begins with the caller's setting, not the chunks' 1
        thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert later == [2]

        def fail(rows, scratch):
            raise RuntimeError(f"chunk {rows.start}")

        with pytest.raises(RuntimeError, match="chunk 0"):
            map_row_chunks(fail, 8, 4)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_list_of_maps_of_different_sizes_is_a_clear_error():
    """It failed with "only integer tensors of a single element can be converted to an index"."""
    sal = [np.ones((8, 8), np.float32), np.ones((4, 4), np.float32)]
    parts = [np.full((8, 8), 2, np.uint8), np.full((4, 4), 2, np.uint8)]
    with pytest.raises(ValueError, match="^parts maps differ in size: map 0 is 8x8, map 1 is 4x4; "):
        structure_scores(sal, parts)
    with pytest.raises(ValueError, match="^saliency maps differ in size: map 0 is 8x8, map 1 is 4x4; "):
        structure_scores(sal, [parts[0], parts[0]])
    same = structure_scores([sal[0], sal[0]], [parts[0], parts[0]])  # a list of one size is a batch
    assert same["fmr"].tolist() == [1.0, 1.0]
