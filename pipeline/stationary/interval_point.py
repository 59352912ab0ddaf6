"""One snapped point of the interval population loss and its exact local quantities (theory.md 9.2-9.3).

:class:`IntervalPoint` snaps breakpoints near an interval end onto it and tiny neurons to zero, and knows each
neuron's regularity (zero, boundary, kinked, dead) and the profiled loss ``P`` of
:mod:`pipeline.losses.interval_population`.
The functions here give what the classifier of :mod:`pipeline.stationary.interval_points` decides with: the
centred residual at the ends, the escape derivatives ``D_j(u)`` of zero neurons, the exactly flat directions, the
gradient and Hessian of the smooth piece, the sliver coefficients of boundary neurons, and the inward move and
breakpoint displacements that the one-sided quadratic model ``Q(d) = 1/2 d^T H d + sum_j c_j max(delta_j(d), 0)^2``
and the validity radius of a witness read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from pipeline.losses import interval_population
from pipeline.losses.interval_population import IntervalTarget
from pipeline.stationary import labels

__all__ = [
    "IntervalPoint",
    "centred_residual_at_ends",
    "flat_directions",
    "interval_roles",
    "interval_scales",
    "inward_displacement",
    "inward_move",
    "piece_derivatives",
    "sliver_terms",
    "validity_radius",
    "zero_neuron_derivatives",
]

ZERO_TOL = 1e-12
"""Neurons with ``||(w_j, b_j)|| <= ZERO_TOL * max_j ||(w_j, b_j)||`` are zero neurons."""
SLIVER_TOL = 1e-6
"""A sliver coefficient counts as zero when ``|a_j . r(E)| <= SLIVER_TOL ||a_j|| s_y``."""


@dataclass(frozen=True)
class IntervalPoint:
    """One snapped point with the per-neuron facts the test needs (numpy arrays, (m,) unless noted)."""

    w: torch.Tensor  # (m, 2), snapped
    a: torch.Tensor  # (m, k)
    target: IntervalTarget
    leak: float
    zero: np.ndarray  # zero neuron
    boundary: np.ndarray  # breakpoint exactly at an end
    end: np.ndarray  # that end (NaN if none)
    kinked: np.ndarray  # breakpoint strictly inside
    dead: np.ndarray  # ReLU, w . x~ <= 0 on the whole interval (not zero)
    branch: np.ndarray  # slope of the branch a non-kinked neuron is on (NaN for kinked / zero)
    value: float  # the profiled loss at the snapped point
    gap: float  # its relative gradient norm ||grad P|| / (s_y^1.5 s_x^0.5)

    @classmethod
    def snap(
        cls, w: torch.Tensor, a: torch.Tensor, target: IntervalTarget, leak: float, tolerance: float
    ) -> IntervalPoint:
        """Snap breakpoints within ``tolerance (high - low)`` of an end onto it and zero neurons to exact zeros."""
        low, high = target.low, target.high
        slope, offset = w[:, 0].numpy().copy(), w[:, 1].numpy().copy()
        norms = np.hypot(slope, offset)
        zero = norms <= ZERO_TOL * max(float(norms.max()), np.finfo(float).tiny)
        slope[zero], offset[zero] = 0.0, 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(slope != 0, -offset / slope, np.inf)
        end = np.full(slope.shape, np.nan)
        for edge in (low, high):
            near = ~zero & (np.abs(t - edge) <= tolerance * (high - low))
            end[near] = edge
            offset[near] = -slope[near] * edge
        boundary = ~np.isnan(end)
        kinked = ~zero & ~boundary & (t > low) & (t < high)
        middle = 0.5 * (low + high)
        side = np.sign(slope * middle + offset)  # the branch on the interval for a non-kinked neuron
        branch = np.where(kinked | zero, np.nan, np.where(side > 0, 1.0, leak))
        at_ends = np.maximum(slope * low + offset, slope * high + offset)
        dead = (leak == 0.0) & ~zero & (at_ends <= 0)
        snapped = torch.as_tensor(np.stack([slope, offset], axis=1))
        grads = interval_population.interval_gradients(snapped[None], a[None], target, leak)
        s_x, s_y = interval_scales(target)
        gap = float(grads.norm()[0]) / (s_y**1.5 * s_x**0.5)
        return cls(snapped, a, target, leak, zero, boundary, end, kinked, dead, branch, float(grads.loss[0]), gap)

    def loss(self, w: torch.Tensor, a: torch.Tensor, *, on_piece: bool = False) -> torch.Tensor:
        """The profiled loss at points ``w`` (..., m, 2), ``a`` (..., m, k), shape (...); ``on_piece``: boundary
        neurons kept on their branch."""
        fixed = None
        if on_piece:
            fixed = torch.as_tensor(np.where(self.boundary, self.branch, np.nan))[None]
        batch = w.shape[:-2]
        loss = interval_population.interval_loss(
            w.reshape(-1, *w.shape[-2:]), a.reshape(-1, *a.shape[-2:]), self.target, self.leak, fixed_slope=fixed
        )
        return loss.reshape(batch)


def interval_scales(target: IntervalTarget) -> tuple[float, float]:
    """``s_x`` (largest input norm with the bias column) and ``s_y`` (root mean square target)."""
    s_x = float(np.sqrt(max(target.low**2, target.high**2) + 1.0))
    return s_x, float(interval_population.target_scale(target)[0])


def centred_residual_at_ends(point: IntervalPoint) -> dict[float, np.ndarray]:
    """``r(E) = e(E) - mean e`` at both interval ends, each (k,)."""
    low, high = point.target.low, point.target.high
    nodes, weights = interval_population.quadrature(point.w[None], low, high)
    inputs = torch.stack([nodes, torch.ones_like(nodes)], dim=-1)[0]
    ends = torch.tensor([[low, 1.0], [high, 1.0]], dtype=torch.float64)

    def error(x: torch.Tensor) -> torch.Tensor:
        activation = torch.nn.functional.leaky_relu(x @ point.w.T, point.leak)
        return activation @ point.a - point.target(x[None, :, 0])[0]

    mean = (weights[0].unsqueeze(-1) * error(inputs)).sum(0)
    at_ends = (error(ends) - mean).numpy()
    return {low: at_ends[0], high: at_ends[1]}


def zero_neuron_derivatives(point: IntervalPoint, directions: torch.Tensor) -> np.ndarray:
    """``D(u) = mean[r(x) rho(u . x~)]`` for every unit ``u`` (U, 2), exact; shape (U, k).

    The integrand is piecewise quadratic with kinks at the network's breakpoints and at ``u``'s own,
    so each ``u`` is integrated with the two-point rule on the segments of both.
    """
    n_dirs = directions.shape[0]
    width = point.w.shape[0]
    combined = torch.cat([point.w.expand(n_dirs, width, 2), directions[:, None, :]], dim=1)
    nodes, weights = interval_population.quadrature(combined, point.target.low, point.target.high)
    inputs = torch.stack([nodes, torch.ones_like(nodes)], dim=-1)  # (U, Q, 2)
    activation = torch.nn.functional.leaky_relu(inputs @ point.w.T, point.leak)
    error = activation @ point.a - point.target(nodes)
    residual = error - (weights.unsqueeze(-1) * error).sum(dim=1, keepdim=True)
    probe = torch.nn.functional.leaky_relu((inputs * directions[:, None, :]).sum(-1), point.leak)
    return (weights.unsqueeze(-1) * residual * probe.unsqueeze(-1)).sum(dim=1).numpy()


def flat_directions(point: IntervalPoint) -> np.ndarray:
    """Orthonormal basis (P, f) of directions along which ``P`` is exactly constant on the piece.

    Parameters are ordered ``[w.flatten(), a.flatten()]``. While no breakpoint crosses an interval end:

    * a dead ReLU neuron does not enter the loss: its ``w_j`` and ``a_j`` are free;
    * a kinked neuron has its rescaling ``(w_j, -a_j)``;
    * a neuron on one branch ``s_j`` over the whole interval contributes the affine function
      ``s_j a_j (w_j x + b_j)``, whose constant part the output bias absorbs: its ``b_j`` is free, and
      these neurons enter only through the total slope ``S = sum_j s_j w_j a_j`` (k values); the
      tangent of ``{S = const}`` is free where its Jacobian has rank k (else only the rescalings).
    """
    width, k = point.a.shape
    size = 2 * width + width * k
    w_np, a_np = point.w.numpy(), point.a.numpy()
    columns: list[np.ndarray] = []

    def vector(dw: dict[tuple[int, int], float], da: dict[int, np.ndarray]) -> np.ndarray:
        out = np.zeros(size)
        for (j, q), value in dw.items():
            out[2 * j + q] = value
        for j, output in da.items():
            out[2 * width + k * j : 2 * width + k * (j + 1)] = output
        return out

    linear = ~point.zero & ~point.kinked & ~point.dead
    for j in range(width):
        if point.dead[j]:
            columns += [vector({(j, 0): 1.0}, {}), vector({(j, 1): 1.0}, {})]
            columns += [vector({}, {j: unit}) for unit in np.eye(k)]
        elif point.kinked[j] or linear[j]:
            columns.append(vector({(j, 0): w_np[j, 0], (j, 1): w_np[j, 1]}, {j: -a_np[j]}))
        if linear[j]:
            columns.append(vector({(j, 1): 1.0}, {}))
    block = np.flatnonzero(linear)
    if block.size:
        jacobian = np.zeros((k, size))  # dS / dtheta
        for j in block.tolist():
            jacobian[:, 2 * j] = point.branch[j] * a_np[j]
            jacobian[:, 2 * width + k * j : 2 * width + k * (j + 1)] = point.branch[j] * w_np[j, 0] * np.eye(k)
        block_mask = np.zeros(size, dtype=bool)
        for j in block.tolist():
            block_mask[[2 * j, 2 * j + 1]] = True
            block_mask[2 * width + k * j : 2 * width + k * (j + 1)] = True
        if np.linalg.matrix_rank(jacobian) == k:
            tangent = scipy.linalg.null_space(jacobian[:, block_mask])
            embedded = np.zeros((size, tangent.shape[1]))
            embedded[block_mask] = tangent
            columns += list(embedded.T)
    if not columns:
        return np.zeros((size, 0))
    basis: np.ndarray = scipy.linalg.orth(np.stack(columns, axis=1))
    return basis


def sliver_terms(
    point: IntervalPoint, residual_at_ends: dict[float, np.ndarray], s_y: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sliver coefficients ``c_j`` (m,) of boundary neurons (0 elsewhere or when negligible), and the
    boundary neurons (m,) bool with ``a_j = 0`` and ``r(E) != 0``, whose activation is a third-order descent."""
    sliver = np.zeros(point.a.shape[0])
    third_order = np.zeros(point.a.shape[0], dtype=bool)
    length = point.target.high - point.target.low
    for j in np.flatnonzero(point.boundary):
        r_end = residual_at_ends[point.end[j]]
        norm_a = float(np.linalg.norm(point.a[j].numpy()))
        value = float(point.a[j].numpy() @ r_end)
        if norm_a > ZERO_TOL * s_y and abs(value) > SLIVER_TOL * norm_a * s_y:
            sliver[j] = (1.0 - point.leak) * value * abs(float(point.w[j, 0])) / (2.0 * length)
        elif norm_a <= ZERO_TOL * s_y and np.linalg.norm(r_end) > SLIVER_TOL * s_y:
            third_order[j] = True
    return sliver, third_order


