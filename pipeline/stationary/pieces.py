"""Second-order test of non-differentiable vector-output points (theory.md 8.2 step 7, second bullet).

Applies at stationary points whose escape neurons all have ``a_j != 0`` and where some neuron with
``a_j != 0`` has kink points. On the critical cone ``C = {Delta : Delta w_j in Z_j}`` the exact expansion
of section 2 is ``Phi(t Delta) = t^2 Q(Delta) + O(t^3)``; ``Q`` is piecewise quadratic over the joint kink
sign patterns ``sigma`` of those neurons. On the piece of ``sigma`` every ``phi_ij`` is linear (slope 1 on
``sigma_ij = +``, ``leak`` on ``-``), ``Q = 1/2 Delta^T H_sigma Delta`` with the Hessian of that linear piece
(:func:`pipeline.stationary.hessian.analytic_hessian` with the kink slopes of ``sigma`` and the cross
blocks ``D_sigma``), and the piece of ``C`` is the polyhedral cone

``K_sigma = {x_i . dw_j = 0 (forced: g_j > 0 off the face), sigma_ij x_i . dw_j >= 0 (branching kinks)}``

with ``Delta a`` free. The forced rows come from the stationarity multipliers ``s_ij`` (as in
:mod:`pipeline.stationary.escape`): with one kink ``g_j(u) = gamma (relu(t) - s t)``, ``t = x_i . u``, which is
``gamma (1 - s) t`` for ``t > 0`` and ``gamma s |t|`` for ``t < 0``. A kink with ``0 < s < 1`` is therefore
forced on both sides; one with ``s = 0`` has its zero set on the negative side ``t <= 0`` (activating the
point costs ``gamma t > 0`` at first order), one with ``s = 1`` on the positive side; kinks with
``gamma_ij = 0`` branch both ways. Verdicts (never a guess):

* a direction ``Delta`` in some ``K_sigma`` with ``Q_sigma(Delta) < -tau`` is sought (eigenvectors of the
  piece's Hessian on the cone's lineality space, then projected-gradient descent of ``Q_sigma`` on
  ``K_sigma`` from the negative eigenvectors on its span); the caller verifies it on the true loss
  -> ``saddle/strict``;
* if on every piece ``H_sigma`` is positive definite on ``span(K_sigma) cap T^perp`` (``T`` the flat space
  of :func:`pipeline.stationary.hessian.flat_space`), ``Q >= c ||Delta_perp||^2`` on ``C`` ->
  ``local_min`` (a sufficient condition: copositivity on the cone is not attempted);
* otherwise, with concave kinks (``gamma < 0``), more than ``PIECES_MAX_BRANCHING`` branching kinks, or
  ``PIECES_MAX`` patterns: undetermined.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import nnls

from pipeline.stationary.boxls import box_ls_scipy
from pipeline.stationary.hessian import analytic_hessian, flat_space, hessian_from
from pipeline.stationary.neurons import NeuronQuantities

__all__ = ["PIECES_MAX", "PIECES_MAX_BRANCHING", "piecewise_second_order"]

PIECES_MAX_BRANCHING = 12
PIECES_MAX = 256
_MULTIPLIER_TOL = 1e-6
_PG_ITERATIONS = 60


def _kink_rows(
    q: NeuronQuantities, x: np.ndarray, r: int, j: int, p: np.ndarray
) -> tuple[list[int], list[tuple[int, float]], list[int]] | None:
    """Forced equality rows and sign-choice rows of neuron ``j``; None if it has concave kinks."""
    kinks = np.flatnonzero(q.kink[r, :, j].cpu().numpy())
    gam = q.gamma[r, kinks, j].cpu().numpy()
    scale = max(float(np.abs(gam).max()) if gam.size else 0.0, 1e-300)
    if (gam < -1e-12 * scale).any():
        return None
    pos = gam > 1e-12 * scale
    s = np.zeros(kinks.size)
    if pos.any():
        _, s_pos = box_ls_scipy(gam[pos, None] * x[kinks[pos]], p)
        s[pos] = s_pos
    equal: list[int] = []
    one_sided: list[tuple[int, float]] = []
    branching: list[int] = []
    for idx, i in enumerate(kinks.tolist()):
        if not pos[idx]:
            branching.append(i)
        elif _MULTIPLIER_TOL < s[idx] < 1 - _MULTIPLIER_TOL:
            equal.append(i)
        else:  # g_j = gamma (relu(t) - s t), t = x.u: zero for t <= 0 when s = 0, for t >= 0 when s = 1
            one_sided.append((i, -1.0 if s[idx] <= _MULTIPLIER_TOL else 1.0))
    return equal, one_sided, branching


def piecewise_second_order(
    q: NeuronQuantities,
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    r: int,
    leak: float,
    d_zero: torch.Tensor,
    tol: float,
) -> tuple[str | None, tuple[np.ndarray, np.ndarray] | None, float]:
    """Verdict, unit witness direction ``(dW, dA)`` (saddles) and curvature for run ``r``."""
    flat = flat_space(q, w, a, r, leak)
    xr = (x[r] if x.shape[0] > 1 else x[0]).cpu().numpy()
    m, d = w.shape[1:]
    k = a.shape[-1]
    a_zero = q.a_zero[r].cpu().numpy()
    kinked = q.kink[r].any(dim=0).cpu().numpy() & ~a_zero
    p_all = q.p[r].cpu().numpy()
    eq_rows, ineq_rows, branch = [], [], []  # rows are (neuron, data index, sign)
    for j in np.flatnonzero(kinked):
        rows = _kink_rows(q, xr, r, int(j), p_all[j])
        if rows is None:
            return None, None, float("nan")
        equal, one_sided, branching = rows
        eq_rows += [(int(j), i) for i in equal]
        ineq_rows += [(int(j), i, sgn) for i, sgn in one_sided]
        branch += [(int(j), i) for i in branching]
    if len(branch) > PIECES_MAX_BRANCHING or 2 ** len(branch) > PIECES_MAX:
        return None, None, float("nan")
    size = m * d + m * k
    base_slope = q.slope[r].cpu().numpy().copy()
    residual = q.residual[r].cpu().numpy()
    best_value, best_dir, all_pd, low_pd = 0.0, None, True, float("inf")
    H0 = analytic_hessian(q, a, x, r)
    scale = max(float(np.abs(np.linalg.eigvalsh(H0)).max()), 1e-300)
    for signs in itertools.product((1.0, -1.0), repeat=len(branch)):
        fixed = [(j, i) for j, i, _ in ineq_rows] + branch
        fixed_signs = [sg for *_, sg in ineq_rows] + list(signs)
        H = _piece_hessian(q, a, r, leak, base_slope, residual, xr, fixed, fixed_signs, a_zero)
        E = _rows_matrix(eq_rows, xr, m, d, size)
        I_rows = [(j, i, sg) for j, i, sg in ineq_rows] + [(j, i, sg) for (j, i), sg in zip(branch, signs, strict=True)]
        I = _rows_matrix([(j, i) for j, i, _ in I_rows], xr, m, d, size) * np.array([sg for *_, sg in I_rows])[:, None]
        span = _null_space(E)  # span(K) is contained in {E Delta = 0}; the cones here are full-dimensional in it
        lineality = _null_space(np.vstack([E, I]))
        # 1) negative curvature on the lineality space (both signs lie in the cone)
        value, vec = _min_eig(H, lineality)
        if value < best_value:
            best_value, best_dir = value, vec
        # 2) definiteness on span(K) modulo T (sufficient for the local-minimum verdict)
        perp = _complement(span, flat)
        low, _ = _min_eig(H, perp)
        low_pd = min(low_pd, low)
        if not low > tol * scale:
            all_pd = False
            val, vec = _cone_descent(H, span, I, _min_eig(H, span)[1])
            if val < best_value:
                best_value, best_dir = val, vec
    if best_dir is not None and best_value < -tol * scale:
        return "saddle", (best_dir[: m * d].reshape(m, d), best_dir[m * d :].reshape(m, k)), 2.0 * best_value
    if all_pd:
        return "local_min", None, low_pd
    return None, None, float("nan")


def _piece_hessian(
    q: NeuronQuantities,
    a: torch.Tensor,
    r: int,
    leak: float,
    base_slope: np.ndarray,
    residual: np.ndarray,
    xr: np.ndarray,
    rows: Sequence[tuple[int, int]],
    signs: Sequence[float],
    a_zero: np.ndarray,
) -> np.ndarray:
    """Hessian of the linear piece: kink slopes 1 (sign +) or ``leak`` (sign -), cross blocks ``D_sigma``.

    Forced kinks keep slope ``leak``: ``phi = 0`` on the piece, so their slope does not matter there.
    """
    slope = base_slope.copy()
    cross = q.B[r].cpu().numpy().copy()  # B_j: kink slope leak
    for (j, i), sg in zip(rows, signs, strict=True):
        if sg > 0:
            slope[i, j] = 1.0
            cross[j] += (1.0 - leak) * np.outer(residual[i], xr[i])
    cross = cross * (~a_zero)[:, None, None]
    return hessian_from(a[r].cpu().numpy(), slope, q.rho[r].cpu().numpy(), xr, cross)


def _rows_matrix(rows: Sequence[tuple[int, int]], xr: np.ndarray, m: int, d: int, size: int) -> np.ndarray:
    out = np.zeros((len(rows), size))
    for t, (j, i) in enumerate(rows):
        out[t, j * d : (j + 1) * d] = xr[i]
    return out


def _null_space(A: np.ndarray) -> np.ndarray:
    size = A.shape[1]
    if A.shape[0] == 0:
        return np.eye(size)
    _, sv, vt = np.linalg.svd(A, full_matrices=True)
    rank = int((sv > 1e-10 * max(sv.max(), 1e-300)).sum())
    return vt[rank:].T


def _complement(span: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Orthonormal basis of ``span cap T^perp`` (``T`` lies in every span here)."""
    if flat.shape[1] == 0:
        return span
    proj = span - flat @ (flat.T @ span)
    U, sv, _ = np.linalg.svd(proj, full_matrices=False)
    rank = int((sv > 1e-8).sum())
    return U[:, :rank]


