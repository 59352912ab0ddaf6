"""The loss of each data source: one entry per :data:`pipeline.data.sources.LossKind`.

The survey layer knows data sources by ``input_distribution`` (:mod:`pipeline.data.sources`, torch-free);
each source names the loss its data define, and this registry maps that loss to the problem class that
trains and judges it. A batch builds its problem here (:func:`build_problem`) and the store describes the
loss with :func:`loss_formula`; neither branches on a setting's name.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pipeline.data import DATA_SOURCES, Dataset, data_source
from pipeline.data.sources import LossKind
from pipeline.losses.activations import Activation
from pipeline.problems.base import Problem, VerdictOptions
from pipeline.problems.gaussian import GaussianPopulationProblem
from pipeline.problems.interval import IntervalPopulationProblem
from pipeline.problems.sampled import SampledProblem

__all__ = ["PROBLEMS", "SurveyProblem", "build_problem", "loss_formula"]


class SurveyProblem(Protocol):
    """A problem class (the class object) that surveys can build from the data sets of a batch's runs."""

    @property
    def LOSS(self) -> str: ...  # noqa: N802 (the class attribute of every problem)

    def from_datasets(
        self,
        datasets: Sequence[Dataset],
        settings: Mapping[str, Any],
        activation: Activation,
        train_output: bool,
        verdicts: VerdictOptions,
        **tensor_options: Any,
    ) -> Problem:
        """The problem of a batch: its runs' data sets stacked on the run axis (``dtype``, ``device``)."""


PROBLEMS: Mapping[LossKind, SurveyProblem] = types.MappingProxyType(
    {
        "sampled": SampledProblem,
        "gaussian_population": GaussianPopulationProblem,
        "interval_population": IntervalPopulationProblem,
    }
)
"""The problem class of every loss a data source can define."""


def build_problem(
    datasets: Sequence[Dataset],
    settings: Mapping[str, Any],
    activation: Activation,
    train_output: bool,
    verdicts: VerdictOptions,
    **tensor_options: Any,
) -> Problem:
    """The problem of one batch of a grid cell, for the loss of its ``input_distribution``."""
    problem_class = PROBLEMS[data_source(settings["input_distribution"]).loss]
    return problem_class.from_datasets(datasets, settings, activation, train_output, verdicts, **tensor_options)


def loss_formula(input_distribution: str) -> str:
    """The loss that runs on inputs of ``input_distribution`` minimise (the problem's ``LOSS``); the
    empirical loss for a name no data source has."""
    source = DATA_SOURCES.get(input_distribution)
    return PROBLEMS[source.loss if source is not None else "sampled"].LOSS
