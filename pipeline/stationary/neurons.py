"""Per-neuron first-order objects at a snapped point (theory.md sections 1, 4 and 8.1).

Everything is batched over the run axis ``R`` with torch einsums; shapes: ``x`` (R or 1, n, d),
``y`` (R or 1, n, k), ``w`` (R, m, d), ``a`` (R, m, k), kink masks (R, n, m).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from pipeline.stationary import labels
from pipeline.stationary.kinks import activation_parts, data_scales

__all__ = [
    "FitQuantities",
    "NeuronQuantities",
    "direction_derivative",
    "fit_quantities",
    "line_sums",
    "neuron_quantities",
    "parallel_inputs",
    "select_runs",
]

_PARALLEL_COS = 1.0 - 1e-9


@dataclass(frozen=True)
class NeuronQuantities:
    """Per-neuron quantities (sums over data points, no ``1/n``).

    Attributes
    ----------
    z, rho, slope : (R, n, m)
        Pre-activations (exactly 0 on kinks), ``rho(z_ij)`` and the linear-part slope
        (1 on ``I_+``, ``leak`` on ``I_- u I_0``).
    kink, pos, neg : (R, n, m)
        ``I_0``, ``I_+``, ``I_-`` masks.
    residual : (R, n, k)
        ``r_i = f(x_i) - y_i``.
    loss : (R,)
        ``1/(2n) ||R||_F^2``.
    c : (R, n, m)
        ``c_ij = a_j . r_i``.
    gamma : (R, n, m)
        ``(1 - leak) c_ij`` on kinks, 0 elsewhere.
    G : (R, m, k)
        ``sum_i r_i rho_ij``.
    B, B_tilde : (R, m, k, d)
        Linear part of ``D_j`` and its symmetric variant (kink slope ``(1 + leak) / 2``).
    p : (R, m, d)
        ``B_j^T a_j``.
    x_norm : (R, n)
        ``||x_i||``.
    mu : (R, m)
        Validity radius ``min_{i not in I_0} |z_ij| / ||x_i||`` (inf if none).
    s_x, s_y, r_norm : (R,)
        Data scales and ``||R||_F``.
    loss_floor : (R,)
        Float-noise floor of the computed loss: ``1/2 (64 m eps s_f)^2`` with
        ``s_f^2 = mean_i (sum_j ||a_j|| ||w_j|| ||x_i||)^2`` (an output is a sum of ``m`` terms whose rounding
        is relative to ``||a_j|| ||w_j|| ||x_i||``, not to ``|rho_ij|``: ``w_j . x_i`` may cancel), so losses
        below the floor are indistinguishable from 0; this matters when ``y = 0``.
    a_zero, w_zero : (R, m)
        Exactly-zero output / input weights.
    roles : (R, m)
        ``labels.ROLE`` codes.
    """

    z: torch.Tensor
    rho: torch.Tensor
    slope: torch.Tensor
    kink: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor
    residual: torch.Tensor
    loss: torch.Tensor
    c: torch.Tensor
    gamma: torch.Tensor
    G: torch.Tensor
    B: torch.Tensor
    B_tilde: torch.Tensor
    p: torch.Tensor
    x_norm: torch.Tensor
    mu: torch.Tensor
    s_x: torch.Tensor
    s_y: torch.Tensor
    r_norm: torch.Tensor
    loss_floor: torch.Tensor
    a_zero: torch.Tensor
    w_zero: torch.Tensor
    roles: torch.Tensor


@dataclass(frozen=True)
class FitQuantities:
    """The forward pass of a snapped point: what decides output stationarity and zero loss.

    The fields mean what they mean in :class:`NeuronQuantities`.

    Attributes
    ----------
    z, rho, slope, pos : (R, n, m)
    residual : (R, n, k)
    G : (R, m, k)
    loss, s_x, s_y, r_norm, loss_floor : (R,)
    """

    z: torch.Tensor
    rho: torch.Tensor
    slope: torch.Tensor
    pos: torch.Tensor
    residual: torch.Tensor
    G: torch.Tensor
    loss: torch.Tensor
    s_x: torch.Tensor
    s_y: torch.Tensor
    r_norm: torch.Tensor
    loss_floor: torch.Tensor


def fit_quantities(
    w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor, kink: torch.Tensor, leak: float
) -> FitQuantities:
    """Forward pass, residuals, ``G_j``, loss and scales at the (already snapped) point ``(w, a)``.

    :func:`neuron_quantities` builds on exactly these tensors, so a screen that uses only them
    sees bit-identical values.
    """
    runs = w.shape[0]
    z = torch.matmul(x, w.transpose(-1, -2))
    z = torch.where(kink, torch.zeros_like(z), z)
    pos, slope, rho = activation_parts(z, leak)
    residual = torch.matmul(rho, a) - y
    residual = residual.expand(runs, -1, -1) if residual.shape[0] != runs else residual
    G = torch.matmul(rho.transpose(-1, -2), residual)
    xb = x.expand(runs, -1, -1) if x.shape[0] != runs else x
    s_x, s_y = data_scales(xb, y.expand(runs, -1, -1) if y.shape[0] != runs else y)
    r_norm = residual.square().sum(dim=(-2, -1)).sqrt()
    # rounding of z_ij is relative to ||w_j|| ||x_i|| (not |z_ij|: w_j . x_i may cancel)
    amplitude = (w.norm(dim=-1) * a.norm(dim=-1)).sum(dim=-1)  # (R,)
    s_f2 = amplitude.square() * xb.square().sum(dim=-1).mean(dim=-1)
    loss_floor = 0.5 * (64 * a.shape[-2] * torch.finfo(z.dtype).eps) ** 2 * s_f2
    return FitQuantities(
        z=z,
        rho=rho,
        slope=slope,
        pos=pos,
        residual=residual,
        G=G,
        loss=0.5 * r_norm.square() / x.shape[-2],
        s_x=s_x,
        s_y=s_y,
        r_norm=r_norm,
        loss_floor=loss_floor,
    )


def neuron_quantities(
    w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor, kink: torch.Tensor, leak: float
) -> NeuronQuantities:
    """Compute all per-neuron quantities at the (already snapped) point ``(w, a)``."""
    fit = fit_quantities(w, a, x, y, kink, leak)
    z, pos, slope, residual = fit.z, fit.pos, fit.slope, fit.residual
    neg = (z < 0) & ~kink
    xb = x.expand(w.shape[0], -1, -1) if x.shape[0] != w.shape[0] else x
    c = torch.matmul(residual, a.transpose(-1, -2))
    gamma = (1.0 - leak) * c * kink.to(z.dtype)
    B = torch.einsum("rnm,rnk,rnd->rmkd", slope, residual, xb)
    kink_rx = torch.einsum("rnm,rnk,rnd->rmkd", kink.to(z.dtype), residual, xb)
    B_tilde = B + 0.5 * (1.0 - leak) * kink_rx
    p = torch.einsum("rnm,rnd->rmd", slope * c, xb)
    x_norm = xb.norm(dim=-1).unsqueeze(-1)
    ratio = torch.where(kink | (x_norm == 0), torch.full_like(z, float("inf")), z.abs() / x_norm)
    mu = ratio.amin(dim=-2)
    a_zero = (a == 0).all(dim=-1)
    w_zero = (w == 0).all(dim=-1)
    roles = _roles(pos, kink, a_zero, w_zero, leak)
    return NeuronQuantities(
        z=z,
        rho=fit.rho,
        slope=slope,
        kink=kink,
        pos=pos,
        neg=neg,
        residual=residual,
        loss=fit.loss,
        c=c,
        gamma=gamma,
        G=fit.G,
        B=B,
        B_tilde=B_tilde,
        p=p,
        x_norm=x_norm.squeeze(-1),
        mu=mu,
        s_x=fit.s_x,
        s_y=fit.s_y,
        r_norm=fit.r_norm,
        loss_floor=fit.loss_floor,
        a_zero=a_zero,
        w_zero=w_zero,
        roles=roles,
    )


def select_runs(q: NeuronQuantities, runs: torch.Tensor) -> NeuronQuantities:
    """The quantities of the runs ``runs`` (sorted, distinct indices), ``q`` itself if that is every run."""
    if runs.numel() == q.loss.shape[0]:
        return q
    return NeuronQuantities(**{f.name: getattr(q, f.name)[runs] for f in fields(NeuronQuantities)})


def _roles(
    pos: torch.Tensor, kink: torch.Tensor, a_zero: torch.Tensor, w_zero: torch.Tensor, leak: float
) -> torch.Tensor:
    """Neuron roles (``labels.ROLE`` codes), (R, m); the first matching rule wins."""
    any_pos = pos.any(dim=-2)
    any_kink = kink.any(dim=-2)
    role = torch.where(any_kink, labels.code(labels.ROLE, "active_kinked"), labels.code(labels.ROLE, "active_smooth"))
    role = torch.where(a_zero, labels.code(labels.ROLE, "zero_output"), role)
    if leak == 0:
        dead = ~any_pos & ~w_zero
        role = torch.where(dead & ~any_kink, labels.code(labels.ROLE, "dead"), role)
        role = torch.where(dead & any_kink, labels.code(labels.ROLE, "dead_touching"), role)
    role = torch.where(w_zero, labels.code(labels.ROLE, "zero_input"), role)
    role = torch.where(w_zero & a_zero, labels.code(labels.ROLE, "zero"), role)
    return role.to(torch.int8)


def parallel_inputs(x: torch.Tensor) -> torch.Tensor:
    """``par[r, i, l]``: inputs ``x_i`` and ``x_l`` lie on one line through 0 (either sign), (R or 1, n, n).

    Zero inputs are parallel to nothing (they never contribute).
    """
    norm = x.norm(dim=-1, keepdim=True)
    unit = x / norm.clamp_min(torch.finfo(x.dtype).tiny)
    cos = (unit @ unit.transpose(-1, -2)).abs()
    nonzero = norm.squeeze(-1) > 0
    parallel: torch.Tensor = (cos >= _PARALLEL_COS) & nonzero.unsqueeze(-1) & nonzero.unsqueeze(-2)
    return parallel


def line_sums(values: torch.Tensor, x: torch.Tensor, kink: torch.Tensor, par: torch.Tensor) -> torch.Tensor:
    """Sums ``sum_{l in I_0^j on the line of x_i} ||x_l|| v_lj`` for every ``(i, j)``.

    Parameters
    ----------
    values : (R, n, m, k) or (R, n, m)
        Per-point, per-neuron values ``v_lj`` (vectors or scalars).
    x : (R or 1, n, d)
    kink : (R, n, m)
    par : (R or 1, n, n)
        Output of :func:`parallel_inputs`.

    Returns
    -------
    Tensor of the shape of ``values``; entries with ``i`` not a kink of ``j`` are zero.

    When no two inputs share a line (``par`` diagonal, the rule for data with a bias column and
    distinct points) every line holds one point and its sum is that point's own term: no product
    over the points is formed (equal values; a zero may differ in sign).
    """
    scalar = values.dim() == 3
    v = values.unsqueeze(-1) if scalar else values
    weight = (kink.to(v.dtype) * x.norm(dim=-1).unsqueeze(-1)).unsqueeze(-1)
    weighted = v * weight
    runs, n, m, k = weighted.shape
    if _is_diagonal(par):
        summed = weighted * par.diagonal(dim1=-2, dim2=-1).to(v.dtype)[..., None, None]
    else:
        summed = torch.matmul(par.to(v.dtype), weighted.reshape(runs, n, m * k)).reshape(runs, n, m, k)
    summed = summed * kink.unsqueeze(-1).to(v.dtype)
    result: torch.Tensor = summed.squeeze(-1) if scalar else summed
    return result


def _is_diagonal(par: torch.Tensor) -> bool:
    """No input is parallel to another one (``par`` (R or 1, n, n) has no off-diagonal entry)."""
    off = par.clone()
    off.diagonal(dim1=-2, dim2=-1).fill_(False)
    return not bool(off.any())


def direction_derivative(
    u: torch.Tensor,
    x: torch.Tensor,
    residual: torch.Tensor,
    z: torch.Tensor,
    kink: torch.Tensor,
    leak: float,
) -> torch.Tensor:
    """``D_j(u) = sum_i r_i rho'(z_ij; x_i . u)`` for a batch of selected neurons and directions.

    Parameters
    ----------
    u : (E, S, d)
        ``S`` directions for each of ``E`` selected neurons.
    x : (E, n, d), residual : (E, n, k), z : (E, n), kink : (E, n)
        Data, residuals and the neuron's pre-activations / kink mask, gathered per selected neuron.

    Returns
    -------
    (E, S, k)
    """
    t = torch.matmul(u, x.transpose(-1, -2))  # (E, S, n)
    zz = z.unsqueeze(-2)
    kk = kink.unsqueeze(-2)
    phi = torch.where(zz > 0, t, leak * t)
    phi = torch.where(kk, torch.where(t > 0, t, leak * t), phi)
    return torch.matmul(phi, residual)
