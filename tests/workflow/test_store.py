"""The store: records <-> Datasets <-> zarr, the survey store's schema and provenance, validate()."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from pipeline import store
from pipeline.batch import simulate_batch
from pipeline.stationary import labels
from pipeline.store import gathering, validation
from pipeline.store.derived import add_derived_variables
from pipeline.store.schema import SCHEMA_VERSION, VARIABLES
from pipeline.survey import load_survey
from pipeline.survey.plan import batches, make_plan, shard_runs
from pipeline.workflow.commands.simulate import padding
from tests.workflow.helpers import comparable

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")


@pytest.fixture(scope="module")
def batch_record(micro_survey: Path) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    survey = load_survey(micro_survey)
    rows = batches(shard_runs(make_plan(survey), 0), 4)[0]
    return rows, simulate_batch(rows, master_seed=survey.master_seed, padding=padding(survey))


def test_record_round_trip(batch_record, scratch: Path) -> None:
    rows, record = batch_record
    dataset = store.record_to_dataset(rows, record)
    assert dataset.sizes["run"] == len(rows)
    np.testing.assert_array_equal(dataset["run"].values, rows["run"].to_numpy())
    for name, values in record.items():
        np.testing.assert_array_equal(dataset[name].values, values)
        assert dataset[name].dims == VARIABLES[name].dims
    path = store.write_atomic(dataset, scratch / "shards" / "shard-0000.zarr")
    assert path.exists()
    assert not list(path.parent.glob(".*"))  # no temporary left behind
    back = xr.open_zarr(path).load()
    xr.testing.assert_identical(back, dataset)


def test_gather_keeps_the_shards_data(micro_store: Path) -> None:
    survey = xr.open_zarr(micro_store).load()
    shards = [xr.open_zarr(path).load() for path in sorted((micro_store.parent / "shards").glob("shard-*.zarr"))]
    joined = xr.concat(shards, dim="run")
    for name in joined.data_vars:
        if name != "end_point_type":  # resolved into global / spurious by gather
            xr.testing.assert_identical(survey[name], joined[name])
    assert {"outcome", "global_reference_loss", "n_escape_neurons"} <= set(survey.data_vars)


def test_record_with_unknown_variable_is_an_error(batch_record) -> None:
    rows, record = batch_record
    with pytest.raises(KeyError, match="not_a_variable"):
        store.record_to_dataset(rows, {**record, "not_a_variable": np.zeros(len(rows))})


def test_every_variable_is_described_and_flagged(micro_store: Path) -> None:
    dataset = xr.open_zarr(micro_store)
    assert {name for name, variable in VARIABLES.items() if variable.option is None} <= set(dataset.data_vars)
    for name, variable in dataset.data_vars.items():
        assert variable.attrs.get("description"), name
        assert variable.dtype.kind not in "OSU", f"{name} is a {variable.dtype} array"
        if variable.dtype.kind in "iu" and "flag_values" in variable.attrs:
            meanings = variable.attrs["flag_meanings"].split()
            assert len(meanings) == len(variable.attrs["flag_values"]), name
            present = np.unique(variable.values)
            allowed = set(np.asarray(variable.attrs["flag_values"]).tolist()) | {-1}
            assert set(present.tolist()) <= allowed, name
    categorical = [
        name
        for name, variable in VARIABLES.items()
        if variable.option is None and ("point_type" in name or name in ("outcome", "stop_reason"))
    ]
    for name in categorical:
        assert "flag_values" in dataset[name].attrs and "flag_meanings" in dataset[name].attrs, name
    # settings and seeds are coordinates along run
    for name in ("width", "init_scale", "data_seed", "init_seed", "cell", "shard"):
        assert name in dataset.coords and dataset[name].dims == ("run",)


def test_survey_store_provenance(micro_store: Path) -> None:
    attrs = xr.open_zarr(micro_store).attrs
    for name in validation.REQUIRED_ATTRS:
        assert name in attrs, name
    assert attrs["schema_version"] == SCHEMA_VERSION
    # per-shard attributes are not inherited from the first shard...
    assert "shard" not in attrs and "computed" not in attrs
    # ...but recorded per shard, with the thread counts
    shards = json.loads(attrs["shards"])
    assert [record["shard"] for record in shards] == [0, 1]
    for record in shards:
        assert {"computed", "device", "workers", "threads_per_worker", "threads", "cluster"} <= set(record)
    assert attrs["threads_per_worker"] == 1 and attrs["workers"] == 1 and attrs["device"] == "cpu"


def test_validate_accepts_a_good_store(micro_store: Path, micro_survey: Path) -> None:
    assert store.validate(micro_store, make_plan(load_survey(micro_survey))) == []


def test_validate_reports_missing_runs(micro_survey: Path, micro_store: Path, scratch: Path) -> None:
    shard = micro_store.parent / "shards" / "shard-0001.zarr"
    out = store.gather([shard], scratch / "survey.zarr", _attrs(micro_store), derive=add_derived_variables)
    problems = store.validate(out, make_plan(load_survey(micro_survey)))
    assert any("8 planned runs are missing" in problem for problem in problems), problems


def test_validate_reports_duplicate_runs(micro_survey: Path, micro_store: Path, scratch: Path) -> None:
    dataset = xr.open_zarr(micro_store).load()
    doubled = xr.concat([dataset, dataset.isel(run=[0])], dim="run")
    store.write_atomic(doubled, scratch / "survey.zarr")
    problems = store.validate(scratch / "survey.zarr", make_plan(load_survey(micro_survey)))
    assert "some runs appear more than once" in problems


def test_wrong_schema_version_is_a_clear_error(copy_store) -> None:
    path = copy_store()
    group = zarr.open_group(str(path), mode="r+")
    group.attrs["schema_version"] = SCHEMA_VERSION + 1
    zarr.consolidate_metadata(str(path))
    expected = rf"schema version {SCHEMA_VERSION + 1}, this package reads version {SCHEMA_VERSION}"
    with pytest.raises(ValueError, match=expected):
        store.open_store(path)
    (problem,) = store.validate(path)
    assert problem.startswith(f"cannot open {path}") and "schema version" in problem


@pytest.mark.parametrize("damage", ["chunk", "array_metadata"])
def test_validate_reports_a_truncated_store(copy_store, damage: str) -> None:
    path = copy_store()
    if damage == "chunk":
        shutil.rmtree(path / "loss_final" / "c")
        expected = "array 'loss_final' has 0 of 2 chunks on disk"  # chunks of 8 runs (the shard size)
    else:
        (path / "end_w" / "zarr.json").unlink()
        expected = "array 'end_w' has no metadata (zarr.json) on disk"
    problems = store.validate(path)
    assert expected in problems, problems


def test_validate_reports_missing_provenance(copy_store) -> None:
    path = copy_store()
    group = zarr.open_group(str(path), mode="r+")
    del group.attrs["package_version"]
    zarr.consolidate_metadata(str(path))
    assert store.validate(path) == ["attribute 'package_version' is missing"]


def test_validate_reports_nan_and_lost_attrs(copy_store) -> None:
    path = copy_store()
    group = zarr.open_group(str(path), mode="r+")
    loss = group["loss_final"]
    values = loss[:]
    values[3] = np.nan
    loss[:] = values
    attrs = dict(group["outcome"].attrs)
    del attrs["flag_meanings"]
    group["outcome"].attrs.clear()
    group["outcome"].attrs.update(attrs)
    zarr.consolidate_metadata(str(path))
    problems = store.validate(path)
    assert "variable 'loss_final' has NaN for runs that did not diverge" in problems
    assert any("'outcome' lacks the attributes" in problem for problem in problems)


def test_a_killed_write_leaves_no_finished_store(batch_record, scratch: Path, monkeypatch) -> None:
    rows, record = batch_record
    dataset = store.record_to_dataset(rows, record)
    target = scratch / "shard-0000.zarr"
    original = xr.Dataset.to_zarr

    def write_then_die(self, path, *args, **kwargs):
        original(self[["w_init", "loss_final"]], path, mode="w", zarr_format=3)  # part of the store is on disk
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(xr.Dataset, "to_zarr", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        store.write_atomic(dataset, target)
    assert not target.exists()
    assert list(scratch.iterdir()) == []  # the temporary store was removed as well


def test_rewrite_replaces_an_existing_store(batch_record, scratch: Path) -> None:
    rows, record = batch_record
    dataset = store.record_to_dataset(rows, record)
    target = scratch / "shard.zarr"
    store.write_atomic(dataset.isel(run=[0]), target)
    store.write_atomic(dataset, target)
    assert xr.open_zarr(target).sizes["run"] == len(rows)
    assert [p.name for p in scratch.iterdir()] == ["shard.zarr"]


@pytest.mark.parametrize("lazy", [False, True])
def test_gather_is_independent_of_shard_order(micro_store: Path, scratch: Path, monkeypatch, lazy: bool) -> None:
    shards = sorted((micro_store.parent / "shards").glob("shard-*.zarr"))
    a = store.gather(shards, scratch / "a.zarr", {"survey": "x"}, derive=add_derived_variables)
    if lazy:  # the Dask path of large surveys
        monkeypatch.setattr(gathering, "IN_MEMORY_BYTES", 0)
    b = store.gather(shards[::-1], scratch / "b.zarr", {"survey": "x"}, derive=add_derived_variables)
    xr.testing.assert_identical(comparable(xr.open_zarr(a)), comparable(xr.open_zarr(b)))
    assert xr.open_zarr(a).attrs["shards"] == xr.open_zarr(b).attrs["shards"]


def test_the_store_decides_no_verdict(micro_store: Path, scratch: Path) -> None:
    """``gather`` writes the verdicts of the shards and of its caller's ``derive``; it rewrites none itself."""
    shards = sorted((micro_store.parent / "shards").glob("shard-*.zarr"))
    stored = np.concatenate([xr.open_zarr(shard)["end_point_type"].values for shard in shards])
    local = labels.code(labels.POINT_TYPE, "local_min")
    forced = []

    def derive(dataset: xr.Dataset) -> xr.Dataset:
        forced.append(True)
        dataset["end_point_type"] = dataset["end_point_type"].copy(data=np.full(dataset.sizes["run"], local, np.int8))
        return dataset

    out = store.gather(shards, scratch / "survey.zarr", {"survey": "x"}, derive=derive)
    assert forced == [True] and (xr.open_zarr(out)["end_point_type"].values == local).all()
    kept = store.gather(shards, scratch / "kept.zarr", {"survey": "x"}, derive=lambda dataset: dataset)
    np.testing.assert_array_equal(np.sort(xr.open_zarr(kept)["end_point_type"].values), np.sort(stored))


