"""Population (infinite-data) loss for scalar inputs uniform on an interval, with an affine target.

The setting of Cheridito, Jentzen & Rossmannek (theory.md section 9): inputs ``x ~ U[low, high]``, a bias (the
student sees ``x~ = (x, 1)``), a student ``N(x) = c + sum_j a_j rho(w_j . x~)`` with ``rho`` a
:class:`pipeline.losses.activations.Activation` (``max(z, leak * z)``, or ``z**2``), and an affine target ``f(x) =
intercept + slope * x`` (vector valued: ``slope``, ``intercept`` and ``a_j`` lie in ``R^k``). The loss is the
mean over the interval,

    L(w, a, c) = 1 / (2 (high - low)) int_low^high ||N(x) - f(x)||^2 dx,

CJR's "true loss" divided by ``2 (high - low)`` (the same critical points and minima).

Output bias
-----------
``L`` is a quadratic in ``c`` with unit curvature: ``L(w, a, c) = P(w, a) + 1/2 ||c - c*(w, a)||^2``
with ``c* = mean(f - N_0)`` (``N_0`` the network without ``c``). This module works with the
*profiled* loss ``P(w, a) = min_c L = 1/2 mean ||e - mean e||^2``, ``e = N_0 - f``. The profile is
exact: ``(w, a, c*)`` is a critical point, local minimum or saddle of ``L`` if and only if ``(w, a)``
is one of ``P`` (``c*`` is continuous and ``L >= P`` with equality at ``c*``), so the landscape
questions of theory.md 9.3 are answered without a separate bias parameter; gradient descent on ``P``
is gradient descent on ``L`` with the bias kept at its optimum.

Exact integrals
---------------
For a piecewise-linear activation ``e`` is continuous and piecewise linear in ``x``, with kinks only at the
neurons' breakpoints ``t_j = -b_j / w_j`` (``w_j . x~ = w_j x + b_j``). On each segment between consecutive
breakpoints every integrand of the loss and of its first and second derivatives (``e^2``, ``e rho(z_j)``, ``e
rho'(z_j) x~``, ...) is a polynomial of degree <= 2, so the two-point Gauss-Legendre rule on each segment
integrates it exactly. For the quadratic activation there are no breakpoints and ``e`` is a quadratic
polynomial: every integrand has degree <= 4, and the three-point rule on the whole interval (exact to degree
5) integrates it exactly. The loss, its gradient (Leibniz: the integrand is continuous in ``x``, so the moving
segment ends contribute nothing) and, by automatic differentiation of the same formula, its Hessian are exact
up to rounding. No node ever sits on a breakpoint of a segment of positive length.

Regularity (piecewise-linear activations; the quadratic one makes ``P`` a polynomial): ``P`` is C^1 away from
zero neurons (``w_j = 0`` and ``b_j = 0``), and C^2 away from zero neurons and from neurons whose breakpoint
lies exactly at ``low`` or ``high`` (activating a sliver at an end point is a one-sided second-order change;
theory.md 9.2-9.3).

Shapes: ``w`` (R, m, 2) rows ``(w_j, b_j)``; ``a`` (R, m, k); ``slope``, ``intercept`` (R or 1, k).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pipeline.losses import nets
from pipeline.losses.activations import Activation, as_activation

__all__ = [
    "LOSS",
    "IntervalTarget",
    "IntervalWorkspace",
    "breakpoints",
    "interval_gradients",
    "interval_loss",
    "quadrature",
    "target_scale",
]

LOSS = "P = min_c 1/(2 (high - low)) int_low^high ||c + f(x) - (intercept + slope x)||^2 dx"
"""The profiled population loss of inputs uniform on an interval, as the store describes it."""

_GAUSS_OFFSET = 1.0 / math.sqrt(3.0)
_GAUSS3_NODES = (-math.sqrt(0.6), 0.0, math.sqrt(0.6))
_GAUSS3_WEIGHTS = (5.0 / 18.0, 8.0 / 18.0, 5.0 / 18.0)  # on [-1, 1], halved: they sum to 1


@dataclass(frozen=True)
class IntervalTarget:
    """The affine target ``f(x) = intercept + slope * x`` on ``[low, high]``.

    Attributes
    ----------
    low, high
        Interval ends, ``low < high``.
    slope, intercept : (R or 1, k)
        Per-run (or shared) coefficients.
    """

    low: float
    high: float
    slope: torch.Tensor
    intercept: torch.Tensor

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"the interval needs finite low < high; got [{self.low}, {self.high}]")
        if self.slope.ndim != 2 or self.slope.shape != self.intercept.shape:
            raise ValueError(
                f"slope {tuple(self.slope.shape)} and intercept {tuple(self.intercept.shape)} must both be (R or 1, k)"
            )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Target values at ``x`` (R, Q), shape (R, Q, k)."""
        return self.intercept.unsqueeze(-2) + x.unsqueeze(-1) * self.slope.unsqueeze(-2)

    def select(self, runs: torch.Tensor) -> IntervalTarget:
        """The target of the given runs (indices into a per-run target; a shared target is kept)."""
        if self.slope.shape[0] == 1:
            return self
        return IntervalTarget(self.low, self.high, self.slope[runs], self.intercept[runs])


