"""The batched gradient-flow integrator against independent oracles (closed-form flows, gradient descent)."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.dynamics import FlowOptions, FlowResult, StopReason, flow
from pipeline.dynamics.flow_system import pack
from pipeline.losses.activations import Quadratic, as_activation
from pipeline.losses.interval_population import IntervalTarget, interval_loss
from pipeline.problems import (
    GaussianPopulationProblem,
    IntervalPopulationProblem,
    SampledProblem,
    run_gradient_descent,
    run_population_gradient_descent,
)

DTYPE = torch.float64


def run_gradient_flow(w0, a0, x, y, *, leak: float, options: FlowOptions, train_output: bool = True) -> FlowResult:
    """The flow of the sampled loss (the problem the survey builds for data sets)."""
    return flow(SampledProblem(x, y, as_activation(leak), train_output), w0, a0, options)


def run_population_gradient_flow(
    w0, a0, teacher_w, teacher_a, *, leak: float, options: FlowOptions, train_output: bool = True
) -> FlowResult:
    """The flow of the Gaussian population loss against a teacher."""
    return flow(GaussianPopulationProblem(teacher_w, teacher_a, as_activation(leak), train_output), w0, a0, options)


def _balanced_square(u0: float, target: float, rate: float, times: torch.Tensor) -> torch.Tensor:
    """``u(t)^2`` for ``du/dt = -rate (u^2 - target) u`` (a balanced scalar pair ``w = a = u``)."""
    return target / (1.0 + (target / u0**2 - 1.0) * torch.exp(-2.0 * rate * target * times))


def test_single_neuron_on_one_point_follows_the_closed_form() -> None:
    """``L = 1/2 (a w x - y)^2`` from a balanced start: ``u^2 = y / (1 + (y / u0^2 - 1) e^{-2 y t})``."""
    u0, target = 0.01, 1.5
    x = torch.tensor([[[1.0]]], dtype=DTYPE)
    y = torch.tensor([[[target]]], dtype=DTYPE)
    w0 = torch.full((1, 1, 1), u0, dtype=DTYPE)
    options = FlowOptions(learning_rate=0.01, max_time=8.0, rtol=1e-9, atol=1e-14, grad_tol=1e-12)
    result = run_gradient_flow(w0, w0.clone(), x, y, leak=0.0, options=options)
    times = result.descent.checkpoint_step.to(DTYPE) * options.learning_rate
    expected = 0.5 * (_balanced_square(u0, target, 1.0, times) - target) ** 2
    recorded = result.descent.checkpoint_loss[0]
    seen = torch.isfinite(recorded)
    assert seen.sum() > 20
    torch.testing.assert_close(recorded[seen], expected[seen], rtol=1e-6, atol=1e-12)


def test_linear_network_limit_follows_the_mode_by_mode_closed_form() -> None:
    """Leak -> 1: a linear network on whitened inputs (``X^T X / n = I``), target ``B = V diag(s) U^T``, from the
    balanced start aligned with the singular vectors (``w_j = u0 v_j``, ``a_j = u0 u_j``): the modes decouple
    (Saxe et al. 2014) and each follows ``du/dt = -(u^2 - s_j) u``, so ``L(t) = 1/2 sum_j (u_j(t)^2 - s_j)^2``.

    The leak is ``1 - 1e-9``, so the network is linear up to a relative ``1e-9``; the inputs are not orthogonal
    to any ``v_j``, so no pre-activation sits on its kink.
    """
    u0, strengths, angle = 1e-3, (2.0, 0.5), 0.3
    x = math.sqrt(2.0) * torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]], dtype=DTYPE)
    v = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=DTYPE)
    u = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=DTYPE)
    target = v @ torch.diag(torch.tensor(strengths, dtype=DTYPE)) @ u.T  # (d, k)
    y = x @ target
    w0, a0 = (u0 * v.T)[None], (u0 * u.T)[None]  # rows: w_j = u0 v_j, a_j = u0 u_j
    options = FlowOptions(learning_rate=0.01, max_time=20.0, rtol=1e-10, atol=1e-14, grad_tol=1e-12)
    result = run_gradient_flow(w0, a0, x, y, leak=1.0 - 1e-9, options=options)
    times = result.descent.checkpoint_step.to(DTYPE) * options.learning_rate
    expected = sum(0.5 * (_balanced_square(u0, s, 1.0, times) - s) ** 2 for s in strengths)
    recorded = result.descent.checkpoint_loss[0]
    seen = torch.isfinite(recorded)
    assert seen.sum() > 20
    torch.testing.assert_close(recorded[seen], expected[seen], rtol=1e-6, atol=1e-12)


def test_sliding_along_a_kink_follows_the_restricted_flow() -> None:
    """An attracting kink: ``w`` stays on ``x_1^perp`` and ``(w_2, a)`` follow the flow restricted to it.

    Data ``x_1 = (1, 0)`` with target -2 and ``x_2 = (1, 1)`` with target 1, one ReLU neuron starting at
    ``w = (0, u0)``, ``a = u0``. Both one-sided velocities of ``z_1 = w_1`` point into the kink while
    ``u^2 < 1``, so the Filippov flow slides: ``w_1 = 0`` and ``L = 1/4 ((u^2 - 1)^2 + 4)`` with
    ``du/dt = -(u^2 - 1) u / 2``. Gradient descent instead zig-zags across the kink.
    """
    u0 = 0.05
    x = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]], dtype=DTYPE)
    y = torch.tensor([[[-2.0], [1.0]]], dtype=DTYPE)
    w0 = torch.tensor([[[0.0, u0]]], dtype=DTYPE)
    a0 = torch.tensor([[[u0]]], dtype=DTYPE)
    options = FlowOptions(learning_rate=0.01, max_time=30.0, rtol=1e-9, atol=1e-14, grad_tol=1e-10)
    result = run_gradient_flow(w0, a0, x, y, leak=0.0, options=options)
    times = result.descent.checkpoint_step.to(DTYPE) * options.learning_rate
    expected = 0.25 * ((_balanced_square(u0, 1.0, 0.5, times) - 1.0) ** 2 + 4.0)
    recorded = result.descent.checkpoint_loss[0]
    seen = torch.isfinite(recorded)
    torch.testing.assert_close(recorded[seen], expected[seen], rtol=1e-6, atol=1e-12)
    assert abs(float(result.descent.w_final[0, 0, 0])) < 1e-9
    assert int(result.descent.stop_reason[0]) == StopReason.CONVERGED


def _data(n_runs: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n_runs, 6, 3, generator=generator, dtype=DTYPE)
    y = torch.randn(n_runs, 6, 1, generator=generator, dtype=DTYPE)
    w0 = 0.5 * torch.randn(n_runs, 4, 3, generator=generator, dtype=DTYPE)
    a0 = 0.5 * torch.randn(n_runs, 4, 1, generator=generator, dtype=DTYPE)
    return x, y, w0, a0


def test_a_neuron_the_filippov_flow_holds_at_the_origin_stays_there_without_chattering() -> None:
    """ReLU, ``x = +-1``, targets ``-1``, one neuron with its output weight fixed at 1: on either side ``w`` is
    driven back to 0, so the Filippov flow reaches ``w = 0`` at ``t = 2 ln(1 + w0)`` (``dw/dt = -(w + 1) / 2``) and
    stays there, at loss ``1/2``: a stationary point. Both one-sided flows meet at the origin, where no pair is on
    its kink in the relative sense, so without the origin rule the integrator would chatter across ``w = 0``.
    """
    x = torch.tensor([[[1.0], [-1.0]]], dtype=DTYPE)
    y = torch.tensor([[[-1.0], [-1.0]]], dtype=DTYPE)
    w0, a0 = torch.tensor([[[0.01]]], dtype=DTYPE), torch.tensor([[[1.0]]], dtype=DTYPE)
    options = FlowOptions(learning_rate=0.01, max_time=10.0, rtol=1e-8, atol=1e-14)
    result = run_gradient_flow(w0, a0, x, y, leak=0.0, options=options, train_output=False)
    # it stops converged where it arrives (the held neuron's gradient is the Filippov velocity, 0): no stall
    arrival = 2.0 * math.log(1.01)
    assert int(result.descent.stop_reason[0]) == int(StopReason.CONVERGED)
    assert float(result.time[0]) == pytest.approx(arrival, rel=1e-3)
    assert int(result.n_steps[0]) < 200
    assert abs(float(result.descent.w_final[0, 0, 0])) <= 1e-5
    assert float(result.descent.loss_final[0]) == pytest.approx(0.5, abs=1e-5)
    times = result.descent.checkpoint_step.to(DTYPE) * options.learning_rate
    before = torch.isfinite(result.descent.checkpoint_loss[0]) & (times < arrival)
    w_closed = (1.01 * torch.exp(-times[before] / 2.0) - 1.0).clamp(min=0.0)  # w(t) before it reaches 0
    expected = 0.25 * ((w_closed + 1.0) ** 2 + 1.0)
    torch.testing.assert_close(result.descent.checkpoint_loss[0][before], expected, rtol=1e-7, atol=1e-12)


def test_balancedness_is_conserved() -> None:
    """``||w_j||^2 - ||a_j||^2`` is constant along the flow (theory.md 6), kinks crossed included."""
    x, y, w0, a0 = _data(3)
    options = FlowOptions(learning_rate=0.05, max_time=40.0, rtol=1e-8, atol=1e-12)
    result = run_gradient_flow(w0, a0, x, y, leak=0.0, options=options)
    balance = result.descent.checkpoint_balance
    start = (w0.square().sum(-1) - a0.square().sum(-1)).unsqueeze(1).expand_as(balance)
    seen = torch.isfinite(balance)
    assert seen.any(dim=-1).sum() > 3 * 20
    torch.testing.assert_close(balance[seen], start[seen], rtol=0.0, atol=1e-6)


def test_gradient_descent_approaches_the_flow_at_first_order() -> None:
    """On a smooth stretch (all pairs active), ``|GD_eta(T) - flow(T)|`` halves when ``eta`` halves."""
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(1, 5, 2, generator=generator, dtype=DTYPE) + 0.5
    y = torch.rand(1, 5, 1, generator=generator, dtype=DTYPE) + 1.0
    w0 = 0.3 + 0.2 * torch.rand(1, 3, 2, generator=generator, dtype=DTYPE)
    a0 = 0.3 + 0.2 * torch.rand(1, 3, 1, generator=generator, dtype=DTYPE)
    horizon = 1.0
    options = FlowOptions(learning_rate=0.01, max_time=horizon, rtol=1e-11, atol=1e-14, grad_tol=1e-14)
    flow = run_gradient_flow(w0, a0, x, y, leak=0.0, options=options).descent
    errors = []
    for steps in (50, 100, 200):
        descent = run_gradient_descent(
            w0, a0, x, y, leak=0.0, learning_rate=horizon / steps, max_steps=steps, grad_tol=1e-14
        )
        errors.append(float(torch.linalg.vector_norm(descent.w_final - flow.w_final)))
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(1.8 < ratio < 2.2 for ratio in ratios), (errors, ratios)


def test_runs_are_independent_of_their_batch() -> None:
    """A batch of runs gives the numbers of each run alone (per-run step control and compaction)."""
    x, y, w0, a0 = _data(3, seed=1)
    options = FlowOptions(learning_rate=0.05, max_time=20.0)
    together = run_gradient_flow(w0, a0, x, y, leak=0.1, options=options)
    for run in range(3):
        alone = run_gradient_flow(w0[run : run + 1], a0[run : run + 1], x[run : run + 1], y[run : run + 1],
                                  leak=0.1, options=options)  # fmt: skip
        torch.testing.assert_close(alone.descent.w_final[0], together.descent.w_final[run], rtol=1e-8, atol=1e-10)
        assert int(alone.n_steps[0]) == int(together.n_steps[run])


def test_population_flow_reaches_gradient_descent_end_point() -> None:
    """Safran-Shamir population loss: the flow ends where small-step gradient descent ends, in fewer evaluations."""
    generator = torch.Generator().manual_seed(5)
    k = 3
    teacher_w, teacher_a = torch.eye(k, dtype=DTYPE)[None], torch.ones(1, k, 1, dtype=DTYPE)
    w0 = torch.randn(2, k, k, generator=generator, dtype=DTYPE) / math.sqrt(k)
    a0 = torch.ones(2, k, 1, dtype=DTYPE)
    descent = run_population_gradient_descent(
        w0, a0, teacher_w, teacher_a, leak=0.0, learning_rate=0.02, max_steps=10000, train_output=False,
        grad_tol=1e-7,
    )  # fmt: skip
    options = FlowOptions(learning_rate=0.02, max_time=200.0, grad_tol=1e-7)
    flow = run_population_gradient_flow(w0, a0, teacher_w, teacher_a, leak=0.0, options=options, train_output=False)
    torch.testing.assert_close(flow.descent.w_final, descent.w_final, rtol=0.0, atol=1e-4)
    assert (flow.n_gradients < descent.steps_taken).all()


@pytest.mark.parametrize("name", ["rtol", "atol", "learning_rate"])
def test_options_are_checked(name: str) -> None:
    x, y, w0, a0 = _data(1)
    options = FlowOptions(**{"learning_rate": 0.1, "max_time": 1.0, name: 0.0})
    with pytest.raises(ValueError, match=name):
        run_gradient_flow(w0, a0, x, y, leak=0.0, options=options)


def test_flow_records_the_plateaus_of_gradient_descent() -> None:
    """Vanishing initialisation (saddle-to-saddle): the flow's early plateaus are gradient descent's.

    Oracle: the plateaus gradient descent (learning rate 0.05) records with the same detector. Up to step 1,200
    (before the trajectories reach the saddles where they may part), every plateau of gradient descent has one of
    the flow at the same loss (0.5%) that starts within 5% of its step (plus 10 steps). Ends are compared loosely
    (25%): a plateau ends when the slow escape from its saddle reaches the detector's rate, which the first-order
    difference between the two dynamics shifts the most.
    """
    generator = torch.Generator().manual_seed(1)
    n_runs = 6
    x = torch.randn(n_runs, 8, 2, generator=generator, dtype=DTYPE)
    y = torch.randn(n_runs, 8, 1, generator=generator, dtype=DTYPE)
    w0 = 1e-6 * torch.randn(n_runs, 8, 2, generator=generator, dtype=DTYPE)
    direction = torch.randn(n_runs, 8, 1, generator=generator, dtype=DTYPE)
    a0 = direction / direction.norm(dim=-1, keepdim=True) * w0.norm(dim=-1, keepdim=True)
    descent = run_gradient_descent(w0, a0, x, y, leak=0.0, learning_rate=0.05, max_steps=3000, grad_tol=1e-9)
    options = FlowOptions(learning_rate=0.05, max_time=150.0, grad_tol=1e-9)
    flowed = run_gradient_flow(w0, a0, x, y, leak=0.0, options=options).descent
    compared = 0
    for run in range(n_runs):
        assert int(flowed.n_plateaus[run]) >= 1  # the saddle at the origin
        found = zip(flowed.plateau_start[run], flowed.plateau_end[run], flowed.plateau_loss[run], strict=True)
        ours = [(int(s), int(e), float(v)) for s, e, v in found if s >= 0]
        known = zip(descent.plateau_start[run], descent.plateau_end[run], descent.plateau_loss[run], strict=True)
        for start, end, level in known:
            if not 0 <= start < 1200:
                continue
            compared += 1
            assert any(
                abs(v - level) <= 5e-3 * level
                and abs(s - start) <= 0.05 * start + 10
                and (abs(e - end) <= 0.25 * end or min(e, end) >= 3000)
                for s, e, v in ours
            ), (run, int(start), int(end), float(level), ours)
    assert compared >= 10


@pytest.mark.parametrize("activation", [0.0, 0.1, Quadratic()])
def test_interval_flow_hessian_is_the_autograd_hessian_of_each_run(activation: float | Quadratic) -> None:
    """Oracle: ``torch.autograd.functional.hessian`` of one run's exact interval loss, run by run."""
    generator = torch.Generator().manual_seed(0)
    n_runs, width, k = 3, 3, 2
    target = IntervalTarget(-1.0, 2.0, torch.randn(n_runs, k, generator=generator, dtype=DTYPE),
                            torch.randn(n_runs, k, generator=generator, dtype=DTYPE))  # fmt: skip
    w = torch.randn(n_runs, width, 2, generator=generator, dtype=DTYPE)
    a = torch.randn(n_runs, width, k, generator=generator, dtype=DTYPE)
    rho = as_activation(activation)
    system = IntervalPopulationProblem(target, rho, True).flow_system(a)
    theta = pack(w, a, True)
    hessian = system.hessian(theta)
    for run in range(n_runs):
        one = target.select(torch.tensor([run]))

        def loss(flat: torch.Tensor, one: IntervalTarget = one) -> torch.Tensor:
            return interval_loss(flat[: width * 2].reshape(1, width, 2), flat[width * 2 :].reshape(1, width, k), one,
                                 rho).sum()  # fmt: skip

        expected = torch.autograd.functional.hessian(loss, theta[run])
        torch.testing.assert_close(hessian[run], expected, rtol=1e-10, atol=1e-12)
