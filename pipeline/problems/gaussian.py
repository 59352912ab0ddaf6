"""The population loss of standard Gaussian inputs against a teacher network (theory.md 11.1)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from pipeline.data import Dataset
from pipeline.dynamics import DescentResult, descend
from pipeline.end_game import EndGameOptions, Finish
from pipeline.end_game.by_flow import finish_by_flow
from pipeline.losses import population
from pipeline.losses.activations import Activation, as_activation
from pipeline.problems.base import (
    Evaluator,
    PopulationLoss,
    VerdictOptions,
    check_parameters,
    select_runs,
    stacked_field,
)
from pipeline.problems.gaussian_flow import PopulationFlow
from pipeline.stationary.population_points import classify_population_batch

__all__ = ["GaussianPopulationProblem", "run_population_gradient_descent"]


@dataclass(frozen=True)
class GaussianPopulationProblem(PopulationLoss):
    """``1/2 E ||f(x) - g(x)||^2`` for ``x ~ N(0, I_d)``, in closed form (:mod:`pipeline.losses.population`).

    The teacher is ``g(x) = sum_j b_j rho(v_j . x)`` with weights ``teacher_w`` (R or 1, t, d) and
    ``teacher_a`` (R or 1, t, k); student and teacher share the activation, a ReLU or leaky ReLU.
    Scales: ``s_x = sqrt(d)`` (the root mean square input norm) and ``s_y = sqrt(E ||g(x)||^2)``.
    """

    LOSS: ClassVar[str] = population.LOSS
    teacher_w: torch.Tensor
    teacher_a: torch.Tensor
    activation: Activation = field(default_factory=lambda: as_activation(0.0))
    train_output: bool = True
    verdicts: VerdictOptions = field(default_factory=VerdictOptions)

    def __post_init__(self) -> None:
        activation = as_activation(self.activation)
        if not activation.has_kink:
            raise ValueError(
                f"the Gaussian population loss is for ReLU and leaky ReLU; got activation {activation.name!r}"
            )
        object.__setattr__(self, "activation", activation)

    @classmethod
    def from_datasets(
        cls,
        datasets: Sequence[Dataset],
        settings: Mapping[str, Any],
        activation: Activation,
        train_output: bool,
        verdicts: VerdictOptions,
        **tensor_options: Any,
    ) -> GaussianPopulationProblem:
        """The runs' teachers stacked on the run axis."""
        teacher_w, teacher_a = (stacked_field(datasets, name, **tensor_options) for name in ("teacher_v", "teacher_b"))
        return cls(teacher_w, teacher_a, activation, train_output, verdicts)

    def check(self, w0: torch.Tensor, a0: torch.Tensor) -> None:
        check_parameters(
            w0, a0, {"teacher_w": (self.teacher_w, "(R or 1, t, d)"), "teacher_a": (self.teacher_a, "(R or 1, t, k)")}
        )
        if self.teacher_w.shape[2] != w0.shape[2]:
            raise ValueError(
                f"teacher_w has shape {tuple(self.teacher_w.shape)}; expected (R or 1, t, d) with d from w0"
            )
        if self.teacher_a.shape[2] != a0.shape[2]:
            raise ValueError(
                f"teacher_a has shape {tuple(self.teacher_a.shape)}; expected (R or 1, t, k) with k from a0"
            )
        if self.teacher_w.shape[1] != self.teacher_a.shape[1] or self.teacher_w.shape[1] < 1:
            raise ValueError(
                f"teacher_w has {self.teacher_w.shape[1]} rows and teacher_a has {self.teacher_a.shape[1]};"
                " both need the same number (>= 1)"
            )

    def scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        zero_w, zero_a = torch.zeros_like(self.teacher_w[..., :1, :]), torch.zeros_like(self.teacher_a[..., :1, :])
        s_y = torch.sqrt(2 * population.population_loss(zero_w, zero_a, self.teacher_w, self.teacher_a, self.leak))
        return torch.full_like(s_y, float(self.teacher_w.shape[-1]) ** 0.5), s_y

    @property
    def leak(self) -> float:
        """The activation's negative slope (the population kernels take the number)."""
        return self.activation.leak

    def evaluator(self, n_runs: int, width: int) -> Evaluator:
        return population.PopulationWorkspace(
            self.teacher_w, self.teacher_a, n_runs, width, self.leak, train_output=self.train_output
        )

    def classify(self, w: torch.Tensor, a: torch.Tensor, mode: str, runs: np.ndarray | None = None) -> Any:
        return classify_population_batch(
            w, a, select_runs(self.teacher_w, runs), select_runs(self.teacher_a, runs), leak=self.leak,
            train_output=self.train_output, realisable=self.verdicts.realisable, mode=mode,
        )  # fmt: skip

    def finish(self, w: torch.Tensor, a: torch.Tensor, runs: np.ndarray, options: EndGameOptions) -> Finish:
        """The end game of the runs ``runs``: their flow to its limit (:mod:`pipeline.end_game.by_flow`)."""
        return finish_by_flow(
            dataclasses.replace(
                self, teacher_w=select_runs(self.teacher_w, runs), teacher_a=select_runs(self.teacher_a, runs)
            ),
            w,
            a,
            options,
        )

    def flow_system(self, a0: torch.Tensor) -> PopulationFlow:
        """The closed-form loss, gradient and Hessian as a flow system (no kinks away from zero neurons)."""
        return PopulationFlow(self.teacher_w, self.teacher_a, a0, self.leak, self.train_output)


def run_population_gradient_descent(
    w0: torch.Tensor,
    a0: torch.Tensor,
    teacher_w: torch.Tensor,
    teacher_a: torch.Tensor,
    *,
    leak: Activation | float,
    train_output: bool = True,
    **options: Any,
) -> DescentResult:
    """Gradient descent on the Gaussian population loss: :func:`~pipeline.dynamics.descend` on a
    :class:`GaussianPopulationProblem` (``options`` as :func:`~pipeline.dynamics.descend`'s)."""
    return descend(
        GaussianPopulationProblem(teacher_w, teacher_a, as_activation(leak), train_output), w0, a0, **options
    )
