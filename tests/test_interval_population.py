"""Oracle tests of the interval population loss (pipeline.losses.interval_population, theory.md section 9).

The oracle is written here from the definition, sharing no code with the module: the network
``N(x) = c + sum_j a_j rho(w_j x + b_j)`` with ``rho(z) = max(z, leak z)``, the affine target
``f(x) = intercept + slope x`` on ``[low, high]``, and the loss
``L = 1 / (2 (high - low)) int ||N - f||^2 dx`` integrated by ``scipy.integrate.quad`` (adaptive
Gauss-Kronrod, told where the breakpoints are), the output bias ``c`` minimised out explicitly. The
gradient oracle is central finite differences of that loss; the engine is checked against the loss it
claims to descend.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import torch

from pipeline.dynamics import StopReason
from pipeline.losses.interval_population import (
    IntervalTarget,
    IntervalWorkspace,
    breakpoints,
    interval_gradients,
    interval_loss,
    quadrature,
    target_scale,
)
from pipeline.problems import run_interval_gradient_descent

DTYPE = torch.float64
LEAKS = (0.0, 0.1, 0.3)
INTERVALS = ((-1.0, 1.0), (-1.0, 2.0), (0.5, 3.0))
QUAD = {"epsabs": 1e-14, "epsrel": 1e-12, "limit": 200}


# ----------------------------------------------------------------------------------------------
# The independent oracle (numpy + scipy.integrate.quad)
# ----------------------------------------------------------------------------------------------


def rho(z: float, leak: float) -> float:
    """``max(z, leak z)`` for a scalar."""
    return z if z > 0.0 else leak * z


def inner_breaks(w: np.ndarray, low: float, high: float) -> list[float]:
    """Breakpoints ``-b_j / w_j`` strictly inside ``(low, high)``: the kinks quad must be told about."""
    return sorted({-b / s for s, b in w if s != 0.0 and low < -b / s < high})


def network0(x: float, w: np.ndarray, a: np.ndarray, leak: float) -> np.ndarray:
    """``N_0(x) = sum_j a_j rho(w_j x + b_j)`` (no output bias), shape (k,)."""
    out = np.zeros(a.shape[1])
    for (s, b), a_j in zip(w, a, strict=True):
        out = out + a_j * rho(s * x + b, leak)
    return out


def integrate(g: Callable[[float], float], w: np.ndarray, low: float, high: float) -> float:
    """``int_low^high g`` by adaptive quadrature with the kinks as break points."""
    points = inner_breaks(w, low, high)
    value, _ = scipy.integrate.quad(g, low, high, points=points or None, **QUAD)
    return value


def oracle_bias(
    w: np.ndarray, a: np.ndarray, low: float, high: float, slope: np.ndarray, intercept: np.ndarray, leak: float
) -> np.ndarray:
    """Optimal output bias ``c* = mean(f - N_0)`` (closed form of the minimiser of a quadratic in c)."""

    def mean_gap(q: int) -> float:
        return integrate(lambda x: float(intercept[q] + slope[q] * x - network0(x, w, a, leak)[q]), w, low, high)

    return np.array([mean_gap(q) for q in range(a.shape[1])]) / (high - low)


def oracle_full_loss(
    w: np.ndarray,
    a: np.ndarray,
    c: np.ndarray,
    low: float,
    high: float,
    slope: np.ndarray,
    intercept: np.ndarray,
    leak: float,
) -> float:
    """``L(w, a, c) = 1 / (2 (high - low)) int ||c + N_0 - f||^2 dx``."""

    def integrand(x: float) -> float:
        e = c + network0(x, w, a, leak) - intercept - slope * x
        return float(e @ e)

    return integrate(integrand, w, low, high) / (2.0 * (high - low))


def oracle_loss(
    w: np.ndarray, a: np.ndarray, low: float, high: float, slope: np.ndarray, intercept: np.ndarray, leak: float
) -> float:
    """Profiled loss ``P(w, a) = L(w, a, c*)``."""
    c = oracle_bias(w, a, low, high, slope, intercept, leak)
    return oracle_full_loss(w, a, c, low, high, slope, intercept, leak)


# ----------------------------------------------------------------------------------------------
# Test points
# ----------------------------------------------------------------------------------------------


class Case:
    """One point ``(w, a)`` with its target; numpy float64 and the torch batch of one."""

    def __init__(
        self,
        w: np.ndarray,
        a: np.ndarray,
        low: float,
        high: float,
        slope: np.ndarray,
        intercept: np.ndarray,
        leak: float,
    ) -> None:
        self.w, self.a, self.low, self.high = w, a, low, high
        self.slope, self.intercept, self.leak = slope, intercept, leak

    def target(self) -> IntervalTarget:
        return IntervalTarget(
            self.low, self.high, torch.tensor(self.slope[None], dtype=DTYPE), torch.tensor(self.intercept[None])
        )

    def torch_point(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(self.w[None], dtype=DTYPE), torch.tensor(self.a[None], dtype=DTYPE)

    def oracle(self, w: np.ndarray | None = None, a: np.ndarray | None = None) -> float:
        w = self.w if w is None else w
        a = self.a if a is None else a
        return oracle_loss(w, a, self.low, self.high, self.slope, self.intercept, self.leak)

    def module_loss(self) -> float:
        return float(interval_loss(*self.torch_point(), self.target(), self.leak)[0])


def special_neuron(kind: str, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """A row ``(w_j, b_j)`` of the given kind relative to ``[low, high]``."""
    length = high - low
    s = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 2.0)
    if kind == "inside":  # breakpoint strictly inside, away from the ends
        t = rng.uniform(low + 0.1 * length, high - 0.1 * length)
    elif kind == "outside_active":  # breakpoint outside, the neuron active (affine) on the whole interval
        t = low - rng.uniform(0.2, 1.0) * length if s > 0 else high + rng.uniform(0.2, 1.0) * length
    elif kind == "dead":  # breakpoint outside, strictly negative on the interval
        t = high + rng.uniform(0.2, 1.0) * length if s > 0 else low - rng.uniform(0.2, 1.0) * length
    elif kind == "constant":  # w_j = 0: a constant neuron rho(b_j)
        return np.array([0.0, rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.5)])
    else:
        raise AssertionError(kind)
    return np.array([s, -s * t])


def make_case(width: int, k: int, low: float, high: float, leak: float, seed: int) -> Case:
    """A random point whose neurons cycle through inside / outside-active / dead / constant kinds."""
    rng = np.random.default_rng(seed)
    kinds = ("inside", "dead", "constant", "outside_active", "inside")
    w = np.stack([special_neuron(kinds[j % len(kinds)], low, high, rng) for j in range(width)])
    a = rng.normal(size=(width, k))
    return Case(w, a, low, high, rng.normal(size=k), rng.normal(size=k), leak)


GRID = [
    (leak, k, width, interval)
    for leak in LEAKS
    for k in (1, 2)
    for width in (1, 3, 5)
    for interval in INTERVALS
    if not (leak == 0.3 and width == 3)  # keep the grid small; leak 0.3 is covered by widths 1 and 5
]


def grid_case(leak: float, k: int, width: int, interval: tuple[float, float], salt: int = 0) -> Case:
    seed = zlib.crc32(repr((leak, k, width, interval, salt)).encode())
    return make_case(width, k, interval[0], interval[1], leak, seed)


# ----------------------------------------------------------------------------------------------
# 1. The loss
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("leak", "k", "width", "interval"), GRID)
def test_loss_matches_quadrature_oracle(leak: float, k: int, width: int, interval: tuple[float, float]) -> None:
    """Oracle: quad of the network definition with c = c* (the profiled loss)."""
    for salt in range(2):
        case = grid_case(leak, k, width, interval, salt)
        assert case.module_loss() == pytest.approx(case.oracle(), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("leak", [0.0, 0.1])
@pytest.mark.parametrize("k", [1, 2])
def test_profiled_bias_is_the_minimiser_over_c(leak: float, k: int) -> None:
    """Oracle: scipy.optimize.minimize_scalar over each output's bias of the unprofiled quad loss."""
    case = make_case(5, k, -1.0, 2.0, leak, seed=11)
    c_star = oracle_bias(case.w, case.a, case.low, case.high, case.slope, case.intercept, leak)
    c_num = c_star.copy()
    for q in range(k):  # the loss separates over the outputs: minimise one bias at a time

        def loss_of(value: float, q: int = q) -> float:
            c = c_num.copy()
            c[q] = value
            return oracle_full_loss(case.w, case.a, c, case.low, case.high, case.slope, case.intercept, leak)

        found = scipy.optimize.minimize_scalar(loss_of, bracket=(-10.0, 10.0), options={"xtol": 1e-12})
        c_num[q] = found.x
    np.testing.assert_allclose(c_num, c_star, rtol=1e-6, atol=1e-6)
    minimum = oracle_full_loss(case.w, case.a, c_num, case.low, case.high, case.slope, case.intercept, leak)
    assert case.module_loss() == pytest.approx(minimum, rel=1e-10)
    # and any other bias is worse by exactly 1/2 ||c - c*||^2 (unit curvature)
    shift = np.linspace(0.3, -0.2, k)
    other = oracle_full_loss(case.w, case.a, c_star + shift, case.low, case.high, case.slope, case.intercept, leak)
    assert other - case.module_loss() == pytest.approx(0.5 * float(shift @ shift), rel=1e-10)


