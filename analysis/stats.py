"""Statistics on counts: Wilson intervals, chi-square tests of independence, logistic-regression trends.

Pure functions of small count arrays (never of a store): the tables in :mod:`analysis.tables`
aggregate the per-run variables to counts first, so a million-run store costs a groupby, not a model
fit on a million rows.

Conventions, stated once:

* Rates carry a two-sided 95% **Wilson score** interval (``scipy.stats.binomtest(...).proportion_ci``).
* A comparison across a setting is a **Pearson chi-square test of independence** (no continuity
  correction) of the setting-by-label contingency table, with **Cramér's V** as its effect size.
* A trend across a numeric setting is an **unpenalised logistic regression** (scikit-learn) of the
  binary event on the setting (or on its logarithm), fitted on the aggregated counts with sample
  weights; the effect size is the **odds ratio per unit** of the regressor, with a 95% **Wald**
  interval, and the p-value is the Wald test of a zero slope.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

__all__ = [
    "CONFIDENCE",
    "ChiSquare",
    "Trend",
    "chi_square_independence",
    "logistic_trend",
    "transform",
    "trend_scale",
    "wilson_interval",
]

CONFIDENCE = 0.95
"""Confidence level of every interval in the analysis package."""

INTERVAL_METHOD = "Wilson score"
TEST_METHOD = "Pearson chi-square test of independence (no continuity correction); effect size Cramer's V"
TREND_METHOD = "unpenalised logistic regression; odds ratio per unit of the regressor with a 95% Wald interval"


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Parameters
    ----------
    successes, trials
        Counts; ``0 <= successes <= trials``.
    confidence
        Two-sided confidence level.

    Returns
    -------
    tuple of float
        ``(low, high)``; ``(nan, nan)`` when there are no trials.
    """
    if trials == 0:
        return (np.nan, np.nan)
    interval = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(interval.low), float(interval.high))


@dataclass(frozen=True)
class ChiSquare:
    """A chi-square test of independence of a contingency table and its effect size."""

    statistic: float
    dof: int
    p_value: float
    cramers_v: float
    n: int


def chi_square_independence(table: np.ndarray | Sequence[Sequence[int]]) -> ChiSquare:
    """Pearson chi-square test of independence of rows and columns, with Cramér's V.

    Rows or columns with no counts are dropped first (they carry no information and would make an
    expected count zero). With fewer than two non-empty rows or columns the test is undefined and
    every field but ``n`` is NaN (``dof`` 0).

    Parameters
    ----------
    table
        Counts, shape ``(settings, labels)``.

    Returns
    -------
    ChiSquare
        ``V = sqrt(chi2 / (n (min(r, c) - 1)))`` for the reduced ``r x c`` table.
    """
    counts = np.asarray(table, dtype=float)
    counts = counts[counts.sum(axis=1) > 0][:, counts.sum(axis=0) > 0]
    n = int(counts.sum())
    if counts.ndim != 2 or min(counts.shape) < 2:
        return ChiSquare(np.nan, 0, np.nan, np.nan, n)
    result = stats.chi2_contingency(counts, correction=False)
    statistic = float(result.statistic)
    v = float(np.sqrt(statistic / (n * (min(counts.shape) - 1))))
    return ChiSquare(statistic, int(result.dof), float(result.pvalue), v, n)


@dataclass(frozen=True)
class Trend:
    """A logistic-regression trend: odds ratio per unit of the regressor, its interval and p-value."""

    odds_ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    slope: float
    slope_se: float
    note: str = ""


def trend_scale(values: Sequence[float] | np.ndarray) -> str:
    """The regressor used for a numeric setting: ``"log10"``, ``"log2"`` or ``"linear"``.

    Positive settings spanning a factor 10 or more (initialisation scales) are regressed on their
    base-10 logarithm (odds ratio per tenfold increase), other positive settings (widths, sample
    sizes) on their base-2 logarithm (per doubling), settings with zero or negative values on the
    setting itself (per unit).
    """
    numbers = np.asarray(values, dtype=float)
    numbers = numbers[np.isfinite(numbers)]
    if numbers.size == 0 or numbers.min() <= 0:
        return "linear"
    return "log10" if numbers.max() / numbers.min() >= 10 else "log2"


