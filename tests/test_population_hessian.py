"""Closed-form population Hessian (``pipeline.losses.population_hessian``) against autograd of the closed-form loss.

Oracle: ``torch.func.hessian`` of :func:`pipeline.losses.population.population_loss` (forward-over-reverse through the
kernel formula), at random points, at exactly (anti)parallel pairs, at zero neurons and duplicated neurons.
The finite-difference checks of the Hessian are in ``tests/test_population.py``.
"""

from __future__ import annotations

import pytest
import torch

from pipeline.losses import population as pop
from pipeline.losses.population_hessian import population_hessian_batch

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

DT = torch.float64


def autograd_hessian(w, a, v, b, leak, train_output):
    """The oracle, one run at a time: (P, P)."""
    m, d = w.shape
    n_w = m * d

    def loss_of(theta):
        w_ = theta[:n_w].reshape(m, d)
        a_ = theta[n_w:].reshape(a.shape) if train_output else a
        return pop.population_loss(w_[None], a_[None], v[None], b[None], leak)[0]

    theta0 = torch.cat([w.reshape(-1), a.reshape(-1)]) if train_output else w.reshape(-1)
    return torch.func.hessian(loss_of)(theta0)


def random_point(n_runs, m, t, d, k, seed, shared_teacher):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n_runs, m, d, generator=gen, dtype=DT) / d**0.5
    a = torch.randn(n_runs, m, k, generator=gen, dtype=DT)
    lead = 1 if shared_teacher else n_runs
    v = torch.randn(lead, t, d, generator=gen, dtype=DT) / d**0.5
    b = torch.randn(lead, t, k, generator=gen, dtype=DT)
    return w, a, v, b


def degenerate(w, v):
    """Make run 0 hold an exactly parallel pair, an antiparallel pair, a zero neuron and a copy of a teacher neuron;
    run 1 two identical students."""
    w = w.clone()
    w[0, 1] = 2.5 * w[0, 0]
    w[0, 2] = -0.5 * w[0, 0]
    w[0, 3] = 0.0
    w[0, 4] = v[0, 1]
    w[1, 1] = w[1, 0]
    return w


def assert_matches_oracle(w, a, v, b, leak, train_output, atol):
    batch = population_hessian_batch(w, a, v, b, leak, train_output=train_output)
    for r in range(w.shape[0]):
        vr, br = (v[0], b[0]) if v.shape[0] == 1 else (v[r], b[r])
        oracle = autograd_hessian(w[r], a[r], vr, br, leak, train_output)
        assert batch[r].shape == oracle.shape
        scale = max(1.0, oracle.abs().max().item())
        assert (batch[r] - oracle).abs().max().item() <= atol * scale, r


@pytest.mark.parametrize("leak", [0.0, 0.1])
@pytest.mark.parametrize("train_output", [True, False])
@pytest.mark.parametrize(("k", "shared_teacher"), [(1, True), (2, False)])
def test_closed_form_hessian_matches_autograd_at_generic_points(leak, train_output, k, shared_teacher):
    w, a, v, b = random_point(3, 5, 3, 4, k, seed=11 + k, shared_teacher=shared_teacher)
    assert_matches_oracle(w, a, v, b, leak, train_output, atol=1e-12)


@pytest.mark.parametrize("leak", [0.0, 0.1])
@pytest.mark.parametrize("train_output", [True, False])
def test_closed_form_hessian_matches_autograd_at_parallel_pairs_and_zero_neurons(leak, train_output):
    w, a, v, b = random_point(2, 5, 3, 4, 2, seed=5, shared_teacher=True)
    assert_matches_oracle(degenerate(w, v), a, v, b, leak, train_output, atol=1e-12)


def test_closed_form_hessian_at_the_safran_shamir_global_minimum_and_symmetric():
    k = 6
    v = torch.eye(k, dtype=DT)[None]
    b = torch.ones(1, k, 1, dtype=DT)
    w = torch.cat([v, torch.zeros(1, 1, k, dtype=DT)], dim=1)  # width k + 1 with a zero neuron
    a = torch.ones(1, k + 1, 1, dtype=DT)
    assert_matches_oracle(w, a, v, b, 0.0, False, atol=1e-14)
    gen = torch.Generator().manual_seed(3)
    w, a, v, b = random_point(4, 7, 6, 6, 1, seed=8, shared_teacher=True)
    h = population_hessian_batch(w + 1e-3 * torch.randn(w.shape, generator=gen, dtype=DT), a, v, b, 0.0)
    assert torch.allclose(h, h.transpose(1, 2), atol=1e-13)
