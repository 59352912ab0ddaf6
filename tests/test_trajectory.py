"""Trajectory summaries: log-spaced checkpoints and plateau detection, against constructions with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.dynamics import StopReason
from pipeline.problems import run_gradient_descent
from pipeline.trajectory import PlateauRecorder, PlateauSettings, checkpoint_steps
from tests.reference import torch_loss

DTYPE = torch.float64


def tensor(array):
    return torch.tensor(np.asarray(array), dtype=DTYPE)


def manual_trajectory(w, a, x, y, leak, learning_rate, n_steps, train_output=True):
    """Plain GD with autograd of ``torch_loss``: lists of w, a, loss, gradient norm at steps 0..n_steps."""
    ws, as_, losses, norms = [], [], [], []
    for step in range(n_steps + 1):
        w_ = w.clone().requires_grad_(True)
        a_ = a.clone().requires_grad_(True)
        loss = torch_loss(w_, a_, x, y, leak)
        grad_w, grad_a = torch.autograd.grad(loss.sum(), (w_, a_))
        if not train_output:
            grad_a = torch.zeros_like(grad_a)
        ws.append(w)
        as_.append(a)
        losses.append(loss.detach())
        norms.append(torch.sqrt(grad_w.square().sum(dim=(1, 2)) + grad_a.square().sum(dim=(1, 2))))
        if step < n_steps:
            w = w - learning_rate * grad_w
            a = a - learning_rate * grad_a
    return torch.stack(ws, 1), torch.stack(as_, 1), torch.stack(losses, 1), torch.stack(norms, 1)


# ----------------------------------------------------------------------------------------------------------------
# Checkpoint grid


@pytest.mark.parametrize("n_checkpoints", [2, 3, 10, 64])
@pytest.mark.parametrize("max_steps", [0, 1, 2, 5, 100, 12345, 10**6])
def test_checkpoint_steps_grid(max_steps, n_checkpoints):
    steps = checkpoint_steps(max_steps, n_checkpoints)
    assert steps.dtype == np.int64
    assert steps[0] == 0 and steps[-1] == max_steps
    assert np.all(np.diff(steps) > 0)
    assert len(steps) <= n_checkpoints
    if max_steps + 1 <= n_checkpoints - 1:  # room for every step: the grid is dense
        assert steps.tolist() == list(range(max_steps + 1))


@pytest.mark.parametrize(("max_steps", "n_checkpoints"), [(10**6, 10), (10**5, 18), (12345, 14)])
def test_checkpoint_steps_are_log_spaced(max_steps, n_checkpoints):
    """Positive steps are the rounded points of a uniform grid in log(step) from 1 to max_steps."""
    steps = checkpoint_steps(max_steps, n_checkpoints)
    positive = steps[1:].astype(float)
    assert len(positive) == n_checkpoints - 1  # spacing ratio > 1.5 here: no duplicates
    uniform = np.linspace(0.0, math.log(max_steps), n_checkpoints - 1)
    np.testing.assert_array_less(np.abs(np.log(positive) - uniform), 0.5 / positive + 1e-12)


def test_checkpoint_steps_rejects_too_few():
    with pytest.raises(ValueError, match="n_checkpoints"):
        checkpoint_steps(10, 1)


def convex_problem():
    """One neuron, fixed output weight 1, inputs and weights in the positive orthant: a realisable least-squares
    problem whose loss decays exponentially to 0 (all pre-activations stay positive along the whole path)."""
    x = tensor([[[1.0, 0.2], [0.2, 1.0], [1.0, 1.0]]])
    w_star = tensor([[[1.0, 0.5]]])
    y = torch.einsum("rnd,rmd->rnm", x, w_star)
    w0 = tensor([[[0.6, 0.9]]])
    a0 = tensor([[[1.0]]])
    return w0, a0, x, y


def test_checkpoints_match_manual_descent_and_are_nan_after_stop():
    # run 0: convex problem (converges early); runs 1, 2: random data, moderate init (run to max_steps)
    w_c, a_c, x_c, y_c = convex_problem()
    rng = np.random.default_rng(0)
    x = torch.cat([x_c, tensor(rng.standard_normal((2, 3, 2)))])
    y = torch.cat([y_c, tensor(rng.standard_normal((2, 3, 1)))])
    w0 = torch.cat([w_c, tensor(0.5 * rng.standard_normal((2, 2, 2)))[:, :1]])
    a0 = torch.cat([a_c, tensor([[[-1.0]], [[1.0]]])])
    learning_rate, max_steps = 0.3, 400
    result = run_gradient_descent(
        w0,
        a0,
        x,
        y,
        leak=0.1,
        learning_rate=learning_rate,
        max_steps=max_steps,
        n_checkpoints=16,
        grad_tol=1e-4,
        train_output=False,
    )
    steps = result.checkpoint_step
    assert steps.dtype == torch.int64 and int(steps[0]) == 0 and int(steps[-1]) == max_steps
    assert steps.tolist() == checkpoint_steps(max_steps, 16).tolist()
    ws, as_, losses, norms = manual_trajectory(w0, a0, x, y, 0.1, learning_rate, max_steps, train_output=False)
    stopped = result.steps_taken
    assert int(result.stop_reason[0]) == StopReason.CONVERGED and int(stopped[0]) < max_steps // 2
    assert result.stop_reason[1:].tolist() == [int(StopReason.MAX_STEPS)] * 2
    for r in range(3):
        for column, step in enumerate(steps.tolist()):
            values = (
                result.checkpoint_loss[r, column],
                result.checkpoint_grad_norm[r, column],
                result.checkpoint_amplitude[r, column],
                result.checkpoint_balance[r, column],
            )
            if step > int(stopped[r]):
                assert all(bool(torch.isnan(v).all()) for v in values), (r, step)
                continue
            w_norm = torch.linalg.vector_norm(ws[r, step], dim=-1)
            a_norm = torch.linalg.vector_norm(as_[r, step], dim=-1)
            torch.testing.assert_close(values[0], losses[r, step], rtol=1e-10, atol=1e-300)
            torch.testing.assert_close(values[1], norms[r, step], rtol=1e-8, atol=1e-300)
            torch.testing.assert_close(values[2], w_norm * a_norm, rtol=1e-10, atol=1e-300)
            torch.testing.assert_close(values[3], w_norm.square() - a_norm.square(), rtol=1e-8, atol=1e-12)
    assert bool(torch.isnan(result.checkpoint_loss[0, -1]))


# ----------------------------------------------------------------------------------------------------------------
# Plateau recorder on a synthetic loss curve (boundaries exact without smoothing)

# (first step, last step, kind): "flat" keeps the loss constant, "decay" multiplies it by 0.9 per step,
# "slow" by 0.99 per step (still far from flat)
SEGMENTS = [
    (0, 199, "flat"),
    (200, 229, "decay"),
    (230, 244, "flat"),
    (245, 259, "decay"),
    (260, 599, "flat"),
    (600, 619, "decay"),
    (620, 719, "flat"),
    (720, 1019, "slow"),
    (1020, 1069, "flat"),
    (1070, 1099, "decay"),
    (1100, 1400, "flat"),
]
# flat windows: [1, 200) plateau; [230, 245) too short (< min_steps); [260, 600) plateau; [620, 720) a short
# shoulder between two fast drops: longer than min_fraction * 20 (the descent since the previous plateau), so a
# plateau, though shorter than min_fraction * 620; [1020, 1070) shorter than min_fraction * 300 (the descent since
# the previous plateau); [1100, 1400] plateau lasting until the run stops
EXPECTED = [(1, 200, 100, False), (260, 600, 400, False), (620, 720, 670, False), (1100, 1401, 1250, True)]
CENTRES = [100, 237, 400, 670, 1045, 1250]  # the gradient norm is smallest at these steps
N_STEPS = 1401


def synthetic_curve():
    loss = np.empty(N_STEPS)
    value = 1.0
    factors = {"flat": 1.0, "decay": 0.9, "slow": 0.99}
    for first, last, kind in SEGMENTS:
        for t in range(first, last + 1):
            value *= factors[kind]
            loss[t] = value
    grad_norm = 1.0 + np.min(np.abs(np.arange(N_STEPS)[:, None] - np.array(CENTRES)[None, :]), axis=1)
    return loss, grad_norm


@pytest.mark.parametrize("max_plateaus", [8, 2])
def test_plateau_recorder_on_synthetic_curve(max_plateaus):
    settings = PlateauSettings(rate_tol=1e-3, min_steps=20, min_fraction=0.2, smoothing=1.0, max_plateaus=max_plateaus)
    loss, grad_norm = synthetic_curve()
    w = torch.zeros(2, 1, 1, dtype=DTYPE)
    a = torch.zeros(2, 1, 1, dtype=DTYPE)
    recorder = PlateauRecorder(settings, torch.ones(2, dtype=DTYPE), w, a)
    active = torch.tensor([True, False])  # run 1 is never active: it records nothing
    for t in range(N_STEPS):
        state = torch.full((2, 1, 1), float(t), dtype=DTYPE)
        recorder.update(t, active, tensor([loss[t]] * 2), tensor([grad_norm[t]] * 2), state, -state)
    recorder.finish(active, N_STEPS - 1, torch.zeros(2, dtype=torch.bool))
    assert recorder.count.tolist() == [len(EXPECTED), 0]
    stored = min(len(EXPECTED), max_plateaus)
    for p, (start, end, best, final) in enumerate(EXPECTED[:stored]):
        assert int(recorder.start[0, p]) == start
        assert int(recorder.end[0, p]) == end
        assert int(recorder.representative_step[0, p]) == best
        assert bool(recorder.is_final[0, p]) == final
        assert float(recorder.loss[0, p]) == loss[best]
        assert float(recorder.grad_norm[0, p]) == 1.0
        assert float(recorder.w[0, p, 0, 0]) == best and float(recorder.a[0, p, 0, 0]) == -best
    assert recorder.start[0, stored:].tolist() == [-1] * (max_plateaus - stored)
    assert bool(torch.isnan(recorder.loss[0, stored:]).all())
    assert recorder.start[1].tolist() == [-1] * max_plateaus


# ----------------------------------------------------------------------------------------------------------------
# Plateau detection on gradient-descent trajectories


def saddle_to_saddle_problem(amplitude=1e-6):
    """x1 = e1, x2 = e2, y = (1, -0.25); neuron 1 along e1 with a > 0, neuron 2 along e2 with a < 0, balanced.

    Neuron 1 fits sample 1 first (escape rate 1/2), neuron 2 fits sample 2 later (rate 1/8): plateaus at the
    origin (loss (1 + 0.0625)/4) and at the saddle with sample 1 fitted (loss 0.0625/4), then zero loss.
    """
    x = tensor([[[1.0, 0.0], [0.0, 1.0]]])
    y = tensor([[[1.0], [-0.25]]])
    w0 = tensor([[[amplitude, 0.0], [0.0, amplitude]]])
    a0 = tensor([[[amplitude], [-amplitude]]])
    return w0, a0, x, y


def test_plateaus_of_saddle_to_saddle_trajectory():
    w0, a0, x, y = saddle_to_saddle_problem()
    result = run_gradient_descent(w0, a0, x, y, leak=0.0, learning_rate=0.05, max_steps=20000)
    assert int(result.stop_reason[0]) == StopReason.CONVERGED
    assert float(result.loss_final[0]) < 1e-12
    assert int(result.n_plateaus[0]) == 2
    losses = result.plateau_loss[0, :2]
    torch.testing.assert_close(losses, tensor([(1 + 0.0625) / 4, 0.0625 / 4]), rtol=1e-3, atol=0)
    start, end, step = result.plateau_start[0, :2], result.plateau_end[0, :2], result.plateau_step[0, :2]
    assert int(start[0]) <= int(step[0]) < int(end[0]) <= int(start[1]) < int(step[1]) < int(end[1])
    assert int(end[1]) < int(result.steps_taken[0])
    assert not bool(result.plateau_is_final[0, :2].any())
    assert result.plateau_start[0, 2:].tolist() == [-1] * (result.plateau_start.shape[1] - 2)
    # representative point of plateau 2: neuron 1 fits sample 1, neuron 2 is still tiny
    w, a = result.plateau_w[0, 1], result.plateau_a[0, 1]
    assert float(w[0, 0] * a[0, 0]) == pytest.approx(1.0, rel=1e-3)
    assert float(torch.linalg.vector_norm(w[1]) * a[1].abs().squeeze()) < 1e-3
    # representative point of plateau 1: both neurons near their (vanishing) initial size
    assert float(result.plateau_w[0, 0].abs().max()) < 1e-4
    # stored parameters are consistent with the stored loss
    stored = torch_loss(result.plateau_w[0], result.plateau_a[0], x, y, 0.0)[:2]
    torch.testing.assert_close(stored, losses, rtol=1e-12, atol=0)
    # final fit: f(x1) = 1, f(x2) = -0.25
    w, a = result.w_final[0], result.a_final[0]
    assert float(w[0, 0] * a[0, 0]) == pytest.approx(1.0, abs=1e-6)
    assert float(w[1, 1] * a[1, 0]) == pytest.approx(-0.25, abs=1e-6)


@pytest.mark.parametrize("leak", [0.0, 0.3])
def test_no_plateau_on_convex_problem(leak):
    w0, a0, x, y = convex_problem()
    learning_rate, max_steps = 0.2, 2000
    result = run_gradient_descent(
        w0, a0, x, y, leak=leak, learning_rate=learning_rate, max_steps=max_steps, train_output=False
    )
    assert int(result.stop_reason[0]) == StopReason.CONVERGED
    assert int(result.n_plateaus[0]) == 0
    assert result.plateau_start[0].tolist() == [-1] * result.plateau_start.shape[1]
    # the premise: every pre-activation stays positive along the path, and the loss decays monotonically to 0
    ws, _, losses, _ = manual_trajectory(w0, a0, x, y, leak, learning_rate, int(result.steps_taken[0]), False)
    assert float(torch.einsum("nd,tmd->tnm", x[0], ws[0]).min()) > 0
    assert bool((torch.diff(losses[0]) < 0).all())
    assert float(result.loss_final[0]) < 1e-12 * float(losses[0, 0])
    assert torch.equal(result.a_final, a0)


def test_plateaus_of_random_vanishing_init_runs():
    rng = np.random.default_rng(4)
    n_runs, n, d, m = 4, 6, 3, 6
    x = tensor(rng.standard_normal((1, n, d)))
    y = tensor(rng.standard_normal((1, n, 1)))
    direction = rng.standard_normal((n_runs, m, d))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    w0 = tensor(1e-4 * direction)  # balanced: ||w_j|| = |a_j|
    a0 = tensor(1e-4 * rng.choice([-1.0, 1.0], size=(n_runs, m, 1)))
    learning_rate, max_steps = 0.1, 1500
    result = run_gradient_descent(w0, a0, x, y, leak=0.0, learning_rate=learning_rate, max_steps=max_steps)
    ws, as_, losses, norms = manual_trajectory(w0, a0, x, y, 0.0, learning_rate, max_steps)
    counts = result.n_plateaus.tolist()
    assert min(counts) >= 1 and max(counts) >= 2
    for r in range(n_runs):
        count = min(counts[r], result.plateau_start.shape[1])
        start, end, step = (
            t[r, :count].tolist() for t in (result.plateau_start, result.plateau_end, result.plateau_step)
        )
        for p in range(count):
            assert start[p] <= step[p] < end[p] <= int(result.steps_taken[r])
            if p > 0:
                assert end[p - 1] <= start[p] < step[p]  # later plateaus: the gradient is smallest inside
                assert float(result.plateau_loss[r, p]) <= float(result.plateau_loss[r, p - 1])
            # stored representative state equals the manual trajectory at that step
            s = step[p]
            torch.testing.assert_close(result.plateau_loss[r, p], losses[r, s], rtol=1e-9, atol=0)
            torch.testing.assert_close(result.plateau_grad_norm[r, p], norms[r, s], rtol=1e-6, atol=1e-300)
            torch.testing.assert_close(result.plateau_w[r, p], ws[r, s], rtol=1e-9, atol=1e-15)
            torch.testing.assert_close(result.plateau_a[r, p], as_[r, s], rtol=1e-9, atol=1e-15)
            # it is the smallest gradient norm of the window
            assert float(norms[r, start[p] : end[p]].min()) >= float(norms[r, s]) * (1 - 1e-9)
        assert result.plateau_start[r, count:].tolist() == [-1] * (result.plateau_start.shape[1] - count)


def test_float32_convex_problem_converges_without_plateau():
    w0, a0, x, y = (t.float() for t in convex_problem())
    result = run_gradient_descent(w0, a0, x, y, leak=0.0, learning_rate=0.2, max_steps=3000, train_output=False)
    assert int(result.n_plateaus[0]) == 0
    assert int(result.stop_reason[0]) == StopReason.CONVERGED
