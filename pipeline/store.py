"""Result records <-> xarray Datasets <-> zarr stores.

One shard job writes one shard store (written aside, then renamed, so a killed job never leaves a
store that looks finished); :func:`gather` concatenates the shards into the survey store, adds the
survey-wide derived variables (global reference loss, run outcome, neuron counts) and the
provenance attributes. :func:`validate` checks a store against :data:`pipeline.schema.VARIABLES`
and, given the plan, that every planned run is present exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.engine import StopReason
from pipeline.schema import OUTCOME, SCHEMA_VERSION, VARIABLES
from pipeline.stationary import labels

__all__ = [
    "GLOBAL_RELATIVE_TOLERANCE",
    "SHARD_ATTRS",
    "gather",
    "open_store",
    "record_to_dataset",
    "shard_provenance",
    "temporary_path",
    "validate",
    "write_atomic",
]

GLOBAL_RELATIVE_TOLERANCE = 1e-4
"""A certified local minimum is global when its loss is within this relative distance of the best
final loss of any run on the same data set (or when the target is realisable and the loss is ~0)."""

REQUIRED_ATTRS = (
    "survey",
    "schema_version",
    "package_version",
    "git_revision",
    "python_version",
    "library_versions",
    "created",
    "resolved_survey",
    "shards",
)
SHARD_RECORD_FIELDS = ("shard", "computed", "device", "threads_per_worker")
"""Fields every entry of the ``shards`` attribute (a JSON list, one record per shard) must have."""

IN_MEMORY_BYTES = 64 * 2**20
""":func:`gather` concatenates shards in memory up to this total size, and lazily (Dask, one chunk
per shard along ``run``) above it, so that collecting a large survey needs little memory."""

SHARD_ATTRS = (
    "shard",
    "computed",
    "package_version",
    "git_revision",
    "device",
    "cluster",
    "workers",
    "threads_per_worker",
    "threads",
)
CODE_ATTRS = ("package_version", "git_revision")
"""Shard attributes naming the code that computed the shard: all shards of a store must agree."""
"""Attributes of a shard store that describe how that one shard was computed. :func:`gather` moves
them into the survey store's ``shards`` attribute (JSON: one object per shard, in shard order) and
keeps at the top level only those equal across shards (``device``, ``workers``, ...), never
``shard`` or ``computed``."""


def record_to_dataset(rows: pd.DataFrame, record: Mapping[str, np.ndarray]) -> xr.Dataset:
    """A batch or shard as a Dataset: the plan rows become coordinates along ``run``."""
    unknown = sorted(set(record) - set(VARIABLES))
    if unknown:
        raise KeyError(f"variables missing from pipeline.schema.VARIABLES: {', '.join(unknown)}")
    data_vars = {
        name: xr.Variable(VARIABLES[name].dims, values, attrs=VARIABLES[name].attrs())
        for name, values in record.items()
    }
    coords = {column: ("run", _coordinate(rows[column])) for column in rows.columns if column != "run"}
    coords["run"] = ("run", rows["run"].to_numpy(dtype=np.int64))
    return xr.Dataset(data_vars, coords=coords)


def _coordinate(column: pd.Series) -> np.ndarray:
    """A plan column as a zarr-friendly array: NaN for missing numbers, '' for missing strings."""
    if column.dtype == object:
        return column.fillna("").astype(str).to_numpy(dtype=str)
    if isinstance(column.dtype, pd.Int64Dtype):
        return column.astype("float64").to_numpy()
    return column.to_numpy()


def write_atomic(dataset: xr.Dataset, path: str | Path, *, chunk_runs: int | None = None) -> Path:
    """Write ``dataset`` to ``path`` as zarr: into a temporary sibling, then renamed into place."""
    path = Path(path)
    temporary = temporary_path(path)
    if temporary.exists():
        shutil.rmtree(temporary)
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = {"run": chunk_runs or max(dataset.sizes.get("run", 1), 1)}
    encoding = {name: {"chunks": _chunks(dataset[name], chunks)} for name in dataset.data_vars}
    try:
        # every chunk is written, even all-fill ones, so that validate() can tell a truncated store
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            dataset.to_zarr(
                temporary, mode="w", encoding=encoding, consolidated=True, zarr_format=3, write_empty_chunks=True
            )
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(temporary, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(temporary, path)
    return path


def temporary_path(path: str | Path, pid: int | None = None) -> Path:
    """Where :func:`write_atomic` writes ``path`` before renaming it: a hidden sibling named with the pid."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid() if pid is None else pid}")


def _chunks(variable: xr.DataArray, chunks: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(chunks.get(dim, size) if dim in chunks else size for dim, size in variable.sizes.items())


def open_store(path: str | Path, *, check_complete: bool = True) -> xr.Dataset:
    """Open a store lazily.

    A store written by another schema version is an error, and so (with ``check_complete``) is a
    store with missing arrays or chunks: zarr would read missing chunks as fill values and every
    rate computed from them would be wrong.
    """
    if check_complete:
        missing = _truncation_problems(path)
        if missing:
            raise ValueError(
                f"{path}: the store is incomplete ({missing[0]}{'; ...' if len(missing) > 1 else ''});"
                f" run `landscape validate {path}` and re-run `landscape collect`"
            )
    dataset = xr.open_zarr(path, consolidated=True)
    version = dataset.attrs.get("schema_version")
    if version is not None and int(version) != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: store schema version {version}, this package reads version {SCHEMA_VERSION};"
            " re-run `landscape collect` with this version or use the package version that wrote it"
        )
    return dataset


