"""What the gradient-flow integrator needs of a loss: a flow system over a leading run axis.

A system holds the data of ``R`` runs and sees the parameters of each run flattened into one vector
``theta = [w.flatten(), a.flatten()]`` (``a`` left out when the output layer is fixed), shape (R, P), the
ordering of :func:`pipeline.losses.population.population_hessian`. A loss offers its system through
:meth:`pipeline.problems.Problem.flow_system`; :func:`pipeline.dynamics.gradient_flow.flow` integrates it.
"""

from __future__ import annotations

from typing import Protocol

import torch

from pipeline.losses import nets

__all__ = ["KINK_BAND", "FlowSystem", "flat_gradients", "pack", "unpack"]

KINK_BAND = 1e-10
"""A pair is on its kink when ``|z_ij| <= KINK_BAND |x_i| |w_j|``; a step has crossed a kink when a pair is more
than half the band on the wrong side of the piece frozen at the step's start."""


class FlowSystem(Protocol):
    """A loss as the integrator sees it (see :mod:`pipeline.problems.sampled_flow` for one with kinks)."""

    def freeze(self, theta: torch.Tensor) -> None:
        """Fix the pieces of the loss used until the next call (nothing for a loss without kinks)."""

    def gradients(self, theta: torch.Tensor) -> tuple[nets.Gradients, torch.Tensor]:
        """The :class:`pipeline.losses.nets.Gradients` and the flattened gradient ``g`` (R, P) of the frozen loss.

        The flow is ``dtheta/dt = -g``.
        """

    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        """``dg/dtheta`` (R, P, P), exact for the frozen pieces."""

    def violation(self, theta: torch.Tensor) -> torch.Tensor:
        """How much further than at the freeze, relative to ``|x_i| |w_j|``, the most misplaced pair sits on the
        wrong side of its frozen piece (R,); positive after a kink was crossed, zeros without kinks."""

    def select(self, runs: torch.Tensor) -> FlowSystem:
        """The system of a subset of runs (indices)."""


def pack(w: torch.Tensor, a: torch.Tensor, train_output: bool) -> torch.Tensor:
    """``theta`` (R, P) from ``w`` (R, m, d) and ``a`` (R, m, k)."""
    return torch.cat([w.flatten(1), a.flatten(1)], dim=1) if train_output else w.flatten(1).clone()


def unpack(theta: torch.Tensor, a_fixed: torch.Tensor, width: int, train_output: bool) -> tuple[torch.Tensor, ...]:
    """``w`` (R, m, d) and ``a`` (R, m, k) from ``theta``; ``a_fixed`` gives ``a`` when it is not trained."""
    n_runs, k = theta.shape[0], a_fixed.shape[-1]
    n_w = theta.shape[1] - (width * k if train_output else 0)
    w = theta[:, :n_w].reshape(n_runs, width, n_w // width)
    a = theta[:, n_w:].reshape(n_runs, width, k) if train_output else a_fixed
    return w, a


def flat_gradients(
    loss: torch.Tensor, grad_w: torch.Tensor, grad_a: torch.Tensor, train_output: bool
) -> tuple[nets.Gradients, torch.Tensor]:
    """The engine's :class:`pipeline.losses.nets.Gradients` (no residuals) and the flattened gradient (R, P)."""
    flat = torch.cat([grad_w.flatten(1), grad_a.flatten(1)], dim=1) if train_output else grad_w.flatten(1)
    residual = grad_w.new_empty(grad_w.shape[0], 0, grad_a.shape[-1])
    return nets.Gradients(loss, residual, grad_w, grad_a), flat
