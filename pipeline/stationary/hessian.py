"""The exact Hessian of the sampled loss on one linear piece of the network (one activation pattern), and its
flat space.

``H = 1/n (J^T J + C)``: ``J`` the Jacobian of the outputs in the coordinates ``(vec W, vec A)`` and ``C``
the cross blocks ``d^2 L / da_j dw_j`` (theory.md section 2). Used by the second-order test
(:mod:`pipeline.stationary.second_order`) and by the piecewise test on the pieces of a kinked point
(:mod:`pipeline.stationary.pieces`), each piece with its own kink slopes and cross blocks. Both restrict it to
the complement of the flat space ``T`` (:func:`flat_space`): the directions along which the loss is constant
near the point (theory.md 8.2 step 7).
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.stationary.neurons import NeuronQuantities

__all__ = ["analytic_hessian", "flat_space", "hessian_from"]


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


def flat_space(q: NeuronQuantities, w: torch.Tensor, a: torch.Tensor, r: int, leak: float) -> np.ndarray:
    """Orthonormal basis (columns) of the flat space ``T`` at run ``r``."""
    W, A = w[r].cpu().numpy(), a[r].cpu().numpy()
    m, d = W.shape
    k = A.shape[1]
    size = m * d + m * k
    vecs = []

    def unit(
        j_w: int | None = None, v_w: np.ndarray | None = None, j_a: int | None = None, v_a: np.ndarray | None = None
    ) -> np.ndarray:
        v = np.zeros(size)
        if j_w is not None:
            v[j_w * d : (j_w + 1) * d] = v_w
        if j_a is not None:
            v[m * d + j_a * k : m * d + (j_a + 1) * k] = v_a
        return v

    pattern = (q.pos[r].cpu().numpy() * 2 + q.kink[r].cpu().numpy()).T  # (m, n)
    a_zero = q.a_zero[r].cpu().numpy()
    dead = ~q.pos[r].any(dim=0).cpu().numpy() & ~q.kink[r].any(dim=0).cpu().numpy() & (leak == 0)
    for j in range(m):
        vecs.append(unit(j, W[j], j, -A[j]))
        if a_zero[j] or dead[j]:
            vecs.extend(unit(j, e) for e in np.eye(d))
        if dead[j]:
            vecs.extend(unit(j_a=j, v_a=e) for e in np.eye(k))
        for p in range(m):
            if p != j and (pattern[p] == pattern[j]).all():
                vecs.append(unit(p, -W[j], j, A[p]))
    M = np.array(vecs).T
    if M.size == 0:
        return np.zeros((size, 0))
    U, s, _ = np.linalg.svd(M, full_matrices=False)
    rank = int((s > 1e-10 * max(s.max(), 1e-300)).sum())
    return U[:, :rank]
