from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.initialization import draw_initialization, init_scale_std


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize(("width", "mu"), [(50, -3.0), (8, -0.5), (1, 2.0), (16, 0.0)])
def test_width_exponent_gives_width_power(width, mu):
    assert init_scale_std(None, width, mu) == pytest.approx(width**mu)


def test_authors_first_experiment_scale():
    assert init_scale_std(None, 50, -3.0) == pytest.approx(8e-6)


def test_fixed_init_scale():
    assert init_scale_std(1e-6, 50, None) == 1e-6


@pytest.mark.parametrize(
    ("init_scale", "width", "mu", "match"),
    [
        (None, 8, None, "exactly one"),
        (0.1, 8, -1.0, "exactly one"),
        (0.0, 8, None, "init_scale"),
        (-1.0, 8, None, "init_scale"),
        (None, 0, -1.0, "width"),
        (None, 8, math.inf, "width_exponent"),
    ],
)
def test_init_scale_std_errors(init_scale, width, mu, match):
    with pytest.raises(ValueError, match=match):
        init_scale_std(init_scale, width, mu)


def test_gaussian_shapes_and_std():
    std = 0.3
    w0, a0 = draw_initialization(rng(), width=400, input_dim=50, output_dim=25, std=std)
    assert w0.shape == (400, 50) and a0.shape == (400, 25)
    assert w0.dtype == np.float64 and a0.dtype == np.float64
    for sample in (w0, a0):
        # Sample std of N i.i.d. normals has relative standard error about 1/sqrt(2N).
        assert abs(sample.std() / std - 1) < 5 / math.sqrt(2 * sample.size)
        assert abs(sample.mean()) < 5 * std / math.sqrt(sample.size)


def test_xavier_ignores_std():
    kwargs = dict(width=400, input_dim=64, output_dim=10, std=123.0, distribution="xavier")
    w0, a0 = draw_initialization(rng(), **kwargs)
    assert abs(w0.std() * 8 - 1) < 5 / math.sqrt(2 * w0.size)
    assert abs(a0.std() * 20 - 1) < 5 / math.sqrt(2 * a0.size)


def test_reproducible_and_w_drawn_first():
    kwargs = dict(width=6, input_dim=3, output_dim=2, std=0.5)
    w0, a0 = draw_initialization(rng(1), **kwargs)
    w1, a1 = draw_initialization(rng(1), **kwargs)
    np.testing.assert_array_equal(w0, w1)
    np.testing.assert_array_equal(a0, a1)
    expected = rng(1).standard_normal(6 * 3 + 6 * 2) * 0.5
    np.testing.assert_array_equal(np.concatenate([w0.ravel(), a0.ravel()]), expected)


def row_norms(array):
    return np.linalg.norm(array, axis=1)


def test_balanced_equalises_norms_and_keeps_product():
    kwargs = dict(width=20, input_dim=5, output_dim=3, std=0.1)
    w_raw, a_raw = draw_initialization(rng(2), **kwargs)
    w_bal, a_bal = draw_initialization(rng(2), balanced=True, **kwargs)
    nw_bal, na_bal, nw_raw, na_raw = (row_norms(array) for array in (w_bal, a_bal, w_raw, a_raw))
    np.testing.assert_allclose(na_bal, nw_bal, rtol=1e-12)
    np.testing.assert_allclose(nw_bal * na_bal, nw_raw * na_raw, rtol=1e-12)
    # Directions are unchanged.
    np.testing.assert_allclose(w_bal / nw_bal[:, None], w_raw / nw_raw[:, None], rtol=1e-12)
    np.testing.assert_allclose(a_bal / na_bal[:, None], a_raw / na_raw[:, None], rtol=1e-12)


def test_output_fixed_gives_ones():
    w0, a0 = draw_initialization(rng(), width=4, input_dim=3, output_dim=2, std=1e-6, output_fixed=True)
    np.testing.assert_array_equal(a0, np.ones((4, 2)))
    assert w0.shape == (4, 3)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"width": 0}, "width"),
        ({"input_dim": -1}, "input_dim"),
        ({"output_dim": 0}, "output_dim"),
        ({"std": 0.0}, "std"),
        ({"std": math.nan}, "std"),
        ({"distribution": "uniform"}, "distribution"),
        ({"balanced": True, "output_fixed": True}, "balanced"),
    ],
)
def test_bad_arguments_are_named(overrides, match):
    kwargs = dict(width=4, input_dim=3, output_dim=2, std=0.1) | overrides
    with pytest.raises(ValueError, match=match):
        draw_initialization(rng(), **kwargs)
