"""Comparisons across a setting: does a rate change with width, data size, initialisation scale...?

For one setting (pooled over every other grid axis) and each event of :data:`analysis.events.EVENTS`:

* a Pearson chi-square test of independence of the ``setting x {event, no event}`` table, with
  Cramér's V as effect size;
* for numeric settings, a logistic-regression trend of the event on the setting (on ``log10`` or
  ``log2`` of it for positive settings, see :func:`analysis.stats.trend_scale`): the odds ratio per
  unit of the regressor with a 95% Wald interval and the Wald p-value.

For the categorical variables (``outcome``, ``end_point_type``) the chi-square test uses the whole
``setting x label`` table. Everything is computed from aggregated counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from analysis.events import SUMMARY_EVENTS, event_table
from analysis.query import rate_table
from analysis.runs import grid_axes
from analysis.stats import TEST_METHOD, TREND_METHOD, chi_square_independence, logistic_trend, transform, trend_scale

__all__ = ["COMPARISON_COLUMNS", "compare_setting", "comparison_table"]

COMPARISON_COLUMNS = [
    "setting",
    "event",
    "n",
    "chi2",
    "dof",
    "p_chi2",
    "cramers_v",
    "trend_scale",
    "odds_ratio",
    "or_ci_low",
    "or_ci_high",
    "p_trend",
    "note",
]

UNIT = {"log10": "tenfold increase", "log2": "doubling", "linear": "unit increase"}


def _is_numeric(values: np.ndarray) -> bool:
    return np.asarray(values).dtype.kind in "iufb"


def compare_setting(
    dataset: xr.Dataset,
    setting: str,
    events: Sequence[str] = SUMMARY_EVENTS,
    categorical: Sequence[str] = ("outcome", "end_point_type"),
) -> pd.DataFrame:
    """Tests of whether each event's rate depends on ``setting`` (pooled over the other settings).

    Parameters
    ----------
    dataset
        A survey store.
    setting
        A coordinate along ``run`` (usually a grid axis).
    events
        Keys of :data:`analysis.events.EVENTS`.
    categorical
        Flag variables tested as a whole ``setting x label`` table (chi-square only).

    Returns
    -------
    pandas.DataFrame
        :data:`COMPARISON_COLUMNS`: ``n`` runs; ``chi2``, ``dof``, ``p_chi2``, ``cramers_v``;
        ``trend_scale`` (``log10``, ``log2``, ``linear``; empty for non-numeric settings),
        ``odds_ratio`` per unit of the transformed setting with its 95% Wald interval and
        ``p_trend``; ``note`` says why a test is missing.
    """
    rows = []
    rates = event_table(dataset, [setting], events)
    values = rates[setting].drop_duplicates().to_numpy()
    numeric = _is_numeric(values)
    scale = trend_scale(values.astype(float)) if numeric else ""
    for event in events:
        part = rates[rates["label"] == event]
        counts = part["count"].to_numpy()
        totals = part["total"].to_numpy()
        test = chi_square_independence(np.column_stack([counts, totals - counts]))
        row = {
            "setting": setting,
            "event": event,
            "n": int(totals.sum()),
            "chi2": test.statistic,
            "dof": test.dof,
            "p_chi2": test.p_value,
            "cramers_v": test.cramers_v,
            "trend_scale": scale,
            "odds_ratio": np.nan,
            "or_ci_low": np.nan,
            "or_ci_high": np.nan,
            "p_trend": np.nan,
            "note": "" if test.dof else "chi-square undefined (one setting value or event never/always seen)",
        }
        if numeric:
            x = transform(part[setting].to_numpy().astype(float), scale)
            trend = logistic_trend(x, counts, totals)
            row.update(
                odds_ratio=trend.odds_ratio, or_ci_low=trend.ci_low, or_ci_high=trend.ci_high, p_trend=trend.p_value
            )
            if trend.note:
                row["note"] = "; ".join(filter(None, [str(row["note"]), f"trend: {trend.note}"]))
        else:
            row["note"] = "; ".join(filter(None, [str(row["note"]), "trend: setting is not numeric"]))
        rows.append(row)
    for variable in categorical:
        table = rate_table(dataset, [setting], variable)
        contingency = table.pivot_table(index=setting, columns="label", values="count", sort=False, dropna=False)
        test = chi_square_independence(contingency.to_numpy())
        rows.append(
            {
                "setting": setting,
                "event": f"{variable} (all labels)",
                "n": test.n,
                "chi2": test.statistic,
                "dof": test.dof,
                "p_chi2": test.p_value,
                "cramers_v": test.cramers_v,
                "trend_scale": "",
                "odds_ratio": np.nan,
                "or_ci_low": np.nan,
                "or_ci_high": np.nan,
                "p_trend": np.nan,
                "note": "" if test.dof else "chi-square undefined (one setting value or one label)",
            }
        )
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    table.attrs.update(
        test=TEST_METHOD,
        trend=TREND_METHOD
        + f"; regressor: {scale or 'none'} of {setting}"
        + (f" (odds ratio per {UNIT[scale]})" if scale else ""),
        pooling="pooled over the other settings",
    )
    return table


def comparison_table(
    dataset: xr.Dataset, settings: Sequence[str] | None = None, events: Sequence[str] = SUMMARY_EVENTS
) -> pd.DataFrame:
    """:func:`compare_setting` for every setting (default: the survey's grid axes), stacked."""
    settings = grid_axes(dataset) if settings is None else list(settings)
    tables = [compare_setting(dataset, setting, events) for setting in settings]
    if not tables:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    table = pd.concat(tables, ignore_index=True)
    table.attrs.update(test=TEST_METHOD, trend=TREND_METHOD, pooling="each setting pooled over the other settings")
    return table
