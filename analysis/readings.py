"""Plain-language readings of the tables: the sentences under each figure of the report.

Every sentence is generated from the numbers it quotes, in the form "at width 16, 12.5% [9.8, 15.8]
of runs ended at a spurious local minimum" (rate with its 95% Wilson interval, in percent), and a
comparison is quoted with its effect size before its p-value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.formatting import format_count, format_number, format_p, format_rate, format_value

__all__ = [
    "PHRASES",
    "comparison_sentence",
    "consistency_reading",
    "count_reading",
    "rates_reading",
    "stacked_reading",
]

PHRASES: dict[str, str] = {
    "converged_global": "converged to a global minimum",
    "stuck_spurious_local_min": "got stuck at a spurious local minimum",
    "stalled_at_saddle": "stalled at a saddle",
    "converging_to_zero_loss": "converge to zero loss (loss below the threshold and still falling)",
    "local_min_unknown_globality": "stopped at a certified local minimum of unknown globality",
    "unresolved_on_plateau": "ran out of steps on a plateau they were still leaving",
    "unresolved_moving": "ran out of steps away from any certified point",
    "diverged": "diverged",
    "outcome_undetermined": "ended at a point the classifier could not certify",
    "undetermined": "ended at a point the classifier could not certify",
    "any_local_min": "ended at a certified local minimum",
    "local_min": "ended at a local minimum whose globality is unknown",
    "global_min": "ended at a global minimum",
    "spurious_local_min": "ended at a spurious local minimum",
    "saddle": "ended at a saddle",
    "not_stationary": "ended at a point that is not stationary",
    "escape_neuron": "had at least one escape neuron at the end point",
    "plateau": "passed through at least one plateau",
    "visited_plateau": "left at least one plateau",
    "visited_saddle": "left at least one saddle on the way",
    "plateau_escape_neuron": "had at least one escape neuron at a plateau they left",
    "unresolved": "ended without a resolved verdict",
}
"""What each event or label means, as the end of a sentence about runs."""

UNIT = {"log10": "tenfold increase", "log2": "doubling", "linear": "unit increase"}


def _phrase(label: object) -> str:
    return PHRASES.get(str(label), f"were {label}")


def _where(setting: str, value: object) -> str:
    return f"at {setting} {format_value(value)}"


def rates_reading(table: pd.DataFrame, setting: str, labels: Sequence[str], comparisons: pd.DataFrame) -> str:
    """One paragraph: the rates of ``labels`` at each value of ``setting``, then the strongest comparison.

    Parameters
    ----------
    table
        Tidy rates grouped by ``[setting]`` (:func:`analysis.events.event_table`).
    setting
        The setting on the x axis.
    labels
        Labels (events) to quote.
    comparisons
        Rows of :func:`analysis.compare.compare_setting` for this setting.
    """
    sentences = []
    for value, part in table.groupby(setting, sort=True, dropna=False):
        part = part.set_index("label")
        quoted = [
            f"{format_rate(*part.loc[label, ['rate', 'ci_low', 'ci_high']])} {_phrase(label)}"
            for label in labels
            if label in part.index
        ]
        total = int(part["total"].iloc[0])
        sentences.append(
            f"{_where(setting, value).capitalize()} ({format_count(total)} runs), " + "; ".join(quoted) + "."
        )
    tested = comparisons[comparisons["event"].isin(labels) & pd.to_numeric(comparisons["cramers_v"]).notna()]
    if len(tested):
        best = tested.loc[tested["cramers_v"].idxmax()]
        sentences.append(comparison_sentence(best))
    else:
        sentences.append(f"No rate can be compared across {setting} (every run gave the same answer or one value).")
    return " ".join(sentences)


def comparison_sentence(row: pd.Series) -> str:
    """A comparison across a setting: effect size first, then the test (a row of a comparison table).

    Cramér's V is called negligible below 0.1, small below 0.3, medium below 0.5 and large above.
    """
    phrase = _phrase(row["event"]).removeprefix("were ")
    v = float(row["cramers_v"])
    size = "negligible" if v < 0.1 else "small" if v < 0.3 else "medium" if v < 0.5 else "large"
    text = (
        f"Across {row['setting']}, the share of runs that {phrase} shows a {size} association:"
        f" Cramér's V = {format_number(v)} (chi-square = {format_number(row['chi2'])} with {int(row['dof'])} dof,"
        f" {format_p(row['p_chi2'])}, n = {format_count(int(row['n']))})"
    )
    if np.isfinite(row.get("odds_ratio", np.nan)):
        text += (
            f"; the odds change by a factor {format_number(row['odds_ratio'])} [{format_number(row['or_ci_low'])},"
            f" {format_number(row['or_ci_high'])}] per {UNIT[row['trend_scale']]} of {row['setting']}"
            f" (logistic regression, {format_p(row['p_trend'])})"
        )
    elif row.get("note"):
        text += f"; no trend estimate ({row['note'].split('trend: ')[-1]})"
    return text + "."


def stacked_reading(table: pd.DataFrame, setting: str, what: str, empty: str) -> str:
    """The non-zero categories of an exclusive breakdown at each value of ``setting``, largest first."""
    if table.empty:
        return empty
    sentences = []
    for value, part in table.groupby(setting, sort=True, dropna=False):
        part = part[part["count"] > 0].sort_values("rate", ascending=False)
        total = int(table[table[setting] == value]["total"].iloc[0]) if len(part) else 0
        quoted = ", ".join(
            f"{row.label} {format_rate(row.rate, row.ci_low, row.ci_high)}" for row in part.itertuples(index=False)
        )
        sentences.append(f"{_where(setting, value).capitalize()}, {what} of {format_count(total)}: {quoted or 'none'}.")
    return " ".join(sentences)


def count_reading(summary: pd.DataFrame, setting: str, noun: str, phrase: str) -> str:
    """Share of runs with at least one ``noun`` and the mean count, at each value of ``setting``."""
    sentences = []
    for row in summary.itertuples(index=False):
        value = getattr(row, setting)
        interval = f" [{format_number(row.mean_ci_low)}, {format_number(row.mean_ci_high)}]" if row.runs > 1 else ""
        mean = format_number(row.mean) + interval
        sentences.append(
            f"{_where(setting, value).capitalize()}, {format_rate(row.rate, row.ci_low, row.ci_high)} of runs"
            f" {phrase} (mean {mean} {noun} per run)."
        )
    return " ".join(sentences)


def consistency_reading(table: pd.DataFrame) -> str:
    """The escape-consistency statistic in words (a table without ``by``)."""
    rows = table.set_index("label")
    grown, predicted = rows.loc["grown_were_predicted"], rows.loc["predicted_grew"]
    if grown["total"] == 0:
        return (
            f"No neuron's amplitude grew tenfold after any of the {format_count(grown['plateaus'])} detected plateaus,"
            " so the escape-consistency statistic is undefined for this survey."
        )
    return (
        f"Across {format_count(grown['plateaus'])} plateaus in {format_count(grown['runs'])} runs, "
        f"{format_rate(grown['rate'], grown['ci_low'], grown['ci_high'])} of the {format_count(grown['total'])}"
        " neurons whose amplitude grew tenfold before the next plateau had been predicted escape neurons at the"
        " plateau point"
        " (theory predicts 100%: escape from a saddle goes through its escape neurons); conversely,"
        f" {format_rate(predicted['rate'], predicted['ci_low'], predicted['ci_high'])} of the"
        f" {format_count(predicted['total'])} predicted escape neurons grew."
        " The intervals treat neurons as independent trials."
    )
