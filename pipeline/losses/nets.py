"""Batched one-hidden-layer ReLU-like networks: forward pass, loss and closed-form gradients.

Every tensor carries a leading *run* axis ``R`` so that thousands of independent networks are
evaluated with a handful of batched matrix products (``torch.bmm``; one GEMM over all runs where
the data are shared). Data may be shared by all runs (leading size 1, broadcast) or given per run
(leading size ``R``).

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

The activation ``rho`` is a :class:`pipeline.losses.activations.Activation` (or a number, the leak of a
leaky ReLU ``rho(z) = max(z, leak z)``; ``leak = 0``: ReLU). The loss is
``L = 1/(2n) sum_i ||f(x_i) - y_i||^2``. At a kink (``z = 0``) the gradient uses ``rho'(0) = leak``,
the convention of ``torch.nn.functional.leaky_relu`` autograd.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from pipeline.losses.activations import Activation, as_activation

__all__ = [
    "LOSS",
    "GradientWorkspace",
    "Gradients",
    "activation",
    "activation_slope",
    "forward",
    "gradients",
    "loss",
    "pre_activations",
]

LOSS = "L = 1/(2n) sum_i ||f(x_i) - y_i||^2"
"""The loss on ``n`` training inputs, as the store describes it."""


def activation(z: torch.Tensor, rho: Activation | float) -> torch.Tensor:
    """``rho(z)`` elementwise; a number ``rho`` is the leak of ``max(z, leak * z)``."""
    return as_activation(rho).value(z)


def activation_slope(z: torch.Tensor, rho: Activation | float) -> torch.Tensor:
    """Derivative ``rho'(z)``; for a leaky ReLU 1 where ``z > 0``, ``leak`` elsewhere (so ``rho'(0) = leak``)."""
    return as_activation(rho).derivative(z)


def pre_activations(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Pre-activations ``z[r, i, j] = w[r, j] . x[r, i]``, shape (R, n, m)."""
    return torch.matmul(x, w.transpose(-1, -2))


def forward(w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, rho: Activation | float) -> torch.Tensor:
    """Network outputs ``f``, shape (R, n, k)."""
    return torch.matmul(activation(pre_activations(w, x), rho), a)


def loss(w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor, rho: Activation | float) -> torch.Tensor:
    """Per-run loss ``L = 1/(2n) sum_i ||f(x_i) - y_i||^2``, shape (R,)."""
    residual = forward(w, a, x, rho) - y
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
        norm_w = torch.linalg.vector_norm(self.grad_w, dim=(-2, -1))
        return torch.hypot(norm_w, torch.linalg.vector_norm(self.grad_a, dim=(-2, -1)))


