"""The quadratic activation ``rho(z) = z^2`` in the kernels, against independent oracles.

* the activation object's value and derivatives against autograd of ``z**2`` written here;
* the empirical loss's closed-form gradients (:mod:`pipeline.losses.nets`, the fused workspace) against
  ``torch.autograd`` of a naive loss written here, for shared and per-run data, one and several outputs;
* the interval population loss (:mod:`pipeline.losses.interval_population`, three-point Gauss-Legendre) against
  ``scipy.integrate.quad`` of the definition with the output bias minimised out, its gradient against
  central finite differences of that oracle, and its autograd Hessian against finite differences of the
  closed-form gradient;
* gradient descent on both losses lowers them, and the survey rules accept and reject what they should.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate
import torch

from pipeline.losses import nets
from pipeline.losses.activations import LeakyReLU, Quadratic, activation_from_settings, as_activation
from pipeline.losses.interval_population import IntervalTarget, interval_gradients, interval_loss, quadrature
from pipeline.problems import run_gradient_descent, run_interval_gradient_descent
from pipeline.survey import SurveyError, parse_survey

DTYPE = torch.float64
QUAD = {"epsabs": 1e-14, "epsrel": 1e-13, "limit": 200}


def naive_loss(w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``1/(2n) sum_i ||sum_j a_j (w_j . x_i)^2 - y_i||^2`` per run, written from the definition."""
    z = torch.einsum("rjd,rnd->rnj", w, x.expand(w.shape[0], -1, -1))
    f = torch.einsum("rnj,rjk->rnk", z * z, a)
    return 0.5 * ((f - y) ** 2).sum(dim=(1, 2)) / x.shape[1]


