"""Stage 0 of the end game (:mod:`pipeline.end_game`): the gradient flow with an exponential integrator and kink events.

Within an activation pattern the loss is a polynomial; with its gradient ``g`` and exact Hessian ``H``, a step of
flow time ``h`` is ``-h phi_1(-h H) g``, accepted if the true loss decreases and agrees with the model to 25%.
Kinks are events (:mod:`pipeline.end_game.kinks`): a step that crosses a kink is cut just past the first crossing, and
sliding pairs (Filippov) are held on the kink. Also the residuals and Jacobian of one network that the
Gauss-Newton stage of :func:`pipeline.end_game.finish_runs` reuses. NumPy, one run at a time.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.end_game.kinks import (
    ORIGIN_BAND,
    crossings,
    filippov_sides,
    first_crossing,
    kink_projector,
    leave_kinks,
    on_kink,
    snap,
)
from pipeline.stationary.first_order import first_order
from pipeline.stationary.kinks import snap_point
from pipeline.stationary.neurons import neuron_quantities
from pipeline.stationary.tolerances import tolerances_for

__all__ = ["gradient_flow", "leave_origin", "network_error", "residual_jacobian"]

ZERO_RESIDUAL = 1e-10
"""The flow stops at a root-mean-square residual below this fraction of ``s_y`` (loss ``~1e-20 s_y**2``)."""
STATIONARY_REACH = 1e-6
"""From a stationary point of the flow the polish may move each parameter by this times ``1 + ||theta||``."""
STALL_EVALUATIONS = 25
"""The flow stops, unfinished, after this many Hessian evaluations in a row that did not lower the loss."""
ORIGIN_EXIT = 10.0
"""A neuron that leaves the origin is put this many times :data:`~pipeline.end_game.kinks.ORIGIN_BAND` out."""


def residual_jacobian(
    theta: np.ndarray, x: np.ndarray, y: np.ndarray, leak: float, width: int, train_output: bool, a_fixed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Residuals ``r = (f(x_i) - y_i) / sqrt(n)`` (n k,) and their Jacobian (n k, p) of one network.

    ``theta`` holds ``w`` (m, d) then, if ``train_output``, ``a`` (m, k), flattened; otherwise ``a`` is
    ``a_fixed``. Slopes follow :func:`pipeline.losses.nets.activation_slope` (``rho'(0) = leak``).
    """
    n, d = x.shape
    k = y.shape[1]
    w = theta[: width * d].reshape(width, d)
    a = theta[width * d :].reshape(width, k) if train_output else a_fixed
    z = x @ w.T
    slope = np.where(z > 0, 1.0, leak)
    hidden = z * slope
    scale = 1.0 / np.sqrt(n)
    residual = ((hidden @ a - y) * scale).ravel()
    d_w = np.einsum("jk,ij,il->ikjl", a, slope, x).reshape(n * k, width * d)
    if not train_output:
        return residual, d_w * scale
    d_a = np.einsum("ij,kc->ikjc", hidden, np.eye(k)).reshape(n * k, width * k)
    return residual, np.concatenate([d_w, d_a], axis=1) * scale


def network_error(
    theta: np.ndarray, x: np.ndarray, y: np.ndarray, leak: float, width: int, train_output: bool, a_fixed: np.ndarray
) -> np.ndarray:
    """``f(x_i) - y_i`` (n, k) of one network (parameters as in :func:`residual_jacobian`), without a Jacobian."""
    d = x.shape[1]
    w = theta[: width * d].reshape(width, d)
    a = theta[width * d :].reshape(width, -1) if train_output else a_fixed
    z = x @ w.T
    return (z * np.where(z > 0, 1.0, leak)) @ a - y


def _loss(
    theta: np.ndarray, x: np.ndarray, y: np.ndarray, leak: float, width: int, train_output: bool, a_fixed: np.ndarray
) -> float:
    """``L = 1/(2n) sum_i ||f(x_i) - y_i||^2`` of one network."""
    return 0.5 * float(np.sum(network_error(theta, x, y, leak, width, train_output, a_fixed) ** 2)) / x.shape[0]


