"""The stationary points runs visit on the way: plateaus the run left, by order (1st, 2nd, ...) and setting.

A plateau is a stretch of steps with a small gradient near a stationary point (theory.md 6, 8.2
step 0); its representative point is classified in plateau mode. A plateau is *visited* when the
run left it: the last plateau of a run, which lasted until the run stopped (``plateau_is_final``),
contains the end point and is counted with the end points, not here.

* :func:`plateau_frame` -- one row per stored plateau of every run (type, mechanisms, strictness,
  loss, duration, escape neurons, how many grew);
* :func:`visited_table` -- tidy rates of one property among visited plateaus, per plateau order
  and group of settings;
* :func:`plateau_table` -- the visited plateaus side by side, one row per group and order (and one
  pooled over orders): share of saddles, strictness, mechanisms, escape neurons, loss, duration.

Strictness of a plateau point is read from its certificate: ``escape_zero_output`` (theory.md 5.2)
certifies a strict saddle; the store keeps no strictness for plateau points certified otherwise
(second-order witnesses of vector outputs), which are ``unknown``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from analysis.rates import INTERVAL, group_rates
from analysis.runs import run_arrays, run_frame
from analysis.stats import CONFIDENCE, wilson_interval
from pipeline.stationary import labels

__all__ = ["PLATEAU_VARIABLES", "VISITED_PROPERTIES", "plateau_frame", "plateau_table", "visited_table"]

PLATEAU_VARIABLES: tuple[str, ...] = (
    "plateau_start",
    "plateau_end",
    "plateau_loss",
    "plateau_is_final",
    "plateau_point_type",
    "plateau_certificate",
    "plateau_mechanisms",
    "plateau_n_escape",
    "plateau_n_grew",
    "plateau_n_grew_predicted",
)
"""The per-plateau variables read (never the per-neuron ``plateau_w``, ``plateau_a``, ``plateau_escape``)."""

VISITED_PROPERTIES: dict[str, str] = {
    "point_type": "type of the stationary point (theory.md 8.1); denominator: visited plateaus",
    "mechanisms": "saddle mechanisms, each combination exclusive; denominator: visited saddles",
    "strictness": "strict (certificate escape_zero_output) or unknown; denominator: visited saddles",
    "escape": "at least one escape neuron at the plateau point; denominator: visited plateaus",
}
"""The properties :func:`visited_table` tabulates, with their denominators."""

SADDLE = labels.code(labels.POINT_TYPE, "saddle")


def _mechanism_names(bits: np.ndarray) -> np.ndarray:
    """``O-split+Z``-style names of mechanism bit fields (``none`` for 0)."""
    names = np.array(
        ["+".join(sorted(labels.decode_mechanisms(b))) or "none" for b in range(2 ** len(labels.MECHANISM))],
        dtype=object,
    )
    return names[np.clip(bits.astype(np.int64), 0, len(names) - 1)]


def plateau_frame(dataset: xr.Dataset, by: Sequence[str] = ()) -> pd.DataFrame:
    """One row per stored plateau slot of every run, in run order then plateau order.

    Parameters
    ----------
    dataset
        A survey store; only the per-plateau variables of :data:`PLATEAU_VARIABLES` and the ``by``
        coordinates are loaded.
    by
        Settings (coordinates along ``run``) to add as columns.

    Returns
    -------
    pandas.DataFrame
        Columns ``run`` (position), ``*by``, ``plateau`` (order, 1 = first), ``visited`` (the run
        left it), ``point_type``, ``mechanisms``, ``strictness``, ``loss``, ``duration`` (steps),
        ``n_escape``, ``n_grew``, ``n_grew_predicted``. Plateaus beyond the store's ``plateau``
        slots (``n_plateaus`` larger than the slot count) are not in the store, hence not here.
    """
    by = list(by)
    settings = run_frame(dataset, [], by)
    arrays = run_arrays(dataset, PLATEAU_VARIABLES)
    runs, slots = np.nonzero(arrays["plateau_start"] >= 0)
    at = {name.removeprefix("plateau_"): values[runs, slots] for name, values in arrays.items()}
    point_type = at["point_type"].astype(np.int64)
    saddle = point_type == SADDLE
    strict = saddle & (at["certificate"] == labels.code(labels.CERTIFICATE, "escape_zero_output"))
    frame = pd.DataFrame({"run": runs, **{name: settings[name].to_numpy()[runs] for name in by}})
    frame["plateau"] = slots + 1
    frame["visited"] = ~at["is_final"].astype(bool)
    frame["point_type"] = np.array([*labels.POINT_TYPE, "none"], dtype=object)[
        np.where(point_type >= 0, point_type, len(labels.POINT_TYPE))
    ]
    frame["mechanisms"] = np.where(saddle, _mechanism_names(at["mechanisms"]), "")
    frame["strictness"] = np.where(strict, "strict", np.where(saddle, "unknown", "not_applicable"))
    frame["loss"] = at["loss"].astype(float)
    frame["duration"] = (at["end"] - at["start"]).astype(np.int64)
    for name in ("n_escape", "n_grew", "n_grew_predicted"):
        frame[name] = np.maximum(at[name].astype(np.int64), 0)
    return frame


def _indicators(frame: pd.DataFrame, prop: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Label -> indicator over plateau rows, and the rows that are trials, for a property."""
    visited = frame["visited"].to_numpy()
    saddle = visited & (frame["point_type"].to_numpy() == "saddle")
    if prop == "point_type":
        present = [name for name in labels.POINT_TYPE if (frame["point_type"][visited] == name).any()]
        return {name: frame["point_type"].to_numpy() == name for name in present}, visited
    if prop in ("mechanisms", "strictness"):
        values = frame[prop].to_numpy()
        present = sorted(set(values[saddle]), key=lambda name: (name in ("none", "unknown"), name.count("+"), name))
        return {name: values == name for name in present}, saddle
    if prop == "escape":
        escape = frame["n_escape"].to_numpy() >= 1
        return {"escape_neuron": escape, "no_escape_neuron": ~escape}, visited
    raise ValueError(f"unknown property {prop!r}; choose from {', '.join(VISITED_PROPERTIES)}")


