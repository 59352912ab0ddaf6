"""Closed-form loss and gradients of ``pipeline.losses.nets`` against independent oracles.

Oracles: torch autograd of a naively written loss (explicit loop over runs, ``torch.where`` activation;
nothing from ``pipeline.losses.nets``) and central finite differences in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.losses import nets
from tests.reference import torch_loss

# Comparison tolerances per dtype: (rtol, atol relative to max(1, largest reference entry)). The data and the
# parameters are O(1), so rounding errors are O(eps) even where the reference itself cancels to something small.
TOLERANCE = {
    torch.float32: (1e-5, 1e-6),
    torch.float64: (1e-12, 1e-14),
}
FD_STEP = 1e-6
# relative to the largest directional derivative (the loss is piecewise quadratic: FD is exact up to rounding)
FD_TOLERANCE = 1e-7

N_SAMPLES = [1, 2, 3, 7, 16, 33, 70]
WIDTHS = [1, 3, 5, 17]
N_OUTPUTS = [1, 3]
N_INPUTS = [1, 2, 5]
LEAKS = [0.0, 0.3]
N_RUNS = 2


def make_problem(n, m, k, d, shared, dtype, seed=0):
    """Gaussian data, weights and targets; ``x``/``y`` with leading 1 (shared) or ``N_RUNS``."""
    rng = np.random.default_rng([seed, n, m, k, d, int(shared)])
    lead = 1 if shared else N_RUNS
    x = rng.standard_normal((lead, n, d))
    y = rng.standard_normal((lead, n, k))
    w = rng.standard_normal((N_RUNS, m, d)) / np.sqrt(d)
    a = rng.standard_normal((N_RUNS, m, k)) / np.sqrt(m)
    return tuple(torch.tensor(t, dtype=dtype) for t in (w, a, x, y))


def broadcast_loss(w, a, x, y, leak):
    """Same loss for parameters with extra leading axes (..., R, m, d); used for batched finite differences."""
    z = x @ w.transpose(-1, -2)
    hidden = torch.where(z > 0, z, leak * z)
    residual = hidden @ a - y
    return (residual * residual).sum(dim=(-2, -1)) / (2 * x.shape[-2])


def autograd_reference(w, a, x, y, leak):
    """Loss and gradients of ``torch_loss`` (tests/reference.py) in float64 (sum over runs: runs are independent)."""
    w64 = w.detach().double().requires_grad_(True)
    a64 = a.detach().double().requires_grad_(True)
    loss = torch_loss(w64, a64, x.double(), y.double(), leak)
    grad_w, grad_a = torch.autograd.grad(loss.sum(), (w64, a64))
    return loss.detach(), grad_w, grad_a


def assert_close_to(actual, reference, dtype):
    rtol, atol = TOLERANCE[dtype]
    scale = float(reference.abs().max()) if reference.numel() else 0.0
    torch.testing.assert_close(actual.double(), reference, rtol=rtol, atol=atol * max(scale, 1.0))


def fd_directions(shape, dtype, max_directions=24, seed=0):
    """Unit coordinate directions when there are few parameters, else random Gaussian directions, (P, *shape)."""
    size = int(np.prod(shape))
    if size <= max_directions:
        return torch.eye(size, dtype=dtype).reshape(size, *shape)
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.standard_normal((max_directions, *shape)), dtype=dtype)


def directional_finite_differences(w, a, x, y, leak, v_w, v_a, h=FD_STEP):
    """Central differences ``(L(p + h v) - L(p - h v)) / 2h`` summed over runs, one per direction, shape (P,)."""
    plus = broadcast_loss(w + h * v_w, a + h * v_a, x, y, leak)
    minus = broadcast_loss(w - h * v_w, a - h * v_a, x, y, leak)
    return (plus - minus).sum(dim=-1) / (2 * h)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("leak", LEAKS)
@pytest.mark.parametrize("d", N_INPUTS)
@pytest.mark.parametrize("k", N_OUTPUTS)
@pytest.mark.parametrize("m", WIDTHS)
@pytest.mark.parametrize("n", N_SAMPLES)
def test_gradients_match_autograd(n, m, k, d, leak, shared, dtype):
    w, a, x, y = make_problem(n, m, k, d, shared, dtype)
    grads = nets.gradients(w, a, x, y, leak)
    loss_ref, grad_w_ref, grad_a_ref = autograd_reference(w, a, x, y, leak)
    assert grads.loss.shape == (N_RUNS,) and grads.loss.dtype == dtype
    assert grads.grad_w.shape == w.shape and grads.grad_a.shape == a.shape
    assert grads.residual.shape == (N_RUNS, n, k)
    assert grads.grad_w.dtype == dtype and grads.grad_a.dtype == dtype
    assert_close_to(grads.loss, loss_ref, dtype)
    assert_close_to(nets.loss(w, a, x, y, leak), loss_ref, dtype)
    assert_close_to(grads.grad_w, grad_w_ref, dtype)
    assert_close_to(grads.grad_a, grad_a_ref, dtype)
    norm_ref = torch.sqrt(grad_w_ref.square().sum(dim=(1, 2)) + grad_a_ref.square().sum(dim=(1, 2)))
    assert_close_to(grads.norm(), norm_ref, dtype)


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("leak", LEAKS)
@pytest.mark.parametrize("d", N_INPUTS)
@pytest.mark.parametrize("k", N_OUTPUTS)
@pytest.mark.parametrize("m", WIDTHS)
@pytest.mark.parametrize("n", N_SAMPLES)
def test_gradients_match_finite_differences(n, m, k, d, leak, shared):
    w, a, x, y = make_problem(n, m, k, d, shared, torch.float64, seed=1)
    grads = nets.gradients(w, a, x, y, leak)
    for index, analytic in enumerate((grads.grad_w, grads.grad_a)):
        directions = fd_directions(analytic.shape, torch.float64, seed=index)
        zeros = torch.zeros(len(directions), *(a if index == 0 else w).shape, dtype=torch.float64)
        v_w, v_a = (directions, zeros) if index == 0 else (zeros, directions)
        numeric = directional_finite_differences(w, a, x, y, leak, v_w, v_a)
        predicted = (directions * analytic).sum(dim=(1, 2, 3))
        scale = max(float(numeric.abs().max()), 1.0)
        torch.testing.assert_close(predicted, numeric, rtol=0.0, atol=FD_TOLERANCE * scale)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("leak", LEAKS)
@pytest.mark.parametrize(("n", "m", "k", "d"), [(1, 1, 1, 1), (7, 3, 3, 5), (33, 17, 1, 2), (70, 5, 3, 2)])
def test_fixed_output_layer_gives_zero_output_gradient(n, m, k, d, leak, shared, dtype):
    w, a, x, y = make_problem(n, m, k, d, shared, dtype, seed=2)
    trained = nets.gradients(w, a, x, y, leak, train_output=True)
    fixed = nets.gradients(w, a, x, y, leak, train_output=False)
    assert fixed.grad_a.shape == a.shape
    assert torch.count_nonzero(fixed.grad_a) == 0
    torch.testing.assert_close(fixed.grad_w, trained.grad_w, rtol=0, atol=0)
    torch.testing.assert_close(fixed.loss, trained.loss, rtol=0, atol=0)
    _, grad_w_ref, _ = autograd_reference(w, a, x, y, leak)
    assert_close_to(fixed.grad_w, grad_w_ref, dtype)
    norm_ref = torch.linalg.vector_norm(grad_w_ref.flatten(1), dim=1)
    assert_close_to(fixed.norm(), norm_ref, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("leak", LEAKS)
@pytest.mark.parametrize("shared_x", [True, False])
@pytest.mark.parametrize(("n", "m", "k", "d"), [(1, 3, 1, 2), (7, 1, 3, 5), (33, 17, 1, 1), (70, 5, 3, 2)])
def test_gradients_with_one_shared_and_one_per_run_tensor(n, m, k, d, shared_x, leak, dtype):
    """Shared inputs with per-run targets and the reverse broadcast like data given per run."""
    w, a, x, y = make_problem(n, m, k, d, False, dtype, seed=4)
    if shared_x:
        x = x[:1]
    else:
        y = y[:1]
    grads = nets.gradients(w, a, x, y, leak)
    loss_ref, grad_w_ref, grad_a_ref = autograd_reference(w, a, x, y, leak)
    assert_close_to(grads.loss, loss_ref, dtype)
    assert_close_to(grads.grad_w, grad_w_ref, dtype)
    assert_close_to(grads.grad_a, grad_a_ref, dtype)
    expanded = nets.gradients(w, a, x.expand(N_RUNS, -1, -1), y.expand(N_RUNS, -1, -1), leak)
    assert_close_to(grads.grad_w, expanded.grad_w.double(), dtype)


@pytest.mark.parametrize("leak", LEAKS)
def test_kink_uses_leak_as_slope(leak):
    """At z = 0 exactly the gradient uses rho'(0) = leak, the convention of torch leaky_relu autograd."""
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]], dtype=torch.float64)
    y = torch.tensor([[[1.0], [-2.0], [0.5]]], dtype=torch.float64)
    # neuron 0 is orthogonal to x_1 (z = 0 at sample 1), neuron 1 is the zero vector (z = 0 everywhere)
    w = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]], dtype=torch.float64)
    a = torch.tensor([[[0.7], [-1.3]]], dtype=torch.float64)
    grads = nets.gradients(w, a, x, y, leak)
    w_ref = w.clone().requires_grad_(True)
    a_ref = a.clone().requires_grad_(True)
    f = torch.nn.functional.leaky_relu(x @ w_ref.transpose(1, 2), negative_slope=leak) @ a_ref
    loss = 0.5 * (f - y).square().sum() / x.shape[1]
    grad_w_ref, grad_a_ref = torch.autograd.grad(loss, (w_ref, a_ref))
    torch.testing.assert_close(grads.loss, loss.detach().reshape(1), rtol=1e-14, atol=0)
    torch.testing.assert_close(grads.grad_w, grad_w_ref, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(grads.grad_a, grad_a_ref, rtol=1e-14, atol=1e-15)
    if leak > 0:
        assert float(grads.grad_w[0, 1].abs().max()) > 0  # the zero neuron still gets a gradient


@pytest.mark.parametrize("leak", LEAKS)
def test_activation_and_forward(leak):
    z = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0], dtype=torch.float64)
    expected = torch.tensor([-2.0 * leak, -0.5 * leak, 0.0, 0.5, 3.0], dtype=torch.float64)
    torch.testing.assert_close(nets.activation(z, leak), expected, rtol=0, atol=0)
    slope = torch.tensor([leak, leak, leak, 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(nets.activation_slope(z, leak), slope, rtol=0, atol=0)
    w, a, x, y = make_problem(5, 3, 2, 4, False, torch.float64, seed=3)
    f = nets.forward(w, a, x, leak)
    for r in range(N_RUNS):
        for i in range(x.shape[1]):
            for col in range(a.shape[2]):
                value = sum(
                    float(a[r, j, col]) * max(float(w[r, j] @ x[r, i]), leak * float(w[r, j] @ x[r, i]))
                    for j in range(w.shape[1])
                )
                assert float(f[r, i, col]) == pytest.approx(value, rel=1e-12, abs=1e-14)


# Shared data (leading size 1) takes a different route from data given per run: one GEMM over all runs and
# neurons instead of batched products. Both must give the same numbers.
AWKWARD = [(1, 1, 1, 1, 1), (3, 1, 1, 5, 7), (5, 17, 3, 1, 2), (4, 7, 2, 3, 33), (9, 5, 3, 2, 70)]  # R, m, k, d, n


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("train_output", [True, False])
@pytest.mark.parametrize("leak", LEAKS)
@pytest.mark.parametrize(("n_runs", "m", "k", "d", "n"), AWKWARD)
def test_shared_data_path_equals_per_run_path(n_runs, m, k, d, n, leak, train_output, dtype):
    rng = np.random.default_rng([5, n_runs, m, k, d, n])
    x = torch.tensor(rng.standard_normal((1, n, d)), dtype=dtype)
    y = torch.tensor(rng.standard_normal((1, n, k)), dtype=dtype)
    per_run_x, per_run_y = x.expand(n_runs, -1, -1).contiguous(), y.expand(n_runs, -1, -1).contiguous()
    shared = nets.GradientWorkspace(x, y, n_runs, m, leak, train_output=train_output)
    per_run = nets.GradientWorkspace(per_run_x, per_run_y, n_runs, m, leak, train_output=train_output)
    for call in range(2):  # the second call overwrites the buffers of the first
        w = torch.tensor(rng.standard_normal((n_runs, m, d)) / np.sqrt(d), dtype=dtype)
        a = torch.tensor(rng.standard_normal((n_runs, m, k)) / np.sqrt(m), dtype=dtype)
        fast, reference = shared(w, a), per_run(w, a)
        loss_ref, grad_w_ref, grad_a_ref = autograd_reference(w, a, x, y, leak)
        for name in ("loss", "residual", "grad_w", "grad_a"):
            got, want = getattr(fast, name), getattr(reference, name)
            assert got.shape == want.shape and got.dtype == dtype, (call, name)
            assert_close_to(got, want.double(), dtype)
        assert_close_to(fast.loss, loss_ref, dtype)
        assert_close_to(fast.grad_w, grad_w_ref, dtype)
        assert_close_to(fast.grad_a, grad_a_ref if train_output else torch.zeros_like(grad_a_ref), dtype)


@pytest.mark.parametrize("shared", [True, False])
def test_workspace_accepts_non_contiguous_parameters(shared):
    w, a, x, y = make_problem(7, 5, 3, 2, shared, torch.float64, seed=6)
    w_strided = w.transpose(1, 2).contiguous().transpose(1, 2)  # same values, column-major storage
    a_strided = a.transpose(1, 2).contiguous().transpose(1, 2)
    assert not w_strided.is_contiguous() and not a_strided.is_contiguous()
    grads = nets.GradientWorkspace(x, y, N_RUNS, 5, 0.3)(w_strided, a_strided)
    loss_ref, grad_w_ref, grad_a_ref = autograd_reference(w, a, x, y, 0.3)
    assert_close_to(grads.loss, loss_ref, torch.float64)
    assert_close_to(grads.grad_w, grad_w_ref, torch.float64)
    assert_close_to(grads.grad_a, grad_a_ref, torch.float64)


@pytest.mark.parametrize("leak", LEAKS)
@pytest.mark.parametrize(("n_runs", "m", "k", "d", "n"), [(10, 3, 1, 5, 7), (12, 16, 2, 8, 64), (7, 5, 3, 4, 33)])
def test_per_run_data_give_bit_identical_gradients_whatever_the_batch_size(n_runs, m, k, d, n, leak):
    """Surveys stack per-run data; splitting a batch (down to single runs) must not change a single bit."""
    gen = torch.Generator().manual_seed(n_runs * 1000 + n)
    x, y, w, a = (
        torch.randn(shape, generator=gen, dtype=torch.float64)
        for shape in ((n_runs, n, d), (n_runs, n, k), (n_runs, m, d), (n_runs, m, k))
    )
    whole = nets.GradientWorkspace(x, y, n_runs, m, leak)(w, a)
    for size in (1, 3):
        for start in range(0, n_runs, size):
            part = slice(start, min(start + size, n_runs))
            piece = nets.GradientWorkspace(x[part], y[part], part.stop - start, m, leak)(w[part], a[part])
            for name in ("loss", "grad_w", "grad_a"):
                assert torch.equal(getattr(piece, name), getattr(whole, name)[part]), (name, size, start)
