"""Where a run ends and how sure that is: the limit verdict and the resolution status of every run.

A run's **limit** is the kind of point gradient descent converges to; its **resolution** says how that
verdict was reached:

``certified``
    A stationary point was reached (by gradient descent, or by the end game, :mod:`pipeline.end_game`)
    and classified with a certificate: a local minimum (global or spurious against the value of
    :mod:`pipeline.globality`), or a saddle with a verified local witness that the run converged to
    (stopped on the gradient criterion).
``converging_to_zero_loss``
    No certificate, but the loss is below ``zero_loss_threshold * s_y**2`` and still falls at the rate
    stored in ``convergence_rate`` (:func:`approaching_zero_loss`). The loss is non-negative, so a run whose loss
    goes to 0 converges to the set of global minima: its limit is ``global_min``.
``unresolved_on_plateau``
    The step budget ended near a stationary point that the run was still leaving: a saddle (the point
    type and its escape neurons are stored in ``end_*``) or a plateau that lasted to the last step.
    Its limit is ``unresolved``: gradient descent generically leaves a strict saddle.
``unresolved_moving``
    The budget ended away from any certified point and the loss is not going to 0.
``undetermined``
    A stationary point was reached but the classifier could not certify its type.
``diverged``
    The loss became non-finite or grew beyond the divergence factor (a measured fact).

``stalled_at_saddle`` therefore means that the run converged to a saddle, never that the budget ended on
a plateau. The single ``outcome`` variable combines the two for rate tables (:func:`resolve_runs`).
"""

from __future__ import annotations

import numpy as np

from pipeline.dynamics import StopReason
from pipeline.stationary import labels

__all__ = [
    "LIMIT",
    "OUTCOME",
    "RESOLUTION",
    "RESOLVED_OUTCOMES",
    "approaching_zero_loss",
    "observed_loss_rate",
    "resolve_runs",
]

LIMIT: tuple[str, ...] = (
    "global_min",
    "spurious_local_min",
    "local_min",
    "saddle_strict",
    "saddle_nonstrict",
    "saddle",
    "diverged",
    "unresolved",
)
"""Limit verdicts. ``local_min``: a certified local minimum whose globality is unknown; ``saddle``: a
certified saddle of undetermined strictness."""

RESOLUTION: tuple[str, ...] = (
    "certified",
    "converging_to_zero_loss",
    "unresolved_on_plateau",
    "unresolved_moving",
    "undetermined",
    "diverged",
)

OUTCOME: tuple[str, ...] = (
    "converged_global",
    "converging_to_zero_loss",
    "stuck_spurious_local_min",
    "local_min_unknown_globality",
    "stalled_at_saddle",
    "unresolved_on_plateau",
    "unresolved_moving",
    "undetermined",
    "diverged",
)
"""One label per run for rate tables: the limit where it is resolved, else the resolution status."""

RESOLVED_OUTCOMES: tuple[str, ...] = OUTCOME[:5] + ("diverged",)
"""Outcomes whose limit is known (certified, converging to zero loss, or diverged)."""

DECELERATION_LIMIT = 0.5
"""The loss still falls if its late log-rate is negative and at least this fraction of the earlier one."""


