"""The classifier's shortcuts give exactly the results of the computations they replace.

``classify_batch`` re-classifies with the kink tolerance scaled by 0.1 and 10 (theory.md 8.2 step 2).
The fast path reuses the base projection of neurons whose kink set is unchanged
(:func:`resnap_point`) and settles runs whose output gaps make them not stationary
(:func:`settled_not_stationary`) before the kink solves; the reference is
``classify_once(..., labels_only=True)`` on every changed run. Also checked: the select-free
activation (:func:`activation_parts`) and the line sums without a product over the points.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.losses import nets
from pipeline.stationary import classify_batch, labels
from pipeline.stationary.api import SENSITIVITY_FACTORS, _Options, _point_types
from pipeline.stationary.classify import classify_once, settled_not_stationary
from pipeline.stationary.kinks import activation_parts, kink_scores, resnap_point, snap_point
from pipeline.stationary.neurons import line_sums, parallel_inputs
from pipeline.stationary.refine import refine_end_points
from pipeline.stationary.tolerances import tolerances_for

_NOT_STATIONARY = labels.code(labels.POINT_TYPE, "not_stationary")
LEARNING_RATE = 0.1


def _gd_points(seed: int, leak: float, k: int, per_run_data: bool, runs: int = 72) -> dict:
    """GD points of width-3 nets on 12 points in 3-d (teacher + noise): random, early and late iterates.

    A sixth of the output weights start at exactly zero (zero-output neurons, escape tests); the late
    iterates are refined to stationary points of their activation patterns.
    """
    gen = torch.Generator().manual_seed(seed)
    batch = runs if per_run_data else 1
    n, d, m = 12, 3, 3
    x = torch.cat([torch.randn(batch, n, d - 1, generator=gen, dtype=torch.float64),
                   torch.ones(batch, n, 1, dtype=torch.float64)], -1)  # fmt: skip
    teacher_w = torch.randn(batch, 2, d, generator=gen, dtype=torch.float64)
    teacher_a = torch.randn(batch, 2, k, generator=gen, dtype=torch.float64)
    y = nets.forward(teacher_w, teacher_a, x, leak) + 0.1 * torch.randn(batch, n, k, generator=gen, dtype=torch.float64)
    w = 0.5 * torch.randn(runs, m, d, generator=gen, dtype=torch.float64)
    a = 0.5 * torch.randn(runs, m, k, generator=gen, dtype=torch.float64)
    a[torch.rand(runs, m, generator=gen) < 1 / 6] = 0.0
    steps = torch.tensor([0, 200, 3000]).repeat_interleave(runs // 3 + 1)[:runs]
    w.requires_grad_()
    a.requires_grad_()
    for step in range(int(steps.max())):
        live = (steps > step).to(torch.float64)
        loss = 0.5 * (nets.forward(w, a, x, leak) - y).square().mean(dim=-2).sum()
        grad_w, grad_a = torch.autograd.grad(loss, (w, a))
        with torch.no_grad():
            w -= LEARNING_RATE * live[:, None, None] * grad_w
            a -= LEARNING_RATE * live[:, None, None] * grad_a
    late = (steps == steps.max()).nonzero().flatten()
    pick = (lambda t: t[late]) if per_run_data else (lambda t: t)
    refined = refine_end_points(w.detach()[late], a.detach()[late], pick(x), pick(y), leak,
                                learning_rate=LEARNING_RATE)  # fmt: skip
    w, a = w.detach().clone(), a.detach().clone()
    w[late], a[late] = refined.w, refined.a
    return dict(w=w, a=a, x=x, y=y, leak=leak)


@pytest.fixture(
    scope="module",
    params=[(0.0, 1, False, 10), (0.0, 2, True, 20), (0.1, 1, True, 20), (0.1, 2, False, 33)],
    ids=["relu-k1", "relu-k2", "leaky-k1", "leaky-k2"],
)
def points(request) -> dict:
    """Seeds whose late iterates include stationary points (so the full classification is exercised)."""
    leak, k, per_run_data, seed = request.param
    return _gd_points(seed, leak, k, per_run_data)


def _reference_sensitivity(p: dict, mode: str, train_output: bool) -> np.ndarray:
    """``tolerance_sensitive`` by the reference re-runs (``classify_once`` on every changed run)."""
    w, a, x, y = p["w"], p["a"], p["x"], p["y"]
    tol = tolerances_for(mode)
    options = dict(leak=p["leak"], train_output=train_output, learning_rate=LEARNING_RATE, realisable=False,
                   best_known_loss=None)  # fmt: skip
    absz, bound = kink_scores(w, a, x, y, p["leak"], tol, LEARNING_RATE)
    base = classify_once(w, a, x, y, tol=tol, kink=absz <= bound, **options).point_type
    sensitive = np.zeros(w.shape[0], bool)
    for factor in SENSITIVITY_FACTORS:
        kink = absz <= factor * bound
        runs = (kink != (absz <= bound)).flatten(1).any(dim=1).nonzero().flatten()
        if runs.numel():
            xr, yr = (x[runs], y[runs]) if x.shape[0] > 1 else (x, y)
            sub = classify_once(w[runs], a[runs], xr, yr, tol=tol.scaled_kink(factor), kink=kink[runs],
                                labels_only=True, **options)  # fmt: skip
            sensitive[runs.numpy()] |= sub.point_type != base[runs.numpy()]
    return sensitive


@pytest.mark.parametrize("mode", ["end_point", "plateau"])
@pytest.mark.parametrize("train_output", [True, False])
def test_point_types_match_reference(points, mode, train_output):
    """At every tolerance factor: same snapped points, settled runs not stationary, same point types."""
    w, a, x, y, leak = points["w"], points["a"], points["x"], points["y"], points["leak"]
    tol = tolerances_for(mode)
    absz, bound = kink_scores(w, a, x, y, leak, tol, LEARNING_RATE)
    base = snap_point(w, a, x, y, leak, tol, LEARNING_RATE, kink=absz <= bound)
    options = dict(leak=leak, train_output=train_output, learning_rate=LEARNING_RATE, realisable=False,
                   best_known_loss=None)  # fmt: skip
    settled_any = False
    for factor in (*SENSITIVITY_FACTORS, 1.0):
        scaled, kink = tol.scaled_kink(factor), absz <= factor * bound
        fast = resnap_point(base, w, a, x, y, leak, scaled, kink)
        slow = snap_point(w, a, x, y, leak, scaled, LEARNING_RATE, kink=kink)
        assert torch.equal(fast.w, slow.w) and torch.equal(fast.a, slow.a)
        reference = classify_once(w, a, x, y, tol=scaled, kink=kink, labels_only=True, **options).point_type
        if train_output:
            settled = settled_not_stationary(fast, x, y, leak=leak, tol=scaled).numpy()
            assert (reference[settled] == _NOT_STATIONARY).all()
            settled_any |= bool(settled.any())
        shared = _Options(leak=leak, train_output=train_output, learning_rate=LEARNING_RATE, realisable=False)
        types = _point_types(base, w, a, x, y, tol=scaled, kink=kink, best_known_loss=None, options=shared)
        np.testing.assert_array_equal(types, reference)
    assert settled_any == train_output  # the random starts are settled unless the output layer is fixed
    assert (reference != _NOT_STATIONARY).any()  # and some late iterates are classified in full


@pytest.mark.parametrize("mode", ["end_point", "plateau"])
def test_tolerance_sensitive_matches_reference(points, mode):
    for train_output in (True, False):
        batch = classify_batch(points["w"], points["a"], points["x"], points["y"], leak=points["leak"], mode=mode,
                               train_output=train_output, learning_rate=LEARNING_RATE)  # fmt: skip
        np.testing.assert_array_equal(batch.tolerance_sensitive, _reference_sensitivity(points, mode, train_output))


def test_activation_parts_match_selects():
    """Bit for bit (NaN included: ``-inf * 0``), for random and boundary leaks."""
    gen = torch.Generator().manual_seed(0)
    scale = 10.0 ** torch.randint(-150, 150, (1000,), generator=gen)
    z = torch.randn(1000, dtype=torch.float64, generator=gen) * scale
    z[:4] = torch.tensor([0.0, -0.0, float("inf"), -float("inf")])
    leaks = torch.cat([torch.tensor([0.0, 0.01, 0.1, 0.2, 0.5, 1 / 3, 1 - 2**-52]), torch.rand(200, generator=gen)])
    one = torch.ones((), dtype=z.dtype)
    for leak in leaks.tolist():
        pos, slope, rho = activation_parts(z, leak)
        assert torch.equal(pos, z > 0)
        assert torch.equal(slope.view(torch.int64), torch.where(z > 0, one, one * leak).view(torch.int64))
        assert torch.equal(rho.view(torch.int64), torch.where(z > 0, z, leak * z).view(torch.int64))


@pytest.mark.parametrize("shared_line", [False, True])
def test_line_sums_match_the_product_over_points(shared_line):
    """The diagonal shortcut gives the values of the product with ``par`` (and lines with two points still sum)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 9, 3, dtype=torch.float64, generator=gen)
    if shared_line:
        x[:, 1] = -2.5 * x[:, 0]
    values = torch.randn(5, 9, 4, 2, dtype=torch.float64, generator=gen)
    kink = torch.rand(5, 9, 4, generator=gen) < 0.5
    par = parallel_inputs(x)
    weighted = values * (kink.to(x.dtype) * x.norm(dim=-1).unsqueeze(-1)).unsqueeze(-1)
    expected = torch.einsum("ril,rljk->rijk", par.to(x.dtype), weighted) * kink.unsqueeze(-1)
    assert torch.equal(line_sums(values, x, kink, par), expected)
    assert torch.equal(line_sums(values[..., 0], x, kink, par), expected[..., 0])
