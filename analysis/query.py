"""Tidy tables of counts and rates from a survey store, every rate with a 95% Wilson interval.

Every function takes the lazily opened store and ``by``, the settings (coordinates along ``run``)
to group by (empty: the whole survey), and returns a pandas DataFrame with one row per group and
label: ``*by, label, count, total, rate, ci_low, ci_high``. ``rate = count / total`` and
``[ci_low, ci_high]`` is its two-sided 95% Wilson score interval; ``table.attrs`` state the interval,
the denominator and the variables read. Only per-run (and per-plateau) variables are loaded
(:func:`analysis.runs.run_frame`); parameter arrays stay on disk.

Tables (theory.md section 8.1):

* :func:`rate_table` -- any flag variable (``outcome``, ``end_point_type``, ``end_stationarity``...);
* :func:`saddle_mechanism_table` and :func:`strictness_table` -- among saddle end points;
* :func:`count_table` / :func:`count_summary` -- distribution and mean of a count
  (``n_escape_neurons``, ``n_plateaus``);
* :func:`escape_consistency_table` -- of the neurons that grew after a plateau, the fraction that
  were predicted escape neurons there (and the converse), pooled over plateaus;
* :func:`effective_width_table` -- the width of the narrower network each end point embeds after
  grouping neurons by direction and activation pattern (``end_reduced_width``).

Yes/no events per run (:data:`analysis.events.EVENTS`) and the headline rates side by side are
:func:`analysis.events.event_table` and :func:`analysis.events.summary_table`. Where runs end is
:func:`analysis.endings.ending_table`; the stationary points visited on the way
(plateaus the run left, by order) are :func:`analysis.plateaus.plateau_table` and
:func:`analysis.plateaus.visited_table`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from analysis.rates import INTERVAL, RATE_COLUMNS, group_rates
from analysis.runs import grid_axes, open_survey, run_arrays, run_frame
from analysis.stats import CONFIDENCE, wilson_interval
from pipeline.stationary import labels

__all__ = [
    "count_summary",
    "count_table",
    "decode",
    "escape_consistency_table",
    "grid_axes",
    "open_survey",
    "outcome_table",
    "point_type_table",
    "rate_table",
    "saddle_mechanism_table",
    "strictness_table",
    "wilson_interval",
]


def decode(variable: xr.DataArray | np.ndarray, meanings: Sequence[str] | None = None) -> np.ndarray:
    """Label names of an integer flag variable (CF ``flag_values`` / ``flag_meanings``); -1 -> ``none``."""
    if meanings is None:
        if not isinstance(variable, xr.DataArray):
            raise TypeError("decode needs the flag meanings of a bare array")
        meanings = variable.attrs["flag_meanings"].split()
    names = np.array([*meanings, "none"], dtype=object)
    values = np.asarray(variable).astype(np.int64)
    return names[np.where(values >= 0, values, len(names) - 1)]


def rate_table(dataset: xr.Dataset, by: Sequence[str] = (), variable: str = "outcome") -> pd.DataFrame:
    """Counts and rates of each label of a flag variable per group of settings, with 95% Wilson intervals.

    Parameters
    ----------
    dataset
        A survey store (only ``variable`` and the ``by`` coordinates are loaded).
    by
        Settings (coordinates along ``run``) to group by; empty: the whole survey.
    variable
        A per-run flag variable, e.g. ``outcome``, ``end_point_type``, ``end_stationarity``.

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, label, count, total, rate, ci_low, ci_high`` (one row per group and label);
        denominator: all runs of the group.
    """
    meanings = dataset[variable].attrs["flag_meanings"].split()
    frame = run_frame(dataset, [variable], by)
    names = decode(frame[variable].to_numpy(), meanings)
    indicators = {label: names == label for label in meanings}
    return group_rates(frame, by, indicators, None, denominator="all runs", variable=variable)


def outcome_table(dataset: xr.Dataset, by: Sequence[str] = ()) -> pd.DataFrame:
    """Run outcomes (converged_global, stuck_spurious_local_min, stalled_at_saddle, ...) per group."""
    return rate_table(dataset, by, "outcome")


def point_type_table(dataset: xr.Dataset, by: Sequence[str] = ()) -> pd.DataFrame:
    """End-point types (global / spurious / local minimum, saddle, undetermined, not stationary) per group."""
    return rate_table(dataset, by, "end_point_type")


def _saddles(dataset: xr.Dataset, variables: Sequence[str], by: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    frame = run_frame(dataset, ["end_point_type", *variables], by)
    return frame, frame["end_point_type"].to_numpy() == labels.code(labels.POINT_TYPE, "saddle")


def saddle_mechanism_table(dataset: xr.Dataset, by: Sequence[str] = (), combinations: bool = False) -> pd.DataFrame:
    """Saddle mechanisms (``end_mechanisms`` bit field) among saddle end points, per group.

    Parameters
    ----------
    dataset
        A survey store.
    by
        Settings to group by.
    combinations
        False: one row per mechanism (``Z``, ``O-split``, ``O-touch``, ``O-other``, ``V``) and
        ``none``; a saddle with several mechanisms counts for each, so rates need not sum to one.
        True: one row per combination of mechanisms that occurs (``O-split+Z``), exclusive.

    Returns
    -------
    pandas.DataFrame
        Tidy rates; denominator: saddle end points of the group (groups without saddles are absent).
    """
    frame, saddle = _saddles(dataset, ["end_mechanisms"], by)
    bits = frame["end_mechanisms"].to_numpy().astype(np.int64)
    if combinations:
        names = np.array(
            ["+".join(sorted(labels.decode_mechanisms(b))) or "none" for b in range(2 ** len(labels.MECHANISM))]
        )
        combo = names[np.clip(bits, 0, len(names) - 1)]
        present = sorted(set(combo[saddle]), key=lambda name: (name == "none", name.count("+"), name))
        indicators = {name: combo == name for name in present}
    else:
        indicators = {name: (bits >> i) & 1 == 1 for i, name in enumerate(labels.MECHANISM)}
        indicators["none"] = bits == 0
    return group_rates(
        frame,
        by,
        indicators,
        saddle,
        denominator="saddle end points",
        mechanisms="Z zero neuron; O-split zero-output copy of a neuron; O-touch zero-output dead ReLU neuron"
        " touching data; O-other other zero-output escape neuron; V vector output with a_j != 0",
        exclusive=str(combinations),
    )


def strictness_table(dataset: xr.Dataset, by: Sequence[str] = ()) -> pd.DataFrame:
    """Strictness of saddle end points (strict / non_strict / unknown), per group; denominator: saddles."""
    frame, saddle = _saddles(dataset, ["end_strictness"], by)
    names = decode(frame["end_strictness"].to_numpy(), labels.STRICTNESS)
    indicators = {label: names == label for label in labels.STRICTNESS}
    return group_rates(frame, by, indicators, saddle, denominator="saddle end points", variable="end_strictness")


def count_table(dataset: xr.Dataset, variable: str = "n_escape_neurons", by: Sequence[str] = ()) -> pd.DataFrame:
    """Distribution of a per-run count: the rate of runs with exactly ``k``, for every ``k`` that occurs.

    Parameters
    ----------
    dataset
        A survey store.
    variable
        ``n_escape_neurons``, ``n_plateaus``, ``n_dead_neurons`` or ``n_kink_neurons``.
    by
        Settings to group by.

    Returns
    -------
    pandas.DataFrame
        Tidy rates; ``label`` is the integer ``k`` (0 up to the largest value in the store).
    """
    frame = run_frame(dataset, [variable], by)
    values = frame[variable].to_numpy().astype(np.int64)
    top = int(values.max()) if values.size else 0
    indicators = {k: values == k for k in range(0, top + 1)}
    return group_rates(frame, by, indicators, None, denominator="all runs", variable=variable)


def count_summary(dataset: xr.Dataset, variable: str = "n_escape_neurons", by: Sequence[str] = ()) -> pd.DataFrame:
    """Mean of a per-run count per group with a 95% normal-approximation interval, and the share >= 1.

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, runs, mean, mean_ci_low, mean_ci_high, at_least_one, rate, ci_low, ci_high``
        (``rate`` is the Wilson-interval share of runs with ``variable >= 1``).
    """
    by = list(by)
    frame = run_frame(dataset, [variable], by)
    groups = frame.groupby(by, sort=True, dropna=False) if by else [((), frame)]
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    rows = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        values = group[variable].to_numpy().astype(float)
        n = values.size
        mean = float(values.mean())
        half = z * float(values.std(ddof=1)) / np.sqrt(n) if n > 1 else np.nan
        positive = int((values >= 1).sum())
        low, high = wilson_interval(positive, n)
        rows.append((*key, n, mean, mean - half, mean + half, positive, positive / n, low, high))
    table = pd.DataFrame(
        rows, columns=[*by, "runs", "mean", "mean_ci_low", "mean_ci_high", "at_least_one", "rate", "ci_low", "ci_high"]
    )
    table.attrs.update(
        interval=f"mean: {CONFIDENCE:.0%} normal-approximation interval (mean +- z sd / sqrt(n));"
        f" share >= 1: {INTERVAL}",
        variable=variable,
    )
    return table


def escape_consistency_table(dataset: xr.Dataset, by: Sequence[str] = ()) -> pd.DataFrame:
    """The plateau escape-consistency statistic (theory.md section 6), pooled over plateaus per group.

    For every filled plateau slot the store holds ``plateau_n_grew`` (neurons whose amplitude grew
    tenfold before the next plateau or the end), ``plateau_n_grew_predicted`` (of those, the ones
    predicted to be escape neurons at the plateau point) and ``plateau_n_escape`` (predicted escape
    neurons). Pooled over plateaus and runs:

    * ``label == "grown_were_predicted"``: ``count = sum n_grew_predicted``, ``total = sum n_grew``;
      theory predicts 1 (every neuron that escapes was an escape neuron);
    * ``label == "predicted_grew"``: ``count = sum n_grew_predicted``, ``total = sum n_escape``;
      the share of predicted escape neurons that did grow.

    The Wilson interval treats neurons as independent trials; neurons of one run are not, so the
    interval is optimistic when a few runs contribute most neurons (``runs`` and ``plateaus`` say
    how many contributed).

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, label, count, total, rate, ci_low, ci_high, plateaus, runs``.
    """
    by = list(by)
    variables = ["plateau_n_grew", "plateau_n_grew_predicted", "plateau_n_escape"]
    frame = run_frame(dataset, [], by)
    arrays = {name: values.astype(np.int64) for name, values in run_arrays(dataset, variables).items()}
    filled = arrays["plateau_n_grew"] >= 0
    per_run = frame.copy()
    for column, name in (
        ("grew", "plateau_n_grew"),
        ("grew_predicted", "plateau_n_grew_predicted"),
        ("escape", "plateau_n_escape"),
    ):
        per_run[column] = np.where(filled, arrays[name], 0).sum(axis=1)
    per_run["plateaus"] = filled.sum(axis=1)
    groups = per_run.groupby(by, sort=True, dropna=False) if by else [((), per_run)]
    rows = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        plateaus, runs = int(group["plateaus"].sum()), int((group["plateaus"] > 0).sum())
        for label, count_name, total_name in (
            ("grown_were_predicted", "grew_predicted", "grew"),
            ("predicted_grew", "grew_predicted", "escape"),
        ):
            count, total = int(group[count_name].sum()), int(group[total_name].sum())
            low, high = wilson_interval(count, total)
            rows.append((*key, label, count, total, count / total if total else np.nan, low, high, plateaus, runs))
    table = pd.DataFrame(rows, columns=[*by, *RATE_COLUMNS, "plateaus", "runs"])
    table.attrs.update(
        interval=INTERVAL + "; neurons pooled over plateaus and runs, treated as independent trials",
        denominator="grown_were_predicted: neurons that grew; predicted_grew: predicted escape neurons",
    )
    return table


def effective_width_table(dataset: xr.Dataset, by: Sequence[str] = ()) -> pd.DataFrame:
    """Mean effective (reduced) width of the end points per group, with the student width beside it.

    Runs where the reduction was not computed (``end_reduced_width == -1``, population-loss runs) are
    left out. Columns ``*by, runs, mean, mean_ci_low, mean_ci_high, width_mean``.
    """
    by = list(by)
    frame = run_frame(dataset, ["end_reduced_width", "width"], [name for name in by if name != "width"])
    frame = frame[frame["end_reduced_width"] >= 0]
    groups = frame.groupby(by, sort=True, dropna=False) if by else [((), frame)]
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    rows = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        values = group["end_reduced_width"].to_numpy().astype(float)
        mean = float(values.mean())
        half = z * float(values.std(ddof=1)) / np.sqrt(values.size) if values.size > 1 else np.nan
        rows.append((*key, values.size, mean, mean - half, mean + half, float(group["width"].mean())))
    table = pd.DataFrame(rows, columns=[*by, "runs", "mean", "mean_ci_low", "mean_ci_high", "width_mean"])
    table.attrs.update(
        interval=f"{CONFIDENCE:.0%} normal-approximation interval of the mean", variable="end_reduced_width"
    )
    return table
