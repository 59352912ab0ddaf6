"""The engine's stopping rule: no convergence near the zero network or a saddle with tiny neurons (issue 19).

A run converges when its whole gradient is below ``grad_tol * s_y**1.5 * s_x**0.5`` *and* every
neuron's gradient is below ``grad_tol * s_x * s_y`` times the neuron's size. The oracles here are
plain numpy gradient descent (``tests/reference.py``) and closed forms; the premises (the whole
gradient alone would have stopped the run) are checked, so that the tests fail under the old rule.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.dynamics import StopReason
from pipeline.problems import run_gradient_descent
from tests import reference as ref

DTYPE = torch.float64
GRAD_TOL = 1e-8  # the engine's default

# The two-output case of Wu, Simsek & Ged (authors' code, 2-d inputs, no bias): four points, width 50.
PUBLISHED_X = np.array([[-0.3, 0.5], [1.0, 1.0], [-0.6, -1.0], [0.4, -0.4]])
PUBLISHED_Y = np.array([[0.6, -0.5], [0.5, -1.0], [-0.4, 0.6], [0.8, 0.2]])


def tensor(array) -> torch.Tensor:
    return torch.tensor(np.asarray(array), dtype=DTYPE)


def scales(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``s_x = max_i ||x_i||`` and ``s_y = sqrt(||Y||_F^2 / n)`` (theory.md 8.2 step 1)."""
    return float(np.linalg.norm(x, axis=1).max()), float(np.sqrt(np.square(y).sum() / len(y)))


def whole_gradient_threshold(x: np.ndarray, y: np.ndarray) -> float:
    s_x, s_y = scales(x, y)
    return GRAD_TOL * s_y**1.5 * s_x**0.5


def first_stop(w, a, x, y, leak: float, learning_rate: float, max_steps: int, rule: str) -> tuple[int, bool]:
    """Plain numpy GD: the first step at which ``rule`` ("whole" or "neurons") says converged.

    ``"whole"``: the whole gradient norm is below the threshold; ``"neurons"``: that and every
    neuron's ``||(dL/dw_j, dL/da_j)|| <= grad_tol s_x s_y ||(w_j, a_j)||``. Returns ``(step, converged)``
    with ``step = max_steps`` when the rule never fires.
    """
    s_x, s_y = scales(x, y)
    threshold, rate = whole_gradient_threshold(x, y), GRAD_TOL * s_x * s_y
    w, a = np.array(w, dtype=float), np.array(a, dtype=float)
    for step in range(max_steps + 1):
        grad_w, grad_a = ref.naive_gradient(w, a, x, y, leak)
        small = np.sqrt(np.square(grad_w).sum() + np.square(grad_a).sum()) <= threshold
        if rule == "neurons":
            per_neuron = np.sqrt(np.square(grad_w).sum(1) + np.square(grad_a).sum(1))
            small = small and bool(np.all(per_neuron <= rate * np.sqrt(np.square(w).sum(1) + np.square(a).sum(1))))
        if small:
            return step, True
        w, a = w - learning_rate * grad_w, a - learning_rate * grad_a
    return max_steps, False


VANISHING_STDS = np.array([50**-6.5, 1e-9, 1e-12])  # 50**-6.5: the published initialisation


