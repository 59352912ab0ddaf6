"""Classification of points of losses with a smooth activation (the quadratic one, ``rho(z) = z^2``).

The loss ``L(theta)``, ``theta = (W, A)``, is a polynomial: there are no kinks and no escape neurons in
the kink sense, and the test is the classical one, made exact where the Hessian is degenerate. Per point
(``P`` parameters ordered ``[W.flatten(), A.flatten()]``, or ``W`` alone with a fixed output layer):

1. neurons with ``||w_j||`` or ``||a_j||`` below ``ZERO_TOL`` of the natural parameter size are snapped
   to exact zeros;
2. ``L <= tau_L s_y^2``: ``global_min`` (certificate ``none``: ``L >= 0``);
3. relative gradient norm ``||grad L|| / (s_y^1.5 s_x^0.5)`` above the tolerance: ``not_stationary``;
4. the Hessian ``H`` (automatic differentiation of the exact loss) on the complement of the tangent
   ``T`` of the known critical symmetry orbits (:func:`symmetry_directions`): a negative eigenvalue gives a
   candidate witness (``strict``);
5. a zero neuron (``w_j = 0``, ``a_j = 0``) is flat to second order; along ``(dw_j, da_j) = t (u, v)`` the
   loss changes by exactly ``t^3 v . M_j[u, u] + O(t^6)`` with ``M_j = 1/2 d^2/dw_j^2 (dL/da_j)`` (for
   sampled data ``1/n sum_i r_i x_i x_i^T``): a non-zero ``M_j`` gives a cubic candidate (``non_strict``);
6. other null directions ``d`` of the projected Hessian: the third derivative along ``d`` gives a cubic
   candidate (``non_strict``);
7. every candidate must lower the true loss at every step of a shrinking ladder
   (:func:`pipeline.stationary.local_descent.verify_local_descent`): ``saddle`` with its witness. Without a
   verified candidate: the projected Hessian positive definite, no zero neuron, and a Newton step to the
   model's critical point within ``NEWTON_TOL`` of the parameter size is ``local_min`` (certificate
   ``hessian_morse_bott``: ``T`` is tangent to a manifold of critical points of equal loss, and the loss grows
   quadratically off it); anything else is ``undetermined``, never a guess.

Steps 2, 3 and the verdicts of 7 are those of every per-point classifier (:func:`pipeline.stationary.local_test.judge`);
steps 4-6 are this loss's local model.

A local minimum is resolved against the global value 0 when the target is realisable
(:func:`pipeline.stationary.minima.minimum_types`); otherwise it stays ``local_min`` for the collect step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.linalg
import torch

from pipeline.stationary import labels
from pipeline.stationary.local_test import LineCandidate, LocalModel, LocalPoint, steepest_descent
from pipeline.stationary.record import BatchClassification
from pipeline.stationary.tolerances import Tolerances

__all__ = ["SmoothLoss", "smooth_point", "symmetry_directions"]

ZERO_TOL = 1e-12
"""``w_j`` (``a_j``) counts as zero when its norm is at most this fraction of the natural parameter size."""
CURVATURE_TOL = 1e-9
"""Eigenvalues within this fraction of the largest eigenvalue of the projected Hessian count as zero."""
PARALLEL_TOL = 1e-9
"""Output weights ``a_p``, ``a_q`` are parallel when ``|sin angle| <= PARALLEL_TOL``."""
NEWTON_TOL = 1e-4
"""A local minimum is certified only if the Newton step to the critical point of the quadratic model is at most
this fraction of the parameter size: a small gradient over a small curvature (a valley drifting off to infinity)
is no minimum."""
FLOOR_EPS = 64.0
"""The rounding floor of a computed loss change, in machine epsilons of the loss."""
LADDER = 40
"""Steps of a witness ladder (from the parameter size down: more than the default to reach the rounding floor)."""


@dataclass(frozen=True)
class SmoothLoss:
    """One point's loss as a function of its parameters, with its scales.

    Attributes
    ----------
    network_loss
        ``(W (m, d), A (m, k))`` float64 -> the loss (a 0-d tensor), differentiable by ``torch.func``.
    width, n_inputs, n_outputs
        ``m``, ``d``, ``k``.
    s_x, s_y
        Input and output scales (theory.md 8.2 step 1).
    fixed_a
        (m, k) output weights when the output layer is fixed (not in ``theta``); None when it is trained.
    """

    network_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    width: int
    n_inputs: int
    n_outputs: int
    s_x: float
    s_y: float
    fixed_a: torch.Tensor | None = None

    @property
    def train_output(self) -> bool:
        """Whether ``A`` is part of ``theta``."""
        return self.fixed_a is None

    def split(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W, A)`` of a parameter vector (P,)."""
        n_w = self.width * self.n_inputs
        w = theta[:n_w].reshape(self.width, self.n_inputs)
        if self.fixed_a is not None:
            return w, self.fixed_a
        return w, theta[n_w:].reshape(self.width, self.n_outputs)

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        """The loss at the parameter vector ``theta`` (P,)."""
        return self.network_loss(*self.split(theta))


