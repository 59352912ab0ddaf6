"""Validating stores: the schema, the provenance, the manifest, the physical invariants and the plan.

:func:`validate` checks a store against :data:`pipeline.store.schema.VARIABLES`, its chunks against the
manifest (:mod:`pipeline.store.damage`), its numbers against the physical invariants
(:mod:`pipeline.store.invariants`) and, given the plan, that every planned run is present exactly once.
:func:`rehash` gives a store written before checksums its manifest once it passes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.data.given import provenance_problems
from pipeline.dynamics import StopReason
from pipeline.store.damage import (
    Problem,
    chunk_problems,
    decode_problems,
    metadata_problems,
    numeric_arrays,
    recompute_advice,
    truncation_problems,
)
from pipeline.store.invariants import invariant_problems
from pipeline.store.manifest import (
    SURVEY_ATTR,
    DamagedStore,
    Manifest,
    build_manifest,
    plan_digest,
    read_manifest,
    run_chunk,
    stored_attrs,
    text_digest,
    write_manifest,
)
from pipeline.store.reading import open_current_schema
from pipeline.store.schema import VARIABLES, run_input_distributions

__all__ = ["REQUIRED_ATTRS", "rehash", "validate"]

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
"""Attributes every survey store has (provenance: the survey, the code, the libraries, the shards)."""
SHARD_RECORD_FIELDS = ("shard", "computed", "device", "threads_per_worker")
"""Fields every entry of the ``shards`` attribute (a JSON list, one record per shard) must have."""
REQUIRED_FINITE = ("loss_final", "grad_norm_final", "end_loss", "steps_taken", "stop_reason", "end_point_type")
"""Per-run variables that must not be NaN for a run that did not diverge."""


def validate(path: str | Path, plan: pd.DataFrame | None = None, *, quick: bool = False) -> list[str]:
    """Problems with a store (an empty list when it is valid).

    Checks: it opens with this schema version; every variable of the schema is present with its
    dimensions; provenance attributes are present; every chunk is on disk and, against the manifest,
    its metadata, size and (unless ``quick``) content are as written, as are the resolved survey and,
    given, the plan; unless ``quick``, no NaN in required per-run values and the physical invariants
    (:mod:`pipeline.store.invariants`) hold; and, given the plan, every planned run is present exactly once.

    Parameters
    ----------
    path
        A survey or shard store.
    plan
        The plan the store was collected from (:func:`pipeline.survey.plan.make_plan`).
    quick
        Check metadata only (attributes, schema, file sizes against the manifest, the run
        coordinate): no chunk of a data variable is read, for very large stores.
    """
    try:
        manifest = read_manifest(path)
    except DamagedStore as error:
        return [str(error)]
    damage = _integrity_problems(path, manifest, quick)
    problems = [problem.text for problem in damage]
    try:
        dataset = open_current_schema(path, None)  # the chunks were checked above; damaged ones are read for diagnosis
        runs = dataset["run"].values
    except (ValueError, FileNotFoundError, KeyError, OSError) as error:
        return [*problems, f"cannot open {path}: {error}"]
    problems += [f"attribute {name!r} is missing" for name in REQUIRED_ATTRS if name not in dataset.attrs]
    problems += _shard_record_problems(dataset.attrs.get("shards"))
    problems += truncation_problems(path)
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
    numeric = numeric_arrays(path, damaged)
    return (damaged - numeric) | {problem.array for problem in decode_problems(path, numeric)}


def _integrity_problems(path: str | Path, manifest: Manifest | None, quick: bool) -> list[Problem]:
    """Chunks and metadata unlike the manifest, each problem with how to recompute what it names.

    Without a manifest: one problem saying so and, unless ``quick``, every chunk zarr cannot decode.
    """
    if manifest is None:
        unverified = Problem(
            "",
            "",
            "no manifest: the store was written before checksums and its chunks cannot be verified; run"
            f" `landscape validate {path} --rehash` to read it in full and add one",
        )
        return [unverified] + ([] if quick else decode_problems(path))
    damage = metadata_problems(path, manifest)
    if not quick:
        damage += chunk_problems(path, manifest)
    attrs = stored_attrs(path)
    return [
        problem._replace(
            text=f"{problem.text}; {recompute_advice(path, manifest, problem.array, problem.chunk, attrs)}"
        )
        for problem in damage
    ]


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


def _schema_problems(dataset: xr.Dataset, unreadable: set[str]) -> list[str]:
    """Variables of the schema missing, with other dims or attributes; string or object variables.

    ``unreadable`` names the arrays with damaged chunks (reported already): when ``input_distribution`` is one of
    them, the descriptions that name the runs' losses are not compared (reading it would fail).
    """
    problems = []
    losses_known = "input_distribution" not in unreadable
    distributions = run_input_distributions(dataset) if losses_known else []
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
    survey = dataset.attrs.get(SURVEY_ATTR)
    if manifest.survey is not None and isinstance(survey, str) and text_digest(survey) != manifest.survey:
        problems.append(f"attribute {SURVEY_ATTR!r} differs from the manifest (edited after collect)")
    if plan is not None and manifest.plan is not None and plan_digest(plan) != manifest.plan:
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
    old = read_manifest(path)
    survey = stored_attrs(path).get(SURVEY_ATTR)
    manifest = build_manifest(
        path,
        survey=text_digest(survey) if isinstance(survey, str) else None,
        plan=plan_digest(plan) if plan is not None else (old.plan if old else None),
        run_chunk=run_chunk(path),
    )
    write_manifest(path, manifest)
    return []
