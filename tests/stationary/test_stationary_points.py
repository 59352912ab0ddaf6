"""Hand-built stationary points with known type (theory.md sections 3, 4, 5 and 7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.losses import nets
from pipeline.stationary import classify_point
from tests import reference as ref
from tests.stationary.helpers import cell_minimum, kinked_minimum, rank_one_regression


def _loss(w, a, x, y, leak=0.0) -> float:
    t = [torch.as_tensor(np.asarray(v, dtype=np.float64))[None] for v in (w, a, x, y)]
    return float(nets.loss(*t, leak)[0])


def _check_witness(report, x, y, leak=0.0) -> None:
    assert report.witness is not None
    dw, da = report.witness
    assert _loss(report.w + dw, report.a + da, x, y, leak) < _loss(report.w, report.a, x, y, leak)


def test_zero_network_with_nonzero_targets_is_a_strict_saddle_of_type_z():
    _, _, x, y = cell_minimum()
    report = classify_point(np.zeros((3, x.shape[1])), np.zeros((3, 1)), x, y)
    assert report.stationarity == "stationary"
    assert report.point_type == "saddle" and report.is_local_min is False
    assert report.certificate == "escape_zero_output" and report.strictness == "strict"
    assert report.mechanisms == frozenset({"Z"})
    assert report.roles == ("zero",) * 3 and report.escape.all()
    assert (report.escape_strength < 0).all()
    _check_witness(report, x, y)


def test_cell_minimum_is_a_differentiable_local_minimum_with_margin_abs_a():
    w, a, x, y = cell_minimum()
    report = classify_point(w, a, x, y)
    assert report.stationarity == "stationary" and report.differentiable
    assert report.point_type == "local_min" and report.certificate == "no_escape"
    # D_j = B_j u = 0: only the radius of the exact expansion limits the neighbourhood (sections 2 and 5.1)
    assert report.margin == pytest.approx(ref.validity_radius(report.w, x, 1e-8))
    assert report.roles == ("active_smooth",) and report.witness is None
    assert classify_point(w, a, x, y, best_known_loss=0.0).point_type == "spurious_local_min"
    assert classify_point(w, a, x, y, realisable=True).point_type == "spurious_local_min"
    assert classify_point(w, a, x, y, best_known_loss=report.loss).point_type == "global_min"


def test_adding_a_zero_neuron_turns_a_local_minimum_into_a_saddle():
    w, a, x, y = cell_minimum()
    w2, a2 = np.vstack([w, np.zeros_like(w)]), np.vstack([a, [[0.0]]])
    report = classify_point(w2, a2, x, y)
    assert report.point_type == "saddle" and report.mechanisms == frozenset({"Z"})
    assert report.escape.tolist() == [False, True]
    _check_witness(report, x, y)


def test_dead_relu_neuron_keeps_the_local_minimum():
    w, a, x, y = cell_minimum()
    dead = -np.array([[0.0, 0.0, 1.0]]) * (np.abs(x[:, :-1]).sum(axis=1).max() + 1.0)
    dead[0, :-1] = 0.1
    assert (x @ dead[0] < 0).all()
    for a_dead in (0.0, 0.7):
        report = classify_point(np.vstack([w, dead]), np.vstack([a, [[a_dead]]]), x, y)
        assert report.point_type == "local_min", a_dead
        assert report.roles[1] == "dead" and not report.escape[1]


def test_dead_relu_neuron_touching_data_with_zero_output_is_an_o_touch_saddle():
    for seed in range(20):
        w, a, x, y = kinked_minimum(seed=seed)
        r = np.maximum(x @ w[0], 0) * a[0, 0] - y[:, 0]
        i = int(np.argmax(np.linalg.norm(x[:, :2], axis=1)))
        touch = np.append(x[i, :2], -x[i, :2] @ x[i, :2])  # x_i . touch = 0, every other x_l . touch < 0
        others = np.delete(x @ touch, i)
        if abs(r[i]) > 1e-3 and others.max() < -1e-6:
            break
    else:
        pytest.fail("no touching dead neuron found")
    report = classify_point(np.vstack([w, touch]), np.vstack([a, [[0.0]]]), x, y)
    assert report.roles[1] == "dead_touching"
    assert report.point_type == "saddle" and report.mechanisms == frozenset({"O-touch"})
    _check_witness(report, x, y)


@pytest.mark.parametrize("s", [0.2, 0.5, 0.9])
def test_kinked_minimum_is_a_nondifferentiable_local_minimum(s):
    w, a, x, y = kinked_minimum(s)
    report = classify_point(w, a, x, y)
    assert report.stationarity == "stationary" and not report.differentiable
    assert report.roles == ("active_kinked",) and report.kink.all()
    assert report.point_type == "local_min" and report.certificate == "no_escape"
    assert report.margin == pytest.approx(min(abs(a[0, 0]), ref.validity_radius(report.w, x, 1e-8)))


def test_split_trichotomy_of_section_7():
    w, a, x, y = kinked_minimum(0.5)

    def split(beta):
        return classify_point(np.vstack([w, w]), np.vstack([beta * a, (1 - beta) * a]), x, y)

    assert split(0.5).point_type == "local_min"
    assert split(0.3).point_type == "local_min"
    for beta in (0.0, 1.0):
        report = split(beta)
        assert report.point_type == "saddle" and report.mechanisms == frozenset({"O-split"})
        _check_witness(report, x, y)
    for beta in (1.5, -0.5):
        report = split(beta)
        assert report.point_type == "not_stationary" and report.stationarity == "clarke_only"
        assert report.certificate == "first_order_descent"
        _check_witness(report, x, y)


def test_splitting_a_differentiable_neuron_gives_minima_for_every_beta():
    w, a, x, y = cell_minimum()
    for beta in (0.0, 0.5, 1.0, 2.0, -1.0):
        report = classify_point(np.vstack([w, w]), np.vstack([beta * a, (1 - beta) * a]), x, y)
        assert report.point_type == "local_min", beta


@pytest.mark.parametrize(("gamma_b", "stationary"), [(-1.9, True), (-2.0, True), (-2.1, False), (3.0, True)])
def test_dependent_kinks_are_stationary_iff_gamma_b_at_least_minus_two(gamma_b, stationary):
    x = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    y = np.array([[-1.0], [-gamma_b], [-1.0], [1.0]])
    report = classify_point(np.array([[0.0, 0.0, 1.0]]), np.array([[1.0]]), x, y)
    assert report.kink.all() and not report.differentiable
    if stationary:
        assert report.stationarity == "stationary" and report.point_type == "local_min"
    else:
        assert report.stationarity == "clarke_only" and report.point_type == "not_stationary"
        _check_witness(report, x, y)


def test_rank_one_vector_regression_is_a_local_minimum_with_escape_neuron():
    w, a, x, y = rank_one_regression()
    report = classify_point(w, a, x, y)
    assert report.stationarity == "stationary" and report.escape.all()
    assert report.point_type == "local_min" and report.certificate == "hessian_morse_bott"


@pytest.mark.parametrize("beta", [0.5, 0.3])
def test_duplicated_vector_neurons_are_a_strict_v_saddle(beta):
    w, a, x, y = rank_one_regression()
    report = classify_point(np.vstack([w, w]), np.vstack([beta * a, (1 - beta) * a]), x, y)
    assert report.point_type == "saddle" and report.strictness == "strict"
    assert report.certificate == "negative_curvature_witness" and report.mechanisms == frozenset({"V"})
    _check_witness(report, x, y)


def test_fixed_output_layer_stationary_points_are_local_minima():
    w, a, x, y = kinked_minimum(0.5)
    report = classify_point(w, a, x, y, train_output=False)
    assert report.point_type == "local_min" and not report.escape.any()
    zero = classify_point(np.zeros((2, 3)), np.ones((2, 1)), x, y, train_output=False)
    assert zero.roles == ("zero_input",) * 2
    assert zero.point_type in {"local_min", "not_stationary"}
    if zero.point_type == "not_stationary":
        _check_witness(zero, x, y)


def test_random_point_is_not_stationary_with_verified_witness():
    rng = np.random.default_rng(3)
    _, _, x, y = cell_minimum()
    w, a = rng.normal(size=(4, 3)), rng.normal(size=(4, 1))
    report = classify_point(w, a, x, y, leak=0.1)
    assert report.point_type == "not_stationary" and report.is_local_min is False
    _check_witness(report, x, y, leak=0.1)
