"""Directional stationarity (theory.md section 3, 8.2 step 5).

Per neuron: the output condition ``G_j = 0`` and the input condition ``g_j >= 0``, i.e.
``gap_j = max_{S subset N_j} min_{s in [0,1]^{P_j}} ||p_j + sum_S gamma_i x_i + sum_P s_i gamma_i x_i|| = 0``
(``-gap_j = min_{||u|| <= 1} g_j(u)``). Neurons without significant kinks give ``gap_j = ||p_j||``
in closed form; neurons with at most ``ENUMERATION_MAX_COLUMNS`` convex and concave kinks are solved
exactly in one batched torch call; the rare rest go to scipy (``lsq_linear`` per subset, or one
``milp`` when ``|N_j|`` is large).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import Bounds, LinearConstraint, milp

from pipeline.stationary.boxls import ENUMERATION_MAX_COLUMNS, box_ls, box_ls_bounds, box_ls_scipy
from pipeline.stationary.kinks import marked_first
from pipeline.stationary.neurons import FitQuantities, NeuronQuantities

__all__ = ["FirstOrder", "SUBSET_MAX", "clarke_gap", "first_order", "output_gaps", "significant_kinks"]

SUBSET_MAX = 10
_GAMMA_REL = 1e-12


@dataclass(frozen=True)
class FirstOrder:
    """First-order gaps and descent directions.

    Attributes
    ----------
    out_gap : (R, m)
        ``||G_j|| / (||R||_F ||rho(X w_j)||)`` (0/0 = 0; zero when the output layer is fixed).
    in_gap : (R, m)
        ``gap_j / (||R||_F ||a_j|| s_x)`` (0/0 = 0).
    direction : (R, m, d)
        Unit ``u`` with ``g_j(u) = -gap_j`` (zero where ``gap_j = 0``).
    gap : (R,)
        ``max_j max(out_gap, in_gap)``.
    """

    out_gap: torch.Tensor
    in_gap: torch.Tensor
    direction: torch.Tensor
    gap: torch.Tensor


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` with ``0 / 0 = 0`` and ``x / 0 = inf``."""
    out = num / den.clamp_min(torch.finfo(num.dtype).tiny)
    return torch.where(num == 0, torch.zeros_like(out), out)


def output_gaps(fit: FitQuantities | NeuronQuantities) -> torch.Tensor:
    """Relative output gaps ``||G_j|| / (||R||_F ||rho(X w_j)||)`` (0/0 = 0), (R, m)."""
    return _safe_ratio(fit.G.norm(dim=-1), fit.r_norm.unsqueeze(-1) * fit.rho.norm(dim=-2))


