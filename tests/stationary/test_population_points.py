"""Population-loss classification against independent oracles (hand-built points, brute force)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from pipeline.losses import population
from pipeline.losses.activations import LeakyReLU
from pipeline.losses.interval_population import IntervalTarget
from pipeline.losses.population import population_loss
from pipeline.problems import (
    GaussianPopulationProblem,
    IntervalPopulationProblem,
    VerdictOptions,
    run_population_gradient_descent,
)
from pipeline.stationary import labels
from pipeline.stationary.interval_points import classify_interval_batch
from pipeline.stationary.population_points import classify_population_batch

DTYPE = torch.float64


def orthonormal_teacher(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.eye(k, dtype=DTYPE)[None], torch.ones(1, k, 1, dtype=DTYPE)


def names(codes: np.ndarray) -> list[str]:
    return [labels.POINT_TYPE[code] for code in codes]


def test_student_equal_to_the_teacher_is_a_global_minimum():
    teacher_w, teacher_a = orthonormal_teacher(4)
    permutation = torch.tensor([2, 0, 3, 1])
    w, a = teacher_w[:, permutation], teacher_a.clone()
    result = classify_population_batch(w, a, teacher_w, teacher_a, leak=0.0, train_output=False, realisable=True)
    assert names(result.point_type) == ["global_min"]
    assert labels.CERTIFICATE[result.certificate[0]] == "none"  # F >= 0 decides before the Hessian
    assert np.isnan(result.curvature[0])  # so none is computed
    hessian = population.population_hessian(w[0], a[0], teacher_w[0], teacher_a[0], 0.0, train_output=False)
    assert torch.linalg.eigvalsh(hessian).min() > 0  # and the Hessian agrees: positive definite (fixed output layer)


def test_symmetric_student_converges_to_a_saddle_with_a_verified_witness():
    # Two identical neurons stay identical under gradient descent (the symmetry is preserved), so
    # descent from w1 = w2 = (0.3, 0.3) converges to a symmetric stationary point with loss > 0. Breaking
    # the symmetry lowers the loss: a saddle.
    teacher_w, teacher_a = orthonormal_teacher(2)
    u = torch.tensor([0.3, 0.3], dtype=DTYPE)
    w0, a0 = torch.stack([u, u])[None], torch.ones(1, 2, 1, dtype=DTYPE)
    descent = run_population_gradient_descent(
        w0, a0, teacher_w, teacher_a, leak=0.0, learning_rate=0.1, max_steps=5000, train_output=False, grad_tol=1e-12
    )
    result = classify_population_batch(
        descent.w_final, descent.a_final, teacher_w, teacher_a, leak=0.0, train_output=False, realisable=True
    )
    assert names(result.point_type) == ["saddle"]
    assert result.has_witness[0]
    moved = population_loss(
        descent.w_final + torch.as_tensor(result.witness_w), descent.a_final, teacher_w, teacher_a, 0.0
    )
    assert float(moved[0]) < float(descent.loss_final[0])


def test_non_stationary_and_zero_neuron_points_are_not_certified():
    teacher_w, teacher_a = orthonormal_teacher(3)
    w = torch.randn(2, 3, 3, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    w[1] = 0.0  # every neuron zero: not twice differentiable there
    a = torch.ones(2, 3, 1, dtype=DTYPE)
    result = classify_population_batch(w, a, teacher_w, teacher_a, leak=0.0, train_output=False, realisable=True)
    assert names(result.point_type)[0] == "not_stationary"
    assert names(result.point_type)[1] in ("not_stationary", "undetermined")
    assert labels.decode_is_local_min(result.is_local_min[1]) is not True


def test_certified_minima_survive_random_perturbations():
    teacher_w, teacher_a = orthonormal_teacher(3)
    generator = torch.Generator().manual_seed(1)
    w0 = torch.randn(6, 3, 3, dtype=DTYPE, generator=generator) / 3**0.5
    a0 = torch.randn(6, 3, 1, dtype=DTYPE, generator=generator)
    descent = run_population_gradient_descent(
        w0, a0, teacher_w, teacher_a, leak=0.1, learning_rate=0.1, max_steps=6000, grad_tol=1e-11
    )
    result = classify_population_batch(
        descent.w_final, descent.a_final, teacher_w, teacher_a, leak=0.1, realisable=True
    )
    minima = np.flatnonzero(labels.code(labels.IS_LOCAL_MIN, "true") == result.is_local_min)
    assert minima.size > 0
    # no basin radius is claimed for this smooth loss (it would need third-derivative bounds): margin NaN
    assert np.isnan(result.margin[minima]).all() and (result.margin_limit[minima] == -1).all()
    rng = np.random.default_rng(2)
    for run in minima:
        w, a = descent.w_final[run : run + 1], descent.a_final[run : run + 1]
        base = float(population_loss(w, a, teacher_w, teacher_a, 0.1)[0])
        for scale in (1e-3, 1e-4):
            dw = torch.as_tensor(rng.normal(size=(200, 3, 3)) * scale)
            da = torch.as_tensor(rng.normal(size=(200, 3, 1)) * scale)
            moved = population_loss(w + dw, a + da, teacher_w, teacher_a, 0.1)
            assert float(moved.min()) >= base - 1e-12


def test_non_finite_points_are_labelled_not_classified():
    teacher_w, teacher_a = orthonormal_teacher(2)
    w = torch.full((1, 2, 2), float("nan"), dtype=DTYPE)
    result = classify_population_batch(w, torch.ones(1, 2, 1, dtype=DTYPE), teacher_w, teacher_a, leak=0.0)
    assert names(result.point_type) == ["non_finite"]


def test_splitting_a_neuron_of_a_spurious_minimum_gives_a_certified_verdict():
    """Safran-Shamir, n = k + 1 (issue 12): splitting a neuron of a spurious minimum (theory.md 7, E3) gives a
    family of critical points. Its tangent counts as flat, so the test decides instead of giving up: on this
    smooth loss the split of this minimum is a saddle (the curvature matrix of the split is indefinite), with a
    witness that an independent evaluation confirms at shrinking steps."""
    k = 7
    teacher_w, teacher_a = orthonormal_teacher(k)
    generator = torch.Generator().manual_seed(3)
    w0 = torch.randn(4, k, k, dtype=DTYPE, generator=generator) / k**0.5
    a0 = torch.ones(4, k, 1, dtype=DTYPE)
    descent = run_population_gradient_descent(
        w0, a0, teacher_w, teacher_a, leak=0.0, learning_rate=0.1, max_steps=20000, train_output=False, grad_tol=1e-12
    )
    base = classify_population_batch(descent.w_final, descent.a_final, teacher_w, teacher_a, leak=0.0,
                                     train_output=False, realisable=True)  # fmt: skip
    spurious = np.flatnonzero(base.point_type == labels.code(labels.POINT_TYPE, "spurious_local_min"))
    assert spurious.size > 0
    w = descent.w_final[spurious[0]]
    for beta in (0.5, 0.2):
        split = torch.cat([w[:1] * beta, w[:1] * (1 - beta), w[1:]])[None]  # (1, k + 1, k)
        ones = torch.ones(1, k + 1, 1, dtype=DTYPE)
        result = classify_population_batch(split, ones, teacher_w, teacher_a, leak=0.0, train_output=False,
                                           realisable=True)  # fmt: skip
        assert names(result.point_type) == ["saddle"]
        loss = float(population_loss(split, ones, teacher_w, teacher_a, 0.0)[0])
        dw = torch.as_tensor(result.witness_w[0])
        for f in (1.0, 0.25, 0.0625):
            assert float(population_loss(split + f * dw, ones, teacher_w, teacher_a, 0.0)[0]) < loss


def test_students_converging_to_a_split_teacher_are_global_minima_by_their_loss():
    """Width k + 1 students reach zero loss with two neurons splitting one teacher neuron (still a little
    apart when the budget ends): ``F >= 0`` certifies them, where the Hessian test alone stays undetermined."""
    k = 4
    teacher_w, teacher_a = orthonormal_teacher(k)
    generator = torch.Generator().manual_seed(6)
    w0 = torch.randn(6, k + 1, k, dtype=DTYPE, generator=generator) / k**0.5
    a0 = torch.ones(6, k + 1, 1, dtype=DTYPE)
    descent = run_population_gradient_descent(
        w0, a0, teacher_w, teacher_a, leak=0.0, learning_rate=0.1, max_steps=20000, train_output=False, grad_tol=1e-12
    )
    result = classify_population_batch(descent.w_final, descent.a_final, teacher_w, teacher_a, leak=0.0,
                                       train_output=False, realisable=True)  # fmt: skip
    at_zero = descent.loss_final.numpy() <= 1e-9
    assert at_zero.any()
    assert set(names(result.point_type[at_zero])) == {"global_min"}
    assert {labels.CERTIFICATE[c] for c in result.certificate[at_zero]} == {"none"}


def _symmetric_descent(steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``steps`` of descent toward the symmetric saddle of two identical neurons (fixed output layer)."""
    teacher_w, teacher_a = orthonormal_teacher(2)
    u = torch.tensor([0.3, 0.3], dtype=DTYPE)
    w0, a0 = torch.stack([u, u])[None], torch.ones(1, 2, 1, dtype=DTYPE)
    descent = run_population_gradient_descent(
        w0, a0, teacher_w, teacher_a, leak=0.0, learning_rate=0.1, max_steps=steps, train_output=False
    )
    return descent.w_final, descent.a_final, teacher_w, teacher_a


