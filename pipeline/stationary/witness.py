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

Candidates of all selected runs are evaluated in one batched forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline import nets
from pipeline.stationary.local_descent import (
    LocalDescent,
    geometric_steps,
    rounding_floor,
    sampled_validity_radius,
    verify_local_descent,
)
from pipeline.stationary.neurons import NeuronQuantities, direction_derivative

__all__ = ["Witness", "escape_witness", "line_witness", "true_change", "true_changes"]


@dataclass(frozen=True)
class Witness:
    """Witnesses of selected runs.

    Attributes
    ----------
    dw : (E, m, d), da : (E, m, k)
        The perturbations at the largest verified step.
    verified : (E,)
        The decrease is local (:func:`pipeline.stationary.local_descent.verify_local_descent`).
    decrease : (E,)
        ``L(w, a) - L(w + dw, a + da)``.
    radius : (E,)
        Norm of the perturbation at the validity radius of the expansion (inf if unbounded).
    min_step : (E,)
        Norm of the perturbation at the smallest verified step.
    """

    dw: torch.Tensor
    da: torch.Tensor
    verified: torch.Tensor
    decrease: torch.Tensor
    radius: torch.Tensor
    min_step: torch.Tensor


def _data(v: torch.Tensor, runs: torch.Tensor) -> torch.Tensor:
    return v[runs] if v.shape[0] > 1 else v


def true_change(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    residual: torch.Tensor,
    leak: float,
    dw: torch.Tensor,
    da: torch.Tensor,
) -> torch.Tensor:
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


def true_changes(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    residual: torch.Tensor,
    leak: float,
    dw: torch.Tensor,
    da: torch.Tensor,
) -> torch.Tensor:
    """:func:`true_change` for ``E`` runs at once: w (E, m, d), x (E or 1, n, d), residual (E, n, k),
    dw (E, T, m, d) -> (E, T)."""
    E, T = dw.shape[:2]
    moved_w = (w.unsqueeze(1) + dw).flatten(0, 1)
    moved_a = (a.unsqueeze(1) + da).flatten(0, 1)
    xr = x.repeat_interleave(T, dim=0) if x.shape[0] > 1 else x
    base = nets.forward(w, a, x, leak).repeat_interleave(T, dim=0)
    delta = nets.forward(moved_w, moved_a, xr, leak) - base
    r = residual.repeat_interleave(T, dim=0)
    change = (r * delta).sum(dim=(-2, -1)) + 0.5 * delta.square().sum(dim=(-2, -1))
    return (change / x.shape[-2]).reshape(E, T)


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
    change = true_changes(
        wr, ar, xr, residual, leak, steps[..., None, None] * dw.unsqueeze(1), steps[..., None, None] * da.unsqueeze(1)
    )
    if order == 1:
        leading, residue, predicted = c1.unsqueeze(-1) * steps, torch.zeros_like(steps), c2.unsqueeze(-1) * steps**2
    else:
        leading = c2.unsqueeze(-1) * steps**2
        residue, predicted = c1.abs().unsqueeze(-1) * steps, c1.unsqueeze(-1) * steps
    floor = rounding_floor(q.loss[runs], q.loss_floor[runs])
    check = verify_local_descent(change, leading, residue, floor, predicted)
    return _witness(
        check, steps, steps[..., None, None] * dw.unsqueeze(1), steps[..., None, None] * da.unsqueeze(1), radius * size
    )


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
    P_ref = P_ref.clamp_min(torch.finfo(w.dtype).tiny).unsqueeze(-1)
    P = (rho.unsqueeze(1) + s.unsqueeze(-1) * phi.unsqueeze(1)).square().sum(dim=-1)  # (E, T)
    G = q.G[runs, neurons]  # (E, k)
    num = G.unsqueeze(1) + s.unsqueeze(-1) * Du.unsqueeze(1)  # (E, T, k)
    T = s.shape[1]
    dw = w.new_zeros(E, T, m, d)
    da = a.new_zeros(E, T, m, k)
    idx = torch.arange(E, device=w.device)
    dw[idx, :, neurons] = s.unsqueeze(-1) * u.unsqueeze(1)
    da[idx, :, neurons] = -num / P_ref.unsqueeze(-1)
    change = true_changes(wr, ar, _data(x, runs), q.residual[runs], leak, dw, da)
    factor = (2 * P_ref - P) / (2 * n * P_ref.square())  # (E, T), > 0
    leading = -(s**2) * Du.square().sum(dim=-1).unsqueeze(-1) * factor
    cross = (G.square().sum(dim=-1).unsqueeze(-1) + 2 * s * (G * Du).sum(dim=-1).unsqueeze(-1)) * factor
    floor = rounding_floor(q.loss[runs], q.loss_floor[runs])
    check = verify_local_descent(change, leading, cross.abs(), floor, -cross)
    return _witness(check, s, dw, da, _escape_radius_norm(radius, u, G, Du, P_ref.squeeze(-1)))


def _escape_radius_norm(
    radius: torch.Tensor, u: torch.Tensor, G: torch.Tensor, Du: torch.Tensor, P_ref: torch.Tensor
) -> torch.Tensor:
    """Norm of the escape perturbation at ``s`` = the validity radius, (E,) (inf if unbounded)."""
    r = torch.where(torch.isfinite(radius), radius, 0.0)
    da = (G + r.unsqueeze(-1) * Du) / P_ref.unsqueeze(-1)
    norm = torch.sqrt(r**2 * u.square().sum(dim=-1) + da.square().sum(dim=-1))
    return torch.where(torch.isfinite(radius), norm, torch.inf)


def _witness(
    check: LocalDescent, steps: torch.Tensor, dw: torch.Tensor, da: torch.Tensor, radius: torch.Tensor
) -> Witness:
    """Pick the largest verified step of every candidate ladder ``dw, da`` (E, T, ...)."""
    E = steps.shape[0]
    idx = torch.arange(E, device=steps.device)
    top, bottom = check.largest.clamp_min(0), check.smallest.clamp_min(0)
    norm = torch.sqrt(dw.square().sum(dim=(-2, -1)) + da.square().sum(dim=(-2, -1)))  # (E, T)
    return Witness(
        dw=dw[idx, top],
        da=da[idx, top],
        verified=check.verified,
        decrease=check.decrease,
        radius=radius,
        min_step=norm[idx, bottom],
    )