def leave_origin(
    theta: np.ndarray, x: np.ndarray, y: np.ndarray, leak: float, width: int, train_output: bool, a_fixed: np.ndarray
) -> np.ndarray:
    """``theta`` with every neuron at the origin that has a first-order descent moved off it along the steepest one.

    A neuron sits at the origin when ``|w_j| <= ORIGIN_BAND |a_j|`` (:mod:`pipeline.end_game.kinks`). There every
    activation pattern meets: the pattern of the current ``w_j`` says nothing about where the loss falls, and the
    Filippov flow may hold the neuron (0 in the convex hull of its one-sided gradients) although a direction ``u``
    lowers the loss at first order (the loss is not regular there: a Clarke-stationary point that is not
    directionally stationary, which gradient descent leaves). The steepest ``u`` and its relative slope are the
    classifier's own first-order test of the neuron put exactly at 0 (:func:`pipeline.stationary.first_order.
    first_order`, exact over the pieces); where the slope exceeds the stationarity tolerance ``w_j`` is put at
    ``ORIGIN_EXIT ORIGIN_BAND |a_j|`` along ``u``. ``theta`` itself is returned when no neuron leaves.
    """
    d = x.shape[1]
    w = theta[: width * d].reshape(width, d)
    a = theta[width * d :].reshape(width, -1) if train_output else a_fixed
    output = np.linalg.norm(a, axis=1)
    near = (np.linalg.norm(w, axis=1) <= ORIGIN_BAND * output) & (output > 0)
    if not near.any():
        return theta
    at_origin = np.where(near[:, None], 0.0, w)
    tol = tolerances_for("end_point")
    data = torch.from_numpy(x)[None], torch.from_numpy(y)[None]
    point = snap_point(torch.from_numpy(at_origin)[None], torch.from_numpy(np.asarray(a))[None], *data, leak, tol, None)
    quantities = neuron_quantities(point.w, point.a, *data, point.kink, leak)
    descent = first_order(quantities, point.a, data[0], False, tol.approx_stationary)
    leaving = near & (descent.in_gap[0].numpy() > tol.stationary)
    if not leaving.any():
        return theta
    moved = theta.copy()
    for j in np.flatnonzero(leaving):
        moved[j * d : (j + 1) * d] = ORIGIN_EXIT * ORIGIN_BAND * output[j] * descent.direction[0, j].numpy()
    return moved


