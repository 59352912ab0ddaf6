"""Kinks of the gradient flow of a one-hidden-layer ReLU-like network, for the end game's integrator.

A pair ``(i, j)`` is on a kink where ``z_ij = x_i . w_j = 0``. This module holds the geometry of those kinks
(which pairs sit on one, crossing events along a step, the least change of ``w_j`` that puts pairs on their
kinks, the projector onto the kink manifold) and the Filippov decision of where the flow takes the pairs on a
kink: sliding along it, or leaving to the active or the inactive side (:func:`filippov_sides`), and the Filippov
velocity of a neuron at the origin, where all its kinks meet (:func:`origin_velocity`; the training flow of
:mod:`pipeline.problems.sampled_flow` holds a neuron there by the same rule). All functions work on one network
with NumPy: ``theta`` holds ``w`` (m, d) then ``a`` (m, k), flattened.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import lsq_linear

from pipeline.stationary.boxls import box_ls_scipy

__all__ = [
    "ORIGIN_BAND", "ORIGIN_TOL", "bounded_least_squares", "crossings", "filippov_sides", "first_crossing",
    "kink_projector", "leave_kinks", "on_kink", "origin_velocity", "snap",
]  # fmt: skip

ORIGIN_BAND = 1e-5
"""A neuron with ``|w_j|`` at most this times ``|a_j|`` sits at the origin, where all its kinks meet: its input
weights move at a speed of order ``|a_j|`` (times the data's scales), so they would cross the origin in a time this
small fraction of the dynamics' time unit. Balanced neurons (``|w_j| = |a_j|``, conserved by the flow) never
qualify; an unbalanced one (``|a_j| > |w_j|``) can shrink its input weights to the origin, where GD zig-zags."""

ORIGIN_TOL = 1e-8
"""The origin holds a neuron when its Filippov velocity is at most this times its scale (:func:`origin_velocity`)."""


def origin_velocity(terms: np.ndarray, leak: float) -> tuple[np.ndarray, float]:
    """The Filippov velocity of ``w_j`` at the origin, (d,), and its scale ``sum_i ||t_i||``.

    At ``w_j = 0`` every pair of the neuron is on its kink, and ``dL/dw_j`` may be any element of the zonotope
    ``{sum_i s_i t_i : s_i in [leak, 1]}``, ``t_i = (r_i . a_j / n) x_i`` (``terms``, (n, d)): the one-sided
    gradients of every activation pattern and their convex hull. The flow moves ``w_j`` by minus its minimum-norm
    element (steepest descent), a bounded least-squares problem (:func:`pipeline.stationary.boxls.box_ls_scipy`);
    where that is 0 the origin holds the neuron.
    """
    offset, columns = leak * terms.sum(axis=0), (1.0 - leak) * terms
    _, s = box_ls_scipy(columns, offset)
    return -(offset + columns.T @ s), float(np.linalg.norm(terms, axis=-1).sum())


def kink_projector(theta: np.ndarray, x: np.ndarray, kink: np.ndarray, width: int, p: int) -> np.ndarray:
    """Projector (p, p) onto the parameters that keep every kink pair ``(i, j)`` at ``z_ij = 0``."""
    d = x.shape[1]
    projector = np.eye(p)
    for j in np.flatnonzero(kink.any(axis=0)):
        rows = x[kink[:, j]]
        block = slice(j * d, (j + 1) * d)
        projector[block, block] = np.eye(d) - np.linalg.pinv(rows) @ rows
    return projector


def on_kink(theta: np.ndarray, x: np.ndarray, width: int) -> np.ndarray:
    """Pairs ``(i, j)`` (n, m) on their kink: ``|z_ij| <= 1e-11 ||x_i|| ||w_j||``, ``w_j != 0``.

    The band holds the pairs :func:`leave_kinks` nudged off a kink (by ``1e-12``), so that they are judged
    together with their neighbours on the kink until the flow has carried them away.
    """
    w = theta[: width * x.shape[1]].reshape(width, -1)
    scale = np.linalg.norm(x, axis=1)[:, None] * np.linalg.norm(w, axis=1)[None, :]
    return (np.abs(x @ w.T) <= 1e-11 * scale) & (scale > 0)


def filippov_sides(
    error: np.ndarray,
    theta: np.ndarray,
    x: np.ndarray,
    leak: float,
    width: int,
    train_output: bool,
    a_fixed: np.ndarray,
    candidates: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Where the flow takes the pairs ``candidates`` (n, m) treated as sitting on their kinks: ``(sliding, active)``.

    A pair ``(i, j)`` on its kink contributes ``s_ij (e_i . a_j) x_i / n`` to ``dL/dw_j``, with the slope
    ``s_ij`` anywhere in ``[leak, 1]`` (the convex hull of the one-sided gradients), and moves with
    ``dz_ij/dt = -x_i . dL/dw_j``. Pairs interact only through their own neuron's gradient (the residuals
    are continuous at a kink), so each neuron is solved on its own. An *attracting* pair (``e_i . a_j > 0``:
    the active side pushes ``z_ij`` down harder than the inactive side) can slide; the Filippov velocity
    of the gradient flow is the minimum-norm element of the convex hull (steepest descent), i.e. the slopes
    ``s`` that minimise ``||dL/dw_j(s)||`` over the box, a bounded linear least-squares problem
    (:func:`scipy.optimize.lsq_linear`). Its KKT conditions are the consistency of each pair: an interior
    slope means ``dz_ij/dt = 0`` (sliding), slope 1 means ``dz_ij/dt >= 0`` (the pair moves to the active
    side), slope ``leak`` means ``dz_ij/dt <= 0`` (it stays inactive). A repelling pair (``e_i . a_j <= 0``)
    never slides; it takes the side its velocity points to with slope ``leak``, then the attracting pairs
    are solved again with it on that side. Per-pair tests cannot replace this: two pairs of one neuron
    that slide together each look as if they leave when judged with the other on the inactive side.
    """
    n, d = x.shape
    w = theta[: width * d].reshape(width, d)
    a = theta[width * d :].reshape(width, -1) if train_output else a_fixed
    slope = np.where(x @ w.T > 0, 1.0, leak)
    drive = error @ a.T / n  # (n, m): (e_i . a_j) / n
    sliding = np.zeros_like(candidates)
    active = np.zeros_like(candidates)
    if leak >= 1.0:
        return sliding, active
    margin = 1e-9 * (1.0 - leak)
    rest = (drive * slope * ~candidates).T @ x  # (m, d): dL/dw_j without the pairs on the kink
    for j in np.flatnonzero(candidates.any(axis=0)):
        pairs = np.flatnonzero(candidates[:, j])
        attracting, repelling = pairs[drive[pairs, j] > 0], pairs[drive[pairs, j] <= 0]
        columns = (drive[attracting, j][:, None] * x[attracting]).T  # (d, A): each slope's column
        repelling_slopes = np.full(repelling.size, leak)
        for _ in range(2 if repelling.size else 1):  # repelling pairs take a side, then the others again
            fixed = rest[j] + (repelling_slopes * drive[repelling, j]) @ x[repelling]
            slopes = bounded_least_squares(columns, -fixed, leak)
            gradient = fixed + columns @ slopes
            repelling_slopes = np.where(x[repelling] @ gradient < 0, 1.0, leak)
        sliding[attracting, j] = (slopes > leak + margin) & (slopes < 1.0 - margin)
        active[attracting, j] = slopes >= 1.0 - margin
        active[repelling, j] = repelling_slopes == 1.0
    return sliding, active


def bounded_least_squares(columns: np.ndarray, target: np.ndarray, low: float) -> np.ndarray:
    """``argmin ||columns s - target||`` over ``low <= s <= 1``, (A,): closed form for one column, else BVLS."""
    if columns.shape[1] == 0:
        return np.zeros(0)
    if columns.shape[1] == 1:
        column = columns[:, 0]
        return np.clip([column @ target / (column @ column)], low, 1.0)
    return lsq_linear(columns, target, bounds=(low, 1.0), method="bvls").x


def leave_kinks(theta: np.ndarray, x: np.ndarray, width: int, active: np.ndarray, inactive: np.ndarray) -> np.ndarray:
    """``theta`` with the pairs in the kink band moved just onto the side the flow takes them to.

    The pattern gives a pair at ``z = 0`` the slope ``leak`` and one at ``z = +1e-14`` the slope 1, so a
    pair in the band on the other side of the one the flow takes (``active`` (n, m) at ``z <= 0``,
    ``inactive`` at ``z > 0``) would follow the wrong piece's gradient: on a repelling kink that piece can
    even be stationary while the other side descends. A relative nudge of ``1e-12`` puts each such pair on
    its side.
    """
    d = x.shape[1]
    w = theta[: width * d].reshape(width, d)
    z = x @ w.T
    band = on_kink(theta, x, width)
    target = np.where(active & band & (z <= 0), 1.0, np.where(inactive & band & (z > 0), -1.0, 0.0))
    if not target.any():
        return theta
    scale = np.linalg.norm(x, axis=1)[:, None] * np.linalg.norm(w, axis=1)[None, :]
    nudged = w.copy()
    for i, j in zip(*np.nonzero(target), strict=True):
        nudged[j] += (target[i, j] * 1e-12 * scale[i, j] - z[i, j]) * x[i] / (x[i] @ x[i])
    return np.concatenate([nudged.ravel(), theta[width * d :]])


def crossings(before: np.ndarray, after: np.ndarray, x: np.ndarray, width: int) -> np.ndarray:
    """Pairs ``(i, j)`` (n, m) whose pre-activation changes sign between two parameter vectors."""
    d = x.shape[1]
    z0 = x @ before[: width * d].reshape(width, d).T
    z1 = x @ after[: width * d].reshape(width, d).T
    return np.sign(z0) != np.sign(z1)


def first_crossing(before: np.ndarray, after: np.ndarray, x: np.ndarray, width: int, crossing: np.ndarray) -> float:
    """Fraction of the straight segment ``before -> after`` at which the first of the ``crossing`` pairs reaches 0."""
    d = x.shape[1]
    z0 = (x @ before[: width * d].reshape(width, d).T)[crossing]
    z1 = (x @ after[: width * d].reshape(width, d).T)[crossing]
    return float((z0 / (z0 - z1)).min())


def snap(w: np.ndarray, x: np.ndarray, kink: np.ndarray) -> np.ndarray:
    """``w`` (m, d) with every kink pair moved exactly onto ``z_ij = 0`` (least change of ``w_j``)."""
    snapped = w.copy()
    for j in np.flatnonzero(kink.any(axis=0)):
        rows = x[kink[:, j]]
        snapped[j] -= np.linalg.pinv(rows) @ (rows @ w[j])
    return snapped