def symmetry_directions(w: np.ndarray, a: np.ndarray, degree: int, train_output: bool) -> np.ndarray:
    """Orthonormal basis (P, f) of the tangent of the known critical symmetry orbits at ``(w, a)``.

    With ``rho`` positively homogeneous of degree ``p`` and even (``rho(z) = z^2``), the network
    ``sum_j a_j rho(w_j . x)`` is unchanged, so every point of these orbits has the loss and the
    criticality of ``(w, a)``:

    * rescaling ``(c w_j, a_j / c^p)``: tangent ``(w_j, -p a_j)`` (``w_j != 0``);
    * ``w_j = 0``: ``a_j`` is free (the neuron computes 0);
    * for ``rho(z) = z^2`` and two neurons with parallel non-zero output weights ``a_p = alpha_p e``,
      ``a_q = alpha_q e``: ``alpha_p w_p w_p^T + alpha_q w_q w_q^T`` is invariant under the indefinite
      orthogonal group of ``diag(alpha_p, alpha_q)``, tangent ``(dw_p, dw_q) = (w_q / alpha_p, -w_p / alpha_q)``.

    A fixed output layer (``train_output`` False) keeps only the generators that leave ``A`` alone.
    """
    width, d = w.shape
    k = a.shape[1]
    size = width * d + (width * k if train_output else 0)
    columns: list[np.ndarray | None] = []

    def vector(dw: dict[int, np.ndarray], da: dict[int, np.ndarray]) -> np.ndarray | None:
        if da and not train_output:
            return None
        out = np.zeros(size)
        for j, value in dw.items():
            out[j * d : (j + 1) * d] = value
        for j, value in da.items():
            out[width * d + j * k : width * d + (j + 1) * k] = value
        return out

    w_zero = ~np.any(w != 0, axis=1)
    a_zero = ~np.any(a != 0, axis=1)
    for j in range(width):
        if not w_zero[j]:
            columns.append(vector({j: w[j]}, {j: -degree * a[j]} if not a_zero[j] else {}))
        elif not a_zero[j]:
            columns += [vector({}, {j: unit}) for unit in np.eye(k)]
    if degree == 2:
        for p in range(width):
            for q in range(p + 1, width):
                if a_zero[p] or a_zero[q] or (w_zero[p] and w_zero[q]):
                    continue
                norm_p, norm_q = np.linalg.norm(a[p]), np.linalg.norm(a[q])
                cosine = float(a[p] @ a[q]) / (norm_p * norm_q)
                if float(np.sqrt(np.clip(1.0 - cosine * cosine, 0.0, None))) > PARALLEL_TOL:
                    continue
                alpha_p, alpha_q = norm_p, np.sign(cosine) * norm_q
                columns.append(vector({p: w[q] / alpha_p, q: -w[p] / alpha_q}, {}))
    kept = [c for c in columns if c is not None and np.any(c != 0)]
    if not kept:
        return np.zeros((size, 0))
    basis: np.ndarray = scipy.linalg.orth(np.stack(kept, axis=1))
    return basis


def smooth_point(
    record: BatchClassification, run: int, loss: SmoothLoss, w: torch.Tensor, a: torch.Tensor, *, degree: int
) -> LocalPoint:
    """The point ``w`` (m, d), ``a`` (m, k) (float64, CPU) of run ``run``, snapped, as the front end judges it
    (:func:`pipeline.stationary.local_test.judge`); writes the snapped point and its facts into ``record``."""
    natural = natural_size(loss)
    w = torch.where(torch.linalg.vector_norm(w, dim=1, keepdim=True) <= ZERO_TOL * natural, 0.0, w)
    if loss.train_output:
        a = torch.where(torch.linalg.vector_norm(a, dim=1, keepdim=True) <= ZERO_TOL * natural, 0.0, a)
    theta = torch.cat([w.reshape(-1), a.reshape(-1)]) if loss.train_output else w.reshape(-1).clone()
    point = _SmoothPoint(loss, theta, degree, loss.s_y)
    roles = _roles(w.numpy(), a.numpy())
    record.set_point(run, w=w.numpy(), a=a.numpy(), loss=point.value, gap=point.gap, roles=roles, differentiable=True)
    return point


