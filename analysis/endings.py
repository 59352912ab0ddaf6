"""Where runs end: each run's ending, whether it is resolved, and the rates of endings per group.

One function, :func:`run_endings`, reads the store's run-level verdict and says which verdicts are
resolved (a limit is known: a global minimum, a spurious local minimum, a saddle, divergence) and
which are not (the budget ran out before a stationary point was reached, or the classifier could
not certify the point). Today it reads the ``outcome`` variable; when the store carries a limit
verdict and a resolution status (issue 11), only :func:`run_endings` and :data:`ENDING_VARIABLES`
change: every table, event and sentence about endings goes through them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from analysis.rates import group_rates
from analysis.runs import run_arrays, run_frame
from pipeline.schema import OUTCOME

__all__ = ["ENDING_VARIABLES", "Endings", "ending_table", "run_endings"]

ENDING_VARIABLES: tuple[str, ...] = ("outcome",)
"""The per-run variables :func:`run_endings` reads."""

RESOLVED: dict[str, str] = {
    "converged_global": "converged to a global minimum",
    "stuck_spurious_local_min": "stopped at a certified spurious local minimum",
    "stalled_at_saddle": "stalled at a saddle",
    "diverged": "diverged",
}
UNRESOLVED: dict[str, str] = {
    "not_converged": "the step budget ended before a stationary point was reached",
    "undetermined": "the end point is stationary but the classifier could not certify its type",
    "unresolved_on_plateau": "the step budget ended near a certified saddle that the run was still moving along",
}


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
        At least ``outcome`` (codes of :data:`pipeline.schema.OUTCOME`), shape ``(runs,)``.

    Returns
    -------
    Endings
        Names as in :data:`pipeline.schema.OUTCOME`; ``not_converged``, ``undetermined`` and ``unresolved_on_plateau``
        are unresolved.
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
