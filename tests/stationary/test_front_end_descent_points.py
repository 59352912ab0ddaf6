"""Verdicts of the per-point front end at points gradient descent produces, checked by code that shares nothing with it.

Gradient descent is stopped after a ladder of budgets, which gives points on and between its plateaus (and, for
the Gaussian loss, at the saddles that students with a duplicated neuron converge to), classified in plateau and
end-point mode. Every
``saddle`` must carry a witness that lowers an independent loss at every step ``2^-j`` of its length down to its
smallest verified step, and every certified minimum of positive loss must survive a perturbation search (for the
interval loss, whose search has no first-order allowance, at end points only, as for sampled data):

* Gaussian population: the arc-cosine-kernel loss and the autograd Hessian search of :mod:`tests.audit`
  (``population_witness_failure``, ``population_minimum_failure``);
* interval population: the loss by adaptive quadrature of :func:`tests.stationary.test_interval_points.oracle_loss`,
  and its random-perturbation search inside the dead-neuron radius;
* quadratic activation on sampled data: the loss written in numpy here, random perturbations at three radii.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.dynamics import descend
from pipeline.losses.activations import Quadratic
from pipeline.losses.interval_population import IntervalTarget, target_scale
from pipeline.problems import (
    SampledProblem,
    VerdictOptions,
    run_interval_gradient_descent,
    run_population_gradient_descent,
)
from pipeline.stationary import labels
from pipeline.stationary.interval_points import classify_interval_batch
from pipeline.stationary.population_points import classify_population_batch
from tests.audit import population_minimum_failure, population_witness_failure
from tests.stationary.test_interval_points import dead_radius, oracle_loss, perturbation_min_change

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DTYPE = torch.float64
BUDGETS = (100, 400, 1600, 6400)
MINIMA = ("global_min", "spurious_local_min", "local_min")


def _names(codes: np.ndarray) -> list[str]:
    return [labels.POINT_TYPE[code] for code in codes]


def _descent_points(run_descent, w0: torch.Tensor, a0: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The points gradient descent reaches after each budget of :data:`BUDGETS` (same starts)."""
    points = []
    for steps in BUDGETS:
        descent = run_descent(w0, a0, steps)
        points.append((descent.w_final.detach(), descent.a_final.detach()))
    return points


def _check_claimed_witness(record, run: int, name: str) -> None:
    """A saddle, and a point that is certified not to be a local minimum, carries its witness."""
    if name == "saddle" or record.is_local_min[run] == labels.code(labels.IS_LOCAL_MIN, "false"):
        assert record.has_witness[run], (run, name)


def test_gaussian_population_saddles_and_minima_at_descent_points_pass_the_independent_checks():
    gen = torch.Generator().manual_seed(3)
    runs, width, d = 12, 3, 3
    teacher_w = torch.eye(d, dtype=DTYPE)[None]
    teacher_a = torch.ones(1, d, 1, dtype=DTYPE)
    w0 = torch.randn(runs, width, d, generator=gen, dtype=DTYPE) / d**0.5
    a0 = torch.randn(runs, width, 1, generator=gen, dtype=DTYPE)
    w0[6:, 1], a0[6:, 1] = w0[6:, 0], a0[6:, 0]  # duplicated neurons stay duplicated: descent ends at saddles

    def run_descent(w, a, steps):
        return run_population_gradient_descent(
            w, a, teacher_w, teacher_a, leak=0.0, learning_rate=0.2, max_steps=steps, n_checkpoints=4
        )

    rng = np.random.default_rng(0)
    saddles = minima = descents = 0
    for w, a in _descent_points(run_descent, w0, a0):
        for mode in ("plateau", "end_point"):
            record = classify_population_batch(w, a, teacher_w, teacher_a, leak=0.0, realisable=True, mode=mode)
            for run, name in enumerate(_names(record.point_type)):
                point = (record.w[run], record.a[run])
                _check_claimed_witness(record, run, name)
                if record.has_witness[run]:
                    failure = population_witness_failure(
                        *point, record.witness_w[run], record.witness_a[run], record.witness_min_step[run],
                        teacher_w[0].numpy(), teacher_a[0].numpy(), 0.0,
                    )  # fmt: skip
                    assert failure is None, (mode, run, failure)
                    saddles += name == "saddle"
                    descents += name == "not_stationary"
                elif name in MINIMA and record.certificate[run] != labels.code(labels.CERTIFICATE, "none"):
                    failure = population_minimum_failure(
                        *point, teacher_w[0].numpy(), teacher_a[0].numpy(), 0.0, True, rng
                    )
                    assert failure is None, (mode, run, failure)
                    minima += 1
    assert saddles >= 10 and minima >= 5 and descents >= 10, (saddles, minima, descents)
    print(f"gaussian: {saddles} saddle witnesses, {descents} first-order descents, {minima} minima checked")


