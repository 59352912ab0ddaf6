"""Gradient flow ``dtheta/dt = -grad L(theta)`` of a batch of networks, by a batched adaptive Rosenbrock method.

Pure: tensors in, a :class:`FlowResult` of tensors out; device and dtype from the inputs (the same code on CPU
and GPU). A loss takes part through its flow system (:meth:`pipeline.problems.Problem.flow_system`,
:mod:`pipeline.dynamics.flow_system`): the sampled loss with ReLU or leaky ReLU
(:mod:`pipeline.problems.sampled_flow`), the Gaussian population loss (:mod:`pipeline.problems.gaussian_flow`)
and the interval population loss with every activation (:mod:`pipeline.problems.interval_flow`).

Method
------
RODAS4 (:mod:`pipeline.dynamics.rodas`): L-stable, order 4, one LU factorisation of ``I / (h gamma) + H`` with
the exact Hessian ``H`` and six gradient evaluations per step. Gradient flows of these losses are stiff where it
matters: on a plateau or in the slow approach to a minimum the Hessian has eigenvalues of order ``s_x s_y``
(the fitted neurons) next to the small rates that drive the motion (escape rates, the smallest curvature), and
an explicit method, gradient descent and explicit Runge-Kutta pairs included, is held to steps
``h < c / lambda_max`` by stability however slowly the trajectory moves. An L-stable method takes steps set by
accuracy alone. Order 4 matters because a plateau escape is an exponential growth over many e-folds: the local
error of an order-``p`` method is ``(h lambda)^(p+1)``, so at ``rtol = 1e-6`` an order-2 method needs about 50
steps per e-fold and RODAS4 about 6. No maintained library integrates a batch of independent systems with
per-run step control in torch (``torchdiffeq`` and ``torchode`` are explicit, or share one step over the batch),
and ``scipy.integrate.solve_ivp`` runs one network at a time; hence this module.

Measured (``python benchmarks/bench_flow.py``, 1 thread, float64, a batch of 40 runs per cell as the surveys run
them, ``rtol`` 1e-6, ``atol`` 1e-12), against the engine's gradient descent run to the same convergence test or
flow time, and ``scipy.integrate.solve_ivp`` per network with the same exact Hessian as Jacobian:

* vanishing initialisation (``saddle_to_saddle``, d = 2, k = 1): 122,450 gradients and 20,035 Hessians against
  1,260,128 gradients (10.3x fewer), 6.8 s against 9.2 s of wall time; per network BDF 14.8x and LSODA 58.7x
  slower in wall time;
* Safran-Shamir population loss (k = 6, width 7): 147,950 gradients and 24,265 Hessians against 1,600,040 (10.8x
  fewer), 4.2 s against 19.6 s; BDF 6.3x and LSODA 5.4x slower. With the Hessian by ``torch.func`` instead of
  the closed form of :mod:`pipeline.losses.population_hessian` (20 ms against 0.27 ms per gradient) the flow had the
  wall time of gradient descent here and BDF, which reuses its Jacobian over many steps, was 2x faster. At 8
  runs per batch the flow is only 2.0x faster than BDF: the batch amortises the per-step work.

Also tried: exprb32, an exponential Rosenbrock method of order 3 with one eigendecomposition of ``H`` and two
gradients per step (exact for the linear dynamics of small neurons near a saddle, so it should cross plateaus
in few steps). On four vanishing-initialisation runs it reached only flow time 20 to 87 of 2,000 in 300 steps,
because every step of the escape stops at a kink crossing (neurons near zero turn through many data
hyperplanes), against 385 to 594 steps for RODAS4 to reach the end (its kink handling then had the two fixes
of :mod:`pipeline.problems.sampled_flow` that exprb32 was not tried with: crossings measured from the freeze,
negligible neurons left out).

Per-run control: each run has its own step size and flow time; every iteration takes one trial step of every
run still going, accepts or rejects it per run (weighted RMS of the embedded error estimate), and compacts
stopped runs out of the batch, so a stiff run costs the others nothing but the width of the batch.

Kinks (theory.md section 3): within a step the problem's pieces are frozen at the step's start (for the sampled
loss: the activation pattern, with the Filippov side of every pair on its kink, and sliding pairs projected), so
that the stages see a smooth vector field. After a step that carried a pair across its kink, the crossing is
located on the step's dense output by bisection and the step is accepted up to the crossing: no rejection, no
step-size collapse at a kink. The next step re-freezes with the pair on its kink, where the Filippov decision
sends it across, keeps it inactive, or makes it slide; a sliding pair stays exactly on its kink (its neuron's
input weights move orthogonally to ``x_i``) until the decision at a later step start lets it leave.

Stopping: a run *converges* by the engine's own test (:func:`pipeline.dynamics.descend`) on the
gradient of the frozen loss, which is the Filippov (minimum-norm) velocity on sliding pairs; it *diverges* when
its loss is non-finite or grows past ``divergence_factor`` times its start (plus ``s_y^2``), or when its step
size collapses below ``1e-13`` of its flow time; it reaches *max steps* at ``max_time`` or after ``max_steps``
accepted steps. Checkpoints are at the flow times ``t = step * learning_rate`` of the engine's log-spaced grid
(gradient descent with that learning rate is this flow's explicit Euler discretisation), read off the dense
output, so that a :class:`pipeline.dynamics.DescentResult` comes out for everything downstream; its
``steps_taken`` is the flow time in those gradient-descent steps. Plateaus: the engine's detector
(:class:`pipeline.trajectory.PlateauRecorder`) is fed at every step start with the flow time in gradient-descent
steps and the loss decrease per such step, so that the flow's plateaus are those of the gradient descent it
discretises, in the same units and with the same thresholds (a plateau's representative is the step start of
smallest gradient norm: the integrator's steps are long on a plateau, so it lies on the plateau's step grid).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from pipeline.dynamics.flow_system import KINK_BAND, FlowSystem, pack, unpack
from pipeline.dynamics.gradient_descent import GRAD_TOL_FLOOR_EPS, neurons_resolved
from pipeline.dynamics.result import DescentResult, StopReason
from pipeline.dynamics.rodas import RosenbrockStep, dense_output, rosenbrock_step
from pipeline.losses import nets
from pipeline.trajectory import CheckpointRecorder, PlateauRecorder, PlateauSettings, checkpoint_steps

if TYPE_CHECKING:
    from pipeline.problems.base import Problem

__all__ = ["FlowOptions", "FlowResult", "flow", "integrate"]


@dataclass(frozen=True)
class FlowOptions:
    """How the flow is integrated and when a run stops.

    Attributes
    ----------
    learning_rate
        Gradient-descent step whose multiples are the checkpoint times (and the first trial step).
    max_time
        Flow time after which a run stops (``StopReason.MAX_STEPS``).
    rtol, atol
        Relative and absolute tolerance of the local error per parameter.
    grad_tol, divergence_factor, n_checkpoints
        As in :func:`pipeline.dynamics.descend`.
    max_steps
        Accepted steps after which a run stops (``StopReason.MAX_STEPS``).
    """

    learning_rate: float
    max_time: float
    rtol: float = 1e-6
    atol: float = 1e-12
    grad_tol: float = 1e-8
    divergence_factor: float = 1e6
    n_checkpoints: int = 64
    max_steps: int = 20000

    def check(self) -> None:
        """Raise ``ValueError`` naming the first option out of range."""
        for name in ("learning_rate", "rtol", "atol", "grad_tol"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}")
        if not self.max_time >= 0.0:
            raise ValueError(f"max_time must be non-negative; got {self.max_time}")
        if not self.divergence_factor > 1.0:
            raise ValueError(f"divergence_factor must exceed 1; got {self.divergence_factor}")


@dataclass(frozen=True)
class FlowResult:
    """Per-run outcome of :func:`integrate_flow`.

    Attributes
    ----------
    descent
        The outcome in the engine's form (``steps_taken``: flow time over the learning rate, rounded).
    time : (R,)
        Flow time reached.
    n_steps, n_rejected : (R,) int64
        Accepted and rejected Rosenbrock steps.
    n_gradients, n_hessians : (R,) int64
        Gradient and Hessian evaluations.
    """

    descent: DescentResult
    time: torch.Tensor
    n_steps: torch.Tensor
    n_rejected: torch.Tensor
    n_gradients: torch.Tensor
    n_hessians: torch.Tensor


def flow(problem: Problem, w0: torch.Tensor, a0: torch.Tensor, options: FlowOptions) -> FlowResult:
    """Integrate the gradient flow of ``problem`` from ``w0`` (R, m, d), ``a0`` (R, m, k) until every run stops.

    The loss's flow system is :meth:`pipeline.problems.Problem.flow_system`; the scales of the convergence test
    are :meth:`pipeline.problems.Problem.scales`, as in :func:`pipeline.dynamics.descend`.
    """
    problem.check(w0, a0)
    system = problem.flow_system(a0)
    if system is None:
        raise ValueError(
            f"the gradient flow does not integrate the loss {type(problem).__name__} with activation "
            f"{problem.activation.name!r} yet; use dynamics: gd"
        )
    s_x, s_y = problem.scales()
    return integrate(system, w0, a0, s_x, s_y, options, train_output=problem.train_output)


def integrate(
    problem: FlowSystem,
    w0: torch.Tensor,
    a0: torch.Tensor,
    s_x: torch.Tensor,
    s_y: torch.Tensor,
    options: FlowOptions,
    *,
    train_output: bool = True,
) -> FlowResult:
    """Integrate the flow of the system ``problem`` (``R`` runs) from ``w0`` (R, m, d), ``a0`` (R, m, k).

    ``s_x``, ``s_y`` (R or 1,) are the scales of the convergence test of :func:`pipeline.dynamics.descend`.
    """
    options.check()
    n_runs, width = w0.shape[:2]
    like: dict[str, Any] = dict(dtype=w0.dtype, device=w0.device)
    grad_tol = max(options.grad_tol, GRAD_TOL_FLOOR_EPS * torch.finfo(w0.dtype).eps)
    grad_threshold = (grad_tol * s_y**1.5 * s_x**0.5).expand(n_runs)
    rate_limit = (grad_tol * s_x * s_y).expand(n_runs)
    steps = checkpoint_steps(round(options.max_time / options.learning_rate), options.n_checkpoints)
    times = torch.as_tensor(steps, **like) * options.learning_rate
    checkpoints = _Checkpoints(CheckpointRecorder(steps, n_runs, width, w0), times, a0, train_output)
    counts = {name: torch.zeros(n_runs, dtype=torch.int64, device=w0.device) for name in ("steps", "rejected")}
    counts |= {name: torch.zeros_like(counts["steps"]) for name in ("gradients", "hessians", "stop")}
    final = {"theta": pack(w0, a0, train_output), "time": torch.zeros(n_runs, **like)}
    final |= {"loss": torch.full((n_runs,), torch.nan, **like), "grad_norm": torch.full((n_runs,), torch.nan, **like)}

    plateaus = _FlowPlateaus(PlateauRecorder(PlateauSettings(), (options.learning_rate * s_x * s_y).expand(n_runs),
                                             w0, a0), a0, options.learning_rate, train_output)  # fmt: skip
    runs = torch.arange(n_runs, device=w0.device)
    theta, time = final["theta"].clone(), final["time"].clone()
    step_size = torch.full((n_runs,), options.learning_rate, **like)
    loss_limit: torch.Tensor | None = None
    while runs.numel():
        problem.freeze(theta)
        grads, gradient = problem.gradients(theta)
        counts["gradients"][runs] += 1
        grad_norm = grads.norm()
        if loss_limit is None:
            loss_limit = options.divergence_factor * (grads.loss + s_y.expand(n_runs).square())
            checkpoints.record(runs, torch.ones_like(runs, dtype=torch.bool), theta, grads)
        healthy = torch.isfinite(grads.loss) & (grads.loss <= loss_limit[runs]) & torch.isfinite(grad_norm)
        w, a = unpack(theta, a0[runs], width, train_output)
        converged = healthy & (grad_norm <= grad_threshold[runs])
        converged = converged & neurons_resolved(grads, w, a, rate_limit[runs])
        out_of_time = (time >= options.max_time) | (counts["steps"][runs] >= options.max_steps)
        stalled = step_size <= 1e-13 * torch.clamp(time, min=options.learning_rate)
        stopping = ~healthy | converged | out_of_time | stalled
        plateaus.update(runs, healthy, time, theta, grads, grad_norm)
        if bool(stopping.any()):
            reason = torch.where(converged, int(StopReason.CONVERGED), int(StopReason.MAX_STEPS))
            reason = torch.where(healthy & ~stalled, reason, int(StopReason.DIVERGED))
            plateaus.finish(runs, stopping, time, ~(healthy & ~stalled))
            done = runs[stopping]
            counts["stop"][done] = reason[stopping]
            final["theta"][done], final["time"][done] = theta[stopping], time[stopping]
            final["loss"][done], final["grad_norm"][done] = grads.loss[stopping], grad_norm[stopping]
            keep = torch.nonzero(~stopping).squeeze(-1)
            if not keep.numel():
                break
            problem, runs, theta, time, step_size = (
                problem.select(keep),
                runs[keep],
                theta[keep],
                time[keep],
                step_size[keep],
            )
            gradient = gradient[keep]
        hessian = problem.hessian(theta)
        counts["hessians"][runs] += 1
        step_size = torch.minimum(step_size, options.max_time - time)

        def field(point: torch.Tensor, system: FlowSystem = problem) -> torch.Tensor:
            return -system.gradients(point)[1]

        trial = rosenbrock_step(field, theta, -gradient, -hessian, step_size)
        counts["gradients"][runs] += 5
        scale = options.atol + options.rtol * torch.maximum(theta.abs(), trial.y_new.abs())
        error = (trial.error / scale).square().mean(dim=-1).sqrt()
        accepted = torch.isfinite(error) & (error <= 1.0) & torch.isfinite(trial.y_new).all(dim=-1)
        fraction = _first_crossing(problem, theta, trial, accepted)
        end = time + fraction * step_size
        counts["gradients"][runs] += checkpoints.record_along(
            problem, runs, theta, trial, time, step_size, end, accepted
        )
        theta = torch.where(accepted[:, None], dense_output(theta, trial, fraction), theta)
        time = torch.where(accepted, end, time)
        counts["steps"][runs] += accepted.to(torch.int64)
        counts["rejected"][runs] += (~accepted).to(torch.int64)
        growth = torch.nan_to_num(0.9 * error.pow(-0.25), nan=0.2, posinf=6.0).clamp(0.2, 6.0)
        step_size = step_size * torch.where(accepted, growth, growth.clamp(max=0.5))

    w_final, a_final = unpack(final["theta"], a0, width, train_output)
    steps_taken = torch.round(final["time"] / options.learning_rate).to(torch.int64)
    descent = DescentResult.from_recorders(
        (w0, a0),
        (w_final, a_final.clone()),
        (final["loss"], final["grad_norm"], steps_taken, counts["stop"]),
        torch.as_tensor(steps, device=w0.device),
        checkpoints.recorder,
        plateaus.recorder,
    )
    return FlowResult(
        descent, final["time"], counts["steps"], counts["rejected"], counts["gradients"], counts["hessians"]
    )


def _first_crossing(
    problem: FlowSystem, theta: torch.Tensor, trial: RosenbrockStep, accepted: torch.Tensor, iterations: int = 48
) -> torch.Tensor:
    """Fraction of each accepted step (R,) up to just past its first kink crossing (1 where none).

    Bisection on the dense output for the first point where a pair is more than half the kink band on the wrong
    side of its frozen piece; the point returned lies within the band, so the next step starts on the kink.
    """
    fraction = torch.ones_like(theta[:, 0])
    crossed = accepted & (problem.violation(trial.y_new) > 0.5 * KINK_BAND)
    if not bool(crossed.any()):
        return fraction
    low, high = torch.zeros_like(fraction), fraction.clone()
    for _ in range(iterations):
        middle = 0.5 * (low + high)
        past = problem.violation(dense_output(theta, trial, middle)) > 0.5 * KINK_BAND
        high, low = torch.where(past, middle, high), torch.where(past, low, middle)
    return torch.where(crossed, high, fraction)


class _FlowPlateaus:
    """Feeds a :class:`pipeline.trajectory.PlateauRecorder` at the start of every step, in gradient-descent steps.

    The recorder sees the flow's time ``t`` as the step ``round(t / learning_rate)`` and the loss decrease per
    such step since its last feed, so that a plateau of the flow is one of the gradient descent it discretises
    (same thresholds, in the same time units); the representative is the step start of smallest gradient norm.
    """

    def __init__(self, recorder: PlateauRecorder, a0: torch.Tensor, learning_rate: float, train_output: bool) -> None:
        self.recorder, self.a0, self.learning_rate, self.train_output = recorder, a0, learning_rate, train_output
        n_runs = a0.shape[0]
        self.step = torch.zeros(n_runs, dtype=torch.int64, device=a0.device)  # the last step fed, per run
        self.fed = False

    def _full(self, runs: torch.Tensor, values: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        full = values.new_full((self.a0.shape[0], *values.shape[1:]), fill)
        full[runs] = values
        return full

    def update(
        self,
        runs: torch.Tensor,
        healthy: torch.Tensor,
        time: torch.Tensor,
        theta: torch.Tensor,
        grads: nets.Gradients,
        grad_norm: torch.Tensor,
    ) -> None:
        """Feed the state of the runs ``runs`` at the start of their step (flow ``time`` (r,))."""
        step = torch.round(time / self.learning_rate).to(torch.int64)
        elapsed = (step - self.step[runs]).to(time.dtype)
        active = torch.zeros(self.a0.shape[0], dtype=torch.bool, device=time.device)
        active[runs] = healthy & ((elapsed > 0) | (not self.fed))
        w, a = unpack(theta, self.a0[runs], self.a0.shape[1], self.train_output)
        self.recorder.update(
            self._full(runs, step), active, self._full(runs, grads.loss, 1.0), self._full(runs, grad_norm, torch.inf),
            self._full(runs, w), self._full(runs, a), elapsed=self._full(runs, elapsed, 1.0),
        )  # fmt: skip
        self.step[runs] = torch.where(active[runs], step, self.step[runs])
        self.fed = True

    def finish(self, runs: torch.Tensor, stopping: torch.Tensor, time: torch.Tensor, diverged: torch.Tensor) -> None:
        """Close the open flat windows of the runs ``runs[stopping]``."""
        step = self._full(runs, torch.round(time / self.learning_rate).to(torch.int64))
        full_stopping = self._full(runs, stopping).to(torch.bool)
        self.recorder.finish(full_stopping, step, self._full(runs, diverged & stopping).to(torch.bool))


class _Checkpoints:
    """Fills a :class:`pipeline.trajectory.CheckpointRecorder` at the flow times ``times`` (C,), run by run."""

    def __init__(self, recorder: CheckpointRecorder, times: torch.Tensor, a0: torch.Tensor, train_output: bool) -> None:
        self.recorder, self.times, self.a0, self.train_output = recorder, times, a0, train_output
        self.next = torch.zeros(a0.shape[0], dtype=torch.int64, device=a0.device)  # per run: next column

    def record(self, runs: torch.Tensor, due: torch.Tensor, theta: torch.Tensor, grads: nets.Gradients) -> None:
        """Record the state ``theta`` of the runs ``runs[due]`` at their next checkpoint, and advance it."""
        ids, column = runs[due], self.next[runs[due]]
        w, a = unpack(theta[due], self.a0[ids], self.a0.shape[1], self.train_output)
        w_norm, a_norm = torch.linalg.vector_norm(w, dim=-1), torch.linalg.vector_norm(a, dim=-1)
        self.recorder.loss[ids, column] = grads.loss[due]
        self.recorder.grad_norm[ids, column] = grads.norm()[due]
        self.recorder.amplitude[ids, column] = w_norm * a_norm
        self.recorder.balance[ids, column] = w_norm.square() - a_norm.square()
        self.next[ids] += 1

    def record_along(
        self,
        problem: FlowSystem,
        runs: torch.Tensor,
        theta: torch.Tensor,
        trial: RosenbrockStep,
        time: torch.Tensor,
        step_size: torch.Tensor,
        end: torch.Tensor,
        accepted: torch.Tensor,
    ) -> torch.Tensor:
        """Record the checkpoints in ``(time, end]`` of the accepted steps from the dense output.

        Returns the gradient evaluations per run (R,) (one per checkpoint; the frozen pieces hold up to ``end``).
        """
        evaluations = torch.zeros_like(runs)
        last = self.times.numel() - 1
        while True:
            column = self.next[runs].clamp(max=last)
            due = accepted & (self.next[runs] <= last) & (self.times[column] <= end * (1 + 1e-12))
            if not bool(due.any()):
                return evaluations
            fraction = ((self.times[column] - time) / step_size).clamp(0.0, 1.0)
            point = dense_output(theta, trial, fraction)
            grads, _ = problem.gradients(point)
            self.record(runs, due, point, grads)
            evaluations += due.to(torch.int64)
