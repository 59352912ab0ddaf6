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

The activation is ``rho(z) = z`` for ``z >= 0`` and ``leak * z`` otherwise (``leak = 0``: ReLU).
The loss is ``L = 1/(2n) sum_i ||f(x_i) - y_i||^2``. At a kink (``z = 0``) the gradient uses
``rho'(0) = leak``, the convention of ``torch.nn.functional.leaky_relu`` autograd.
"""

from __future__ import annotations

import dataclasses
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

    1. ``h = rho(w x^T)`` (a product, then ``leaky_relu_`` in place);
    2. ``r = a^T h - y^T``, (R, k, n) (a small product per run);
    3. per output ``l``: the back-propagated signal ``s_ij = rho'(z_ij) r_il / n`` (one fused pass)
       and its product with the inputs, ``p_jl = sum_i s_ij x_i``.

    Then ``dL/dw_j = sum_l a_jl p_jl`` and, because ``rho(z) = rho'(z) z`` (positive homogeneity),
    ``dL/da_jl = 1/n sum_i rho(z_ij) r_il = w_j . p_jl``: the output gradient takes no pass over
    the activations. With shared data (leading size 1) both products over the samples are single
    GEMMs over all runs and neurons at once, (R m, d) x (d, n) and (d, n) x (n, R m); with data
    per run they are batched products.

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
        self.leak = leak
        self.train_output = train_output
        # products over the samples are (*lead, d, columns): (d, R m) for shared data, (R, d, m) per run
        self._lead = () if x.shape[0] == 1 else (n_runs,)
        columns = n_runs * width if x.shape[0] == 1 else width
        self._inputs_t = x.reshape(*self._lead, n_samples, n_inputs).transpose(-1, -2)
        self._targets_t = y.transpose(-1, -2)
        self._hidden = torch.empty(n_runs, width, n_samples, **like)
        self._signal = torch.empty_like(self._hidden)
        self._signal_t = self._product_layout(self._signal)
        self._residual = torch.empty(n_runs, n_outputs, n_samples, **like)
        self._products = torch.empty(n_outputs, *self._lead, n_inputs, columns, **like)
        self._scratch = torch.empty_like(self._products[0])
        self._grad_w = torch.empty(n_runs, width, n_inputs, **like)
        self._grad_a = torch.zeros(n_runs, width, n_outputs, **like)
        self._grad_w_t = self._product_layout(self._grad_w)
        self._grad_a_rows = self._product_layout(self._grad_a).unbind(-2)
        self._residual_rows = self._residual.split(1, dim=1)

    def __call__(self, w: torch.Tensor, a: torch.Tensor) -> Gradients:
        """Loss and gradients at ``w`` (R, m, d), ``a`` (R, m, k)."""
        hidden, residual = self._hidden, self._residual
        torch.matmul(w, self._inputs_t, out=hidden)
        torch.nn.functional.leaky_relu_(hidden, self.leak)
        torch.matmul(a.transpose(-1, -2), hidden, out=residual)
        residual.sub_(self._targets_t)
        flat = residual.flatten(1)
        loss_value = torch.linalg.vecdot(flat, flat).mul_(0.5 / hidden.shape[-1])
        self._project()
        self._weight_gradients(w, a)
        return Gradients(loss_value, residual.transpose(-1, -2), self._grad_w, self._grad_a)

    def _product_layout(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (R, m, c) in the layout of the sample products: (c, R m) shared, (R, c, m) per run.

        A view (no copy) for contiguous ``t``, as the buffers written through it are.
        """
        return t.reshape(*self._lead, -1, t.shape[-1]).transpose(-1, -2)

    def _project(self) -> None:
        """``p_jl = 1/n sum_i rho'(z_ij) r_il x_i`` into ``self._products[l]``, (d, R m) or (R, d, m).

        ``leaky_relu_backward`` of the stored activations fuses the slope ``rho'(z_ij)`` (1 where
        ``rho(z_ij) > 0``, that is ``z_ij > 0``, else ``leak``) and the product with the residual,
        broadcast over neurons, into one pass (``torch.where`` is many times slower on CPU).
        """
        n_samples = self._hidden.shape[-1]
        for residual_row, product in zip(self._residual_rows, self._products, strict=True):
            scaled = residual_row / n_samples
            torch.ops.aten.leaky_relu_backward.grad_input(
                scaled, self._hidden, self.leak, True, grad_input=self._signal
            )
            torch.matmul(self._inputs_t, self._signal_t, out=product)

    def _weight_gradients(self, w: torch.Tensor, a: torch.Tensor) -> None:
        """``dL/dw_j = sum_l a_jl p_jl`` and ``dL/da_jl = w_j . p_jl`` from the sample products."""
        a_t = self._product_layout(a)
        torch.mul(self._products[0], a_t[..., :1, :], out=self._grad_w_t)
        for output in range(1, len(self._products)):
            self._grad_w_t.addcmul_(self._products[output], a_t[..., output : output + 1, :])
        if self.train_output:
            w_t = self._product_layout(w)
            for product, grad_a_row in zip(self._products, self._grad_a_rows, strict=True):
                torch.sum(torch.mul(w_t, product, out=self._scratch), dim=-2, out=grad_a_row)


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
    The loss is that of :func:`loss`, bit for bit (callers compare the two exactly); the loss of a
    :class:`GradientWorkspace` takes its products in another order and may differ in the last bit.

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
    return dataclasses.replace(workspace(w, a), loss=loss(w, a, x, y, leak))