def _hessian(
    theta: np.ndarray, x: np.ndarray, y: np.ndarray, leak: float, width: int, train_output: bool, a_fixed: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Loss, gradient (p,), Hessian (p, p) of the current activation pattern, and residuals ``f - y`` (n, k).

    Within a pattern ``f`` is linear in each ``w_j`` and bilinear in ``(w_j, a_j)``, so the Hessian is
    ``J^T J`` plus the coupling ``d^2 L / dw_jl da_jc = 1/n sum_i (f - y)_ic rho'(z_ij) x_il``.
    """
    n, d = x.shape
    k = y.shape[1]
    residual, jacobian = residual_jacobian(theta, x, y, leak, width, train_output, a_fixed)
    hessian = jacobian.T @ jacobian
    error = residual.reshape(n, k) * np.sqrt(n)
    if train_output:
        w = theta[: width * d].reshape(width, d)
        slope = np.where(x @ w.T > 0, 1.0, leak)
        coupling = np.einsum("ic,ij,il->jlc", error, slope, x) / n  # (m, d, k)
        rows = np.arange(width)[:, None, None] * d + np.arange(d)[None, :, None]
        cols = width * d + np.arange(width)[:, None, None] * k + np.arange(k)[None, None, :]
        rows, cols = np.broadcast_arrays(rows, cols)
        hessian[rows, cols] += coupling
        hessian[cols, rows] += coupling
    return 0.5 * float(residual @ residual), jacobian.T @ residual, hessian, error


def gradient_flow(
    theta: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    leak: float,
    width: int,
    train_output: bool,
    a_fixed: np.ndarray,
    first_step: float,
    budget: int,
) -> tuple[np.ndarray, float, int, float]:
    """Stage 0 for one run: follow the gradient flow; returns ``(theta, flow time, Hessian evaluations, reach)``.

    ``reach`` is how far the polish may move each parameter (:func:`pipeline.end_game.finish_runs`): ``inf`` at
    zero loss, :data:`STATIONARY_REACH` times ``1 + ||theta||`` at a stationary point of positive loss (an unconfined
    Gauss-Newton step from a certified local minimum crossed kinks to a lower basin 0.45 away, measured),
    else the length of the flow's last move.

    Stops at a stationary point of the flow on its kink manifold (the quadratic model promises no decrease above
    rounding; the first time, and again whenever the loss has decreased since, every kink pair is released once
    more, since pairs held by the step-crossing rule may not slide; and where it would stop, a neuron at the origin
    with a first-order descent leaves it and the flow goes on, :func:`leave_origin`), at zero loss (a
    root-mean-square residual below :data:`ZERO_RESIDUAL` times that of the zero network: the polish then finishes
    with a correction of that relative size, which cannot change the limit), when no step of flow time above
    ``1e-14 / |lambda|_max`` is accepted, when :data:`STALL_EVALUATIONS` evaluations in a row did not lower the loss, or
    after ``budget`` Hessian evaluations.
    """
    last_move = 0.0
    p, d = theta.size, x.shape[1]
    kink = np.zeros((x.shape[0], width), dtype=bool)
    held = np.zeros_like(kink)  # pairs put on the kink because the steps crossed them back and forth
    clipped_last = np.zeros_like(kink)
    hold_zeno = True
    loss, gradient, hessian, error = _hessian(theta, x, y, leak, width, train_output, a_fixed)
    restart_loss = np.inf
    step_size, time_spent, evaluations = first_step, 0.0, 1
    floor = 64 * np.finfo(float).eps
    output_scale = float(np.sqrt(np.mean(y**2)))
    zero_loss = 0.5 * (ZERO_RESIDUAL * output_scale) ** 2
    best_loss, since_best = loss, 0
    while evaluations < budget:
        if loss < best_loss:
            best_loss, since_best = loss, 0
        elif since_best >= STALL_EVALUATIONS:
            return theta, time_spent, evaluations, last_move
        at_kink = kink | on_kink(theta, x, width)
        sliding, active = filippov_sides(error, theta, x, leak, width, train_output, a_fixed, at_kink)
        kink = (kink & held) | sliding
        nudged = leave_kinks(theta, x, width, active & ~kink, at_kink & ~active & ~kink)
        if nudged is not theta:
            theta = nudged
            loss, gradient, hessian, error = _hessian(theta, x, y, leak, width, train_output, a_fixed)
        projector = kink_projector(theta, x, kink, width, p)
        flow_gradient, flow_hessian = projector @ gradient, projector @ hessian @ projector  # on the kinks
        eigenvalues, vectors = np.linalg.eigh(flow_hessian)
        coefficients = vectors.T @ flow_gradient
        noise = floor * np.linalg.norm(flow_hessian) ** 0.5 * output_scale  # rounding noise of the gradient
        positive = eigenvalues > floor * np.abs(eigenvalues).max()
        remaining = np.sum(coefficients[positive] ** 2 / eigenvalues[positive]) / 2
        stationary = remaining <= floor * loss and np.all(np.abs(coefficients[~positive]) <= noise)
        if loss <= zero_loss:
            return theta, time_spent, evaluations, np.inf
        if stationary:  # a stationary point of the flow on the current kink manifold
            if not kink.any() or loss >= restart_loss:  # the polish only removes rounding from here
                escaped = leave_origin(theta, x, y, leak, width, train_output, a_fixed)
                if escaped is theta or _loss(escaped, x, y, leak, width, train_output, a_fixed) >= loss:
                    return theta, time_spent, evaluations, STATIONARY_REACH * (1.0 + float(np.linalg.norm(theta)))
                theta, kink[:], held[:] = escaped, False, False  # a neuron the origin does not hold leaves it
                loss, gradient, hessian, error = _hessian(theta, x, y, leak, width, train_output, a_fixed)
                evaluations += 1
                continue
            kink[:], held[:], restart_loss = False, False, loss  # let every pair leave once more
            hold_zeno = False  # from now on only the joint Filippov test puts pairs on a kink
            continue
        moved = False
        growth = max(-float(eigenvalues.min()), 0.0)
        while not moved:
            if growth * step_size > 40.0:  # a growth of e^40 along negative curvature is past any plateau
                step_size = 40.0 / growth
            exponent = -step_size * eigenvalues
            safe = np.where(np.abs(exponent) > 1e-12, exponent, 1.0)
            phi = np.where(np.abs(exponent) > 1e-12, np.expm1(exponent) / safe, 1.0)
            step = -vectors @ (phi * step_size * coefficients)
            predicted = flow_gradient @ step + 0.5 * step @ flow_hessian @ step
            trial = theta + step
            trial_loss = _loss(trial, x, y, leak, width, train_output, a_fixed)
            change = trial_loss - loss
            if change <= floor * loss and abs(change - predicted) <= 0.25 * abs(predicted) + floor * loss:
                last_move = float(np.linalg.norm(step))
                theta, time_spent, step_size, moved = trial, time_spent + step_size, 4 * step_size, True
                continue
            crossing = crossings(theta, trial, x, width) & ~kink
            zeno = crossing & clipped_last & hold_zeno  # crossed back right after a cut just past it
            candidates = kink | crossing | on_kink(theta, x, width)
            joint, _ = filippov_sides(error, theta, x, leak, width, train_output, a_fixed, candidates)
            entering = crossing & (joint | zeno)
            clipped_last = np.zeros_like(kink)
            if entering.any():
                w_snapped = snap(theta[: width * d].reshape(width, d), x, kink | entering)
                snapped = np.concatenate([w_snapped.ravel(), theta[width * d :]])
                snapped_loss = _loss(snapped, x, y, leak, width, train_output, a_fixed)
                if snapped_loss <= loss * (1 + floor):
                    kink |= entering
                    held |= zeno
                    theta, moved = snapped, True
                    continue
            if crossing.any():  # go to just past the first kink the step crosses (event location)
                fraction = min(1.0, first_crossing(theta, trial, x, width, crossing) * (1 + 1e-6) + 1e-12)
                clipped = theta + fraction * step
                clipped_loss = _loss(clipped, x, y, leak, width, train_output, a_fixed)
                short = step_size * float(np.abs(eigenvalues).max()) <= 1.0  # a step of explicit-Euler size
                if (short or fraction > 1e-6) and fraction < 1.0 and clipped_loss <= loss:
                    theta, time_spent, moved = clipped, time_spent + fraction * step_size, True
                    clipped_last = crossing
                    continue
            step_size /= 4
            if step_size * max(1.0, float(np.abs(eigenvalues).max())) < 1e-14:
                return theta, time_spent, evaluations, last_move
        loss, gradient, hessian, error = _hessian(theta, x, y, leak, width, train_output, a_fixed)
        evaluations += 1
        since_best += 1
    return theta, time_spent, evaluations, last_move