def test_activation_objects() -> None:
    z = torch.linspace(-2.0, 2.0, 9, dtype=DTYPE, requires_grad=True)
    quadratic = Quadratic()
    (first,) = torch.autograd.grad((z**2).sum(), z, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), z)
    torch.testing.assert_close(quadratic.value(z), z**2)
    torch.testing.assert_close(quadratic.derivative(z), first)
    torch.testing.assert_close(quadratic.second_derivative(z), second)
    assert not quadratic.has_kink and quadratic.degree == 2
    assert activation_from_settings("leaky_relu", 0.1) == LeakyReLU(0.1)
    assert activation_from_settings("relu", None) == as_activation(0.0)
    assert activation_from_settings("quadratic", None) == quadratic
    with pytest.raises(TypeError, match="no leak"):
        _ = quadratic.leak
    with pytest.raises(ValueError, match="leak must be in"):
        as_activation(1.5)


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("train_output", [True, False])
def test_sampled_gradients_match_autograd(shared: bool, n_outputs: int, train_output: bool) -> None:
    gen = torch.Generator().manual_seed(7 + n_outputs)
    n_runs, n, d, m = 5, 11, 3, 4
    x = torch.randn(1 if shared else n_runs, n, d, generator=gen, dtype=DTYPE)
    y = torch.randn(1 if shared else n_runs, n, n_outputs, generator=gen, dtype=DTYPE)
    w = torch.randn(n_runs, m, d, generator=gen, dtype=DTYPE).requires_grad_(True)
    a = torch.randn(n_runs, m, n_outputs, generator=gen, dtype=DTYPE).requires_grad_(True)
    expected = naive_loss(w, a, x, y)
    grad_w, grad_a = torch.autograd.grad(expected.sum(), (w, a))
    result = nets.gradients(w.detach(), a.detach(), x, y, Quadratic(), train_output=train_output)
    torch.testing.assert_close(result.loss, expected.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(result.grad_w, grad_w, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        result.grad_a, grad_a if train_output else torch.zeros_like(grad_a), rtol=1e-10, atol=1e-12
    )
    workspace = nets.GradientWorkspace(x, y, n_runs, m, Quadratic(), train_output=train_output)
    torch.testing.assert_close(workspace(w.detach(), a.detach()).grad_w, grad_w, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Interval population: scipy.integrate.quad oracle
# ----------------------------------------------------------------------------------------------


def oracle_interval_loss(w: np.ndarray, a: np.ndarray, low: float, high: float, slope: np.ndarray,
                         intercept: np.ndarray) -> float:  # fmt: skip
    """``min_c 1/(2 (high - low)) int ||c + sum_j a_j (w_j x + b_j)^2 - f(x)||^2 dx`` by quad, per output."""

    def error(x: float, output: int) -> float:
        return float(sum(a[j, output] * (w[j, 0] * x + w[j, 1]) ** 2 for j in range(w.shape[0]))) - (
            intercept[output] + slope[output] * x
        )

    total = 0.0
    for output in range(a.shape[1]):
        mean = scipy.integrate.quad(error, low, high, args=(output,), **QUAD)[0] / (high - low)
        total += scipy.integrate.quad(lambda x, o, m: (error(x, o) - m) ** 2, low, high, args=(output, mean), **QUAD)[0]
    return 0.5 * total / (high - low)


def _interval_case(seed: int, width: int, n_outputs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(width, 2)), rng.normal(size=(width, n_outputs)), rng.normal(size=n_outputs),
            rng.normal(size=n_outputs))  # fmt: skip


@pytest.mark.parametrize(("low", "high"), [(-1.0, 1.0), (0.5, 3.0)])
@pytest.mark.parametrize(("width", "n_outputs"), [(1, 1), (3, 1), (4, 2)])
def test_interval_loss_and_gradient_match_quad(low: float, high: float, width: int, n_outputs: int) -> None:
    w, a, slope, intercept = _interval_case(width * 10 + n_outputs, width, n_outputs)
    target = IntervalTarget(low, high, torch.as_tensor(slope)[None], torch.as_tensor(intercept)[None])
    wt, at = torch.as_tensor(w)[None], torch.as_tensor(a)[None]
    grads = interval_gradients(wt, at, target, Quadratic())
    expected = oracle_interval_loss(w, a, low, high, slope, intercept)
    assert float(grads.loss[0]) == pytest.approx(expected, rel=1e-11, abs=1e-13)
    theta = np.concatenate([w.ravel(), a.ravel()])
    step = 1e-5
    numeric = np.empty_like(theta)
    for i in range(theta.size):
        plus, minus = theta.copy(), theta.copy()
        plus[i] += step
        minus[i] -= step
        values = [oracle_interval_loss(t[: 2 * width].reshape(width, 2), t[2 * width :].reshape(width, n_outputs),
                                       low, high, slope, intercept) for t in (plus, minus)]  # fmt: skip
        numeric[i] = (values[0] - values[1]) / (2 * step)
    closed = np.concatenate([grads.grad_w[0].numpy().ravel(), grads.grad_a[0].numpy().ravel()])
    np.testing.assert_allclose(closed, numeric, rtol=1e-6, atol=1e-8)


def test_interval_quadrature_is_one_three_point_rule() -> None:
    w = torch.randn(2, 5, 2, dtype=DTYPE)
    nodes, weights = quadrature(w, -1.0, 2.0, rho=Quadratic())
    assert nodes.shape == (2, 3) and weights.shape == (2, 3)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, dtype=DTYPE))
    for power in range(6):  # exact to degree 5
        expected = (2.0 ** (power + 1) - (-1.0) ** (power + 1)) / (power + 1) / 3.0
        torch.testing.assert_close((weights * nodes**power).sum(-1), torch.full((2,), expected, dtype=DTYPE))