def significant_kinks(q: NeuronQuantities, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Convex (``P_j``) and concave (``N_j``) kink masks, (R, n, m); negligible ``gamma`` dropped."""
    scale = (q.r_norm * q.s_x).unsqueeze(-1) * a.norm(dim=-1)  # (R, m)
    big = q.gamma.abs() * q.x_norm.unsqueeze(-1) > _GAMMA_REL * scale.unsqueeze(-2)
    return big & (q.gamma > 0), big & (q.gamma < 0)


def _gather_columns(
    q: NeuronQuantities, x: torch.Tensor, mask: torch.Tensor, runs: torch.Tensor, neurons: torch.Tensor, width: int
) -> torch.Tensor:
    """Columns ``gamma_ij x_i`` of the masked kinks of the selected neurons, (E, width, d); ``x`` (R or 1, n, d)."""
    marked = mask[runs, :, neurons]  # (E, n)
    sel = marked.to(x.dtype)
    order = marked_first(marked, width)
    valid = sel.gather(1, order)
    gam = q.gamma[runs, :, neurons].gather(1, order) * valid
    xs = x[0][order] if x.shape[0] == 1 else x[runs].gather(1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return gam.unsqueeze(-1) * xs


def first_order(
    q: NeuronQuantities, a: torch.Tensor, x: torch.Tensor, train_output: bool, decide_at: float
) -> FirstOrder:
    """Relative first-order gaps of every neuron and per-neuron descent directions.

    Neurons with few kinks get the exact gap. Neurons with many kinks first get certified bounds
    from the subsets ``S = {}`` and ``S = N_j`` (:func:`box_ls_bounds`); if the lower bound already
    exceeds ``decide_at`` (relative) the neuron is certainly not stationary and its gap is reported
    as that lower bound; with ``N_j`` empty the upper bound is the (converged) gap; otherwise the
    exact scipy path runs.
    """
    runs_total, m, d = q.p.shape
    xb = x.expand(runs_total, -1, -1) if x.shape[0] != runs_total else x
    a_norm = a.norm(dim=-1)
    scale = (q.r_norm * q.s_x).unsqueeze(-1) * a_norm
    if train_output:
        out_gap = output_gaps(q)
    else:
        out_gap = torch.zeros_like(a_norm)
    P, N = significant_kinks(q, a)
    nP, nN = P.sum(dim=-2), N.sum(dim=-2)
    gap = q.p.norm(dim=-1)
    resid = q.p.clone()
    small = ((nP + nN) > 0) & (nP <= ENUMERATION_MAX_COLUMNS) & (nN <= ENUMERATION_MAX_COLUMNS)
    if bool(small.any()):
        # one batched enumeration per (|P_j|, |N_j|) size class: the cost grows like 3^|P| 2^|N|
        size_class = torch.where(small, nP * (ENUMERATION_MAX_COLUMNS + 1) + nN, torch.full_like(nP, -1))
        for cls in torch.unique(size_class[small]).tolist():
            runs, neurons = torch.nonzero(size_class == cls, as_tuple=True)
            qp, qn = divmod(int(cls), ENUMERATION_MAX_COLUMNS + 1)
            cols_p = _gather_columns(q, x, P, runs, neurons, qp)
            cols_n = _gather_columns(q, x, N, runs, neurons, qn)
            subsets = torch.tensor(list(itertools.product((0.0, 1.0), repeat=qn)), dtype=xb.dtype, device=xb.device)
            subsets = subsets.reshape(2**qn, qn)
            v = q.p[runs, neurons].unsqueeze(1) + torch.einsum("sq,eqd->esd", subsets, cols_n)
            value, s = box_ls(cols_p, v)
            worst = value.argmax(dim=-1)
            gap[runs, neurons] = value.gather(1, worst.unsqueeze(-1)).squeeze(-1)
            vs = v.gather(1, worst.view(-1, 1, 1).expand(-1, 1, d)).squeeze(1)
            ss = s.gather(1, worst.view(-1, 1, 1).expand(-1, 1, qp)).squeeze(1)
            resid[runs, neurons] = vs + torch.einsum("eq,eqd->ed", ss, cols_p)
    large = (nP > ENUMERATION_MAX_COLUMNS) | (nN > ENUMERATION_MAX_COLUMNS)
    if bool(large.any()):
        runs, neurons = torch.nonzero(large, as_tuple=True)
        cols_p = _gather_columns(q, x, P, runs, neurons, int(nP[large].max()))
        cols_n = _gather_columns(q, x, N, runs, neurons, int(nN[large].max()))
        p = q.p[runs, neurons]
        v = torch.cat([p, p + cols_n.sum(dim=1)])
        sc = scale[runs, neurons]
        upper, lower, s = box_ls_bounds(torch.cat([cols_p, cols_p]), v, scale=torch.cat([sc, sc]))
        e = v + (s.unsqueeze(-1) * torch.cat([cols_p, cols_p])).sum(dim=1)
        E = runs.numel()
        pick = (lower[E:] > lower[:E]).long()
        idx = torch.arange(E, device=v.device) + E * pick
        low, res = lower[idx], e[idx]
        decided = low > decide_at * scale[runs, neurons]
        no_concave = nN[runs, neurons] == 0
        value = torch.where(decided, low, upper[:E])
        gap[runs, neurons] = value
        resid[runs, neurons] = torch.where(decided.unsqueeze(-1), res, e[:E])
        for r, j in zip(runs[~decided & ~no_concave].tolist(), neurons[~decided & ~no_concave].tolist(), strict=True):
            value_rj, vec = _large_gap(q, xb, P, N, r, j)
            gap[r, j] = value_rj
            resid[r, j] = torch.as_tensor(vec, dtype=gap.dtype, device=gap.device)
    direction = -resid / resid.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(gap.dtype).tiny)
    direction = torch.where((gap > 0).unsqueeze(-1), direction, torch.zeros_like(direction))
    in_gap = _safe_ratio(gap, scale)
    total = torch.maximum(out_gap, in_gap).amax(dim=-1) if m > 0 else torch.zeros_like(q.loss)
    return FirstOrder(out_gap=out_gap, in_gap=in_gap, direction=direction, gap=total)


def _large_gap(
    q: NeuronQuantities, xb: torch.Tensor, P: torch.Tensor, N: torch.Tensor, r: int, j: int
) -> tuple[float, np.ndarray]:
    """Gap of one neuron with many kinks (scipy); returns the gap and a residual vector ``-gap * u``."""
    p = q.p[r, j].cpu().numpy()
    xs = xb[r].cpu().numpy()
    gam = q.gamma[r, :, j].cpu().numpy()
    ip, iN = P[r, :, j].cpu().numpy(), N[r, :, j].cpu().numpy()
    cols_p = gam[ip, None] * xs[ip]
    cols_n = gam[iN, None] * xs[iN]
    if cols_n.shape[0] <= SUBSET_MAX:
        best, best_vec = -1.0, p
        for mask in itertools.product((False, True), repeat=cols_n.shape[0]):
            v = p + cols_n[np.array(mask, dtype=bool)].sum(axis=0)
            value, s = box_ls_scipy(cols_p, v)
            if value > best:
                best, best_vec = value, v + cols_p.T @ s
        return best, best_vec
    value, u = _milp_min(
        p,
        np.concatenate([cols_p, cols_n]) / np.concatenate([gam[ip], gam[iN]])[:, None],
        np.concatenate([gam[ip], gam[iN]]),
    )
    norm = float(np.linalg.norm(u))
    return max(-value, 0.0), (value * u / norm if norm > 0 else np.zeros_like(u))


def _milp_min(p: np.ndarray, xs: np.ndarray, gam: np.ndarray) -> tuple[float, np.ndarray]:
    """``min_{u in [-1,1]^d} p.u + sum_i gam_i relu(x_i.u)`` by one MILP (theory section 3).

    The box contains the unit ball, so ``-value`` over-estimates the 2-norm gap (conservative).
    """
    d, K = p.size, gam.size
    big = np.abs(xs).sum(axis=1)
    neg = gam < 0
    n_var = d + 2 * K  # u, z, beta
    cost = np.concatenate([p, gam, np.zeros(K)])
    rows, lo, hi = [], [], []
    for i in range(K):
        row = np.zeros(n_var)
        row[:d], row[d + i] = xs[i], -1.0
        if not neg[i]:  # z_i >= x_i.u
            rows.append(row)
            lo.append(-np.inf)
            hi.append(0.0)
        else:  # z_i <= x_i.u + M (1 - beta), z_i <= M beta
            row2 = -row.copy()
            row2[d + K + i] = big[i]
            rows.append(row2)
            lo.append(-np.inf)
            hi.append(big[i])
            row3 = np.zeros(n_var)
            row3[d + i], row3[d + K + i] = 1.0, -big[i]
            rows.append(row3)
            lo.append(-np.inf)
            hi.append(0.0)
    lower = np.concatenate([-np.ones(d), np.zeros(K), np.zeros(K)])
    upper = np.concatenate([np.ones(d), big, np.where(neg, 1.0, 0.0)])
    integrality = np.concatenate([np.zeros(d + K), neg.astype(float)])
    result = milp(
        cost, constraints=LinearConstraint(np.array(rows), lo, hi), bounds=Bounds(lower, upper), integrality=integrality
    )
    if result.x is None:
        return 0.0, np.zeros(d)
    return float(result.fun), result.x[:d]


def clarke_gap(
    q: NeuronQuantities, a: torch.Tensor, x: torch.Tensor, fo: FirstOrder, runs: torch.Tensor, decide_at: float
) -> torch.Tensor:
    """Relative Clarke input gap of the given runs, (len(runs),).

    Max over neurons of ``min_{s in [0,1]^{I_0}} ||p_j + sum_i s_i gamma_ij x_i|| / (||R||_F ||a_j|| s_x)``:
    Clarke stationarity allows any kink slope in ``[leak, 1]`` without the sign condition (the output
    condition is the same as for directional stationarity; combine with ``out_gap``). Neurons without
    concave kinks reuse the directional gap (the two coincide); the others are solved exactly for few
    kinks, else bounded, and exactly (scipy) only when the bounds straddle ``decide_at``.
    """
    P, N = significant_kinks(q, a)
    gaps = fo.in_gap[runs].clone()
    sel = N[runs].any(dim=-2)
    if not bool(sel.any()):
        return gaps.amax(dim=-1)
    scale = (q.r_norm * q.s_x).unsqueeze(-1) * a.norm(dim=-1)
    local, neurons = torch.nonzero(sel, as_tuple=True)
    rr = runs[local]
    both = P | N
    width = int(both[rr, :, neurons].sum(dim=-1).max())
    cols = _gather_columns(q, x, both, rr, neurons, width)
    p = q.p[rr, neurons]
    if width <= ENUMERATION_MAX_COLUMNS:
        value = box_ls(cols, p.unsqueeze(1))[0].squeeze(1)
    else:
        upper, lower, _ = box_ls_bounds(cols, p, scale=scale[rr, neurons])
        thresh = decide_at * scale[rr, neurons]
        value = torch.where(upper <= thresh, upper, lower)
        for e in ((upper > thresh) & (lower <= thresh)).nonzero().flatten().tolist():
            value[e] = box_ls_scipy(cols[e].cpu().numpy(), p[e].cpu().numpy())[0]
    gaps[local, neurons] = _safe_ratio(value, scale[rr, neurons])
    return gaps.amax(dim=-1)
