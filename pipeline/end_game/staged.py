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
   active-set treatment: pairs join and leave as the flow goes). Where the flow would stop, a neuron whose
   input weights have reached the origin (all its kinks meet there) leaves it if a direction lowers the loss at
   first order (the Filippov set may contain 0 at a point that is not directionally stationary, which gradient
   descent leaves), along the steepest such direction of the classifier's own first-order test
   (:func:`pipeline.end_game.exponential.leave_origin`), and the flow goes on.
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
kink (measured: minutes per run on the default survey), which is why stage 0 is written here
(:mod:`pipeline.end_game.exponential`). Stage 0 and 1 run per run on the CPU with NumPy/SciPy (problems are small:
``n k`` residuals, ``m (d + k)`` parameters); stage 2 runs batched in torch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import least_squares

from pipeline.end_game.exponential import gradient_flow, network_error, residual_jacobian
from pipeline.losses import nets
from pipeline.stationary.refine import refine_end_points

__all__ = ["EndGameMethod", "EndGameOptions", "Finish", "finish_runs", "rebalance"]


class EndGameMethod(enum.IntEnum):
    """What the end game did to a run (stored as small integers)."""

    NONE = 0
    FLOW_GAUSS_NEWTON = 1
    FLOW_GAUSS_NEWTON_KINK_REFINE = 2
    FLOW = 3
    """The batched gradient flow to its limit (:mod:`pipeline.end_game.by_flow`; the population losses)."""


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
        :func:`pipeline.losses.nets.loss` at the start and at the finished point.
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
        return (network_error(t, x, y, leak, width, train_output, a) * (1.0 / np.sqrt(x.shape[0]))).ravel()

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
        theta, flow_time[run], flow_hessians[run], reach[run] = gradient_flow(
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
