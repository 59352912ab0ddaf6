"""Disk full or an unwritable results folder: a one-line error naming the path; earlier results intact."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import xarray as xr

from pipeline.workflow.commands import collect as collect_command
from pipeline.workflow.commands import simulate as simulate_command
from pipeline.workflow.commands.collect import lock_path
from tests.reliability.helpers import file_stamps, landscape
from tests.workflow.helpers import comparable

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")]

ORIGINAL_TO_ZARR = xr.Dataset.to_zarr


def _fail_mid_write(code: int):
    """A ``Dataset.to_zarr`` that writes part of the store, then fails as the OS would (ENOSPC, EACCES)."""

    def to_zarr(self, store, *args, **kwargs):
        ORIGINAL_TO_ZARR(self[["loss_final"]], store, mode="w", zarr_format=3, consolidated=False)
        raise OSError(code, os.strerror(code), os.path.join(str(store), "w_init", "c", "0", "0", "0"))

    return to_zarr


@pytest.fixture
def results(scratch: Path, micro_store: Path) -> Path:
    """A results folder as after a first run: shard stores and a survey store (copies of the micro survey's)."""
    folder = scratch / "results" / "micro"
    shutil.copytree(micro_store.parent / "shards", folder / "shards")
    shutil.copytree(micro_store, folder / "survey.zarr")
    return folder


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_a_failed_shard_write_is_one_line_and_harms_nothing(
    code: int, results: Path, micro_survey: Path, micro_store: Path, monkeypatch, capsys
) -> None:
    shards = results / "shards"
    shutil.rmtree(shards / "shard-0001.zarr")  # shard 1 is the one being computed
    before = file_stamps(shards / "shard-0000.zarr")
    monkeypatch.setattr(xr.Dataset, "to_zarr", _fail_mid_write(code))
    out = shards / "shard-0001.zarr"
    status = simulate_command.main([str(micro_survey), "--shard", "1", "--out", str(out), "--in-process"])
    err = capsys.readouterr().err
    assert status == 1, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"error: {os.strerror(code)}: {shards}/.shard-0001.zarr.tmp-"), line
    assert f"(while writing {out})" in line, line
    # nothing half-written is left, and the earlier shard is intact
    assert sorted(path.name for path in shards.iterdir()) == ["shard-0000.zarr"]
    assert file_stamps(shards / "shard-0000.zarr") == before
    xr.testing.assert_identical(
        xr.open_zarr(shards / "shard-0000.zarr", chunks=None),
        xr.open_zarr(micro_store.parent / "shards" / "shard-0000.zarr", chunks=None),
    )


def test_a_failed_collect_keeps_the_previous_survey_store(
    results: Path, micro_survey: Path, micro_store: Path, monkeypatch, capsys
) -> None:
    store = results / "survey.zarr"
    before = file_stamps(store)
    monkeypatch.setattr(xr.Dataset, "to_zarr", _fail_mid_write(errno.ENOSPC))
    shards = [str(path) for path in sorted((results / "shards").glob("shard-*.zarr"))]
    status = collect_command.main([str(micro_survey), *shards, "--out", str(store)])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: No space left on device: ") and f"(while writing {store})" in line, line
    assert line.endswith("free some space and run the step again"), line
    assert file_stamps(store) == before
    assert sorted(path.name for path in results.iterdir()) == ["shards", "survey.zarr"]  # no temporary, no lock
    assert not lock_path(store).exists()
    monkeypatch.undo()
    check = landscape("validate", store, "--survey", micro_survey)
    assert check.returncode == 0, check.stdout
    # the shard stores are intact: collecting them again gives the same store
    again = landscape("collect", micro_survey, *shards, "--out", store)
    assert again.returncode == 0, again.stdout + again.stderr
    xr.testing.assert_identical(
        comparable(xr.open_zarr(store, chunks=None)), comparable(xr.open_zarr(micro_store, chunks=None))
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the ENOSPC/EACCES tests stand in")
def test_a_read_only_results_folder_is_one_line(results: Path, micro_survey: Path) -> None:
    shards = results / "shards"
    shutil.rmtree(shards / "shard-0001.zarr")
    before = file_stamps(shards / "shard-0000.zarr")
    shards.chmod(0o555)
    try:
        out = shards / "shard-0001.zarr"
        result = landscape("simulate", micro_survey, "--shard", "1", "--out", out, "--in-process")
    finally:
        shards.chmod(0o755)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: Permission denied: ") and str(shards) in line, line
    assert sorted(path.name for path in shards.iterdir()) == ["shard-0000.zarr"]
    assert file_stamps(shards / "shard-0000.zarr") == before


@pytest.fixture
def small_disk(scratch: Path):
    """A 1.2 MB file system (tmpfs) where one shard store (~0.9 MB) fits and a second does not.

    Needs the right to mount (root with CAP_SYS_ADMIN); skipped otherwise.
    """
    folder = scratch / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(folder)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_is_one_line_and_harms_nothing(small_disk: Path, micro_survey: Path, micro_store: Path) -> None:
    """The real thing: ENOSPC from the file system, in a subprocess, no monkeypatching."""
    shards = small_disk / "results" / "micro" / "shards"
    shards.mkdir(parents=True)
    shutil.copytree(micro_store.parent / "shards" / "shard-0000.zarr", shards / "shard-0000.zarr")
    before = file_stamps(shards / "shard-0000.zarr")
    out = shards / "shard-0001.zarr"
    result = landscape("simulate", micro_survey, "--shard", "1", "--out", out, "--in-process")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: No space left on device: ") and str(shards) in line, line
    assert sorted(path.name for path in shards.iterdir()) == ["shard-0000.zarr"]
    assert file_stamps(shards / "shard-0000.zarr") == before
    xr.testing.assert_identical(
        xr.open_zarr(shards / "shard-0000.zarr", chunks=None),
        xr.open_zarr(micro_store.parent / "shards" / "shard-0000.zarr", chunks=None),
    )