def _min_eig(H: np.ndarray, basis: np.ndarray) -> tuple[float, np.ndarray | None]:
    if basis.shape[1] == 0:
        return float("inf"), None
    vals, vecs = np.linalg.eigh(basis.T @ H @ basis)
    return 0.5 * float(vals[0]), basis @ vecs[:, 0]


def _project_cone(v: np.ndarray, span: np.ndarray, I: np.ndarray) -> np.ndarray:
    """Euclidean projection onto ``{u in span : I u >= 0}`` (Moreau: ``v + I^T lambda``, NNLS dual)."""
    y = span.T @ v
    if I.shape[0] == 0:
        direction: np.ndarray = span @ y
        return direction
    Iy = I @ span  # (rows, dim)
    lam, _ = nnls(Iy.T, -y)
    projected: np.ndarray = span @ (y + Iy.T @ lam)
    return projected


def _cone_descent(
    H: np.ndarray, span: np.ndarray, I: np.ndarray, start: np.ndarray | None
) -> tuple[float, np.ndarray | None]:
    """Projected gradient descent of ``1/2 u^T H u`` on cone ``cap`` unit sphere from ``+-start``."""
    if start is None:
        return float("inf"), None
    step = 1.0 / max(float(np.abs(np.linalg.eigvalsh(H)).max()), 1e-300)
    best, best_u = float("inf"), None
    for sgn in (1.0, -1.0):
        u = _project_cone(sgn * start, span, I)
        for _ in range(_PG_ITERATIONS):
            norm = np.linalg.norm(u)
            if norm < 1e-12:
                break
            u = u / norm
            value = 0.5 * float(u @ H @ u)
            if value < best:
                best, best_u = value, u.copy()
            u = _project_cone(u - step * (H @ u), span, I)
    return best, best_u
