"""Summaries read only per-run variables: parameter arrays are never computed, even for a million runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from dask.callbacks import Callback

from analysis import query
from analysis.compare import comparison_table
from analysis.endings import ending_table
from analysis.events import summary_table
from analysis.plateaus import plateau_table, visited_table
from analysis.runs import open_survey
from tests.analysis.helpers import write_store

PARAMETERS = ("w_final", "a_final", "plateau_w", "checkpoint_amplitude")
MILLION = 1_000_000


class ComputeCounter(Callback):
    """Counts dask computations (as xarray's raise_if_dask_computes) and records every task's graph name."""

    def __init__(self) -> None:
        super().__init__()
        self.computes = 0
        self.names: set[str] = set()

    def scheduler(self, graph: Any, keys: Any, **kwargs: Any) -> Any:
        self.computes += 1
        return dask.get(graph, keys, **kwargs)

    def _pretask(self, key: Any, dsk: Any, state: Any) -> None:
        self.names.add(str(key[0] if isinstance(key, tuple) else key))


@contextmanager
def counting() -> Iterator[ComputeCounter]:
    counter = ComputeCounter()
    with dask.config.set(scheduler=counter.scheduler), counter:
        yield counter


def _computed(counter: ComputeCounter, dataset: xr.Dataset, names: tuple[str, ...]) -> set[str]:
    """The variables among ``names`` whose dask graph had a task run."""
    return {name for name in names if any(dataset[name].data.name in key for key in counter.names)}


def _summarise(dataset: xr.Dataset, by: list[str]) -> None:
    summary_table(dataset, by)
    query.point_type_table(dataset, by)
    query.saddle_mechanism_table(dataset, by, combinations=True)
    query.strictness_table(dataset, by)
    query.count_table(dataset, "n_escape_neurons", by)
    query.count_summary(dataset, "n_plateaus", by)
    query.escape_consistency_table(dataset, by)
    comparison_table(dataset)
    plateau_table(dataset, by)
    visited_table(dataset, by, "mechanisms")
    ending_table(dataset, by)


def test_the_counter_sees_a_parameter_array(small_store: Path) -> None:
    dataset = open_survey(small_store)
    with counting() as counter:
        dataset["w_final"].isel(run=[0]).values  # noqa: B018
    assert counter.computes == 1
    assert _computed(counter, dataset, PARAMETERS) == {"w_final"}


def test_summaries_never_compute_parameter_arrays(small_store: Path) -> None:
    dataset = open_survey(small_store)
    with counting() as counter:
        _summarise(dataset, ["width"])
    assert counter.computes > 0
    assert _computed(counter, dataset, PARAMETERS) == set()
    assert any("outcome" in name for name in counter.names)


@pytest.fixture(scope="module")
def million_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000,000 runs: realistic per-run variables, parameter arrays as lazy constants (cheap to write)."""
    rng = np.random.default_rng(0)
    n, chunk, plateaus = MILLION, 250_000, 2
    rows = pd.DataFrame(
        {
            "run": np.arange(n),
            "width": rng.choice([2, 4, 8, 16], n),
            "init_scale": rng.choice([1e-6, 1e-3, 1.0], n),
        }
    )
    point_type = rng.choice(6, n, p=[0.5, 0.1, 0.05, 0.2, 0.05, 0.1]).astype(np.int8)
    grew = rng.integers(-1, 3, (n, plateaus)).astype(np.int16)
    record = {
        "end_point_type": point_type,
        "outcome": np.minimum(point_type, 5).astype(np.int8),
        "end_mechanisms": np.where(point_type == 3, rng.integers(0, 32, n), 0).astype(np.int8),
        "end_strictness": np.where(point_type == 3, rng.integers(0, 3, n), 3).astype(np.int8),
        "n_escape_neurons": rng.poisson(0.5, n).astype(np.int16),
        "n_plateaus": (grew >= 0).sum(axis=1).astype(np.int64),
        "plateau_n_grew": grew,
        "plateau_n_grew_predicted": np.where(grew > 0, grew - 1, grew).astype(np.int16),
        "plateau_n_escape": np.where(grew >= 0, grew + 1, -1).astype(np.int16),
        "plateau_start": np.where(grew >= 0, 10, -1).astype(np.int64),
        "plateau_end": np.where(grew >= 0, 100, -1).astype(np.int64),
        "plateau_loss": np.where(grew >= 0, 0.5, np.nan),
        "plateau_is_final": (grew >= 0) & (np.arange(plateaus) == plateaus - 1),
        "plateau_point_type": np.where(grew >= 0, 3, -1).astype(np.int8),
        "plateau_certificate": np.where(grew >= 0, 1, -1).astype(np.int8),
        "plateau_mechanisms": np.where(grew >= 0, 1, -1).astype(np.int8),
        "w_final": da.zeros((n, 2, 3), chunks=(chunk, 2, 3)),
        "a_final": da.zeros((n, 2, 1), chunks=(chunk, 2, 1)),
        "plateau_w": da.zeros((n, plateaus, 2, 3), chunks=(chunk, plateaus, 2, 3)),
        "checkpoint_amplitude": da.zeros((n, 4, 2), chunks=(chunk, 4, 2)),
    }
    return write_store(tmp_path_factory.mktemp("million") / "million.zarr", rows, record, chunk_runs=chunk)


def test_a_million_runs_are_summarised_without_parameter_arrays(million_store: Path) -> None:
    dataset = open_survey(million_store)
    assert dataset.sizes["run"] == MILLION
    with counting() as counter:
        summary = summary_table(dataset, ["width", "init_scale"])
        _summarise(dataset, ["width"])
    assert summary["runs"].sum() == MILLION
    assert _computed(counter, dataset, PARAMETERS) == set()
