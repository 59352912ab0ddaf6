"""The registry of data sources: what each ``input_distribution`` draws and which loss trains on it.

One :class:`DataSource` per value of the survey setting ``input_distribution``. The survey's validation,
the plan and :mod:`pipeline.batch` look a source up here instead of branching on its name; a new data
source is one entry of :data:`DATA_SOURCES` (and its name in the setting's choices, which a test keeps
equal to this registry). The module is torch-free: the survey layer imports it.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipeline.data.dataset import Dataset
from pipeline.data.given import given_source, load_given, prepare
from pipeline.data.synthetic import draw_affine_map, make_dataset, teacher_network

__all__ = ["DATA_SOURCES", "DataSource", "LossKind", "data_source", "given_provenance"]

LossKind = Literal["sampled", "gaussian_population", "interval_population"]
"""The loss a source's data define: the empirical loss of finitely many samples, or a population loss."""


@dataclass(frozen=True)
class DataSource:
    """One value of ``input_distribution``.

    Attributes
    ----------
    name
        The setting's value.
    loss
        The loss the runs train on (:data:`LossKind`).
    make
        ``(rng, settings) -> Dataset``: the data set of one run from its data generator and settings.
    given
        The data set is given (a file, scikit-learn), not drawn: data seeds vary only its subsample.
    """

    name: str
    loss: LossKind
    make: Callable[[np.random.Generator, Mapping[str, Any]], Dataset]
    given: bool = False

    @property
    def sampled(self) -> bool:
        """Finitely many samples (``n_samples`` or the given set's rows), not a population."""
        return self.loss == "sampled"


def _drawn_dataset(rng: np.random.Generator, settings: Mapping[str, Any]) -> Dataset:
    """A finite data set drawn as the settings say."""
    from pipeline.globality import activation_leak  # the activation lives with the torch kernels

    return make_dataset(
        rng,
        distribution=settings["input_distribution"],
        n_samples=settings["n_samples"],
        input_dim=settings["input_dim"],
        output_dim=settings["output_dim"],
        bias=settings["bias"],
        target=settings["target"],
        teacher_width=settings["teacher_width"],
        teacher_kind=settings["teacher_kind"] or "gaussian",
        teacher_leak=activation_leak(settings["teacher_activation"], settings["teacher_leak"]),
        noise_std=settings["label_noise"],
        interval=(settings["interval_low"], settings["interval_high"])
        if settings["input_distribution"] == "interval"
        else (-1.0, 1.0),
    )


def _gaussian_population(rng: np.random.Generator, settings: Mapping[str, Any]) -> Dataset:
    """Infinitely many Gaussian inputs: only the teacher is drawn; ``x`` and ``y`` have no rows."""
    teacher_w, teacher_a = teacher_network(
        rng,
        input_dim=settings["input_dim"],
        width=settings["teacher_width"],
        output_dim=settings["output_dim"],
        kind=settings["teacher_kind"],
    )
    empty_x = np.zeros((0, settings["input_dim"]))
    return Dataset(x=empty_x, y=np.zeros((0, settings["output_dim"])), teacher_v=teacher_w, teacher_b=teacher_a)


def _interval_population(rng: np.random.Generator, settings: Mapping[str, Any]) -> Dataset:
    """Infinitely many inputs on an interval: only the affine map is drawn; ``x`` (0, 2) carries the bias column."""
    slope, intercept = draw_affine_map(rng, settings["input_dim"], settings["output_dim"])
    empty_x = np.zeros((0, settings["input_dim"] + 1))
    return Dataset(x=empty_x, y=np.zeros((0, settings["output_dim"])), affine_slope=slope, affine_intercept=intercept)


DATA_SOURCES: Mapping[str, DataSource] = types.MappingProxyType(
    {
        source.name: source
        for source in (
            DataSource("gaussian", "sampled", _drawn_dataset),
            DataSource("sphere", "sampled", _drawn_dataset),
            DataSource("interval", "sampled", _drawn_dataset),
            DataSource("orthogonal", "sampled", _drawn_dataset),
            DataSource("gaussian_population", "gaussian_population", _gaussian_population),
            DataSource("interval_population", "interval_population", _interval_population),
            DataSource("file", "sampled", prepare, given=True),
            DataSource("sklearn", "sampled", prepare, given=True),
        )
    }
)
"""Every data source by its ``input_distribution`` name."""


def data_source(name: str) -> DataSource:
    """The source of ``input_distribution`` ``name``; a ValueError names the choices."""
    try:
        return DATA_SOURCES[name]
    except KeyError:
        raise ValueError(f"input_distribution must be one of {list(DATA_SOURCES)}; got {name!r}") from None


def given_provenance(cells: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Source key (:func:`given_source`) -> provenance of every given data set the cells use."""
    return {
        given_source(cell): load_given(cell).provenance
        for cell in cells
        if data_source(cell["input_distribution"]).given
    }
