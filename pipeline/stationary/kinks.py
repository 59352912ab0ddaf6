"""Kink sets and the snapped point (theory.md section 8.2 steps 1-3).

Batched over a leading run axis ``R`` in torch (any device; dtype taken from the inputs). Data
``x`` (R or 1, n, d) and ``y`` (R or 1, n, k) broadcast over runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.losses import nets
from pipeline.stationary.tolerances import Tolerances

__all__ = [
    "SnappedPoint",
    "activation_parts",
    "data_scales",
    "kink_mask",
    "kink_scores",
    "marked_first",
    "project_onto_kinks",
    "resnap_point",
    "snap_point",
    "zero_snap",
]


ZIGZAG_STEPS = 100.0
"""A zig-zag with stationarity multiplier ``s`` needs up to ``(1 - s) / s`` steps to come back across its kink;
``100`` steps cover ``s >= 0.01``."""


def data_scales(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scales ``s_x = max_i ||x_i||`` and ``s_y = sqrt(||Y||_F^2 / n)``, each (R or 1,)."""
    s_x = x.norm(dim=-1).amax(dim=-1)
    s_y = torch.sqrt(y.square().sum(dim=(-2, -1)) / y.shape[-2])
    return s_x, s_y


def activation_parts(z: torch.Tensor, leak: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``z > 0``, the slope (1 where ``z > 0``, ``leak`` elsewhere) and ``rho(z)``, each of the shape of ``z``.

    Bit-identical to ``where(z > 0, 1, leak)`` and ``where(z > 0, z, leak * z)`` without their
    selects, which are several times slower on masks that are true for about half the entries:
    ``1 * (1 - leak) + leak`` rounds to exactly 1 for every ``leak`` in [0, 1) (the rounding error of
    ``1 - leak`` is at most half an ulp of 1 from below), ``0 * (1 - leak) + leak = leak``, ``z * 1 = z``
    and ``z * leak = leak * z``.
    """
    pos = z > 0
    slope = pos.to(z.dtype).mul_(1.0 - leak).add_(leak)
    return pos, slope, z * slope


def kink_mask(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    leak: float,
    tol: Tolerances,
    learning_rate: float | None,
) -> torch.Tensor:
    """Kink sets ``I_0^j`` with the tolerance rule of step 2, boolean (R, n, m).

    ``i`` is a kink point of neuron ``j`` iff ``|z_ij| <= tol.kink ||w_j|| ||x_i||`` or, with a learning
    rate, the point may be zig-zagging across that kink: ``|z_ij| <= C J_ij`` (``J = eta (1 - leak) |c_ij|
    ||x_i||^2 / n`` the jump of a step that crosses, ``C = tol.kink_factor``, ``c_ij = a_j . r_i``) *and* the next
    gradient-descent step heads for the kink, reaching it within ``ZIGZAG_STEPS`` steps at its present rate
    (a zig-zag moves every iterate towards the kink; a neuron that sits still near it is not zig-zagging).
    The argument is in docs/classifier-api.md. A zero neuron has every data point on its kink.
    """
    absz, bound = _scores(w, a, x, y, leak, tol, learning_rate)
    mask: torch.Tensor = absz <= bound
    return mask


def kink_scores(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    leak: float,
    tol: Tolerances,
    learning_rate: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``|z_ij|`` and the bound of :func:`kink_mask`, each (R, n, m), at the zero-snapped point.

    Both terms of the bound are proportional to the kink tolerances, so the kink sets at the
    tolerances scaled by ``f`` are ``|z| <= f * bound`` (the sensitivity re-runs need no recomputation).
    """
    w, a = zero_snap(w, a, x, y, leak, tol)
    return _scores(w, a, x, y, leak, tol, learning_rate)


def _scores(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    leak: float,
    tol: Tolerances,
    learning_rate: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    z = nets.pre_activations(w, x)
    w_norm = w.norm(dim=-1).unsqueeze(-2)
    x_norm = x.norm(dim=-1).unsqueeze(-1)
    bound = tol.kink * w_norm * x_norm
    if learning_rate is not None and learning_rate > 0:
        _, slope, rho = activation_parts(z, leak)
        c = torch.matmul(torch.matmul(rho, a) - y, a.transpose(-1, -2))  # (R, n, m): a_j . r_i
        grad_w = torch.matmul((c * slope).transpose(-1, -2), x) / x.shape[-2]  # (R, m, d): dL/dw_j
        rate = torch.matmul(x, grad_w.transpose(-1, -2))  # (R, n, m): a GD step changes z_ij by -eta * rate
        jump = learning_rate * (1.0 - leak) * c.abs() * x_norm.square() / x.shape[-2]
        moving = (z * rate >= 0) & (z.abs() <= ZIGZAG_STEPS * learning_rate * rate.abs())
        bound = torch.maximum(bound, torch.where(moving, tol.kink_factor * jump, 0.0))
    return z.abs(), bound


def marked_first(mask: torch.Tensor, width: int) -> torch.Tensor:
    """First ``width`` entries of the stable descending argsort of the boolean ``mask`` (E, n), (E, width).

    That is the indices of the marked entries in increasing order, then the unmarked ones in
    increasing order; computed by prefix counts and one scatter (no sort).
    """
    marked = mask.to(torch.int64).cumsum(dim=-1)
    index = torch.arange(mask.shape[-1], device=mask.device).expand_as(marked)
    target = torch.where(mask, marked - 1, marked[:, -1:] + index - marked)
    return torch.empty_like(target).scatter_(1, target, index)[:, :width]


def project_onto_kinks(w: torch.Tensor, x: torch.Tensor, kink: torch.Tensor) -> torch.Tensor:
    """Project every ``w_j`` onto ``{v : v . x_i = 0 for i in I_0^j}``, shape (R, m, d).

    ``w_j <- w_j - P_j w_j`` with ``P_j`` the orthogonal projector onto ``span(x_i : i in I_0^j)``.
    The span's orthonormal basis comes from a batched Gram-Schmidt pass over the (few) kink rows,
    repeated once for accuracy; a row whose remainder is below ``1e-6`` of its norm adds nothing
    (numerically dependent). Only neurons with kinks and ``w_j != 0`` are touched.
    """
    has = kink.any(dim=-2) & (w != 0).any(dim=-1)  # (R, m)
    if not bool(has.any()):
        return w
    runs, neurons = torch.nonzero(has, as_tuple=True)
    d = x.shape[-1]
    sel = kink[runs, :, neurons]  # (E, n)
    width = int(sel.sum(dim=-1).max())
    order = marked_first(sel, width)
    valid = sel.gather(1, order).to(x.dtype)
    if x.shape[0] > 1:
        rows = x[runs].gather(1, order.unsqueeze(-1).expand(-1, -1, d))
    else:
        rows = x[0][order]
    rows = rows * valid.unsqueeze(-1)  # (E, K, d)
    basis = _kink_basis(rows, valid.sum(dim=-1))
    wj = w[runs, neurons]
    shift = torch.einsum("ekd,ek->ed", basis, torch.einsum("ekd,ed->ek", basis, wj))
    out = w.clone()
    out[runs, neurons] = wj - shift
    return out


def _kink_basis(rows: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Gram-Schmidt basis (E, K, d) of the first ``count[e]`` rows of ``rows[e]`` (zero rows elsewhere).

    Step ``t`` touches only the problems with more than ``t`` rows: for the others row ``t`` is zero
    padding, its remainder is zero and it adds nothing, so skipping them changes no value.
    """
    basis = torch.zeros_like(rows)
    for t in range(rows.shape[1]):
        live = (count > t).nonzero().flatten()
        b = basis[live]
        v = rows[live, t]
        size = v.norm(dim=-1, keepdim=True)
        for _ in range(2):
            v = v - torch.einsum("ekd,ek->ed", b, torch.einsum("ekd,ed->ek", b, v))
        norm = v.norm(dim=-1, keepdim=True)
        keep = norm > 1e-6 * size
        basis[live, t] = torch.where(keep, v / norm.clamp_min(torch.finfo(rows.dtype).tiny), torch.zeros_like(v))
    return basis


@dataclass(frozen=True)
class SnappedPoint:
    """The point actually classified.

    Attributes
    ----------
    w : (R, m, d)
        Input weights after amplitude snapping (plateau mode) and projection onto the kinks.
    a : (R, m, k)
        Output weights after zero snapping.
    kink : (R, n, m)
        Kink sets ``I_0^j``.
    """

    w: torch.Tensor
    a: torch.Tensor
    kink: torch.Tensor


def snap_point(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    leak: float,
    tol: Tolerances,
    learning_rate: float | None,
    kink: torch.Tensor | None = None,
) -> SnappedPoint:
    """Zero snapping (step 3), kink detection and projection (step 2).

    End points: only output weights with ``||a_j|| <= tol.zero_output s_y`` become exactly zero
    (small output weights are never snapped, section 7.3). Plateau mode additionally zeroes
    neurons of amplitude ``||w_j|| ||a_j|| s_x <= tol.amplitude s_y`` (both ``w_j`` and ``a_j``).
    ``kink`` (R, n, m): precomputed kink sets of the zero-snapped point (see :func:`kink_scores`).
    """
    w, a = zero_snap(w, a, x, y, leak, tol)
    if kink is None:
        kink = kink_mask(w, a, x, y, leak, tol, learning_rate)
    w = project_onto_kinks(w, x, kink)
    return SnappedPoint(w=w, a=a, kink=kink)


def resnap_point(
    base: SnappedPoint,
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    leak: float,
    tol: Tolerances,
    kink: torch.Tensor,
) -> SnappedPoint:
    """:func:`snap_point` with the kink sets ``kink``, given the snapped point ``base`` at other kink sets.

    ``base`` holds the same runs; ``tol`` may differ from its tolerances in the kink terms only. Zero
    snapping does not involve them, and each ``w_j`` is projected onto its own kinks alone, so only
    the neurons whose kink set changed are projected anew; the others keep their values from ``base``.
    """
    changed = (kink != base.kink).any(dim=-2)  # (R, m)
    if not bool(changed.any()):
        return SnappedPoint(w=base.w, a=base.a, kink=kink)
    w, _ = zero_snap(w, a, x, y, leak, tol)
    projected = project_onto_kinks(w, x, kink & changed.unsqueeze(-2))
    return SnappedPoint(w=torch.where(changed.unsqueeze(-1), projected, base.w), a=base.a, kink=kink)


def zero_snap(
    w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor, leak: float, tol: Tolerances
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 3: exact zeros for tiny output weights (and tiny amplitudes in plateau mode).

    In plateau mode a tiny neuron becomes the zero neuron of the saddle the trajectory is near, except a
    strictly dead ReLU neuron (every pre-activation below minus the kink tolerance): it cannot grow, so only
    its output weight is zeroed; snapping its input weight would invent an escape neuron (theory.md 7.3).
    """
    s_x, s_y = data_scales(x, y)
    s_x = s_x.unsqueeze(-1)
    s_y = s_y.unsqueeze(-1)
    a_norm = a.norm(dim=-1)
    zero_a = a_norm <= tol.zero_output * s_y
    zero_w = w.norm(dim=-1) == 0
    if tol.amplitude > 0:
        small = w.norm(dim=-1) * a_norm * s_x <= tol.amplitude * s_y
        zero_a = zero_a | small
        if leak == 0.0:
            z = nets.pre_activations(w, x)
            below = z < -tol.kink * w.norm(dim=-1).unsqueeze(-2) * x.norm(dim=-1).unsqueeze(-1)
            small = small & ~below.all(dim=-2)
        zero_w = zero_w | small
    a = torch.where(zero_a.unsqueeze(-1), torch.zeros_like(a), a)
    w = torch.where(zero_w.unsqueeze(-1), torch.zeros_like(w), w)
    return w, a
