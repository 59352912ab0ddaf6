"""Descent witnesses of the sampled loss, verified as *local* decreases (theory.md 2, 3, 5.2 and 8.2 step 7).

Every witness is a perturbation ``(dw, da)`` of the classified point whose decrease of the true loss
(float64) is the one the exact local expansion of section 2 predicts, seen to persist as the step shrinks
inside the validity radius (:mod:`pipeline.stationary.local_descent`). Three kinds:

* first-order descent at non-stationary points: a straight line with ``L(theta + t d) - L = c_1 t + ...``,
  ``c_1 < 0`` the directional derivative (leading term ``c_1 t``);
* negative curvature (second-order test): a straight line in the critical cone, leading term ``c_2 t^2``
  with ``c_2 = Q(d)`` of section 8.2 step 7, residue ``|c_1| t`` (numerical stationarity);
* escape curves of zero-output neurons (section 5.2): ``dw_j = s u``, ``da_j = -(G_j + s D_j(u)) / P~`` (see
  :func:`escape_witness`), leading term proportional to ``-s^2 ||D_j(u)||^2``.

Candidates of all selected runs are evaluated in one batched forward pass; the rule and the record of a verified
witness are :func:`pipeline.stationary.local_descent.verify_witness` and its
:class:`~pipeline.stationary.local_descent.Witness`, which every classifier shares.
"""

from __future__ import annotations

import torch

from pipeline.losses import nets
from pipeline.stationary.local_descent import (
    Change,
    LineModel,
    Witness,
    geometric_steps,
    line_path,
    rounding_floor,
    sampled_validity_radius,
    verify_witness,
)
from pipeline.stationary.neurons import NeuronQuantities, direction_derivative

__all__ = ["escape_witness", "line_witness", "sampled_change"]


def _data(v: torch.Tensor, runs: torch.Tensor) -> torch.Tensor:
    return v[runs] if v.shape[0] > 1 else v


def _true_changes(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    residual: torch.Tensor,
    leak: float,
    dw: torch.Tensor,
    da: torch.Tensor,
) -> torch.Tensor:
    """True loss changes ``L(w + dw, a + da) - L(w, a)`` of ``T`` candidates of each of ``E`` runs, shape (E, T).

    Computed from two true forward passes as ``1/n sum_i r_i . delta f_i + 1/(2n) sum_i ||delta f_i||^2``
    (``delta f`` the output change, ``r`` the residual at the point): the same number as the difference of
    the two losses, without the cancellation of two large losses.

    Parameters
    ----------
    w : (E, m, d), a : (E, m, k), x : (E or 1, n, d), residual : (E, n, k)
        The points, their data and residuals.
    dw : (E, T, m, d), da : (E, T, m, k)
        The candidate perturbations.
    """
    E, T = dw.shape[:2]
    moved_w = (w.unsqueeze(1) + dw).flatten(0, 1)
    moved_a = (a.unsqueeze(1) + da).flatten(0, 1)
    xr = x.repeat_interleave(T, dim=0) if x.shape[0] > 1 else x
    base = nets.forward(w, a, x, leak).repeat_interleave(T, dim=0)
    delta = nets.forward(moved_w, moved_a, xr, leak) - base
    r = residual.repeat_interleave(T, dim=0)
    change = (r * delta).sum(dim=(-2, -1)) + 0.5 * delta.square().sum(dim=(-2, -1))
    return (change / x.shape[-2]).reshape(E, T)


def sampled_change(w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, residual: torch.Tensor, leak: float) -> Change:
    """The sampled loss's :data:`~pipeline.stationary.local_descent.Change` at ``E`` points (:func:`_true_changes`)."""
    return lambda dw, da: _true_changes(w, a, x, residual, leak, dw, da)


