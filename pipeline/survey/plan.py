"""The plan of a survey: one row per run (settings, seed indices, seed keys, shard), shards and batches.

Run order is deterministic: grid cells in grid order (:meth:`pipeline.survey.Survey.cells`), then data
seeds, then init seeds, so ``run = (cell * seeds.data + data_seed) * seeds.init + init_seed`` and
``shard = run // execution.shard_size``.

A run's randomness never depends on its position. Its two generators are
``pipeline.seeds.run_generator(master_seed, "data", data_seed, data_settings(settings))`` and
``run_generator(master_seed, "init", init_seed, init_settings(settings))``; the plan stores
``data_key = settings_key(data_settings(settings))`` and ``init_key = settings_key(init_settings(settings))``
so a reader can see which runs share a data set or a stream. Adding a grid value renumbers runs but
leaves every existing run's settings, seed indices and keys, hence its numbers, unchanged; shard and
batch sizes only regroup runs.

Column types (:data:`SETTING_DTYPES`): int settings are ``int64`` (``teacher_width``, which can be
null, is pandas ``Int64``), float settings ``float64`` (NaN where the setting does not apply), bool
settings ``bool``, choices pandas' string dtype (``str`` on pandas 3, ``object`` before; missing
where the setting does not apply). :func:`run_settings` turns a row back
into the settings dict with None for settings that do not apply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipeline.seeds import settings_key
from pipeline.survey import CONDITIONAL_SETTINGS, SETTING_GROUPS, SETTING_KINDS, SETTING_NAMES, Survey

__all__ = [
    "DATA_SETTINGS",
    "INDEX_COLUMNS",
    "INIT_SETTINGS",
    "KEY_COLUMNS",
    "NULLABLE_SETTINGS",
    "SETTING_DTYPES",
    "batches",
    "data_settings",
    "init_settings",
    "make_plan",
    "n_shards",
    "run_settings",
    "shard_runs",
]

DATA_SETTINGS: tuple[str, ...] = SETTING_GROUPS["data"] + SETTING_GROUPS["target"]
"""Settings the ``"data"`` stream depends on: the data and target groups (inputs, targets, noise).

Runs with equal data settings and equal ``data_seed`` train on the very same data set, whatever their
student, initialisation or training settings."""

INIT_SETTINGS: tuple[str, ...] = DATA_SETTINGS + SETTING_GROUPS["student"] + SETTING_GROUPS["init"]
"""Settings the ``"init"`` stream depends on: data, target, student and initialisation groups.

Training settings (``learning_rate``, ``max_steps``, ``grad_tol``, ``dtype``, ``n_checkpoints``) enter
neither key: runs differing only in them start from the very same data and initial weights."""

INDEX_COLUMNS: tuple[str, ...] = ("run", "cell", "data_seed", "init_seed", "shard")
KEY_COLUMNS: tuple[str, ...] = ("data_key", "init_key")


NULLABLE_SETTINGS: frozenset[str] = frozenset(c.setting for c in CONDITIONAL_SETTINGS)
"""Settings that are None (NaN, ``<NA>``) in the rows of cells where they do not apply."""


_STR_DTYPE = "str" if int(pd.__version__.split(".")[0]) >= 3 else "object"

SETTING_DTYPES: Mapping[str, str] = {
    name: {
        "int": "Int64" if name in NULLABLE_SETTINGS else "int64",
        "float": "float64",
        "bool": "bool",
        "str": _STR_DTYPE,
    }[kind]
    for name, kind in SETTING_KINDS.items()
}
"""pandas dtype of each setting column of the plan."""


KEYED_WHEN_SET: frozenset[str] = frozenset(
    ("data_file", "target_columns", "dataset", "scaling", "projection", "subsample")
)
"""Settings added after surveys had been run: they enter a seed key only where they apply (are not None),
so that adding them left the keys, hence the numbers, of every earlier run unchanged. A setting added
later must be listed here (a test pins the keys of the shipped surveys)."""


def _keyed(settings: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: settings[name] for name in names if not (name in KEYED_WHEN_SET and settings[name] is None)}


def data_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of one run that its data stream depends on (see :data:`DATA_SETTINGS`)."""
    return _keyed(settings, DATA_SETTINGS)


