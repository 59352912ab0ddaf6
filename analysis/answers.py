"""The survey's questions answered in a few sentences, each number with its 95% interval.

:func:`answers` returns, in order: where runs end (resolved verdicts, then the unresolved share and
why), which stationary points they visit on the way (plateaus they left: types, saddle mechanisms,
strictness), how often escape neurons appear at those plateaus and at end points, and which grid
axis changes these the most (effect size, then the test). The report opens with them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from analysis.endings import ENDING_VARIABLES, ending_table, run_endings
from analysis.events import event_table
from analysis.formatting import format_count, format_number, format_p, format_rate, format_value
from analysis.plateaus import plateau_table, visited_table
from analysis.runs import run_arrays
from analysis.stats import wilson_interval
from pipeline.globality import GLOBAL_BASIS

__all__ = ["KEY_EVENTS", "answers"]

KEY_EVENTS: tuple[str, ...] = (
    "converged_global",
    "converging_to_zero_loss",
    "stuck_spurious_local_min",
    "stalled_at_saddle",
    "unresolved",
    "visited_saddle",
    "plateau_escape_neuron",
    "escape_neuron",
)
"""Run-level events the answers (and the report's heatmaps) compare across settings."""

KEY_PHRASES = {
    "converged_global": "converged to a certified global minimum",
    "converging_to_zero_loss": "converge to zero loss (a global minimum)",
    "stuck_spurious_local_min": "stopped at a spurious local minimum",
    "stalled_at_saddle": "stalled at a saddle",
    "unresolved": "ended unresolved",
    "visited_saddle": "left a saddle on the way",
    "plateau_escape_neuron": "had an escape neuron at a plateau they left",
    "escape_neuron": "had an escape neuron at the end point",
}


def _rate(row: pd.Series) -> str:
    return format_rate(row["rate"], row["ci_low"], row["ci_high"])


def _columns_rate(row: pd.Series, name: str) -> str:
    """The rate ``name`` of a wide row (``name``, ``name_ci_low``, ``name_ci_high``) as text."""
    return format_rate(row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"])


def _shares(table: pd.DataFrame) -> str:
    """``a 12.5% [..], b 3.0% [..]`` for the non-zero labels of a tidy rate table, largest first."""
    present = table[table["count"] > 0].sort_values("rate", ascending=False)
    return ", ".join(f"{row.label} {format_rate(row.rate, row.ci_low, row.ci_high)}" for row in present.itertuples())


def ending_answer(dataset: xr.Dataset) -> str:
    """Where runs end: the resolved verdicts, then the unresolved share and why."""
    table = ending_table(dataset).set_index("label")
    total = int(table["total"].iloc[0])
    resolved = table[table["resolved"] & (table.index != "resolved")]
    unresolved = table[~table["resolved"] & (table.index != "unresolved")]
    seen = [f"{_rate(row)} {row['meaning']}" for _, row in resolved.iterrows() if row["count"] > 0]
    unseen = [row["meaning"] for _, row in resolved.iterrows() if row["count"] == 0]
    reasons = [f"{_rate(row)} {name}: {row['meaning']}" for name, row in unresolved.iterrows() if row["count"]]
    verdicts = f": {', '.join(seen)}" + (f"; none {' or '.join(unseen)}" if unseen else "") if seen else ""
    text = (
        f"**Where runs end.** Of {format_count(total)} runs, {_rate(table.loc['resolved'])} reached a resolved"
        f" verdict{verdicts}"
        + f". {_rate(table.loc['unresolved'])} are unresolved"
        + (f" after {_step_budget(dataset)} and the end game ({'; '.join(reasons)})" if reasons else "")
        + "."
        + _globality_sentence(dataset)
        + _tolerance_sentence(dataset)
    )
    return text


def _globality_sentence(dataset: xr.Dataset) -> str:
    """What the global-minimum values rest on (``global_basis``: a theorem, or the best loss the survey found)."""
    if "global_basis" not in dataset:
        return ""
    codes = np.asarray(run_arrays(dataset, ["global_basis"])["global_basis"])
    phrases = {
        "realisable_target": "a realisable target (global minimum 0)",
        "interpolation_width": "the interpolation width theorem (global minimum 0)",
        "best_known": "the best loss the survey found for the same architecture and data (an upper bound)",
    }
    parts = [
        f"{format_count(int((codes == index).sum()))} runs on {phrases[name]}"
        for index, name in enumerate(GLOBAL_BASIS)
        if (codes == index).any()
    ]
    return " Global or spurious rests on: " + "; ".join(parts) + "." if parts else ""


def _step_budget(dataset: xr.Dataset) -> str:
    """The step budget(s) of gradient descent, e.g. ``a budget of 20,000 steps``."""
    if "max_steps" not in dataset.coords:
        return "the step budget"
    budgets = sorted({int(v) for v in np.unique(dataset["max_steps"].values)})
    return "a budget of " + " or ".join(format_count(v) for v in budgets) + " gradient steps"


def _tolerance_sentence(dataset: xr.Dataset) -> str:
    """How many end-point labels depend on the kink tolerance, and the resolved share without those runs."""
    if "end_tolerance_sensitive" not in dataset:
        return ""
    arrays = run_arrays(dataset, ("end_tolerance_sensitive", *ENDING_VARIABLES))
    sensitive = np.asarray(arrays["end_tolerance_sensitive"], dtype=bool)
    if not sensitive.any():
        return " No end-point label changes when the kink tolerance is scaled by 0.1 or 10."
    resolved = run_endings(arrays).is_resolved
    total, kept = sensitive.size, int((~sensitive).sum())
    share = format_rate(sensitive.mean(), *wilson_interval(int(sensitive.sum()), total))
    hits = int(resolved[~sensitive].sum())
    without = format_rate(hits / kept, *wilson_interval(hits, kept)) if kept else "no run"
    return (
        f" The end-point labels of {format_count(int(sensitive.sum()))} runs ({share}) change when the kink"
        f" tolerance is scaled by 0.1 or 10; without them, {without} of the other runs reached a resolved verdict."
    )


def visited_answer(dataset: xr.Dataset) -> str:
    """Which stationary points runs visit on the way: plateaus they left, their types, mechanisms, strictness."""
    events = event_table(dataset, (), ("visited_plateau", "visited_saddle")).set_index("label")
    pooled = plateau_table(dataset).iloc[-1]
    if not pooled["plateaus"]:
        return (
            f"**On the way.** No run left a plateau ({format_count(int(pooled['last']))} plateau(s) lasted until"
            " their run stopped and count as end points), so no stationary point was visited on the way."
        )
    types = visited_table(dataset, (), "point_type", by_order=False)
    mechanisms = visited_table(dataset, (), "mechanisms", by_order=False)
    strictness = visited_table(dataset, (), "strictness", by_order=False)
    saddles = (
        f" Among the visited saddles, mechanisms: {_shares(mechanisms)}; {_shares(strictness)}."
        if len(mechanisms)
        else ""
    )
    return (
        f"**On the way.** {_rate(events.loc['visited_plateau'])} of runs left at least one plateau and"
        f" {_rate(events.loc['visited_saddle'])} left at least one saddle. Of the"
        f" {format_count(int(pooled['plateaus']))} plateaus runs left (a run's last plateau, if it lasted until the"
        f" run stopped, is not counted), the stationary points were: {_shares(types)}.{saddles}"
    )


def escape_answer(dataset: xr.Dataset) -> str:
    """How often escape neurons appear at the plateaus runs left and at end points."""
    pooled = plateau_table(dataset).iloc[-1]
    end = event_table(dataset, (), ("escape_neuron",)).iloc[0]
    at_end = f"{_rate(end)} of end points have one"
    if not pooled["plateaus"]:
        return f"**Escape neurons.** No plateau was left; {at_end}."
    grown = ""
    if np.isfinite(pooled["grown_were_predicted"]):
        share = _columns_rate(pooled, "grown_were_predicted")
        grown = f"; {share} of the neurons that grew tenfold afterwards had been predicted"
    return (
        f"**Escape neurons.** {_columns_rate(pooled, 'escape_neuron')} of the plateaus runs left have at least one"
        " escape neuron"
        f" ({format_number(pooled['escape_neurons'])} per plateau on average{grown}); {at_end}."
    )


def setting_answer(dataset: xr.Dataset, comparisons: pd.DataFrame, axes: Sequence[str]) -> str:
    """The grid axis with the largest effect (Cramér's V) on a key event, with its range and test."""
    effect = pd.to_numeric(comparisons["cramers_v"], errors="coerce")
    tested = comparisons[comparisons["event"].isin(KEY_EVENTS) & effect.notna()]
    if not axes or tested.empty:
        return "**Settings.** No key rate differs across the grid in a way that can be tested."
    best = tested.loc[effect[tested.index].idxmax()]
    setting, event = str(best["setting"]), str(best["event"])
    rates = event_table(dataset, [setting], (event,))
    low, high = rates.loc[rates["rate"].idxmin()], rates.loc[rates["rate"].idxmax()]
    return (
        f"**Settings.** {setting} changes these the most: the share of runs that {KEY_PHRASES[event]} goes from"
        f" {_rate(low)} at {setting} = {format_value(low[setting])} to {_rate(high)} at {setting} ="
        f" {format_value(high[setting])} (Cramér's V = {format_number(best['cramers_v'])}, chi-square ="
        f" {format_number(best['chi2'])} with {int(best['dof'])} dof, {format_p(best['p_chi2'])},"
        f" n = {format_count(int(best['n']))})."
    )


def answers(dataset: xr.Dataset, comparisons: pd.DataFrame, axes: Sequence[str]) -> list[str]:
    """The survey's answers, one paragraph each (Markdown emphasis ``**...**`` on the question).

    Parameters
    ----------
    dataset
        A survey store.
    comparisons
        :func:`analysis.compare.comparison_table` over ``axes`` with :data:`KEY_EVENTS`.
    axes
        The survey's grid axes.

    Returns
    -------
    list of str
        Where runs end; what they visit on the way; escape neurons; which setting matters most.
        Rates are percentages with 95% Wilson intervals; plateau rates pool the plateaus of a run.
    """
    return [
        ending_answer(dataset),
        visited_answer(dataset),
        escape_answer(dataset),
        setting_answer(dataset, comparisons, axes),
    ]
