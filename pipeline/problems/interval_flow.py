"""The interval population loss as a flow system (:mod:`pipeline.dynamics.flow_system`).

The profiled loss ``P`` of :mod:`pipeline.losses.interval_population` is C^1 away from zero neurons, and C^2 away from
them and from neurons whose breakpoint sits exactly at an interval end; the flow needs no kink events (nothing to
freeze, no violations), and the integrator's error control absorbs the jumps of the second derivative where a
breakpoint leaves the interval. Gradients are the closed form of
:class:`pipeline.losses.interval_population.IntervalWorkspace`. The Hessian is forward-over-reverse automatic
differentiation of the same exact formula (the breakpoints' quadrature is exact on every piece, so its derivatives
are the piece's), one Hessian-vector product per parameter, batched over the runs: the runs are independent, so
the product of the summed loss's Hessian with ``e_p`` in every run is column ``p`` of every run's Hessian.
"""

from __future__ import annotations

import torch

from pipeline.dynamics.flow_system import flat_gradients, unpack
from pipeline.losses import interval_population, nets
from pipeline.losses.activations import Activation

__all__ = ["IntervalFlow"]


class IntervalFlow:
    """The profiled interval population loss against ``target`` (R or 1 runs).

    Parameters
    ----------
    target
        The affine target and the interval.
    a
        Student output weights (R, m, k); used only when ``train_output`` is False.
    activation
        The student's activation (leaky ReLU or quadratic).
    train_output
        Whether ``a`` is part of ``theta``.
    """

    def __init__(
        self, target: interval_population.IntervalTarget, a: torch.Tensor, activation: Activation, train_output: bool
    ) -> None:
        self.target, self.a_fixed, self.activation, self.train_output = target, a, activation, train_output
        self.width = a.shape[1]
        self._workspace = interval_population.IntervalWorkspace(
            target, a.shape[0], self.width, activation, train_output=train_output
        )

    def select(self, runs: torch.Tensor) -> IntervalFlow:
        """The problem of the runs ``runs`` (indices)."""
        return IntervalFlow(self.target.select(runs), self.a_fixed[runs], self.activation, self.train_output)

    def freeze(self, theta: torch.Tensor) -> None:
        """Nothing to freeze: the profiled loss is C^1 away from zero neurons."""

    def gradients(self, theta: torch.Tensor) -> tuple[nets.Gradients, torch.Tensor]:
        """Exact loss and closed-form gradient (:class:`pipeline.losses.interval_population.IntervalWorkspace`)."""
        w, a = unpack(theta, self.a_fixed, self.width, self.train_output)
        grads = self._workspace(w, a)
        return flat_gradients(grads.loss, grads.grad_w, grads.grad_a, self.train_output)

    def _total_loss(self, theta: torch.Tensor) -> torch.Tensor:
        w, a = unpack(theta, self.a_fixed, self.width, self.train_output)
        return interval_population.interval_loss(w, a, self.target, self.activation).sum()

    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        """Exact Hessian of every run, (R, P, P): ``P`` Hessian-vector products of the summed loss."""
        n_params = theta.shape[1]
        basis = torch.eye(n_params, dtype=theta.dtype, device=theta.device)[:, None, :].expand(
            n_params, *theta.shape
        )  # (P, R, P): e_p in every run

        def column(direction: torch.Tensor) -> torch.Tensor:
            return torch.func.jvp(torch.func.grad(self._total_loss), (theta,), (direction,))[1]

        columns: torch.Tensor = torch.func.vmap(column)(basis)  # (P, R, P): column p of every run's Hessian
        return columns.permute(1, 2, 0)

    def violation(self, theta: torch.Tensor) -> torch.Tensor:
        """No kink events, (R,) zeros."""
        return theta.new_zeros(theta.shape[0])
