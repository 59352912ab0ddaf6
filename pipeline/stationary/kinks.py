"""Kink sets and the snapped point (theory.md section 8.2 steps 1-3).

Batched over a leading run axis ``R`` in torch (any device; dtype taken from the inputs). Data
``x`` (R or 1, n, d) and ``y`` (R or 1, n, k) broadcast over runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline import nets
from pipeline.stationary.tolerances import Tolerances

__all__ = ["SnappedPoint", "data_scales", "kink_mask", "project_onto_kinks", "snap_point"]


def data_scales(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scales ``s_x = max_i ||x_i||`` and ``s_y = sqrt(||Y||_F^2 / n)``, each (R or 1,)."""
    s_x = x.norm(dim=-1).amax(dim=-1)
    s_y = torch.sqrt(y.square().sum(dim=(-2, -1)) / y.shape[-2])
    return s_x, s_y


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

    ``i`` is a kink point of neuron ``j`` iff ``|z_ij| <= tau_z(i, j) ||w_j|| ||x_i||`` with
    ``tau_z = max(tol.kink, C eta (1 - leak) |c_ij| ||x_i|| / (n ||w_j||))`` and ``c_ij = a_j . r_i``
    (residuals of the unsnapped point). A zero neuron has every data point on its kink.
    """
    z = nets.pre_activations(w, x)
    w_norm = w.norm(dim=-1).unsqueeze(-2)  # (R, 1, m)
    x_norm = x.norm(dim=-1).unsqueeze(-1)  # (R or 1, n, 1)
    bound = tol.kink * w_norm * x_norm
    if learning_rate is not None and learning_rate > 0:
        residual = torch.matmul(nets.activation(z, leak), a) - y
        c = torch.matmul(residual, a.transpose(-1, -2))
        zigzag = tol.kink_factor * learning_rate * (1.0 - leak) * c.abs() * x_norm.square() / x.shape[-2]
        bound = torch.maximum(bound, zigzag)
    return z.abs() <= bound


def project_onto_kinks(w: torch.Tensor, x: torch.Tensor, kink: torch.Tensor) -> torch.Tensor:
    """Project every ``w_j`` onto ``{v : v . x_i = 0 for i in I_0^j}``, shape (R, m, d).

    ``w_j <- w_j - P_j w_j`` with ``P_j`` the orthogonal projector onto ``span(x_i : i in I_0^j)``,
    computed from the eigendecomposition of the (d, d) Gram matrix of the kink rows; only neurons
    with kinks are touched.
    """
    has = kink.any(dim=-2)  # (R, m)
    if not bool(has.any()):
        return w
    runs, neurons = torch.nonzero(has, as_tuple=True)
    xr = x[runs] if x.shape[0] > 1 else x[0].expand(runs.numel(), -1, -1)  # (E, n, d)
    rows = xr * kink[runs, :, neurons].unsqueeze(-1).to(x.dtype)
    gram = rows.transpose(-1, -2) @ rows  # (E, d, d)
    evals, evecs = torch.linalg.eigh(gram)
    keep = evals > 1e-12 * evals.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    basis = evecs * keep.unsqueeze(-2).to(x.dtype)
    wj = w[runs, neurons]
    shift = (basis @ (basis.transpose(-1, -2) @ wj.unsqueeze(-1))).squeeze(-1)
    out = w.clone()
    out[runs, neurons] = wj - shift
    return out


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
) -> SnappedPoint:
    """Zero snapping (step 3), kink detection and projection (step 2).

    End points: only output weights with ``||a_j|| <= tol.zero_output s_y`` become exactly zero
    (small output weights are never snapped, section 7.3). Plateau mode additionally zeroes
    neurons of amplitude ``||w_j|| ||a_j|| s_x <= tol.amplitude s_y`` (both ``w_j`` and ``a_j``).
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
        zero_w = zero_w | small
    a = torch.where(zero_a.unsqueeze(-1), torch.zeros_like(a), a)
    w = torch.where(zero_w.unsqueeze(-1), torch.zeros_like(w), w)
    kink = kink_mask(w, a, x, y, leak, tol, learning_rate)
    w = project_onto_kinks(w, x, kink)
    return SnappedPoint(w=w, a=a, kink=kink)
