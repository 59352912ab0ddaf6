"""Higher-order probe of degenerate second-order points (theory.md sections 2 and 8.2 step 7).

Applies where the second-order test of :mod:`pipeline.stationary.second_order` finds ``H >= 0`` but a
kernel larger than the flat space ``T``. On the activation piece of the point the loss change is the
exact polynomial of section 2: with ``delta f_i`` the output change (linear plus bilinear in
``(Delta a, Delta w)``),

``Phi(Delta) = 1/n sum_i r_i . delta f_i + 1/(2n) sum_i ||delta f_i||^2``,

so along a curve ``Delta(t) = t u + t^2 v`` (``u`` in the numerical kernel ``K`` of ``H``) the change is a
polynomial ``sum_{p=1}^{8} c_p t^p`` whose coefficients are computed exactly. With ``H u = 0``
(and a stationary point) ``c_1 = c_2 = 0``, ``c_3 = Phi_3(u) = 1/n sum_i (J u)_i . N_i(u)``
(``N_i(u) = sum_j u_{a_j} phi_ij(u_{w_j})``, independent of ``v``) and, where ``Phi_3 = 0``,

``c_4(v) = Phi_4(u) + b(u) . v + 1/2 v^T H v``, minimised by the normal correction ``v = -H^+ b(u)``

(``Phi_4(u) = 1/(2n) sum_i ||N_i(u)||^2``, ``b(u) . v = D Phi_3(u)[v]``). A significantly negative leading
coefficient (``c_3`` on ``-sign(c_3) u``, else ``c_4``) is the claim of a curve; it is verified on the true loss
by the rule every witness obeys (:func:`pipeline.stationary.local_descent.verify_witness`), on a ladder of steps
inside the validity radius of section 2 (no sign change of a non-kink pre-activation, constant kink signs), with
the lower-order part (numerical stationarity and the curvature below the tolerance) as the residue and the
higher orders as the rest of the model. Only a verified decrease is reported (``saddle``, ``non_strict``);
nothing here ever certifies a minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.stationary.local_descent import RATIO, Change, LineModel, Witness, geometric_steps, verify_witness

__all__ = ["Piece", "curve_coefficients", "higher_order_probe", "kernel_candidates"]

_SIGNIFICANT = 1e-6
_BISECTIONS = 40
_RANDOM = 8
_PAIRWISE_MAX = 8


@dataclass(frozen=True)
class Piece:
    """The activation piece of one point (numpy float64).

    Attributes
    ----------
    x : (n, d)
        Inputs.
    a : (m, k)
        Output weights.
    z, rho, slope : (n, m)
        Pre-activations (0 on kinks), ``rho(z)`` and the slopes (1 on ``I_+``, ``leak`` elsewhere).
    kink : (n, m)
        ``I_0`` masks.
    residual : (n, k)
        ``r_i``.
    mu : (m,)
        Validity radius per neuron (``inf`` without non-kink points).
    leak, loss
        Negative-side slope and the loss at the point.
    """

    x: np.ndarray
    a: np.ndarray
    z: np.ndarray
    rho: np.ndarray
    slope: np.ndarray
    kink: np.ndarray
    residual: np.ndarray
    mu: np.ndarray
    leak: float
    loss: float

    def split(self, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(vec W, vec A)`` coordinates (m d + m k,) -> ``(dW (m, d), dA (m, k))``."""
        m, k = self.a.shape
        return vec[: m * self.x.shape[1]].reshape(m, -1), vec[m * self.x.shape[1] :].reshape(m, k)


def kernel_candidates(kernel: np.ndarray, seed: int = 0) -> np.ndarray:
    """Unit directions in the span of ``kernel`` (P, p): its columns, pairwise sums/differences, random mixes.

    Returns
    -------
    (P, C)
        Pairwise combinations only for ``p <= 8``; ``8`` seeded random combinations always.
    """
    p = kernel.shape[1]
    mixes = [np.eye(p)]
    if 1 < p <= _PAIRWISE_MAX:
        i, j = np.triu_indices(p, k=1)
        pair = np.zeros((p, i.size))
        pair[i, np.arange(i.size)] = 1.0
        mixes += [pair + np.eye(p)[:, j], pair - np.eye(p)[:, j]]
    mixes.append(np.random.default_rng(seed).normal(size=(p, _RANDOM)))
    coeff = np.hstack(mixes)
    basis: np.ndarray = kernel @ (coeff / np.linalg.norm(coeff, axis=0))
    return basis