def _line_model(
    x: torch.Tensor,
    a: torch.Tensor,
    z: torch.Tensor,
    kink: torch.Tensor,
    residual: torch.Tensor,
    leak: float,
    dw: torch.Tensor,
    da: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coefficients ``c_1, c_2`` of ``L(theta + t d) - L = c_1 t + c_2 t^2 + O(t^3)`` inside the radius, (E,) each.

    ``n c_1 = sum_j [da_j . G_j + g_j(dw_j)]`` and ``n c_2 = sum_j da_j . D_j(dw_j) + 1/2 sum_i ||delta f_i||^2``
    with ``delta f_i = sum_j [da_j rho_ij + a_j phi_ij(dw_j)]`` (section 2, exact up to the ``t^3, t^4``
    terms of ``||delta f||^2``).
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
    n = x.shape[-2]
    return c1 / n, c2 / n


def line_witness(
    q: NeuronQuantities,
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    leak: float,
    runs: torch.Tensor,
    dw: torch.Tensor,
    da: torch.Tensor,
    order: int,
) -> Witness:
    """Verify straight-line witnesses ``t (dw, da)`` of the selected runs.

    Parameters
    ----------
    q
        Neuron quantities of the whole batch (the point, its kinks and residuals).
    w, a, x
        The whole batch's points and data.
    runs : (E,)
        Selected runs.
    dw : (E, m, d), da : (E, m, k)
        Directions (any scale).
    order
        1: a first-order descent (leading ``c_1 t``); 2: negative curvature (leading ``c_2 t^2``, residue ``|c_1| t``).
    """
    wr, ar, xr = w[runs], a[runs], _data(x, runs)
    z, kink, residual = q.z[runs], q.kink[runs], q.residual[runs]
    c1, c2 = _line_model(xr, ar, z, kink, residual, leak, dw, da)
    size = torch.sqrt(dw.square().sum(dim=(-2, -1)) + da.square().sum(dim=(-2, -1))).clamp_min(
        torch.finfo(w.dtype).tiny
    )
    scale = torch.sqrt(wr.square().sum(dim=(-2, -1)) + ar.square().sum(dim=(-2, -1))).clamp_min(1.0)
    radius = sampled_validity_radius(z, kink, xr, dw)
    start = torch.minimum(0.5 * radius, scale / size)
    if order == 1:
        start = torch.minimum(start, torch.where((c2 > 0) & (c1 < 0), -c1 / c2, torch.inf))
    steps = geometric_steps(start)
    zero = torch.zeros_like(c1)
    if order == 1:
        model = LineModel(claim=torch.stack([zero, c1], dim=-1), rest=torch.stack([zero, zero, c2], dim=-1))
    else:
        model = LineModel(claim=torch.stack([zero, zero, c2], dim=-1), residue=torch.stack([zero, c1], dim=-1))
    floor = rounding_floor(q.loss[runs], q.loss_floor[runs])
    change = sampled_change(wr, ar, xr, residual, leak)
    return verify_witness(line_path(dw, da), change, model, steps, floor, radius * size)


def escape_witness(
    q: NeuronQuantities,
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    leak: float,
    runs: torch.Tensor,
    neurons: torch.Tensor,
    u: torch.Tensor,
) -> Witness:
    """Section 5.2 escape curve for an escape neuron ``j`` with ``a_j = 0`` (one neuron per selected run).

    ``dw_j = s u`` and ``da_j = -(G_j + s D_j(u)) / P~`` for ``s <= s_0`` (half the validity radius, at most
    the parameter scale), with ``P~ = sum_i rho_ij^2 + s_0^2 sum_i phi_ij(u)^2``, so the perturbation is
    ``O(s)`` also for dead or zero neurons (``rho_ij = 0``). With ``P(s) = sum_i (rho_ij + s phi_ij(u))^2 <= 2 P~``
    the exact change inside the radius is ``-||G_j + s D_j(u)||^2 (2 P~ - P(s)) / (2 n P~^2) < 0``. The claim
    is its ``s^2 ||D_j(u)||^2`` part (the escape); the part of ``G_j`` (moving ``a_j`` alone at a numerically
    stationary point) is the residue.
    """
    E = runs.numel()
    m, d = w.shape[-2:]
    k = a.shape[-1]
    n = x.shape[-2]
    xb = x[runs] if x.shape[0] > 1 else x[0].expand(E, -1, -1)
    wr, ar = w[runs], a[runs]
    zz, kk = q.z[runs, :, neurons], q.kink[runs, :, neurons]
    direction = torch.zeros_like(wr)
    direction[torch.arange(E, device=w.device), neurons] = u
    radius = sampled_validity_radius(q.z[runs], q.kink[runs], xb, direction)
    scale = torch.sqrt(wr.square().sum(dim=(-2, -1)) + ar.square().sum(dim=(-2, -1))).clamp_min(1.0)
    s0 = torch.minimum(0.5 * radius, scale)
    s = geometric_steps(s0)  # (E, T)
    Du = direction_derivative(u.unsqueeze(1), xb, q.residual[runs], zz, kk, leak).squeeze(1)  # (E, k)
    t = torch.einsum("ed,end->en", u, xb)
    phi = torch.where(kk, torch.where(t > 0, t, leak * t), torch.where(zz > 0, t, leak * t))  # (E, n)
    rho = q.rho[runs, :, neurons]
    P_ref = rho.square().sum(dim=-1) + s0.square() * phi.square().sum(dim=-1)  # (E,)
    P_ref = P_ref.clamp_min(torch.finfo(w.dtype).tiny)
    G = q.G[runs, neurons]  # (E, k)
    idx = torch.arange(E, device=w.device)

    def path(steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dw = w.new_zeros(E, steps.shape[1], m, d)
        da = a.new_zeros(E, steps.shape[1], m, k)
        dw[idx, :, neurons] = steps.unsqueeze(-1) * u.unsqueeze(1)
        da[idx, :, neurons] = -(G.unsqueeze(1) + steps.unsqueeze(-1) * Du.unsqueeze(1)) / P_ref[:, None, None]
        return dw, da

    # (2 P~ - P(s)) / (2 n P~^2) = f_0 + f_1 s + f_2 s^2 with P(s) = sum_i (rho_ij + s phi_ij(u))^2
    f = torch.stack(
        [2 * P_ref - rho.square().sum(dim=-1), -2 * (rho * phi).sum(dim=-1), -phi.square().sum(dim=-1)], dim=-1
    ) / (2 * n * P_ref.square().unsqueeze(-1))  # (E, 3)
    zero = torch.zeros_like(s0)
    escape = -Du.square().sum(dim=-1)
    gg, gd = G.square().sum(dim=-1), 2 * (G * Du).sum(dim=-1)
    model = LineModel(
        claim=torch.stack([zero, zero, escape * f[:, 0], escape * f[:, 1], escape * f[:, 2]], dim=-1),
        residue=-torch.stack(
            [gg * f[:, 0], gg * f[:, 1] + gd * f[:, 0], gg * f[:, 2] + gd * f[:, 1], gd * f[:, 2]], dim=-1
        ),
    )
    floor = rounding_floor(q.loss[runs], q.loss_floor[runs])
    change = sampled_change(wr, ar, _data(x, runs), q.residual[runs], leak)
    radius_norm = _escape_radius_norm(radius, u, G, Du, P_ref)
    return verify_witness(path, change, model, s, floor, radius_norm)


def _escape_radius_norm(
    radius: torch.Tensor, u: torch.Tensor, G: torch.Tensor, Du: torch.Tensor, P_ref: torch.Tensor
) -> torch.Tensor:
    """Norm of the escape perturbation at ``s`` = the validity radius, (E,) (inf if unbounded)."""
    r = torch.where(torch.isfinite(radius), radius, 0.0)
    da = (G + r.unsqueeze(-1) * Du) / P_ref.unsqueeze(-1)
    norm = torch.sqrt(r**2 * u.square().sum(dim=-1) + da.square().sum(dim=-1))
    return torch.where(torch.isfinite(radius), norm, torch.inf)
