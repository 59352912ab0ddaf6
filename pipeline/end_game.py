"""The end game: follow a run that gradient descent left unfinished to the point it is converging to.

Gradient descent with a fixed step spends most of a survey's budget on stretches where it moves slowly:
plateaus near saddles (escape at a rate set by a small negative curvature), the linear approach to a
minimum (rate ``1 - eta * lambda_min``, very slow along the flat directions of degenerate minima), the
interpolation regime (loss going to 0, where relative first-order gaps are noise), and limits on a kink,
which it approaches by zig-zagging across the kink. With a small step, gradient descent follows the
gradient flow ``theta' = -grad L(theta)``; the end game follows that same flow with steps that are
orders of magnitude longer, then polishes the limit:

0. **Gradient flow, exponential integrator with kink events.** Within an activation pattern the loss is
   a polynomial; with its gradient ``g`` and exact Hessian ``H``, a step of flow time ``h`` is
   ``-h phi_1(-h H) g`` (``phi_1(z) = (e^z - 1) / z``): the exact flow of the local quadratic model, which
   decays along positive curvature and grows along negative curvature exactly as the flow does, so a
   plateau is crossed in a few steps along the same unstable direction. A step is accepted if the true
   loss decreases and agrees with the model's prediction to 25%; the flow time then grows fourfold,
   otherwise it shrinks fourfold. Kinks are events: a step that crosses a neuron's kink is cut just past
   the first crossing. Which pairs ``(i, j)`` on kinks slide (Filippov sliding: GD's zig-zag), which
   leave to the active side and which stay inactive is decided jointly for each neuron by the
   minimum-norm element of the convex hull of the one-sided gradients (:func:`filippov_sides`); a
   sliding pair is put on the kink (``z_ij = 0``, a least change of ``w_j``, kept only if the loss does
   not rise) and the flow is projected onto the kink manifold until the pair stops sliding (an
   active-set treatment: pairs join and leave as the flow goes).
1. **Active-set trust-region Gauss-Newton** (:func:`scipy.optimize.least_squares`, ``method="trf"``) on
   the residuals ``r_i = (f(x_i) - y_i) / sqrt(n)``, with the Jacobian of the current pattern at every
   iterate: quadratic convergence to a zero-residual limit (interpolation regime), and steps that
   solve a least-squares problem for the smallest correction, so on a manifold of minima they move
   towards it, not along it.
2. **Kink-constrained Levenberg-Marquardt** (:func:`pipeline.stationary.refine.refine_end_points`): data
   points on a neuron's kink (the classifier's kink rule, with GD's zig-zag rule) are held exactly at
   ``z = 0`` and the loss of the polynomial piece is minimised, which makes a limit on a kink exactly
   stationary. Its result is kept only where it keeps the pattern and does not raise the loss.

The flow always runs first: a polish started from a plateau jumps across it to whichever minimum its
least-squares steps find (measured on the default survey: from a plateau at loss 0.05 straight to zero
loss, and from loss 1.4e-3 to a spurious minimum where the flow reaches zero loss). Where the flow stops
before a stationary point (budget, or no acceptable step), the polish may move each parameter by at most
the length of the flow's last move, so it cannot carry the run to another basin. Every stage only lowers
the loss. Finally every neuron is rescaled to the balance ``||w_j||^2 - ||a_j||^2`` it had at the start
(:func:`rebalance`), which the flow conserves and the polish does not. Whether the finished point is the
limit of gradient descent is measured, not assumed: ``benchmarks/validate_end_game.py`` continues
sampled runs with plain gradient descent for 10-50 times the budget and compares the verdicts (README,
"The end game").

No library integrates a piecewise-smooth (Filippov) gradient flow with sliding modes at kinks: SciPy's
stiff integrators (``solve_ivp``, BDF/Radau/LSODA) assume a smooth right-hand side and chatter at every
kink (measured: minutes per run on the default survey), which is why stage 0 is written here. Stage 0
and 1 run per run on the CPU with NumPy/SciPy (problems are small: ``n k`` residuals, ``m (d + k)``
parameters); stage 2 runs batched in torch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import least_squares

from pipeline import nets
from pipeline.flow_kinks import crossings, filippov_sides, first_crossing, kink_projector, leave_kinks, on_kink, snap
from pipeline.stationary.refine import refine_end_points

ZERO_RESIDUAL = 1e-10
"""The flow stops at a root-mean-square residual below this fraction of ``s_y`` (loss ``~1e-20 s_y**2``)."""
STATIONARY_REACH = 1e-6
"""From a stationary point of the flow the polish may move each parameter by this times ``1 + ||theta||``."""
STALL_EVALUATIONS = 25
"""The flow stops, unfinished, after this many Hessian evaluations in a row that did not lower the loss."""

__all__ = ["EndGameMethod", "EndGameOptions", "Finish", "finish_runs", "rebalance", "residual_jacobian"]


class EndGameMethod(enum.IntEnum):
    """What the end game did to a run (stored as small integers)."""

    NONE = 0
    FLOW_GAUSS_NEWTON = 1
    FLOW_GAUSS_NEWTON_KINK_REFINE = 2


@dataclass(frozen=True)
class EndGameOptions:
    """Settings of the end game (the survey's ``end_game`` section).

    Attributes
    ----------
    enabled
        Run the end game on runs whose end point is not certified.
    flow_evaluations
        Hessian evaluations of the gradient-flow stage per run (each is followed by one or more trial steps).
    max_evaluations
        Residual evaluations of the trust-region Gauss-Newton stage per run (each iteration needs one,
        plus one Jacobian when it accepts a step).
    refine_iterations
        Levenberg-Marquardt iterations of the kink-constrained stage.
    zero_loss_threshold
        A run whose loss stays below ``zero_loss_threshold * s_y**2`` and still falls is
        ``converging_to_zero_loss`` (``s_y**2 = ||Y||_F^2 / n``, twice the loss of the zero network).
    """

    enabled: bool = True
    flow_evaluations: int = 300
    max_evaluations: int = 200
    refine_iterations: int = 100
    zero_loss_threshold: float = 1e-6

    def check(self) -> None:
        """Raise ``ValueError`` naming the first field out of range."""
        if self.flow_evaluations < 1:
            raise ValueError(f"end_game.flow_evaluations must be at least 1; got {self.flow_evaluations}")
        if self.max_evaluations < 1:
            raise ValueError(f"end_game.max_evaluations must be at least 1; got {self.max_evaluations}")
        if self.refine_iterations < 0:
            raise ValueError(f"end_game.refine_iterations must be non-negative; got {self.refine_iterations}")
        if not 0.0 < self.zero_loss_threshold < 1.0:
            raise ValueError(f"end_game.zero_loss_threshold must lie in (0, 1); got {self.zero_loss_threshold}")


@dataclass(frozen=True)
class Finish:
    """Result of :func:`finish_runs`; numpy arrays with a leading axis over the finished runs ``P``.

    Attributes
    ----------
    w, a : (P, m, d), (P, m, k)
        The finished points (float64).
    method : (P,) int8
        :class:`EndGameMethod` code.
    gradient_evaluations : (P,) int64
        Hessian evaluations of stage 0 (each with its gradient), Jacobian evaluations of stage 1 and
        iterations of stage 2 (each evaluates the gradient).
    hessian_evaluations : (P,) int64
        Hessian evaluations of stage 0 and iterations of stage 2 (each forms the Hessian of the polynomial piece).
    distance : (P,)
        Euclidean distance in parameter space from the start to the finished point.
    loss_before, loss_after : (P,)
        :func:`pipeline.nets.loss` at the start and at the finished point.
    flow_time : (P,)
        Gradient-flow time covered by stage 0 (gradient descent covers ``learning_rate`` per step).
    """

    w: np.ndarray
    a: np.ndarray
    method: np.ndarray
    gradient_evaluations: np.ndarray
    hessian_evaluations: np.ndarray
    distance: np.ndarray
    loss_before: np.ndarray
    loss_after: np.ndarray
    flow_time: np.ndarray


def residual_jacobian(
    theta: np.ndarray, x: np.ndarray, y: np.ndarray, leak: float, width: int, train_output: bool, a_fixed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Residuals ``r = (f(x_i) - y_i) / sqrt(n)`` (n k,) and their Jacobian (n k, p) of one network.

    ``theta`` holds ``w`` (m, d) then, if ``train_output``, ``a`` (m, k), flattened; otherwise ``a`` is
    ``a_fixed``. Slopes follow :func:`pipeline.nets.activation_slope` (``rho'(0) = leak``).
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


def _gauss_newton(
    w: np.ndarray,
    a: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    leak: float,
    train_output: bool,
    budget: int,
    radius: float = np.inf,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Stage 1 for one run: ``(w, a, jacobian_evaluations)``; every parameter stays within ``radius`` of its start."""
    width, d = w.shape
    theta = np.concatenate([w.ravel(), a.ravel()]) if train_output else w.ravel().copy()

    def residual(t: np.ndarray) -> np.ndarray:
        return (_error(t, x, y, leak, width, train_output, a) * (1.0 / np.sqrt(x.shape[0]))).ravel()

    def jacobian(t: np.ndarray) -> np.ndarray:
        return residual_jacobian(t, x, y, leak, width, train_output, a)[1]

    bounds: tuple[float | np.ndarray, float | np.ndarray] = (-np.inf, np.inf)
    if np.isfinite(radius):
        half_width = max(radius, 1e-12 * (1.0 + float(np.abs(theta).max())))
        bounds = (theta - half_width, theta + half_width)
    solution = least_squares(
        residual, theta, jac=jacobian, method="trf", tr_solver="exact", x_scale=1.0,
        xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=budget, bounds=bounds,
    )  # fmt: skip
    theta = solution.x
    new_w = theta[: width * d].reshape(width, d)
    new_a = theta[width * d :].reshape(a.shape) if train_output else a
    return new_w, new_a, int(solution.njev)


def finish_runs(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    leak: float,
    train_output: bool,
    learning_rate: float,
    options: EndGameOptions,
) -> Finish:
    """Run the stages of the end game on every run of a batch.

    Parameters
    ----------
    w, a
        Start points (P, m, d), (P, m, k): gradient descent's end points.
    x, y
        Data (P or 1, n, d), (P or 1, n, k).
    leak
        Negative slope of the activation.
    train_output
        Whether the output weights are trained (else they stay fixed).
    learning_rate
        Gradient descent's step, for the classifier's zig-zag kink rule in stage 2.
    options
        Budgets (:class:`EndGameOptions`).
    """
    w0 = w.detach().cpu().to(torch.float64).numpy()
    a0 = a.detach().cpu().to(torch.float64).numpy()
    runs = w0.shape[0]
    xs = np.array(np.broadcast_to(x.detach().cpu().to(torch.float64).numpy(), (runs, *x.shape[1:])))
    ys = np.array(np.broadcast_to(y.detach().cpu().to(torch.float64).numpy(), (runs, *y.shape[1:])))
    xt, yt = torch.from_numpy(xs), torch.from_numpy(ys)
    w1, a1 = np.empty_like(w0), np.empty_like(a0)
    jacobians = np.zeros(runs, dtype=np.int64)
    flow_hessians = np.zeros(runs, dtype=np.int64)
    flow_time = np.zeros(runs)
    reach = np.full(runs, np.inf)
    for run in range(runs):
        w_run, a_run, x_run, y_run = w0[run], a0[run], xs[run], ys[run]
        width = w_run.shape[0]
        theta = np.concatenate([w_run.ravel(), a_run.ravel()]) if train_output else w_run.ravel().copy()
        theta, flow_time[run], flow_hessians[run], reach[run] = _flow(
            theta, x_run, y_run, leak, width, train_output, a_run, learning_rate, options.flow_evaluations
        )
        w_flow = theta[: w_run.size].reshape(w_run.shape)
        a_flow = theta[w_run.size :].reshape(a_run.shape) if train_output else a_run
        w1[run], a1[run], jacobians[run] = _gauss_newton(
            w_flow, a_flow, x_run, y_run, leak, train_output, options.max_evaluations, reach[run]
        )
    method = np.full(runs, int(EndGameMethod.FLOW_GAUSS_NEWTON), dtype=np.int8)
    refine_steps = np.zeros(runs, dtype=np.int64)
    polished_w, polished_a = w1.copy(), a1.copy()
    if options.refine_iterations > 0:
        refinement = refine_end_points(
            torch.from_numpy(w1), torch.from_numpy(a1), xt, yt, leak, train_output=train_output,
            max_iterations=options.refine_iterations, learning_rate=learning_rate,
        )  # fmt: skip
        refined = refinement.refined.numpy()
        moved = np.sqrt(((refinement.w.numpy() - polished_w) ** 2).sum(axis=(1, 2)))
        moved = np.sqrt(moved**2 + ((refinement.a.numpy() - polished_a) ** 2).sum(axis=(1, 2)))
        refined &= moved <= np.sqrt(w0[0].size + a0[0].size) * reach  # stay near an unfinished flow
        w1[refined], a1[refined] = refinement.w.numpy()[refined], refinement.a.numpy()[refined]
        refine_steps = refinement.iterations.numpy().astype(np.int64)
        method[refined] = int(EndGameMethod.FLOW_GAUSS_NEWTON_KINK_REFINE)
    if train_output:
        w1, a1 = rebalance(w1, a1, (w0**2).sum(axis=2) - (a0**2).sum(axis=2))
    distance = np.sqrt(((w1 - w0) ** 2).sum(axis=(1, 2)) + ((a1 - a0) ** 2).sum(axis=(1, 2)))
    return Finish(
        w=w1,
        a=a1,
        method=method,
        gradient_evaluations=flow_hessians + jacobians + refine_steps,
        hessian_evaluations=flow_hessians + refine_steps,
        flow_time=flow_time,
        distance=distance,
        loss_before=nets.loss(torch.from_numpy(w0), torch.from_numpy(a0), xt, yt, leak).numpy(),
        loss_after=nets.loss(torch.from_numpy(w1), torch.from_numpy(a1), xt, yt, leak).numpy(),
    )


def rebalance(w: np.ndarray, a: np.ndarray, balance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rescale each neuron ``(w_j, a_j) -> (c w_j, a_j / c)``, ``c > 0``, to ``||w_j||^2 - ||a_j||^2 = balance_j``.

    The network function does not change (the activation is positively homogeneous), and the gradient
    flow conserves ``||w_j||^2 - ||a_j||^2`` (theory.md 6), so on a manifold of minima the rescaled point
    is the one the flow from the start reaches, as far as this symmetry goes; the polishing stages do not
    conserve it. ``c**2`` is the positive root of ``||w||^2 u^2 - balance u - ||a||^2 = 0``. Neurons with
    ``w_j = 0`` or ``a_j = 0`` are left as they are.

    Parameters
    ----------
    w, a : (..., m, d), (..., m, k)
    balance : (..., m)
    """
    w_sq, a_sq = (w**2).sum(axis=-1), (a**2).sum(axis=-1)
    movable = (w_sq > 0) & (a_sq > 0)
    safe_w_sq = np.where(movable, w_sq, 1.0)
    u = (balance + np.sqrt(balance**2 + 4 * safe_w_sq * a_sq)) / (2 * safe_w_sq)
    c = np.where(movable & (u > 0), np.sqrt(np.where(u > 0, u, 1.0)), 1.0)
    return w * c[..., None], a / c[..., None]


def _error(
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
    return 0.5 * float(np.sum(_error(theta, x, y, leak, width, train_output, a_fixed) ** 2)) / x.shape[0]


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


def _flow(
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

    ``reach`` is how far the polish may move each parameter (:func:`finish_runs`): ``inf`` at zero loss,
    :data:`STATIONARY_REACH` times ``1 + ||theta||`` at a stationary point of positive loss (an unconfined
    Gauss-Newton step from a certified local minimum crossed kinks to a lower basin 0.45 away, measured),
    else the length of the flow's last move.

    Stops at a stationary point of the flow on its kink manifold (the quadratic model promises no decrease
    above rounding; the first time, and again whenever the loss has decreased since, every kink pair is
    released once more, since pairs held by the step-crossing rule may not slide), at zero loss (a
    root-mean-square residual below :data:`ZERO_RESIDUAL` times that of the zero network: the polish then
    finishes with a correction of that relative size, which cannot change the limit), when no step of flow
    time above ``1e-14 / |lambda|_max`` is accepted, when :data:`STALL_EVALUATIONS` evaluations in a row
    did not lower the loss, or after ``budget`` Hessian evaluations.
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
                return theta, time_spent, evaluations, STATIONARY_REACH * (1.0 + float(np.linalg.norm(theta)))
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