def target_scale(target: IntervalTarget) -> torch.Tensor:
    """Root mean square ``sqrt(mean ||f(x)||^2)`` of the target over the interval, shape (R or 1,)."""
    low, high = target.low, target.high
    first = (low + high) / 2.0
    second = (low * low + low * high + high * high) / 3.0
    s, c = target.slope, target.intercept
    return torch.sqrt((c * c).sum(-1) + 2.0 * first * (s * c).sum(-1) + second * (s * s).sum(-1))


def breakpoints(w: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Breakpoints ``t_j = -b_j / w_j`` clamped to ``[low, high]``; ``low`` where ``w_j = 0``. Shape (R, m)."""
    slope, offset = w[..., 0], w[..., 1]
    has_break = slope != 0
    t = -offset / torch.where(has_break, slope, torch.ones_like(slope))
    return torch.where(has_break, t, torch.full_like(t, low)).clamp(low, high)


def quadrature(
    w: torch.Tensor, low: float, high: float, exclude: torch.Tensor | None = None, rho: Activation | float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights of a Gauss-Legendre rule that integrates the loss's integrands exactly.

    For an activation with a kink, the two-point rule on every segment between breakpoints; for a
    smooth (quadratic) one, the three-point rule on the whole interval.

    Parameters
    ----------
    w
        (R, m, 2) input weights.
    low, high
        Interval ends.
    exclude
        (R, m) bool: neurons whose breakpoints are not segment ends (their activation is linear on
        the interval by construction, see :func:`interval_loss`).
    rho
        The activation (a number: the leak of a leaky ReLU).

    Returns
    -------
    nodes, weights : (R, 2 (m + 1)) with a kink, (R, 3) without
        Weights are normalised to sum to 1 (the mean over the interval).
    """
    if not as_activation(rho).has_kink:
        unit = torch.tensor(_GAUSS3_NODES, dtype=w.dtype, device=w.device)
        nodes = (0.5 * (low + high) + 0.5 * (high - low) * unit).expand(w.shape[0], 3)
        weights = torch.tensor(_GAUSS3_WEIGHTS, dtype=w.dtype, device=w.device).expand(w.shape[0], 3)
        return nodes, weights
    t = breakpoints(w, low, high)
    if exclude is not None:
        t = torch.where(exclude, torch.full_like(t, low), t)
    ends = torch.tensor([low, high], dtype=w.dtype, device=w.device).expand(w.shape[0], 2)
    bounds = torch.sort(torch.cat([ends, t], dim=-1), dim=-1).values
    left, right = bounds[..., :-1], bounds[..., 1:]
    middle, half = (left + right) / 2.0, (right - left) / 2.0
    nodes = torch.stack([middle - _GAUSS_OFFSET * half, middle + _GAUSS_OFFSET * half], dim=-1).flatten(-2)
    weights = (half / (high - low)).repeat_interleave(2, dim=-1)
    return nodes, weights


@dataclass(frozen=True)
class _Evaluation:
    """Quantities at the quadrature nodes: inputs (R, Q, 2), weights (R, Q), pre-activations and
    activations (R, Q, m), centred residual ``r = e - mean e`` (R, Q, k) and the profiled loss (R,)."""

    inputs: torch.Tensor
    weights: torch.Tensor
    z: torch.Tensor
    activation: torch.Tensor
    residual: torch.Tensor
    loss: torch.Tensor


def _evaluate(
    w: torch.Tensor, a: torch.Tensor, target: IntervalTarget, rho: Activation | float, fixed_slope: torch.Tensor | None
) -> _Evaluation:
    exclude = None if fixed_slope is None else ~torch.isnan(fixed_slope)
    nodes, weights = quadrature(w, target.low, target.high, exclude, rho)
    inputs = torch.stack([nodes, torch.ones_like(nodes)], dim=-1)
    z = torch.matmul(inputs, w.transpose(-1, -2))
    activation = nets.activation(z, rho)
    if fixed_slope is not None and exclude is not None:
        linear = torch.nan_to_num(fixed_slope).unsqueeze(-2) * z  # no NaN in the unused branch (autograd)
        activation = torch.where(exclude.unsqueeze(-2), linear, activation)
    error = torch.matmul(activation, a) - target(nodes)
    residual = error - (weights.unsqueeze(-1) * error).sum(dim=-2, keepdim=True)
    loss = 0.5 * (weights.unsqueeze(-1) * residual.square()).sum(dim=(-2, -1))
    return _Evaluation(inputs, weights, z, activation, residual, loss)


def interval_loss(
    w: torch.Tensor,
    a: torch.Tensor,
    target: IntervalTarget,
    rho: Activation | float,
    *,
    fixed_slope: torch.Tensor | None = None,
) -> torch.Tensor:
    """Profiled population loss ``P(w, a)`` (R,), exact; twice differentiable by autograd where ``P`` is C^2.

    Parameters
    ----------
    w, a
        (R, m, 2) and (R, m, k).
    target
        The affine target and the interval.
    rho
        The activation (a number: the leak of a leaky ReLU, in [0, 1)).
    fixed_slope
        (R, m), NaN for the usual activation; a finite value ``s`` makes neuron ``j`` the linear
        function ``s (w_j . x~)`` on the whole interval. This evaluates one smooth *piece* of ``P``
        at a neuron whose breakpoint sits at an interval end (``s = 1`` or ``leak``: the branch the
        neuron is on), where ``P`` itself is not C^2.
    """
    return _evaluate(w, a, target, rho, fixed_slope).loss


def interval_gradients(
    w: torch.Tensor, a: torch.Tensor, target: IntervalTarget, rho: Activation | float, *, train_output: bool = True
) -> nets.Gradients:
    """Profiled loss and its closed-form gradients (one evaluation); see :class:`IntervalWorkspace`."""
    return IntervalWorkspace(target, w.shape[0], w.shape[1], rho, train_output=train_output)(w, a)


class IntervalWorkspace:
    """Drop-in replacement of :class:`pipeline.losses.nets.GradientWorkspace` for the interval population loss.

    ``workspace(w, a)`` returns :class:`pipeline.losses.nets.Gradients` with ``loss`` (R,) = ``P``, ``grad_w``
    (R, m, 2), ``grad_a`` (R, m, k) (zeros when ``train_output`` is False) and an **empty** ``residual``
    (R, 0, k): there are no samples. At a zero neuron the gradient uses ``rho'(0) = leak`` like
    :mod:`pipeline.losses.nets`.
    """

    def __init__(
        self, target: IntervalTarget, n_runs: int, width: int, rho: Activation | float, *, train_output: bool = True
    ) -> None:
        if target.slope.shape[0] not in (1, n_runs):
            raise ValueError(f"the target has {target.slope.shape[0]} runs; expected 1 (shared) or {n_runs}")
        self.target = target
        self.n_runs = n_runs
        self.width = width
        self.rho = as_activation(rho)
        self.train_output = train_output
        self._residual = torch.empty(
            n_runs, 0, target.slope.shape[-1], dtype=target.slope.dtype, device=target.slope.device
        )

    def __call__(self, w: torch.Tensor, a: torch.Tensor) -> nets.Gradients:
        """Profiled loss and exact gradients at ``w`` (R, m, 2), ``a`` (R, m, k)."""
        if w.shape != (self.n_runs, self.width, 2) or a.shape[:2] != (self.n_runs, self.width):
            raise ValueError(
                f"w {tuple(w.shape)} and a {tuple(a.shape)} must be (R={self.n_runs}, m={self.width}, 2 or k)"
            )
        point = _evaluate(w, a, self.target, self.rho, None)
        weighted = point.weights.unsqueeze(-1) * point.residual  # (R, Q, k)
        coupling = torch.matmul(weighted, a.transpose(-1, -2)) * self.rho.derivative(point.z)
        grad_w = torch.matmul(coupling.transpose(-1, -2), point.inputs)
        grad_a = (
            torch.matmul(point.activation.transpose(-1, -2), weighted) if self.train_output else torch.zeros_like(a)
        )
        return nets.Gradients(loss=point.loss, residual=self._residual, grad_w=grad_w, grad_a=grad_a)
