"""Visited plateaus and run endings of the hand-made store (tests/analysis/conftest.py: small_record)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.endings import ending_table
from analysis.events import event_table
from analysis.plateaus import plateau_frame, plateau_table, visited_table
from analysis.runs import open_survey
from analysis.stats import wilson_interval
from tests.analysis.test_query import _check, _row


def test_plateau_frame_marks_the_last_plateau_as_not_visited(small_store: Path) -> None:
    frame = plateau_frame(open_survey(small_store), ["width"])
    assert list(zip(frame["run"], frame["plateau"], frame["visited"], strict=True)) == [
        (0, 1, True), (0, 2, False), (1, 1, True), (2, 1, True), (10, 1, True)
    ]  # fmt: skip
    assert list(frame["strictness"]) == ["strict", "strict", "strict", "not_applicable", "unknown"]
    assert list(frame["mechanisms"]) == ["Z", "Z", "O-split+Z", "", "Z"]
    assert list(frame["duration"]) == [100, 90, 50, 20, 1000]


def test_visited_point_types_per_order(small_store: Path) -> None:
    table = visited_table(open_survey(small_store), ["width"], "point_type")
    _check(_row(table, width=2, plateau=1, label="saddle"), 2, 3)
    _check(_row(table, width=2, plateau=1, label="not_stationary"), 1, 3)
    _check(_row(table, width=4, plateau=1, label="saddle"), 1, 1)
    assert not (table["plateau"] == 2).any()  # run 0's second plateau lasted until the run stopped
    mechanisms = visited_table(open_survey(small_store), (), "mechanisms", by_order=False)
    _check(_row(mechanisms, label="Z"), 2, 3)
    _check(_row(mechanisms, label="O-split+Z"), 1, 3)
    strictness = visited_table(open_survey(small_store), (), "strictness", by_order=False)
    _check(_row(strictness, label="strict"), 2, 3)
    _check(_row(strictness, label="unknown"), 1, 3)
    with pytest.raises(ValueError, match="choose from"):
        visited_table(open_survey(small_store), (), "nope")


def test_plateau_table_by_width(small_store: Path) -> None:
    table = plateau_table(open_survey(small_store), ["width"])
    assert list(zip(table["width"], table["plateau"], strict=True)) == [(2, 1), (2, 2), (2, "all"), (4, 1), (4, "all")]
    first = table.iloc[0]
    assert (first["plateaus"], first["runs"], first["last"]) == (3, 3, 0)
    assert (first["saddle"], first["saddle_ci_low"]) == pytest.approx((2 / 3, wilson_interval(2, 3)[0]))
    assert first["strict"] == 1.0 and first["escape_neuron"] == pytest.approx(2 / 3)
    assert first["grown_were_predicted"] == pytest.approx(2 / 3)  # 2 of the 3 neurons that grew
    assert first["mechanisms"] == "O-split+Z 1, Z 1"
    assert (first["escape_neurons"], first["grew"]) == pytest.approx((2.0, 1.0))
    assert (first["loss_median"], first["duration_median"]) == pytest.approx((0.5, 50))
    second = table.iloc[1]
    assert (second["plateaus"], second["last"]) == (0, 1) and np.isnan(second["saddle"])
    width_4 = table.iloc[3]
    assert (width_4["strict"], width_4["duration_median"]) == (0.0, 1000)


def test_visited_events(small_store: Path) -> None:
    events = ["visited_plateau", "visited_saddle", "plateau_escape_neuron", "unresolved"]
    table = event_table(open_survey(small_store), ["width"], events)
    _check(_row(table, width=2, label="visited_plateau"), 3, 10)
    _check(_row(table, width=2, label="visited_saddle"), 2, 10)
    _check(_row(table, width=4, label="plateau_escape_neuron"), 1, 10)
    _check(_row(table, width=4, label="unresolved"), 2, 10)  # not converged + undetermined


def test_endings_resolved_and_unresolved(small_store: Path) -> None:
    table = ending_table(open_survey(small_store), ["width"])
    _check(_row(table, width=2, label="converged_global"), 3, 10)
    _check(_row(table, width=2, label="resolved"), 8, 10)
    _check(_row(table, width=4, label="unresolved"), 2, 10)
    assert bool(_row(table, width=4, label="undetermined")["resolved"]) is False
    assert "unresolved_moving" in table.attrs["unresolved"]
    whole = ending_table(open_survey(small_store))
    assert whole[whole["label"].isin(["resolved", "unresolved"])]["count"].sum() == 20
    assert isinstance(whole, pd.DataFrame)