@pytest.mark.parametrize("leak", [0.0, 0.3])
def test_loss_of_special_neurons_in_closed_form(leak: float) -> None:
    """Oracle: hand integration. A dead ReLU neuron, a constant neuron and a neuron active on the whole
    interval leave an affine network ``N_0 = S x + const``, so ``P = (slope - S)^2 (high - low)^2 / 24``."""
    low, high = -1.0, 2.0
    slope, intercept = np.array([1.5]), np.array([0.3])
    w = np.array([[1.0, -3.0], [0.0, 0.7], [0.0, -0.4], [-2.0, 5.0]])  # dead, const, const, active (t = 2.5)
    a = np.array([[0.9], [1.3], [-0.8], [0.25]])
    s_total = leak * 0.9 * 1.0 + (-2.0) * 0.25  # the dead neuron leaks with slope leak * a_0 * w_0
    expected = (slope[0] - s_total) ** 2 * (high - low) ** 2 / 24.0
    case = Case(w, a, low, high, slope, intercept, leak)
    assert case.oracle() == pytest.approx(expected, rel=1e-12)
    assert case.module_loss() == pytest.approx(expected, rel=1e-12)


def test_loss_is_invariant_under_positive_rescaling_and_permutation() -> None:
    """Oracle: ``rho(c z) = c rho(z)`` for ``c > 0`` and the sum over neurons is unordered."""
    case = make_case(5, 2, -1.0, 2.0, 0.1, seed=3)
    w, a = case.torch_point()
    scale = torch.tensor([0.5, 3.0, 1.0, 2.0, 0.25], dtype=DTYPE)[None, :, None]
    order = torch.tensor([3, 1, 4, 0, 2])
    moved = interval_loss((w * scale)[:, order], (a / scale)[:, order], case.target(), case.leak)
    assert float(moved[0]) == pytest.approx(case.module_loss(), rel=1e-13)


