"""Writing stores: result records become Datasets, and Datasets zarr stores with checksums and a manifest.

One shard job writes one shard store, into a temporary sibling that is then renamed, so a killed job never
leaves a store that looks finished. Every array is written with the checksummed codecs of
:func:`pipeline.store.schema.compressors` and every store with a manifest (:mod:`pipeline.store.manifest`).
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.store.manifest import SURVEY_ATTR, build_manifest, plan_digest, text_digest, write_manifest
from pipeline.store.schema import VARIABLES, compressors

__all__ = ["record_to_dataset", "temporary_path", "write_atomic"]


def record_to_dataset(rows: pd.DataFrame, record: Mapping[str, np.ndarray]) -> xr.Dataset:
    """A batch or shard as a Dataset: the plan rows become coordinates along ``run``."""
    unknown = sorted(set(record) - set(VARIABLES))
    if unknown:
        raise KeyError(f"variables missing from pipeline.store.schema.VARIABLES: {', '.join(unknown)}")
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

    Every array (data variables and coordinates) is written with :func:`pipeline.store.schema.compressors`
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
    """Hash the written store at ``path`` into its manifest (see :mod:`pipeline.store.manifest`)."""
    survey = attrs.get(SURVEY_ATTR)
    manifest = build_manifest(
        path,
        survey=text_digest(survey) if isinstance(survey, str) else None,
        plan=plan_digest(plan) if plan is not None else None,
        run_chunk=run_chunk,
    )
    write_manifest(path, manifest)
