"""Higher-order probe of degenerate second-order points (theory.md 8.2 step 7, 'larger kernel').

Hand-made points of known type, verified independently (own torch loss, autograd Hessians and
explicit curves evaluated with the loop oracle ``tests/reference.naive_loss``) before the classifier runs.

**Symmetric pair** (``_symmetric_point``). Data ``x`` = the 8 points ``(+-1, +-1, 1)``, ``(+-2, 0, 1)``,
``(0, +-2, 1)``; two ReLU neurons ``w_1 = (1, 0, 1/2)``, ``w_2 = (0, 1, 1/2)`` (no kinks, ``|z| >= 1/2``),
``a_1 = e_1``, ``a_2 = e_2``, ``k = 2``. On the piece ``f = sum_j a_j s_ij w_j . x_i`` and every quantity
the classifier sees at a smooth point depends on the residual only through ``B_j = sum_i s_ij r_i x_i^T``:
stationarity is ``B_j w_j = 0`` and ``a_j^T B_j = 0``, and ``H = (J^T J + s C)/n`` with the cross blocks
``C`` linear in ``B``. Take ``B_j = s e_j g_j^T`` with ``e_1 = (0, 1) perp a_1``, ``g_1 = (0, 1, 0) perp w_1``
and the mirror images ``e_2 = (1, 0)``, ``g_2 = (1, 0, 0)`` (swap ``x_1 <-> x_2``, outputs and neurons), and
let ``r`` be the least-norm residual with these ``B_j`` (``y = f - r``). Then the point is stationary,
both neurons are escape neurons with ``a_j != 0`` (``B_j != 0``, theory 4), ``C`` vanishes on the
rescalings ``T``, and ``s`` runs over an interval around 0 on which ``H >= 0`` (``J^T J`` is positive
definite on ``T^perp``). At each end ``s* = 1 / lambda`` of that interval (``lambda`` an extreme generalised
eigenvalue of ``(-C, J^T J)`` on ``T^perp``) ``H`` is PSD with kernel ``T + span(u)``:

* the end whose kernel vector ``u`` is mirror-symmetric has ``Phi_3(u) != 0``: the loss decreases at
  third order along the straight line ``-sign(Phi_3) t u`` (``branch="cubic"``);
* at the other end ``u`` is mirror-antisymmetric, so ``Phi(t u + t^2 v)`` is even in ``t`` for a
  symmetric ``v``: ``Phi_3(u) = 0`` and the straight line *increases* the loss (``Phi_4(u) > 0``), while
  the normal correction ``v = -H^+ b``, ``b = 1/2 grad (u^T H u)``, makes the ``t^4`` coefficient
  ``Phi_4(u) - 1/2 b^T H^+ b`` negative (``branch="quartic"``).

Both are non-strict saddles.

**Tied rank-one fit** (``_tied_rank_one``). One neuron, all pre-activations ``= 1``, targets
``y = (1, x_0) + E`` with ``x_0`` centred, ``||x_0||^2 = n`` and ``E perp col(x)``: ``Y^T P_x Y = n I``, so
every rank-one fit ``(B a) a^T`` with ``B = [e_3, e_1]`` and ``|a| = 1`` is optimal. The point ``a = e_1``,
``w = e_3`` is a local minimum (the best rank-one fit on an activation piece that no small move leaves),
an escape neuron with ``a != 0``, and the circle ``a(phi) = (cos phi, sin phi)``, ``w(phi) = B a(phi)`` is
exactly flat: ``H >= 0`` with a kernel larger than ``T``. The probe must not call it a saddle.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from pipeline.stationary import classify_point
from pipeline.stationary.kinks import snap_point
from pipeline.stationary.neurons import neuron_quantities
from pipeline.stationary.second_order import second_order
from pipeline.stationary.tolerances import tolerances_for
from tests import reference as ref

_X = np.array([[1, 1, 1], [1, -1, 1], [-1, 1, 1], [-1, -1, 1], [2, 0, 1], [-2, 0, 1], [0, 2, 1], [0, -2, 1]], float)
_W = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]])
_A = np.eye(2)


def _jacobian(w: np.ndarray, a: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Output Jacobian (n k, m d + m k) on the piece, slopes and activations (n, m) (ReLU, no kinks)."""
    n, d = x.shape
    m, k = a.shape
    s = (x @ w.T > 0).astype(float)
    act = s * (x @ w.T)
    jw = np.einsum("mk,nm,nd->nkmd", a, s, x).reshape(n * k, m * d)
    ja = np.einsum("nm,kl->nkml", act, np.eye(k)).reshape(n * k, m * k)
    return np.hstack([jw, ja]), s, act


