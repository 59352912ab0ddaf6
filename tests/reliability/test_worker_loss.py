"""A Dask worker killed in the middle of a shard: the shard completes and its numbers do not change."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import xarray as xr

from pipeline.workflow.commands import simulate as simulate_command
from tests.reliability.helpers import environment, survey_file, wait_for
from tests.workflow.helpers import comparable

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")]

BATCHES = 8


def _worker_processes(pid: int) -> list[psutil.Process]:
    """Dask worker processes started by ``pid`` (multiprocessing's spawned children)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    workers = []
    for child in children:
        try:
            command = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if "spawn_main" in command and "resource_tracker" not in command:
            workers.append(child)
    return workers


def test_a_killed_worker_costs_only_its_task(scratch: Path) -> None:
    # one shard of 8 runs in 8 batches of ~0.6 s on 2 workers: a batch is in flight when the kill comes
    survey = survey_file(
        scratch / "surveys", "workers", fixed={"max_steps": 2000}, execution={"shard_size": 8, "batch_size": 1}
    )
    out = scratch / "results" / "workers" / "shards" / "shard-0000.zarr"
    log_path = scratch / "simulate.log"
    command = [sys.executable, "-m", "pipeline.cli", "simulate", str(survey), "--shard", "0", "--threads", "2"]
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [*command, "--out", str(out)], env=environment(), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_for(
                lambda: f"1/{BATCHES} batches" in log_path.read_text(encoding="utf-8"), timeout=300, process=process
            )
            workers = wait_for(lambda: _worker_processes(process.pid), timeout=30, process=process)
            assert len(workers) == 2, workers
            victim = workers[0]
            os.kill(victim.pid, signal.SIGKILL)
            killed_in_flight = process.poll() is None and not out.exists()
            process.wait(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
    text = log_path.read_text(encoding="utf-8")
    assert killed_in_flight, "the shard finished before the worker was killed: the test proved nothing"
    assert process.returncode == 0, text[-4000:]
    assert f"{BATCHES}/{BATCHES} batches" in text and "Traceback" not in text, text[-4000:]
    assert not victim.is_running() or victim.status() == psutil.STATUS_ZOMBIE

    # the same shard, undisturbed, in this process: equal bit for bit (except the timing variable)
    reference = scratch / "reference" / "shard-0000.zarr"
    assert simulate_command.main([str(survey), "--shard", "0", "--out", str(reference), "--in-process"]) == 0
    disturbed = xr.open_zarr(out, chunks=None)
    assert disturbed.sizes["run"] == BATCHES
    xr.testing.assert_identical(comparable(disturbed), comparable(xr.open_zarr(reference, chunks=None)))