def published_vanishing_runs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two runs per initialisation std of ``VANISHING_STDS``: (6, 50, 2) input and output weights."""
    rng = np.random.default_rng(seed)
    stds = np.repeat(VANISHING_STDS, 2)[:, None, None]
    return stds * rng.standard_normal((6, 50, 2)), stds * rng.standard_normal((6, 50, 2))


def test_vanishing_initialisation_does_not_stop_at_the_origin():
    """Width 50, four points in 2-d, two outputs, no bias, lr 4e-3, init std down to 1e-12: no early stop.

    Premise: the whole gradient at initialisation is below the threshold, so the whole-gradient
    rule alone stops every run at step 0 as converged.
    """
    w0, a0 = published_vanishing_runs(seed=19)
    x, y = PUBLISHED_X, PUBLISHED_Y
    for w, a in zip(w0, a0, strict=True):
        grad_w, grad_a = ref.naive_gradient(w, a, x, y, 0.0)
        assert np.sqrt(np.square(grad_w).sum() + np.square(grad_a).sum()) < whole_gradient_threshold(x, y)
    max_steps = 1000
    result = run_gradient_descent(
        tensor(w0), tensor(a0), tensor(x[None]), tensor(y[None]), leak=0.0, learning_rate=4e-3, max_steps=max_steps
    )
    assert result.stop_reason.tolist() == [int(StopReason.MAX_STEPS)] * 6
    assert result.steps_taken.tolist() == [max_steps] * 6


@pytest.mark.slow
def test_vanishing_initialisation_escapes_the_origin():
    """The runs of the test above, to 18,000 steps: every one leaves the zero network, none converges on the way.

    The first plateau is the zero network (loss ``||Y||_F^2 / (2n)``) and it ends before the budget;
    the loss then falls below half of it.
    """
    w0, a0 = published_vanishing_runs(seed=19)
    x, y = PUBLISHED_X, PUBLISHED_Y
    max_steps = 18000
    result = run_gradient_descent(
        tensor(w0), tensor(a0), tensor(x[None]), tensor(y[None]), leak=0.0, learning_rate=4e-3, max_steps=max_steps
    )
    zero_network_loss = np.square(y).sum() / (2 * len(y))
    assert result.stop_reason.tolist() == [int(StopReason.MAX_STEPS)] * 6
    assert float(result.loss_final.max()) < 0.5 * zero_network_loss
    torch.testing.assert_close(result.plateau_loss[:, 0], tensor([zero_network_loss] * 6), rtol=1e-9, atol=0)
    assert not bool(result.plateau_is_final[:, 0].any())


@pytest.mark.parametrize("init_std", [1e-10, 1e-12])
def test_no_early_stop_from_vanishing_initialisation_on_random_data(init_std):
    """Width 50, Gaussian data, scalar and vector outputs: no run converges while near the zero network."""
    rng = np.random.default_rng(7)
    for n_outputs in (1, 2):
        x = rng.standard_normal((1, 6, 3))
        y = rng.standard_normal((1, 6, n_outputs))
        w0 = init_std * rng.standard_normal((4, 50, 3))
        a0 = init_std * rng.standard_normal((4, 50, n_outputs))
        result = run_gradient_descent(
            tensor(w0), tensor(a0), tensor(x), tensor(y), leak=0.0, learning_rate=0.05, max_steps=300
        )
        assert result.stop_reason.tolist() == [int(StopReason.MAX_STEPS)] * 4
        # premise: near the origin the whole gradient is below the threshold (the old rule would stop at 0)
        assert float(result.checkpoint_grad_norm[:, 0].max()) < whole_gradient_threshold(x[0], y[0])


def saddle_to_saddle(amplitude: float):
    """x1 = e1, x2 = e2, y = (1, -0.25), two balanced neurons along e1 (a > 0) and e2 (a < 0).

    Plateaus at the zero network (loss 1.0625 / 4) and at the saddle where neuron 1 fits sample 1 while
    neuron 2 is still tiny (loss 0.0625 / 4); then zero loss (tests/test_trajectory.py).
    """
    x = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    y = np.array([[[1.0], [-0.25]]])
    w0 = np.array([[[amplitude, 0.0], [0.0, amplitude]]])
    a0 = np.array([[[amplitude], [-amplitude]]])
    return w0, a0, x, y


def test_tiny_escape_neuron_at_a_saddle_does_not_stop_the_run():
    """From amplitude 1e-12 the run passes the origin and the saddle with a tiny neuron, then converges to 0."""
    w0, a0, x, y = saddle_to_saddle(1e-12)
    result = run_gradient_descent(tensor(w0), tensor(a0), tensor(x), tensor(y), leak=0.0, learning_rate=0.05,
                                  max_steps=20000)  # fmt: skip
    assert int(result.stop_reason[0]) == StopReason.CONVERGED
    assert float(result.loss_final[0]) < 1e-14
    assert int(result.n_plateaus[0]) == 2
    torch.testing.assert_close(result.plateau_loss[0, :2], tensor([1.0625 / 4, 0.0625 / 4]), rtol=1e-6, atol=0)
    # premise: at both plateaus the whole gradient was below the threshold (the old rule stopped at each)
    assert float(result.plateau_grad_norm[0, :2].max()) < whole_gradient_threshold(x[0], y[0])
    # the saddle's tiny neuron: neuron 2 has amplitude far below the fitted neuron 1
    w, a = result.plateau_w[0, 1], result.plateau_a[0, 1]
    assert float(torch.linalg.vector_norm(w[1]) * a[1].abs().squeeze()) < 1e-6


@pytest.mark.parametrize("amplitude", [5e-9, 1e-10])
def test_stop_step_matches_plain_descent(amplitude):
    """The engine stops at the first step where the numpy oracle's whole and per-neuron tests both hold."""
    w0, a0, x, y = saddle_to_saddle(amplitude)
    learning_rate, max_steps = 0.05, 8000
    old_step, _ = first_stop(w0[0], a0[0], x[0], y[0], 0.0, learning_rate, max_steps, rule="whole")
    step, converged = first_stop(w0[0], a0[0], x[0], y[0], 0.0, learning_rate, max_steps, rule="neurons")
    assert old_step < 0.2 * step and converged  # premise: the whole gradient alone stops much earlier
    result = run_gradient_descent(
        tensor(w0), tensor(a0), tensor(x), tensor(y), leak=0.0, learning_rate=learning_rate, max_steps=max_steps
    )
    assert int(result.steps_taken[0]) == step
    assert int(result.stop_reason[0]) == StopReason.CONVERGED


