"""Provenance: what a survey store records about how it was computed, what validate checks, and that
two separate runs of the same resolved survey give identical numbers."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
import zarr

from pipeline.store import validate
from pipeline.survey import load_survey
from pipeline.survey.plan import make_plan, n_shards
from tests.reliability.helpers import REPO, landscape
from tests.workflow.helpers import comparable

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")]


@pytest.fixture(scope="module")
def second_run(micro_survey: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The micro survey computed again, by the command line in fresh processes, on Dask workers."""
    folder = tmp_path_factory.mktemp("second-run") / "micro"
    resolved = folder / "survey.resolved.yaml"
    assert landscape("resolve", micro_survey, "--out", resolved).returncode == 0
    shards = []
    for shard in range(n_shards(make_plan(load_survey(micro_survey)))):
        path = folder / "shards" / f"shard-{shard:04d}.zarr"
        result = landscape("simulate", resolved, "--shard", str(shard), "--threads", "2", "--out", path)
        assert result.returncode == 0, result.stderr[-3000:]
        shards.append(path)
    store = folder / "survey.zarr"
    result = landscape("collect", resolved, *shards, "--out", store)
    assert result.returncode == 0, result.stderr[-3000:]
    return store


@pytest.mark.parametrize("which", ["in-process", "command line"])
def test_the_store_records_how_it_was_computed(which: str, micro_store: Path, second_run: Path, micro_survey: Path):
    store = micro_store if which == "in-process" else second_run
    attrs = xr.open_zarr(store).attrs
    survey = load_survey(micro_survey)
    # the resolved survey, as YAML and as JSON, with every default
    resolved = survey.resolved_dict()
    assert json.loads(attrs["resolved_survey_json"]) == json.loads(json.dumps(resolved))
    assert yaml.safe_load(attrs["resolved_survey"]) == yaml.safe_load(survey.resolved_yaml())
    assert attrs["survey"] == "micro"
    # package, git revision, library versions
    assert attrs["package_version"] == importlib.metadata.version("relu-landscape-survey")
    revision = attrs["git_revision"]
    assert re.fullmatch(r"[0-9a-f]{40}", revision), revision
    known = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{revision}^{{commit}}"], check=False)
    assert known.returncode == 0, f"{revision} is not a commit of this repository"
    libraries = dict(item.split("=", 1) for item in attrs["library_versions"].split())
    assert libraries["torch"] == torch.__version__ and libraries["numpy"] == np.__version__
    assert libraries["zarr"] == zarr.__version__ and libraries["xarray"] == xr.__version__
    assert {"scipy", "dask", "distributed", "snakemake"} <= set(libraries)
    assert attrs["python_version"]
    # dtype: the resolved setting and the stored parameters
    assert resolved["fixed"]["dtype"] == "float64"
    assert xr.open_zarr(store)["end_w"].dtype == np.float64
    # device, threads and the time each shard was computed, per shard
    records = json.loads(attrs["shards"])
    assert [record["shard"] for record in records] == [0, 1]
    created = datetime.datetime.fromisoformat(attrs["created"])
    expected = {"in-process": ("none", 1, 1), "command line": ("local", 2, 1)}[which]
    for record in records:
        assert record["device"] == "cpu"
        assert (record["cluster"], record["workers"], record["threads_per_worker"]) == expected
        assert record["threads"] >= record["workers"] * record["threads_per_worker"]
        computed = datetime.datetime.fromisoformat(record["computed"])
        assert computed.tzinfo is not None and computed <= created
    assert attrs["device"] == "cpu" and attrs["threads_per_worker"] == 1


def test_two_separate_runs_contain_identical_numbers(micro_store: Path, second_run: Path) -> None:
    first, second = xr.open_zarr(micro_store, chunks=None), xr.open_zarr(second_run, chunks=None)
    assert first.attrs["resolved_survey_json"] == second.attrs["resolved_survey_json"]
    xr.testing.assert_identical(comparable(first), comparable(second))


CHECKED = [
    "survey",
    "schema_version",
    "package_version",
    "created",
    "resolved_survey",
    "shards",
    "git_revision",
    "library_versions",
    "python_version",
]


@pytest.mark.parametrize("name", CHECKED)
def test_validate_reports_lost_provenance(name: str, copy_store: Callable[[], Path], micro_survey: Path) -> None:
    path = copy_store()
    group = zarr.open_group(str(path), mode="r+")
    del group.attrs[name]
    zarr.consolidate_metadata(str(path))
    assert f"attribute {name!r} is missing" in validate(path, make_plan(load_survey(micro_survey)))


@pytest.mark.parametrize("field", ["computed", "device", "threads_per_worker"])
def test_validate_reports_an_incomplete_shard_record(field: str, copy_store: Callable[[], Path]) -> None:
    path = copy_store()
    group = zarr.open_group(str(path), mode="r+")
    records = json.loads(group.attrs["shards"])
    del records[1][field]
    group.attrs["shards"] = json.dumps(records)
    zarr.consolidate_metadata(str(path))
    assert any(field in problem for problem in validate(path))


def test_a_store_copied_elsewhere_keeps_its_provenance(micro_store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere.zarr"
    shutil.copytree(micro_store, copy)
    assert xr.open_zarr(copy).attrs == xr.open_zarr(micro_store).attrs
    assert validate(copy) == []