def _kink_slopes(piece: Piece, uw: np.ndarray, vw: np.ndarray) -> np.ndarray:
    """Slopes (n, m) of the piece entered by ``t uw + t^2 vw`` for small ``t > 0`` (kinks: first non-zero sign)."""
    first, second = piece.x @ uw.T, piece.x @ vw.T
    side = np.where(first != 0, first, second) > 0
    return np.where(piece.kink, np.where(side, 1.0, piece.leak), piece.slope)


def _output_terms(piece: Piece, u: np.ndarray, v: np.ndarray) -> list[np.ndarray]:
    """Coefficients ``F_1..F_4`` (each (n, k)) of ``delta f(t) = sum_p t^p F_p`` along ``t u + t^2 v``."""
    (uw, ua), (vw, va) = piece.split(u), piece.split(v)
    s = _kink_slopes(piece, uw, vw)
    su, sv = s * (piece.x @ uw.T), s * (piece.x @ vw.T)  # (n, m): phi_ij of uw_j and vw_j
    return [
        piece.rho @ ua + su @ piece.a,
        piece.rho @ va + sv @ piece.a + su @ ua,
        sv @ ua + su @ va,
        sv @ va,
    ]


def curve_coefficients(piece: Piece, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Exact coefficients ``c_0..c_8`` (9,) of ``Phi(t u + t^2 v) = sum_p c_p t^p`` on the piece (``c_0 = 0``).

    Parameters
    ----------
    u, v : (m d + m k,)
        Velocity and normal correction in the coordinates ``(vec W, vec A)``.
    """
    n = piece.x.shape[0]
    F = _output_terms(piece, u, v)
    c = np.zeros(9)
    for p, Fp in enumerate(F, start=1):
        c[p] += np.sum(piece.residual * Fp) / n
        for q, Fq in enumerate(F, start=1):
            c[p + q] += np.sum(Fp * Fq) / (2 * n)
    return c


def _cubic(piece: Piece, u: np.ndarray) -> tuple[float, float]:
    """``Phi_3(u) = 1/n sum_i (J u)_i . N_i(u)`` and its size ``1/n ||J u|| ||N(u)||`` (Cauchy-Schwarz)."""
    F1, N = _output_terms(piece, u, np.zeros_like(u))[:2]
    n = piece.x.shape[0]
    return float(np.sum(F1 * N) / n), float(np.linalg.norm(F1) * np.linalg.norm(N) / n)


def _cubic_gradient(piece: Piece, u: np.ndarray) -> np.ndarray:
    """``b(u)`` (m d + m k,) with ``b . v = D Phi_3(u)[v] = 1/n [(J v) . N(u) + (J u) . (N(u, v) + N(v, u))]``."""
    uw, ua = piece.split(u)
    s = _kink_slopes(piece, uw, np.zeros_like(uw))
    F1, N = _output_terms(piece, u, np.zeros_like(u))[:2]
    b_w = (s * (N @ piece.a.T + F1 @ ua.T)).T @ piece.x
    b_a = piece.rho.T @ N + (s * (piece.x @ uw.T)).T @ F1
    gradient: np.ndarray = np.concatenate([b_w.ravel(), b_a.ravel()]) / piece.x.shape[0]
    return gradient


def _curves(piece: Piece, u: np.ndarray, hessian_pinv: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Curves ``(u, v, order)`` from ``u`` whose leading coefficient is significantly negative (at most two)."""
    c3, size3 = _cubic(piece, u)
    if abs(c3) > _SIGNIFICANT * size3:
        return [(-np.sign(c3) * u, np.zeros_like(u), 3)]
    b = _cubic_gradient(piece, u)
    v = -hessian_pinv @ b
    phi4 = float(np.sum(_output_terms(piece, u, np.zeros_like(u))[1] ** 2) / (2 * piece.x.shape[0]))
    quad = 0.5 * float(v @ b)  # 1/2 v^T H v = -1/2 b^T H^+ b
    if phi4 + quad < -_SIGNIFICANT * (phi4 + abs(quad)):
        return [(u, v, 4), (-u, v, 4)]
    return []


def _valid_steps(piece: Piece, u: np.ndarray, v: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Steps ``t`` (T,) bool inside the validity radius: ``||Delta w_j(t)|| <= mu_j / 2`` and constant kink signs."""
    (uw, _), (vw, _) = piece.split(u), piece.split(v)
    dw = steps[:, None, None] * uw + steps[:, None, None] ** 2 * vw  # (T, m, d)
    inside = (np.linalg.norm(dw, axis=-1) <= 0.5 * piece.mu).all(axis=-1)
    first, second = piece.x @ uw.T, piece.x @ vw.T  # (n, m)
    end = first + steps[:, None, None] * second
    constant = ((first == 0) | (first * end > 0) | ~piece.kink).all(axis=(-2, -1))
    valid: np.ndarray = inside & constant
    return valid


def _largest_valid_step(piece: Piece, u: np.ndarray, v: np.ndarray, scale: float) -> float:
    """The largest step at most ``scale`` below which the steps ``scale 4^-k`` are valid (:func:`_valid_steps`),
    refined by bisection up to the next invalid one (the curve leaves the validity region only once)."""
    ladder = geometric_steps(torch.tensor([scale], dtype=torch.float64))[0].numpy()
    invalid = np.flatnonzero(~_valid_steps(piece, u, v, ladder))
    if invalid.size == 0:
        return scale
    if invalid.max() + 1 == ladder.size:
        return float(ladder[-1]) / RATIO
    low, high = float(ladder[invalid.max() + 1]), float(ladder[invalid.max()])
    for _ in range(_BISECTIONS):
        middle = float(np.sqrt(low * high))
        if _valid_steps(piece, u, v, np.array([middle]))[0]:
            low = middle
        else:
            high = middle
    return low


def _curve_witness(
    piece: Piece, u: np.ndarray, v: np.ndarray, order: int, scale: float, change: Change, floor: torch.Tensor
) -> Witness:
    """Verify the curve ``t u + t^2 v`` whose leading term is of ``order``: one candidate.

    The ladder starts at the largest valid step (:func:`_largest_valid_step`); the stored radius is the
    perturbation's norm there (a lower bound of the norm at the validity radius along the curve).
    """
    steps = geometric_steps(torch.tensor([_largest_valid_step(piece, u, v, scale)], dtype=torch.float64))
    (uw, ua), (vw, va) = (tuple(torch.as_tensor(p)[None] for p in piece.split(c)) for c in (u, v))

    def path(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = t[..., None, None]
        return t * uw.unsqueeze(1) + t**2 * vw.unsqueeze(1), t * ua.unsqueeze(1) + t**2 * va.unsqueeze(1)

    c = torch.as_tensor(curve_coefficients(piece, u, v))[None]  # (1, 9)
    below, above = torch.zeros_like(c), torch.zeros_like(c)
    below[:, :order], above[:, order + 1 :] = c[:, :order], c[:, order + 1 :]
    model = LineModel(claim=c * (torch.arange(9) == order), residue=below, rest=above)
    dw, da = path(steps[:, :1])
    radius = torch.sqrt(dw.square().sum() + da.square().sum()).reshape(1)
    return verify_witness(path, change, model, steps, floor, radius)


def higher_order_probe(
    piece: Piece,
    kernel: np.ndarray,
    hessian_pinv: np.ndarray,
    scale: float,
    change: Change,
    floor: torch.Tensor,
) -> tuple[Witness, int] | None:
    """Search the kernel for a verified cubic or quartic decrease (see the module docstring).

    Parameters
    ----------
    piece
        The point's activation piece.
    kernel : (P, p)
        Orthonormal basis of the numerical kernel of ``H`` (``P = m d + m k``, ``T`` included).
    hessian_pinv : (P, P)
        ``H^+`` (pseudo-inverse with the kernel cut off).
    scale
        Parameter scale ``max(1, ||theta||)``: the largest step tried.
    change
        The true loss change of perturbations (one point: ``E = 1``).
    floor : (1,)
        Rounding floor of a computed change of the loss.

    Returns
    -------
    (Witness, order) or None
        The largest verified decrease (one candidate) and the order of its curve (3 or 4); None if no curve
        decreases (the point stays undetermined).
    """
    best: tuple[Witness, int] | None = None
    for u in kernel_candidates(kernel).T:
        for cu, cv, order in _curves(piece, u, hessian_pinv):
            found = _curve_witness(piece, cu, cv, order, scale, change, floor)
            if bool(found.verified[0]) and (best is None or bool(found.decrease[0] > best[0].decrease[0])):
                best = (found, order)
    return best
