"""Where runs end: each run's ending, whether it is resolved, and the rates of endings per group.

One function, :func:`run_endings`, reads the store's run-level verdict (``outcome``: the limit where it
is resolved, else the resolution status; :mod:`pipeline.resolution`) and says which verdicts are
resolved (a limit is known: certified minima and saddles, runs converging to zero loss, divergence) and
which are not (the budget ended on a plateau or away from any certified point, or the classifier could
not certify the point reached). Every table, event and sentence about endings goes through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from analysis.rates import group_rates
from analysis.runs import run_arrays, run_frame
from pipeline.resolution import OUTCOME, RESOLVED_OUTCOMES

__all__ = ["ENDING_VARIABLES", "Endings", "ending_table", "run_endings"]

ENDING_VARIABLES: tuple[str, ...] = ("outcome",)
"""The per-run variables :func:`run_endings` reads."""

RESOLVED: dict[str, str] = {
    "converged_global": "converged to a certified global minimum",
    "converging_to_zero_loss": "converge to zero loss (a global minimum; loss below the threshold and still falling)",
    "stuck_spurious_local_min": "stopped at a certified spurious local minimum",
    "local_min_unknown_globality": "stopped at a certified local minimum of unknown globality",
    "stalled_at_saddle": "converged to a certified saddle",
    "diverged": "diverged",
}
UNRESOLVED: dict[str, str] = {
    "unresolved_on_plateau": "the step budget ended on a plateau, near a stationary point the run was still leaving",
    "unresolved_moving": "the step budget ended away from any certified point and the loss is not going to zero",
    "undetermined": "a stationary point was reached but the classifier could not certify its type",
}
assert set(RESOLVED) == set(RESOLVED_OUTCOMES) and set(RESOLVED) | set(UNRESOLVED) == set(OUTCOME)


@dataclass(frozen=True)
class Endings:
    """Each run's ending (names) and the meaning of every name.

    Attributes
    ----------
    names
        Ending of each run, shape ``(runs,)``.
    resolved
        Endings that name a limit (name -> phrase ending a sentence about runs).
    unresolved
        Endings that do not (name -> why).
    """

    names: np.ndarray
    resolved: Mapping[str, str]
    unresolved: Mapping[str, str]

    @property
    def is_resolved(self) -> np.ndarray:
        """Boolean, shape ``(runs,)``: the run's ending names its limit."""
        return np.isin(self.names, list(self.resolved))


def run_endings(arrays: Mapping[str, np.ndarray]) -> Endings:
    """The ending of every run from the variables of :data:`ENDING_VARIABLES`.

    Parameters
    ----------
    arrays
        At least ``outcome`` (codes of :data:`pipeline.resolution.OUTCOME`), shape ``(runs,)``.

    Returns
    -------
    Endings
        Names as in :data:`pipeline.resolution.OUTCOME`; ``unresolved_on_plateau``, ``unresolved_moving`` and
        ``undetermined`` are unresolved.
    """
    codes = np.asarray(arrays["outcome"]).astype(np.int64)
    names = np.array([*OUTCOME, "none"], dtype=object)[np.where(codes >= 0, codes, len(OUTCOME))]
    return Endings(names, RESOLVED, UNRESOLVED)


def ending_table(dataset: xr.Dataset, by: Sequence[str] = ()) -> pd.DataFrame:
    """Rates of every ending, then of all resolved and all unresolved runs, per group of settings.

    Parameters
    ----------
    dataset
        A survey store (only the ending variables and the ``by`` coordinates are loaded).
    by
        Settings to group by; empty: the whole survey.

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, label, resolved, meaning, count, total, rate, ci_low, ci_high``; ``label`` is
        an ending, or ``resolved`` / ``unresolved`` (their sums); ``resolved`` says which kind a row
        is and ``meaning`` what it means (for an unresolved ending: why).
        Denominator: all runs of the group; 95% Wilson intervals.
    """
    by = list(by)
    frame = run_frame(dataset, [], by)
    endings = run_endings(run_arrays(dataset, ENDING_VARIABLES))
    indicators = {
        **{name: endings.names == name for name in (*endings.resolved, *endings.unresolved)},
        "resolved": endings.is_resolved,
        "unresolved": ~endings.is_resolved,
    }
    table = group_rates(
        frame,
        by,
        indicators,
        denominator="all runs",
        variables=", ".join(ENDING_VARIABLES),
        unresolved="; ".join(f"{name}: {why}" for name, why in endings.unresolved.items()),
    )
    meanings = {
        **endings.resolved,
        **endings.unresolved,
        "resolved": "a limit is known",
        "unresolved": "no limit is known",
    }
    table.insert(len(by) + 1, "resolved", table["label"].isin([*endings.resolved, "resolved"]))
    table.insert(len(by) + 2, "meaning", table["label"].map(meanings))
    return table
