"""Tables of a hand-made store (tests/analysis/conftest.py: small_record) against counts done by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import query
from analysis.compare import compare_setting
from analysis.events import event_table, summary_table
from analysis.runs import grid_axes, open_survey, run_frame
from analysis.stats import chi_square_independence, wilson_interval


def _row(table: pd.DataFrame, **where: object) -> pd.Series:
    mask = np.ones(len(table), dtype=bool)
    for name, value in where.items():
        mask &= table[name].to_numpy() == value
    assert mask.sum() == 1, where
    return table[mask].iloc[0]


def _check(row: pd.Series, count: int, total: int) -> None:
    assert (row["count"], row["total"]) == (count, total)
    assert row["rate"] == pytest.approx(count / total)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(wilson_interval(count, total))


def test_point_types_by_width(small_store: Path) -> None:
    table = query.point_type_table(open_survey(small_store), ["width"])
    assert "Wilson" in table.attrs["interval"]
    _check(_row(table, width=2, label="global_min"), 3, 10)
    _check(_row(table, width=2, label="spurious_local_min"), 1, 10)
    _check(_row(table, width=2, label="saddle"), 4, 10)
    _check(_row(table, width=4, label="global_min"), 6, 10)
    _check(_row(table, width=4, label="undetermined"), 1, 10)
    assert table.groupby("width")["rate"].sum().to_numpy() == pytest.approx([1, 1])


def test_events_whole_survey(small_store: Path) -> None:
    table = event_table(open_survey(small_store), (), ["any_local_min", "escape_neuron", "plateau", "saddle"])
    _check(_row(table, label="any_local_min"), 10, 20)
    _check(_row(table, label="escape_neuron"), 5, 20)
    _check(_row(table, label="plateau"), 4, 20)
    _check(_row(table, label="saddle"), 6, 20)


def test_outcomes(small_store: Path) -> None:
    table = query.outcome_table(open_survey(small_store), ["width"])
    _check(_row(table, width=2, label="stuck_spurious_local_min"), 1, 10)
    _check(_row(table, width=4, label="undetermined"), 1, 10)


def test_saddle_mechanisms_among_saddles(small_store: Path) -> None:
    dataset = open_survey(small_store)
    per_bit = query.saddle_mechanism_table(dataset, ["width"])
    _check(_row(per_bit, width=2, label="Z"), 2, 4)
    _check(_row(per_bit, width=2, label="O-split"), 1, 4)
    _check(_row(per_bit, width=2, label="none"), 1, 4)
    _check(_row(per_bit, width=4, label="V"), 1, 2)
    combos = query.saddle_mechanism_table(dataset, ["width"], combinations=True)
    assert set(combos["label"]) == {"Z", "O-touch", "V", "O-split+Z", "none"}
    _check(_row(combos, width=2, label="O-split+Z"), 1, 4)
    assert combos.groupby("width")["rate"].sum().to_numpy() == pytest.approx([1, 1])


def test_strictness_among_saddles(small_store: Path) -> None:
    table = query.strictness_table(open_survey(small_store), ["width"])
    _check(_row(table, width=2, label="strict"), 2, 4)
    _check(_row(table, width=4, label="non_strict"), 1, 2)


def test_escape_neuron_counts(small_store: Path) -> None:
    dataset = open_survey(small_store)
    table = query.count_table(dataset, "n_escape_neurons", ["width"])
    _check(_row(table, width=2, label=2), 3, 10)
    _check(_row(table, width=4, label=0), 10, 10)
    summary = query.count_summary(dataset, "n_escape_neurons", ["width"])
    values = np.array([0, 0, 0, 1, 1, 2, 2, 2, 0, 0])
    row = _row(summary, width=2)
    assert row["mean"] == pytest.approx(0.8)
    half = 1.959963984540054 * values.std(ddof=1) / np.sqrt(10)
    assert (row["mean_ci_low"], row["mean_ci_high"]) == pytest.approx((0.8 - half, 0.8 + half))
    assert (row["at_least_one"], row["rate"]) == (5, 0.5)


def test_escape_consistency_pooled(small_store: Path) -> None:
    dataset = open_survey(small_store)
    table = query.escape_consistency_table(dataset, ["width"])
    _check(_row(table, width=2, label="grown_were_predicted"), 3, 4)  # (2 + 1 + 0) of (3 + 1 + 0)
    _check(_row(table, width=2, label="predicted_grew"), 3, 7)  # of (4 + 1 + 2)
    _check(_row(table, width=4, label="grown_were_predicted"), 1, 2)
    assert _row(table, width=2, label="predicted_grew")["plateaus"] == 4
    pooled = query.escape_consistency_table(dataset)
    _check(_row(pooled, label="grown_were_predicted"), 4, 6)


def test_summary_table_is_the_wide_event_table(small_store: Path) -> None:
    table = summary_table(open_survey(small_store), ["width"])
    assert list(table["runs"]) == [10, 10]
    assert table.loc[0, "converged_global"] == pytest.approx(0.3)
    assert table.loc[1, "converged_global_ci_low"] == pytest.approx(wilson_interval(6, 10)[0])


def test_comparison_across_width(small_store: Path) -> None:
    table = compare_setting(open_survey(small_store), "width", ["converged_global", "escape_neuron"])
    row = _row(table, event="converged_global")
    expected = chi_square_independence([[3, 7], [6, 4]])
    assert (row["chi2"], row["p_chi2"], row["cramers_v"]) == pytest.approx(
        (expected.statistic, expected.p_value, expected.cramers_v)
    )
    # two widths, log2 regressor 1 apart: the odds ratio per doubling is the 2x2 odds ratio
    assert row["trend_scale"] == "log2"
    assert row["odds_ratio"] == pytest.approx((6 / 4) / (3 / 7), rel=1e-4)
    assert "separation" in _row(table, event="escape_neuron")["note"]  # no escape neuron at width 4
    outcome = _row(table, event="outcome (all labels)")
    assert outcome["dof"] == 4  # 2 widths x 5 outcomes that occur


def test_grid_axes_and_run_frame_guard(small_store: Path) -> None:
    dataset = open_survey(small_store)
    assert grid_axes(dataset) == ["width", "init_scale"]  # activation does not vary
    with pytest.raises(ValueError, match="per-run"):
        run_frame(dataset, ["w_final"])
    with pytest.raises(KeyError):
        run_frame(dataset, ["no_such_variable"])


def test_rate_table_keeps_its_interface(small_store: Path) -> None:
    table = query.rate_table(open_survey(small_store), ["width", "init_scale"], "outcome")
    assert list(table.columns) == ["width", "init_scale", "label", "count", "total", "rate", "ci_low", "ci_high"]
    assert table.groupby(["width", "init_scale"])["total"].first().to_list() == [5, 5, 5, 5]


def test_effective_width_by_init_scale(tmp_path: Path) -> None:
    from analysis.query import effective_width_table
    from tests.analysis.helpers import small_record, write_store

    rows, record = small_record()
    reduced = np.array([1, 2] * 5 + [3, 4] * 4 + [-1, -1], dtype=np.int16)  # last two runs: not computed
    record["end_reduced_width"] = reduced
    dataset = open_survey(write_store(tmp_path / "store.zarr", rows, record))
    table = effective_width_table(dataset, ["init_scale"]).set_index("init_scale")
    # init_scale 1e-3 (even runs): widths [1]*5 + [3]*4 -> 17/9; 1.0 (odd runs): [2]*5 + [4]*4 -> 26/9
    assert table.loc[1e-3, "runs"] == 9 and table.loc[1.0, "runs"] == 9
    assert table.loc[1e-3, "mean"] == pytest.approx(17 / 9)
    assert table.loc[1.0, "mean"] == pytest.approx(26 / 9)
    assert table.loc[1e-3, "width_mean"] == pytest.approx((2 * 5 + 4 * 4) / 9)