def gather(shard_paths: Sequence[str | Path], out_path: str | Path, attrs: Mapping[str, Any]) -> Path:
    """Concatenate shard stores into the survey store, add derived variables and provenance."""
    if not shard_paths:
        raise ValueError("gather needs at least one shard store")
    shards = [xr.open_zarr(path, consolidated=True, chunks=None) for path in shard_paths]
    if sum(shard.nbytes for shard in shards) <= IN_MEMORY_BYTES:
        shards = [shard.load() for shard in shards]
    else:
        shards = [shard.chunk({"run": shard.sizes["run"]}) for shard in shards]
    shards.sort(key=lambda shard: int(shard["run"].values[0]) if shard.sizes["run"] else -1)
    dataset = xr.concat(
        shards,
        dim="run",
        data_vars="all",
        coords="different",
        compat="equals",
        join="exact",
    )
    dataset.attrs = {}  # the first shard's attrs (shard, computed, ...) do not describe the survey
    if not (np.diff(dataset["run"].values) > 0).all():
        dataset = dataset.sortby("run")
    dataset = add_derived_variables(dataset)
    dataset.attrs.update(shard_provenance(shards))
    dataset.attrs.update(attrs)
    dataset.attrs["schema_version"] = SCHEMA_VERSION
    chunk = int(max(shard.sizes["run"] for shard in shards))
    return write_atomic(dataset, out_path, chunk_runs=chunk)


def shard_provenance(shards: Sequence[xr.Dataset]) -> dict[str, Any]:
    """Survey attrs from the shards' attrs: ``shards`` (JSON list, one object per shard) and the
    execution attrs that all shards share (for example ``device``, ``threads_per_worker``)."""
    records = [{name: _plain(shard.attrs[name]) for name in SHARD_ATTRS if name in shard.attrs} for shard in shards]
    records.sort(key=lambda record: record.get("shard", -1))
    for name in CODE_ATTRS:
        versions = sorted({str(record[name]) for record in records if name in record})
        if len(versions) > 1:
            raise ValueError(
                f"the shards were computed by different code ({name}: {', '.join(versions)}); delete the shards"
                " computed by the old code and run the workflow again"
            )
    common: dict[str, Any] = {}
    for name in SHARD_ATTRS:
        if name in ("shard", "computed"):
            continue
        values = {json.dumps(record.get(name)) for record in records}
        if len(values) == 1 and records and name in records[0]:
            common[name] = records[0][name]
    return {**common, "shards": json.dumps(records)}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def add_derived_variables(dataset: xr.Dataset) -> xr.Dataset:
    """Survey-wide variables: global reference loss, global/spurious resolution, outcome, counts.

    Only 1-D per-run arrays are loaded; parameter arrays stay lazy.
    """
    loss = dataset["loss_final"].values
    data_id = pd.MultiIndex.from_arrays([dataset["data_key"].values, dataset["data_seed"].values])
    reference = pd.Series(loss).groupby(data_id.codes[0] * (data_id.codes[1].max() + 1) + data_id.codes[1])
    reference_loss = reference.transform("min").to_numpy()
    point_type = dataset["end_point_type"].values.astype(np.int8).copy()
    local = point_type == labels.code(labels.POINT_TYPE, "local_min")
    end_loss = dataset["end_loss"].values
    is_global = end_loss <= reference_loss * (1 + GLOBAL_RELATIVE_TOLERANCE) + np.finfo(float).tiny
    point_type[local & is_global] = labels.code(labels.POINT_TYPE, "global_min")
    point_type[local & ~is_global] = labels.code(labels.POINT_TYPE, "spurious_local_min")
    outcome = _outcome(point_type, dataset["stop_reason"].values)
    roles = dataset["end_roles"].values
    dead = np.isin(roles, [labels.code(labels.ROLE, "dead"), labels.code(labels.ROLE, "dead_touching")])
    derived = {
        "end_point_type": point_type,
        "global_reference_loss": reference_loss,
        "outcome": outcome,
        "n_escape_neurons": dataset["end_escape"].values.sum(axis=-1).astype(np.int16),
        "n_dead_neurons": dead.sum(axis=-1).astype(np.int16),
        "n_kink_neurons": dataset["end_kink"].values.sum(axis=-1).astype(np.int16),
    }
    for name, values in derived.items():
        dataset[name] = xr.Variable(VARIABLES[name].dims, values, attrs=VARIABLES[name].attrs())
    dataset["end_point_type"].attrs["global_rule"] = (
        "global_min: realisable target and loss ~ 0, or loss within a relative "
        f"{GLOBAL_RELATIVE_TOLERANCE:g} of global_reference_loss; otherwise spurious_local_min"
    )
    return dataset


