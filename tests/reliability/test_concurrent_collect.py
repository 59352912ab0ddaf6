"""Two ``collect`` steps on the same survey store at once: the second refuses, the store is unharmed."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

from pipeline.workflow.commands.collect import collect_lock, lock_path
from tests.reliability.helpers import environment, file_stamps, landscape
from tests.workflow.helpers import comparable

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")]

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, f"{os.getpid()}\\n".encode(), 0)
print("held", flush=True)
time.sleep(600)
"""


def _collect(micro_survey: Path, micro_store: Path, out: Path) -> subprocess.CompletedProcess[str]:
    shards = sorted((micro_store.parent / "shards").glob("shard-*.zarr"))
    return landscape("collect", micro_survey, *shards, "--out", out)


def _hold_lock(path: Path) -> subprocess.Popen:
    """Another process holding the collect lock of a store (as a running collect does)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_collect_refuses_while_one_writes(scratch: Path, micro_survey: Path, micro_store: Path) -> None:
    out = scratch / "results" / "micro" / "survey.zarr"
    shutil.copytree(micro_store, out)  # an earlier collect's store
    before = file_stamps(out)
    lock = lock_path(out)
    assert lock == out.with_name(".survey.zarr.lock")
    holder = _hold_lock(lock)
    try:
        second = _collect(micro_survey, micro_store, out)
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == 2, second.stderr
    assert "Traceback" not in second.stderr
    last = second.stderr.strip().splitlines()[-1]
    assert last == (
        f"error: another collect is writing {out} (lock {lock} held by pid {holder.pid}); wait for it to finish"
    ), second.stderr
    assert file_stamps(out) == before  # the store was not touched

    # the holder was killed: the kernel released its lock, so there is no stale lock to remove
    third = _collect(micro_survey, micro_store, out)
    assert third.returncode == 0, third.stderr[-3000:]
    assert not lock.exists()  # removed on release
    xr.testing.assert_identical(
        comparable(xr.open_zarr(out, chunks=None)), comparable(xr.open_zarr(micro_store, chunks=None))
    )


def test_two_collects_started_together_never_corrupt_the_store(
    scratch: Path, micro_survey: Path, micro_store: Path
) -> None:
    """Whatever the timing, each of two concurrent collects either writes the whole store or refuses."""
    out = scratch / "results" / "micro" / "survey.zarr"
    shards = sorted((micro_store.parent / "shards").glob("shard-*.zarr"))
    command = [sys.executable, "-m", "pipeline.cli", "collect", str(micro_survey), *map(str, shards), "--out", str(out)]
    processes = [
        subprocess.Popen(command, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(process.wait(timeout=300), process.stderr.read()) for process in processes]  # type: ignore[union-attr]
    for code, stderr in results:
        assert code == 0 or (code == 2 and "another collect is writing" in stderr), stderr[-3000:]
    assert any(code == 0 for code, _ in results)
    check = landscape("validate", out, "--survey", micro_survey)
    assert check.returncode == 0, check.stdout
    assert [path.name for path in out.parent.iterdir()] == ["survey.zarr"]  # no temporary, no lock left


def test_the_lock_is_exclusive_and_reentrant_after_release(scratch: Path) -> None:
    out = scratch / "survey.zarr"
    with collect_lock(out) as path:
        assert path.read_text().strip() == str(os.getpid())
        fd = os.open(path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    assert not path.exists()
    with collect_lock(out):
        pass
