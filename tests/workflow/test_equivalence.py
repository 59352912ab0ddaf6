"""The equivalence ladder: the numbers of a run do not depend on how the survey was cut and run.

in-process == Dask (bit for bit on CPU, 1 or 2 workers, in-process threads or worker processes);
shard sizes 3, 8, 16 give the same survey store; batch sizes 1 and 4 give the same labels and
numbers to float tolerance; the ``simulate`` command == a direct ``run_batches`` call.
Timing variables (``batch_wall_time``) and the dataset attributes are not compared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pipeline.survey import load_survey
from pipeline.survey.plan import batches, make_plan, shard_runs
from pipeline.workflow.commands import simulate as simulate_command
from pipeline.workflow.commands.simulate import padding
from pipeline.workflow.runner import ExecutionSettings, run_batches
from tests.workflow.helpers import comparable, run_survey, write_survey

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")


def simulate_shard(survey_path: Path, shard: int, execution: ExecutionSettings, batch_size: int = 4) -> xr.Dataset:
    survey = load_survey(survey_path)
    work = batches(shard_runs(make_plan(survey), shard), batch_size)
    return run_batches(
        work,
        master_seed=survey.master_seed,
        padding=padding(survey),
        classify_plateaus=survey.classify.classify_plateaus,
        execution=execution,
    )


@pytest.fixture(scope="module")
def in_process_shard(micro_survey: Path) -> xr.Dataset:
    return simulate_shard(micro_survey, 0, ExecutionSettings(cluster="none"))


def test_in_process_equals_dask_threads(micro_survey: Path, in_process_shard: xr.Dataset) -> None:
    """The Dask code path (map, as_completed, gather) on an in-process cluster of 2 thread workers."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        execution = ExecutionSettings(cluster="scheduler", scheduler_address=cluster.scheduler_address)
        on_dask = simulate_shard(micro_survey, 0, execution)
    xr.testing.assert_identical(comparable(on_dask), comparable(in_process_shard))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_in_process_equals_local_cluster(micro_survey: Path, in_process_shard: xr.Dataset, workers: int) -> None:
    """Worker processes of a LocalCluster (the default execution) give bit-identical results."""
    on_dask = simulate_shard(micro_survey, 0, ExecutionSettings(cluster="local", workers=workers))
    xr.testing.assert_identical(comparable(on_dask), comparable(in_process_shard))
    assert (on_dask["batch_wall_time"].values > 0).all()


@pytest.mark.parametrize("shard_size", [pytest.param(3, marks=pytest.mark.slow), 16])
def test_shard_size_does_not_change_the_store(micro_store: Path, scratch: Path, shard_size: int) -> None:
    survey = write_survey(scratch / "surveys", "micro", execution={"shard_size": shard_size})
    other = run_survey(survey, scratch / "results")
    a = xr.open_zarr(micro_store, chunks=None)
    b = xr.open_zarr(other, chunks=None)
    assert b["shard"].max() == -(-16 // shard_size) - 1
    xr.testing.assert_identical(comparable(a, drop=("shard",)), comparable(b, drop=("shard",)))


def test_batch_size_changes_numbers_only_to_float_tolerance(micro_survey: Path, micro_store: Path) -> None:
    survey = load_survey(micro_survey)
    ones = run_batches(
        batches(make_plan(survey), 1),
        master_seed=survey.master_seed,
        padding=padding(survey),
        classify_plateaus=True,
        execution=ExecutionSettings(cluster="none"),
    )
    fours = xr.open_zarr(micro_store, chunks=None).load()
    assert ones.sizes["run"] == fours.sizes["run"] == 16
    for name in ones.data_vars:
        if name == "batch_wall_time":
            continue
        a, b = ones[name].values, fours[name].values
        if name == "end_point_type":  # gather resolves local minima into global / spurious
            continue
        if np.issubdtype(a.dtype, np.floating):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)
    for name in ("run", "width", "init_scale", "data_seed", "init_seed"):
        np.testing.assert_array_equal(ones[name].values, fours[name].values)


def test_simulate_command_equals_run_batches(micro_survey: Path, micro_store: Path) -> None:
    """The shard store the command wrote (in-process) holds exactly what run_batches returns."""
    shard = xr.open_zarr(micro_store.parent / "shards" / "shard-0001.zarr", chunks=None).load()
    direct = simulate_shard(micro_survey, 1, ExecutionSettings(cluster="none"))
    xr.testing.assert_identical(comparable(shard), comparable(direct))
    assert shard.attrs["shard"] == 1 and shard.attrs["cluster"] == "none"


def test_simulate_command_on_dask_equals_in_process(micro_survey: Path, micro_store: Path, scratch: Path) -> None:
    """``landscape simulate`` without --in-process (Dask on an existing in-process scheduler)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        survey = write_survey(
            scratch, "micro", execution={"cluster": "scheduler", "scheduler_address": cluster.scheduler_address}
        )
        out = scratch / "shard-0001.zarr"
        assert simulate_command.main([str(survey), "--shard", "1", "--out", str(out), "--threads", "2"]) == 0
    expected = xr.open_zarr(micro_store.parent / "shards" / "shard-0001.zarr", chunks=None)
    xr.testing.assert_identical(comparable(xr.open_zarr(out, chunks=None)), comparable(expected))