def test_batched_loss_with_per_run_targets() -> None:
    """Oracle: quad per run; one call on a batch of runs with per-run targets matches every run."""
    cases = [make_case(3, 2, 0.5, 3.0, 0.1, seed=s) for s in range(4)]
    w = torch.tensor(np.stack([c.w for c in cases]), dtype=DTYPE)
    a = torch.tensor(np.stack([c.a for c in cases]), dtype=DTYPE)
    target = IntervalTarget(
        0.5,
        3.0,
        torch.tensor(np.stack([c.slope for c in cases]), dtype=DTYPE),
        torch.tensor(np.stack([c.intercept for c in cases]), dtype=DTYPE),
    )
    loss = interval_loss(w, a, target, 0.1).numpy()
    np.testing.assert_allclose(loss, [c.oracle() for c in cases], rtol=1e-12)


def test_quadrature_breakpoints_and_target_scale() -> None:
    """Oracle: the definitions. Weights are a probability vector on [low, high]; breakpoints are
    ``-b/w`` clamped to the interval (``low`` for ``w = 0``); ``target_scale^2 = mean ||f||^2`` by quad."""
    low, high = -1.0, 2.0
    w = torch.tensor([[[1.0, -0.5], [2.0, 6.0], [0.0, 1.0], [-1.0, 3.0]]], dtype=DTYPE)
    np.testing.assert_allclose(breakpoints(w, low, high).numpy(), [[0.5, low, low, high]])
    nodes, weights = quadrature(w, low, high)
    assert nodes.shape == weights.shape == (1, 2 * (4 + 1))
    assert float(weights.sum()) == pytest.approx(1.0, rel=1e-14)
    assert bool((nodes >= low).all() and (nodes <= high).all() and (weights >= 0).all())
    used = nodes[weights > 0]  # two segments of positive length (the kink at 0.5); their nodes lie strictly inside
    assert used.numel() == 4 and bool((used > low).all() and (used < high).all())
    # the rule integrates a cubic on each segment exactly; the breakpoint 0.5 is a segment end
    kinked = torch.clamp(nodes - 0.5, min=0.0) ** 3
    assert float((weights * kinked).sum()) == pytest.approx(1.5**4 / 4 / (high - low), rel=1e-13)
    slope, intercept = np.array([1.5, -0.7]), np.array([0.3, 2.0])
    target = IntervalTarget(low, high, torch.tensor(slope[None]), torch.tensor(intercept[None]))
    mean_square = integrate(lambda x: float(np.sum((intercept + slope * x) ** 2)), np.zeros((0, 2)), low, high)
    assert float(target_scale(target)[0]) ** 2 == pytest.approx(mean_square / (high - low), rel=1e-13)


