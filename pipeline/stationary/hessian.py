"""The exact Hessian of the sampled loss on one linear piece of the network (one activation pattern).

``H = 1/n (J^T J + C)``: ``J`` the Jacobian of the outputs in the coordinates ``(vec W, vec A)`` and ``C``
the cross blocks ``d^2 L / da_j dw_j`` (theory.md section 2). Used by the second-order test
(:mod:`pipeline.stationary.second_order`) and by the piecewise test on the pieces of a kinked point
(:mod:`pipeline.stationary.pieces`), each piece with its own kink slopes and cross blocks.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.stationary.neurons import NeuronQuantities

__all__ = ["analytic_hessian", "hessian_from"]


def analytic_hessian(q: NeuronQuantities, a: torch.Tensor, x: torch.Tensor, r: int) -> np.ndarray:
    """``H`` of run ``r`` in the coordinates ``(vec W, vec A)``, shape (m d + m k, m d + m k)."""
    xr = (x[r] if x.shape[0] > 1 else x[0]).cpu().numpy()
    B = q.B[r].cpu().numpy() * (~q.a_zero[r].cpu().numpy())[:, None, None]
    return hessian_from(a[r].cpu().numpy(), q.slope[r].cpu().numpy(), q.rho[r].cpu().numpy(), xr, B)


def hessian_from(A: np.ndarray, slope: np.ndarray, rho: np.ndarray, xr: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """``1/n (J^T J + C)``: output weights (m, k), slopes and ``rho`` (n, m), data (n, d), cross blocks (m, k, d)."""
    n, d = xr.shape
    m, k = A.shape
    Jw = np.einsum("mk,nm,nd->nkmd", A, slope, xr).reshape(n * k, m * d)
    Ja = np.einsum("nm,kl->nkml", rho, np.eye(k)).reshape(n * k, m * k)
    J = np.hstack([Jw, Ja])
    H = J.T @ J
    for j in range(m):
        wj = slice(j * d, (j + 1) * d)
        aj = slice(m * d + j * k, m * d + (j + 1) * k)
        H[aj, wj] += cross[j]
        H[wj, aj] += cross[j].T
    hessian: np.ndarray = H / n
    return hessian
