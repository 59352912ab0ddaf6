"""Full-batch gradient descent on a batch of one-hidden-layer networks.

Pure: tensors and scalars in, a :class:`DescentResult` of tensors out. No I/O, no global random
state, no configuration objects. Device and dtype are taken from the inputs, so the same code runs
on CPU and GPU.

Example
-------
>>> import torch
>>> from pipeline.engine import run_gradient_descent
>>> x = torch.randn(1, 16, 3, dtype=torch.float64)           # one dataset shared by all runs
>>> y = torch.randn(1, 16, 1, dtype=torch.float64)
>>> w0 = 0.1 * torch.randn(256, 8, 3, dtype=torch.float64)   # 256 runs of width 8
>>> a0 = 0.1 * torch.randn(256, 8, 1, dtype=torch.float64)
>>> result = run_gradient_descent(w0, a0, x, y, leak=0.0, learning_rate=0.05, max_steps=1000)
>>> result.stop_reason.shape
torch.Size([256])
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pipeline import interval_population, nets, population
from pipeline.activations import Activation, as_activation
from pipeline.trajectory import CheckpointRecorder, PlateauRecorder, PlateauSettings, checkpoint_steps

__all__ = [
    "DescentOptions",
    "DescentResult",
    "StopReason",
    "data_scales",
    "loss_formula",
    "run_gradient_descent",
    "run_interval_gradient_descent",
    "run_population_gradient_descent",
]


def loss_formula(input_distribution: str) -> str:
    """The loss that runs on inputs of ``input_distribution`` minimise, in the words of its own module (``LOSS``)."""
    population_losses = {"gaussian_population": population.LOSS, "interval_population": interval_population.LOSS}
    return population_losses.get(input_distribution, nets.LOSS)


GRAD_TOL_FLOOR_EPS = 100.0
"""The convergence tolerance is never below this many machine epsilons of the dtype: gradients are
not resolved below rounding noise (float32 would otherwise never converge)."""


class StopReason(enum.IntEnum):
    """Why a run stopped (stored as small integers).

    ``CONVERGED``: the gradient is below the tolerance both in absolute terms and relative to the size
    of every neuron (see :func:`run_gradient_descent`); ``MAX_STEPS``: the step budget ran out;
    ``DIVERGED``: the loss became non-finite or grew by ``divergence_factor``.
    """

    CONVERGED = 1
    MAX_STEPS = 2
    DIVERGED = 3


@dataclass(frozen=True)
class DescentResult:
    """Per-run outcome of :func:`run_gradient_descent`; every tensor has a leading run axis ``R``.

    Attributes
    ----------
    w_init, a_init, w_final, a_final : (R, m, d), (R, m, k)
        Initial and final parameters.
    loss_final, grad_norm_final : (R,)
        Loss (:func:`loss_formula`) and Euclidean norm of its gradient over all trained parameters, at the final
        parameters.
    steps_taken : (R,) int64
        Number of gradient steps applied.
    stop_reason : (R,) int64
        A :class:`StopReason` value.
    checkpoint_step : (C,) int64
        Log-spaced steps of the trajectory summary.
    checkpoint_loss, checkpoint_grad_norm : (R, C)
        Loss and gradient norm at the checkpoints (NaN after the run stopped).
    checkpoint_amplitude, checkpoint_balance : (R, C, m)
        ``||w_j|| ||a_j||`` and ``||w_j||^2 - ||a_j||^2`` at the checkpoints.
    n_plateaus : (R,) int64
        Plateaus detected (only the first ``P`` are stored).
    plateau_start, plateau_end, plateau_step : (R, P) int64
        First step, first step after, and representative (smallest gradient norm) step; -1 if absent.
    plateau_loss, plateau_grad_norm : (R, P)
        Loss and gradient norm at the representative step.
    plateau_is_final : (R, P) bool
        The plateau lasted until the run stopped.
    plateau_w, plateau_a : (R, P, m, d), (R, P, m, k)
        Parameters at the representative step.
    """

    w_init: torch.Tensor
    a_init: torch.Tensor
    w_final: torch.Tensor
    a_final: torch.Tensor
    loss_final: torch.Tensor
    grad_norm_final: torch.Tensor
    steps_taken: torch.Tensor
    stop_reason: torch.Tensor
    checkpoint_step: torch.Tensor
    checkpoint_loss: torch.Tensor
    checkpoint_grad_norm: torch.Tensor
    checkpoint_amplitude: torch.Tensor
    checkpoint_balance: torch.Tensor
    n_plateaus: torch.Tensor
    plateau_start: torch.Tensor
    plateau_end: torch.Tensor
    plateau_step: torch.Tensor
    plateau_loss: torch.Tensor
    plateau_grad_norm: torch.Tensor
    plateau_is_final: torch.Tensor
    plateau_w: torch.Tensor
    plateau_a: torch.Tensor


def data_scales(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scales ``s_x = max_i ||x_i||`` and ``s_y = sqrt(||Y||_F^2 / n)`` per dataset, shapes (R or 1,)."""
    s_x = torch.linalg.vector_norm(x, dim=-1).amax(dim=-1)
    s_y = torch.sqrt(y.square().sum(dim=(-2, -1)) / y.shape[-2])
    return s_x, s_y