@dataclass(frozen=True)
class _SmoothPoint:
    """A snapped point of a smooth loss as the front end (:func:`pipeline.stationary.local_test.judge`) sees it:
    steps 4-7 of the module docstring give its local model."""

    loss: SmoothLoss
    theta: torch.Tensor
    degree: int
    output_scale: float
    ladder: int = LADDER

    @cached_property
    def value(self) -> float:
        """The loss at the point."""
        return float(self.loss.value(self.theta))

    @cached_property
    def gradient(self) -> torch.Tensor:
        """The gradient (P,) by automatic differentiation."""
        gradient: torch.Tensor = torch.func.grad(self.loss.value)(self.theta)
        return gradient

    @property
    def gap(self) -> float:
        """``||grad L|| / (s_y^1.5 s_x^0.5)``."""
        scale: float = self.loss.s_y**1.5 * self.loss.s_x**0.5
        return float(torch.linalg.vector_norm(self.gradient)) / scale

    @property
    def floor(self) -> float:
        """``FLOOR_EPS`` ulps of the loss."""
        return FLOOR_EPS * float(np.finfo(float).eps) * max(abs(self.value), np.finfo(float).tiny)

    def change(self, moves_w: torch.Tensor, moves_a: torch.Tensor) -> torch.Tensor:
        """The loss at the moved points minus the loss at the point, (E, T); the polynomial holds at every step."""
        w, a = self.loss.split(self.theta)
        moved = [
            [self.loss.network_loss(w + mw, a + ma) for mw, ma in zip(*row, strict=True)]
            for row in zip(moves_w, moves_a, strict=True)
        ]
        return torch.stack([torch.stack(row) for row in moved]) - self.value

    def local_model(self, tol: Tolerances) -> LocalModel:
        """Steps 4-7 of the module docstring at a stationary point of positive loss."""
        loss, theta = self.loss, self.theta
        w, a = (part.numpy() for part in loss.split(theta))
        hessian = torch.func.hessian(loss.value)(theta).numpy()
        complement = scipy.linalg.null_space(symmetry_directions(w, a, self.degree, loss.train_output).T)
        eigenvalues, eigenvectors = np.linalg.eigh(complement.T @ hessian @ complement)
        scale = max(float(np.abs(eigenvalues).max(initial=0.0)), loss.s_y * loss.s_x)  # floor: the natural curvature
        lowest = float(eigenvalues[0]) if eigenvalues.size else np.inf
        zero = ~np.any(w != 0, axis=1) & ~np.any(a != 0, axis=1) & loss.train_output
        candidates: list[LineCandidate] = []
        if lowest < -CURVATURE_TOL * scale:
            candidates += self._lines(complement @ eigenvectors[:, 0], 2, 0.5 * lowest, "strict", lowest)
        escape = np.zeros(loss.width, dtype=bool)
        for j in np.flatnonzero(zero):
            direction, coefficient = _zero_neuron_cubic(loss, theta, int(j))
            if -coefficient > tol.escape * loss.s_y * loss.s_x**2:
                escape[j] = True
                candidates += self._lines(direction, 3, coefficient, "non_strict", lowest)
        for index in np.flatnonzero(np.abs(eigenvalues) <= CURVATURE_TOL * scale):
            direction = complement @ eigenvectors[:, index]
            coefficient = _third_derivative(loss, theta, direction) / 6.0
            if abs(coefficient) > tol.escape * loss.s_y * loss.s_x**2:
                candidates += self._lines(-np.sign(coefficient) * direction, 3, -abs(coefficient), "non_strict", lowest)
        minimum = False
        if not candidates and lowest > CURVATURE_TOL * scale and not zero.any():
            # the point is only numerically stationary: the minimum certified is the one the Newton step reaches
            reduced = complement.T @ self.gradient.numpy()
            newton = float(np.linalg.norm(eigenvectors @ ((eigenvectors.T @ reduced) / eigenvalues)))
            minimum = newton <= NEWTON_TOL * max(natural_size(loss), float(torch.linalg.vector_norm(theta)))
        return LocalModel(candidates, minimum=minimum, curvature=lowest, escape=escape)

    def descent(self) -> LineCandidate | None:
        """The steepest-descent line (:func:`pipeline.stationary.local_test.steepest_descent`); the loss is a
        polynomial, so the ladder starts at the parameter size with no validity radius."""
        w, a = _split_direction(self.loss, self.gradient)
        top = max(natural_size(self.loss), float(torch.linalg.vector_norm(self.theta)))
        return steepest_descent(w, a, lambda dw, da: (top, np.inf), self._curvature_along_descent)

    def _curvature_along_descent(self, dw: torch.Tensor, da: torch.Tensor) -> float:
        """``d^T H d`` along the unit steepest-descent direction ``d`` (a Hessian-vector product)."""
        direction = -self.gradient / torch.linalg.vector_norm(self.gradient)
        along = torch.func.jvp(torch.func.grad(self.loss.value), (self.theta,), (direction,))[1]
        return float(direction @ along)

    def _lines(
        self, direction: np.ndarray, order: int, coefficient: float, strictness: str, curvature: float
    ) -> list[LineCandidate]:
        """The candidates along ``direction`` (both signs for an even ``order``, + first): the claim
        ``coefficient t^order`` and the residue ``t g . d`` of a numerically stationary point, from the parameter
        size down (the loss is a polynomial: radius ``inf``)."""
        unit = torch.as_tensor(direction / np.linalg.norm(direction))
        dw, da = _split_direction(self.loss, unit)
        slope = float(self.gradient @ unit)
        top = max(natural_size(self.loss), float(torch.linalg.vector_norm(self.theta)))
        claim = (0.0,) * (order - 2) + (coefficient,)
        return [
            LineCandidate(sign * dw, sign * da, (0.0, sign * slope, *claim), top, strictness=strictness,
                          curvature=curvature)
            for sign in ((1.0, -1.0) if order % 2 == 0 else (1.0,))
        ]  # fmt: skip


