"""Second-order test for vector outputs (theory.md sections 5.3 and 8.2 step 7).

Used only at stationary points whose escape neurons all have ``a_j != 0``. Implemented for the
case in which the second-order form ``Q`` of the exact expansion (section 2) is a quadratic form:
every neuron with ``a_j != 0`` has no kink points, and every neuron with ``a_j = 0`` has
``D_j = 0``. Then ``Q(Delta) = 1/2 Delta^T H Delta`` with the analytic Hessian

``H = 1/n (J^T J + C)``, ``J`` the Jacobian of the outputs, ``C`` the cross blocks
``d^2 / da_j dw_j = B_j`` (zero for ``a_j = 0`` neurons, where ``D_j = 0``),

which equals ``torch.func.hessian`` of the loss in the smooth case. The flat space ``T`` holds the
per-neuron rescalings, the ``GL`` generators of neurons with equal activation patterns, the input
weights of zero-output neurons and both weights of strictly dead ReLU neurons (the loss does not
depend on them near the point). Verdicts: ``lambda_min(H) < -tau`` -> saddle (eigenvector witness,
verified by the caller); ``H >= 0`` and positive definite on ``T^perp`` -> local minimum
(``hessian_morse_bott``); ``H >= 0`` with a kernel larger than ``T`` -> the higher-order probe of
:mod:`pipeline.stationary.higher_order` on the numerical kernel (eigenvalues ``<= tau lambda_max``): a
verified cubic or quartic decrease -> saddle, ``non_strict`` (the verified curve witness in ``curve``, its
order in ``order``), otherwise ``None`` (undetermined).
Non-quadratic case (kinks on neurons with ``a_j != 0``): the piecewise test of :mod:`pipeline.stationary.pieces`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.stationary.hessian import analytic_hessian, flat_space
from pipeline.stationary.higher_order import Piece, higher_order_probe
from pipeline.stationary.local_descent import Witness, rounding_floor
from pipeline.stationary.neurons import NeuronQuantities
from pipeline.stationary.pieces import piecewise_second_order
from pipeline.stationary.witness import sampled_change

__all__ = [
    "SecondOrder",
    "quadratic_case",
    "second_order",
]


@dataclass(frozen=True)
class SecondOrder:
    """Outcome for one run.

    Attributes
    ----------
    verdict
        ``"local_min"``, ``"saddle"`` or ``None`` (undetermined).
    direction : (m, d), (m, k) or None
        Unit negative-curvature direction (strict saddles).
    curvature
        ``lambda_min(H)`` (strict saddles) or ``lambda_min`` on ``T^perp`` (minima, non-strict saddles);
        NaN otherwise.
    curve
        Verified higher-order descent, one candidate (non-strict saddles; ``direction`` is then None).
    order
        The order of that decrease (3: cubic curve, 4: quartic curve with a normal correction); 0 without one.
    """

    verdict: str | None
    direction: tuple[np.ndarray, np.ndarray] | None
    curvature: float
    curve: Witness | None = None
    order: int = 0


def quadratic_case(q: NeuronQuantities, r: int, d_zero: torch.Tensor) -> bool:
    """``Q`` is a quadratic form at run ``r``: no kinks on ``a_j != 0`` neurons, ``D_j = 0`` on ``a_j = 0``."""
    kinked = q.kink[r].any(dim=0)
    return bool(((~q.a_zero[r] & ~kinked) | (q.a_zero[r] & d_zero[r])).all())


def second_order(
    q: NeuronQuantities,
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    r: int,
    leak: float,
    d_zero: torch.Tensor,
    tol: float,
) -> SecondOrder:
    """Second-order verdict at run ``r`` (see the module docstring)."""
    if not quadratic_case(q, r, d_zero):
        if not bool((q.a_zero[r] <= d_zero[r]).all()):  # a zero-output neuron with D != 0 (handled by 5.2)
            return SecondOrder(None, None, float("nan"))
        verdict, direction, curvature = piecewise_second_order(q, w, a, x, r, leak, d_zero, tol)
        return SecondOrder(verdict, direction, curvature)
    H = analytic_hessian(q, a, x, r)
    evals, evecs = np.linalg.eigh(H)
    scale = max(float(np.abs(evals).max()), 1e-300)
    m, d = w.shape[1:]
    if evals[0] < -tol * scale:
        v = evecs[:, 0]
        return SecondOrder("saddle", (v[: m * d].reshape(m, d), v[m * d :].reshape(m, -1)), float(evals[0]))
    T = flat_space(q, w, a, r, leak)
    U, _, _ = np.linalg.svd(T, full_matrices=True)
    perp = U[:, T.shape[1] :]
    if perp.shape[1] == 0:
        return SecondOrder("local_min", None, float("inf"))
    low = float(np.linalg.eigvalsh(perp.T @ H @ perp)[0])
    if low > tol * scale:
        return SecondOrder("local_min", None, low)
    found = _probe(q, w, a, x, r, leak, evals, evecs, tol * scale)
    if found is not None:
        return SecondOrder("saddle", None, low, *found)
    return SecondOrder(None, None, float("nan"))


def _probe(
    q: NeuronQuantities,
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    r: int,
    leak: float,
    evals: np.ndarray,
    evecs: np.ndarray,
    cut: float,
) -> tuple[Witness, int] | None:
    """Higher-order probe on the kernel ``{lambda <= cut}`` of ``H = evecs diag(evals) evecs^T``."""
    xr = x[r] if x.shape[0] > 1 else x[0]
    piece = Piece(
        x=xr.cpu().numpy(),
        a=a[r].cpu().numpy(),
        z=q.z[r].cpu().numpy(),
        rho=q.rho[r].cpu().numpy(),
        slope=q.slope[r].cpu().numpy(),
        kink=q.kink[r].cpu().numpy(),
        residual=q.residual[r].cpu().numpy(),
        mu=q.mu[r].cpu().numpy(),
        leak=leak,
        loss=float(q.loss[r]),
    )
    keep = evals > cut
    pinv = (evecs[:, keep] / evals[keep]) @ evecs[:, keep].T
    scale = max(float(torch.sqrt(w[r].square().sum() + a[r].square().sum())), 1.0)

    point = slice(r, r + 1)
    change = sampled_change(w[point], a[point], xr[None], q.residual[point], leak)

    def on_device(dw: torch.Tensor, da: torch.Tensor) -> torch.Tensor:
        return change(dw.to(w.device), da.to(w.device)).cpu()

    floor = rounding_floor(q.loss[point], q.loss_floor[point]).cpu()
    return higher_order_probe(piece, evecs[:, ~keep], pinv, scale, on_device, floor)