class GradientWorkspace:
    """Preallocated buffers for repeated gradient evaluations on fixed data.

    Gradient descent evaluates gradients thousands of times at the same shapes; writing every
    intermediate into a buffer allocated once (``out=``) avoids re-allocating the large
    activations at each step, which costs more than the arithmetic on CPU. The returned
    :class:`Gradients` views these buffers and is overwritten by the next call.

    One evaluation is two products over the samples and three passes over the (R, m, n)
    activations, stored neuron-major (sample index last):

    1. ``h = rho(w x^T)`` (a product, then :meth:`Activation.forward_`: ``leaky_relu_`` in place for
       the piecewise-linear activations, whose backward pass needs only ``h``);
    2. ``r = a^T h - y^T``, (R, k, n) (a small product per run);
    3. per output ``l``: the back-propagated signal ``s_ij = rho'(z_ij) r_il / n`` (one fused pass,
       :meth:`Activation.backward_`) and its product with the inputs, ``p_jl = sum_i s_ij x_i``.

    Then ``dL/dw_j = sum_l a_jl p_jl`` and, because ``rho'(z) z = p rho(z)`` (positive homogeneity of
    degree ``p``: 1 for ReLU-like activations, 2 for the quadratic one),
    ``dL/da_jl = 1/n sum_i rho(z_ij) r_il = w_j . p_jl / p``: the output gradient takes no pass over
    the activations. With shared data (leading size 1, more than one run) both products over the
    samples are single GEMMs over all runs and neurons at once, (R m, d) x (d, n) and (R m, n) x (n, d);
    their rounding may depend on the number of runs. With data per run (what surveys pass) they are
    batched products of contiguous operands, bit for bit independent of the batch size.

    Parameters
    ----------
    x, y
        Inputs (R or 1, n, d) and targets (R or 1, n, k); a leading 1 is shared by all runs.
    n_runs, width
        ``R`` and ``m``.
    rho
        The activation (a number: the leak of a leaky ReLU, in [0, 1)).
    train_output
        If False, ``grad_a`` is zero.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        n_runs: int,
        width: int,
        rho: Activation | float,
        *,
        train_output: bool = True,
    ) -> None:
        n_samples, n_inputs, n_outputs = x.shape[-2], x.shape[-1], y.shape[-1]
        like: dict[str, Any] = dict(dtype=x.dtype, device=x.device)
        self.rho = as_activation(rho)
        self.train_output = train_output
        # Shared data: both products over the samples are single GEMMs over all runs and neurons. A single
        # run takes the per-run layout, so that a survey's per-run data give bit-identical numbers whatever
        # the batch size (a batch of one included); the shared GEMMs agree with them to rounding.
        self._shared = x.shape[0] == 1 and n_runs > 1
        self._inputs = x[0] if self._shared else x.expand(n_runs, n_samples, n_inputs).contiguous()
        self._inputs_t = self._inputs.transpose(-1, -2)
        self._targets_t = y.transpose(-1, -2)
        self._hidden = torch.empty(n_runs, width, n_samples, **like)
        # the pre-activations: overwritten by the activations when the backward pass needs only those
        self._pre = self._hidden if self.rho.in_place else torch.empty_like(self._hidden)
        # one output: the activations are not needed after the backward pass, which then writes over them
        self._signal = self._hidden if n_outputs == 1 else torch.empty_like(self._hidden)
        self._residual = torch.empty(n_runs, n_outputs, n_samples, **like)
        self._products = torch.empty(n_runs, width, n_outputs, n_inputs, **like)
        self._scratch = torch.empty(n_runs, width, n_inputs, **like)
        self._grad_w = torch.empty(n_runs, width, n_inputs, **like)
        self._grad_a = torch.zeros(n_runs, width, n_outputs, **like)
        self._residual_rows = self._residual.split(1, dim=1)

    def __call__(self, w: torch.Tensor, a: torch.Tensor) -> Gradients:
        """Loss and gradients at ``w`` (R, m, d), ``a`` (R, m, k)."""
        hidden, residual = self._hidden, self._residual
        torch.matmul(w, self._inputs_t, out=self._pre)
        self.rho.forward_(self._pre, hidden)
        torch.matmul(a.transpose(-1, -2), hidden, out=residual)
        residual.sub_(self._targets_t)
        flat = residual.flatten(1)
        loss_value = torch.linalg.vecdot(flat, flat).mul_(0.5 / hidden.shape[-1])
        self._project()
        self._weight_gradients(w, a)
        return Gradients(loss_value, residual.transpose(-1, -2), self._grad_w, self._grad_a)

    def _project(self) -> None:
        """``p_jl = 1/n sum_i rho'(z_ij) r_il x_i`` into ``self._products``, (R, m, k, d).

        :meth:`Activation.backward_` fuses the slope ``rho'(z_ij)`` and the product with the residual,
        broadcast over neurons, into one pass (for a leaky ReLU ``leaky_relu_backward`` of the stored
        activations: ``torch.where`` is many times slower on CPU). The
        product with the inputs is one GEMM for shared data, else a batched product of contiguous
        operands (bit for bit independent of the batch size).
        """
        n_samples = self._hidden.shape[-1]
        for output, residual_row in enumerate(self._residual_rows):
            scaled = residual_row / n_samples
            self.rho.backward_(scaled, self._pre, self._hidden, self._signal)
            product = self._products[:, :, output]
            into = product if product.is_contiguous() else self._scratch
            if self._shared:  # written transposed, (d, n) x (n, R m): the faster orientation for small d
                torch.mm(self._inputs_t, self._signal.flatten(0, 1).T, out=into.flatten(0, 1).T)
            else:
                torch.bmm(self._signal, self._inputs, out=into)
            if into is not product:
                product.copy_(into)

    def _weight_gradients(self, w: torch.Tensor, a: torch.Tensor) -> None:
        """``dL/dw_j = sum_l a_jl p_jl`` and ``dL/da_jl = w_j . p_jl``: per-neuron products, (R m) small ones."""
        n_rows, (n_outputs, n_inputs) = w.shape[0] * w.shape[1], self._products.shape[2:]
        products = self._products.view(n_rows, n_outputs, n_inputs)
        if n_outputs == 1:  # one product per entry: an elementwise multiplication is the same number, faster
            torch.mul(self._products[:, :, 0], a, out=self._grad_w)
        else:
            torch.bmm(a.reshape(n_rows, 1, n_outputs), products, out=self._grad_w.view(n_rows, 1, n_inputs))
        if self.train_output:
            torch.bmm(products, w.reshape(n_rows, n_inputs, 1), out=self._grad_a.view(n_rows, n_outputs, 1))
            if self.rho.degree != 1:
                self._grad_a.div_(self.rho.degree)


def gradients(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    rho: Activation | float,
    *,
    train_output: bool = True,
) -> Gradients:
    """Closed-form loss and gradients of a batch of networks (one evaluation).

    ``dL/da_j = 1/n sum_i rho(z_ij) r_i`` and ``dL/dw_j = 1/n sum_i (a_j . r_i) rho'(z_ij) x_i``.
    The loss is that of :func:`loss`, bit for bit (callers compare the two exactly); the loss of a
    :class:`GradientWorkspace` takes its products in another order and may differ in the last bit.

    Parameters
    ----------
    w, a, x, y
        See the module docstring for shapes; ``x`` and ``y`` broadcast over runs.
    rho
        The activation (a number: the leak of a leaky ReLU, in [0, 1)).
    train_output
        If False the output weights are fixed and ``grad_a`` is zero.
    """
    workspace = GradientWorkspace(x, y, w.shape[0], w.shape[1], rho, train_output=train_output)
    return dataclasses.replace(workspace(w, a), loss=loss(w, a, x, y, rho))