@dataclass(frozen=True)
class DescentOptions:
    """How gradient descent runs, whatever the loss (arguments of :func:`run_gradient_descent`)."""

    learning_rate: float
    max_steps: int
    train_output: bool
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


def run_gradient_descent(
    w0: torch.Tensor,
    a0: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    leak: Activation | float,
    learning_rate: float,
    max_steps: int,
    train_output: bool = True,
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

    Parameters
    ----------
    w0, a0
        Initial parameters, (R, m, d) and (R, m, k).
    x, y
        Inputs (R or 1, n, d) and targets (R or 1, n, k); leading size 1 shares one dataset.
    leak
        The activation (:mod:`pipeline.activations`); a number is the negative slope of a leaky ReLU,
        in [0, 1) (0: ReLU).
    learning_rate
        Step size ``eta > 0``.
    max_steps
        Step budget (>= 0).
    train_output
        If False, the output weights stay at ``a0``.
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
        learning_rate,
        max_steps,
        train_output,
        grad_tol,
        divergence_factor,
        n_checkpoints,
        plateaus or PlateauSettings(),
    )
    _check_arguments(w0, a0, x, y, leak, options)
    s_x, s_y = data_scales(x, y)
    workspace = nets.GradientWorkspace(x, y, w0.shape[0], w0.shape[1], leak, train_output=train_output)
    return _descend(w0, a0, workspace, s_x, s_y, options)


