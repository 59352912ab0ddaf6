"""Self-tests of the independent oracles (``tests/reference.py``) against closed forms.

The oracles (numpy float64 loss / gradient / one-sided derivatives / validity radius / brute force /
GD) are what the classifier oracle tests (tests/test_oracles_*.py) check ``classify_point`` against,
so they are themselves tested here first.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests import reference as ref
from tests.oracle_points import (
    brute_radii,
    duplicated_vector_point,
    generic_data,
    ls_local_min_point,
    rrr_width1_point,
    split_point,
    verify_stationary,
)


def test_naive_loss_hand_computed():
    # x_1 = (1, 1), x_2 = (2, 1); w = (1, -1.5): z = (-0.5, 0.5); leak 0.25: rho = (-0.125, 0.5);
    # a = 2: f = (-0.25, 1); y = (0, 1): r = (-0.25, 0); L = 0.0625 / 4 = 0.015625 (exact in binary).
    x = [[1.0, 1.0], [2.0, 1.0]]
    assert ref.naive_loss([[1.0, -1.5]], [[2.0]], x, [[0.0], [1.0]], 0.25) == 0.015625
    # vector output, two neurons, ReLU: z = [[1, -1], [2, 1]] -> rho = [[1, 0], [2, 1]];
    # a = [[1, 0], [0, 1]]: f = [[1, 0], [2, 1]]; y = 0: L = (1 + 4 + 1) / 4 = 1.5
    w = [[1.0, 0.0], [0.0, -1.0]]
    x = [[1.0, 1.0], [2.0, -1.0]]
    assert ref.naive_loss(w, np.eye(2), x, np.zeros((2, 2)), 0.0) == 1.5


def test_vectorised_loss_matches_loops():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n, d, m, k = rng.integers(1, 6, size=4)
        x, y = rng.standard_normal((n, d)), rng.standard_normal((n, k))
        w, a = rng.standard_normal((m, d)), rng.standard_normal((m, k))
        leak = float(rng.choice([0.0, 0.2]))
        assert ref.naive_loss_fast(w, a, x, y, leak) == pytest.approx(ref.naive_loss(w, a, x, y, leak), rel=1e-12)


def test_naive_gradient_matches_finite_differences_and_autograd():
    import torch

    rng = np.random.default_rng(1)
    for _ in range(10):
        n, d, m, k = 6, 3, 3, 2
        x, y = rng.standard_normal((n, d)), rng.standard_normal((n, k))
        w, a = rng.standard_normal((m, d)), rng.standard_normal((m, k))
        leak = float(rng.choice([0.0, 0.2]))
        gw, ga = ref.naive_gradient(w, a, x, y, leak)
        eps = 1e-6
        for arr, g in ((w, gw), (a, ga)):
            for idx in np.ndindex(arr.shape):
                plus, minus = arr.copy(), arr.copy()
                plus[idx] += eps
                minus[idx] -= eps
                args_p = (plus, a) if arr is w else (w, plus)
                args_m = (minus, a) if arr is w else (w, minus)
                fd = (ref.naive_loss(*args_p, x, y, leak) - ref.naive_loss(*args_m, x, y, leak)) / (2 * eps)
                assert g[idx] == pytest.approx(fd, abs=1e-7)
        tw = torch.tensor(w, requires_grad=True)
        ta = torch.tensor(a, requires_grad=True)
        f = torch.nn.functional.leaky_relu(torch.tensor(x) @ tw.T, leak) @ ta
        loss = 0.5 * ((f - torch.tensor(y)) ** 2).sum() / n
        loss.backward()
        assert np.allclose(tw.grad.numpy(), gw, atol=1e-13)
        assert np.allclose(ta.grad.numpy(), ga, atol=1e-13)


def test_directional_derivative_matches_one_sided_difference_at_kinks():
    # neuron 0 has data point 1 on its kink; the one-sided derivative is not linear there
    x = np.array([[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    y = np.array([[1.0], [-2.0], [3.0], [1.0]])
    w, a = np.array([[1.0, 0.0]]), np.array([[1.0]])
    rng = np.random.default_rng(2)
    for leak in (0.0, 0.2):
        for _ in range(20):
            dw, da = rng.standard_normal((1, 2)), rng.standard_normal((1, 1))
            t = 1e-7
            fd = (ref.naive_loss(w + t * dw, a + t * da, x, y, leak) - ref.naive_loss(w, a, x, y, leak)) / t
            assert ref.directional_derivative(w, a, x, y, leak, dw, da) == pytest.approx(fd, abs=1e-5)


def test_validity_radius_closed_form_and_exactness():
    x = np.array([[3.0, 4.0], [0.0, 1.0], [1.0, 0.0]])
    w = np.array([[1.0, 0.0], [0.0, 0.0]])
    # neuron 0: z = (3, 0, 1); point 1 is a kink; |z|/||x|| = (3/5, -, 1) -> mu_0 = 0.6; neuron 1: inf
    assert ref.validity_radius(w, x, 0.0, per_neuron=True).tolist() == [0.6, np.inf]
    assert ref.validity_radius(w, x, 0.0) == 0.6
    assert ref.validity_radius(np.zeros((2, 2)), x, 0.0) == np.inf
    # inside the radius no non-kink pre-activation changes sign
    rng = np.random.default_rng(3)
    xr = rng.standard_normal((8, 3))
    wr = rng.standard_normal((4, 3))
    mu = ref.validity_radius(wr, xr, 0.0, per_neuron=True)
    for _ in range(200):
        dw = rng.standard_normal(wr.shape)
        dw *= (0.999 * mu / np.linalg.norm(dw, axis=1))[:, None]
        assert np.array_equal(np.sign(xr @ (wr + dw).T), np.sign(xr @ wr.T))


def test_brute_force_finds_descent_at_zero_network_and_none_at_a_minimum():
    x, y = generic_data(k=1)
    m, d = 2, x.shape[1]
    res = ref.brute_force_min_change(
        np.zeros((m, d)), np.zeros((m, 1)), x, y, 0.0, radius=1e-2, rng=np.random.default_rng(4)
    )
    assert res.min_change < -1e-8
    assert ref.naive_loss(res.dw, res.da, x, y, 0.0) - ref.naive_loss(
        np.zeros((m, d)), np.zeros((m, 1)), x, y, 0.0
    ) == pytest.approx(res.min_change, abs=1e-15)
    w, a, x, y = ls_local_min_point(0.0)
    rw, ra = brute_radii(w, a, x)
    res = ref.brute_force_min_change(w, a, x, y, 0.0, radius=rw, a_radius=ra, rng=np.random.default_rng(5))
    assert res.min_change >= -1e-14


def test_brute_force_finds_descent_at_O_split_saddle():
    # zero-output copy of a kinked neuron (theory 7): the descent needs dw_0 along e_2 and a small
    # da_0 < 0 (da ~ dw D / P), with the kinked twin left alone. Both search halves must find it.
    w, a, x, y = split_point(0.0)
    rw, ra = brute_radii(w, a, x)
    for kwargs in ({}, {"n_random": 0}, {"n_adversarial": 0}):
        res = ref.brute_force_min_change(
            w, a, x, y, 0.0, radius=rw, a_radius=ra, rng=np.random.default_rng(8), **kwargs
        )
        # optimum of the 5.2 construction here: -s^2 / (10 n) = -1e-7 for s = ||dw_0|| = 2e-3
        assert res.min_change < -5e-8, kwargs
    # and nothing at the interior split (a local minimum)
    w, a, x, y = split_point(0.5)
    rw, ra = brute_radii(w, a, x)
    res = ref.brute_force_min_change(w, a, x, y, 0.0, radius=rw, a_radius=ra, rng=np.random.default_rng(9))
    assert res.min_change >= -1e-14


def test_brute_force_finds_second_order_descent_at_vector_saddle():
    # the duplicated-neuron strict saddle of theory 5.3 has no first-order descent; the adversarial
    # search must still find the second-order one (this is the hardest case for the oracle)
    w, a, x, y = duplicated_vector_point(0.3)
    verify_stationary(w, a, x, y, 0.0)
    rw, ra = brute_radii(w, a, x)
    res = ref.brute_force_min_change(w, a, x, y, 0.0, radius=rw, a_radius=ra, rng=np.random.default_rng(6))
    assert res.min_change < -1e-9
    # while the width-1 reduced-rank-regression point is a local minimum
    w, a, x, y = rrr_width1_point()
    rw, ra = brute_radii(w, a, x)
    res = ref.brute_force_min_change(w, a, x, y, 0.0, radius=rw, a_radius=ra, rng=np.random.default_rng(7))
    assert res.min_change >= -1e-14


def test_naive_gd_converges_to_least_squares_when_all_active():
    # all inputs active: the net is linear, GD reaches u = a w = the least-squares solution
    w, a, x, y = ls_local_min_point(0.0)
    w0, a0 = w * 1.1 + 0.01, a * 0.9
    w1, a1 = ref.naive_gd(w0, a0, x, y, 0.0, lr=0.05, steps=20000)
    assert np.allclose(a1[0, 0] * w1[0], a[0, 0] * w[0], atol=1e-9)
    gw, ga = ref.naive_gradient(w1, a1, x, y, 0.0)
    assert max(np.abs(gw).max(), np.abs(ga).max()) < 1e-10
    assert ref.naive_loss(w1, a1, x, y, 0.0) < ref.naive_loss(w0, a0, x, y, 0.0)
    # fixed output layer: a never moves
    w2, a2 = ref.naive_gd(w0, a0, x, y, 0.0, lr=0.05, steps=100, train_output=False)
    assert np.array_equal(a2, a0)
