"""Gathering shard stores into the survey store, with the survey-wide variables and the shards' provenance.

:func:`gather` concatenates the shards, adds the survey-wide derived variables its caller computes
(:mod:`pipeline.store.derived`: global reference loss, global/spurious, run outcome, neuron counts) and the
provenance attributes, and writes the survey store (:func:`pipeline.store.writing.write_atomic`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.data.given import merge_provenance, provenance_problems
from pipeline.store.reading import open_store
from pipeline.store.schema import SCHEMA_VERSION, VARIABLES, run_input_distributions
from pipeline.store.writing import write_atomic

__all__ = ["CODE_ATTRS", "IN_MEMORY_BYTES", "SHARD_ATTRS", "gather", "shard_provenance"]

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
"""Attributes of a shard store that describe how that one shard was computed. :func:`gather` moves
them into the survey store's ``shards`` attribute (JSON: one object per shard, in shard order) and
keeps at the top level only those equal across shards (``device``, ``workers``, ...), never
``shard`` or ``computed``."""
CODE_ATTRS = ("package_version", "git_revision")
"""Shard attributes naming the code that computed the shard: all shards of a store must agree."""


def gather(
    shard_paths: Sequence[str | Path],
    out_path: str | Path,
    attrs: Mapping[str, Any],
    plan: pd.DataFrame | None = None,
    *,
    derive: Callable[[xr.Dataset], xr.Dataset],
) -> Path:
    """Concatenate shard stores into the survey store, add the variables ``derive`` gives and provenance.

    ``derive`` (the collect step's :func:`pipeline.store.derived.add_derived_variables`) adds the survey-wide
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
            dataset[name].attrs.update(VARIABLES[name].attrs(run_input_distributions(dataset)))
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