def natural_size(loss: SmoothLoss) -> float:
    """Parameter size ``sqrt(s_y / s_x)`` of a network of output scale ``s_y``."""
    return float(np.sqrt(loss.s_y / loss.s_x))


def _zero_neuron_cubic(loss: SmoothLoss, theta: torch.Tensor, neuron: int) -> tuple[np.ndarray, float]:
    """The steepest cubic direction ``t (u, v)`` (unit, (P,)) of zero neuron ``neuron`` and its coefficient ``c``.

    ``L(theta + t d) - L(theta) = c t^3 + O(t^6)`` with ``c = v . M[u, u] / 2^1.5`` for the unit ``d = (u, v)
    / sqrt 2``, ``M_l = 1/2 d^2/dw_j^2 (dL/da_jl)``; ``u`` is the eigenvector of the ``M_l`` of largest
    ``|eigenvalue|``.
    """
    d, k, width = loss.n_inputs, loss.n_outputs, loss.width
    rows = slice(neuron * d, (neuron + 1) * d)
    outputs = slice(width * d + neuron * k, width * d + (neuron + 1) * k)

    def output_gradient(w_j: torch.Tensor) -> torch.Tensor:
        shifted = torch.cat([theta[: rows.start], w_j, theta[rows.stop :]])
        gradient: torch.Tensor = torch.func.grad(loss.value)(shifted)
        return gradient[outputs]

    moments = 0.5 * torch.func.jacfwd(torch.func.jacrev(output_gradient))(theta[rows]).numpy()  # (k, d, d)
    best_u, best_value = np.zeros(d), np.zeros(k)
    for matrix in moments:
        values, vectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
        for index in (0, -1):
            u = vectors[:, index]
            quadratic = np.einsum("lab,a,b->l", moments, u, u)
            if np.linalg.norm(quadratic) > np.linalg.norm(best_value):
                best_u, best_value = u, quadratic
    size = float(np.linalg.norm(best_value))
    direction = np.zeros(theta.shape[0])
    if size == 0.0:
        return direction, 0.0
    direction[rows] = best_u / np.sqrt(2.0)
    direction[outputs] = -best_value / size / np.sqrt(2.0)
    return direction, -size / 2.0**1.5


def _third_derivative(loss: SmoothLoss, theta: torch.Tensor, direction: np.ndarray) -> float:
    """``d^3/dt^3 L(theta + t d)`` at ``t = 0``."""
    d = torch.as_tensor(direction)

    def along(t: torch.Tensor) -> torch.Tensor:
        return loss.value(theta + t * d)

    third = torch.func.grad(torch.func.grad(torch.func.grad(along)))
    return float(third(torch.zeros((), dtype=theta.dtype)))


def _split_direction(loss: SmoothLoss, direction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dW (m, d), dA (m, k))`` of a direction (P,); ``dA = 0`` when the output layer is fixed."""
    n_w = loss.width * loss.n_inputs
    dw = direction[:n_w].reshape(loss.width, loss.n_inputs)
    if loss.fixed_a is not None:
        return dw, torch.zeros_like(loss.fixed_a)
    return dw, direction[n_w:].reshape(loss.width, loss.n_outputs)


def _roles(w: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``ROLE`` codes per neuron: ``zero``, ``zero_input``, ``zero_output`` or ``active_smooth``."""
    w_zero, a_zero = ~np.any(w != 0, axis=1), ~np.any(a != 0, axis=1)
    names = np.select([w_zero & a_zero, w_zero, a_zero], ["zero", "zero_input", "zero_output"], "active_smooth")
    return np.array([labels.code(labels.ROLE, name) for name in names], dtype=np.int8)
