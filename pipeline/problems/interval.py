"""The exact population loss of scalar inputs uniform on an interval against an affine target (theory.md 9)."""

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
from pipeline.losses import interval_population
from pipeline.losses.activations import Activation, as_activation
from pipeline.losses.interval_population import IntervalTarget
from pipeline.problems.base import Evaluator, PopulationLoss, VerdictOptions, check_parameters, stacked_field
from pipeline.problems.interval_flow import IntervalFlow
from pipeline.stationary.interval_points import classify_interval_batch
from pipeline.stationary.smooth_batch import classify_smooth_interval_batch

__all__ = ["IntervalPopulationProblem", "run_interval_gradient_descent"]


@dataclass(frozen=True)
class IntervalPopulationProblem(PopulationLoss):
    """The profiled loss of :mod:`pipeline.losses.interval_population` (the output bias at its optimum).

    Parameters are ``w`` (R, m, 2) (rows ``(w_j, b_j)``) and ``a`` (R, m, k). Scales:
    ``s_x = sqrt(max(low^2, high^2) + 1)`` (the largest input norm with the bias column) and ``s_y`` the
    root mean square of the target.
    """

    LOSS: ClassVar[str] = interval_population.LOSS
    target: IntervalTarget
    activation: Activation = field(default_factory=lambda: as_activation(0.0))
    train_output: bool = True
    verdicts: VerdictOptions = field(default_factory=VerdictOptions)

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", as_activation(self.activation))

    @classmethod
    def from_datasets(
        cls,
        datasets: Sequence[Dataset],
        settings: Mapping[str, Any],
        activation: Activation,
        train_output: bool,
        verdicts: VerdictOptions,
        **tensor_options: Any,
    ) -> IntervalPopulationProblem:
        """The runs' affine targets on the interval ``[interval_low, interval_high]`` of the settings."""
        target = IntervalTarget(
            settings["interval_low"],
            settings["interval_high"],
            stacked_field(datasets, "affine_slope", **tensor_options)[:, 0],
            stacked_field(datasets, "affine_intercept", **tensor_options),
        )
        return cls(target, activation, train_output, verdicts)

    def check(self, w0: torch.Tensor, a0: torch.Tensor) -> None:
        slope = self.target.slope.unsqueeze(-2)
        inputs = w0.new_zeros(slope.shape[0], 1, 2)  # the shape of one input with its bias column
        data = {
            "the interval input (with its bias column)": (inputs, "(R or 1, 1, 2)"),
            "target.slope": (slope, "(R or 1, k)"),
        }
        check_parameters(w0, a0, data)
        if w0.shape[2] != 2:
            raise ValueError(f"w0 has shape {tuple(w0.shape)}; expected (R, m, 2): rows (w_j, b_j)")
        if slope.shape[2] != a0.shape[2]:
            raise ValueError(
                f"target.slope has shape {tuple(self.target.slope.shape)}; expected (R or 1, k) with k from a0"
            )

    def scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        s_y = interval_population.target_scale(self.target)
        return torch.full_like(s_y, (max(self.target.low**2, self.target.high**2) + 1.0) ** 0.5), s_y

    def evaluator(self, n_runs: int, width: int) -> Evaluator:
        return interval_population.IntervalWorkspace(
            self.target, n_runs, width, self.activation, train_output=self.train_output
        )

    def classify(self, w: torch.Tensor, a: torch.Tensor, mode: str, runs: np.ndarray | None = None) -> Any:
        target = self.target if runs is None else self.target.select(torch.as_tensor(runs))
        if not self.activation.has_kink:
            return classify_smooth_interval_batch(
                w, a, target, activation=self.activation, realisable=self.verdicts.realisable, mode=mode
            )
        return classify_interval_batch(
            w, a, target, leak=self.activation.leak, boundary_tolerance_factor=self.verdicts.kink_tolerance_factor,
            mode=mode,
        )  # fmt: skip

    def finish(self, w: torch.Tensor, a: torch.Tensor, runs: np.ndarray, options: EndGameOptions) -> Finish:
        """The end game of the runs ``runs``: their flow to its limit (:mod:`pipeline.end_game.by_flow`)."""
        return finish_by_flow(
            dataclasses.replace(self, target=self.target.select(torch.as_tensor(runs))), w, a, options
        )

    def flow_system(self, a0: torch.Tensor) -> IntervalFlow:
        """The profiled loss, its closed-form gradient and its exact Hessian (every activation)."""
        return IntervalFlow(self.target, a0, self.activation, self.train_output)


def run_interval_gradient_descent(
    w0: torch.Tensor,
    a0: torch.Tensor,
    target: IntervalTarget,
    *,
    leak: Activation | float,
    train_output: bool = True,
    **options: Any,
) -> DescentResult:
    """Gradient descent on the interval population loss: :func:`~pipeline.dynamics.descend` on an
    :class:`IntervalPopulationProblem` (``options`` as :func:`~pipeline.dynamics.descend`'s)."""
    return descend(IntervalPopulationProblem(target, as_activation(leak), train_output), w0, a0, **options)
