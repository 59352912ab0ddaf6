"""The Gaussian population loss as a flow system (:mod:`pipeline.dynamics.flow_system`)."""

from __future__ import annotations

import torch

from pipeline.dynamics.flow_system import flat_gradients, unpack
from pipeline.losses import nets, population
from pipeline.losses.population_hessian import population_hessian_batch

__all__ = ["PopulationFlow"]


class PopulationFlow:
    """The Gaussian population loss of :mod:`pipeline.losses.population` (C^1 everywhere except at zero neurons).

    Parameters
    ----------
    v, b
        Teacher weights (R or 1, t, d) and (R or 1, t, k).
    a
        Student output weights (R, m, k); used only when ``train_output`` is False.
    leak
        Negative slope in [0, 1).
    train_output
        Whether ``a`` is part of ``theta``.
    """

    def __init__(self, v: torch.Tensor, b: torch.Tensor, a: torch.Tensor, leak: float, train_output: bool) -> None:
        self.v, self.b, self.a_fixed, self.leak, self.train_output = v, b, a, leak, train_output
        self.width = a.shape[1]
        self._workspace = population.PopulationWorkspace(v, b, a.shape[0], self.width, leak, train_output=train_output)

    def select(self, runs: torch.Tensor) -> PopulationFlow:
        """The problem of the runs ``runs`` (indices)."""
        v = self.v if self.v.shape[0] == 1 else self.v[runs]
        b = self.b if self.b.shape[0] == 1 else self.b[runs]
        return PopulationFlow(v, b, self.a_fixed[runs], self.leak, self.train_output)

    def freeze(self, theta: torch.Tensor) -> None:
        """Nothing to freeze: the population loss has no kinks away from zero neurons."""

    def gradients(self, theta: torch.Tensor) -> tuple[nets.Gradients, torch.Tensor]:
        """Closed-form loss and gradient (:class:`pipeline.losses.population.PopulationWorkspace`)."""
        w, a = unpack(theta, self.a_fixed, self.width, self.train_output)
        grads = self._workspace(w, a)
        return flat_gradients(grads.loss, grads.grad_w, grads.grad_a, self.train_output)

    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        """:func:`pipeline.losses.population_hessian.population_hessian_batch`, (R, P, P)."""
        w, a = unpack(theta, self.a_fixed, self.width, self.train_output)
        return population_hessian_batch(w, a, self.v, self.b, self.leak, train_output=self.train_output)

    def violation(self, theta: torch.Tensor) -> torch.Tensor:
        """No kink events, (R,) zeros."""
        return theta.new_zeros(theta.shape[0])