def observed_loss_rate(step: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-step log-rates ``d log L / d step`` of the loss over the last two quarters of each run.

    Parameters
    ----------
    step, loss
        Checkpoint steps (R, C) (-1: padding) and losses (R, C).

    Returns
    -------
    late, middle : (R,)
        Rates between the checkpoints nearest ``3T/4`` and ``T`` (the last one), and nearest ``T/2`` and
        ``3T/4``; NaN where the run has fewer than three distinct checkpoints or a non-positive loss.
    """
    step = np.asarray(step, dtype=float)
    loss = np.asarray(loss, dtype=float)
    valid = (step >= 0) & np.isfinite(loss) & (loss > 0)
    last_step = np.where(valid, step, -np.inf).max(axis=1, keepdims=True)

    def nearest(fraction: float) -> np.ndarray:
        distance = np.where(valid, np.abs(step - fraction * last_step), np.inf)
        return distance.argmin(axis=1)

    rows = np.arange(step.shape[0])
    log_loss = np.log(np.where(valid, loss, np.nan))
    half, three_quarters, end = nearest(0.5), nearest(0.75), nearest(1.0)

    def rate(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        span = step[rows, j] - step[rows, i]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(span > 0, (log_loss[rows, j] - log_loss[rows, i]) / span, np.nan)

    return rate(three_quarters, end), rate(half, three_quarters)


def approaching_zero_loss(
    loss: np.ndarray, late_rate: np.ndarray, middle_rate: np.ndarray, loss_scale: np.ndarray, threshold: float
) -> np.ndarray:
    """Runs whose loss is below ``threshold * loss_scale`` and still falls, (R,) bool.

    Still falling: the late log-rate is negative and has not slowed to less than
    ``DECELERATION_LIMIT`` of the middle one (a loss settling on a positive value slows down
    exponentially; linear and power-law convergence to 0 do not).
    """
    with np.errstate(invalid="ignore"):
        falling = (late_rate < 0) & (late_rate <= DECELERATION_LIMIT * middle_rate)
        return (loss <= threshold * loss_scale) & falling


def resolve_runs(
    point_type: np.ndarray,
    strictness: np.ndarray,
    has_witness: np.ndarray,
    stop_reason: np.ndarray,
    zero_loss_approach: np.ndarray,
    final_plateau: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Limit, resolution and outcome codes of every run, each (R,) int8.

    Parameters
    ----------
    point_type
        ``POINT_TYPE`` codes of the classified end point, after the survey-wide globality resolution.
    strictness, has_witness
        ``STRICTNESS`` codes and the verified-witness flags of the end point.
    stop_reason
        :class:`pipeline.dynamics.StopReason` values.
    zero_loss_approach
        :func:`approaching_zero_loss` of gradient descent's last stretch.
    final_plateau
        The run's last detected plateau lasted until it stopped.
    """
    kind = np.asarray(labels.POINT_TYPE, dtype=object)[np.clip(point_type, 0, len(labels.POINT_TYPE) - 1)]
    converged = stop_reason == int(StopReason.CONVERGED)
    saddle = (kind == "saddle") & has_witness
    strict = np.asarray(labels.STRICTNESS, dtype=object)[np.clip(strictness, 0, len(labels.STRICTNESS) - 1)]
    saddle_limit = np.select(
        [strict == "strict", strict == "non_strict"], ["saddle_strict", "saddle_nonstrict"], "saddle"
    )
    minimum = np.isin(kind, ["global_min", "spurious_local_min", "local_min"])
    conditions = [
        stop_reason == int(StopReason.DIVERGED),
        minimum,
        saddle & converged,
        zero_loss_approach,
        saddle | final_plateau,
        kind == "undetermined",
    ]
    limit = np.select(
        conditions, ["diverged", kind, saddle_limit, "global_min", "unresolved", "unresolved"], "unresolved"
    )
    resolution = np.select(
        conditions,
        ["diverged", "certified", "certified", "converging_to_zero_loss", "unresolved_on_plateau", "undetermined"],
        "unresolved_moving",
    )
    minimum_outcome = np.select(
        [kind == "global_min", kind == "spurious_local_min"],
        ["converged_global", "stuck_spurious_local_min"],
        "local_min_unknown_globality",
    )
    outcome = np.select(
        conditions,
        [
            "diverged",
            minimum_outcome,
            "stalled_at_saddle",
            "converging_to_zero_loss",
            "unresolved_on_plateau",
            "undetermined",
        ],
        "unresolved_moving",
    )
    return _codes(LIMIT, limit), _codes(RESOLUTION, resolution), _codes(OUTCOME, outcome)


def _codes(table: tuple[str, ...], names: np.ndarray) -> np.ndarray:
    return np.array([table.index(name) for name in names], dtype=np.int8)