def visited_table(
    dataset: xr.Dataset, by: Sequence[str] = (), prop: str = "point_type", by_order: bool = True
) -> pd.DataFrame:
    """Rates of one property of the visited plateaus per group of settings (and per plateau order).

    Parameters
    ----------
    dataset
        A survey store.
    by
        Settings to group by.
    prop
        A key of :data:`VISITED_PROPERTIES`: ``point_type``, ``mechanisms``, ``strictness``, ``escape``.
    by_order
        Also group by the plateau's order (column ``plateau``: 1 = the run's first plateau). A run
        has at most one plateau of each order, so each rate is over runs; pooled over orders
        (``by_order=False``) the plateaus of one run are counted as separate trials.

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, [plateau,] label, count, total, rate, ci_low, ci_high`` (95% Wilson intervals).
    """
    frame = plateau_frame(dataset, by)
    indicators, among = _indicators(frame, prop)
    groups = [*by, "plateau"] if by_order else list(by)
    return group_rates(frame, groups, indicators, among, property=prop, denominator=VISITED_PROPERTIES[prop])


def _mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean of counts and its 95% normal-approximation interval, clipped at 0 (NaN for fewer than two values)."""
    if values.size == 0:
        return np.nan, np.nan, np.nan
    mean = float(values.mean())
    if values.size < 2:
        return mean, np.nan, np.nan
    half = float(stats.norm.ppf(0.5 + CONFIDENCE / 2) * values.std(ddof=1) / np.sqrt(values.size))
    return mean, max(mean - half, 0.0), mean + half


def _share(count: int, total: int) -> tuple[float, float, float]:
    low, high = wilson_interval(count, total)
    return (count / total if total else np.nan), low, high


def _summary_row(group: pd.DataFrame) -> dict[str, object]:
    """The columns of :func:`plateau_table` for the plateaus of one group."""
    visited = group[group["visited"]]
    saddles = visited[visited["point_type"] == "saddle"]
    mechanisms = saddles["mechanisms"].value_counts()
    row: dict[str, object] = {
        "plateaus": len(visited),
        "runs": visited["run"].nunique(),
        "last": int((~group["visited"]).sum()),
    }
    for name, (count, total) in {
        "saddle": ((visited["point_type"] == "saddle").sum(), len(visited)),
        "strict": ((saddles["strictness"] == "strict").sum(), len(saddles)),
        "escape_neuron": ((visited["n_escape"] >= 1).sum(), len(visited)),
        "grown_were_predicted": (visited["n_grew_predicted"].sum(), visited["n_grew"].sum()),
    }.items():
        row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = _share(int(count), int(total))
    ordered = sorted(mechanisms.items(), key=lambda item: (-item[1], item[0]))
    row["mechanisms"] = ", ".join(f"{name} {count}" for name, count in ordered) or "–"
    for name, column in (("escape_neurons", "n_escape"), ("grew", "n_grew")):
        row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = _mean_interval(visited[column].to_numpy(float))
    row["loss_median"] = float(visited["loss"].median()) if len(visited) else np.nan
    row["duration_median"] = float(visited["duration"].median()) if len(visited) else np.nan
    return row


def plateau_table(dataset: xr.Dataset, by: Sequence[str] = ()) -> pd.DataFrame:
    """Visited plateaus side by side: one row per group of settings and plateau order, then all orders.

    Parameters
    ----------
    dataset
        A survey store.
    by
        Settings to group by; empty: the whole survey.

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, plateau`` (order 1, 2, ... or ``all``), ``plateaus`` (visited: left by the
        run), ``runs``, ``last`` (plateaus that lasted until the run stopped: not counted), then
        rates with 95% Wilson intervals (``<name>``, ``<name>_ci_low``, ``<name>_ci_high``):
        ``saddle`` (among visited plateaus), ``strict`` (among visited saddles), ``escape_neuron``
        (at least one escape neuron), ``grown_were_predicted`` (of the neurons that grew tenfold
        before the next plateau, those predicted escape neurons; neurons as trials); ``mechanisms``
        (count of each combination among visited saddles); means with 95% normal intervals
        (clipped at 0) of ``escape_neurons`` and ``grew`` (neurons per visited plateau);
        ``loss_median`` and ``duration_median`` (steps).
    """
    by = list(by)
    frame = plateau_frame(dataset, by)
    rows = []
    for orders in (True, False):
        keys = [*by, "plateau"] if orders else by
        groups = frame.groupby(keys, sort=True, dropna=False) if keys else [((), frame)]
        for key, group in groups:
            key = key if isinstance(key, tuple) else (key,)
            named = dict(zip(keys, key, strict=True))
            if not orders:
                named["plateau"] = "all"
            rows.append({**named, **_summary_row(group)})
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values([*by], kind="stable").reset_index(drop=True) if by else table
        table["plateau"] = table["plateau"].astype(object)
    table.attrs.update(
        interval=f"rates: {INTERVAL}; means: {CONFIDENCE:.0%} normal-approximation interval",
        denominator="visited plateaus (left by the run); strict: visited saddles",
        pooling="rows 'all' pool the plateaus of a run as separate trials",
    )
    return table
