"""Non-differentiable vector-output second-order test (theory.md 8.2 step 7, second bullet).

Constructions: the rank-one regression point of section 5.3 (a vector-output local minimum whose only
neuron is an escape neuron) plus one extra data point ``x_0`` exactly on the neuron's hyperplane with
target ``f(x_0) = 0`` (so ``r_0 = 0``). The neuron now has a kink with ``gamma = 0``: ``Q`` is piecewise
quadratic (slope 1 or 0 for ``x_0``), the smooth Hessian test does not apply, and the piecewise test has to
decide. Adding ``x_0`` changes neither the residuals of the other points nor ``G``, ``p`` (``r_0 = 0``), so
the point stays stationary; on the piece ``x_0 . dw <= 0`` ``Q`` equals the smooth ``Q`` of the original
point, on the other piece it gains ``1/(2n) ||a x_0 . dw||^2 >= 0``: the single neuron stays a local
minimum, the duplicated-neuron split (section 5.3) stays a strict saddle. Oracles: the brute-force
search of tests/reference.py (independent of the classifier) and the true loss for witnesses.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.losses import nets
from pipeline.stationary import classify_point, pieces
from tests import reference as ref
from tests.stationary.helpers import rank_one_regression


def _with_kink_point(scale: float = 1.0):
    w, a, x, y = rank_one_regression()
    rng = np.random.default_rng(5)
    x0 = np.cross(w[0], rng.normal(size=3))
    x0 = scale * x0 / np.linalg.norm(x0)
    return w, a, np.vstack([x, x0]), np.vstack([y, np.zeros((1, 2))])


def _loss(w, a, x, y) -> float:
    t = [torch.as_tensor(np.asarray(v, dtype=np.float64))[None] for v in (w, a, x, y)]
    return float(nets.loss(*t, 0.0)[0])


def test_kinked_vector_local_min_is_certified_piecewise_and_survives_brute_force():
    w, a, x, y = _with_kink_point()
    report = classify_point(w, a, x, y)
    assert report.kink.all() and report.escape.all() and report.stationarity == "stationary"
    assert report.point_type == "local_min" and report.is_local_min is True
    assert report.certificate == "hessian_morse_bott" and report.curvature > 0
    radius = 0.5 * ref.validity_radius(report.w, x, kink_tol=1e-9)
    res = ref.brute_force_min_change(report.w, report.a, x, y, 0.0, radius=min(radius, 0.05),
                                     rng=np.random.default_rng(0), n_random=1500, n_adversarial=3)  # fmt: skip
    assert res.min_change >= -1e-12 * report.loss


@pytest.mark.parametrize("beta", [0.5, 0.3])
@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_kinked_duplicated_vector_neurons_are_a_strict_saddle_with_verified_witness(beta, scale):
    w, a, x, y = _with_kink_point(scale)
    report = classify_point(np.vstack([w, w]), np.vstack([beta * a, (1 - beta) * a]), x, y)
    assert report.kink.all() and report.stationarity == "stationary"
    assert report.point_type == "saddle" and report.strictness == "strict"
    assert report.certificate == "negative_curvature_witness" and report.mechanisms == frozenset({"V"})
    dw, da = report.witness
    assert _loss(report.w + dw, report.a + da, x, y) < _loss(report.w, report.a, x, y)


def test_pattern_cap_gives_undetermined_never_a_guess(monkeypatch):
    monkeypatch.setattr(pieces, "PIECES_MAX_BRANCHING", 0)
    w, a, x, y = _with_kink_point()
    report = classify_point(w, a, x, y)
    assert report.point_type == "undetermined" and report.is_local_min is None
    assert report.certificate == "none" and report.witness is None
