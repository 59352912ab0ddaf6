"""Fixtures of the workflow tests: small surveys written as files, and helpers that run the steps.

The surveys are ``surveys/tiny.yaml`` with fewer gradient steps (the workflow layer does not care
how long a run trains), so that a whole survey simulates in a couple of seconds in-process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import xarray as xr
import yaml

from pipeline.commands import collect as collect_command
from pipeline.commands import simulate as simulate_command
from pipeline.commands.status import shard_path
from pipeline.plan import make_plan, n_shards
from pipeline.survey import load_survey

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "surveys" / "tiny.yaml"
MICRO_STEPS = 300

TIMING_VARIABLES = ("batch_wall_time",)
"""Data variables that measure time, hence differ between two otherwise identical computations."""


def write_survey(folder: Path, name: str, **changes: Mapping[str, Any]) -> Path:
    """``surveys/tiny.yaml`` with ``max_steps`` lowered and sections updated, as ``folder/<name>.yaml``."""
    data = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    data["fixed"]["max_steps"] = MICRO_STEPS
    for section, values in changes.items():
        data.setdefault(section, {}).update(values)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run_survey(survey_path: Path, results: Path, *, extra: tuple[str, ...] = ("--in-process",)) -> Path:
    """Simulate every shard with the ``simulate`` command, then ``collect``; returns the survey store."""
    survey = load_survey(survey_path)
    folder = results / survey.name
    shards = []
    for shard in range(n_shards(make_plan(survey))):
        path = shard_path(folder, shard)
        argv = [str(survey_path), "--shard", str(shard), "--out", str(path), *extra]
        assert simulate_command.main(argv) == 0
        shards.append(str(path))
    store = folder / "survey.zarr"
    assert collect_command.main([str(survey_path), *shards, "--out", str(store)]) == 0
    return store


def comparable(dataset: xr.Dataset, *, drop: tuple[str, ...] = ()) -> xr.Dataset:
    """The dataset without timing variables, the given coordinates, and attributes of the dataset."""
    out = dataset.drop_vars([name for name in (*TIMING_VARIABLES, *drop) if name in dataset.variables]).load()
    out.attrs = {}
    return out


@pytest.fixture(scope="session")
def scratch_root() -> Iterator[Path]:
    """A folder for stores: in memory (/dev/shm) where possible, since zarr stores are many small
    files and deleting them from a slow disk costs seconds."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="landscape-workflow-tests-", dir=base))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def scratch(scratch_root: Path, request: pytest.FixtureRequest) -> Path:
    """A fresh folder for one test, under :func:`scratch_root`."""
    return Path(tempfile.mkdtemp(prefix=request.node.name[:40].replace("/", "_") + "-", dir=scratch_root))


@pytest.fixture(scope="session")
def micro_survey(scratch_root: Path) -> Path:
    """The tiny survey with 300 steps: 16 runs, 2 shards of 8, batches of 4."""
    return write_survey(scratch_root / "surveys", "micro")


@pytest.fixture(scope="session")
def micro_store(micro_survey: Path, scratch_root: Path) -> Path:
    """The micro survey simulated in-process and collected (do not modify it: copy it first)."""
    return run_survey(micro_survey, scratch_root / "results")


@pytest.fixture
def copy_store(micro_store: Path, scratch: Path) -> Callable[[], Path]:
    """A fresh copy of the micro store that a test may damage."""

    def make() -> Path:
        target = scratch / "copy" / "survey.zarr"
        shutil.copytree(micro_store, target)
        return target

    return make