# ----------------------------------------------------------------------------------------------
# 2. Gradients
# ----------------------------------------------------------------------------------------------


def finite_difference_gradient(case: Case, h: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of the quad oracle in every coordinate of ``w`` and ``a``."""
    grads = []
    for name in ("w", "a"):
        base = getattr(case, name)
        grad = np.zeros_like(base)
        for index in np.ndindex(base.shape):
            plus, minus = base.copy(), base.copy()
            plus[index] += h
            minus[index] -= h
            kwargs_plus, kwargs_minus = {name: plus}, {name: minus}
            grad[index] = (case.oracle(**kwargs_plus) - case.oracle(**kwargs_minus)) / (2.0 * h)
        grads.append(grad)
    return grads[0], grads[1]


GRADIENT_GRID = [
    (leak, k, width, interval)
    for (leak, k, width, interval) in GRID
    if (width, interval) in {(1, INTERVALS[0]), (3, INTERVALS[1]), (5, INTERVALS[2])}
]


@pytest.mark.parametrize(("leak", "k", "width", "interval"), GRADIENT_GRID)
def test_gradients_match_finite_differences_of_the_oracle(
    leak: float, k: int, width: int, interval: tuple[float, float]
) -> None:
    """Oracle: central finite differences of the quad loss (breakpoints away from the ends, no zero neuron)."""
    case = grid_case(leak, k, width, interval)
    grads = interval_gradients(*case.torch_point(), case.target(), leak)
    fd_w, fd_a = finite_difference_gradient(case)
    scale = max(np.abs(fd_w).max(), np.abs(fd_a).max())
    np.testing.assert_allclose(grads.grad_w[0].numpy(), fd_w, rtol=1e-6, atol=1e-8 * scale)
    np.testing.assert_allclose(grads.grad_a[0].numpy(), fd_a, rtol=1e-6, atol=1e-8 * scale)
    assert float(grads.loss[0]) == pytest.approx(case.oracle(), rel=1e-12)
    assert grads.residual.shape == (1, 0, k)


@pytest.mark.parametrize(("leak", "k", "width", "interval"), GRID)
def test_gradients_match_autograd_of_the_loss(leak: float, k: int, width: int, interval: tuple[float, float]) -> None:
    """Oracle: torch autograd of ``interval_loss`` (the closed-form gradient is its derivative)."""
    case = grid_case(leak, k, width, interval, salt=1)
    w, a = case.torch_point()
    w.requires_grad_(True)
    a.requires_grad_(True)
    grad_w, grad_a = torch.autograd.grad(interval_loss(w, a, case.target(), leak).sum(), (w, a))
    grads = interval_gradients(w.detach(), a.detach(), case.target(), leak)
    np.testing.assert_allclose(grads.grad_w.numpy(), grad_w.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(grads.grad_a.numpy(), grad_a.numpy(), rtol=1e-10, atol=1e-13)


def test_frozen_output_layer_gives_zero_output_gradient() -> None:
    """Oracle: the definition of ``train_output=False`` (grad_a zero, grad_w and loss unchanged)."""
    case = make_case(3, 2, -1.0, 2.0, 0.1, seed=5)
    both = interval_gradients(*case.torch_point(), case.target(), 0.1)
    frozen = interval_gradients(*case.torch_point(), case.target(), 0.1, train_output=False)
    assert torch.equal(frozen.grad_a, torch.zeros_like(frozen.grad_a))
    torch.testing.assert_close(frozen.grad_w, both.grad_w, rtol=0, atol=0)
    torch.testing.assert_close(frozen.loss, both.loss, rtol=0, atol=0)


def test_workspace_rejects_bad_arguments() -> None:
    """Oracle: the documented argument ranges and shapes."""
    case = make_case(3, 1, -1.0, 1.0, 0.0, seed=2)
    with pytest.raises(ValueError, match="leak"):
        IntervalWorkspace(case.target(), 1, 3, 1.0)
    with pytest.raises(ValueError, match="runs"):
        IntervalWorkspace(IntervalTarget(-1.0, 1.0, torch.ones(3, 1, dtype=DTYPE), torch.ones(3, 1)), 2, 3, 0.0)
    workspace = IntervalWorkspace(case.target(), 1, 3, 0.0)
    with pytest.raises(ValueError, match="must be"):
        workspace(torch.zeros(1, 2, 2, dtype=DTYPE), torch.zeros(1, 2, 1, dtype=DTYPE))


# ----------------------------------------------------------------------------------------------
# 3. Hessian
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("leak", "k", "width", "interval"), GRADIENT_GRID)
def test_hessian_by_autograd_matches_finite_differences_of_gradients(
    leak: float, k: int, width: int, interval: tuple[float, float]
) -> None:
    """Oracle: central differences of ``interval_gradients`` (exact first derivatives, checked above)
    at points whose breakpoints are strictly inside or strictly outside the interval."""
    case = grid_case(leak, k, width, interval, salt=2)
    target = case.target()
    n_w = width * 2

    def loss_of(theta: torch.Tensor) -> torch.Tensor:
        return interval_loss(theta[:n_w].reshape(1, width, 2), theta[n_w:].reshape(1, width, k), target, leak)[0]

    w, a = case.torch_point()
    theta = torch.cat([w.reshape(-1), a.reshape(-1)])
    hessian = torch.func.hessian(loss_of)(theta).numpy()

    def gradient(vector: torch.Tensor) -> np.ndarray:
        g = interval_gradients(vector[:n_w].reshape(1, width, 2), vector[n_w:].reshape(1, width, k), target, leak)
        return torch.cat([g.grad_w.reshape(-1), g.grad_a.reshape(-1)]).numpy()

    h = 1e-6
    fd = np.zeros_like(hessian)
    for i in range(theta.numel()):
        step = torch.zeros_like(theta)
        step[i] = h
        fd[:, i] = (gradient(theta + step) - gradient(theta - step)) / (2.0 * h)
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-12 * np.abs(hessian).max())
    np.testing.assert_allclose(hessian, fd, rtol=1e-6, atol=1e-7 * np.abs(hessian).max())


def test_hessian_of_an_affine_network_in_closed_form() -> None:
    """Oracle: for one neuron active on the whole interval, ``P = 1/2 var(x) (a w - slope)^2``, so in
    ``(w, b, a)`` the Hessian is ``var(x) [[a^2, 0, 2 a w - slope], [0, 0, 0], [2 a w - slope, 0, w^2]]``."""
    low, high = -1.0, 2.0
    s, b, a_val, kappa = 1.3, 2.0, 0.4, 1.5
    variance = (high - low) ** 2 / 12.0
    target = IntervalTarget(low, high, torch.tensor([[kappa]], dtype=DTYPE), torch.tensor([[0.3]], dtype=DTYPE))

    def loss_of(theta: torch.Tensor) -> torch.Tensor:
        return interval_loss(theta[:2].reshape(1, 1, 2), theta[2:].reshape(1, 1, 1), target, 0.0)[0]

    hessian = torch.func.hessian(loss_of)(torch.tensor([s, b, a_val], dtype=DTYPE)).numpy()
    cross = 2.0 * a_val * s - kappa
    expected = variance * np.array([[a_val**2, 0.0, cross], [0.0, 0.0, 0.0], [cross, 0.0, s**2]])
    np.testing.assert_allclose(hessian, expected, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# 4. Gradient descent on the interval loss
# ----------------------------------------------------------------------------------------------


def affine_target(slope: list[list[float]], intercept: list[list[float]], low: float = -1.0, high: float = 1.0):
    return IntervalTarget(low, high, torch.tensor(slope, dtype=DTYPE), torch.tensor(intercept, dtype=DTYPE))


@pytest.mark.parametrize("leak", [0.0, 0.1])
def test_descent_lowers_the_loss_monotonically(leak: float) -> None:
    """Oracle: the quad loss at the start and at the end; a small step never raises the loss."""
    gen = torch.Generator().manual_seed(7)
    w0 = torch.randn(4, 3, 2, generator=gen, dtype=DTYPE)
    a0 = torch.randn(4, 3, 2, generator=gen, dtype=DTYPE)
    target = affine_target([[1.5, -0.5]], [[0.3, 0.2]], -1.0, 2.0)
    result = run_interval_gradient_descent(w0, a0, target, leak=leak, learning_rate=0.02, max_steps=400)
    for run in range(4):
        start = oracle_loss(
            w0[run].numpy(), a0[run].numpy(), -1.0, 2.0, np.array([1.5, -0.5]), np.array([0.3, 0.2]), leak
        )
        end = oracle_loss(
            result.w_final[run].numpy(),
            result.a_final[run].numpy(),
            -1.0,
            2.0,
            np.array([1.5, -0.5]),
            np.array([0.3, 0.2]),
            leak,
        )
        assert end < 0.9 * start
        assert float(result.loss_final[run]) == pytest.approx(end, rel=1e-10, abs=1e-15)
        recorded = result.checkpoint_loss[run]
        history = recorded[~torch.isnan(recorded)].numpy()
        assert history[0] == pytest.approx(start, rel=1e-12)
        assert np.all(np.diff(history) <= 1e-14 * history[0])


def test_batch_of_runs_equals_single_runs() -> None:
    """Oracle: R separate calls. Runs do not interact; per-run targets are used per run."""
    gen = torch.Generator().manual_seed(3)
    n_runs = 5
    w0 = torch.randn(n_runs, 3, 2, generator=gen, dtype=DTYPE)
    a0 = torch.randn(n_runs, 3, 1, generator=gen, dtype=DTYPE)
    slope = torch.randn(n_runs, 1, generator=gen, dtype=DTYPE)
    intercept = torch.randn(n_runs, 1, generator=gen, dtype=DTYPE)
    settings: dict[str, Any] = {
        "leak": 0.0,
        "learning_rate": 0.05,
        "max_steps": 150,
        "grad_tol": 1e-3,
    }  # some runs stop early
    batch = run_interval_gradient_descent(w0, a0, IntervalTarget(0.5, 3.0, slope, intercept), **settings)
    for run in range(n_runs):
        target = IntervalTarget(0.5, 3.0, slope[run : run + 1], intercept[run : run + 1])
        single = run_interval_gradient_descent(w0[run : run + 1], a0[run : run + 1], target, **settings)
        for field in ("w_final", "a_final", "loss_final", "grad_norm_final", "checkpoint_loss"):
            torch.testing.assert_close(
                getattr(batch, field)[run], getattr(single, field)[0], rtol=1e-12, atol=1e-12, equal_nan=True
            )
        assert int(batch.steps_taken[run]) == int(single.steps_taken[0])
        assert int(batch.stop_reason[run]) == int(single.stop_reason[0])
    assert len(set(batch.steps_taken.tolist())) > 1, "the runs should stop at different steps"


@pytest.mark.parametrize(("low", "high"), [(-1.0, 1.0), (0.0, 2.0)])
def test_one_fully_active_relu_neuron_fits_an_affine_target(low: float, high: float) -> None:
    """Oracle: theory 9.3, one active ReLU neuron plus the bias represents any affine target (min P = 0)."""
    w0 = torch.tensor([[[1.0, 2.0 - low]]], dtype=DTYPE)  # breakpoint low - 2: active on the interval
    a0 = torch.tensor([[[0.5]]], dtype=DTYPE)
    target = affine_target([[1.5]], [[0.3]], low, high)
    result = run_interval_gradient_descent(w0, a0, target, leak=0.0, learning_rate=0.05, max_steps=20000)
    assert int(result.stop_reason[0]) == int(StopReason.CONVERGED)
    assert float(result.loss_final[0]) < 1e-14
    w_end, a_end = result.w_final[0, 0].numpy(), result.a_final[0, 0].numpy()
    assert a_end[0] * w_end[0] == pytest.approx(1.5, rel=1e-6)  # the network's slope is the target's
    assert -w_end[1] / w_end[0] < low  # still active on the whole interval
    final = oracle_loss(w_end[None], a_end[None], low, high, np.array([1.5]), np.array([0.3]), 0.0)
    assert final < 1e-14


def test_descent_with_frozen_output_keeps_a() -> None:
    """Oracle: the definition of ``train_output=False``."""
    w0 = torch.tensor([[[1.0, 0.2], [-0.5, 0.1]]], dtype=DTYPE)
    a0 = torch.tensor([[[0.7], [0.4]]], dtype=DTYPE)
    result = run_interval_gradient_descent(
        w0, a0, affine_target([[1.5]], [[0.3]]), leak=0.1, learning_rate=0.05, max_steps=50, train_output=False
    )
    assert torch.equal(result.a_final, a0)
    assert not torch.equal(result.w_final, w0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: affine_target([[1.0]], [[0.0]], 1.0, 1.0), "low < high"),
        (lambda: affine_target([[1.0]], [[0.0]], 2.0, -1.0), "low < high"),
        (lambda: affine_target([[1.0]], [[0.0]], -math.inf, 1.0), "finite"),
        (lambda: affine_target([[1.0, 2.0]], [[0.0]]), "slope"),
        (lambda: IntervalTarget(-1.0, 1.0, torch.ones(2, dtype=DTYPE), torch.ones(2, dtype=DTYPE)), "slope"),
    ],
)
def test_bad_targets_are_rejected(make: Callable[[], IntervalTarget], message: str) -> None:
    """Oracle: the documented constraints of IntervalTarget (finite low < high, slope and intercept (R or 1, k))."""
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("w_shape", "a_shape", "slope_runs", "k", "message"),
    [
        ((2, 3, 3), (2, 3, 1), 1, 1, "expected \\(R, m, 2\\)"),  # w0 without the (w_j, b_j) layout
        ((2, 3, 1), (2, 3, 1), 1, 1, "expected \\(R, m, 2\\)"),
        ((2, 3, 2), (2, 4, 1), 1, 1, "a0"),  # widths disagree
        ((2, 3, 2), (2, 3, 2), 1, 1, "k from a0"),  # output sizes disagree
        ((2, 3, 2), (2, 3, 1), 3, 1, "expected 1 \\(shared\\) or 2"),  # per-run targets for the wrong R
        ((2, 3), (2, 3, 1), 1, 1, "w0 must be a 3-d"),
    ],
)
def test_descent_rejects_inconsistent_shapes(
    w_shape: tuple[int, ...], a_shape: tuple[int, ...], slope_runs: int, k: int, message: str
) -> None:
    """Oracle: the documented shapes w0 (R, m, 2), a0 (R, m, k), slope and intercept (R or 1, k)."""
    target = IntervalTarget(-1.0, 1.0, torch.ones(slope_runs, k, dtype=DTYPE), torch.zeros(slope_runs, k, dtype=DTYPE))
    with pytest.raises(ValueError, match=message):
        run_interval_gradient_descent(
            torch.zeros(w_shape, dtype=DTYPE),
            torch.zeros(a_shape, dtype=DTYPE),
            target,
            leak=0.0,
            learning_rate=0.1,
            max_steps=10,
        )


@pytest.mark.parametrize(
    ("setting", "message"),
    [({"leak": 1.0}, "leak"), ({"learning_rate": 0.0}, "learning_rate"), ({"max_steps": -1}, "max_steps")],
)
def test_descent_rejects_bad_settings(setting: dict[str, float], message: str) -> None:
    """Oracle: the documented ranges of the descent settings."""
    kwargs: dict[str, Any] = {"leak": 0.0, "learning_rate": 0.1, "max_steps": 10} | setting
    with pytest.raises(ValueError, match=message):
        run_interval_gradient_descent(
            torch.zeros(1, 2, 2, dtype=DTYPE),
            torch.zeros(1, 2, 1, dtype=DTYPE),
            affine_target([[1.0]], [[0.0]]),
            **kwargs,
        )