def init_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of one run that its init stream depends on (see :data:`INIT_SETTINGS`)."""
    return _keyed(settings, INIT_SETTINGS)


def make_plan(survey: Survey) -> pd.DataFrame:
    """One row per run of ``survey``: index columns, every setting, and the two seed keys.

    Parameters
    ----------
    survey
        A validated survey.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`INDEX_COLUMNS` (``run`` is ``0..N-1``, equal to the row index), every setting in
        :data:`SETTING_NAMES` order with :data:`SETTING_DTYPES`, then :data:`KEY_COLUMNS` (int64).
        ``attrs`` hold ``survey``, ``master_seed``, ``shard_size`` and ``n_runs``.
    """
    cells = survey.cells()
    n_cells, n_data, n_init = len(cells), survey.seeds.data, survey.seeds.init
    per_cell = n_data * n_init
    n_runs = n_cells * per_cell
    cell_index = np.repeat(np.arange(n_cells, dtype=np.int64), per_cell)
    run = np.arange(n_runs, dtype=np.int64)
    columns: dict[str, Any] = {
        "run": run,
        "cell": cell_index,
        "data_seed": np.tile(np.repeat(np.arange(n_data, dtype=np.int64), n_init), n_cells),
        "init_seed": np.tile(np.arange(n_init, dtype=np.int64), n_cells * n_data),
        "shard": run // survey.execution.shard_size,
    }
    for name in SETTING_NAMES:
        values = [cell[name] for cell in cells]
        if SETTING_DTYPES[name] in ("int64", "bool") and any(v is None for v in values):
            raise AssertionError(f"setting {name} is None in some cell but {SETTING_DTYPES[name]} has no null")
        columns[name] = pd.Series(values, dtype=SETTING_DTYPES[name]).array.take(cell_index)
    data_keys = np.array([settings_key(data_settings(cell)) for cell in cells], dtype=np.int64)
    init_keys = np.array([settings_key(init_settings(cell)) for cell in cells], dtype=np.int64)
    columns["data_key"] = data_keys[cell_index]
    columns["init_key"] = init_keys[cell_index]
    plan = pd.DataFrame(columns)
    plan.attrs.update(
        survey=survey.name, master_seed=survey.master_seed, shard_size=survey.execution.shard_size, n_runs=n_runs
    )
    return plan


def run_settings(row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
    """The settings of one plan row as plain Python values, None where a setting does not apply.

    ``settings_key(data_settings(run_settings(row))) == row["data_key"]`` (and likewise for init).
    """
    out: dict[str, Any] = {}
    for name in SETTING_NAMES:
        value = row[name]
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            out[name] = None
            continue
        if isinstance(value, np.generic):
            value = value.item()
        out[name] = {"int": int, "float": float, "bool": bool, "str": str}[SETTING_KINDS[name]](value)
    return out


def n_shards(plan: pd.DataFrame) -> int:
    """Number of shards of ``plan`` (shards are numbered ``0..n_shards-1``)."""
    return int(plan["shard"].max()) + 1 if len(plan) else 0


def shard_runs(plan: pd.DataFrame, shard: int) -> pd.DataFrame:
    """The rows of shard ``shard``, in run order.

    Raises
    ------
    ValueError
        If ``shard`` is not in ``0..n_shards(plan)-1``.
    """
    total = n_shards(plan)
    if isinstance(shard, bool) or not isinstance(shard, int | np.integer) or not 0 <= shard < total:
        raise ValueError(f"shard must be an int in [0, {total}) for this plan of {len(plan)} runs; got {shard!r}")
    return plan[plan["shard"].to_numpy() == shard]


def batches(shard_plan: pd.DataFrame, batch_size: int) -> list[pd.DataFrame]:
    """Split runs into batches: each batch holds runs of one grid cell only, at most ``batch_size``.

    Runs of one cell share every setting (so every array shape) and differ only in their seeds.
    Batches come ordered by cell, then run; within a batch runs are in run order. Together the
    batches hold every row of ``shard_plan`` exactly once.

    Parameters
    ----------
    shard_plan
        Rows of a plan (typically :func:`shard_runs`), with columns ``cell`` and ``run``.
    batch_size
        Most runs per batch, an int >= 1.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
    ordered = shard_plan.sort_values(["cell", "run"], kind="stable")
    cells = ordered["cell"].to_numpy()
    bounds = np.flatnonzero(np.diff(cells)) + 1
    out: list[pd.DataFrame] = []
    for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(ordered)], strict=True):
        for first in range(int(start), int(stop), batch_size):
            out.append(ordered.iloc[first : min(first + batch_size, int(stop))])
    return out
