"""Kernels of the classifier against autograd and against each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.losses import nets
from pipeline.stationary import classify_batch, classify_point, labels
from pipeline.stationary.boxls import box_ls, box_ls_scipy
from pipeline.stationary.hessian import analytic_hessian
from pipeline.stationary.kinks import snap_point
from pipeline.stationary.neurons import neuron_quantities
from pipeline.stationary.tolerances import tolerances_for
from tests.stationary.helpers import cell_minimum, kinked_minimum, rank_one_regression


def _random(R=5, m=4, n=9, d=3, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    draw = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return draw(R, m, d), draw(R, m, k), draw(1, n, d), draw(1, n, k)


@pytest.mark.parametrize("leak", [0.0, 0.2])
def test_G_and_p_match_autograd_in_the_differentiable_case(leak):
    w, a, x, y = _random()
    kink = torch.zeros(w.shape[0], x.shape[1], w.shape[1], dtype=torch.bool)
    q = neuron_quantities(w, a, x, y, kink, leak)
    wg, ag = w.clone().requires_grad_(), a.clone().requires_grad_()
    nets.loss(wg, ag, x, y, leak).sum().backward()
    n = x.shape[1]
    torch.testing.assert_close(q.G / n, ag.grad)
    torch.testing.assert_close(q.p / n, wg.grad)


def test_analytic_hessian_matches_torch_func_hessian():
    w, a, x, y = _random(R=1, m=3, n=10, d=3, k=2, seed=4)
    kink = torch.zeros(1, 10, 3, dtype=torch.bool)
    q = neuron_quantities(w, a, x, y, kink, 0.1)
    H = analytic_hessian(q, a, x, 0)

    def f(wf, af):
        return nets.loss(wf[None], af[None], x, y, 0.1)[0]

    hw = torch.func.hessian(f, argnums=(0, 1))(w[0], a[0])
    m, d, k = 3, 3, 2
    full = torch.cat([
        torch.cat([hw[0][0].reshape(m * d, m * d), hw[0][1].reshape(m * d, m * k)], 1),
        torch.cat([hw[1][0].reshape(m * k, m * d), hw[1][1].reshape(m * k, m * k)], 1),
    ])  # fmt: skip
    np.testing.assert_allclose(H, full.numpy(), atol=1e-12)


def test_box_ls_enumeration_matches_scipy_including_dependent_columns():
    g = torch.Generator().manual_seed(0)
    for d in (2, 5):
        M = torch.randn(30, 3, d, generator=g, dtype=torch.float64)
        v = torch.randn(30, 2, d, generator=g, dtype=torch.float64)
        value, s = box_ls(M, v)
        assert ((s >= 0) & (s <= 1)).all()
        for e in range(30):
            for j in range(2):
                ref, _ = box_ls_scipy(M[e].numpy(), v[e, j].numpy())
                assert value[e, j].item() == pytest.approx(ref, abs=1e-10)


def test_kink_projection_gives_exact_zeros_and_keeps_other_signs():
    w, a, x, y = (torch.as_tensor(v)[None] for v in kinked_minimum(0.5))
    w = w + 1e-10 * torch.tensor([[[0.3, -0.1, 0.2]]], dtype=torch.float64)
    sp = snap_point(w, a, x, y, 0.0, tolerances_for("end_point"), learning_rate=None)
    assert sp.kink[0, :, 0].tolist() == [True] + [False] * (x.shape[1] - 1)
    z = nets.pre_activations(sp.w, x)
    assert abs(float(z[0, 0, 0])) < 1e-15
    assert torch.equal(z[0, 1:] > 0, nets.pre_activations(w, x)[0, 1:] > 0)


def test_learning_rate_widens_the_kink_tolerance():
    w, a, x, y = kinked_minimum(0.5)
    w = w + np.array([[1e-4, 0.0, 0.0]])
    assert not classify_point(w, a, x, y).kink[0]
    assert classify_point(w, a, x, y, learning_rate=1.0).kink[0]


def _transform(w, a, perm, scale):
    return (w * scale[:, None])[perm], (a / scale[:, None])[perm]


def _points():
    w, a, x, y = kinked_minimum(0.5)
    yield np.vstack([w, w, np.zeros_like(w)]), np.vstack([0.4 * a, 0.6 * a, [[0.0]]]), x, y
    yield np.vstack([w, w, w]), np.vstack([0.0 * a, 1.0 * a, 0.0 * a]), x, y
    w, a, x, y = rank_one_regression()
    yield np.vstack([w, w, w]), np.vstack([0.3 * a, 0.7 * a, 0 * a]), x, y


@pytest.mark.parametrize("case", range(3))
def test_labels_are_invariant_under_permutation_and_positive_rescaling(case):
    w, a, x, y = list(_points())[case]
    base = classify_point(w, a, x, y)
    perm, scale = np.array([2, 0, 1]), np.array([2.0, 0.5, 3.0])
    w2, a2 = _transform(w, a, perm, scale)
    other = classify_point(w2, a2, x, y)
    for field in ("point_type", "stationarity", "certificate", "mechanisms", "strictness", "differentiable"):
        assert getattr(other, field) == getattr(base, field), field
    assert other.escape.tolist() == base.escape[perm].tolist()
    assert other.roles == tuple(base.roles[i] for i in perm)


def test_batch_matches_single_points_and_has_code_tables():
    cases = list(_points())[:2]
    w = torch.as_tensor(np.stack([c[0] for c in cases]))
    a = torch.as_tensor(np.stack([c[1] for c in cases]))
    x, y = torch.as_tensor(cases[0][2])[None], torch.as_tensor(cases[0][3])[None]
    batch = classify_batch(w, a, x, y, leak=0.0)
    assert batch.point_type.shape == (2,) and batch.escape.shape == (2, 3) and batch.witness_w.shape == (2, 3, 3)
    for r, (wr, ar, xr, yr) in enumerate(cases):
        single = classify_point(wr, ar, xr, yr)
        assert labels.POINT_TYPE[batch.point_type[r]] == single.point_type
    attrs = labels.flag_attrs(labels.POINT_TYPE)
    assert attrs["flag_meanings"].split() == list(labels.POINT_TYPE)
    assert labels.decode_mechanisms(0b10001) == frozenset({"Z", "V"})


def test_plateau_mode_snaps_tiny_neurons_and_end_point_mode_does_not():
    w, a, x, y = cell_minimum()
    tiny_w, tiny_a = 1e-7 * np.ones((1, 3)), 1e-7 * np.ones((1, 1))
    w2, a2 = np.vstack([w, tiny_w]), np.vstack([a, tiny_a])
    assert classify_point(w2, a2, x, y, mode="plateau").point_type == "saddle"
    assert classify_point(w2, a2, x, y).point_type != "saddle"


def test_invalid_arguments_are_reported():
    w, a, x, y = cell_minimum()
    with pytest.raises(ValueError, match="leak"):
        classify_point(w, a, x, y, leak=1.0)
    with pytest.raises(ValueError, match="mode"):
        classify_point(w, a, x, y, mode="bogus")


def test_many_kink_gap_matches_scipy():
    from pipeline.stationary.first_order import first_order

    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 9, 3, generator=g, dtype=torch.float64)
    y = -torch.rand(1, 9, 1, generator=g, dtype=torch.float64) - 0.1
    w, a = torch.zeros(1, 1, 3, dtype=torch.float64), torch.ones(1, 1, 1, dtype=torch.float64)
    kink = torch.ones(1, 9, 1, dtype=torch.bool)
    q = neuron_quantities(w, a, x, y, kink, 0.2)
    fo = first_order(q, a, x, True, 1e-3)
    cols = (q.gamma[0, :, 0, None] * x[0]).numpy()
    ref, _ = box_ls_scipy(cols, q.p[0, 0].numpy())
    scale = float(q.r_norm[0] * q.s_x[0])
    assert float(fo.in_gap[0, 0]) * scale == pytest.approx(ref, abs=1e-6 * scale)


def test_box_ls_closed_form_handles_exactly_dependent_and_zero_columns():
    g = torch.Generator().manual_seed(3)
    base = torch.randn(40, 2, 4, generator=g, dtype=torch.float64)
    # third column = sum of the first two (dependent), and a zero padding column
    M = torch.cat([base, base.sum(dim=1, keepdim=True)], dim=1)
    M[::5, 2] = 0.0
    v = torch.randn(40, 3, 4, generator=g, dtype=torch.float64)
    value, s = box_ls(M, v)
    assert torch.isfinite(value).all() and ((s >= 0) & (s <= 1)).all()
    for e in range(40):
        for j in range(3):
            ref, _ = box_ls_scipy(M[e].numpy(), v[e, j].numpy())
            assert value[e, j].item() == pytest.approx(ref, abs=1e-10)
            assert (v[e, j] + s[e, j] @ M[e]).norm().item() == pytest.approx(value[e, j].item(), abs=1e-12)


def test_box_bounds_without_box_variables_is_the_norm_of_v():
    from pipeline.stationary.boxls import box_ls_bounds

    v = torch.tensor([[3.0, 4.0], [0.0, 1.0]], dtype=torch.float64)
    upper, lower, s = box_ls_bounds(torch.zeros(2, 0, 2, dtype=torch.float64), v)
    assert upper.tolist() == [5.0, 1.0] and lower.tolist() == [5.0, 1.0] and s.shape == (2, 0)


def test_non_finite_points_get_a_label_and_the_others_are_classified_as_alone():
    from pipeline.stationary import classify_batch, labels

    generator = torch.Generator().manual_seed(5)
    x = torch.randn(1, 6, 3, dtype=torch.float64, generator=generator)
    y = torch.randn(1, 6, 1, dtype=torch.float64, generator=generator)
    w = torch.randn(3, 2, 3, dtype=torch.float64, generator=generator)
    a = torch.randn(3, 2, 1, dtype=torch.float64, generator=generator)
    alone = classify_batch(w[[0, 2]], a[[0, 2]], x, y, leak=0.0)
    w[1, 0, 0] = float("nan")
    mixed = classify_batch(w, a, x, y, leak=0.0)
    assert labels.POINT_TYPE[mixed.point_type[1]] == "non_finite"
    assert mixed.point_type[[0, 2]].tolist() == alone.point_type.tolist()
    np.testing.assert_array_equal(mixed.first_order_gap[[0, 2]], alone.first_order_gap)
