"""Escape strength ``kappa_j`` (theory.md section 4) and the escape direction.

``kappa_j = (P_j - sqrt(P_j^2 + 4 M_j^2)) / (2n)`` with ``P_j = sum_i rho_ij^2`` and
``M_j = max_{||u|| = 1} ||D_j(u)||``. ``D_j`` is piecewise linear and positively homogeneous, so
``M_j`` is found by a batched multi-start fixed-point ascent ``u <- J(u)^T D_j(u) / ||.||``
(``J(u)`` the Jacobian of the linear piece at ``u``: power iteration on each piece), started from
the top right singular vector of ``B~_j``, the kink inputs (both signs), ``+-w_j`` and random
directions. The result is a lower bound on ``M_j`` (exact whenever ``D_j`` is linear); escape itself
is decided exactly elsewhere.
"""

from __future__ import annotations

import torch

from pipeline.stationary.kinks import marked_first
from pipeline.stationary.neurons import NeuronQuantities, direction_derivative

__all__ = ["escape_strength"]

_ITERATIONS = 40
_RANDOM_STARTS = 4


def escape_strength(
    q: NeuronQuantities,
    w: torch.Tensor,
    x: torch.Tensor,
    runs: torch.Tensor,
    neurons: torch.Tensor,
    leak: float,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``kappa_j``, ``M_j`` and a unit maximiser ``u`` for the selected neurons.

    Parameters
    ----------
    runs, neurons : (E,)
        Indices of the selected neurons.

    Returns
    -------
    kappa : (E,), M : (E,), u : (E, d)

    Zero neurons (``w_j = 0``) of one run share ``D_j(u) = sum_i r_i rho(x_i . u)`` and every start
    direction, so one representative per run is computed and copied to the others.
    """
    zero = q.w_zero[runs, neurons]
    if bool(zero.any()):
        zr = runs[zero]
        uniq, inverse = torch.unique(zr, return_inverse=True)
        first = torch.full((int(uniq.numel()),), -1, dtype=torch.long, device=runs.device)
        first.scatter_reduce_(0, inverse, torch.nonzero(zero).flatten(), reduce="amax", include_self=True)
        keep = ~zero
        keep[first] = True
        rep = torch.nonzero(keep).flatten()
        kappa_r, m_r, u_r = _strength(q, w, x, runs[rep], neurons[rep], leak, seed)
        slot = torch.full((runs.numel(),), -1, dtype=torch.long, device=runs.device)
        slot[rep] = torch.arange(rep.numel(), device=runs.device)
        source = slot.clone()
        source[zero] = slot[first[inverse]]
        return kappa_r[source], m_r[source], u_r[source]
    return _strength(q, w, x, runs, neurons, leak, seed)


def _strength(
    q: NeuronQuantities,
    w: torch.Tensor,
    x: torch.Tensor,
    runs: torch.Tensor,
    neurons: torch.Tensor,
    leak: float,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = x.shape[-2]
    E = runs.numel()
    xb = x[runs] if x.shape[0] > 1 else x[0].expand(E, -1, -1)
    res = q.residual[runs]
    z = q.z[runs, :, neurons]
    kink = q.kink[runs, :, neurons]
    starts = _starts(q, w, xb, runs, neurons, kink, seed)  # (E, S, d)
    u = starts
    best_val = torch.zeros(E, dtype=x.dtype, device=x.device)
    best_u = starts[:, 0]
    for _ in range(_ITERATIONS):
        D = direction_derivative(u, xb, res, z, kink, leak)  # (E, S, k)
        val = D.norm(dim=-1)
        top = val.argmax(dim=-1)
        top_val = val.gather(1, top.unsqueeze(-1)).squeeze(-1)
        better = top_val > best_val
        best_val = torch.where(better, top_val, best_val)
        best_u = torch.where(better.unsqueeze(-1), u[torch.arange(E), top], best_u)
        u = _ascent_step(u, D, xb, res, z, kink, leak)
    P = q.rho[runs, :, neurons].square().sum(dim=-1)
    kappa = (P - torch.sqrt(P.square() + 4 * best_val.square())) / (2 * n)
    return kappa, best_val, best_u


def _ascent_step(
    u: torch.Tensor,
    D: torch.Tensor,
    xb: torch.Tensor,
    res: torch.Tensor,
    z: torch.Tensor,
    kink: torch.Tensor,
    leak: float,
) -> torch.Tensor:
    """One step ``u <- normalise(J(u)^T D(u))`` (E, S, d); keeps ``u`` where the update vanishes."""
    t = torch.matmul(u, xb.transpose(-1, -2))  # (E, S, n)
    zz, kk = z.unsqueeze(-2), kink.unsqueeze(-2)
    slope = torch.where(kk, torch.where(t > 0, 1.0, leak), torch.where(zz > 0, 1.0, leak)).to(u.dtype)
    # J^T D = sum_i slope_i (r_i . D) x_i
    weights = slope * torch.einsum("esk,enk->esn", D, res)
    new = torch.einsum("esn,end->esd", weights, xb)
    norm = new.norm(dim=-1, keepdim=True)
    return torch.where(norm > 0, new / norm.clamp_min(torch.finfo(u.dtype).tiny), u)


def _starts(
    q: NeuronQuantities,
    w: torch.Tensor,
    xb: torch.Tensor,
    runs: torch.Tensor,
    neurons: torch.Tensor,
    kink: torch.Tensor,
    seed: int,
) -> torch.Tensor:
    """Start directions (E, S, d): top singular vector of ``B~_j``, ``+-w_j``, kink inputs, random."""
    E, n, d = xb.shape
    Bt = q.B_tilde[runs, neurons]  # (E, k, d)
    top = torch.linalg.svd(Bt, full_matrices=False).Vh[:, 0]  # (E, d)
    wn = w[runs, neurons]
    wn = wn / wn.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(xb.dtype).tiny)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    rand = torch.randn(1, _RANDOM_STARTS, d, generator=gen, dtype=xb.dtype).to(xb.device).expand(E, -1, -1)
    order = marked_first(kink, 4)
    kx = xb.gather(1, order.unsqueeze(-1).expand(-1, -1, d)) * kink.gather(1, order).unsqueeze(-1)
    starts = torch.cat([top.unsqueeze(1), -top.unsqueeze(1), wn.unsqueeze(1), -wn.unsqueeze(1), kx, -kx, rand], 1)
    norm = starts.norm(dim=-1, keepdim=True)
    fallback = rand[:, :1].expand_as(starts)
    starts = torch.where(norm > 0, starts, fallback)
    unit: torch.Tensor = starts / starts.norm(dim=-1, keepdim=True)
    return unit
