"""Escape neurons and differentiability (theory.md sections 4 and 8.1).

Neuron ``j`` of a stationary point is an escape neuron iff ``D_j`` does not vanish on the zero cone
``Z_j = {u : g_j(u) = 0}``. Closed forms (vectorised over runs):

* ``a_j = 0`` (any output dimension): ``g_j = 0``, so escape iff ``D_j != 0``, i.e.
  ``B~_j != 0`` or some line through kink inputs has ``sum ||x_i|| r_i != 0``;
* scalar output, ``a_j != 0``: never;
* vector output, ``a_j != 0``, no kinks: escape iff ``(I - a a^T / ||a||^2) B_j != 0``.

Vector output with ``a_j != 0`` and kinks: one small LP per kink sign pattern (``scipy.optimize.linprog``)
finds the linear span of the face ``Z_j cap C_sigma``; escape iff ``D_sigma`` does not vanish on it.
The face is read off the stationarity multipliers ``s`` (``g_sigma`` is a sum of terms that are
non-negative on ``C_sigma``), which is exact at stationary points and conservative (larger faces)
near them. Neurons with concave kinks or more than ``LP_MAX_KINKS`` kinks are reported as unknown
and treated as escape neurons (conservative: this can only lead to ``undetermined``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linprog

from pipeline.stationary.boxls import box_ls_scipy
from pipeline.stationary.neurons import NeuronQuantities, line_sums

__all__ = ["MULTIPLIER_TOL", "EscapeFlags", "LP_MAX_KINKS", "differentiable", "escape_flags", "face_span"]

LP_MAX_KINKS = 6
MULTIPLIER_TOL = 1e-6


@dataclass(frozen=True)
class EscapeFlags:
    """Escape analysis of a batch.

    Attributes
    ----------
    d_zero : (R, m)
        ``D_j`` vanishes identically.
    escape : (R, m)
        Escape neuron (including ``unknown`` ones, conservatively).
    unknown : (R, m)
        The exact test was not run (cap or concave kinks); counted as escape.
    """

    d_zero: torch.Tensor
    escape: torch.Tensor
    unknown: torch.Tensor


def differentiable(q: NeuronQuantities, a: torch.Tensor, par: torch.Tensor, tol: float) -> torch.Tensor:
    """``L`` is differentiable at the point: every ``g_j`` is linear (line sums of ``gamma`` vanish), (R,)."""
    sums = line_sums(q.gamma, _x_like(q), q.kink, par)
    scale = (q.r_norm * q.s_x).unsqueeze(-1) * a.norm(dim=-1)
    smooth: torch.Tensor = (sums.abs() <= tol * scale.unsqueeze(-2)).all(dim=-1).all(dim=-1)
    return smooth


def _x_like(q: NeuronQuantities) -> torch.Tensor:
    """A (R, n, 1) stand-in for ``x`` whose row norms are ``||x_i||`` (all ``line_sums`` needs)."""
    return q.x_norm.unsqueeze(-1)


def escape_flags(
    q: NeuronQuantities,
    a: torch.Tensor,
    x: torch.Tensor,
    par: torch.Tensor,
    leak: float,
    tol: float,
    train_output: bool,
    active: torch.Tensor | None = None,
) -> EscapeFlags:
    """Escape flags of every neuron (meaningful at stationary points).

    ``active`` (R,) bool: runs that need the exact (LP) test of kinked vector-output neurons; the
    others (e.g. not stationary) get only the closed forms.
    """
    scale = (q.r_norm * q.s_x).unsqueeze(-1)  # (R, 1)
    sums = line_sums(q.residual.unsqueeze(-2).expand(-1, -1, q.kink.shape[-1], -1), _x_like(q), q.kink, par)
    line_ok = (sums.norm(dim=-1) <= tol * scale.unsqueeze(-1)).all(dim=-2)
    d_zero = line_ok & (q.B_tilde.flatten(-2).norm(dim=-1) <= tol * scale)
    unknown = torch.zeros_like(d_zero)
    if not train_output:
        return EscapeFlags(d_zero=d_zero, escape=torch.zeros_like(d_zero), unknown=unknown)
    escape = q.a_zero & ~d_zero
    k = a.shape[-1]
    if k > 1:
        has_kink = q.kink.any(dim=-2)
        a_hat = a / a.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(a.dtype).tiny)
        proj = q.B - a_hat.unsqueeze(-1) * torch.einsum("rmk,rmkd->rmd", a_hat, q.B).unsqueeze(-2)
        smooth_escape = proj.flatten(-2).norm(dim=-1) > tol * scale
        vec = ~q.a_zero & ~d_zero
        escape = escape | (vec & ~has_kink & smooth_escape)
        xb = x.expand(a.shape[0], -1, -1) if x.shape[0] != a.shape[0] else x
        need = vec & has_kink if active is None else vec & has_kink & active.unsqueeze(-1)
        for r, j in need.nonzero().tolist():
            verdict = _kinked_vector_escape(q, xb, r, j, leak, tol * float(scale[r, 0]))
            if verdict is None:
                unknown[r, j] = True
                escape[r, j] = True
            else:
                escape[r, j] = verdict
    return EscapeFlags(d_zero=d_zero, escape=escape, unknown=unknown)


def _kinked_vector_escape(
    q: NeuronQuantities, xb: torch.Tensor, r: int, j: int, leak: float, thresh: float
) -> bool | None:
    """Exact escape test of one vector-output neuron with ``a_j != 0`` and kinks; None if not run."""
    kinks = q.kink[r, :, j].cpu().numpy()
    xs = xb[r].cpu().numpy()[kinks]
    res = q.residual[r].cpu().numpy()[kinks]
    gam = q.gamma[r, :, j].cpu().numpy()[kinks]
    K = xs.shape[0]
    if K > LP_MAX_KINKS or bool((gam < 0).any()):
        return None
    _, s = box_ls_scipy(gam[:, None] * xs, q.p[r, j].cpu().numpy())
    B = q.B[r, j].cpu().numpy()
    for signs in itertools.product((1.0, -1.0), repeat=K):
        sig = np.array(signs)
        up = sig > 0
        forced = (gam > 0) & np.where(up, s < 1 - MULTIPLIER_TOL, s > MULTIPLIER_TOL)
        basis = face_span(xs, sig, forced)
        if basis.shape[1] == 0:
            continue
        D = B + (1.0 - leak) * res[up].T @ xs[up]
        if np.linalg.norm(D @ basis) > thresh:
            return True
    return False


def face_span(xs: np.ndarray, sig: np.ndarray, forced: np.ndarray) -> np.ndarray:
    """Orthonormal basis (d, q) of the span of ``{u : sig_i x_i.u >= 0, x_i.u = 0 (forced)}``.

    One LP finds the implicit equalities among the inequalities (rows that vanish on the whole cone).
    """
    d = xs.shape[1]
    equal = forced.copy()
    free = np.flatnonzero(~forced)
    if free.size:
        K = free.size
        # variables (u, t): maximise sum t s.t. t_i <= sig_i x_i.u, 0 <= t_i <= 1, |u| <= 1, forced rows = 0
        a_ub = np.hstack([-(sig[free, None] * xs[free]), np.eye(K)])
        a_eq = np.hstack([xs[forced], np.zeros((int(forced.sum()), K))]) if forced.any() else None
        b_eq = np.zeros(int(forced.sum())) if forced.any() else None
        res = linprog(
            np.concatenate([np.zeros(d), -np.ones(K)]),
            A_ub=a_ub,
            b_ub=np.zeros(K),
            A_eq=a_eq,
            b_eq=b_eq,
            bounds=[(-1, 1)] * d + [(0, 1)] * K,
            method="highs",
        )
        t = res.x[d:] if res.x is not None else np.zeros(K)
        scale = np.linalg.norm(xs[free], axis=1)
        equal[free[t <= 1e-9 * np.maximum(scale, 1e-300)]] = True
    rows = xs[equal]
    if rows.shape[0] == 0:
        return np.eye(d)
    _, sv, vt = np.linalg.svd(rows)
    rank = int((sv > 1e-10 * sv.max()).sum()) if sv.size else 0
    return vt[rank:].T
