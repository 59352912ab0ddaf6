"""Batched one-hidden-layer ReLU-like networks: forward pass, loss and closed-form gradients.

Every tensor carries a leading *run* axis ``R`` so that thousands of independent networks are
evaluated with a handful of batched matrix products (``torch.bmm``). Data may be shared by all
runs (leading size 1, broadcast) or given per run (leading size ``R``).

Shapes and notation (theory.md section 1):

============  ===============  =============================================
name          shape            meaning
============  ===============  =============================================
``x``         (R or 1, n, d)   inputs (a bias is a constant-1 input column)
``y``         (R or 1, n, k)   targets
``w``         (R, m, d)        input weights, row ``j`` is ``w_j``
``a``         (R, m, k)        output weights, row ``j`` is ``a_j``
``z``         (R, n, m)        pre-activations ``z_ij = w_j . x_i``
``f``         (R, n, k)        network outputs ``f(x_i) = sum_j a_j rho(z_ij)``
``r``         (R, n, k)        residuals ``f(x_i) - y_i``
============  ===============  =============================================

The activation is ``rho(z) = z`` for ``z >= 0`` and ``leak * z`` otherwise (``leak = 0``: ReLU).
The loss is ``L = 1/(2n) sum_i ||f(x_i) - y_i||^2``. At a kink (``z = 0``) the gradient uses
``rho'(0) = leak``, the convention of ``torch.nn.functional.leaky_relu`` autograd.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "GradientWorkspace",
    "Gradients",
    "activation",
    "activation_slope",
    "forward",
    "gradients",
    "loss",
    "pre_activations",
]


def activation(z: torch.Tensor, leak: float) -> torch.Tensor:
    """Leaky-ReLU ``rho(z) = max(z, leak * z)`` for ``leak`` in [0, 1), elementwise."""
    return torch.where(z > 0, z, leak * z)


def activation_slope(z: torch.Tensor, leak: float) -> torch.Tensor:
    """Derivative ``rho'(z)``: 1 where ``z > 0``, ``leak`` elsewhere (so ``rho'(0) = leak``)."""
    one = torch.ones((), dtype=z.dtype, device=z.device)
    return torch.where(z > 0, one, one * leak)


def pre_activations(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Pre-activations ``z[r, i, j] = w[r, j] . x[r, i]``, shape (R, n, m)."""
    return torch.matmul(x, w.transpose(-1, -2))


def forward(w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, leak: float) -> torch.Tensor:
    """Network outputs ``f``, shape (R, n, k)."""
    return torch.matmul(activation(pre_activations(w, x), leak), a)


def loss(w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor, leak: float) -> torch.Tensor:
    """Per-run loss ``L = 1/(2n) sum_i ||f(x_i) - y_i||^2``, shape (R,)."""
    residual = forward(w, a, x, leak) - y
    return 0.5 * residual.square().sum(dim=(-2, -1)) / x.shape[-2]


@dataclass(frozen=True)
class Gradients:
    """Loss, residuals and gradients of a batch of networks at one point.

    Attributes
    ----------
    loss : (R,)
        ``L`` per run.
    residual : (R, n, k)
        ``r_i = f(x_i) - y_i``.
    grad_w : (R, m, d)
        ``dL/dw_j``.
    grad_a : (R, m, k)
        ``dL/da_j`` (zeros when the output layer is not trained).
    """

    loss: torch.Tensor
    residual: torch.Tensor
    grad_w: torch.Tensor
    grad_a: torch.Tensor

    def norm(self) -> torch.Tensor:
        """Euclidean norm of the full gradient over all trainable parameters, shape (R,)."""
        return torch.sqrt(self.grad_w.square().sum(dim=(-2, -1)) + self.grad_a.square().sum(dim=(-2, -1)))


