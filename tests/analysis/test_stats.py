"""Statistics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.stats import chi_square_independence, logistic_trend, trend_scale, wilson_interval

Z95 = 1.959963984540054  # the 97.5% normal quantile


def test_wilson_interval_of_3_out_of_10_matches_the_formula() -> None:
    n, p = 10, 0.3
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 / (1 + Z95**2 / n) * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2))
    low, high = wilson_interval(3, 10)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert (low, high) == pytest.approx((0.10779, 0.60322), abs=1e-5)


def test_wilson_interval_edges() -> None:
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 8)[1] == pytest.approx(Z95**2 / (8 + Z95**2))  # (0, z^2/(n+z^2)) for 0 of n
    assert np.isnan(wilson_interval(0, 0)).all()


def test_chi_square_of_a_2x2_table_by_hand() -> None:
    # rows 30, 70; columns 40, 60; expected [[12, 18], [28, 42]]; every |O - E| = 2
    test = chi_square_independence([[10, 20], [30, 40]])
    statistic = 4 / 12 + 4 / 18 + 4 / 28 + 4 / 42
    assert test.statistic == pytest.approx(statistic)
    assert test.dof == 1
    assert test.p_value == pytest.approx(math.erfc(math.sqrt(statistic / 2)))  # chi2(1) survival function
    assert test.cramers_v == pytest.approx(math.sqrt(statistic / 100))
    assert test.n == 100


def test_chi_square_of_a_3x2_table_and_cramers_v() -> None:
    table = np.array([[5, 5], [8, 2], [2, 8]])
    expected = np.outer(table.sum(1), table.sum(0)) / table.sum()
    statistic = ((table - expected) ** 2 / expected).sum()
    test = chi_square_independence(table)
    assert test.statistic == pytest.approx(statistic)
    assert test.dof == 2
    assert test.cramers_v == pytest.approx(math.sqrt(statistic / 30))
    assert test.p_value == pytest.approx(math.exp(-statistic / 2))  # chi2(2) survival function


def test_chi_square_is_undefined_without_variation() -> None:
    test = chi_square_independence([[0, 10], [0, 10]])  # the event never happens
    assert test.dof == 0 and np.isnan(test.p_value) and np.isnan(test.cramers_v) and test.n == 20


def test_logistic_trend_on_a_binary_regressor_is_the_odds_ratio_of_the_2x2_table() -> None:
    # x = 0: 10 of 40 events; x = 1: 30 of 60 events. OR = (30/30) / (10/30) = 3; Wald se = sqrt(sum 1/cell).
    trend = logistic_trend([0, 1], [10, 30], [40, 60])
    se = math.sqrt(1 / 10 + 1 / 30 + 1 / 30 + 1 / 30)
    assert trend.odds_ratio == pytest.approx(3.0, rel=1e-5)
    assert trend.slope_se == pytest.approx(se, rel=1e-4)
    assert (trend.ci_low, trend.ci_high) == pytest.approx((3 * math.exp(-Z95 * se), 3 * math.exp(Z95 * se)), rel=1e-4)
    assert trend.p_value == pytest.approx(math.erfc(math.log(3) / se / math.sqrt(2)), rel=1e-4)


def test_logistic_trend_says_why_it_is_missing() -> None:
    assert "separation" in logistic_trend([1, 2, 3], [0, 0, 5], [5, 5, 5]).note
    assert logistic_trend([1, 2], [0, 0], [5, 5]).note == "no events"
    assert logistic_trend([1, 1], [1, 2], [5, 5]).note == "fewer than two setting values"
    assert np.isnan(logistic_trend([1, 2], [5, 5], [5, 5]).odds_ratio)


def test_trend_scale() -> None:
    assert trend_scale([1e-6, 1e-3, 1.0]) == "log10"
    assert trend_scale([2, 4, 8, 16]) == "log2"  # spans 8x: per doubling
    assert trend_scale([2, 4]) == "log2"
    assert trend_scale([0.0, 0.1]) == "linear"
