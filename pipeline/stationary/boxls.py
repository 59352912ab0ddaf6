"""Bounded least squares ``min_{s in [0,1]^q} ||v + M^T s||`` for many tiny problems.

The stationarity test of theory.md section 3 needs the distance from 0 to a zonotope
``v + {M^T s : s in [0,1]^q}`` for a few columns ``q`` (the kink points of one neuron). For small
``q`` all ``3^q`` active sets (each ``s_i`` at 0, at 1 or free) are enumerated in one batched torch
computation; the free variables solve the restricted normal equations (closed-form inverse of the at most 3 x 3
free block; singular blocks are skipped), the result
is clamped to the box and evaluated. Every candidate is feasible and the optimal active set
reproduces the optimum exactly (an optimum with linearly independent free columns always exists),
so the minimum over candidates is the exact minimum. Larger problems go to
``scipy.optimize.lsq_linear`` (CPU, one call per problem).
"""

from __future__ import annotations

import itertools
from typing import cast

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
    vM = v @ M.transpose(-1, -2)  # (E, S, q)
    # q <= 3: explicit sums over the tiny axes beat batched matmuls of 3 x 3 blocks
    onesG = cast(torch.Tensor, sum(ones[:, None, k, None] * gram[None, :, k, :] for k in range(q)))  # (P, E, q)
    rhs = (vM.unsqueeze(0) + onesG.unsqueeze(2)) * free[:, None, None, :]  # (P, E, S, q)
    inverse, valid = _restricted_inverse(gram, free)  # (P, E, q, q), (P, E)
    s_free = -cast(torch.Tensor, sum(rhs[..., k, None] * inverse[:, :, None, k, :] for k in range(q)))  # symmetric
    s = s_free.clamp(0.0, 1.0) * free[:, None, None, :] + ones[:, None, None, :]
    # rank candidates by the expanded square ||v||^2 + 2 s.(M v) + s^T G s (no d axis), then
    # evaluate the chosen one exactly
    quad = cast(
        torch.Tensor,
        sum(
            s[..., k] * (2.0 * vM[..., k].unsqueeze(0) + sum(s[..., l] * gram[None, :, None, k, l] for l in range(q)))
            for k in range(q)
        ),
    )
    quad = torch.where(valid.unsqueeze(-1), quad, torch.full_like(quad, float("inf")))
    best = quad.argmin(dim=0)  # (E, S)
    s = s.gather(0, best.unsqueeze(0).unsqueeze(-1).expand(1, E, -1, q)).squeeze(0)
    value = (v + torch.matmul(s, M)).norm(dim=-1)
    return value, s


def _restricted_inverse(gram: torch.Tensor, free: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of the free-free block of ``gram`` for every pattern, zero elsewhere (closed form, q <= 3).

    ``gram`` (E, q, q), ``free`` (P, q). The block is padded with the identity on the fixed
    variables and inverted by the adjugate; patterns whose free block is numerically singular
    (``det <= 1e-12 prod diag``, Hadamard-relative) are marked invalid: an optimum with linearly
    independent free columns always exists, so dropping them keeps the enumeration exact.
    """
    q = gram.shape[-1]
    pair = free.unsqueeze(-1) * free.unsqueeze(-2)  # (P, q, q)
    eye = torch.eye(q, dtype=gram.dtype, device=gram.device)
    A = gram.unsqueeze(0) * pair.unsqueeze(1) + (eye * (1.0 - free).unsqueeze(-1)).unsqueeze(1)  # (P, E, q, q)
    if q == 2:
        a, b, d = A[..., 0, 0], A[..., 0, 1], A[..., 1, 1]
        det = a * d - b * b
        adj = torch.stack([torch.stack([d, -b], -1), torch.stack([-b, a], -1)], -2)
    else:
        r0, r1, r2 = A[..., 0, :], A[..., 1, :], A[..., 2, :]
        c0, c1, c2 = torch.linalg.cross(r1, r2), torch.linalg.cross(r2, r0), torch.linalg.cross(r0, r1)
        det = (r0 * c0).sum(dim=-1)
        adj = torch.stack([c0, c1, c2], dim=-1)  # columns: symmetric A -> adj symmetric
    hadamard = torch.diagonal(A, dim1=-2, dim2=-1).prod(dim=-1)
    valid = det > 1e-12 * hadamard
    inverse = adj / torch.where(valid, det, torch.ones_like(det)).unsqueeze(-1).unsqueeze(-1)
    inverse = inverse * pair.unsqueeze(1)
    return inverse, valid


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


def box_ls_bounds(
    M: torch.Tensor, v: torch.Tensor, iterations: int = 300, scale: torch.Tensor | None = None
) -> tuple[torch.Tensor, ...]:
    """Certified bounds on ``min_{s in [0,1]^q} ||v + M^T s||`` for many problems (any ``q``).

    Accelerated projected gradient (FISTA) gives a feasible ``s`` and hence an upper bound; the
    Lagrangian dual evaluated at the residual ``e = v + M^T s`` gives the lower bound
    ``sqrt(2 max(0, e.v - ||e||^2 / 2 + sum_i min(0, (M e)_i)))``, equal to the minimum at the optimum.

    Parameters
    ----------
    M : (E, q, d), v : (E, d)
    scale : (E,) or None
        Early stop (checked every 25 iterations) once every problem has ``upper - lower <= 1e-10 * scale``
        (converged far below any tolerance of the classifier).

    Returns
    -------
    upper, lower : (E,)
    s : (E, q)
        The feasible point of the upper bound.
    """
    if M.shape[1] == 0:  # no box variables: the minimum is ||v||
        norm = v.norm(dim=-1)
        return norm, norm, M.new_zeros(M.shape[:2])
    gram = M @ M.transpose(-1, -2)
    lip = torch.linalg.eigvalsh(gram)[..., -1].clamp_min(torch.finfo(M.dtype).tiny)
    step = (1.0 / lip).unsqueeze(-1)
    s = M.new_zeros(M.shape[:2])
    prev, t = s, 1.0
    mv = (M @ v.unsqueeze(-1)).squeeze(-1)
    grad = torch.empty_like(s).unsqueeze(-1)
    for it in range(1, iterations + 1):
        # in place, with the same roundings as s - step * (gram s + mv) and new + c (new - prev)
        torch.bmm(gram, s.unsqueeze(-1), out=grad)
        new = torch.sub(s, grad.squeeze(-1).add_(mv).mul_(step)).clamp_(0.0, 1.0)
        t_new = 0.5 * (1.0 + (1.0 + 4.0 * t * t) ** 0.5)
        s = torch.sub(new, prev).mul_((t - 1.0) / t_new).add_(new)
        prev, t = new, t_new
        if scale is not None and it % 25 == 0 and it < iterations:
            upper, lower = _bounds(M, v, prev)
            if bool((upper - lower <= 1e-10 * scale).all()):
                break
    s = prev
    upper, lower = _bounds(M, v, s)
    return upper, lower, s


def _bounds(M: torch.Tensor, v: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Primal (upper) and Lagrangian-dual (lower) bounds at the feasible ``s``."""
    e = v + (s.unsqueeze(-1) * M).sum(dim=-2)
    upper = e.norm(dim=-1)
    me = (M @ e.unsqueeze(-1)).squeeze(-1)
    dual = (e * v).sum(dim=-1) - 0.5 * e.square().sum(dim=-1) + me.clamp(max=0.0).sum(dim=-1)
    lower = torch.sqrt(2.0 * dual.clamp_min(0.0)).minimum(upper)
    return upper, lower
