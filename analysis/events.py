"""Yes/no events per run and their rates: :data:`EVENTS`, :func:`event_table` and :func:`summary_table`.

An :class:`Event` is a property of a run computed from per-run (and per-plateau) variables: a local minimum of
any kind, an escape neuron at the end point, a plateau present, a saddle or an escape neuron at a plateau the
run left, one point type, one ending of :mod:`analysis.endings`, unresolved. Rates come with 95% Wilson
intervals (:func:`analysis.rates.group_rates`); the denominator is all runs of the group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from analysis.endings import ENDING_VARIABLES, RESOLVED, UNRESOLVED, run_endings
from analysis.rates import INTERVAL, group_rates
from analysis.runs import run_arrays, run_frame
from pipeline.stationary import labels

__all__ = ["EVENTS", "SUMMARY_EVENTS", "Event", "event_table", "summary_table"]


@dataclass(frozen=True)
class Event:
    """A yes/no property of a run, computed from per-run (and per-plateau) variables.

    ``test`` takes the arrays of ``variables`` (shape ``(runs,)`` or ``(runs, plateau)``) and
    returns one boolean per run.
    """

    description: str
    variables: tuple[str, ...]
    test: Callable[[Mapping[str, np.ndarray]], np.ndarray]


def _point_type_in(*names: str) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    codes = [labels.code(labels.POINT_TYPE, name) for name in names]
    return lambda arrays: np.isin(arrays["end_point_type"], codes)


def _ending_is(name: str) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    return lambda arrays: run_endings(arrays).names == name


VISITED = ("plateau_start", "plateau_is_final")


def _visited(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Plateau slots the run left (filled and not lasting until the run stopped), shape ``(runs, plateau)``."""
    return (arrays["plateau_start"] >= 0) & ~arrays["plateau_is_final"].astype(bool)


def _ending_event(name: str) -> str:
    """Event key of an ending (``outcome_undetermined``: ``undetermined`` names a point type)."""
    return f"outcome_{name}" if name in labels.POINT_TYPE else name


EVENTS: dict[str, Event] = {
    "any_local_min": Event(
        "end point is a certified local minimum (global, spurious or globality unknown)",
        ("end_point_type",),
        _point_type_in("global_min", "spurious_local_min", "local_min"),
    ),
    **{
        name: Event(f"end point type is {name}", ("end_point_type",), _point_type_in(name))
        for name in labels.POINT_TYPE
    },
    "escape_neuron": Event(
        "at least one escape neuron at the end point",
        ("n_escape_neurons",),
        lambda arrays: arrays["n_escape_neurons"] >= 1,
    ),
    "plateau": Event("at least one plateau detected", ("n_plateaus",), lambda arrays: arrays["n_plateaus"] >= 1),
    "visited_plateau": Event(
        "the run left at least one plateau (a plateau lasting until the run stopped does not count)",
        VISITED,
        lambda arrays: np.asarray(_visited(arrays).any(axis=1)),
    ),
    "visited_saddle": Event(
        "the run left at least one plateau whose stationary point is a saddle",
        (*VISITED, "plateau_point_type"),
        lambda arrays: np.asarray(
            (_visited(arrays) & (arrays["plateau_point_type"] == labels.code(labels.POINT_TYPE, "saddle"))).any(axis=1)
        ),
    ),
    "plateau_escape_neuron": Event(
        "at least one escape neuron at a plateau the run left",
        (*VISITED, "plateau_n_escape"),
        lambda arrays: np.asarray((_visited(arrays) & (arrays["plateau_n_escape"] >= 1)).any(axis=1)),
    ),
    **{
        _ending_event(name): Event(f"the run ends: {name} ({phrase})", ENDING_VARIABLES, _ending_is(name))
        for name, phrase in {**RESOLVED, **UNRESOLVED}.items()
    },
    "unresolved": Event(
        "the run's ending names no limit (" + "; ".join(UNRESOLVED) + ")",
        ENDING_VARIABLES,
        lambda arrays: ~run_endings(arrays).is_resolved,
    ),
}
"""Named yes/no events; keys are the ``label`` values of :func:`event_table`."""


SUMMARY_EVENTS: tuple[str, ...] = (
    "converged_global",
    "converging_to_zero_loss",
    "stuck_spurious_local_min",
    "stalled_at_saddle",
    "unresolved",
    "visited_saddle",
    "plateau_escape_neuron",
    "saddle",
    "escape_neuron",
)
"""The headline events of :func:`summary_table` and of the report."""


def event_table(dataset: xr.Dataset, by: Sequence[str] = (), events: Sequence[str] = SUMMARY_EVENTS) -> pd.DataFrame:
    """Rates of yes/no events (:data:`EVENTS`) per group of settings; denominator: all runs.

    Parameters
    ----------
    dataset
        A survey store.
    by
        Settings to group by.
    events
        Keys of :data:`EVENTS`.

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, label, count, total, rate, ci_low, ci_high``; ``label`` is the event name.
    """
    unknown = [name for name in events if name not in EVENTS]
    if unknown:
        raise ValueError(f"unknown events {unknown}; choose from {', '.join(EVENTS)}")
    variables = sorted({variable for name in events for variable in EVENTS[name].variables})
    frame = run_frame(dataset, [], by)
    arrays = run_arrays(dataset, variables)
    indicators = {name: np.asarray(EVENTS[name].test(arrays), dtype=bool) for name in events}
    return group_rates(
        frame,
        by,
        indicators,
        None,
        denominator="all runs",
        events="; ".join(f"{name}: {EVENTS[name].description}" for name in events),
    )


def summary_table(dataset: xr.Dataset, by: Sequence[str] = (), events: Sequence[str] = SUMMARY_EVENTS) -> pd.DataFrame:
    """The headline rates side by side: one row per group, ``<event>``, ``<event>_ci_low``, ``<event>_ci_high``.

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, runs`` then three per event (rate and 95% Wilson interval).
    """
    by = list(by)
    tidy = event_table(dataset, by, events)
    rows = []
    keys = tidy[by].drop_duplicates() if by else pd.DataFrame(index=[0])
    for _, key in keys.iterrows():
        mask = np.ones(len(tidy), dtype=bool)
        for name in by:
            mask &= _equal(tidy[name].to_numpy(), key[name])
        part = tidy[mask].set_index("label")
        row = {name: key[name] for name in by}
        row["runs"] = int(part["total"].iloc[0])
        for event in events:
            row[event] = part.loc[event, "rate"]
            row[f"{event}_ci_low"] = part.loc[event, "ci_low"]
            row[f"{event}_ci_high"] = part.loc[event, "ci_high"]
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs.update(interval=INTERVAL, denominator="all runs", events=tidy.attrs["events"])
    return table


def _equal(values: np.ndarray, key: object) -> np.ndarray:
    """Elementwise equality that treats NaN as equal to NaN (group keys of missing settings)."""
    if isinstance(key, float) and np.isnan(key):
        return pd.isna(values)
    return values == key