def piece_derivatives(point: IntervalPoint) -> tuple[np.ndarray, np.ndarray]:
    """Gradient (P,) and Hessian (P, P) of ``P`` on the piece where boundary neurons keep their branch.

    Parameters are ordered ``[w.flatten(), a.flatten()]``; exact, by automatic differentiation of the exact loss.
    """
    width, k = point.a.shape

    def loss_of(theta: torch.Tensor) -> torch.Tensor:
        return point.loss(theta[: 2 * width].reshape(width, 2), theta[2 * width :].reshape(width, k), on_piece=True)

    theta = torch.cat([point.w.reshape(-1), point.a.reshape(-1)])
    gradient: np.ndarray = torch.func.grad(loss_of)(theta).numpy()
    hessian: np.ndarray = torch.func.hessian(loss_of)(theta).numpy()
    return gradient, hessian


def inward_displacement(point: IntervalPoint, dw: np.ndarray) -> np.ndarray:
    """Rate ``delta_j`` (m,) at which ``w + t dw`` (``dw`` (m, 2)) moves each boundary neuron's breakpoint into the
    interval (negative: outwards; 0 off the boundary neurons).

    With ``t_j = -b_j / w_j`` the breakpoint moves at ``-(db_j + t_j dw_j) / w_j``; inwards is down from ``high``
    and up from ``low``.
    """
    w_np = point.w.numpy()
    safe = np.where(point.boundary, w_np[:, 0], 1.0)
    rate = -(dw[:, 1] + np.nan_to_num(point.end) * dw[:, 0]) / safe
    inwards = np.where(point.end == point.target.high, -rate, rate)
    return np.where(point.boundary, inwards, 0.0)


