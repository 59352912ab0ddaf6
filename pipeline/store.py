"""Result records <-> xarray Datasets <-> zarr stores.

One shard job writes one shard store (written aside, then renamed, so a killed job never leaves a
store that looks finished); :func:`gather` concatenates the shards into the survey store, adds the
survey-wide derived variables its caller computes (:mod:`pipeline.derived`: global reference loss,
global/spurious, run outcome, neuron counts) and the provenance attributes. :func:`validate` checks a
store against :data:`pipeline.schema.VARIABLES`, its chunks against the manifest
(:mod:`pipeline.integrity`), its numbers against the physical invariants (:mod:`pipeline.invariants`)
and, given the plan, that every planned run is present exactly once. Every array is written with a
checksum in each chunk and every store with a manifest; :func:`open_store` verifies each chunk as it
is read.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pipeline import integrity
from pipeline.data.given import merge_provenance, provenance_problems
from pipeline.dynamics import StopReason
from pipeline.integrity import DamagedStore, Manifest, UnverifiedStoreWarning
from pipeline.invariants import invariant_problems
from pipeline.schema import SCHEMA_VERSION, VARIABLES, compressors

__all__ = [
    "SHARD_ATTRS",
    "DamagedStore",
    "UnverifiedStoreWarning",
    "gather",
    "open_store",
    "record_to_dataset",
    "rehash",
    "shard_provenance",
    "temporary_path",
    "validate",
    "write_atomic",
]

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
    "data_sources",
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
    distributions = rows["input_distribution"].unique() if "input_distribution" in rows else ()
    data_vars = {
        name: xr.Variable(VARIABLES[name].dims, values, attrs=VARIABLES[name].attrs(distributions))
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


def write_atomic(
    dataset: xr.Dataset, path: str | Path, *, chunk_runs: int | None = None, plan: pd.DataFrame | None = None
) -> Path:
    """Write ``dataset`` to ``path`` as zarr: into a temporary sibling, then renamed into place.

    Every array (data variables and coordinates) is written with :func:`pipeline.schema.compressors`
    (a CRC-32C in every chunk) and chunked along ``run`` by ``chunk_runs``; then the store's chunks
    are hashed into its manifest, with the resolved survey (attribute ``resolved_survey_json``) and
    ``plan`` when given.
    """
    path = Path(path)
    temporary = temporary_path(path)
    if temporary.exists():
        shutil.rmtree(temporary)
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = {"run": chunk_runs or max(dataset.sizes.get("run", 1), 1)}
    encoding = {name: _encoding(dataset[name], chunks) for name in dataset.variables}
    try:
        # every chunk is written, even all-fill ones, so that validate() can tell a truncated store;
        # the metadata is consolidated once, with the manifest
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            dataset.to_zarr(
                temporary, mode="w", encoding=encoding, consolidated=False, zarr_format=3, write_empty_chunks=True
            )
        _add_manifest(temporary, dataset.attrs, plan, chunks["run"])
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
    return tuple(chunks.get(str(dim), size) for dim, size in variable.sizes.items())


def _encoding(variable: xr.DataArray, chunks: Mapping[str, int]) -> dict[str, Any]:
    """zarr encoding of one array: checksummed codecs; chunks along ``run`` for arrays along it."""
    encoding: dict[str, Any] = {"compressors": compressors()}
    if set(chunks) & set(variable.dims):
        encoding["chunks"] = _chunks(variable, chunks)
    return encoding


def _add_manifest(path: Path, attrs: Mapping[str, Any], plan: pd.DataFrame | None, run_chunk: int | None) -> None:
    """Hash the written store at ``path`` into its manifest (see :mod:`pipeline.integrity`)."""
    survey = attrs.get(integrity.SURVEY_ATTR)
    manifest = integrity.build_manifest(
        path,
        survey=integrity.text_digest(survey) if isinstance(survey, str) else None,
        plan=integrity.plan_digest(plan) if plan is not None else None,
        run_chunk=run_chunk,
    )
    integrity.write_manifest(path, manifest)


def open_store(path: str | Path, *, check_complete: bool = True, **options: Any) -> xr.Dataset:
    """Open a store lazily; every chunk is checked against the manifest as it is read.

    A store written by another schema version is an error, and so (with ``check_complete``) is a
    store with missing arrays or chunks, chunk files of the wrong size, or array metadata that
    differs from the manifest: zarr would read missing chunks as fill values and every rate computed
    from them would be wrong. A store without a manifest (written before checksums) opens with an
    :class:`UnverifiedStoreWarning`. ``options`` go to :func:`xarray.open_zarr` (``chunks``, ...).

    Raises
    ------
    DamagedStore
        When a chunk that is read differs from the manifest (raised by the read, not by the open).
    """
    manifest = integrity.read_manifest(path)
    if check_complete:
        _refuse_incomplete(path, manifest)
    if manifest is None:
        warnings.warn(
            UnverifiedStoreWarning(
                f"{path}: written before checksums, its chunks cannot be verified; run"
                f" `landscape validate {path} --rehash` to read it in full and add a manifest"
            ),
            stacklevel=2,
        )
    return _open(path, manifest, **options)


def _open(path: str | Path, manifest: Manifest | None, **options: Any) -> xr.Dataset:
    """Open through :func:`pipeline.integrity.open_verified`; refuse another schema version."""
    dataset = integrity.open_verified(path, manifest, **options)
    version = dataset.attrs.get("schema_version")
    if version is not None and int(version) != SCHEMA_VERSION:
        why = (
            " (version 2 added the end game and the limit/resolution verdicts, which this store lacks)"
            if int(version) < SCHEMA_VERSION
            else " (a newer package wrote it)"
        )
        raise ValueError(
            f"{path}: store schema version {version}, this package reads version {SCHEMA_VERSION}{why}; recompute"
            " it with this version (remove the survey's results folder results/<name> and run `bash run.sh survey"
            " <name>`) or read it with the package version that wrote it"
        )
    return dataset


def _refuse_incomplete(path: str | Path, manifest: Manifest | None) -> None:
    """Raise :class:`DamagedStore` for missing arrays or chunks, or metadata and sizes unlike the manifest."""
    advice = integrity.recompute_advice(path, Manifest({}), "", "", integrity.stored_attrs(path))
    missing = _truncation_problems(path)
    if missing:
        raise DamagedStore(
            f"{path}: the store is incomplete ({missing[0]}{'; ...' if len(missing) > 1 else ''});"
            f" run `landscape validate {path}`, then {advice}"
        )
    damaged = [problem.text for problem in integrity.metadata_problems(path, manifest)] if manifest else []
    if damaged:
        raise DamagedStore(
            f"{path}: the store is damaged ({damaged[0]}{'; ...' if len(damaged) > 1 else ''});"
            f" run `landscape validate {path}`, then {advice}"
        )


def gather(
    shard_paths: Sequence[str | Path],
    out_path: str | Path,
    attrs: Mapping[str, Any],
    plan: pd.DataFrame | None = None,
    *,
    derive: Callable[[xr.Dataset], xr.Dataset],
) -> Path:
    """Concatenate shard stores into the survey store, add the variables ``derive`` gives and provenance.

    ``derive`` (the collect step's :func:`pipeline.derived.add_derived_variables`) adds the survey-wide
    variables; the store decides none of them. Every shard chunk is verified as it is read; the survey
    store's manifest records ``plan``.
    """
    if not shard_paths:
        raise ValueError("gather needs at least one shard store")
    shards = [open_store(path, chunks=None) for path in shard_paths]
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
    dataset = derive(dataset)
    for name in dataset.data_vars:  # the shards' loss descriptions name only their own losses
        if name in VARIABLES:
            dataset[name].attrs.update(VARIABLES[name].attrs(_input_distributions(dataset)))
    dataset.attrs.update(shard_provenance(shards))
    dataset.attrs.update(attrs)
    dataset.attrs["schema_version"] = SCHEMA_VERSION
    chunk = int(max(shard.sizes["run"] for shard in shards))
    return write_atomic(dataset, out_path, chunk_runs=chunk, plan=plan)


def shard_provenance(shards: Sequence[xr.Dataset]) -> dict[str, Any]:
    """Survey attrs from the shards' attrs: ``shards`` (JSON list, one object per shard) and the
    execution attrs that all shards share (for example ``device``, ``threads_per_worker``)."""
    records = [{name: _plain(shard.attrs[name]) for name in SHARD_ATTRS if name in shard.attrs} for shard in shards]
    records.sort(key=lambda record: record.get("shard", -1))
    data_sources = merge_provenance(json.loads(record.pop("data_sources", "{}")) for record in records)
    changed = provenance_problems(data_sources)
    if changed:
        raise ValueError("; ".join(changed))
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
    sources = {"data_sources": json.dumps(data_sources, sort_keys=True)} if data_sources else {}
    return {**common, **sources, "shards": json.dumps(records)}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


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


REQUIRED_FINITE = ("loss_final", "grad_norm_final", "end_loss", "steps_taken", "stop_reason", "end_point_type")
"""Per-run variables that must not be NaN for a run that did not diverge."""


def validate(path: str | Path, plan: pd.DataFrame | None = None, *, quick: bool = False) -> list[str]:
    """Problems with a store (an empty list when it is valid).

    Checks: it opens with this schema version; every variable of the schema is present with its
    dimensions; provenance attributes are present; every chunk is on disk and, against the manifest,
    its metadata, size and (unless ``quick``) content are as written, as are the resolved survey and,
    given, the plan; unless ``quick``, no NaN in required per-run values and the physical invariants
    (:mod:`pipeline.invariants`) hold; and, given the plan, every planned run is present exactly once.

    Parameters
    ----------
    path
        A survey or shard store.
    plan
        The plan the store was collected from (:func:`pipeline.plan.make_plan`).
    quick
        Check metadata only (attributes, schema, file sizes against the manifest, the run
        coordinate): no chunk of a data variable is read, for very large stores.
    """
    try:
        manifest = integrity.read_manifest(path)
    except DamagedStore as error:
        return [str(error)]
    damage = _integrity_problems(path, manifest, quick)
    problems = [problem.text for problem in damage]
    try:
        dataset = _open(path, None)  # the chunks were checked above; damaged ones are read for diagnosis
        runs = dataset["run"].values
    except (ValueError, FileNotFoundError, KeyError, OSError) as error:
        return [*problems, f"cannot open {path}: {error}"]
    problems += [f"attribute {name!r} is missing" for name in REQUIRED_ATTRS if name not in dataset.attrs]
    problems += _shard_record_problems(dataset.attrs.get("shards"))
    problems += _truncation_problems(path)
    problems += _schema_problems(dataset, unreadable={problem.array for problem in damage})
    problems += _run_problems(runs, plan)
    if manifest is not None:
        problems += _provenance_digest_problems(dataset, manifest, plan)
    problems += _data_source_problems(dataset.attrs.get("data_sources"))
    if not quick:
        undecodable = _undecodable(path, manifest, {problem.array for problem in damage})
        problems += _nan_problems(dataset, undecodable)
        problems += invariant_problems(dataset, skip=undecodable)
    return problems


def _undecodable(path: str | Path, manifest: Manifest | None, damaged: set[str]) -> set[str]:
    """The damaged arrays that the value checks must not read.

    Without a manifest, those that failed to decode. With one, every damaged array of strings (a
    chunk of other bytes can make a string decoder allocate without bound) and every damaged
    numeric array with a chunk that fails its CRC; a numeric chunk that merely differs from the
    manifest (edited in place, swapped) is still read, so that its values are checked too.
    """
    if manifest is None:
        return damaged
    numeric = integrity.numeric_arrays(path, damaged)
    return (damaged - numeric) | {problem.array for problem in integrity.decode_problems(path, numeric)}


def _integrity_problems(path: str | Path, manifest: Manifest | None, quick: bool) -> list[integrity.Problem]:
    """Chunks and metadata unlike the manifest, each problem with how to recompute what it names.

    Without a manifest: one problem saying so and, unless ``quick``, every chunk zarr cannot decode.
    """
    if manifest is None:
        unverified = integrity.Problem(
            "",
            "",
            "no manifest: the store was written before checksums and its chunks cannot be verified; run"
            f" `landscape validate {path} --rehash` to read it in full and add one",
        )
        return [unverified] + ([] if quick else integrity.decode_problems(path))
    damage = integrity.metadata_problems(path, manifest)
    if not quick:
        damage += integrity.chunk_problems(path, manifest)
    attrs = integrity.stored_attrs(path)
    return [
        problem._replace(
            text=f"{problem.text}; {integrity.recompute_advice(path, manifest, problem.array, problem.chunk, attrs)}"
        )
        for problem in damage
    ]


def _input_distributions(dataset: xr.Dataset) -> list[str]:
    """The input distributions of a store's runs (none named when it has no such coordinate)."""
    if "input_distribution" not in dataset.coords:
        return []
    return sorted({str(value) for value in np.unique(dataset["input_distribution"].values)})


def _schema_problems(dataset: xr.Dataset, unreadable: set[str]) -> list[str]:
    """Variables of the schema missing, with other dims or attributes; string or object variables.

    ``unreadable`` names the arrays with damaged chunks (reported already): when ``input_distribution`` is one of
    them, the descriptions that name the runs' losses are not compared (reading it would fail).
    """
    problems = []
    losses_known = "input_distribution" not in unreadable
    distributions = _input_distributions(dataset) if losses_known else []
    options = {None} | {variable.option for name, variable in VARIABLES.items() if name in dataset}
    for name, variable in VARIABLES.items():
        if name not in dataset:
            if variable.option in options:  # an option's variables come all or none
                problems.append(f"variable {name!r} is missing")
        elif dataset[name].dims != variable.dims:
            problems.append(f"variable {name!r} has dims {dataset[name].dims}, expected {variable.dims}")
        elif not losses_known and "{loss}" in variable.description:
            continue
        elif any(
            not _same_attr(dataset[name].attrs.get(key), value) for key, value in variable.attrs(distributions).items()
        ):
            problems.append(f"variable {name!r} lacks the attributes of the schema (description, units, flags)")
    for stored, array in dataset.data_vars.items():
        if array.dtype.kind in "OSU":
            problems.append(f"variable {stored!r} holds strings or objects ({array.dtype})")
    return problems


def _run_problems(runs: np.ndarray, plan: pd.DataFrame | None) -> list[str]:
    """Duplicate runs; given the plan, planned runs missing and runs not in the plan."""
    problems = []
    if len(np.unique(runs)) != len(runs):
        problems.append("some runs appear more than once")
    if plan is not None:
        missing = np.setdiff1d(plan["run"].to_numpy(), runs)
        extra = np.setdiff1d(runs, plan["run"].to_numpy())
        if missing.size:
            problems.append(f"{missing.size} planned runs are missing (first: {missing[:5].tolist()})")
        if extra.size:
            problems.append(f"{extra.size} runs are not in the plan (first: {extra[:5].tolist()})")
    return problems


def _provenance_digest_problems(dataset: xr.Dataset, manifest: Manifest, plan: pd.DataFrame | None) -> list[str]:
    """The resolved survey and (given) the plan against their hashes in the manifest."""
    problems = []
    survey = dataset.attrs.get(integrity.SURVEY_ATTR)
    if manifest.survey is not None and isinstance(survey, str) and integrity.text_digest(survey) != manifest.survey:
        problems.append(f"attribute {integrity.SURVEY_ATTR!r} differs from the manifest (edited after collect)")
    if plan is not None and manifest.plan is not None and integrity.plan_digest(plan) != manifest.plan:
        problems.append("the store was collected from another plan than the survey's (its hash differs)")
    return problems


def _data_source_problems(data_sources: object) -> list[str]:
    """Given data sets (files, scikit-learn) whose content differs from what the store was computed on."""
    if data_sources is None:
        return []
    try:
        recorded = json.loads(str(data_sources))
    except json.JSONDecodeError:
        return ["attribute 'data_sources' is not valid JSON"]
    return provenance_problems(recorded)


def _nan_problems(dataset: xr.Dataset, damaged: set[str]) -> list[str]:
    """Required per-run values that are NaN for runs that did not diverge (damaged arrays skipped)."""
    if "stop_reason" not in dataset or "stop_reason" in damaged:
        return []
    finite_required = dataset["stop_reason"].values != int(StopReason.DIVERGED)
    problems = []
    for name in REQUIRED_FINITE:
        if name in dataset and name not in damaged:
            values = dataset[name].values
            if np.issubdtype(values.dtype, np.floating) and np.isnan(values[finite_required]).any():
                problems.append(f"variable {name!r} has NaN for runs that did not diverge")
    return problems


def rehash(path: str | Path, plan: pd.DataFrame | None = None) -> list[str]:
    """Read a store in full and, if nothing is wrong with it, (re)write its manifest.

    For stores written before checksums: every chunk is decoded and every check of :func:`validate`
    runs; only a store without problems gets a manifest. A store whose manifest disagrees with its
    chunks is refused, not re-hashed: its data changed after it was written.

    Returns
    -------
    list of str
        The problems found (nothing is written then); empty when the manifest was written.
    """
    problems = [problem for problem in validate(path, plan) if not problem.startswith("no manifest:")]
    if problems:
        return problems
    old = integrity.read_manifest(path)
    survey = integrity.stored_attrs(path).get(integrity.SURVEY_ATTR)
    manifest = integrity.build_manifest(
        path,
        survey=integrity.text_digest(survey) if isinstance(survey, str) else None,
        plan=integrity.plan_digest(plan) if plan is not None else (old.plan if old else None),
        run_chunk=integrity.run_chunk(path),
    )
    integrity.write_manifest(path, manifest)
    return []
