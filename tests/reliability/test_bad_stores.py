"""Bad stores on the command line: ``landscape validate`` reports, ``landscape query`` refuses in one line.

(tests/workflow/test_store.py checks :func:`pipeline.store.validate` itself on the same damage.)
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import xarray as xr
import zarr

from pipeline.store import SCHEMA_VERSION, write_atomic
from tests.reliability.helpers import cli, landscape

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")]


def _set_attr(path: Path, name: str, value: object) -> None:
    group = zarr.open_group(str(path), mode="r+")
    group.attrs[name] = value
    zarr.consolidate_metadata(str(path))


def _one_line_error(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stdout == "", result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def test_another_schema_version(copy_store: Callable[[], Path], micro_survey: Path) -> None:
    path = copy_store()
    _set_attr(path, "schema_version", SCHEMA_VERSION + 1)
    check = landscape("validate", path, "--survey", micro_survey)
    assert check.returncode == 1
    assert check.stdout.strip() == (
        f"{path}: cannot open {path}: {path}: store schema version {SCHEMA_VERSION + 1}, this package reads version"
        f" {SCHEMA_VERSION} (a newer package wrote it); recompute it with this version (remove the survey's results"
        " folder results/<name> and run `bash run.sh survey <name>`) or read it with the package version that wrote it"
    )
    line = _one_line_error(landscape("query", path, "--by", "width"))
    assert f"store schema version {SCHEMA_VERSION + 1}" in line
    _set_attr(path, "schema_version", 1)  # a store from before the end game
    older = landscape("validate", path, "--survey", micro_survey).stdout
    assert "store schema version 1" in older and "version 2 added the end game" in older
    assert "bash run.sh survey <name>" in older


def test_truncated_store_validate_reports(copy_store: Callable[[], Path], micro_survey: Path, capsys) -> None:
    path = copy_store()
    shutil.rmtree(path / "outcome" / "c")  # chunk files lost (an interrupted copy, a full disk)
    (path / "end_w" / "zarr.json").unlink()
    check = cli(capsys, "validate", path, "--survey", micro_survey)
    assert check.returncode == 1
    lines = check.stdout.strip().splitlines()
    assert f"{path}: array 'outcome' has 0 of 2 chunks on disk" in lines, lines
    assert f"{path}: array 'end_w' has no metadata (zarr.json) on disk" in lines, lines


def test_query_refuses_a_truncated_store(copy_store: Callable[[], Path], capsys) -> None:
    path = copy_store()
    shutil.rmtree(path / "outcome" / "c")
    line = _one_line_error(cli(capsys, "query", path, "--by", "width"))
    assert "chunks" in line and "landscape validate" in line


def test_a_store_missing_runs(micro_store: Path, micro_survey: Path, scratch: Path, capsys) -> None:
    """A shard lost some runs: collect writes the store but says so (exit 1); validate reports it."""
    shards = sorted((micro_store.parent / "shards").glob("shard-*.zarr"))
    short = scratch / "shards" / "shard-0001.zarr"
    write_atomic(xr.open_zarr(shards[1], chunks=None).isel(run=slice(0, 5)).load(), short)
    out = scratch / "survey.zarr"
    collect = cli(capsys, "collect", micro_survey, shards[0], short, "--out", out)
    assert collect.returncode == 1, collect.stderr[-3000:]
    assert "Traceback" not in collect.stderr
    assert "invalid store: 3 planned runs are missing (first: [13, 14, 15])" in collect.stdout.splitlines()
    check = cli(capsys, "validate", out, "--survey", micro_survey)
    assert check.returncode == 1
    assert check.stdout.strip().splitlines() == [f"{out}: 3 planned runs are missing (first: [13, 14, 15])"]


@pytest.mark.parametrize("kind", ["missing", "empty folder", "not a folder"])
def test_not_a_store(kind: str, scratch: Path, capsys) -> None:
    path = scratch / "survey.zarr"
    if kind == "empty folder":
        path.mkdir()
    elif kind == "not a folder":
        path.write_text("not zarr\n")
    line = _one_line_error(cli(capsys, "query", path, "--by", "width"))
    assert str(path) in line, line
    check = cli(capsys, "validate", path)
    assert check.returncode in (1, 2) and "Traceback" not in check.stderr
    assert str(path) in check.stdout + check.stderr
