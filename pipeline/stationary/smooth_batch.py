"""Batches of points of the losses with a smooth activation: sampled data and the interval population.

Both snap each run's point (:func:`pipeline.stationary.smooth_points.smooth_point`, float64, CPU) with the
run's exact loss as a function of its flat parameter vector, judge the points by the front end of every loss
(:func:`pipeline.stationary.local_test.judge`) and return a
:class:`~pipeline.stationary.record.BatchClassification` like the kink-aware classifiers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from pipeline.losses import interval_population, nets
from pipeline.losses.activations import Activation
from pipeline.losses.interval_population import IntervalTarget
from pipeline.stationary.local_test import LocalPoint, judge
from pipeline.stationary.record import BatchClassification, unclassified_batch
from pipeline.stationary.smooth_points import SmoothLoss, smooth_point
from pipeline.stationary.tolerances import population_tolerances, tolerances_for

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["classify_smooth_batch", "classify_smooth_interval_batch"]


def classify_smooth_batch(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    activation: Activation,
    train_output: bool = True,
    realisable: bool = False,
    mode: str = "end_point",
) -> BatchClassification:
    """Classify points ``w`` (R, m, d), ``a`` (R, m, k) of the empirical loss on ``x`` (R or 1, n, d), ``y``.

    Parameters
    ----------
    activation
        A smooth activation (``has_kink`` False).
    train_output
        False: the output layer is fixed (not a parameter).
    realisable
        The target is exactly representable: a local minimum is global iff its loss is ~0.
    mode
        ``"end_point"`` or ``"plateau"`` (relaxed tolerances, :func:`pipeline.stationary.tolerances.tolerances_for`).
    """
    w, a, x, y = (t.detach().to(torch.float64).cpu() for t in (w, a, x, y))
    record = unclassified_batch(w.numpy(), a.numpy())
    tol = tolerances_for(mode)
    points: dict[int, LocalPoint] = {}
    for run in range(w.shape[0]):
        if not (torch.isfinite(w[run]).all() and torch.isfinite(a[run]).all()):
            continue
        x_run, y_run = x[run if x.shape[0] > 1 else 0], y[run if y.shape[0] > 1 else 0]
        s_x = float(torch.linalg.vector_norm(x_run, dim=-1).max())
        s_y = float(torch.sqrt(y_run.square().sum() / y_run.shape[0]))
        width, n_inputs, n_outputs = w.shape[1], w.shape[2], a.shape[2]
        loss = SmoothLoss(
            _sampled_loss(x_run, y_run, activation), width, n_inputs, n_outputs, s_x, s_y,
            None if train_output else a[run],
        )  # fmt: skip
        points[run] = smooth_point(record, run, loss, w[run], a[run], degree=activation.degree)
    return judge(record, points, tol, realisable=realisable)


def classify_smooth_interval_batch(
    w: torch.Tensor,
    a: torch.Tensor,
    target: IntervalTarget,
    *,
    activation: Activation,
    realisable: bool,
    mode: str = "end_point",
) -> BatchClassification:
    """Classify points ``w`` (R, m, 2), ``a`` (R, m, k) of the interval population loss.

    The profiled loss of :mod:`pipeline.losses.interval_population` (the output bias at its optimum) is a polynomial for
    the quadratic activation. ``realisable``: zero loss is attained (for the quadratic activation from width
    ``2 k`` on, :func:`pipeline.globality.global_value_basis`), so a local minimum of positive loss is spurious.
    """
    w, a = w.detach().to(torch.float64).cpu(), a.detach().to(torch.float64).cpu()
    slope, intercept = (t.detach().to(torch.float64).cpu() for t in (target.slope, target.intercept))
    target = IntervalTarget(target.low, target.high, slope, intercept)
    record = unclassified_batch(w.numpy(), a.numpy())
    tol = population_tolerances(mode)
    s_x = float(np.sqrt(max(target.low**2, target.high**2) + 1.0))
    points: dict[int, LocalPoint] = {}
    for run in range(w.shape[0]):
        if not (torch.isfinite(w[run]).all() and torch.isfinite(a[run]).all()):
            continue
        problem = target.select(torch.tensor([run]))
        s_y = float(interval_population.target_scale(problem)[0])
        loss = SmoothLoss(_interval_loss(problem, activation), w.shape[1], 2, a.shape[2], s_x, s_y)
        points[run] = smooth_point(record, run, loss, w[run], a[run], degree=activation.degree)
    return judge(record, points, tol, realisable=realisable)


def _sampled_loss(x: torch.Tensor, y: torch.Tensor, activation: Activation) -> LossFunction:
    """``(W, A) ->`` the empirical loss on ``x`` (n, d), ``y`` (n, k)."""
    return lambda w, a: nets.loss(w[None], a[None], x[None], y[None], activation)[0]


def _interval_loss(target: IntervalTarget, activation: Activation) -> LossFunction:
    """``(W, A) ->`` the profiled interval population loss against a one-run ``target``."""
    return lambda w, a: interval_population.interval_loss(w[None], a[None], target, activation)[0]
