"""Gradient-descent engine against independent oracles: single runs, manual GD loops, balancedness."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from pipeline.dynamics import StopReason
from pipeline.losses import nets
from pipeline.problems import data_scales, run_gradient_descent
from pipeline.trajectory import PlateauSettings
from tests.reference import torch_loss

DTYPE = torch.float64
RTOL = 1e-12
INTEGER_FIELDS = {
    "steps_taken",
    "stop_reason",
    "checkpoint_step",
    "n_plateaus",
    "plateau_start",
    "plateau_end",
    "plateau_step",
    "plateau_is_final",
}


def tensor(array, dtype=DTYPE):
    return torch.tensor(np.asarray(array), dtype=dtype)


def manual_descent(w, a, x, y, leak, learning_rate, n_steps, train_output=True):
    """Plain GD loop with autograd of ``torch_loss`` (tests/reference.py).

    Returns the losses, the gradient norms and ``max_j ||(dL/dw_j, dL/da_j)|| / ||(w_j, a_j)||`` (the
    largest gradient of a neuron relative to its size) at steps 0..n_steps, (R, n_steps + 1) each,
    and the final ``w``, ``a``.
    """
    losses, norms, rates = [], [], []
    w, a = w.clone(), a.clone()
    for step in range(n_steps + 1):
        w_ = w.clone().requires_grad_(True)
        a_ = a.clone().requires_grad_(train_output)
        loss = torch_loss(w_, a_, x, y, leak)
        inputs = (w_, a_) if train_output else (w_,)
        grads = torch.autograd.grad(loss.sum(), inputs)
        losses.append(loss.detach())
        norms.append(torch.sqrt(sum(g.square().sum(dim=(1, 2)) for g in grads)))
        per_neuron = torch.sqrt(sum(g.square().sum(dim=2) for g in grads))
        rates.append((per_neuron / torch.sqrt(w.square().sum(2) + a.square().sum(2))).amax(dim=1))
        if step < n_steps:
            w = w - learning_rate * grads[0]
            if train_output:
                a = a - learning_rate * grads[1]
    return torch.stack(losses, dim=1), torch.stack(norms, dim=1), torch.stack(rates, dim=1), w, a


def naive_loss_free_forward(w, a, x, leak):
    z = torch.einsum("rnd,rmd->rnm", x.expand(w.shape[0], -1, -1), w)
    return torch.einsum("rnm,rmk->rnk", torch.where(z > 0, z, leak * z), a)


def random_problem(n_runs, n, d, m, k, *, shared, scales, seed=0):
    """Gaussian data (shared or per run) and Gaussian initialisations with one ``init_scale`` per run."""
    rng = np.random.default_rng(seed)
    lead = 1 if shared else n_runs
    x = tensor(rng.standard_normal((lead, n, d)))
    y = tensor(rng.standard_normal((lead, n, k)))
    scale = np.asarray(scales, dtype=float)[:, None, None]
    w0 = tensor(scale * rng.standard_normal((n_runs, m, d)))
    a0 = tensor(scale * rng.standard_normal((n_runs, m, k)))
    return w0, a0, x, y


def take_runs(result, runs):
    """The per-run fields of ``result`` restricted to ``runs`` (checkpoint_step is shared)."""
    out = {}
    for field in dataclasses.fields(result):
        value = getattr(result, field.name)
        out[field.name] = value if field.name == "checkpoint_step" else value[runs]
    return out


def concatenate(results):
    fields = [f.name for f in dataclasses.fields(results[0])]
    out = {}
    for name in fields:
        values = [getattr(r, name) for r in results]
        out[name] = values[0] if name == "checkpoint_step" else torch.cat(values)
    return out


def assert_results_equal(actual: dict, expected: dict):
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        got = actual[name]
        assert got.shape == value.shape, name
        if name in INTEGER_FIELDS:
            assert torch.equal(got, value), name
        else:
            torch.testing.assert_close(got, value, rtol=RTOL, atol=1e-300, equal_nan=True, msg=name)


def run_split(w0, a0, x, y, batch_size, **kwargs):
    """Run the batch in consecutive chunks of ``batch_size`` runs (data sliced when given per run)."""
    results = []
    for start in range(0, w0.shape[0], batch_size):
        chunk = slice(start, start + batch_size)
        xs = x if x.shape[0] == 1 else x[chunk]
        ys = y if y.shape[0] == 1 else y[chunk]
        results.append(run_gradient_descent(w0[chunk], a0[chunk], xs, ys, **kwargs))
    return concatenate(results)


# Mixed runs: vanishing init (plateaus), moderate init (convergence), large init (may hit max_steps).
MIXED_SCALES = [1e-3, 0.5, 2e-3, 1.0, 0.3]


@pytest.mark.parametrize(
    ("shared", "leak", "train_output", "seed"),
    [(True, 0.0, True, 14), (False, 0.2, True, 11), (False, 0.0, False, 12)],
)
def test_batch_equals_loop_and_is_independent_of_batch_size(shared, leak, train_output, seed):
    n_runs = len(MIXED_SCALES)
    w0, a0, x, y = random_problem(n_runs, 5, 3, 4, 1, shared=shared, scales=MIXED_SCALES, seed=seed)
    if not train_output:
        a0 = a0.sign() * 0.5
    kwargs = dict(leak=leak, learning_rate=0.2, max_steps=300, train_output=train_output, grad_tol=1e-4)
    batch = run_gradient_descent(w0, a0, x, y, **kwargs)
    full = take_runs(batch, slice(None))
    # the problem exercises per-run stopping and plateaus: some runs converge, some run out of steps
    assert set(batch.stop_reason.tolist()) == {int(StopReason.CONVERGED), int(StopReason.MAX_STEPS)}
    assert int(batch.n_plateaus.sum()) > 0
    for batch_size in (1, 3):
        assert_results_equal(run_split(w0, a0, x, y, batch_size, **kwargs), full)


def test_batch_equals_loop_multi_output():
    scales = [1e-3, 0.4, 0.8]
    w0, a0, x, y = random_problem(3, 7, 2, 3, 3, shared=False, scales=scales, seed=5)
    kwargs = dict(leak=0.1, learning_rate=0.1, max_steps=300)
    full = take_runs(run_gradient_descent(w0, a0, x, y, **kwargs), slice(None))
    assert_results_equal(run_split(w0, a0, x, y, 1, **kwargs), full)


@pytest.mark.parametrize("leak", [0.0, 0.3])
@pytest.mark.parametrize(("n", "d", "m", "k"), [(1, 1, 1, 1), (4, 3, 5, 1), (9, 2, 3, 3), (16, 5, 17, 2)])
def test_balancedness_per_step(n, d, m, k, leak):
    """Delta_j = ||w_j||^2 - ||a_j||^2 changes by lr^2 (||grad_w_j||^2 - ||grad_a_j||^2) in one GD step.

    (Both layers trained: with a fixed output layer Delta_j is not conserved even by gradient flow.)
    """
    learning_rate = 0.05
    w0, a0, x, y = random_problem(3, n, d, m, k, shared=False, scales=[0.3, 0.6, 1.0], seed=n + m)
    w0 = w0.abs()  # keep some pre-activations positive so that no ReLU run starts dead (zero gradient)
    x = x.abs()
    grads = nets.gradients(w0, a0, x, y, leak)
    result = run_gradient_descent(w0, a0, x, y, leak=leak, learning_rate=learning_rate, max_steps=1, grad_tol=1e-300)
    assert torch.equal(result.steps_taken, torch.ones(3, dtype=torch.int64))
    assert result.stop_reason.tolist() == [int(StopReason.MAX_STEPS)] * 3
    w1, a1 = result.w_final, result.a_final
    # the engine's step is exactly the manual step
    torch.testing.assert_close(w1, w0 - learning_rate * grads.grad_w, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(a1, a0 - learning_rate * grads.grad_a, rtol=1e-15, atol=1e-15)

    def balance(w, a):
        return w.square().sum(-1) - a.square().sum(-1)

    change = balance(w1, a1) - balance(w0, a0)
    predicted = learning_rate**2 * (grads.grad_w.square().sum(-1) - grads.grad_a.square().sum(-1))
    size = w0.square().sum(-1) + a0.square().sum(-1) + w1.square().sum(-1) + a1.square().sum(-1)
    rounding = float(8 * torch.finfo(DTYPE).eps * size.max())
    torch.testing.assert_close(change, predicted, rtol=0, atol=rounding)
    # the lr^2 term is resolved, not drowned in rounding: the prediction is far from zero somewhere
    assert float(predicted.abs().max()) > 1e3 * rounding
    # the checkpoint balance records Delta at steps 0 and 1
    torch.testing.assert_close(result.checkpoint_balance[:, 0], balance(w0, a0), rtol=0, atol=rounding)
    torch.testing.assert_close(result.checkpoint_balance[:, -1], balance(w1, a1), rtol=0, atol=rounding)


def test_balancedness_along_trajectory_from_vanishing_init():
    """From a balanced vanishing init, |Delta_j| stays O(lr^2 * accumulated gradient^2): amplitudes grow together."""
    rng = np.random.default_rng(3)
    x = tensor(rng.standard_normal((1, 6, 3)))
    y = tensor(rng.standard_normal((1, 6, 1)))
    direction = rng.standard_normal((4, 8, 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    w0 = tensor(1e-4 * direction)
    a0 = tensor(1e-4 * rng.choice([-1.0, 1.0], size=(4, 8, 1)))
    result = run_gradient_descent(w0, a0, x, y, leak=0.0, learning_rate=0.02, max_steps=800)
    balance = result.checkpoint_balance
    torch.testing.assert_close(balance[:, 0], torch.zeros_like(balance[:, 0]), rtol=0, atol=1e-20)
    finite = torch.isfinite(balance)
    squared_norms = result.w_final.square().sum(-1) + result.a_final.square().sum(-1)
    assert float(squared_norms.max()) > 0.1  # neurons grew by many orders of magnitude
    assert float(balance[finite].abs().max()) < 1e-2 * float(squared_norms.max())


@pytest.mark.parametrize("train_output", [True, False])
def test_final_state_matches_manual_descent(train_output):
    w0, a0, x, y = random_problem(3, 6, 2, 3, 1, shared=True, scales=[0.5, 0.2, 1.0], seed=2)
    # realisable targets from a teacher; run 0 starts next to the teacher and converges within the budget
    teacher_w, teacher_a = w0[2:] + 0.3, a0[2:].sign()
    y = naive_loss_free_forward(teacher_w, teacher_a, x, leak=0.1)
    w0 = w0.clone()
    a0 = a0.clone()
    w0[0] = teacher_w[0] + 0.05 * w0[0]
    a0[0] = teacher_a[0] + 0.05 * a0[0]
    if not train_output:
        a0[:] = teacher_a[0]
    learning_rate, max_steps, grad_tol, leak = 0.2, 200, 1e-4, 0.1
    result = run_gradient_descent(
        w0,
        a0,
        x,
        y,
        leak=leak,
        learning_rate=learning_rate,
        max_steps=max_steps,
        grad_tol=grad_tol,
        train_output=train_output,
    )
    losses, norms, rates, _, _ = manual_descent(w0, a0, x, y, leak, learning_rate, max_steps, train_output)
    s_x = float(torch.linalg.vector_norm(x[0], dim=-1).max())
    s_y = float(torch.sqrt(y.square().sum() / y.shape[1]))
    threshold = grad_tol * s_y**1.5 * s_x**0.5
    for r in range(3):
        below = torch.nonzero((norms[r] <= threshold) & (rates[r] <= grad_tol * s_x * s_y)).flatten()
        expected_steps = int(below[0]) if len(below) else max_steps
        reason = StopReason.CONVERGED if len(below) else StopReason.MAX_STEPS
        assert int(result.steps_taken[r]) == expected_steps
        assert int(result.stop_reason[r]) == reason
        assert float(result.loss_final[r]) == pytest.approx(float(losses[r, expected_steps]), rel=1e-9, abs=1e-15)
        assert float(result.grad_norm_final[r]) == pytest.approx(float(norms[r, expected_steps]), rel=1e-6)
    assert int(StopReason.CONVERGED) in result.stop_reason.tolist()
    if not train_output:
        assert torch.equal(result.a_final, a0)
    assert torch.equal(result.w_init, w0) and torch.equal(result.a_init, a0)


def test_data_scales():
    x = tensor([[[3.0, 4.0], [1.0, 0.0]], [[0.0, 2.0], [0.0, -1.0]]])
    y = tensor([[[1.0], [-1.0]], [[2.0], [0.0]]])
    s_x, s_y = data_scales(x, y)
    torch.testing.assert_close(s_x, tensor([5.0, 2.0]))
    torch.testing.assert_close(s_y, tensor([1.0, np.sqrt(2.0)]))


def test_zero_steps_returns_initial_state():
    w0, a0, x, y = random_problem(2, 4, 2, 3, 1, shared=True, scales=[0.5, 0.5], seed=4)
    result = run_gradient_descent(w0, a0, x, y, leak=0.0, learning_rate=0.1, max_steps=0)
    assert torch.equal(result.w_final, w0) and torch.equal(result.a_final, a0)
    assert torch.equal(result.steps_taken, torch.zeros(2, dtype=torch.int64))
    assert result.stop_reason.tolist() == [int(StopReason.MAX_STEPS)] * 2
    torch.testing.assert_close(result.loss_final, torch_loss(w0, a0, x, y, 0.0), rtol=1e-13, atol=0)
    assert result.checkpoint_step.tolist() == [0]


def test_divergence_flags_one_run_without_stopping_the_others():
    """Per-run data, one dataset with inputs scaled by 1e3: that run diverges, the others are unaffected."""
    w0, a0, x, y = random_problem(3, 5, 2, 4, 1, shared=False, scales=[0.3, 0.3, 0.3], seed=7)
    x = x.clone()
    x[1] *= 1e3
    kwargs = dict(leak=0.0, learning_rate=0.1, max_steps=400, grad_tol=1e-4)
    batch = run_gradient_descent(w0, a0, x, y, **kwargs)
    assert int(batch.stop_reason[1]) == StopReason.DIVERGED
    assert not bool(torch.isfinite(batch.loss_final[1])) or float(batch.loss_final[1]) > 1e6 * float(
        torch_loss(w0[1:2], a0[1:2], x[1:2], y[1:2], 0.0)[0]
    )
    assert int(batch.steps_taken[1]) < 100
    others = [0, 2]
    for r in others:
        assert int(batch.stop_reason[r]) in (StopReason.CONVERGED, StopReason.MAX_STEPS)
        assert torch.isfinite(batch.loss_final[r])
        assert int(batch.steps_taken[r]) > int(batch.steps_taken[1])
        single = run_gradient_descent(w0[r : r + 1], a0[r : r + 1], x[r : r + 1], y[r : r + 1], **kwargs)
        assert_results_equal(take_runs(batch, [r]), take_runs(single, slice(None)))
    # the diverged run is frozen: its checkpoints are NaN after the step it diverged at
    steps = batch.checkpoint_step
    assert bool(torch.isnan(batch.checkpoint_loss[1, steps >= batch.steps_taken[1]]).all())
    assert torch.equal(batch.n_plateaus[1], torch.tensor(0))
    # alone, the diverged run is flagged the same way at the same step
    alone = run_gradient_descent(w0[1:2], a0[1:2], x[1:2], y[1:2], **kwargs)
    assert int(alone.stop_reason[0]) == StopReason.DIVERGED
    assert int(alone.steps_taken[0]) == int(batch.steps_taken[1])


def test_nonfinite_initial_state_is_diverged():
    w0, a0, x, y = random_problem(2, 4, 2, 3, 1, shared=True, scales=[0.5, 0.5], seed=8)
    w0 = w0.clone()
    w0[0, 0, 0] = torch.nan
    result = run_gradient_descent(w0, a0, x, y, leak=0.0, learning_rate=0.1, max_steps=50)
    assert int(result.stop_reason[0]) == StopReason.DIVERGED and int(result.steps_taken[0]) == 0
    assert int(result.stop_reason[1]) != StopReason.DIVERGED and int(result.steps_taken[1]) > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_is_taken_from_inputs(dtype):
    w0, a0, x, y = random_problem(2, 4, 2, 3, 1, shared=True, scales=[0.5, 0.5], seed=9)
    w0, a0, x, y = (t.to(dtype) for t in (w0, a0, x, y))
    result = run_gradient_descent(w0, a0, x, y, leak=0.0, learning_rate=0.1, max_steps=20)
    for field in dataclasses.fields(result):
        value = getattr(result, field.name)
        if field.name not in INTEGER_FIELDS:
            assert value.dtype == dtype, field.name
    losses, _, _, _, _ = manual_descent(*(t.double() for t in (w0, a0, x, y)), 0.0, 0.1, 20)
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(result.loss_final.double(), losses[:, -1], rtol=rtol, atol=0)


# ----------------------------------------------------------------------------------------------------------------
# Bad input


def good_arguments():
    w0, a0, x, y = random_problem(2, 4, 3, 5, 2, shared=True, scales=[0.5, 0.5], seed=0)
    return dict(w0=w0, a0=a0, x=x, y=y, leak=0.0, learning_rate=0.1, max_steps=10)


BAD_INPUTS = [
    # (argument to replace, replacement builder, pattern the message must contain)
    ("w0", lambda kw: kw["w0"][0], "w0"),
    ("w0", lambda kw: kw["w0"].unsqueeze(0), "w0"),
    ("w0", lambda kw: kw["w0"].numpy(), "w0"),
    ("a0", lambda kw: kw["a0"][:, :, 0], "a0"),
    ("a0", lambda kw: kw["a0"][:1], "a0"),
    ("a0", lambda kw: kw["a0"][:, :3], "a0"),
    ("a0", lambda kw: kw["a0"].float(), "a0"),
    ("a0", lambda kw: kw["a0"].to(torch.int64), "a0"),
    ("x", lambda kw: kw["x"][0], "x"),
    ("x", lambda kw: kw["x"][:, :, :2], "x"),
    ("x", lambda kw: kw["x"].expand(3, -1, -1), "x"),
    ("x", lambda kw: kw["x"].float(), "x"),
    ("x", lambda kw: kw["x"][:, :3], "x"),
    ("x", lambda kw: kw["x"][:, :0], "x"),
    ("y", lambda kw: kw["y"][..., 0], "y"),
    ("y", lambda kw: kw["y"][:, :, :1], "y"),
    ("y", lambda kw: kw["y"].expand(3, -1, -1), "y"),
    ("y", lambda kw: kw["y"].float(), "y"),
    ("y", lambda kw: kw["y"][:, :3], "x|y"),
    ("leak", lambda kw: 1.0, "leak"),
    ("leak", lambda kw: -0.1, "leak"),
    ("leak", lambda kw: float("nan"), "leak"),
    ("learning_rate", lambda kw: 0.0, "learning_rate"),
    ("learning_rate", lambda kw: -0.1, "learning_rate"),
    ("learning_rate", lambda kw: float("nan"), "learning_rate"),
    ("max_steps", lambda kw: -1, "max_steps"),
    ("grad_tol", lambda kw: 0.0, "grad_tol"),
    ("divergence_factor", lambda kw: 1.0, "divergence_factor"),
    ("n_checkpoints", lambda kw: 1, "n_checkpoints"),
]


@pytest.mark.parametrize(("name", "replace", "pattern"), BAD_INPUTS)
def test_bad_input_raises_value_error_naming_argument(name, replace, pattern):
    kwargs = good_arguments()
    kwargs[name] = replace(kwargs)
    positional = [kwargs.pop(key) for key in ("w0", "a0", "x", "y")]
    with pytest.raises(ValueError, match=rf"\b({pattern})\b"):
        run_gradient_descent(*positional, **kwargs)


def test_good_arguments_run():
    kwargs = good_arguments()
    positional = [kwargs.pop(key) for key in ("w0", "a0", "x", "y")]
    result = run_gradient_descent(*positional, **kwargs, plateaus=PlateauSettings())
    assert result.w_final.shape == positional[0].shape


# ----------------------------------------------------------------------------------------------------------------
# Population loss (infinite Gaussian data)


def test_population_descent_from_near_the_teacher_converges_to_zero_loss():
    from pipeline.losses.population import population_loss
    from pipeline.problems import run_population_gradient_descent

    generator = torch.Generator().manual_seed(3)
    teacher_w = torch.eye(4, dtype=torch.float64)[None]
    teacher_a = torch.ones(1, 4, 1, dtype=torch.float64)
    w0 = teacher_w + 0.05 * torch.randn(3, 4, 4, dtype=torch.float64, generator=generator)
    a0 = torch.ones(3, 4, 1, dtype=torch.float64)
    result = run_population_gradient_descent(
        w0, a0, teacher_w, teacher_a, leak=0.0, learning_rate=0.1, max_steps=5000, train_output=False
    )
    assert result.stop_reason.tolist() == [int(StopReason.CONVERGED)] * 3
    assert float(result.loss_final.abs().max()) < 1e-12
    torch.testing.assert_close(result.checkpoint_loss[:, 0], population_loss(w0, a0, teacher_w, teacher_a, 0.0))


def test_population_descent_names_the_teacher_in_errors():
    from pipeline.problems import run_population_gradient_descent

    w0 = torch.zeros(2, 3, 4, dtype=torch.float64)
    a0 = torch.ones(2, 3, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="teacher_w"):
        run_population_gradient_descent(
            w0,
            a0,
            torch.eye(3, dtype=torch.float64)[None],
            torch.ones(1, 3, 1, dtype=torch.float64),
            leak=0.0,
            learning_rate=0.1,
            max_steps=1,
        )
