"""The interface a loss implements once to run through descent, classification and the batch record.

A :class:`Problem` is one loss over a batch of networks with a leading run axis: its data (or population),
the activation, whether the output layer trains, and how its points are judged. The dynamics
(:mod:`pipeline.dynamics`) read its scales and gradients; the batch record (:mod:`pipeline.batch_record`)
reads its classifier, end game, loss scale, neuron groups and embeddings. Adding a loss is one class that
satisfies this protocol (``tests/test_fourth_loss.py`` adds one without touching any other module) and,
for surveys, one entry of :data:`pipeline.problems.registry.PROBLEMS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from pipeline.data import Dataset
from pipeline.dynamics.flow_system import FlowSystem
from pipeline.end_game import EndGameOptions, Finish
from pipeline.globality import GLOBAL_BASIS
from pipeline.losses.activations import Activation
from pipeline.losses.nets import Gradients

__all__ = [
    "Evaluator",
    "PopulationLoss",
    "Problem",
    "VerdictOptions",
    "check_parameters",
    "no_groups",
    "select_runs",
    "stacked_field",
]

Evaluator = Callable[[torch.Tensor, torch.Tensor], Gradients]
"""``(w, a) -> Gradients``: the loss (R,) and its gradients at a batch of points of fixed shape."""


@dataclass(frozen=True)
class VerdictOptions:
    """How a problem's points are judged, whatever the loss.

    Attributes
    ----------
    global_basis
        What proves the global-minimum value (:data:`pipeline.globality.GLOBAL_BASIS`); every basis but
        ``best_known`` proves that the global minimum is 0.
    learning_rate
        The survey's step size: the scale of the gradient-descent step the sampled classifier's witnesses
        and the end game compare with.
    kink_tolerance_factor
        Multiplies the classifier's kink tolerance.
    """

    global_basis: str = "best_known"
    learning_rate: float = 0.05
    kink_tolerance_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.global_basis not in GLOBAL_BASIS:
            raise ValueError(f"global_basis must be one of {list(GLOBAL_BASIS)}; got {self.global_basis!r}")

    @property
    def realisable(self) -> bool:
        """A theorem proves that the loss has global minimum 0."""
        return self.global_basis != "best_known"


class Problem(Protocol):
    """One loss over a batch of runs.

    Attributes
    ----------
    LOSS
        The loss in words and symbols (stored with every survey, see :func:`pipeline.problems.loss_formula`).
    activation
        The activation of the student network (:mod:`pipeline.losses.activations`).
    train_output
        Whether the output layer trains (otherwise its gradient is zero and it stays at ``a0``).
    verdicts
        How points are judged (:class:`VerdictOptions`).
    """

    LOSS: ClassVar[str]

    @property
    def activation(self) -> Activation: ...

    @property
    def train_output(self) -> bool: ...

    @property
    def verdicts(self) -> VerdictOptions: ...

    def check(self, w0: torch.Tensor, a0: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the first parameter tensor or datum of a wrong shape, dtype or device."""

    def scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The input scale ``s_x`` and output scale ``s_y``, each (R or 1,): the units of every tolerance."""

    def evaluator(self, n_runs: int, width: int) -> Evaluator:
        """A gradient evaluator for points ``w`` (n_runs, width, d), ``a`` (n_runs, width, k)."""

    def classify(self, w: torch.Tensor, a: torch.Tensor, mode: str, runs: np.ndarray | None = None) -> Any:
        """Classify points ``w`` (P, m, d), ``a`` (P, m, k) of the runs ``runs`` (P,) (all runs when None).

        Returns a record of per-point arrays with the fields of
        :class:`pipeline.stationary.BatchClassification`; ``mode`` is ``"end_point"`` or ``"plateau"``.
        """

    def flow_system(self, a0: torch.Tensor) -> FlowSystem | None:
        """The loss as the gradient-flow integrator sees it (:mod:`pipeline.dynamics.flow_system`), or None.

        ``a0`` (R, m, k) are the output weights the system keeps when the output layer does not train. None: the
        loss has no flow system yet (the survey refuses ``dynamics: gradient_flow`` for it).
        """

    def finish(self, w: torch.Tensor, a: torch.Tensor, runs: np.ndarray, options: EndGameOptions) -> Finish | None:
        """Follow the runs ``runs`` from ``w``, ``a`` to their limit (the end game), or None where it cannot."""

    def loss_scale(self, n_runs: int) -> np.ndarray:
        """``s_y**2`` per run (n_runs,) where zero loss is judged against it; NaN where it is not."""

    def groups(self, end: Any) -> dict[str, np.ndarray]:
        """``end_neuron_group`` (R, m) and ``end_reduced_width`` (R,) of the classified end points ``end``."""

    def embeddings(self, end: Any, betas: tuple[float, ...]) -> dict[str, np.ndarray]:
        """The end points' embeddings into width ``m + 1``, classified (``ValueError`` where not defined)."""


