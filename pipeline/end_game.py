"""The end game: follow a run that gradient descent left unfinished to the point it is converging to.

Gradient descent with a fixed step spends most of a survey's budget on the last stretch: the linear
approach to a minimum (rate ``1 - eta * lambda_min``, very slow on the flat directions of degenerate
minima), the interpolation regime (loss going to 0, where relative first-order gaps are noise), and
points whose limit lies on a kink, which it approaches by zig-zagging across the kink. The end game
replaces that stretch by two second-order stages that converge fast to the same point:

1. **Active-set trust-region Gauss-Newton** (:func:`scipy.optimize.least_squares`, ``method="trf"``).
   The loss is ``1/2 ||r||^2`` with residuals ``r_i = (f(x_i) - y_i) / sqrt(n)``; the Jacobian is the one of
   the current activation pattern, recomputed at every iterate, so data points may join or leave a
   neuron's active set during the approach (an active-set treatment, not a frozen pattern). Every step
   is accepted only if it lowers the true (piecewise) loss, and the trust region bounds how far a step
   may go, so the iteration cannot jump over a ridge into another basin. On a zero-residual problem
   Gauss-Newton converges quadratically (interpolation regime). Its steps solve a least-squares problem
   for the smallest correction, so on a manifold of minima they move towards it, not along it.
2. **Kink-constrained Levenberg-Marquardt** (:func:`pipeline.stationary.refine.refine_end_points`):
   data points that sit on a neuron's kink (by the classifier's kink rule, including gradient descent's
   zig-zag rule) are held exactly at ``z = 0`` and the loss of the resulting polynomial piece is
   minimised. This makes a limit on a kink exactly stationary, where stage 1 can only chatter.
   Its result is kept only where it keeps the pattern and does not raise the loss.

Neither stage uses negative curvature, so neither escapes a saddle that gradient descent would still be
crossing: a run on a plateau stays there and is reported as such. Whether the finished point describes
the limit of gradient descent is measured, not assumed: ``benchmarks/validate_end_game.py`` continues
sampled runs with plain gradient descent for 10-50 times the budget and compares verdicts.

Stage 1 runs per run on the CPU with SciPy (the problems are small: ``n k`` residuals, ``m (d + k)``
parameters), stage 2 batched in torch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import least_squares

from pipeline import nets
from pipeline.stationary.refine import refine_end_points

__all__ = ["EndGameMethod", "EndGameOptions", "Finish", "finish_runs", "residual_jacobian"]


class EndGameMethod(enum.IntEnum):
    """What the end game did to a run (stored as small integers)."""

    NONE = 0
    GAUSS_NEWTON = 1
    GAUSS_NEWTON_KINK_REFINE = 2


@dataclass(frozen=True)
class EndGameOptions:
    """Settings of the end game (the survey's ``end_game`` section).

    Attributes
    ----------
    enabled
        Run the end game on runs whose end point is not certified.
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
    max_evaluations: int = 200
    refine_iterations: int = 100
    zero_loss_threshold: float = 1e-6

    def check(self) -> None:
        """Raise ``ValueError`` naming the first field out of range."""
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
        Jacobian evaluations of stage 1 plus iterations of stage 2 (each evaluates the gradient).
    hessian_evaluations : (P,) int64
        Iterations of stage 2 (each forms the Hessian of the polynomial piece).
    distance : (P,)
        Euclidean distance in parameter space from the start to the finished point.
    loss_before, loss_after : (P,)
        :func:`pipeline.nets.loss` at the start and at the finished point.
    """

    w: np.ndarray
    a: np.ndarray
    method: np.ndarray
    gradient_evaluations: np.ndarray
    hessian_evaluations: np.ndarray
    distance: np.ndarray
    loss_before: np.ndarray
    loss_after: np.ndarray


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
    w: np.ndarray, a: np.ndarray, x: np.ndarray, y: np.ndarray, leak: float, train_output: bool, budget: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Stage 1 for one run: ``(w, a, jacobian_evaluations)``."""
    width, d = w.shape
    theta = np.concatenate([w.ravel(), a.ravel()]) if train_output else w.ravel().copy()

    def residual(t: np.ndarray) -> np.ndarray:
        return residual_jacobian(t, x, y, leak, width, train_output, a)[0]

    def jacobian(t: np.ndarray) -> np.ndarray:
        return residual_jacobian(t, x, y, leak, width, train_output, a)[1]

    solution = least_squares(
        residual, theta, jac=jacobian, method="trf", tr_solver="exact", x_scale=1.0,
        xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=budget,
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
    """Run both stages of the end game on every run of a batch.

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
    xs = np.broadcast_to(x.detach().cpu().to(torch.float64).numpy(), (runs, *x.shape[1:]))
    ys = np.broadcast_to(y.detach().cpu().to(torch.float64).numpy(), (runs, *y.shape[1:]))
    w1, a1 = np.empty_like(w0), np.empty_like(a0)
    jacobians = np.zeros(runs, dtype=np.int64)
    for run in range(runs):
        w1[run], a1[run], jacobians[run] = _gauss_newton(
            w0[run], a0[run], xs[run], ys[run], leak, train_output, options.max_evaluations
        )
    method = np.full(runs, int(EndGameMethod.GAUSS_NEWTON), dtype=np.int8)
    refine_steps = np.zeros(runs, dtype=np.int64)
    if options.refine_iterations > 0:
        refinement = refine_end_points(
            torch.from_numpy(w1), torch.from_numpy(a1), torch.from_numpy(np.ascontiguousarray(xs)),
            torch.from_numpy(np.ascontiguousarray(ys)), leak, train_output=train_output,
            max_iterations=options.refine_iterations, learning_rate=learning_rate,
        )  # fmt: skip
        refined = refinement.refined.numpy()
        w1[refined], a1[refined] = refinement.w.numpy()[refined], refinement.a.numpy()[refined]
        refine_steps = refinement.iterations.numpy().astype(np.int64)
        method[refined] = int(EndGameMethod.GAUSS_NEWTON_KINK_REFINE)
    distance = np.sqrt(((w1 - w0) ** 2).sum(axis=(1, 2)) + ((a1 - a0) ** 2).sum(axis=(1, 2)))
    xt, yt = torch.from_numpy(np.ascontiguousarray(xs)), torch.from_numpy(np.ascontiguousarray(ys))
    return Finish(
        w=w1,
        a=a1,
        method=method,
        gradient_evaluations=jacobians + refine_steps,
        hessian_evaluations=refine_steps,
        distance=distance,
        loss_before=nets.loss(torch.from_numpy(w0), torch.from_numpy(a0), xt, yt, leak).numpy(),
        loss_after=nets.loss(torch.from_numpy(w1), torch.from_numpy(a1), xt, yt, leak).numpy(),
    )
