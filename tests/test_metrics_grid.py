"""Feature-grid scoring against area-averaged part fractions."""

import numpy as np
import pytest
import torch

from cambench_qr.metrics import area_average_parts, grid_scores, structure_scores
from cambench_qr.parts import NUM_PARTS

PARTS_4 = torch.tensor([[2, 2, 0, 0],
                        [2, 4, 0, 0],
                        [4, 4, 8, 1],
                        [8, 8, 8, 1]], dtype=torch.uint8)[None]


def close(actual, expected, rtol: float = 1.3e-6, atol: float = 1e-5, msg: str = "") -> None:
    """allclose with NaN == NaN (numpy's: torch.testing's first call costs seconds of imports)."""
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol, equal_nan=True,
                               err_msg=msg)


def test_fractions_by_hand_and_partition():
    frac = area_average_parts(PARTS_4, (2, 2))
    assert frac.shape == (1, NUM_PARTS, 2, 2)
    close(frac.sum(1), torch.ones(1, 2, 2))
    assert frac[0, 2].tolist() == [[0.75, 0.0], [0.0, 0.0]]  # finder: 3 of the 4 top-left pixels
    assert frac[0, 4].tolist() == [[0.25, 0.0], [0.5, 0.0]]
    assert frac[0, 8].tolist() == [[0.0, 0.0], [0.5, 0.5]]


def test_grid_scores_by_hand_and_chance():
    frac = area_average_parts(PARTS_4, (2, 2))
    s = grid_scores(torch.tensor([[[3.0, 0.0], [1.0, 0.0]]]), frac)
    assert float(s["fmr"][0]) == pytest.approx(0.75 * 3 / 4)
    assert float(s["tmr"][0]) == pytest.approx((0.25 * 3 + 0.5 * 1) / 4)
    assert float(s["bl"][0]) == pytest.approx(0.0)
    uniform = grid_scores(torch.ones(1, 2, 2), frac)
    for name in ("fmr", "tmr", "bl", "lift_finder", "mass_data"):
        assert float(uniform[name][0]) == pytest.approx(float(uniform[f"chance_{name}"][0]))
    assert float(uniform["chance_fmr"][0]) == pytest.approx(3 / 16)


def test_full_resolution_grid_equals_pixel_scores():
    g = torch.Generator().manual_seed(0)
    parts = torch.randint(0, NUM_PARTS, (3, 8, 6), generator=g).to(torch.uint8)
    sal = torch.rand(3, 8, 6, generator=g)
    grid = grid_scores(sal, area_average_parts(parts, (8, 6)))
    pixel = structure_scores(sal, parts)
    for name in ("fmr", "tmr", "bl", "lift_box", "mass_separator", "chance_bl"):
        close(grid[name], pixel[name], rtol=1e-6, atol=1e-9)


def test_grid_bad_input():
    with pytest.raises(ValueError, match="grid_hw"):
        area_average_parts(PARTS_4, (5, 2))
    with pytest.raises(ValueError, match="fractions"):
        grid_scores(torch.ones(1, 3, 3), area_average_parts(PARTS_4, (2, 2)))


def test_grid_takes_the_inputs_structure_scores_takes():
    """The same checks (``metrics.inputs``): a bf16 map scores as its float32 values, an integer or bool
    map gets the same one-line error as from structure_scores, fractions must be float."""
    fractions = area_average_parts(PARTS_4, (2, 2))
    sal = torch.tensor([[[1.0, 0.5], [0.25, 0.0]]])
    assert torch.equal(grid_scores(sal.bfloat16(), fractions)["fmr"], grid_scores(sal, fractions)["fmr"])
    for bad in (sal.long(), sal > 0):
        with pytest.raises(ValueError) as grid_error:
            grid_scores(bad, fractions)
        with pytest.raises(ValueError) as core_error:
            structure_scores(bad, torch.zeros(1, 2, 2, dtype=torch.uint8))
        assert str(grid_error.value) == str(core_error.value) and "floating-point" in str(grid_error.value)
    with pytest.raises(ValueError, match="float fractions"):
        grid_scores(sal, fractions.long())
