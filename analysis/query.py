"""Queries on a survey store: tidy tables of counts and rates with confidence intervals."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from pipeline.store import open_store

__all__ = ["CONFIDENCE", "decode", "open_survey", "rate_table", "wilson_interval"]

CONFIDENCE = 0.95


def open_survey(path: str | Path) -> xr.Dataset:
    """Open a survey store lazily (dask-backed); nothing is loaded until a table asks for it."""
    return open_store(path)


def decode(variable: xr.DataArray) -> np.ndarray:
    """Label names of an integer flag variable (CF ``flag_values`` / ``flag_meanings``)."""
    meanings = np.array(variable.attrs["flag_meanings"].split() + ["none"])
    values = np.asarray(variable.values).astype(np.int64)
    return meanings[np.where(values >= 0, values, len(meanings) - 1)]


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (scipy.stats.binomtest); NaN for no trials."""
    if trials == 0:
        return (np.nan, np.nan)
    interval = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(interval.low), float(interval.high))


def rate_table(dataset: xr.Dataset, by: Sequence[str] = (), variable: str = "outcome") -> pd.DataFrame:
    """Counts and rates of each label of ``variable`` per group of settings, with 95% Wilson intervals.

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
        Columns ``*by, label, count, total, rate, ci_low, ci_high`` (one row per group and label).
    """
    frame = pd.DataFrame({name: np.asarray(dataset[name].values) for name in by})
    frame["label"] = decode(dataset[variable])
    groups = frame.groupby(list(by), sort=True) if by else [((), frame)]
    rows = []
    labels = dataset[variable].attrs["flag_meanings"].split()
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        counts = group["label"].value_counts()
        for label in labels:
            count = int(counts.get(label, 0))
            low, high = wilson_interval(count, len(group))
            rows.append((*key, label, count, len(group), count / len(group), low, high))
    return pd.DataFrame(rows, columns=[*by, "label", "count", "total", "rate", "ci_low", "ci_high"])
