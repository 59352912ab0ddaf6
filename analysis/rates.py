"""Rates of yes/no indicators per group of rows, each with a 95% Wilson interval.

The one aggregation behind every tidy rate table of :mod:`analysis.query`, :mod:`analysis.endings`
and :mod:`analysis.plateaus`: indicators (one boolean per row) are summed per group of the ``by``
columns, and each sum becomes ``count, total, rate, ci_low, ci_high``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.stats import CONFIDENCE, INTERVAL_METHOD, wilson_interval

__all__ = ["INTERVAL", "RATE_COLUMNS", "group_rates"]

RATE_COLUMNS = ["label", "count", "total", "rate", "ci_low", "ci_high"]
INTERVAL = f"{CONFIDENCE:.0%} {INTERVAL_METHOD} interval (scipy.stats.binomtest(...).proportion_ci(method='wilson'))"


def group_rates(
    frame: pd.DataFrame,
    by: Sequence[str],
    indicators: Mapping[Any, np.ndarray],
    among: np.ndarray | None = None,
    **attrs: str,
) -> pd.DataFrame:
    """Tidy rates of boolean ``indicators`` per group of ``by`` among the rows where ``among`` holds.

    Parameters
    ----------
    frame
        One row per trial, with the ``by`` columns (may have no columns, and then no rows, when
        ``by`` is empty: the indicators give the number of trials).
    by
        Columns to group by; empty: one group.
    indicators
        Label -> boolean array over the rows of ``frame``.
    among
        Rows that count as trials (default: all); groups without any are absent.
    **attrs
        Stored in ``table.attrs`` beside the interval method.

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, label, count, total, rate, ci_low, ci_high``.
    """
    by = list(by)
    trials = len(np.asarray(next(iter(indicators.values())))) if indicators else len(frame)
    keep = np.ones(trials, dtype=bool) if among is None else np.asarray(among, dtype=bool)
    counts = pd.DataFrame({name: np.asarray(values, dtype=np.int64)[keep] for name, values in indicators.items()})
    for name in by:
        counts[name] = frame[name].to_numpy()[keep]
    if by:
        grouped = counts.groupby(by, sort=True, dropna=False)
        sums, totals = grouped[list(indicators)].sum(), grouped.size()
        groups = [
            (key if isinstance(key, tuple) else (key,), sums.iloc[i], int(totals.iloc[i]))
            for i, key in enumerate(totals.index)
        ]
    else:
        groups = [((), counts[list(indicators)].sum(), len(counts))]
    rows = []
    for key, sums_row, total in groups:
        for label in indicators:
            count = int(sums_row[label])
            low, high = wilson_interval(count, total)
            rows.append((*key, label, count, total, count / total if total else np.nan, low, high))
    table = pd.DataFrame(rows, columns=[*by, *RATE_COLUMNS])
    table.attrs.update(interval=INTERVAL, **attrs)
    return table
