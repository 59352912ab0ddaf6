"""The margin is a claim (issue 19): no perturbation inside it lowers the loss, checked in 50-digit arithmetic.

Points are gradient-descent end points (vanishing and standard initialisations, so tiny and dead neurons
occur). Perturbations of norm just below the margin: random directions, one neuron at a time, and every dead
or inactive neuron pushed straight at its nearest data point (the audit's counterexample: a dead neuron
``2.9e-7`` from activating a point while the old margin said ``2.3e-6``). The loss change is evaluated with
``mpmath`` at 50 digits, and may be negative only by the first-order slack of a numerically stationary point
(``||grad L|| ||Delta||``, the gradient from ``tests/reference``).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import torch

from pipeline.stationary import classify_batch, labels
from tests import reference as ref

mpmath.mp.dps = 50
MINIMA = {labels.code(labels.POINT_TYPE, name) for name in ("global_min", "spurious_local_min", "local_min")}


def _mp_loss(w: np.ndarray, a: np.ndarray, x: np.ndarray, y: np.ndarray, leak: float) -> mpmath.mpf:
    total = mpmath.mpf(0)
    for i in range(x.shape[0]):
        for out in range(y.shape[1]):
            f = mpmath.mpf(0)
            for j in range(w.shape[0]):
                z = mpmath.fsum(mpmath.mpf(float(w[j, c])) * mpmath.mpf(float(x[i, c])) for c in range(x.shape[1]))
                f += mpmath.mpf(float(a[j, out])) * (z if z > 0 else leak * z)
            total += (f - mpmath.mpf(float(y[i, out]))) ** 2
    return total / (2 * x.shape[0])


def _perturbations(w: np.ndarray, a: np.ndarray, x: np.ndarray, radius: float, rng) -> list[tuple]:
    """Directions scaled to ``0.99 radius``: random, single neuron, dead neurons straight at data points."""
    m, d = w.shape
    k = a.shape[1]
    out = []
    for _ in range(24):
        dw, da = rng.standard_normal((m, d)), rng.standard_normal((m, k))
        out.append((dw, da))
    for j in range(m):
        dw, da = np.zeros((m, d)), np.zeros((m, k))
        dw[j] = rng.standard_normal(d)
        da[j] = rng.standard_normal(k)
        out.append((dw, da))
        z = x @ w[j]
        for i in np.flatnonzero(z < 0):  # move towards activating x_i, with a matching output push
            dw, da = np.zeros((m, d)), np.zeros((m, k))
            dw[j] = x[i] / np.linalg.norm(x[i])
            da[j] = rng.standard_normal(k) * 1e-3
            out.append((dw, da))
    scaled = []
    for dw, da in out:
        norm = np.sqrt((dw**2).sum() + (da**2).sum())
        scaled.append((0.99 * radius * dw / norm, 0.99 * radius * da / norm))
    return scaled


@pytest.mark.parametrize("leak,k", [(0.0, 1), (0.1, 1), (0.0, 2)])
def test_no_descent_inside_the_margin(leak, k):
    rng = np.random.default_rng(int(100 * leak) + k)
    n, d, m = 8, 3, 6
    x = np.hstack([rng.standard_normal((n, d - 1)), np.ones((n, 1))])
    y = rng.standard_normal((n, k))
    points = []
    for run in range(24):  # decaying steps shrink the zig-zag across kinks (reference GD, numpy)
        scale = 1e-4 if run % 2 == 0 else 1.0
        w0, a0 = scale * rng.standard_normal((m, d)), scale * rng.standard_normal((m, k))
        points.append(ref.naive_gd(w0, a0, x, y, leak, lr=0.05, steps=12000, lr_final=5e-5))
    w_end = torch.as_tensor(np.stack([p[0] for p in points]))
    a_end = torch.as_tensor(np.stack([p[1] for p in points]))
    cls = classify_batch(w_end, a_end, torch.as_tensor(x)[None], torch.as_tensor(y)[None], leak=leak,
                         learning_rate=5e-5)  # fmt: skip
    checked = 0
    for r in np.flatnonzero(np.isin(cls.point_type, list(MINIMA))):
        w, a, margin = cls.w[r], cls.a[r], float(cls.margin[r])
        assert 0 < margin < np.inf  # every neuron has data off its kink: the expansion's radius bounds it
        base = _mp_loss(w, a, x, y, leak)
        gw, ga = ref.naive_gradient(w, a, x, y, leak)
        grad_norm = float(np.sqrt((gw**2).sum() + (ga**2).sum()))
        for dw, da in _perturbations(w, a, x, margin, rng):
            change = _mp_loss(w + dw, a + da, x, y, leak) - base
            slack = grad_norm * 0.99 * margin + 1e-40
            assert change >= -slack, (r, float(change), slack, margin)
        checked += 1
    assert checked >= 3