class PopulationLoss:
    """What a population loss (infinitely many inputs) answers where the sampled loss has data-set answers."""

    def loss_scale(self, n_runs: int) -> np.ndarray:
        """NaN: no zero-loss approach is judged on a population loss."""
        return np.full(n_runs, np.nan)

    def groups(self, end: Any) -> dict[str, np.ndarray]:
        """No neuron groups (:func:`no_groups`)."""
        return no_groups(end)

    def embeddings(self, end: Any, betas: tuple[float, ...]) -> dict[str, np.ndarray]:
        """``ValueError``: the embeddings are classified on the empirical loss."""
        raise ValueError("classify.embeddings needs sampled inputs (the embeddings use the empirical loss)")


def check_parameters(w0: torch.Tensor, a0: torch.Tensor, data: dict[str, tuple[torch.Tensor, str]]) -> None:
    """Raise ``ValueError`` naming the first tensor with a wrong rank, dtype, device or size.

    Parameters
    ----------
    w0, a0
        Initial parameters, expected (R, m, d) and (R, m, k).
    data
        Name -> (tensor, its layout in words) of the problem's data; each must be 3-d with leading size
        1 (shared) or R, and of the dtype and device of ``w0``. Their other sizes are the caller's to check.
    """
    tensors = {"w0": w0, "a0": a0} | {name: tensor for name, (tensor, _) in data.items()}
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor) or tensor.ndim != 3:
            raise ValueError(f"{name} must be a 3-d torch.Tensor (runs, rows, columns); got {_describe(tensor)}")
        if not tensor.is_floating_point():
            raise ValueError(f"{name} must have a floating dtype (float32 or float64); got {tensor.dtype}")
        if tensor.dtype != w0.dtype or tensor.device != w0.device:
            raise ValueError(
                f"{name} has dtype {tensor.dtype} on {tensor.device} but w0 has {w0.dtype} on {w0.device};"
                " convert all inputs to one dtype and device"
            )
    if a0.shape[:2] != w0.shape[:2]:
        raise ValueError(f"a0 has shape {tuple(a0.shape)}; expected (R, m, k) with R, m from w0")
    for name, (tensor, layout) in data.items():
        if tensor.shape[0] not in (1, w0.shape[0]):
            raise ValueError(
                f"{name} has {tensor.shape[0]} datasets; expected 1 (shared) or {w0.shape[0]} (one per run): {layout}"
            )


def select_runs(tensor: torch.Tensor, runs: np.ndarray | None) -> torch.Tensor:
    """Rows ``runs`` of a per-run tensor (a shared tensor, leading size 1, is returned as is)."""
    if runs is None or tensor.shape[0] == 1:
        return tensor
    return tensor[torch.as_tensor(runs, device=tensor.device)]


def no_groups(end: Any) -> dict[str, np.ndarray]:
    """No neuron groups: they are defined by activation patterns on finitely many samples."""
    n_runs, width = end.escape.shape
    return {
        "end_neuron_group": np.full((n_runs, width), -1, dtype=np.int16),
        "end_reduced_width": np.full(n_runs, -1, dtype=np.int16),
    }


def _describe(value: object) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} with shape {tuple(shape)}" if shape is not None else type(value).__name__


def stacked_field(datasets: Sequence[Dataset], name: str, **tensor_options: Any) -> torch.Tensor:
    """The field ``name`` of every run's data set stacked on a leading run axis, as a tensor of ``tensor_options``."""
    return torch.as_tensor(np.stack([getattr(dataset, name) for dataset in datasets]), **tensor_options)
