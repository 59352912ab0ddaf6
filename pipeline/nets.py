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


def gradients(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    leak: float,
    *,
    train_output: bool = True,
) -> Gradients:
    """Closed-form loss and gradients of a batch of networks.

    ``dL/da_j = 1/n sum_i rho(z_ij) r_i`` and
    ``dL/dw_j = 1/n sum_i (a_j . r_i) rho'(z_ij) x_i``; five batched matrix products in all.

    Parameters
    ----------
    w, a, x, y
        See the module docstring for shapes; ``x`` and ``y`` broadcast over runs.
    leak
        Negative-side slope of the activation, in [0, 1).
    train_output
        If False the output weights are fixed and ``grad_a`` is zero.
    """
    n = x.shape[-2]
    z = pre_activations(w, x)
    slope = activation_slope(z, leak)
    hidden = z * slope
    residual = torch.matmul(hidden, a) - y
    loss_value = 0.5 * residual.square().sum(dim=(-2, -1)) / n
    grad_w = _input_weight_gradient(slope, residual, a, x) / n
    if train_output:
        grad_a = torch.matmul(hidden.transpose(-1, -2), residual) / n
    else:
        grad_a = torch.zeros_like(a)
    return Gradients(loss=loss_value, residual=residual, grad_w=grad_w, grad_a=grad_a)


def _input_weight_gradient(
    slope: torch.Tensor, residual: torch.Tensor, a: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """``n dL/dw_j = sum_i (a_j . r_i) rho'(z_ij) x_i``, shape (R, m, d).

    Contracting over samples first, ``sum_l a_jl [slope^T (r_l * x)]_j``, avoids materialising the
    (R, n, m) back-propagated signal whenever ``k * d <= m`` (the common scalar-output case); this
    saves several memory passes over the largest tensor of a step.
    """
    n_outputs, n_inputs = residual.shape[-1], x.shape[-1]
    if n_outputs * n_inputs > slope.shape[-1]:
        back = torch.matmul(residual, a.transpose(-1, -2)) * slope
        return torch.matmul(back.transpose(-1, -2), x)
    weighted = (residual.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2)  # (R, n, k*d)
    per_output = torch.matmul(slope.transpose(-1, -2), weighted)  # (R, m, k*d)
    per_output = per_output.unflatten(-1, (n_outputs, n_inputs))
    return torch.einsum("rmk,rmkd->rmd", a, per_output)