def _same_attr(stored: Any, expected: Any) -> bool:
    if isinstance(expected, list | tuple | np.ndarray) or isinstance(stored, list | tuple | np.ndarray):
        return stored is not None and np.array_equal(np.asarray(stored), np.asarray(expected))
    return bool(stored == expected)


def _shard_record_problems(shards: object) -> list[str]:
    """Problems with the ``shards`` provenance attribute (one JSON record per shard)."""
    if shards is None:
        return []
    try:
        records = json.loads(shards) if isinstance(shards, str) else shards
    except json.JSONDecodeError:
        return ["attribute 'shards' is not valid JSON"]
    problems = []
    for index, record in enumerate(records if isinstance(records, list) else []):
        absent = [field for field in SHARD_RECORD_FIELDS if not isinstance(record, dict) or field not in record]
        if absent:
            problems.append(f"attribute 'shards': record {index} lacks {', '.join(absent)}")
    return problems


def _truncation_problems(path: str | Path) -> list[str]:
    """Arrays whose metadata or chunks are missing on disk (the consolidated metadata hides both)."""
    import zarr

    try:
        with warnings.catch_warnings():  # Snakemake leaves a .snakemake_timestamp file in directory outputs
            warnings.filterwarnings("ignore", message="Object at", category=UserWarning)
            group = zarr.open_group(str(path), mode="r", use_consolidated=False)
            on_disk = dict(group.arrays())
        listed = set(zarr.open_group(str(path), mode="r", use_consolidated=True).array_keys())
    except (ValueError, FileNotFoundError, KeyError, OSError) as error:
        return [f"cannot read the arrays of {path}: {error}"]
    problems = [f"array {name!r} has no metadata (zarr.json) on disk" for name in sorted(listed - set(on_disk))]
    for name, array in sorted(on_disk.items()):
        if array.nchunks_initialized != array.nchunks:
            problems.append(f"array {name!r} has {array.nchunks_initialized} of {array.nchunks} chunks on disk")
    return problems


def _outcome(point_type: np.ndarray, stop_reason: np.ndarray) -> np.ndarray:
    """Run outcome codes from the resolved end-point type and the stop reason."""
    by_type = {
        "global_min": "converged_global",
        "spurious_local_min": "stuck_spurious_local_min",
        "saddle": "stalled_at_saddle",
        "not_stationary": "not_converged",
        "undetermined": "undetermined",
        "local_min": "undetermined",
        "non_finite": "diverged",
    }
    table = np.array([OUTCOME.index(by_type[name]) for name in labels.POINT_TYPE], dtype=np.int8)
    outcome = table[np.clip(point_type, 0, None)]
    outcome[stop_reason == int(StopReason.DIVERGED)] = OUTCOME.index("diverged")
    return outcome


def validate(path: str | Path, plan: pd.DataFrame | None = None) -> list[str]:
    """Problems with a store (an empty list when it is valid).

    Checks: it opens with this schema version; every variable of the schema is present with its
    dimensions; provenance attributes are present; no NaN in required per-run values; and, given
    the plan, every planned run is present exactly once.
    """
    try:
        dataset = open_store(path, check_complete=False)
    except (ValueError, FileNotFoundError, KeyError, OSError) as error:
        return [f"cannot open {path}: {error}"]
    problems = [f"attribute {name!r} is missing" for name in REQUIRED_ATTRS if name not in dataset.attrs]
    problems += _shard_record_problems(dataset.attrs.get("shards"))
    problems += _truncation_problems(path)
    for name, variable in VARIABLES.items():
        if name not in dataset:
            problems.append(f"variable {name!r} is missing")
        elif dataset[name].dims != variable.dims:
            problems.append(f"variable {name!r} has dims {dataset[name].dims}, expected {variable.dims}")
        elif any(not _same_attr(dataset[name].attrs.get(key), value) for key, value in variable.attrs().items()):
            problems.append(f"variable {name!r} lacks the attributes of the schema (description, units, flags)")
    for name in dataset.data_vars:
        if dataset[name].dtype.kind in "OSU":
            problems.append(f"variable {name!r} holds strings or objects ({dataset[name].dtype})")
    runs = dataset["run"].values
    if len(np.unique(runs)) != len(runs):
        problems.append("some runs appear more than once")
    if plan is not None:
        missing = np.setdiff1d(plan["run"].to_numpy(), runs)
        extra = np.setdiff1d(runs, plan["run"].to_numpy())
        if missing.size:
            problems.append(f"{missing.size} planned runs are missing (first: {missing[:5].tolist()})")
        if extra.size:
            problems.append(f"{extra.size} runs are not in the plan (first: {extra[:5].tolist()})")
    for name in ("loss_final", "steps_taken", "stop_reason", "end_point_type"):
        if name in dataset:
            values = dataset[name].values
            finite_required = dataset["stop_reason"].values != int(StopReason.DIVERGED)
            if np.issubdtype(values.dtype, np.floating) and np.isnan(values[finite_required]).any():
                problems.append(f"variable {name!r} has NaN for runs that did not diverge")
    return problems