def _cross(residual: np.ndarray, s: np.ndarray, x: np.ndarray, m: int, k: int) -> np.ndarray:
    """Cross blocks ``d^2 L n / da_j dw_j = B_j`` as a symmetric (m d + m k,)^2 matrix."""
    d = x.shape[1]
    C = np.zeros((m * (d + k),) * 2)
    for j in range(m):
        C[m * d + j * k : m * d + (j + 1) * k, j * d : (j + 1) * d] = np.einsum("n,nk,nd->kd", s[:, j], residual, x)
    return C + C.T


def _symmetric_point(branch: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``w, a, x, y`` and the unit kernel direction ``u`` of the symmetric pair (module docstring)."""
    x, w, a = _X, _W, _A
    (n, d), (m, k) = x.shape, a.shape
    J, s, act = _jacobian(w, a, x)
    e, g = [(0.0, 1.0), (1.0, 0.0)], [(0.0, 1.0, 0.0), (1.0, 0.0, 0.0)]
    B_of_r = np.vstack([np.einsum("n,nd,kl->kdnl", s[:, j], x, np.eye(k)).reshape(k * d, n * k) for j in range(m)])
    target = np.concatenate([np.outer(e[j], g[j]).ravel() for j in range(m)])
    r0 = np.linalg.lstsq(B_of_r, target, rcond=None)[0].reshape(n, k)
    flat = np.stack([np.concatenate([(np.eye(m)[j][:, None] * w).ravel(), -(np.eye(m)[j][:, None] * a).ravel()])
                     for j in range(m)], axis=1)  # fmt: skip
    perp = np.linalg.svd(flat)[0][:, m:]
    lam, vecs = scipy.linalg.eigh(-perp.T @ _cross(r0, s, x, m, k) @ perp, perp.T @ J.T @ J @ perp)
    end = -1 if branch == "cubic" else 0
    u = perp @ vecs[:, end]
    return w, a, x, act @ a - r0 / lam[end], u / np.linalg.norm(u)


def _tied_rank_one(seed: int = 0, n: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``w (1, 3), a (1, 2), x (n, 3), y (n, 2)`` of the tied rank-one fit (module docstring)."""
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=n)
    x0 -= x0.mean()
    x0 *= np.sqrt(n) / np.linalg.norm(x0)
    x = np.stack([x0, rng.normal(size=n), np.ones(n)], axis=1)
    noise = 0.3 * rng.normal(size=(n, 2))
    noise -= x @ np.linalg.lstsq(x, noise, rcond=None)[0]
    return np.array([[0.0, 0.0, 1.0]]), np.array([[1.0, 0.0]]), x, np.stack([np.ones(n), x0], axis=1) + noise


def _torch_loss(w: np.ndarray, a: np.ndarray, x: np.ndarray, y: np.ndarray):
    """``theta (m d + m k,) -> L`` (ReLU, written here; differentiable three times on the piece)."""
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    (m, d), k = w.shape, a.shape[1]

    def loss(theta: torch.Tensor) -> torch.Tensor:
        wt, at = theta[: m * d].reshape(m, d), theta[m * d :].reshape(m, k)
        return 0.5 * (torch.relu(xt @ wt.T) @ at - yt).square().sum() / x.shape[0]

    return loss, torch.as_tensor(np.concatenate([w.ravel(), a.ravel()]))


def _hessian(w, a, x, y) -> np.ndarray:
    loss, theta = _torch_loss(w, a, x, y)
    return torch.func.hessian(loss)(theta).numpy()


def _normal_correction(w, a, x, y, u: np.ndarray) -> np.ndarray:
    """``v = -H^+ b`` with ``b = 1/2 grad_theta (u^T H(theta) u)`` (minimises the ``t^4`` coefficient)."""
    loss, theta = _torch_loss(w, a, x, y)
    ut = torch.as_tensor(u)
    b = torch.func.grad(lambda th: 0.5 * ut @ torch.func.hessian(loss)(th) @ ut)(theta).numpy()
    return -np.linalg.pinv(_hessian(w, a, x, y), rcond=1e-10) @ b


def _change(w, a, x, y, delta: np.ndarray) -> float:
    """``L(theta + delta) - L(theta)`` with the loop oracle."""
    m, d = w.shape
    moved = ref.naive_loss(w + delta[: m * d].reshape(w.shape), a + delta[m * d :].reshape(a.shape), x, y, 0.0)
    return moved - ref.naive_loss(w, a, x, y, 0.0)


def _second_order_verdict(w, a, x, y):
    tol = tolerances_for("end_point")
    wt, at, xt, yt = (torch.as_tensor(v)[None] for v in (w, a, x, y))
    sp = snap_point(wt, at, xt, yt, 0.0, tol, None)
    q = neuron_quantities(sp.w, sp.a, xt, yt, sp.kink, 0.0)
    return second_order(q, sp.w, sp.a, xt, 0, 0.0, torch.zeros(1, w.shape[0], dtype=torch.bool), tol.curvature)


