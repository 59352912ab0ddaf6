"""The empirical loss of finitely many samples, ``L = 1/(2n) sum_i ||f(x_i) - y_i||^2``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from pipeline.data import Dataset
from pipeline.dynamics import DescentResult, descend
from pipeline.end_game import EndGameOptions, Finish, finish_runs
from pipeline.losses import nets
from pipeline.losses.activations import Activation, as_activation
from pipeline.problems.base import Evaluator, VerdictOptions, check_parameters, no_groups, select_runs, stacked_field
from pipeline.problems.sampled_flow import SampledFlow
from pipeline.stationary import classify_batch
from pipeline.stationary.embedding import classify_embeddings
from pipeline.stationary.groups import group_neurons
from pipeline.stationary.kinks import data_scales
from pipeline.stationary.smooth_batch import classify_smooth_batch

__all__ = ["SampledProblem", "data_scales", "run_gradient_descent"]


@dataclass(frozen=True)
class SampledProblem:
    """The empirical loss on inputs ``x`` (R or 1, n, d) and targets ``y`` (R or 1, n, k).

    A leading size 1 shares one data set among all runs. ``activation`` is an
    :class:`~pipeline.losses.activations.Activation` or the negative slope of a leaky ReLU in [0, 1) (0: ReLU).
    Scales: ``s_x = max_i ||x_i||``, ``s_y = sqrt(||Y||_F^2 / n)`` (:func:`data_scales`).
    """

    LOSS: ClassVar[str] = nets.LOSS
    x: torch.Tensor
    y: torch.Tensor
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
    ) -> SampledProblem:
        """The runs' samples ``x``, ``y`` stacked on the run axis."""
        x, y = (stacked_field(datasets, name, **tensor_options) for name in ("x", "y"))
        return cls(x, y, activation, train_output, verdicts)

    def check(self, w0: torch.Tensor, a0: torch.Tensor) -> None:
        check_parameters(w0, a0, {"x": (self.x, "(R or 1, n, d)"), "y": (self.y, "(R or 1, n, k)")})
        if self.x.shape[2] != w0.shape[2]:
            raise ValueError(f"x has shape {tuple(self.x.shape)}; expected (R or 1, n, d) with d from w0")
        if self.y.shape[2] != a0.shape[2]:
            raise ValueError(f"y has shape {tuple(self.y.shape)}; expected (R or 1, n, k) with k from a0")
        if self.x.shape[1] != self.y.shape[1] or self.x.shape[1] < 1:
            raise ValueError(
                f"x has {self.x.shape[1]} rows and y has {self.y.shape[1]}; both need the same number (>= 1)"
            )

    def scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        return data_scales(self.x, self.y)

    def evaluator(self, n_runs: int, width: int) -> Evaluator:
        return nets.GradientWorkspace(self.x, self.y, n_runs, width, self.activation, train_output=self.train_output)

    def classify(self, w: torch.Tensor, a: torch.Tensor, mode: str, runs: np.ndarray | None = None) -> Any:
        x, y = select_runs(self.x, runs), select_runs(self.y, runs)
        if not self.activation.has_kink:
            return classify_smooth_batch(
                w, a, x, y, activation=self.activation, train_output=self.train_output,
                realisable=self.verdicts.realisable, mode=mode,
            )  # fmt: skip
        return classify_batch(
            w, a, x, y, leak=self.activation.leak, train_output=self.train_output,
            learning_rate=self.verdicts.learning_rate, realisable=self.verdicts.realisable, mode=mode,
            kink_tolerance_factor=self.verdicts.kink_tolerance_factor,
        )  # fmt: skip

    def flow_system(self, a0: torch.Tensor) -> SampledFlow | None:
        """The sampled loss's flow system with its Filippov sliding (None for the smooth quadratic activation)."""
        if not self.activation.has_kink:
            return None
        return SampledFlow(self.x, self.y, a0, self.activation.leak, self.train_output)

    def finish(self, w: torch.Tensor, a: torch.Tensor, runs: np.ndarray, options: EndGameOptions) -> Finish | None:
        """The end game (:func:`pipeline.end_game.finish_runs`); None for a smooth activation (no kinks to cross)."""
        if not self.activation.has_kink:
            return None
        return finish_runs(
            w, a, select_runs(self.x, runs), select_runs(self.y, runs), leak=self.activation.leak,
            train_output=self.train_output, learning_rate=self.verdicts.learning_rate, options=options,
        )  # fmt: skip

    def loss_scale(self, n_runs: int) -> np.ndarray:
        """``s_y**2 = ||Y||_F^2 / n`` per run, the loss scale of the data."""
        scale = data_scales(self.x, self.y)[1].square().detach().cpu().numpy()
        return np.broadcast_to(scale, (n_runs,)).astype(float)

    def groups(self, end: Any) -> dict[str, np.ndarray]:
        """Neuron groups of the classified end point and the width of the network it embeds (theory.md 7)."""
        if not self.activation.has_kink:
            return no_groups(end)
        groups = group_neurons(
            torch.as_tensor(end.w), torch.as_tensor(end.a), self.x.cpu().to(torch.float64), self.activation.leak
        )
        return {
            "end_neuron_group": groups.group.cpu().numpy().astype(np.int16),
            "end_reduced_width": groups.width.cpu().numpy().astype(np.int16),
        }

    def embeddings(self, end: Any, betas: tuple[float, ...]) -> dict[str, np.ndarray]:
        """The end points' embeddings into width ``m + 1``, predicted and classified (theory.md 7)."""
        return classify_embeddings(
            end, self.x, self.y, leak=self.activation.leak, realisable=self.verdicts.realisable, betas=betas,
            kink_tolerance_factor=self.verdicts.kink_tolerance_factor,
        )  # fmt: skip


def run_gradient_descent(
    w0: torch.Tensor,
    a0: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    leak: Activation | float,
    train_output: bool = True,
    **options: Any,
) -> DescentResult:
    """Gradient descent on the empirical loss: :func:`pipeline.dynamics.descend` on a :class:`SampledProblem`.

    ``options`` are :func:`~pipeline.dynamics.descend`'s (``learning_rate``, ``max_steps``, ``grad_tol``,
    ``divergence_factor``, ``n_checkpoints``, ``plateaus``).
    """
    return descend(SampledProblem(x, y, as_activation(leak), train_output), w0, a0, **options)
