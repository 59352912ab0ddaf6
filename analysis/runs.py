"""Reading a survey store: open it lazily, load only the per-run columns a table needs, find its settings.

Everything in :mod:`analysis.query` goes through :func:`run_frame`, which computes the requested
variables in one dask pass and refuses the parameter arrays (variables with an ``input`` or
``output`` dimension, and per-checkpoint or per-neuron arrays): a summary of a million-run store
reads a few bytes per run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from pipeline.store import open_store
from pipeline.survey import SETTING_NAMES, Survey, parse_survey

__all__ = ["SUMMARY_DIMS", "grid_axes", "open_survey", "run_arrays", "run_frame", "stored_survey", "survey_attrs"]

SUMMARY_DIMS: tuple[frozenset[str], ...] = (frozenset({"run"}), frozenset({"run", "plateau"}))
"""Dimensions a summary may load: per-run scalars and per-plateau scalars, never parameter arrays."""

INDEX_COLUMNS = ("run", "cell", "data_seed", "init_seed", "shard", "data_key", "init_key")


def open_survey(path: str | Path) -> xr.Dataset:
    """Open a survey store lazily (dask-backed); nothing is loaded until a table asks for it.

    Every chunk is checked against the store's manifest when it is read: a damaged chunk raises
    :class:`pipeline.store.DamagedStore` instead of being read as numbers. A store written before
    checksums opens with a :class:`pipeline.store.UnverifiedStoreWarning`.

    Parameters
    ----------
    path
        ``results/<name>/survey.zarr``.

    Raises
    ------
    ValueError
        If the store was written with another schema version.
    pipeline.store.DamagedStore
        If arrays or chunks are missing, or array metadata or chunk sizes differ from the manifest;
        when read, if a chunk's content differs from it.
    """
    return open_store(path)


def run_arrays(dataset: xr.Dataset, variables: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-run and per-plateau variables as numpy arrays, computed in one dask pass.

    Parameters
    ----------
    dataset
        A survey store from :func:`open_survey`.
    variables
        Variables or coordinates with dims ``(run,)`` or ``(run, plateau)``.

    Raises
    ------
    KeyError
        If a name is not in the store.
    ValueError
        If a variable has other dimensions (a parameter array): summaries never load those.
    """
    names = list(dict.fromkeys(variables))
    for name in names:
        if name not in dataset.variables:
            raise KeyError(f"{name!r} is not in the store; settings: {', '.join(settings_of(dataset))}")
        if frozenset(dataset[name].dims) not in SUMMARY_DIMS:
            raise ValueError(
                f"{name!r} has dims {dataset[name].dims}; summaries load only per-run and per-plateau"
                " variables (select runs first to look at parameter arrays)"
            )
    arrays = dask.compute(*[dataset[name].data for name in names])
    return {name: np.asarray(values) for name, values in zip(names, arrays, strict=True)}


def run_frame(dataset: xr.Dataset, variables: Sequence[str], by: Sequence[str] = ()) -> pd.DataFrame:
    """One row per run: the ``by`` settings and the requested per-run variables, loaded in one pass.

    Parameters
    ----------
    dataset
        A survey store from :func:`open_survey`.
    variables
        Per-run variables (dims ``(run,)``).
    by
        Settings (coordinates along ``run``) to add as columns.

    Returns
    -------
    pandas.DataFrame
        Indexed by position; string settings come back as Python ``str``.

    Raises
    ------
    KeyError, ValueError
        As :func:`run_arrays`; also ValueError for a per-plateau variable.
    """
    arrays = run_arrays(dataset, [*by, *variables])
    columns: dict[str, Any] = {}
    for name, values in arrays.items():
        if values.ndim != 1:
            raise ValueError(f"{name!r} is not a per-run variable; use run_arrays")
        # numpy's variable-width StringDType (kind "T", as zarr 3 returns strings) casts to object directly
        columns[name] = np.array(values.tolist(), dtype=object) if values.dtype.kind in "TUSO" else values
    return pd.DataFrame(columns)


def settings_of(dataset: xr.Dataset) -> list[str]:
    """The setting coordinates along ``run`` (plan columns other than indices, seeds and keys).

    In the canonical setting order of :data:`pipeline.survey.SETTING_NAMES` (zarr sorts names), then
    any other coordinates along ``run`` alphabetically.
    """
    names = [str(name) for name, coord in dataset.coords.items() if coord.dims == ("run",)]
    names = [name for name in names if name not in INDEX_COLUMNS]
    order = {name: i for i, name in enumerate(SETTING_NAMES)}
    return sorted(names, key=lambda name: (order.get(name, len(order)), name))


def survey_attrs(dataset: xr.Dataset) -> dict[str, Any] | None:
    """The resolved survey as stored in the attributes (``resolved_survey_json``), or None."""
    text = dataset.attrs.get("resolved_survey_json")
    return json.loads(text) if text else None


def grid_axes(dataset: xr.Dataset) -> list[str]:
    """The settings the survey varies: its grid axes, in the store's setting order.

    Read from the resolved survey in the store attributes; a store without them (a synthetic one)
    falls back to the setting coordinates that take more than one value.
    """
    settings = settings_of(dataset)
    resolved = survey_attrs(dataset)
    if resolved is not None:
        varied = set(resolved.get("grid") or {}) | {name for case in resolved.get("cases") or [] for name in case}
        return [name for name in settings if name in varied]
    varying = []
    for name in settings:
        values = pd.unique(pd.Series(np.asarray(dataset[name].values).astype(object)))
        if len(values) > 1:
            varying.append(name)
    return varying


def stored_survey(dataset: xr.Dataset) -> Survey | None:
    """The :class:`pipeline.survey.Survey` the store was made from (validated again), or None."""
    resolved = survey_attrs(dataset)
    if resolved is None:
        return None
    name = str(dataset.attrs.get("survey", "survey"))
    return parse_survey(resolved, name, source=f"{name}: store attribute resolved_survey_json")