def test_interval_population_saddles_and_minima_at_descent_points_pass_the_independent_checks():
    gen = torch.Generator().manual_seed(4)
    runs, width, low, high = 10, 2, -1.0, 1.0
    slope = torch.randn(runs, 1, generator=gen, dtype=DTYPE)
    intercept = torch.randn(runs, 1, generator=gen, dtype=DTYPE)
    target = IntervalTarget(low, high, slope, intercept)
    w0 = 1e-2 * torch.randn(runs, width, 2, generator=gen, dtype=DTYPE)
    a0 = 1e-2 * torch.randn(runs, width, 1, generator=gen, dtype=DTYPE)

    def run_descent(w, a, steps):
        return run_interval_gradient_descent(w, a, target, leak=0.0, learning_rate=0.25, max_steps=steps)

    rng = np.random.default_rng(1)
    saddles = minima = descents = 0
    for w, a in _descent_points(run_descent, w0, a0):
        for mode in ("plateau", "end_point"):
            record = classify_interval_batch(w, a, target, leak=0.0, mode=mode)
            for run, name in enumerate(_names(record.point_type)):
                kappa, beta = float(slope[run, 0]), float(intercept[run, 0])
                point_w, point_a = record.w[run], record.a[run]
                base = oracle_loss(point_w, point_a, low, high, 0.0, kappa, beta)
                _check_claimed_witness(record, run, name)
                if record.has_witness[run]:
                    dw, da = record.witness_w[run], record.witness_a[run]
                    norm = float(np.sqrt((dw**2).sum() + (da**2).sum()))
                    scale = 1.0
                    while scale * norm >= record.witness_min_step[run] * (1 - 1e-9):
                        moved = oracle_loss(point_w + scale * dw, point_a + scale * da, low, high, 0.0, kappa, beta)
                        assert moved < base, (mode, run, scale, moved - base)
                        scale /= 2
                    saddles += name == "saddle"
                    descents += name == "not_stationary"
                elif name in ("spurious_local_min", "local_min") and mode == "end_point":
                    # (a plateau-mode minimum names the minimum a moving point is near: its gradient, up to the
                    # relaxed tolerance, is a first-order descent the search finds; end points must have none)
                    one = target.select(torch.tensor([run]))
                    radius = 0.5 * dead_radius(point_w, low, high)
                    change = perturbation_min_change(point_w, point_a, one, 0.0, rng, max_radius=radius)
                    assert change >= -1e-9 * (base + float(target_scale(one)[0]) ** 2), (mode, run, change)
                    minima += 1
    # (minima of gradient-descent end points: test_interval_points.test_brute_force_*)
    assert saddles >= 3 and descents >= 10, (saddles, descents)
    print(f"interval: {saddles} saddle witnesses, {descents} first-order descents, {minima} minima checked")


def test_quadratic_activation_saddles_and_minima_at_descent_points_pass_the_independent_checks():
    """Sampled data, ``rho(z) = z^2``: the loss written here in numpy; minima by random perturbations at 3 radii."""
    gen = torch.Generator().manual_seed(5)
    runs, width, n, d = 8, 2, 10, 2
    x = torch.randn(1, n, d, generator=gen, dtype=DTYPE)
    y = torch.randn(1, n, 1, generator=gen, dtype=DTYPE)
    w0 = 1e-2 * torch.randn(runs, width, d, generator=gen, dtype=DTYPE)
    a0 = 1e-2 * torch.randn(runs, width, 1, generator=gen, dtype=DTYPE)
    problem = SampledProblem(x, y, Quadratic(), True, VerdictOptions())
    xs, ys = x[0].numpy(), y[0].numpy()

    def loss(w: np.ndarray, a: np.ndarray) -> float:
        return 0.5 * float(np.sum(((xs @ w.T) ** 2 @ a - ys) ** 2)) / n

    rng = np.random.default_rng(2)
    saddles = minima = descents = 0
    for steps in BUDGETS:
        descent = descend(problem, w0, a0, learning_rate=0.05, max_steps=steps, n_checkpoints=4)
        for mode in ("plateau", "end_point"):
            record = problem.classify(descent.w_final, descent.a_final, mode)
            for run, name in enumerate(_names(record.point_type)):
                w, a = record.w[run], record.a[run]
                base = loss(w, a)
                _check_claimed_witness(record, run, name)
                if record.has_witness[run]:
                    dw, da = record.witness_w[run], record.witness_a[run]
                    norm = float(np.sqrt((dw**2).sum() + (da**2).sum()))
                    scale = 1.0
                    while scale * norm >= record.witness_min_step[run] * (1 - 1e-9):
                        assert loss(w + scale * dw, a + scale * da) < base, (mode, run, scale)
                        scale /= 2
                    saddles += name == "saddle"
                    descents += name == "not_stationary"
                elif name in MINIMA and mode == "end_point" and base > 0:
                    change = min(
                        loss(w + r * rng.normal(size=w.shape), a + r * rng.normal(size=a.shape)) - base
                        for r in (1e-2, 1e-3, 1e-4)
                        for _ in range(200)
                    )
                    assert change >= -1e-12 * base, (run, change)
                    minima += 1
    assert saddles >= 3 and descents >= 10, (saddles, descents)
    print(f"quadratic: {saddles} saddle witnesses, {descents} first-order descents, {minima} minima checked")
