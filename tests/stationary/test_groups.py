"""Neuron groups and reduced networks (theory.md sections 7 and 8.1) against independent oracles.

Oracles: a naive numpy loop for the network outputs, and hand-built embeddings (section 7: E1 zero-output
copies, E3 positive splits, dead and zero neurons) whose grouping is known by construction.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.stationary.groups import NEURON_CATEGORY, group_neurons


def _naive_forward(w: np.ndarray, a: np.ndarray, x: np.ndarray, leak: float) -> np.ndarray:
    """``f(x_i) = sum_j a_j rho(w_j . x_i)`` by explicit loops, one run: w (m, d), a (m, k), x (n, d)."""
    n, k = x.shape[0], a.shape[1]
    out = np.zeros((n, k))
    for i in range(n):
        for j in range(w.shape[0]):
            z = float(np.dot(w[j], x[i]))
            out[i] += a[j] * (z if z > 0 else leak * z)
    return out


def _data(n: int = 15, d: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.hstack([rng.normal(size=(n, d - 1)), np.ones((n, 1))])


def _t(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.as_tensor(np.asarray(v, dtype=np.float64))[None] for v in arrays]


def _assert_same_outputs(groups, w, a, x, leak):
    """Reduced network == original network on the data (naive loops), to float precision."""
    for r in range(groups.w.shape[0]):
        width = int(groups.width[r])
        reduced = _naive_forward(groups.w[r, :width].numpy(), groups.a[r, :width].numpy(), x, leak)
        original = _naive_forward(w[r], a[r], x, leak)
        scale = np.abs(original).max()
        np.testing.assert_allclose(reduced, original, rtol=0, atol=1e-13 * scale)
        assert float(groups.forward_error[r]) <= 1e-13
        assert np.all(groups.w[r, width:].numpy() == 0) and np.all(groups.a[r, width:].numpy() == 0)


def _category(name: str) -> int:
    return NEURON_CATEGORY.index(name)


@pytest.mark.parametrize("leak", [0.0, 0.1])
@pytest.mark.parametrize("k", [1, 2])
def test_split_and_zero_output_copies_are_grouped_and_reduced_exactly(leak, k):
    rng = np.random.default_rng(1)
    x = _data()
    base_w, base_a = rng.normal(size=(3, 3)), rng.normal(size=(3, k))
    w = np.zeros((7, 3))
    a = np.zeros((7, k))
    w[:3], a[:3] = base_w, base_a
    # E3 split of neuron 0 (beta = 0.3, gamma = 0.5 and 2) and of neuron 1 (beta = 1.7, outside [0, 1]).
    for j, copy, beta, g1, g2 in [(0, 3, 0.3, 0.5, 2.0), (1, 4, 1.7, 1.5, 0.25)]:
        w[j], a[j] = g1 * base_w[j], beta * base_a[j] / g1
        w[copy], a[copy] = g2 * base_w[j], (1 - beta) * base_a[j] / g2
    w[5], a[5] = 3.0 * base_w[2], 0.0  # E1 / beta = 1: zero-output copy of neuron 2
    # neuron 6 is the zero neuron (0, 0)
    groups = group_neurons(*_t(w, a), torch.as_tensor(x)[None], leak)
    assert groups.group[0].tolist() == [0, 1, 2, 0, 1, -1, -1]
    assert int(groups.width[0]) == 3
    assert groups.group_size[0].tolist() == [2, 2, 1, 0, 0, 0, 0]
    assert groups.category[0].tolist() == [_category("kept")] * 5 + [_category("zero")] * 2
    _assert_same_outputs(groups, w[None], a[None], x, leak)
    # The merged neurons are the base neurons up to the rescaling symmetry: same a_j w_j^T.
    for g in range(3):
        expected = np.outer(base_a[g], base_w[g])
        got = np.outer(groups.a[0, g].numpy(), groups.w[0, g].numpy())
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # Merged neurons are balanced and point along the original direction (positive scaling).
    for g in (0, 1):
        assert np.isclose(np.linalg.norm(groups.w[0, g].numpy()), np.linalg.norm(groups.a[0, g].numpy()))
        assert np.dot(groups.w[0, g].numpy(), base_w[g]) > 0


@pytest.mark.parametrize("leak", [0.0, 0.2])
def test_opposite_directions_are_not_grouped(leak):
    rng = np.random.default_rng(2)
    x = _data(seed=2)
    u = rng.normal(size=3)
    w = np.stack([u, -u, 2.0 * u])
    a = np.array([[1.0], [0.7], [0.4]])
    groups = group_neurons(*_t(w, a), torch.as_tensor(x)[None], leak)
    assert groups.group[0].tolist() == [0, 1, 0]
    assert int(groups.width[0]) == 2
    _assert_same_outputs(groups, w[None], a[None], x, leak)


def test_parallel_neurons_with_different_patterns_are_not_grouped():
    rng = np.random.default_rng(3)
    basis, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    u, t = basis[:, 0], basis[:, 1]
    theta = 1e-6  # far below angle_tol: direction alone would group them
    v = np.cos(theta) * u + np.sin(theta) * t
    x_between = 0.5 * theta * u - t  # u . x > 0 > v . x, both well above the kink tolerance
    assert np.dot(u, x_between) > 1e-7 and np.dot(v, x_between) < -1e-7
    x_plain = rng.normal(size=(12, 3))
    w = np.stack([u, 2.0 * v])
    a = np.array([[1.0], [0.5]])
    grouped = group_neurons(*_t(w, a), torch.as_tensor(x_plain)[None], 0.0)
    assert grouped.group[0].tolist() == [0, 0]
    _assert_same_outputs(grouped, w[None], a[None], x_plain, 0.0)
    x_split = np.vstack([x_plain, x_between])
    separated = group_neurons(*_t(w, a), torch.as_tensor(x_split)[None], 0.0)
    assert separated.group[0].tolist() == [0, 1]
    assert int(separated.width[0]) == 2
    _assert_same_outputs(separated, w[None], a[None], x_split, 0.0)


def test_dead_touching_and_cancelled_neurons_are_dropped():
    rng = np.random.default_rng(4)
    x = np.hstack([rng.uniform(-1.0, 0.9, size=(10, 1)), rng.normal(size=(10, 1)), np.ones((10, 1))])
    x[0] = [1.0, 0.3, 1.0]
    u = rng.normal(size=3)
    w = np.stack([u, [0.0, 0.0, -1.0], [1.0, 0.0, -1.0], 0.5 * u + [0.0, 0.0, 5.0], 2.0 * u + [0.0, 0.0, 5.0]])
    a = np.array([[1.0], [2.0], [3.0], [1.0], [-0.5]])
    # neuron 1: all z = -1 (dead); neuron 2: z <= 0 with z_0 = 0 (dead, touching); neurons 3 and 4
    # are parallel with a_3 ||w_3|| + a_4 ||w_4|| = 0: they cancel.
    w[4] = 2.0 * w[3]
    a[4] = -0.5 * a[3]
    relu = group_neurons(*_t(w, a), torch.as_tensor(x)[None], 0.0)
    assert relu.group[0].tolist() == [0, -1, -1, -1, -1]
    expected = ["kept", "dead", "dead_touching", "cancelled", "cancelled"]
    assert relu.category[0].tolist() == [_category(c) for c in expected]
    assert int(relu.width[0]) == 1
    _assert_same_outputs(relu, w[None], a[None], x, 0.0)
    leaky = group_neurons(*_t(w, a), torch.as_tensor(x)[None], 0.1)  # leaky: nothing is dead
    assert leaky.group[0].tolist() == [0, 1, 2, -1, -1]
    _assert_same_outputs(leaky, w[None], a[None], x, 0.1)


def test_near_parallel_groups_merge_exactly_or_stay_split():
    """Scalar output: a same-pattern group is one linear map on the data, so a near-parallel group merges
    exactly. Vector output with non-parallel a_j: no single neuron reproduces it, so it stays split."""
    rng = np.random.default_rng(5)
    x = _data(n=20, seed=5)
    u = rng.normal(size=3)
    u /= np.linalg.norm(u)
    t = np.linalg.svd(u[None])[2][1]
    v = np.cos(1e-6) * u + np.sin(1e-6) * t
    w = np.stack([u, 1.5 * v, rng.normal(size=3)])
    scalar = group_neurons(*_t(w, np.array([[1.0], [0.3], [0.8]])), torch.as_tensor(x)[None], 0.0)
    assert scalar.group[0].tolist() == [0, 0, 1] and int(scalar.unmerged[0]) == 0
    _assert_same_outputs(scalar, w[None], np.array([[[1.0], [0.3], [0.8]]]), x, 0.0)
    a_vec = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    vector = group_neurons(*_t(w, a_vec), torch.as_tensor(x)[None], 0.0)
    assert vector.group[0].tolist() == [0, 1, 2] and int(vector.unmerged[0]) == 1
    _assert_same_outputs(vector, w[None], a_vec[None], x, 0.0)


def test_batched_runs_match_single_runs_and_permutations():
    rng = np.random.default_rng(6)
    runs, m, k = 5, 6, 2
    x = _data(n=18, seed=6)
    w = rng.normal(size=(runs, m, 3))
    a = rng.normal(size=(runs, m, k))
    for r in range(runs):  # plant splits and a zero-output copy
        w[r, 3], a[r, 3] = (1.0 + r) * w[r, 0], 0.2 * a[r, 0]
        w[r, 4] = 0.5 * w[r, 1]
        a[r, 5] = 0.0
    groups = group_neurons(torch.as_tensor(w), torch.as_tensor(a), torch.as_tensor(x)[None], 0.0)
    _assert_same_outputs(groups, w, a, x, 0.0)
    for r in range(runs):
        single = group_neurons(*_t(w[r], a[r]), torch.as_tensor(x)[None], 0.0)
        assert single.group[0].tolist() == groups.group[r].tolist()
        perm = rng.permutation(m)
        permuted = group_neurons(*_t(w[r, perm], a[r, perm]), torch.as_tensor(x)[None], 0.0)
        assert int(permuted.width[0]) == int(groups.width[r])
        assert _partition(permuted.group[0].numpy(), perm) == _partition(groups.group[r].numpy(), np.arange(m))
    assert groups.width.tolist() == [3] * runs


def _partition(group: np.ndarray, neuron: np.ndarray) -> set[frozenset[int]]:
    """Groups as sets of original neuron indices (dropped neurons as one set tagged -1)."""
    out = set()
    for g in np.unique(group):
        members = frozenset(int(j) for j in neuron[group == g])
        out.add(members if g >= 0 else frozenset({-1}) | members)
    return out


def test_float32_inputs_keep_their_dtype():
    rng = np.random.default_rng(7)
    w = torch.as_tensor(rng.normal(size=(2, 4, 3)), dtype=torch.float32)
    a = torch.as_tensor(rng.normal(size=(2, 4, 1)), dtype=torch.float32)
    x = torch.as_tensor(_data(seed=7), dtype=torch.float32)[None]
    groups = group_neurons(w, a, x, 0.0)
    assert groups.w.dtype == torch.float32 and groups.a.dtype == torch.float32
    assert groups.group.shape == (2, 4) and groups.width.shape == (2,)


def test_chain_of_directions_is_cut_by_complete_linkage():
    """Directions a, b, c with angle(a, b) = angle(b, c) = 0.6 tol but angle(a, c) = 1.2 tol: the candidate
    graph is a chain, not a clique; complete linkage (scikit-learn) keeps every group within the tolerance."""
    tol = 1e-4
    rng = np.random.default_rng(8)
    basis, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    u, t = basis[:, 0], basis[:, 1]
    w = np.stack([np.cos(s * tol) * u + np.sin(s * tol) * t for s in (0.0, 0.6, 1.2)])
    a = np.array([[1.0], [0.5], [0.25]])
    x = rng.normal(size=(12, 3))
    x = x[np.abs(x @ u) > 1e-2]  # keep the three patterns identical
    groups = group_neurons(*_t(w, a), torch.as_tensor(x)[None], 0.0, angle_tol=tol)
    ids = groups.group[0].tolist()
    assert int(groups.width[0]) == 2 and ids[0] != ids[2] and ids[1] in (ids[0], ids[2])
    _assert_same_outputs(groups, w[None], a[None], x, 0.0)
