"""Oracle tests for the stationary-point classifier: hand-built points of known type.

Exact constructions (tests/oracle_points.py, theory sections 3-7), each verified with the
independent oracles of tests/reference.py before the classifier's label is asserted; certified
minima must also survive a brute-force search inside the validity radius.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests import reference as ref
from tests.oracle_points import (
    LOCAL_MIN_TYPES,
    assert_survives_brute_force,
    check_report_consistency,
    clarke_only_point,
    classify,
    dependent_kinks_point,
    duplicated_vector_point,
    generic_data,
    ls_local_min_point,
    rrr_width1_point,
    split_base_point,
    split_point,
    verify_stationary,
    with_dead_neurons,
)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("leak", [0.0, 0.2])
def test_zero_network_is_Z_saddle(k, leak):
    # theory 4 ("zero neuron"): w = 0, a = 0, r = -y != 0, generic data: every neuron is an escape
    # neuron with a_j = 0 -> strict saddle (5.2), mechanism Z, escape on every neuron.
    x, y = generic_data(k)
    m = 3
    w, a = np.zeros((m, x.shape[1])), np.zeros((m, k))
    verify_stationary(w, a, x, y, leak)
    rep = classify(w, a, x, y, leak=leak)
    check_report_consistency(rep, w, a, x, y, leak)
    assert rep.stationarity == "stationary"
    assert rep.point_type == "saddle" and rep.is_local_min is False
    assert rep.certificate == "escape_zero_output"
    assert set(rep.mechanisms) == {"Z"}
    assert rep.escape.tolist() == [True] * m
    assert rep.strictness == "strict"
    assert tuple(rep.roles) == ("zero",) * m
    assert not rep.tolerance_sensitive


@pytest.mark.parametrize("leak", [0.0, 0.2])
def test_differentiable_least_squares_local_min(leak):
    w, a, x, y = ls_local_min_point(leak)
    verify_stationary(w, a, x, y, leak)
    gw, ga = ref.naive_gradient(w, a, x, y, leak)
    assert np.abs(gw).max() == 0.0 and np.abs(ga).max() == 0.0  # exact (dyadic construction)
    rep = classify(w, a, x, y, leak=leak)
    check_report_consistency(rep, w, a, x, y, leak)
    assert rep.stationarity == "stationary"
    assert rep.point_type == "local_min"  # globality unknown without extra information
    assert rep.is_local_min is True and rep.certificate == "no_escape"
    assert rep.differentiable
    assert rep.escape.tolist() == [False]
    assert tuple(rep.roles) == ("active_smooth",)
    assert not rep.tolerance_sensitive
    ok, res, tol = assert_survives_brute_force(rep, x, y, leak)
    assert ok, (res.min_change, tol)


def test_global_information_turns_local_min_spurious():
    # theory 8.2 step 8: with a better known loss (or a realisable target) a local minimum with
    # loss 1/2 > 0 is spurious; never global from local information.
    w, a, x, y = ls_local_min_point(0.0)
    rep = classify(w, a, x, y, leak=0.0, best_known_loss=0.0)
    assert rep.point_type == "spurious_local_min"
    rep = classify(w, a, x, y, leak=0.0, realisable=True)
    assert rep.point_type == "spurious_local_min"
    # a zero-loss minimum is global when the target is known to be realisable
    y_fit = ref.rho(x @ w.T, 0.0) @ a
    rep = classify(w, a, x, y_fit, leak=0.0, realisable=True)
    assert rep.point_type == "global_min" and rep.is_local_min is True


def test_numerically_zero_loss_is_global_min():
    # theory 8.2 step 8 (global iff loss <= tau_L s_y^2 for realisable targets). An end point of GD
    # on a realisable target is never exactly interpolating: residuals ~1e-13 (loss ~1e-27, far below
    # any loss tolerance). The relative gaps of 8.2 step 5 divide by ||R|| ~ 1e-13 and are then O(1);
    # the point must still be recognised as a global minimum, not as non-stationary.
    w, a, x, _ = split_base_point()
    y = ref.rho(x @ w.T, 0.0) @ a  # realisable: zero loss at (w, a)
    a_end = a * (1.0 + 2.0**-43)  # residuals ~1e-13 on the active points (no kink involved)
    loss = ref.naive_loss(w, a_end, x, y, 0.0)
    assert 0.0 < loss < 1e-25
    for point in ((w, a), (w, a_end), (np.vstack([w, w]), np.vstack([0.5 * a_end, 0.5 * a]))):
        rep = classify(*point, x, y, leak=0.0, realisable=True)
        assert rep.point_type == "global_min" and rep.is_local_min is True, (rep.point_type, rep.first_order_gap)


def test_dead_relu_neurons_keep_local_min():
    # theory 4 ("dead ReLU neuron": D_j == 0, never escape) and 7 (E1): appending strictly dead
    # neurons, with zero or non-zero output weights, keeps the local minimum.
    w0, a0, x, y = ls_local_min_point(0.0)
    w, a = with_dead_neurons(w0, a0)
    w = np.vstack([w, [[0.5, -3.0]]])  # a third dead neuron (z = 0.5 t - 3 < 0), zero output weight
    a = np.vstack([a, [[0.0]]])
    verify_stationary(w, a, x, y, 0.0)
    rep = classify(w, a, x, y, leak=0.0)
    check_report_consistency(rep, w, a, x, y, 0.0)
    assert rep.stationarity == "stationary"
    assert rep.point_type == "local_min" and rep.is_local_min is True
    assert rep.certificate == "no_escape"
    assert rep.escape.tolist() == [False, False, False, False]
    assert tuple(rep.roles[:3]) == ("active_smooth", "dead", "dead")
    assert not rep.kink.any()
    assert not rep.tolerance_sensitive
    ok, res, tol = assert_survives_brute_force(rep, x, y, 0.0)
    assert ok, (res.min_change, tol)


@pytest.mark.parametrize("leak", [0.0, 0.2])
def test_zero_neuron_added_to_local_min_is_saddle(leak):
    # theory 7 (E1): adding w_new = 0, a_new = 0 keeps stationarity but, with generic data and a
    # non-zero residual, the new neuron is an escape neuron (D_new(u) = sum_i r_i rho(x_i.u) != 0):
    # every non-global local minimum becomes a saddle, with exactly that neuron escaping.
    w0, a0, x, y = ls_local_min_point(leak)
    w = np.vstack([w0, np.zeros((1, 2))])
    a = np.vstack([a0, np.zeros((1, 1))])
    if leak == 0.0:  # also keep the dead neurons: they must stay non-escape
        w, a = with_dead_neurons(w, a)
    verify_stationary(w, a, x, y, leak)
    rep = classify(w, a, x, y, leak=leak)
    check_report_consistency(rep, w, a, x, y, leak)
    assert rep.stationarity == "stationary"
    assert rep.point_type == "saddle" and rep.is_local_min is False
    assert rep.certificate == "escape_zero_output"
    assert set(rep.mechanisms) == {"Z"}
    expected = [False] * w.shape[0]
    expected[1] = True
    assert rep.escape.tolist() == expected
    assert rep.strictness == "strict"
    assert rep.roles[1] == "zero"


def test_split_base_point_is_nondifferentiable_local_min():
    w, a, x, y = split_base_point()
    verify_stationary(w, a, x, y, 0.0)
    rep = classify(w, a, x, y, leak=0.0)
    check_report_consistency(rep, w, a, x, y, 0.0)
    assert rep.stationarity == "stationary"
    assert rep.point_type == "local_min" and rep.certificate == "no_escape"
    assert not rep.differentiable
    assert rep.kink.tolist() == [True]
    assert tuple(rep.roles) == ("active_kinked",)
    # 5.1 and 2 (issue 19): margin = min_j min(|a_j|, mu_j), mu the radius of the exact expansion
    assert rep.margin == pytest.approx(min(1.0, ref.validity_radius(rep.w, x, 1e-8)))
    assert not rep.tolerance_sensitive
    ok, res, tol = assert_survives_brute_force(rep, x, y, 0.0)
    assert ok, (res.min_change, tol)


@pytest.mark.parametrize("beta", [0.5, 0.25, 1e-5, 1.0 - 2.0**-17])
def test_split_trichotomy_interior_is_local_min(beta):
    w, a, x, y = split_point(beta)
    verify_stationary(w, a, x, y, 0.0)
    rep = classify(w, a, x, y, leak=0.0)
    check_report_consistency(rep, w, a, x, y, 0.0)
    assert rep.stationarity == "stationary"
    assert rep.point_type == "local_min" and rep.is_local_min is True
    assert rep.certificate == "no_escape"
    assert rep.escape.tolist() == [False, False]
    # section 7.3: a tiny copy is a local minimum with a tiny margin min(beta, 1 - beta) (or the expansion's radius)
    expected = min(beta, 1.0 - beta, ref.validity_radius(rep.w, x, 1e-8))
    assert rep.margin == pytest.approx(expected, rel=1e-6)
    ok, res, tol = assert_survives_brute_force(rep, x, y, 0.0)
    assert ok, (res.min_change, tol)


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_split_trichotomy_endpoint_is_O_split_saddle(beta):
    w, a, x, y = split_point(beta)
    verify_stationary(w, a, x, y, 0.0)
    zero_copy = 0 if beta == 0.0 else 1
    rep = classify(w, a, x, y, leak=0.0)
    check_report_consistency(rep, w, a, x, y, 0.0)
    assert rep.stationarity == "stationary"
    assert rep.point_type == "saddle" and rep.is_local_min is False
    assert rep.certificate == "escape_zero_output"
    assert set(rep.mechanisms) == {"O-split"}
    expected = [False, False]
    expected[zero_copy] = True
    assert rep.escape.tolist() == expected
    assert rep.roles[zero_copy] == "zero_output"
    assert rep.strictness == "strict"
    # the brute-force oracle agrees that it is not a minimum
    ok, res, tol = assert_survives_brute_force(rep, x, y, 0.0)
    assert not ok and res.min_change < 0


@pytest.mark.parametrize("beta", [-0.25, 1.5])
def test_split_trichotomy_outside_is_not_stationary(beta):
    w, a, x, y = split_point(beta)
    verify_stationary(w, a, x, y, 0.0, expect=False)
    rep = classify(w, a, x, y, leak=0.0)
    check_report_consistency(rep, w, a, x, y, 0.0)
    assert rep.point_type == "not_stationary" and rep.is_local_min is False
    assert rep.stationarity == "clarke_only"  # the Clarke condition ignores the sign of gamma
    assert rep.certificate == "first_order_descent"


def test_clarke_only_point():
    w, a, x, y = clarke_only_point()
    verify_stationary(w, a, x, y, 0.0, expect=False)
    rep = classify(w, a, x, y, leak=0.0)
    check_report_consistency(rep, w, a, x, y, 0.0)
    assert rep.stationarity == "clarke_only"
    assert rep.point_type == "not_stationary" and rep.is_local_min is False
    assert rep.certificate == "first_order_descent"


@pytest.mark.parametrize("gamma_b", [-1.5, -2.0, 0.5])
def test_dependent_kinks_stationary_side(gamma_b):
    w, a, x, y = dependent_kinks_point(gamma_b)
    verify_stationary(w, a, x, y, 0.0)
    rep = classify(w, a, x, y, leak=0.0)
    check_report_consistency(rep, w, a, x, y, 0.0)
    assert rep.stationarity == "stationary", rep.first_order_gap
    assert rep.point_type == "local_min" and rep.is_local_min is True
    assert rep.certificate == "no_escape"
    assert not rep.differentiable
    ok, res, tol = assert_survives_brute_force(rep, x, y, 0.0)
    assert ok, (res.min_change, tol)


def test_dependent_kinks_non_stationary_side():
    w, a, x, y = dependent_kinks_point(-2.5)
    verify_stationary(w, a, x, y, 0.0, expect=False)
    rep = classify(w, a, x, y, leak=0.0)
    check_report_consistency(rep, w, a, x, y, 0.0)
    assert rep.point_type == "not_stationary" and rep.is_local_min is False
    assert rep.stationarity == "clarke_only"
    assert rep.certificate == "first_order_descent"


def test_vector_reduced_rank_regression_local_min_with_escape_neuron():
    w, a, x, y = rrr_width1_point()
    verify_stationary(w, a, x, y, 0.0)
    rep = classify(w, a, x, y, leak=0.0)
    check_report_consistency(rep, w, a, x, y, 0.0)
    assert rep.stationarity == "stationary"
    assert rep.escape.tolist() == [True]  # escape although a != 0 (5.3)
    assert rep.point_type == "local_min" and rep.is_local_min is True
    assert rep.certificate == "hessian_morse_bott"
    assert rep.differentiable
    ok, res, tol = assert_survives_brute_force(rep, x, y, 0.0)
    assert ok, (res.min_change, tol)


@pytest.mark.parametrize("beta", [0.5, 0.3])
def test_vector_duplicated_neurons_strict_saddle(beta):
    w, a, x, y = duplicated_vector_point(beta)
    verify_stationary(w, a, x, y, 0.0)
    rep = classify(w, a, x, y, leak=0.0)
    check_report_consistency(rep, w, a, x, y, 0.0)
    assert rep.stationarity == "stationary"
    assert rep.escape.tolist() == [True, True]
    assert rep.point_type == "saddle" and rep.is_local_min is False
    assert rep.certificate == "negative_curvature_witness"
    assert set(rep.mechanisms) == {"V"}
    assert rep.strictness == "strict"


def test_fixed_output_layer_stationary_points_are_minima():
    # Section 2 with Delta a = 0: Phi = 1/n sum_j g_j(dw_j) + 1/(2n) sum_i ||delta f_i||^2, so when
    # the output layer is not trained every (directionally) stationary point is a local minimum; in
    # particular the zero network and the O-split point are not saddles.
    x, y = generic_data(1)
    w, a = np.zeros((2, 3)), np.zeros((2, 1))
    rep = classify(w, a, x, y, leak=0.0, train_output=False)
    check_report_consistency(rep, w, a, x, y, 0.0, train_output=False)
    assert rep.point_type in LOCAL_MIN_TYPES and rep.is_local_min is True
    w, a, x, y = split_point(0.0)
    rep = classify(w, a, x, y, leak=0.0, train_output=False)
    check_report_consistency(rep, w, a, x, y, 0.0, train_output=False)
    assert rep.point_type in LOCAL_MIN_TYPES
    ok, res, tol = assert_survives_brute_force(rep, x, y, 0.0, train_output=False)
    assert ok, (res.min_change, tol)
    # and a non-stationary point gives a witness that keeps a fixed
    w, a, x, y = clarke_only_point()
    rep = classify(w, a, x, y, leak=0.0, train_output=False)
    check_report_consistency(rep, w, a, x, y, 0.0, train_output=False)
    assert rep.point_type == "not_stationary"
