"""Full-batch gradient descent on a batch of one-hidden-layer networks, for any loss.

Pure: a :class:`~pipeline.problems.Problem` and tensors in, a :class:`~pipeline.dynamics.DescentResult` of
tensors out. No I/O, no global random state, no configuration objects. Device and dtype are taken from the
inputs, so the same code runs on CPU and GPU.

Example
-------
>>> import torch
>>> from pipeline.dynamics import descend
>>> from pipeline.problems import SampledProblem
>>> x = torch.randn(1, 16, 3, dtype=torch.float64)           # one dataset shared by all runs
>>> y = torch.randn(1, 16, 1, dtype=torch.float64)
>>> w0 = 0.1 * torch.randn(256, 8, 3, dtype=torch.float64)   # 256 runs of width 8
>>> a0 = 0.1 * torch.randn(256, 8, 1, dtype=torch.float64)
>>> result = descend(SampledProblem(x, y, leak=0.0), w0, a0, learning_rate=0.05, max_steps=1000)
>>> result.stop_reason.shape
torch.Size([256])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from pipeline.dynamics.result import DescentResult, StopReason
from pipeline.losses import nets
from pipeline.trajectory import CheckpointRecorder, PlateauRecorder, PlateauSettings, checkpoint_steps

if TYPE_CHECKING:
    from pipeline.problems.base import Problem

__all__ = ["GRAD_TOL_FLOOR_EPS", "DescentOptions", "descend"]

GRAD_TOL_FLOOR_EPS = 100.0
"""The convergence tolerance is never below this many machine epsilons of the dtype: gradients are
not resolved below rounding noise (float32 would otherwise never converge)."""


@dataclass(frozen=True)
class DescentOptions:
    """How gradient descent runs, whatever the loss (the keyword arguments of :func:`descend`)."""

    learning_rate: float
    max_steps: int
    grad_tol: float
    divergence_factor: float
    n_checkpoints: int
    plateaus: PlateauSettings

    def check(self) -> None:
        """Raise ``ValueError`` naming the first option out of range."""
        if not self.learning_rate > 0.0:
            raise ValueError(f"learning_rate must be positive; got {self.learning_rate}")
        if self.max_steps < 0:
            raise ValueError(f"max_steps must be non-negative; got {self.max_steps}")
        if not self.grad_tol > 0.0:
            raise ValueError(f"grad_tol must be positive; got {self.grad_tol}")
        if not self.divergence_factor > 1.0:
            raise ValueError(f"divergence_factor must exceed 1; got {self.divergence_factor}")


def descend(
    problem: Problem,
    w0: torch.Tensor,
    a0: torch.Tensor,
    *,
    learning_rate: float,
    max_steps: int,
    grad_tol: float = 1e-8,
    divergence_factor: float = 1e6,
    n_checkpoints: int = 64,
    plateaus: PlateauSettings | None = None,
) -> DescentResult:
    """Train a batch of networks by full-batch gradient descent, each run stopping on its own.

    A run converges when its gradient is resolved both in absolute terms and relative to the size
    of every neuron:

    * ``||grad L|| <= grad_tol * s_y**1.5 * s_x**0.5`` (the natural gradient scale: loss ``s_y**2``
      over parameter size ``sqrt(s_y / s_x)``), and
    * ``||(dL/dw_j, dL/da_j)|| <= grad_tol * s_x * s_y * ||(w_j, a_j)||`` for every neuron ``j``.

    For a neuron of the natural size the two tests coincide. The second one keeps the runs going
    whose gradient is small only because some neurons are small (theory.md section 6): near the
    zero network after a vanishing initialisation, or near a saddle with a tiny escape neuron,
    such a neuron still grows or shrinks by a fixed fraction per unit of time
    (``||g_j|| / ||(w_j, a_j)||`` is its relative rate, of order ``s_x * s_y`` times the loss
    ratio ``sqrt(L) / s_y``), and the classifier's relative first-order gaps (theory.md 8.2 step 5)
    would see it far from stationary. At a zero-loss minimum every neuron's gradient vanishes with
    the residual, so interpolating runs still stop; an exactly zero neuron has a zero gradient and
    never holds a run back. A run also stops after ``max_steps`` steps, or when its loss is
    non-finite or exceeds ``divergence_factor`` times its initial loss (plus ``s_y**2``). Stopped
    runs are frozen by a mask; the batch keeps its shape.

    The scales ``s_x``, ``s_y`` and the gradients are the problem's (:meth:`Problem.scales`,
    :meth:`Problem.evaluator`); the output weights stay at ``a0`` when the problem does not train them.

    Parameters
    ----------
    problem
        The loss (:mod:`pipeline.problems`): data or population, activation, trained layers.
    w0, a0
        Initial parameters, (R, m, d) and (R, m, k), checked against the problem (:meth:`Problem.check`).
    learning_rate
        Step size ``eta > 0``.
    max_steps
        Step budget (>= 0).
    grad_tol
        Relative gradient-norm tolerance for convergence (> 0), for the whole gradient and for every
        neuron; raised to ``GRAD_TOL_FLOOR_EPS * eps`` of the dtype if smaller.
    divergence_factor
        Loss growth factor that flags a run as diverged (> 1).
    n_checkpoints
        Size of the log-spaced step grid of the trajectory summary (>= 2).
    plateaus
        Plateau-detection thresholds (default :class:`PlateauSettings`).
    """
    options = DescentOptions(
        learning_rate, max_steps, grad_tol, divergence_factor, n_checkpoints, plateaus or PlateauSettings()
    )
    problem.check(w0, a0)
    options.check()
    s_x, s_y = problem.scales()
    evaluate = problem.evaluator(w0.shape[0], w0.shape[1])
    learning_rate, max_steps, train_output = options.learning_rate, options.max_steps, problem.train_output
    divergence_factor, plateaus = options.divergence_factor, options.plateaus
    n_runs, width = w0.shape[0], w0.shape[1]
    grad_tol = max(options.grad_tol, GRAD_TOL_FLOOR_EPS * torch.finfo(w0.dtype).eps)
    grad_threshold = (grad_tol * s_y**1.5 * s_x**0.5).expand(n_runs)
    neuron_rate_limit = (grad_tol * s_x * s_y).expand(n_runs)
    steps = checkpoint_steps(max_steps, options.n_checkpoints)
    checkpoints = CheckpointRecorder(steps, n_runs, width, w0)
    plateau_recorder = PlateauRecorder(plateaus, (learning_rate * s_x * s_y).expand(n_runs), w0, a0)

    w, a = w0.clone(), a0.clone()
    active = torch.ones(n_runs, dtype=torch.bool, device=w0.device)
    step_size = torch.full((n_runs, 1, 1), learning_rate, dtype=w0.dtype, device=w0.device)
    steps_taken = torch.zeros(n_runs, dtype=torch.int64, device=w0.device)
    stop_reason = torch.zeros(n_runs, dtype=torch.int64, device=w0.device)
    loss_final = torch.full((n_runs,), torch.nan, dtype=w0.dtype, device=w0.device)
    grad_norm_final = torch.full_like(loss_final, torch.nan)
    loss_limit: torch.Tensor | None = None
    for step in range(max_steps + 1):
        grads = evaluate(w, a)
        grad_norm = grads.norm()
        if loss_limit is None:
            loss_limit = divergence_factor * (grads.loss + s_y.square())
        healthy = torch.isfinite(grads.loss) & (grads.loss <= loss_limit) & torch.isfinite(grad_norm)
        live = active & healthy
        small_gradient = live & (grad_norm <= grad_threshold)
        stopping = (active & ~healthy) | small_gradient if step < max_steps else active
        checkpoints.record(step, live, grads.loss, grad_norm, w, a)
        plateau_recorder.update(step, live, grads.loss, grad_norm, w, a)
        if bool(stopping.any()):  # most steps skip this: no run has a small gradient, diverged or ran out
            # the per-neuron test runs only where the whole gradient is small: no cost on the other steps
            converged = small_gradient & neurons_resolved(grads, w, a, neuron_rate_limit)
            if step < max_steps:
                stopping = (active & ~healthy) | converged
            if bool(stopping.any()):  # bookkeeping of stopping runs
                reason = torch.where(converged, int(StopReason.CONVERGED), int(StopReason.MAX_STEPS))
                reason = torch.where(healthy, reason, int(StopReason.DIVERGED))
                plateau_recorder.finish(stopping, step, stopping & ~healthy)
                stop_reason = torch.where(stopping, reason, stop_reason)
                steps_taken = torch.where(stopping, step, steps_taken)
                loss_final = torch.where(stopping, grads.loss, loss_final)
                grad_norm_final = torch.where(stopping, grad_norm, grad_norm_final)
                active = active & ~stopping
                if not bool(active.any()):
                    break
                step_size = (learning_rate * active.to(w.dtype))[:, None, None]
        w = torch.addcmul(w, step_size, grads.grad_w, value=-1.0)
        if train_output:
            a = torch.addcmul(a, step_size, grads.grad_a, value=-1.0)

    return DescentResult.from_recorders(
        (w0, a0),
        (w, a),
        (loss_final, grad_norm_final, steps_taken, stop_reason),
        torch.as_tensor(steps, device=w0.device),
        checkpoints,
        plateau_recorder,
    )


def neurons_resolved(grads: nets.Gradients, w: torch.Tensor, a: torch.Tensor, rate_limit: torch.Tensor) -> torch.Tensor:
    """Whether every neuron's gradient is at most ``rate_limit`` (R,) times the neuron's size, (R,).

    Neuron ``j`` passes when ``||dL/dw_j||^2 + ||dL/da_j||^2 <= rate_limit^2 (||w_j||^2 + ||a_j||^2)``;
    an exactly zero neuron (zero gradient) passes.
    """
    gradient = torch.linalg.vecdot(grads.grad_w, grads.grad_w) + torch.linalg.vecdot(grads.grad_a, grads.grad_a)
    size = torch.linalg.vecdot(w, w) + torch.linalg.vecdot(a, a)
    resolved: torch.Tensor = (gradient <= rate_limit.square().unsqueeze(-1) * size).all(dim=-1)
    return resolved
