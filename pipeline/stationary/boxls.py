"""Bounded least squares ``min_{s in [0,1]^q} ||v + M^T s||`` for many tiny problems.

The stationarity test of theory.md section 3 needs the distance from 0 to a zonotope
``v + {M^T s : s in [0,1]^q}`` for a few columns ``q`` (the kink points of one neuron). For small
``q`` all ``3^q`` active sets (each ``s_i`` at 0, at 1 or free) are enumerated in one batched torch
computation; the free variables solve the restricted normal equations (pseudo-inverse), the result
is clamped to the box and evaluated. Every candidate is feasible and the optimal active set
reproduces the optimum exactly (an optimum with linearly independent free columns always exists),
so the minimum over candidates is the exact minimum. Larger problems go to
``scipy.optimize.lsq_linear`` (CPU, one call per problem).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.optimize import lsq_linear

__all__ = ["ENUMERATION_MAX_COLUMNS", "box_ls", "box_ls_scipy"]

ENUMERATION_MAX_COLUMNS = 3


def _patterns(q: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Active-set patterns: ``ones`` and ``free`` masks, each (3^q, q)."""
    states = torch.tensor(list(itertools.product((0, 1, 2), repeat=q)), device=device).reshape(-1, q)
    return (states == 1).to(dtype), (states == 2).to(dtype)


def box_ls(M: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact batched ``min_{s in [0,1]^q} ||v + M^T s||`` by active-set enumeration.

    Parameters
    ----------
    M : (E, q, d)
        Columns (as rows) per problem; zero rows are harmless padding.
    v : (E, S, d)
        ``S`` right-hand sides sharing the same ``M``.

    Returns
    -------
    value : (E, S)
        The minimal norm.
    s : (E, S, q)
        A minimiser.
    """
    E, q, _ = M.shape
    if q == 0:
        return v.norm(dim=-1), v.new_zeros(v.shape[:-1] + (0,))
    if q == 1:  # closed form: project the unconstrained minimiser onto [0, 1]
        col = M[:, 0].unsqueeze(1)  # (E, 1, d)
        sq = col.square().sum(dim=-1).clamp_min(torch.finfo(M.dtype).tiny)
        s = (-(v * col).sum(dim=-1) / sq).clamp(0.0, 1.0).unsqueeze(-1)
        return (v + s * col).norm(dim=-1), s
    ones, free = _patterns(q, M.dtype, M.device)  # (P, q)
    gram = M @ M.transpose(-1, -2)  # (E, q, q)
    gram_f = gram.unsqueeze(0) * (free.unsqueeze(-1) * free.unsqueeze(-2)).unsqueeze(1)  # (P, E, q, q)
    pinv = torch.linalg.pinv(gram_f, hermitian=True, rtol=1e-12)
    shifted = v.unsqueeze(0) + torch.einsum("pq,eqd->ped", ones, M).unsqueeze(2)  # (P, E, S, d)
    rhs = torch.einsum("eqd,pesd->pesq", M, shifted) * free.unsqueeze(1).unsqueeze(1)
    s_free = -torch.einsum("peqk,pesk->pesq", pinv, rhs)
    s = (s_free.clamp(0.0, 1.0) * free.unsqueeze(1).unsqueeze(1) + ones.unsqueeze(1).unsqueeze(1))
    value = (v.unsqueeze(0) + torch.einsum("pesq,eqd->pesd", s, M)).norm(dim=-1)  # (P, E, S)
    best = value.argmin(dim=0)  # (E, S)
    value = value.gather(0, best.unsqueeze(0)).squeeze(0)
    s = s.gather(0, best.unsqueeze(0).unsqueeze(-1).expand(1, E, -1, q)).squeeze(0)
    return value, s


def box_ls_scipy(M: np.ndarray, v: np.ndarray) -> tuple[float, np.ndarray]:
    """``min_{s in [0,1]^q} ||v + M^T s||`` for one problem with ``scipy.optimize.lsq_linear``.

    Parameters
    ----------
    M : (q, d)
    v : (d,)

    Returns
    -------
    The minimal norm and the minimiser ``s`` (q,).
    """
    if M.shape[0] == 0:
        return float(np.linalg.norm(v)), np.zeros(0)
    result = lsq_linear(M.T, -v, bounds=(0.0, 1.0), method="bvls", tol=1e-14)
    s = np.clip(result.x, 0.0, 1.0)
    return float(np.linalg.norm(v + M.T @ s)), s


def box_ls_bounds(M: torch.Tensor, v: torch.Tensor, iterations: int = 300) -> tuple[torch.Tensor, ...]:
    """Certified bounds on ``min_{s in [0,1]^q} ||v + M^T s||`` for many problems (any ``q``).

    Accelerated projected gradient (FISTA) gives a feasible ``s`` and hence an upper bound; the
    Lagrangian dual evaluated at the residual ``e = v + M^T s`` gives the lower bound
    ``sqrt(2 max(0, e.v - ||e||^2 / 2 + sum_i min(0, (M e)_i)))``, equal to the minimum at the optimum.

    Parameters
    ----------
    M : (E, q, d), v : (E, d)

    Returns
    -------
    upper, lower : (E,)
    s : (E, q)
        The feasible point of the upper bound.
    """
    gram = M @ M.transpose(-1, -2)
    lip = torch.linalg.eigvalsh(gram)[..., -1].clamp_min(torch.finfo(M.dtype).tiny)
    step = (1.0 / lip).unsqueeze(-1)
    s = M.new_zeros(M.shape[:2])
    prev, t = s, 1.0
    mv = (M @ v.unsqueeze(-1)).squeeze(-1)
    for _ in range(iterations):
        grad = (gram @ s.unsqueeze(-1)).squeeze(-1) + mv
        new = (s - step * grad).clamp(0.0, 1.0)
        t_new = 0.5 * (1.0 + (1.0 + 4.0 * t * t) ** 0.5)
        s, prev, t = new + ((t - 1.0) / t_new) * (new - prev), new, t_new
    s = prev
    e = v + (s.unsqueeze(-1) * M).sum(dim=-2)
    upper = e.norm(dim=-1)
    me = (M @ e.unsqueeze(-1)).squeeze(-1)
    dual = (e * v).sum(dim=-1) - 0.5 * e.square().sum(dim=-1) + me.clamp(max=0.0).sum(dim=-1)
    lower = torch.sqrt(2.0 * dual.clamp_min(0.0)).minimum(upper)
    return upper, lower, s