def test_interval_hessian_matches_finite_differences_of_the_gradient() -> None:
    w, a, slope, intercept = _interval_case(3, 3, 1)
    target = IntervalTarget(-1.0, 1.0, torch.as_tensor(slope)[None], torch.as_tensor(intercept)[None])

    def loss_of(theta: torch.Tensor) -> torch.Tensor:
        return interval_loss(theta[:6].reshape(1, 3, 2), theta[6:].reshape(1, 3, 1), target, Quadratic())[0]

    def gradient_of(theta: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(theta)
        g = interval_gradients(t[:6].reshape(1, 3, 2), t[6:].reshape(1, 3, 1), target, Quadratic())
        return np.concatenate([g.grad_w.numpy().ravel(), g.grad_a.numpy().ravel()])

    theta = np.concatenate([w.ravel(), a.ravel()])
    hessian = torch.func.hessian(loss_of)(torch.as_tensor(theta)).numpy()
    step = 1e-6
    numeric = np.stack([(gradient_of(theta + step * e) - gradient_of(theta - step * e)) / (2 * step)
                        for e in np.eye(theta.size)])  # fmt: skip
    np.testing.assert_allclose(hessian, numeric, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-12)


def test_gradient_descent_lowers_both_quadratic_losses() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 12, 3, generator=gen, dtype=DTYPE)
    y = torch.randn(1, 12, 1, generator=gen, dtype=DTYPE)
    w0 = 0.5 * torch.randn(4, 3, 3, generator=gen, dtype=DTYPE)
    a0 = 0.5 * torch.randn(4, 3, 1, generator=gen, dtype=DTYPE)
    sampled = run_gradient_descent(w0, a0, x, y, leak=Quadratic(), learning_rate=0.01, max_steps=300)
    assert torch.all(sampled.loss_final < nets.loss(w0, a0, x, y, Quadratic()))
    target = IntervalTarget(-1.0, 1.0, torch.tensor([[1.5]], dtype=DTYPE), torch.tensor([[-0.3]], dtype=DTYPE))
    w1 = torch.randn(4, 2, 2, generator=gen, dtype=DTYPE)
    interval = run_interval_gradient_descent(w1, a0[:, :2], target, leak=Quadratic(), learning_rate=0.1,
                                             max_steps=20_000)  # fmt: skip
    start = interval_loss(w1, a0[:, :2], target, Quadratic())
    assert torch.all(interval.loss_final < start)
    # width 2 realises the affine target exactly (two units with opposite output weights); runs whose
    # units keep output weights of one sign approach the infimum 0 only as their biases grow without bound
    assert int((interval.loss_final < 1e-12).sum()) >= 1


BASE = {
    "schema_version": 1,
    "master_seed": 1,
    "seeds": {"data": 1, "init": 1},
    "fixed": {"init_scale": 1.0, "target": "random"},
}


def _survey(fixed: dict, grid: dict | None = None) -> dict:
    return {**BASE, "fixed": {**BASE["fixed"], **fixed}, "grid": grid or {}}


def test_survey_rules_for_the_quadratic_activation() -> None:
    parse_survey(_survey({"activation": "quadratic"}, {"width": [1, 2]}), name="ok")
    interval = {"input_dim": 1, "input_distribution": "interval_population", "bias": True, "target": "affine"}
    parse_survey(_survey({**interval, "leak": 0.1}, {"activation": ["relu", "leaky_relu", "quadratic"]}), name="ok")
    with pytest.raises(SurveyError, match=r"leak.*not allowed.*activation 'quadratic'"):
        parse_survey(_survey({"activation": "quadratic", "leak": 0.1}), name="bad")
    population = {"input_distribution": "gaussian_population", "target": "teacher", "teacher_width": 2}
    with pytest.raises(SurveyError, match=r"activation: 'quadratic' is not allowed with input_distribution "
                                          r"'gaussian_population'"):  # fmt: skip
        parse_survey(_survey({**population, "activation": "quadratic"}), name="bad")


def test_a_fixed_leak_may_serve_one_case_of_several() -> None:
    cases = [{"activation": "relu", "learning_rate": 0.5}, {"activation": "quadratic", "learning_rate": 0.05}]
    with pytest.raises(SurveyError, match=r"fixed.leak: 0.1 is not allowed"):
        parse_survey({**_survey({"leak": 0.1}), "cases": cases}, name="bad")
    cases.append({"activation": "leaky_relu", "learning_rate": 0.5})
    survey = parse_survey({**_survey({"leak": 0.1}), "cases": cases}, name="ok")
    leaks = {cell["activation"]: cell["leak"] for cell in survey.cells()}
    assert leaks == {"relu": None, "quadratic": None, "leaky_relu": 0.1}