@pytest.mark.parametrize("leak", [0.0, 0.2])
def test_converges_to_a_positive_loss_least_squares_minimum(leak):
    """One neuron, fixed output weight 1, all pre-activations positive: least squares with residual e.

    The targets are ``X w* + e`` with ``e`` orthogonal to the columns of ``X``; the minimum is ``w*``
    with loss ``||e||^2 / (2n) > 0``, and gradient descent converges to it at a linear rate.
    """
    x = np.array([[1.0, 0.2], [0.2, 1.0], [1.0, 1.0]])
    e = 0.05 * np.cross(x[:, 0], x[:, 1])
    w_star = np.array([1.0, 0.5])
    y = (x @ w_star + e)[:, None]
    assert np.abs(x.T @ e).max() < 1e-15 and np.all(x @ w_star > 0)
    w0, a0 = np.array([[[0.6, 0.9]]]), np.ones((1, 1, 1))
    result = run_gradient_descent(tensor(w0), tensor(a0), tensor(x[None]), tensor(y[None]), leak=leak,
                                  learning_rate=0.2, max_steps=3000, train_output=False)  # fmt: skip
    assert int(result.stop_reason[0]) == StopReason.CONVERGED
    assert float(result.loss_final[0]) == pytest.approx(np.square(e).sum() / 6, rel=1e-10)
    np.testing.assert_allclose(result.w_final[0, 0].numpy(), w_star, rtol=0, atol=1e-7)


def test_exactly_zero_neurons_do_not_hold_a_run_back():
    """A converging run with extra neurons at exactly zero (zero gradient) still converges."""
    x = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    y = np.array([[[1.0], [-0.25]]])
    w0 = np.array([[[0.9, 0.0], [0.0, 0.6], [0.0, 0.0], [0.0, 0.0]]])
    a0 = np.array([[[1.1], [-0.4], [0.0], [0.0]]])
    result = run_gradient_descent(tensor(w0), tensor(a0), tensor(x), tensor(y), leak=0.0, learning_rate=0.1,
                                  max_steps=5000)  # fmt: skip
    assert int(result.stop_reason[0]) == StopReason.CONVERGED
    assert float(result.loss_final[0]) < 1e-14
    assert bool((result.w_final[0, 2:] == 0).all() and (result.a_final[0, 2:] == 0).all())