@pytest.mark.parametrize("branch", ["cubic", "quartic"])
def test_constructions_are_stationary_with_psd_hessian_and_kernel_larger_than_T(branch):
    w, a, x, y, u = _symmetric_point(branch)
    assert np.abs(x @ w.T).min() >= 0.5
    grad_w, grad_a = ref.naive_gradient(w, a, x, y, 0.0)
    assert max(np.abs(grad_w).max(), np.abs(grad_a).max()) < 1e-13
    H = _hessian(w, a, x, y)
    evals = np.linalg.eigvalsh(H)
    assert evals[0] >= -1e-12 * evals[-1]
    assert (np.abs(evals) <= 1e-12 * evals[-1]).sum() == 3  # two rescalings (T) + u
    assert np.linalg.norm(H @ u) <= 1e-12 * evals[-1]


def test_cubic_point_decreases_at_third_order_along_a_line():
    w, a, x, y, u = _symmetric_point("cubic")
    sign = -np.sign(_change(w, a, x, y, 1e-3 * u) - _change(w, a, x, y, -1e-3 * u))
    drops = np.array([_change(w, a, x, y, sign * t * u) for t in (0.001, 0.002)])
    assert (drops < 0).all()
    assert drops[1] / drops[0] == pytest.approx(8.0, rel=0.05)


def test_quartic_point_needs_the_normal_correction():
    w, a, x, y, u = _symmetric_point("quartic")
    v = _normal_correction(w, a, x, y, u)
    for t in (0.05, 0.1):
        assert _change(w, a, x, y, t * u) > 0 and _change(w, a, x, y, -t * u) > 0
    drops = np.array([_change(w, a, x, y, t * u + t**2 * v) for t in (0.05, 0.1)])
    assert (drops < 0).all()
    assert drops[1] / drops[0] == pytest.approx(16.0, rel=0.05)


@pytest.mark.parametrize(("branch", "order"), [("cubic", 3), ("quartic", 4)])
def test_probe_finds_a_verified_non_strict_saddle(branch, order):
    w, a, x, y, _ = _symmetric_point(branch)
    res = _second_order_verdict(w, a, x, y)
    assert res.verdict == "saddle" and res.direction is None and res.curve is not None
    assert res.order == order and abs(res.curvature) <= 1e-12
    assert bool(res.curve.verified[0]) and float(res.curve.min_step[0]) < float(res.curve.radius[0])
    dw, da = res.curve.dw[0].numpy(), res.curve.da[0].numpy()
    assert ref.naive_loss(w + dw, a + da, x, y, 0.0) < ref.naive_loss(w, a, x, y, 0.0)
    mu = ref.validity_radius(w, x, 1e-9, per_neuron=True)
    assert (np.linalg.norm(dw, axis=1) <= 0.5 * mu).all()


@pytest.mark.parametrize("branch", ["cubic", "quartic"])
def test_classifier_labels_the_point_a_non_strict_saddle(branch):
    """Saddle / ``non_strict``: the front end records the verified curve witness of ``saddles.second_order_verdict``."""
    w, a, x, y, _ = _symmetric_point(branch)
    report = classify_point(w, a, x, y)
    assert report.point_type == "saddle" and report.strictness == "non_strict" and report.witness is not None
    assert report.mechanisms == frozenset({"V"})
    dw, da = report.witness
    assert ref.naive_loss(w + dw, a + da, x, y, 0.0) < ref.naive_loss(w, a, x, y, 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tied_rank_one_minimum_with_flat_kernel_direction_is_not_a_saddle(seed):
    w, a, x, y = _tied_rank_one(seed)
    base = ref.naive_loss(w, a, x, y, 0.0)
    for phi in (0.05, 0.2):  # the exactly flat circle of rank-one minima
        turned = np.array([[np.cos(phi), np.sin(phi)]])
        assert ref.naive_loss(np.array([[np.sin(phi), 0.0, np.cos(phi)]]), turned, x, y, 0.0) == pytest.approx(
            base, rel=1e-14
        )
    evals = np.linalg.eigvalsh(_hessian(w, a, x, y))
    assert evals[0] >= -1e-12 * evals[-1] and (np.abs(evals) <= 1e-12 * evals[-1]).sum() == 2  # T + the circle
    rng = np.random.default_rng(seed)
    brute = ref.brute_force_min_change(w, a, x, y, 0.0, radius=0.05, rng=rng)
    assert brute.min_change >= -1e-12
    assert _second_order_verdict(w, a, x, y).verdict is None
    report = classify_point(w, a, x, y)
    assert report.point_type == "undetermined" and report.escape.all()
