"""The activations of the student and the teacher, one small object each.

Every loss (:mod:`pipeline.losses.nets`, :mod:`pipeline.losses.interval_population`, the end game and the
classifiers) reads the activation through this interface; adding an activation means adding one
class here. An activation knows

* its value ``rho(z)``, derivative ``rho'(z)`` and second derivative ``rho''(z)`` (elementwise);
* whether it has a kink (piecewise linear, ``has_kink``: the kink-aware classifier of
  :mod:`pipeline.stationary` applies) or is smooth (the smooth classifier of
  :mod:`pipeline.stationary.smooth_points` applies);
* its polynomial ``degree`` on each smooth piece, which is also its degree of positive homogeneity:
  ``rho(c z) = c**degree rho(z)`` for ``c > 0``, hence ``rho'(z) z = degree * rho(z)`` (Euler);
* for the piecewise-linear ones, the ``leak`` (negative-side slope; 0 for ReLU), with ``rho'(0) = leak``
  (the convention of ``torch.nn.functional.leaky_relu`` autograd).

The two fused methods ``forward_`` and ``backward_`` are the passes of the gradient workspace of
:mod:`pipeline.losses.nets` (in place, into preallocated buffers).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import torch

__all__ = ["ACTIVATION_NAMES", "Activation", "LeakyReLU", "Quadratic", "activation_from_settings", "as_activation"]

ACTIVATION_NAMES: tuple[str, ...] = ("relu", "leaky_relu", "quadratic")
"""The survey's ``activation`` choices."""


class Activation(abc.ABC):
    """Interface of an activation (see the module docstring); subclasses are frozen dataclasses."""

    name: ClassVar[str]
    has_kink: ClassVar[bool]
    degree: ClassVar[int]
    in_place: ClassVar[bool]
    """``forward_`` may overwrite the pre-activations, and ``backward_`` needs only the values."""

    @property
    def leak(self) -> float:
        """Negative-side slope of a piecewise-linear activation."""
        raise TypeError(f"the {self.name} activation has no leak")

    @abc.abstractmethod
    def value(self, z: torch.Tensor) -> torch.Tensor:
        """``rho(z)``, elementwise."""

    @abc.abstractmethod
    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        """``rho'(z)``, elementwise."""

    @abc.abstractmethod
    def second_derivative(self, z: torch.Tensor) -> torch.Tensor:
        """``rho''(z)``, elementwise (0 on the pieces of a piecewise-linear activation)."""

    @abc.abstractmethod
    def forward_(self, z: torch.Tensor, out: torch.Tensor) -> None:
        """``out = rho(z)``; ``out`` is ``z`` itself when ``in_place``."""

    @abc.abstractmethod
    def backward_(self, grad: torch.Tensor, z: torch.Tensor, value: torch.Tensor, out: torch.Tensor) -> None:
        """``out = grad * rho'(z)`` (broadcast), from the pre-activations ``z`` and the values ``rho(z)``."""


@dataclass(frozen=True)
class LeakyReLU(Activation):
    """``rho(z) = max(z, leak z)`` with ``leak`` in [0, 1) (``leak = 0``: ReLU)."""

    negative_slope: float = 0.0
    has_kink: ClassVar[bool] = True
    degree: ClassVar[int] = 1
    in_place: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.negative_slope < 1.0:
            raise ValueError(f"leak must be in [0, 1); got {self.negative_slope}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return "relu" if self.negative_slope == 0.0 else "leaky_relu"

    @property
    def leak(self) -> float:
        return self.negative_slope

    def value(self, z: torch.Tensor) -> torch.Tensor:
        return torch.where(z > 0, z, self.negative_slope * z)

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        one = torch.ones((), dtype=z.dtype, device=z.device)
        return torch.where(z > 0, one, one * self.negative_slope)

    def second_derivative(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(z)

    def forward_(self, z: torch.Tensor, out: torch.Tensor) -> None:
        torch.nn.functional.leaky_relu_(out.copy_(z) if out is not z else z, self.negative_slope)

    def backward_(self, grad: torch.Tensor, z: torch.Tensor, value: torch.Tensor, out: torch.Tensor) -> None:
        # one fused pass: slope 1 where rho(z) > 0 (that is z > 0), else leak (torch.where is many times slower)
        torch.ops.aten.leaky_relu_backward.grad_input(grad, value, self.negative_slope, True, grad_input=out)


@dataclass(frozen=True)
class Quadratic(Activation):
    """``rho(z) = z**2`` (Cheridito, Jentzen & Rossmannek 2022): smooth, 2-homogeneous, even."""

    name: ClassVar[str] = "quadratic"
    has_kink: ClassVar[bool] = False
    degree: ClassVar[int] = 2
    in_place: ClassVar[bool] = False

    def value(self, z: torch.Tensor) -> torch.Tensor:
        return z.square()

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        return 2.0 * z

    def second_derivative(self, z: torch.Tensor) -> torch.Tensor:
        return torch.full_like(z, 2.0)

    def forward_(self, z: torch.Tensor, out: torch.Tensor) -> None:
        torch.square(z, out=out)

    def backward_(self, grad: torch.Tensor, z: torch.Tensor, value: torch.Tensor, out: torch.Tensor) -> None:
        torch.mul(z, grad, out=out).mul_(2.0)


def activation_from_settings(activation: str | None, leak: float | None) -> Activation:
    """The activation a survey's ``activation`` (or ``teacher_activation``) and ``leak`` name; None is ReLU."""
    if activation == "quadratic":
        return Quadratic()
    if activation in (None, "relu"):
        return LeakyReLU(0.0)
    if activation == "leaky_relu":
        return LeakyReLU(float(leak) if leak is not None else 0.0)
    raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATION_NAMES)}")


def as_activation(activation: Activation | float) -> Activation:
    """An :class:`Activation` as is; a number is the leak of a :class:`LeakyReLU` (the kernels' older argument)."""
    if isinstance(activation, Activation):
        return activation
    return LeakyReLU(float(activation))