def _attrs(path: Path) -> dict:
    attrs = dict(xr.open_zarr(path).attrs)
    for name in ("shards", "schema_version", *store.SHARD_ATTRS):
        attrs.pop(name, None)
    return attrs


def test_gather_refuses_shards_computed_by_different_code() -> None:
    import xarray as xr

    from pipeline.store import shard_provenance

    old, new = (
        xr.Dataset(attrs={"shard": 0, "git_revision": "aaa"}),
        xr.Dataset(attrs={"shard": 1, "git_revision": "bbb"}),
    )
    with pytest.raises(ValueError, match="different code .*git_revision: aaa, bbb"):
        shard_provenance([old, new])
    same = xr.Dataset(attrs={"shard": 1, "git_revision": "aaa"})
    assert json.loads(shard_provenance([old, same])["shards"])[1]["git_revision"] == "aaa"


@pytest.mark.parametrize(
    ("distribution", "marker"),
    [
        ("gaussian", "1/(2n) sum_i"),
        ("gaussian_population", "E_{x ~ N(0, I_d)}"),
        ("interval_population", "int_low^high"),
    ],
)
def test_the_loss_descriptions_state_the_loss_of_the_runs(distribution: str, marker: str) -> None:
    """Each loss describes itself (its module's ``LOSS``): no population store claims a mean over n inputs."""
    rows = pd.DataFrame({"run": [0, 1], "input_distribution": [distribution] * 2})
    dataset = store.record_to_dataset(rows, {"loss_final": np.zeros(2), "grad_norm_final": np.zeros(2)})
    for name in ("loss_final", "grad_norm_final"):
        description = dataset[name].attrs["description"]
        assert marker in description
        assert ("1/(2n)" in description) == (distribution == "gaussian")
