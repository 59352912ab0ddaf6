"""Faults of the Snakemake workflow: a killed workflow resumes, a second invocation refuses.

Both run the user's command (``snakemake --profile profiles/default --config survey=micro``, here
with the survey store as target, to skip the report) on a copy of the Snakefile, the profile and
the surveys.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import xarray as xr

from tests.reliability.helpers import (
    environment,
    file_stamps,
    incomplete_marker,
    job_stats,
    landscape,
    live_group_members,
    snakemake,
    snakemake_command,
    wait_for,
    workflow_copy,
)
from tests.workflow.helpers import comparable

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")]

TARGET = "results/micro/survey.zarr"
SHARDS = ("0000", "0001")
EXECUTION_ATTRS = ("created", "shards", "cluster", "workers", "threads", "threads_per_worker", "device", "git_revision")
"""Store attributes that say when and how (not what) was computed (the git revision too: commits may
land in a working checkout while the test runs)."""


def _shard_state(workdir: Path) -> tuple[list[str], list[str]] | None:
    """(finished shards, running shards) once one shard is finished and another one's job runs.

    Finished: its store exists and Snakemake has registered the job's end (no incomplete marker).
    Running: not finished, and its job has started (its log or its hidden temporary store exists).
    """
    shards = workdir / "results" / "micro" / "shards"
    finished, running = [], []
    for shard in SHARDS:
        store = shards / f"shard-{shard}.zarr"
        marker = incomplete_marker(workdir, f"results/micro/shards/shard-{shard}.zarr")
        if store.exists() and not marker.exists():
            finished.append(shard)
        elif (
            list(shards.glob(f".shard-{shard}.zarr.tmp-*"))
            or (workdir / "logs" / "simulate" / "micro" / f"shard-{shard}.log").exists()
        ):
            running.append(shard)
    return (finished, running) if finished and running else None


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL to the process group of ``process`` (Snakemake, its jobs, their Dask workers)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    wait_for(lambda: not live_group_members(process.pid), timeout=30)


def test_a_killed_workflow_resumes_without_recomputing_finished_shards(
    scratch: Path, micro_survey: Path, micro_store: Path
) -> None:
    workdir = workflow_copy(scratch / "workflow", micro_survey)
    with open(scratch / "killed-run.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            snakemake_command(TARGET),
            cwd=workdir,
            env=environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill reaches every job, as on a lost node
        )
        try:
            finished, running = wait_for(lambda: _shard_state(workdir), timeout=300, process=process)
            results = workdir / "results" / "micro"
            stamps = {shard: file_stamps(results / "shards" / f"shard-{shard}.zarr") for shard in finished}
        finally:
            _kill_group(process)
    killed_log = (scratch / "killed-run.log").read_text(encoding="utf-8")
    assert not (results / "survey.zarr").exists(), killed_log[-3000:]
    assert running, killed_log[-3000:]

    # The same command again: Snakemake's lock of the killed run is still there, and it says so.
    again = snakemake(workdir, TARGET)
    assert again.returncode != 0
    assert "LockException" in again.stderr and "--unlock" in again.stderr, again.stderr[-3000:]
    assert not (results / "survey.zarr").exists()

    # What the message says to do: unlock, then the same command.
    unlock = snakemake(workdir, TARGET, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    resumed = snakemake(workdir, TARGET)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    jobs = job_stats(resumed.stdout + resumed.stderr)
    assert jobs.get("simulate") == len(SHARDS) - len(finished), jobs
    assert jobs.get("collect") == 1 and "resolve" not in jobs and "plan" not in jobs, jobs
    for shard, before in stamps.items():  # finished shards are not recomputed (nor touched)
        assert file_stamps(results / "shards" / f"shard-{shard}.zarr") == before, shard

    store = results / "survey.zarr"
    check = landscape("validate", store, "--survey", workdir / "surveys" / "micro.yaml")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == f"{store}: valid store"

    # the resumed store equals an uninterrupted run's (the in-process micro store) exactly
    resumed_store = xr.open_zarr(store, chunks=None)
    uninterrupted = xr.open_zarr(micro_store, chunks=None)
    xr.testing.assert_identical(comparable(resumed_store), comparable(uninterrupted))
    what = {name: value for name, value in resumed_store.attrs.items() if name not in EXECUTION_ATTRS}
    assert what == {name: value for name, value in uninterrupted.attrs.items() if name not in EXECUTION_ATTRS}


def test_a_second_snakemake_on_the_same_survey_refuses(scratch: Path, micro_survey: Path, micro_store: Path) -> None:
    workdir = workflow_copy(scratch / "workflow", micro_survey)
    locks = workdir / ".snakemake" / "locks"
    with open(scratch / "first-run.log", "w", encoding="utf-8") as log:
        first = subprocess.Popen(
            snakemake_command(TARGET),
            cwd=workdir,
            env=environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(lambda: locks.is_dir() and any(locks.iterdir()), timeout=120, process=first)
            second = snakemake(workdir, TARGET)
            still_running = first.poll() is None
            first.wait(timeout=600)
        except BaseException:
            _kill_group(first)
            raise
    first_log = (scratch / "first-run.log").read_text(encoding="utf-8")
    assert still_running, "the first run ended before the second one started: the test proved nothing"
    assert second.returncode != 0
    assert "LockException" in second.stderr and "cannot be locked" in second.stderr, second.stderr[-3000:]
    assert job_stats(second.stdout + second.stderr) == {}  # refused before scheduling any job

    # the first run went on undisturbed
    assert first.returncode == 0, first_log[-3000:]
    store = workdir / TARGET
    check = landscape("validate", store, "--survey", workdir / "surveys" / "micro.yaml")
    assert check.returncode == 0, check.stdout + check.stderr
    xr.testing.assert_identical(
        comparable(xr.open_zarr(store, chunks=None)), comparable(xr.open_zarr(micro_store, chunks=None))
    )
    assert not locks.exists() or not any(locks.iterdir())  # and released its lock