def transform(values: np.ndarray, scale: str) -> np.ndarray:
    """Apply a :func:`trend_scale` transform."""
    numbers = np.asarray(values, dtype=float)
    if scale == "log10":
        return np.log10(numbers)
    if scale == "log2":
        return np.log2(numbers)
    return numbers


def logistic_trend(
    x: Sequence[float] | np.ndarray,
    successes: Sequence[int] | np.ndarray,
    trials: Sequence[int] | np.ndarray,
    confidence: float = CONFIDENCE,
) -> Trend:
    """Unpenalised logistic regression of a binary event on ``x`` from aggregated counts.

    The model ``logit P(event) = b0 + b1 x`` is fitted by scikit-learn's ``LogisticRegression``
    (``C=inf``: no penalty) on two weighted rows per distinct ``x`` (events and non-events); this is
    the same maximum-likelihood fit as one row per run. The interval is Wald's,
    ``exp(b1 +- z se(b1))`` with ``se`` from the observed Fisher information.

    Parameters
    ----------
    x
        Regressor value of each group (already transformed, e.g. ``log10(init_scale)``).
    successes, trials
        Event counts and group sizes.
    confidence
        Two-sided level of the interval.

    Returns
    -------
    Trend
        NaN fields and a ``note`` when the trend is not estimable: fewer than two distinct ``x``
        with runs, no events or only events, or (quasi-)complete separation (the maximum-likelihood
        slope is infinite).
    """
    keep = (np.asarray(trials, dtype=float) > 0) & np.isfinite(np.asarray(x, dtype=float))
    xs = np.asarray(x, dtype=float)[keep]
    events = np.asarray(successes, dtype=float)[keep]
    sizes = np.asarray(trials, dtype=float)[keep]
    nan = Trend(np.nan, np.nan, np.nan, np.nan, np.nan, np.nan)
    if np.unique(xs).size < 2:
        return Trend(**{**nan.__dict__, "note": "fewer than two setting values"})
    if events.sum() == 0 or events.sum() == sizes.sum():
        return Trend(**{**nan.__dict__, "note": "no events" if events.sum() == 0 else "only events"})
    if _separated(xs, events, sizes):
        return Trend(**{**nan.__dict__, "note": "separation: the slope is infinite"})
    features = np.concatenate([xs, xs])[:, None]
    labels = np.concatenate([np.ones_like(xs), np.zeros_like(xs)]).astype(int)
    weights = np.concatenate([events, sizes - events])
    rows = weights > 0
    model = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000, tol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(features[rows], labels[rows], sample_weight=weights[rows])
    intercept, slope = float(model.intercept_[0]), float(model.coef_[0, 0])
    p = 1.0 / (1.0 + np.exp(-(intercept + slope * xs)))
    design = np.column_stack([np.ones_like(xs), xs])
    information = design.T @ (design * (sizes * p * (1 - p))[:, None])
    try:
        covariance = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        return Trend(**{**nan.__dict__, "note": "singular information matrix"})
    se = float(np.sqrt(covariance[1, 1]))
    z = stats.norm.ppf(0.5 + confidence / 2)
    p_value = float(2 * stats.norm.sf(abs(slope) / se))
    return Trend(float(np.exp(slope)), float(np.exp(slope - z * se)), float(np.exp(slope + z * se)), p_value, slope, se)


def _separated(x: np.ndarray, successes: np.ndarray, trials: np.ndarray) -> bool:
    """(Quasi-)complete separation along ``x``: events and non-events do not overlap in ``x``.

    The slope's maximum-likelihood estimate is then infinite. With one regressor this happens exactly
    when every group below some threshold has only non-events and every group above only events (or
    the reverse), allowing one mixed group at the threshold.
    """
    order = np.argsort(x)
    x, s, f = x[order], successes[order], (trials - successes)[order]
    with_event, with_non_event = x[s > 0], x[f > 0]
    return bool(with_event.min() >= with_non_event.max() or with_non_event.min() >= with_event.max())