def run_population_gradient_descent(
    w0: torch.Tensor,
    a0: torch.Tensor,
    teacher_w: torch.Tensor,
    teacher_a: torch.Tensor,
    *,
    leak: Activation | float,
    learning_rate: float,
    max_steps: int,
    train_output: bool = True,
    grad_tol: float = 1e-8,
    divergence_factor: float = 1e6,
    n_checkpoints: int = 64,
    plateaus: PlateauSettings | None = None,
) -> DescentResult:
    """Gradient descent on the population loss for standard Gaussian inputs (theory.md 11.1).

    The loss is ``1/2 E ||f(x) - g(x)||^2`` against the teacher ``g(x) = sum_j b_j rho(v_j . x)``
    with ``x ~ N(0, I_d)``, in closed form (:mod:`pipeline.population`); student and teacher share
    the activation. Scales: ``s_x = sqrt(d)`` (root mean square input norm) and
    ``s_y = sqrt(E ||g(x)||^2)``. Other arguments as in :func:`run_gradient_descent`, with the
    teacher weights ``teacher_w`` (R or 1, t, d) and ``teacher_a`` (R or 1, t, k) in place of data.
    """
    options = DescentOptions(
        learning_rate,
        max_steps,
        train_output,
        grad_tol,
        divergence_factor,
        n_checkpoints,
        plateaus or PlateauSettings(),
    )
    _check_arguments(w0, a0, teacher_w, teacher_a, leak, options, ("teacher_w", "teacher_a"))
    rho = as_activation(leak)
    if not rho.has_kink:
        raise ValueError(f"the Gaussian population loss is for ReLU and leaky ReLU; got activation {rho.name!r}")
    leak = rho.leak
    zero_student = torch.zeros_like(teacher_w[..., :1, :]), torch.zeros_like(teacher_a[..., :1, :])
    s_y = torch.sqrt(2 * population.population_loss(*zero_student, teacher_w, teacher_a, leak))
    s_x = torch.full_like(s_y, float(w0.shape[-1]) ** 0.5)
    workspace = population.PopulationWorkspace(
        teacher_w, teacher_a, w0.shape[0], w0.shape[1], leak, train_output=train_output
    )
    return _descend(w0, a0, workspace, s_x, s_y, options)


def run_interval_gradient_descent(
    w0: torch.Tensor,
    a0: torch.Tensor,
    target: interval_population.IntervalTarget,
    *,
    leak: Activation | float,
    learning_rate: float,
    max_steps: int,
    train_output: bool = True,
    grad_tol: float = 1e-8,
    divergence_factor: float = 1e6,
    n_checkpoints: int = 64,
    plateaus: PlateauSettings | None = None,
) -> DescentResult:
    """Gradient descent on the population loss of scalar inputs uniform on an interval (theory.md 9).

    The loss is the exact profiled loss of :mod:`pipeline.interval_population` (the output bias at
    its optimum) against the affine ``target``; ``w0`` is (R, m, 2) (rows ``(w_j, b_j)``), ``a0``
    (R, m, k). Scales: ``s_x = sqrt(max(low^2, high^2) + 1)`` (the largest input norm with the bias
    column) and ``s_y`` the root mean square of the target. Other arguments as in
    :func:`run_gradient_descent`.
    """
    options = DescentOptions(
        learning_rate,
        max_steps,
        train_output,
        grad_tol,
        divergence_factor,
        n_checkpoints,
        plateaus or PlateauSettings(),
    )
    slope = target.slope.unsqueeze(-2)
    inputs = w0.new_zeros(slope.shape[0], 1, 2)  # the shape of one input with its bias column
    _check_arguments(
        w0, a0, inputs, slope, leak, options, ("the interval input (with its bias column)", "target.slope")
    )
    s_y = interval_population.target_scale(target)
    s_x = torch.full_like(s_y, (max(target.low**2, target.high**2) + 1.0) ** 0.5)
    workspace = interval_population.IntervalWorkspace(target, w0.shape[0], w0.shape[1], leak, train_output=train_output)
    return _descend(w0, a0, workspace, s_x, s_y, options)


def _descend(
    w0: torch.Tensor,
    a0: torch.Tensor,
    evaluate: Callable[[torch.Tensor, torch.Tensor], nets.Gradients],
    s_x: torch.Tensor,
    s_y: torch.Tensor,
    options: DescentOptions,
) -> DescentResult:
    """The descent loop shared by the empirical and the population loss (see run_gradient_descent)."""
    learning_rate, max_steps, train_output = options.learning_rate, options.max_steps, options.train_output
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
            converged = small_gradient & _neurons_resolved(grads, w, a, neuron_rate_limit)
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

    return DescentResult(
        w_init=w0,
        a_init=a0,
        w_final=w,
        a_final=a,
        loss_final=loss_final,
        grad_norm_final=grad_norm_final,
        steps_taken=steps_taken,
        stop_reason=stop_reason,
        checkpoint_step=torch.as_tensor(steps, device=w0.device),
        checkpoint_loss=checkpoints.loss,
        checkpoint_grad_norm=checkpoints.grad_norm,
        checkpoint_amplitude=checkpoints.amplitude,
        checkpoint_balance=checkpoints.balance,
        n_plateaus=plateau_recorder.count,
        plateau_start=plateau_recorder.start,
        plateau_end=plateau_recorder.end,
        plateau_step=plateau_recorder.representative_step,
        plateau_loss=plateau_recorder.loss,
        plateau_grad_norm=plateau_recorder.grad_norm,
        plateau_is_final=plateau_recorder.is_final,
        plateau_w=plateau_recorder.w,
        plateau_a=plateau_recorder.a,
    )