def validity_radius(point: IntervalPoint, dw: np.ndarray) -> float:
    """Largest ``t`` with no neuron's sign at an interval end changing along ``w + t dw`` (``dw`` (m, 2)).

    The activation pattern of a neuron on the interval changes only when its pre-activation at an end changes
    sign, so within this radius the loss is that of the piece plus the one-sided slivers of the boundary neurons
    (whose own end is left out, as are zero neurons: moving them out of zero keeps their pattern); inf if nothing
    limits it.
    """
    w_np = point.w.numpy()
    ends = np.array([point.target.low, point.target.high])
    value = w_np[:, :1] * ends + w_np[:, 1:]  # (m, 2): pre-activations at the ends
    rate = dw[:, :1] * ends + dw[:, 1:]
    own_end = point.boundary[:, None] & (ends[None, :] == point.end[:, None])
    towards = ~point.zero[:, None] & ~own_end & (value * rate < 0)
    with np.errstate(divide="ignore"):
        ratios = np.where(towards, np.abs(value) / np.abs(np.where(towards, rate, 1.0)), np.inf)
    return float(ratios.min(initial=np.inf))


def inward_move(point: IntervalPoint, neuron: int) -> np.ndarray:
    """A bias change (m, 2) that moves the breakpoint of a boundary neuron into the interval."""
    dw = np.zeros((point.w.shape[0], 2))
    inward = -1.0 if point.end[neuron] == point.target.high else 1.0  # sign of the breakpoint move dt
    dw[neuron, 1] = -inward * np.sign(float(point.w[neuron, 0]))  # dt = -db / w_j
    return dw


def interval_roles(point: IntervalPoint) -> np.ndarray:
    """``ROLE`` codes per neuron."""
    zero_output = np.linalg.norm(point.a.numpy(), axis=1) == 0
    touching = point.dead & point.boundary
    names = np.select(
        [point.zero & zero_output, point.zero, touching, point.dead, zero_output, point.kinked | point.boundary],
        ["zero", "zero_input", "dead_touching", "dead", "zero_output", "active_kinked"],
        "active_smooth",
    )
    return np.array([labels.code(labels.ROLE, name) for name in names], dtype=np.int8)
