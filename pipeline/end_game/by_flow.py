"""The end game of a loss without data samples: its gradient flow, integrated to the limit.

The sampled loss has the staged end game of :mod:`pipeline.end_game.staged` (an exponential integrator with kink events,
then Gauss-Newton on the residuals and a kink-constrained polish), which needs the data's residuals. The population
losses (:mod:`pipeline.losses.population`, :mod:`pipeline.losses.interval_population`) have no residuals, but they are
C^1 away from zero neurons, with exact gradients and Hessians: their flow is what the batched RODAS4 integrator of
:mod:`pipeline.dynamics.gradient_flow` follows, to any flow time, with per-run steps that grow geometrically once the
run settles (L-stable: the step is set by accuracy, not by the largest curvature). So the end game of such a loss is
that flow, from gradient descent's end point, until the convergence test holds at a tolerance far below the survey's
(:data:`GRAD_TOL`, floored at a few hundred ulps by the engine) or ``flow_evaluations`` steps are spent. No polish
follows: the flow's own limit is the point gradient descent tends to, and every step of it lowers the loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from pipeline.dynamics import FlowOptions, flow
from pipeline.end_game import EndGameMethod, EndGameOptions, Finish

if TYPE_CHECKING:
    from pipeline.problems.base import Problem

__all__ = ["GRAD_TOL", "finish_by_flow"]

GRAD_TOL = 1e-13
"""Relative gradient tolerance of the end game's flow (the convergence test of :func:`pipeline.dynamics.descend`)."""

MAX_TIME = 1e15
"""Flow time after which the end game's flow stops (far beyond any escape: steps grow sixfold per step)."""


def finish_by_flow(problem: Problem, w: torch.Tensor, a: torch.Tensor, options: EndGameOptions) -> Finish:
    """Follow the gradient flow of ``problem`` (the ``P`` runs to finish) from ``w`` (P, m, d), ``a`` (P, m, k).

    Returns the :class:`pipeline.end_game.Finish` of :func:`pipeline.end_game.finish_runs`: method ``FLOW``,
    gradient and Hessian evaluations of the integrator, its flow time, and the losses before and after.
    """
    start = problem.evaluator(w.shape[0], w.shape[1])(w, a).loss
    result = flow(
        problem,
        w,
        a,
        FlowOptions(
            learning_rate=problem.verdicts.learning_rate, max_time=MAX_TIME, rtol=1e-8, atol=1e-14, grad_tol=GRAD_TOL,
            n_checkpoints=2, max_steps=options.flow_evaluations,
        ),
    )  # fmt: skip
    descent = result.descent
    w_end, a_end = (tensor.detach().cpu().to(torch.float64).numpy() for tensor in (descent.w_final, descent.a_final))
    w_start, a_start = (tensor.detach().cpu().to(torch.float64).numpy() for tensor in (w, a))
    distance = np.sqrt(((w_end - w_start) ** 2).sum(axis=(1, 2)) + ((a_end - a_start) ** 2).sum(axis=(1, 2)))
    return Finish(
        w=w_end,
        a=a_end,
        method=np.full(w.shape[0], int(EndGameMethod.FLOW), dtype=np.int8),
        gradient_evaluations=result.n_gradients.cpu().numpy(),
        hessian_evaluations=result.n_hessians.cpu().numpy(),
        distance=distance,
        loss_before=start.detach().cpu().numpy(),
        loss_after=descent.loss_final.detach().cpu().numpy(),
        flow_time=result.time.detach().cpu().numpy(),
    )