def _neurons_resolved(
    grads: nets.Gradients, w: torch.Tensor, a: torch.Tensor, rate_limit: torch.Tensor
) -> torch.Tensor:
    """Whether every neuron's gradient is at most ``rate_limit`` (R,) times the neuron's size, (R,).

    Neuron ``j`` passes when ``||dL/dw_j||^2 + ||dL/da_j||^2 <= rate_limit^2 (||w_j||^2 + ||a_j||^2)``;
    an exactly zero neuron (zero gradient) passes.
    """
    gradient = torch.linalg.vecdot(grads.grad_w, grads.grad_w) + torch.linalg.vecdot(grads.grad_a, grads.grad_a)
    size = torch.linalg.vecdot(w, w) + torch.linalg.vecdot(a, a)
    resolved: torch.Tensor = (gradient <= rate_limit.square().unsqueeze(-1) * size).all(dim=-1)
    return resolved


def _check_arguments(
    w0: torch.Tensor,
    a0: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    leak: Activation | float,
    options: DescentOptions,
    data_names: tuple[str, str] = ("x", "y"),
) -> None:
    """Raise ``ValueError`` naming the first argument with a wrong rank, size, dtype, device or range."""
    x_name, y_name = data_names
    for name, tensor in (("w0", w0), ("a0", a0), (x_name, x), (y_name, y)):
        if not isinstance(tensor, torch.Tensor) or tensor.ndim != 3:
            raise ValueError(f"{name} must be a 3-d torch.Tensor (runs, rows, columns); got {_describe(tensor)}")
        if not tensor.is_floating_point():
            raise ValueError(f"{name} must have a floating dtype (float32 or float64); got {tensor.dtype}")
        if tensor.dtype != w0.dtype or tensor.device != w0.device:
            raise ValueError(
                f"{name} has dtype {tensor.dtype} on {tensor.device} but w0 has {w0.dtype} on {w0.device};"
                " convert all inputs to one dtype and device"
            )
    n_runs, width, n_inputs = w0.shape
    expected = {
        "a0": (a0, a0.shape[:2], (n_runs, width), "(R, m, k) with R, m from w0"),
        x_name: (x, x.shape[2:], (n_inputs,), "(R or 1, n, d) with d from w0"),
        y_name: (y, y.shape[2:], (a0.shape[2],), "(R or 1, n, k) with k from a0"),
    }
    for name, (tensor, got, want, layout) in expected.items():
        if tuple(got) != want:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}; expected {layout}")
    for name, tensor in ((x_name, x), (y_name, y)):
        if tensor.shape[0] not in (1, n_runs):
            raise ValueError(f"{name} has {tensor.shape[0]} datasets; expected 1 (shared) or {n_runs} (one per run)")
    if x.shape[1] != y.shape[1] or x.shape[1] < 1:
        raise ValueError(
            f"{x_name} has {x.shape[1]} rows and {y_name} has {y.shape[1]}; both need the same number (>= 1)"
        )
    as_activation(leak)  # a ValueError for a leak outside [0, 1)
    options.check()


def _describe(value: object) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} with shape {tuple(shape)}" if shape is not None else type(value).__name__