def test_plateau_points_use_the_plateau_tolerances():
    # after 60 steps the relative gradient is ~6e-4: above the end-point tolerance 1e-6, below the plateau one 1e-2
    w, a, teacher_w, teacher_a = _symmetric_descent(60)
    options = dict(leak=0.0, train_output=False, realisable=True)
    end = classify_population_batch(w, a, teacher_w, teacher_a, mode="end_point", **options)
    plateau = classify_population_batch(w, a, teacher_w, teacher_a, mode="plateau", **options)
    assert 1e-6 < end.first_order_gap[0] < 1e-2
    assert names(end.point_type) == ["not_stationary"]
    assert names(plateau.point_type) == ["saddle"] and plateau.has_witness[0]
    assert labels.STATIONARITY[plateau.stationarity[0]] == "stationary"
    moved = population_loss(w + torch.as_tensor(plateau.witness_w), a, teacher_w, teacher_a, 0.0)
    assert float(moved[0]) < float(population_loss(w, a, teacher_w, teacher_a, 0.0)[0])


def test_tolerance_sensitive_marks_a_point_whose_type_changes_with_the_stationarity_tolerance():
    # gap ~0.04: not stationary at the plateau tolerance 1e-2, a saddle at 10 x 1e-2; far below the tolerance
    # (gap ~1e-8 after 400 steps) the type does not depend on it
    options = dict(leak=0.0, train_output=False, realisable=True, mode="plateau")
    near = classify_population_batch(*_symmetric_descent(20), **options)
    assert 1e-2 < near.first_order_gap[0] <= 1e-1
    assert names(near.point_type) == ["not_stationary"] and near.tolerance_sensitive[0]
    far = classify_population_batch(*_symmetric_descent(400), **options)
    assert names(far.point_type) == ["saddle"] and not far.tolerance_sensitive[0]


def test_the_batch_classifies_population_plateau_points_in_plateau_mode():
    """``simulate_batch`` classifies plateau points with ``mode="plateau"``: both population losses pass it on."""
    student = dict(activation=LeakyReLU(0.0), train_output=False, verdicts=VerdictOptions("realisable_target"))
    w, a, teacher_w, teacher_a = _symmetric_descent(60)
    gaussian = GaussianPopulationProblem(teacher_w, teacher_a, **student).classify(w, a, "plateau")
    assert names(gaussian.point_type) == ["saddle"]
    target = IntervalTarget(-1.0, 1.0, torch.tensor([[1.0]], dtype=DTYPE), torch.tensor([[0.5]], dtype=DTYPE))
    w = torch.tensor([[[1.0, 0.2], [-0.7, 0.1]]], dtype=DTYPE)
    a = torch.tensor([[[0.5], [0.3]]], dtype=DTYPE)
    for mode in ("end_point", "plateau"):
        interval = IntervalPopulationProblem(target, **student).classify(w, a, mode)
        direct = classify_interval_batch(w, a, target, leak=0.0, mode=mode)
        for field in dataclasses.fields(direct):
            np.testing.assert_array_equal(getattr(interval, field.name), getattr(direct, field.name))
