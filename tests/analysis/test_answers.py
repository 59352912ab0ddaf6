"""The answers, formatting and heatmaps on hand-made data (tests/analysis/conftest.py: small_record)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.answers import KEY_EVENTS, answers
from analysis.compare import comparison_table
from analysis.formatting import format_count, format_number, format_rate, readable, with_raw
from analysis.heatmaps import heatmap_figure, varying_events
from analysis.runs import open_survey
from analysis.stats import wilson_interval


def rate(count: int, total: int) -> str:
    return format_rate(count / total, *wilson_interval(count, total))


def test_answers_of_the_small_store(small_store: Path) -> None:
    dataset = open_survey(small_store)
    ending, visited, escape, setting = answers(dataset, comparison_table(dataset, ["width"]), ["width"])
    assert f"Of 20 runs, {rate(16, 20)} reached a resolved verdict" in ending
    unresolved = f"{rate(4, 20)} are unresolved after the step budget and the end game ({rate(3, 20)} unresolved_moving"
    assert unresolved in ending
    assert f"{rate(1, 20)} undetermined" in ending and "or diverged" in ending
    assert f"{rate(4, 20)} of runs left at least one plateau and {rate(3, 20)} left at least one saddle" in visited
    assert "Of the 4 plateaus runs left" in visited  # run 0's second plateau lasted until the run stopped
    assert f"saddle {rate(3, 4)}, not_stationary {rate(1, 4)}" in visited
    assert f"mechanisms: Z {rate(2, 3)}, O-split+Z {rate(1, 3)}; strict {rate(2, 3)}, unknown {rate(1, 3)}" in visited
    assert escape.startswith(f"**Escape neurons.** {rate(3, 4)} of the plateaus runs left")
    assert "(1.75 per plateau on average" in escape and f"{rate(3, 5)} of the neurons that grew" in escape
    assert f"{rate(5, 20)} of end points have one" in escape
    assert setting.startswith("**Settings.** width changes these the most")


def test_format_number_keeps_three_significant_digits() -> None:
    assert [format_number(v) for v in (0.012345, 4.2e-06, 12345.0, 2.0, 0.5, 999.4, -3.21)] == [
        "0.0123", "4.2e-6", "12,300", "2", "0.5", "999", "-3.21"
    ]  # fmt: skip
    assert (format_number(np.nan), format_count(1934), format_count(123456)) == ("–", "1,934", "123,000")


def test_readable_folds_intervals_and_with_raw_keeps_full_precision() -> None:
    table = pd.DataFrame(
        {"width": [2], "count": [3], "total": [7], "rate": [3 / 7], "ci_low": [0.1582], "ci_high": [0.7495],
         "mean": [1.23456], "mean_ci_low": [1.0], "mean_ci_high": [1.46912]}
    )  # fmt: skip
    shown = readable(table)
    assert list(shown.columns) == ["width", "count", "total", "rate [95% CI]", "mean [95% CI]"]
    assert shown.iloc[0].tolist() == ["2", "3", "7", "42.9% [15.8, 75.0]", "1.23 [1, 1.47]"]
    csv = with_raw(shown, table)
    assert csv["rate_raw"].iloc[0] == 3 / 7 and csv["mean_ci_high_raw"].iloc[0] == 1.46912


def test_heatmaps_make_small_multiples_for_a_third_axis() -> None:
    rows = [
        (w, s, a, label, count, 10, count / 10, 0.0, 1.0)
        for w in (2, 4) for s in (1e-3, 1.0) for a in ("relu", "leaky") for label, count in (("x", 3), ("y", 0))
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=["width", "init_scale", "activation", "label", "count", "total", "rate",
                                        "ci_low", "ci_high"])  # fmt: skip
    assert varying_events(table, ["x", "y"]) == ["x"]
    figure = heatmap_figure(table, ["width", "init_scale", "activation"], ["x"], {"x": "event x"})
    assert len(figure.axes) == 2  # one panel per activation
    assert "activation = leaky" in figure.axes[0].get_title()


def test_key_events_are_events() -> None:
    from analysis.events import EVENTS

    assert set(KEY_EVENTS) <= set(EVENTS)