class GradientWorkspace:
    """Preallocated buffers for repeated gradient evaluations on fixed data.

    Gradient descent evaluates gradients thousands of times at the same shapes; writing every
    intermediate into a buffer allocated once (``out=``) avoids re-allocating the (R, n, m)
    activations at each step, which costs more than the arithmetic on CPU. The returned
    :class:`Gradients` views these buffers and is overwritten by the next call.

    Parameters
    ----------
    x, y
        Inputs (R or 1, n, d) and targets (R or 1, n, k); a leading 1 is shared by all runs.
    n_runs, width
        ``R`` and ``m``.
    leak
        Negative slope of the activation, in [0, 1).
    train_output
        If False, ``grad_a`` is zero.
    """

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, n_runs: int, width: int, leak: float, *, train_output: bool = True
    ) -> None:
        n_samples, n_inputs, n_outputs = x.shape[-2], x.shape[-1], y.shape[-1]
        like = dict(dtype=x.dtype, device=x.device)
        self.x = x.expand(n_runs, n_samples, n_inputs)
        self.y = y
        self.leak = leak
        self.train_output = train_output
        self._contract_samples_first = n_outputs * n_inputs <= width
        self._z = torch.empty(n_runs, n_samples, width, **like)
        self._slope = torch.empty_like(self._z)
        self._hidden = torch.empty_like(self._z)
        self._residual = torch.empty(n_runs, n_samples, n_outputs, **like)
        self._weighted = torch.empty(n_runs, n_samples, n_outputs * n_inputs, **like)
        self._grad_w = torch.empty(n_runs, width, n_inputs, **like)
        self._grad_a = torch.zeros(n_runs, width, n_outputs, **like)

    def __call__(self, w: torch.Tensor, a: torch.Tensor) -> Gradients:
        """Loss and gradients at ``w`` (R, m, d), ``a`` (R, m, k)."""
        n_samples = self.x.shape[-2]
        z, slope, hidden, residual = self._z, self._slope, self._hidden, self._residual
        torch.bmm(self.x, w.transpose(-1, -2), out=z)
        torch.gt(z, 0, out=slope)
        if self.leak != 0.0:
            slope.mul_(1.0 - self.leak).add_(self.leak)
        torch.mul(z, slope, out=hidden)
        torch.bmm(hidden, a, out=residual)
        residual.sub_(self.y)
        loss_value = 0.5 * residual.square().sum(dim=(-2, -1)) / n_samples
        self._input_weight_gradient(a)
        if self.train_output:
            torch.bmm(hidden.transpose(-1, -2), residual, out=self._grad_a)
            self._grad_a.div_(n_samples)
        return Gradients(loss=loss_value, residual=residual, grad_w=self._grad_w, grad_a=self._grad_a)

    def _input_weight_gradient(self, a: torch.Tensor) -> None:
        """``n dL/dw_j = sum_i (a_j . r_i) rho'(z_ij) x_i`` into ``self._grad_w``, then divide by n.

        When ``k * d <= m`` (the common scalar-output case) the sum over samples is taken first,
        ``sum_l a_jl [slope^T (r_l * x)]_j``, which never materialises the (R, n, m) back-propagated
        signal.
        """
        n_runs, n_samples, n_inputs = self.x.shape
        n_outputs = a.shape[-1]
        if not self._contract_samples_first:
            back = torch.bmm(self._residual, a.transpose(-1, -2)).mul_(self._slope)
            torch.bmm(back.transpose(-1, -2), self.x, out=self._grad_w)
        elif n_outputs == 1:
            torch.mul(self._residual, self.x, out=self._weighted)
            torch.bmm(self._slope.transpose(-1, -2), self._weighted, out=self._grad_w)
            self._grad_w.mul_(a)
        else:
            weighted = self._weighted.view(n_runs, n_samples, n_outputs, n_inputs)
            torch.mul(self._residual.unsqueeze(-1), self.x.unsqueeze(-2), out=weighted)
            per_output = torch.bmm(self._slope.transpose(-1, -2), self._weighted)
            per_output = per_output.unflatten(-1, (n_outputs, n_inputs))
            torch.matmul(a.unsqueeze(-2), per_output, out=self._grad_w.unsqueeze(-2))
        self._grad_w.div_(n_samples)


def gradients(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    leak: float,
    *,
    train_output: bool = True,
) -> Gradients:
    """Closed-form loss and gradients of a batch of networks (one evaluation).

    ``dL/da_j = 1/n sum_i rho(z_ij) r_i`` and ``dL/dw_j = 1/n sum_i (a_j . r_i) rho'(z_ij) x_i``.

    Parameters
    ----------
    w, a, x, y
        See the module docstring for shapes; ``x`` and ``y`` broadcast over runs.
    leak
        Negative-side slope of the activation, in [0, 1).
    train_output
        If False the output weights are fixed and ``grad_a`` is zero.
    """
    workspace = GradientWorkspace(x, y, w.shape[0], w.shape[1], leak, train_output=train_output)
    return workspace(w, a)
