"""Descent witnesses, verified on the true loss (theory.md sections 3, 5.2 and 8.2 step 7).

Every witness is a perturbation ``(dw, da)`` of the classified point with
``nets.loss(w + dw, a + da) < nets.loss(w, a)`` evaluated in the working dtype (float64). Candidates
are generated along a geometric grid of step sizes and all evaluated in one batched loss call; the
best one is kept and reported as verified only if it strictly decreases the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline import nets
from pipeline.stationary.neurons import NeuronQuantities, direction_derivative

__all__ = ["Witness", "best_on_grid", "escape_witness", "first_order_witness", "true_change"]

_GRID = 24
_RATIO = 4.0


@dataclass(frozen=True)
class Witness:
    """Witnesses of selected runs.

    Attributes
    ----------
    dw : (E, m, d), da : (E, m, k)
        The perturbations.
    verified : (E,)
        ``L(w + dw, a + da) < L(w, a)`` on the true loss.
    decrease : (E,)
        ``L(w, a) - L(w + dw, a + da)``.
    """

    dw: torch.Tensor
    da: torch.Tensor
    verified: torch.Tensor
    decrease: torch.Tensor


def _data(x: torch.Tensor, runs: torch.Tensor) -> torch.Tensor:
    return x[runs] if x.shape[0] > 1 else x


def best_on_grid(
    w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor, leak: float,
    dw: torch.Tensor, da: torch.Tensor,
) -> Witness:  # fmt: skip
    """Pick, per run, the candidate with the lowest true loss.

    Parameters
    ----------
    w : (E, m, d), a : (E, m, k), x, y : (E or 1, n, .)
        The selected runs' points and data.
    dw : (E, T, m, d), da : (E, T, m, k)
        ``T`` candidate perturbations per run.
    """
    E, T = dw.shape[:2]
    base = nets.loss(w, a, x, y, leak)
    cand_w = (w.unsqueeze(1) + dw).flatten(0, 1)
    cand_a = (a.unsqueeze(1) + da).flatten(0, 1)
    xr = x.repeat_interleave(T, dim=0) if x.shape[0] > 1 else x
    yr = y.repeat_interleave(T, dim=0) if y.shape[0] > 1 else y
    values = nets.loss(cand_w, cand_a, xr, yr, leak).reshape(E, T)
    best = values.argmin(dim=1)
    idx = torch.arange(E, device=w.device)
    decrease = base - values[idx, best]
    return Witness(dw=dw[idx, best], da=da[idx, best], verified=decrease > 0, decrease=decrease)


def true_change(
    w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, residual: torch.Tensor, leak: float,
    dw: torch.Tensor, da: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """True loss changes ``L(w + dw, a + da) - L(w, a)`` of ``T`` candidates of one run, shape (T,).

    Computed from two true forward passes as ``1/n sum_i r_i . delta f_i + 1/(2n) sum_i ||delta f_i||^2``
    (``delta f`` the output change, ``r`` the residual at the point): the same number as the difference of
    the two losses, without the cancellation of two large losses.

    Parameters
    ----------
    w : (m, d), a : (m, k), x : (n, d), residual : (n, k)
        The point, its data and residuals.
    dw : (T, m, d), da : (T, m, k)
        The candidate perturbations.
    """
    delta = nets.forward(w + dw, a + da, x, leak) - nets.forward(w, a, x, leak)
    return ((residual * delta).sum(dim=(-2, -1)) + 0.5 * delta.square().sum(dim=(-2, -1))) / x.shape[-2]


def first_order_witness(
    w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor, leak: float,
    G: torch.Tensor, gap_abs: torch.Tensor, direction: torch.Tensor, train_output: bool,
    model: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> Witness:  # fmt: skip
    """First-order descent ``da_j = -G_j``, ``dw_j = gap_j u_j`` (so ``n L'(theta; .) = -sum ||G||^2 - sum gap^2``).

    With ``model = (z, kink, residual)`` of the selected runs ((E, n, m), (E, n, m), (E, n, k)) the step
    length is first taken from the exact second-order model of section 2 along the direction,
    ``t* = -c_1 / (2 c_2)`` (``c_1`` the directional derivative, ``c_2 = Q(d)``), on a short grid
    ``t* 4^{0, -1, -2}``; runs whose short grid finds no verified decrease fall back to the long grid
    starting at the parameter scale.

    Parameters
    ----------
    w, a, x, y
        Selected runs (see :func:`best_on_grid`).
    G : (E, m, k), gap_abs : (E, m), direction : (E, m, d)
        Output gradients (``n dL/da``), absolute input gaps and unit descent directions.
    """
    dw = gap_abs.unsqueeze(-1) * direction
    da = -G if train_output else torch.zeros_like(G)
    size = torch.sqrt(dw.square().sum(dim=(-2, -1)) + da.square().sum(dim=(-2, -1)))
    scale = torch.sqrt(w.square().sum(dim=(-2, -1)) + a.square().sum(dim=(-2, -1))).clamp_min(1.0)
    t0 = scale / size.clamp_min(torch.finfo(w.dtype).tiny)
    ladder = _RATIO ** -torch.arange(_GRID, dtype=w.dtype, device=w.device)
    if model is not None:
        t_model = _model_step(x, a, dw, da, *model, leak)
        t_model = torch.where(torch.isfinite(t_model) & (t_model > 0), t_model, t0)
        short = t_model.unsqueeze(-1) * _RATIO ** -torch.arange(0, 3, dtype=w.dtype, device=w.device)
        wit = best_on_grid(w, a, x, y, leak, short[..., None, None] * dw.unsqueeze(1),
                           short[..., None, None] * da.unsqueeze(1))  # fmt: skip
        retry = (~wit.verified).nonzero().flatten()
        if retry.numel() == 0:
            return wit
        steps = t0[retry].unsqueeze(-1) * ladder
        xr, yr = (v[retry] if v.shape[0] > 1 else v for v in (x, y))
        again = best_on_grid(w[retry], a[retry], xr, yr, leak, steps[..., None, None] * dw[retry].unsqueeze(1),
                             steps[..., None, None] * da[retry].unsqueeze(1))  # fmt: skip
        better = again.decrease > wit.decrease[retry]
        pick = retry[better]
        fields = {name: getattr(wit, name).clone() for name in ("dw", "da", "verified", "decrease")}
        for name in fields:
            fields[name][pick] = getattr(again, name)[better]
        return Witness(**fields)
    steps = t0.unsqueeze(-1) * ladder
    return best_on_grid(w, a, x, y, leak, steps[..., None, None] * dw.unsqueeze(1),
                        steps[..., None, None] * da.unsqueeze(1))  # fmt: skip


def _model_step(x, a, dw, da, z, kink, residual, leak: float) -> torch.Tensor:
    """Minimiser ``-c_1 / (2 c_2)`` of the model ``c_1 t + c_2 t^2`` of ``n (L(theta + t d) - L)`` (E,).

    ``c_1 = sum_j [da_j . G_j + g_j(dw_j)]`` and ``c_2 = sum_j da_j . D_j(dw_j) + 1/2 sum_i ||delta f_i||^2``
    (section 2 with ``Delta = t d``; exact up to ``O(t^3)``). NaN/negative where ``c_2 <= 0`` or ``c_1 >= 0``.
    """
    t = torch.matmul(x, dw.transpose(-1, -2))  # (E, n, m)
    phi = torch.where(kink, torch.where(t > 0, t, leak * t), torch.where(z > 0, t, leak * t))
    rho = torch.where(z > 0, z, leak * z)
    G = torch.matmul(rho.transpose(-1, -2), residual)  # (E, m, k)
    D = torch.matmul(phi.transpose(-1, -2), residual)  # (E, m, k): D_j(dw_j)
    c = torch.matmul(residual, a.transpose(-1, -2))  # (E, n, m)
    c1 = (da * G).sum(dim=(-2, -1)) + (c * phi).sum(dim=(-2, -1))
    delta_f = torch.matmul(rho, da) + torch.matmul(phi, a)  # (E, n, k)
    c2 = (da * D).sum(dim=(-2, -1)) + 0.5 * delta_f.square().sum(dim=(-2, -1))
    return -c1 / (2.0 * c2)


def escape_witness(
    q: NeuronQuantities, w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor, leak: float,
    runs: torch.Tensor, neurons: torch.Tensor, u: torch.Tensor,
) -> Witness:  # fmt: skip
    """Section 5.2 witness for an escape neuron ``j`` with ``a_j = 0`` (one neuron per selected run).

    ``dw_j = s u`` and the optimal ``da_j = -(G_j + D_j(s u)) / P_j(s)`` with
    ``P_j(s) = sum_i (rho_ij + s phi_ij(u))^2``, which keeps the first-order term at numerically
    stationary points; ``s`` runs over a geometric grid below the validity radius ``mu_j / 2``.
    """
    E = runs.numel()
    m, d = w.shape[-2:]
    k = a.shape[-1]
    xb = x[runs] if x.shape[0] > 1 else x[0].expand(E, -1, -1)
    mu = q.mu[runs, neurons]
    scale = torch.sqrt(w[runs].square().sum(dim=(-2, -1)) + a[runs].square().sum(dim=(-2, -1))).clamp_min(1.0)
    s0 = torch.where(torch.isfinite(mu), 0.5 * mu, scale)
    s = s0.unsqueeze(-1) * _RATIO ** -torch.arange(_GRID, dtype=w.dtype, device=w.device)  # (E, T)
    Du = direction_derivative(u.unsqueeze(1), xb, q.residual[runs], q.z[runs, :, neurons], q.kink[runs, :, neurons],
                              leak).squeeze(1)  # fmt: skip
    t = torch.einsum("ed,end->en", u, xb)
    zz, kk = q.z[runs, :, neurons], q.kink[runs, :, neurons]
    phi = torch.where(kk, torch.where(t > 0, t, leak * t), torch.where(zz > 0, t, leak * t))  # (E, n)
    rho = q.rho[runs, :, neurons]
    P = (rho.unsqueeze(1) + s.unsqueeze(-1) * phi.unsqueeze(1)).square().sum(dim=-1)  # (E, T)
    num = q.G[runs, neurons].unsqueeze(1) + s.unsqueeze(-1) * Du.unsqueeze(1)  # (E, T, k)
    da_j = -num / P.unsqueeze(-1).clamp_min(torch.finfo(w.dtype).tiny)
    T = s.shape[1]
    dw = w.new_zeros(E, T, m, d)
    da = a.new_zeros(E, T, m, k)
    idx = torch.arange(E, device=w.device)
    dw[idx, :, neurons] = s.unsqueeze(-1) * u.unsqueeze(1)
    da[idx, :, neurons] = da_j
    yr = y[runs] if y.shape[0] > 1 else y
    return best_on_grid(w[runs], a[runs], _data(x, runs), yr, leak, dw, da)
