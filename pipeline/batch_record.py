"""The record of one batch: a problem and its descent in, the store's per-run arrays out.

Classifies the end points (and, after the end game, the limits of the runs that had not finished), the plateau
points, neuron groups and embeddings, for any :class:`~pipeline.problems.Problem`; :mod:`pipeline.batch`
builds the problem and pads the record to the survey's sizes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from pipeline.dynamics import DescentResult, StopReason
from pipeline.end_game import EndGameMethod, EndGameOptions
from pipeline.globality import GLOBAL_BASIS
from pipeline.problems import Problem
from pipeline.resolution import approaching_zero_loss, observed_loss_rate
from pipeline.stationary import labels
from pipeline.stationary.consistency import escape_consistency
from pipeline.stationary.record import missing_value
from pipeline.trajectory import final_plateau_at_end

__all__ = ["GROWTH_FACTOR", "record_batch"]

GROWTH_FACTOR = 10.0
"""A neuron *grew* between two plateau points if its amplitude ||w_j|| ||a_j|| rose by this factor."""


def record_batch(
    problem: Problem,
    descent: DescentResult,
    *,
    end_game: EndGameOptions,
    embedding_betas: tuple[float, ...] | None = None,
    classify_plateaus: bool = True,
) -> dict[str, np.ndarray]:
    """Classify a batch's end points and plateau points and follow its unfinished runs with the end game.

    Parameters
    ----------
    problem
        The loss the runs trained on.
    descent
        The runs' descent (any dynamics), leading run axis ``R``.
    end_game
        Options of :mod:`pipeline.end_game`. Runs whose end point is ``not_stationary`` or ``undetermined``
        (and did not diverge) are finished where the problem has an end game (:meth:`Problem.finish`), and
        the finished point's classification replaces the end point's unless it is ``not_stationary``.
    embedding_betas
        When given, embed every certified end point into width ``m + 1`` with these E3 split ratios and
        classify the embeddings (:meth:`Problem.embeddings`).
    classify_plateaus
        Also classify the representative point of every plateau (plateau mode).

    Returns
    -------
    dict
        Store variable name -> array with a leading run axis ``R``, not yet padded (see :mod:`pipeline.store`).
    """
    record = _descent_arrays(descent)
    w_end, a_end = descent.w_final, descent.a_final
    end = problem.classify(w_end, a_end, "end_point")
    end, finished = _end_game(problem, descent, end, w_end, a_end, end_game)
    record.update(finished)
    record.update(_zero_loss_approach(problem, descent, end_game.zero_loss_threshold))
    n_runs = w_end.shape[0]
    record["global_basis"] = np.full(n_runs, GLOBAL_BASIS.index(problem.verdicts.global_basis), dtype=np.int8)
    record.update({f"end_{field.name}": getattr(end, field.name) for field in dataclasses.fields(end)})
    record.update(problem.groups(end))
    if embedding_betas is not None:
        record.update(problem.embeddings(end, embedding_betas))
    if classify_plateaus:
        record.update(_plateau_arrays(descent, problem))
        _last_plateau_is_the_end_point(record, descent)
    else:
        record.update(_empty_plateau_record(descent))
    amplitude = _plateau_amplitudes(descent)
    present = _numpy(descent.plateau_start >= 0)
    record.update(escape_consistency(amplitude, record["plateau_escape"], present, GROWTH_FACTOR))
    return record


_UNFINISHED = ("not_stationary", "undetermined")
"""End-point types the end game tries to finish."""


def _end_game(
    problem: Problem, descent: DescentResult, end: Any, w: torch.Tensor, a: torch.Tensor, options: EndGameOptions
) -> tuple[Any, dict[str, np.ndarray]]:
    """Finish the unfinished runs; return the end classification to store and the ``end_game_*`` record."""
    n_runs = w.shape[0]
    record: dict[str, np.ndarray] = {
        "end_game_method": np.full(n_runs, int(EndGameMethod.NONE), dtype=np.int8),
        "end_game_gradient_evaluations": np.zeros(n_runs, dtype=np.int64),
        "end_game_hessian_evaluations": np.zeros(n_runs, dtype=np.int64),
        "end_game_distance": np.full(n_runs, np.nan),
        "end_game_flow_time": np.full(n_runs, np.nan),
        "end_game_loss_before": np.full(n_runs, np.nan),
        "end_game_loss_after": np.full(n_runs, np.nan),
        "end_game_used": np.zeros(n_runs, dtype=bool),
    }
    unfinished = np.isin(end.point_type, [labels.code(labels.POINT_TYPE, name) for name in _UNFINISHED])
    unfinished &= _numpy(descent.stop_reason) != int(StopReason.DIVERGED)
    runs = np.flatnonzero(unfinished)
    if not options.enabled or runs.size == 0:
        return end, record
    index = torch.as_tensor(runs, device=w.device)
    finish = problem.finish(w[index], a[index], runs, options)
    if finish is None:  # the problem has no end game
        return end, record
    finished = problem.classify(torch.as_tensor(finish.w), torch.as_tensor(finish.a), "end_point", runs)
    use = finished.point_type != labels.code(labels.POINT_TYPE, "not_stationary")
    for name in (
        "method", "distance", "loss_before", "loss_after", "flow_time", "gradient_evaluations", "hessian_evaluations"
    ):  # fmt: skip
        record[f"end_game_{name}"][runs] = getattr(finish, name)
    record["end_game_used"][runs] = use
    chosen = np.zeros(n_runs, dtype=bool)
    chosen[runs[use]] = True
    return _replace_rows(end, chosen, _rows(finished, use)), record


def _rows(records: Any, rows: np.ndarray) -> Any:
    """A dataclass of per-run arrays restricted to ``rows`` (bool mask)."""
    return dataclasses.replace(
        records, **{field.name: np.asarray(getattr(records, field.name))[rows] for field in dataclasses.fields(records)}
    )


def _replace_rows(records: Any, rows: np.ndarray, replacement: Any) -> Any:
    """A copy of a dataclass of per-run arrays with ``rows`` (bool mask) taken from ``replacement``."""
    merged = {}
    for field in dataclasses.fields(records):
        values = np.array(getattr(records, field.name), copy=True)
        values[rows] = np.asarray(getattr(replacement, field.name)).astype(values.dtype, copy=False)
        merged[field.name] = values
    return dataclasses.replace(records, **merged)


def _zero_loss_approach(problem: Problem, descent: DescentResult, threshold: float) -> dict[str, np.ndarray]:
    """Observed loss rates of gradient descent's last stretch and whether the loss goes to 0."""
    step, loss = _numpy(descent.checkpoint_step), _numpy(descent.checkpoint_loss)
    late, middle = observed_loss_rate(np.broadcast_to(step, loss.shape), loss)
    scale = problem.loss_scale(loss.shape[0])
    final = _numpy(descent.loss_final)
    return {
        "convergence_rate": late,
        "loss_scale": np.broadcast_to(scale, final.shape).astype(float),
        "zero_loss_approach": approaching_zero_loss(
            final, late, middle, np.broadcast_to(scale, final.shape), threshold
        ),
    }


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def _descent_arrays(descent: DescentResult) -> dict[str, np.ndarray]:
    """The engine's record as store variables."""
    names = {field.name: field.name for field in dataclasses.fields(descent)}
    record = {names[name]: _numpy(getattr(descent, name)) for name in names}
    n_runs = record["w_init"].shape[0]
    record["checkpoint_step"] = np.broadcast_to(record["checkpoint_step"], (n_runs, record["checkpoint_step"].size))
    return record


def _plateau_arrays(descent: DescentResult, problem: Problem) -> dict[str, np.ndarray]:
    """Classify every stored plateau point (plateau mode)."""
    n_runs, n_slots = descent.plateau_start.shape
    runs, slots = np.nonzero(_numpy(descent.plateau_start >= 0))
    if runs.size == 0:
        return _empty_plateau_record(descent)
    index_runs = torch.as_tensor(runs, device=descent.plateau_w.device)
    index_slots = torch.as_tensor(slots, device=descent.plateau_w.device)
    points = problem.classify(
        descent.plateau_w[index_runs, index_slots], descent.plateau_a[index_runs, index_slots], "plateau", runs
    )
    record: dict[str, np.ndarray] = {}
    for name in ("point_type", "stationarity", "certificate", "mechanisms", "escape"):
        values = getattr(points, name)
        full = np.full((n_runs, n_slots, *values.shape[1:]), missing_value(values.dtype), dtype=values.dtype)
        full[runs, slots] = values
        record[f"plateau_{name}"] = full
    return record


def _last_plateau_is_the_end_point(record: dict[str, np.ndarray], descent: DescentResult) -> None:
    """One story per stationary point: a final plateau the run never left takes its end point's verdict.

    Its end-point classification (no amplitude snapping, strict tolerances, the end game's limit) is the verdict
    of both (:func:`pipeline.trajectory.final_plateau_at_end`); a final plateau that the continuation left for a
    lower level keeps its plateau-mode verdict, like every plateau the run left. The collect step gives these
    plateaus the end point's global/spurious verdict too (:mod:`pipeline.store.derived`).
    """
    at_end = final_plateau_at_end(_numpy(descent.plateau_is_final), _numpy(descent.plateau_loss), record["end_loss"])
    runs, slots = np.nonzero(at_end)
    for name in ("point_type", "stationarity", "certificate", "mechanisms", "escape"):
        record[f"plateau_{name}"][runs, slots] = record[f"end_{name}"][runs]


def _plateau_amplitudes(descent: DescentResult) -> np.ndarray:
    """Amplitudes at each plateau point followed by the end point, shape (R, P + 1, m)."""
    at_plateaus = torch.linalg.vector_norm(descent.plateau_w, dim=-1) * torch.linalg.vector_norm(
        descent.plateau_a, dim=-1
    )
    at_end = torch.linalg.vector_norm(descent.w_final, dim=-1) * torch.linalg.vector_norm(descent.a_final, dim=-1)
    return _numpy(torch.cat([at_plateaus, at_end.unsqueeze(1)], dim=1))


def _empty_plateau_record(descent: DescentResult) -> dict[str, np.ndarray]:
    n_runs, n_slots = descent.plateau_start.shape
    width = descent.w_final.shape[1]
    return {
        "plateau_point_type": np.full((n_runs, n_slots), -1, dtype=np.int8),
        "plateau_stationarity": np.full((n_runs, n_slots), -1, dtype=np.int8),
        "plateau_certificate": np.full((n_runs, n_slots), -1, dtype=np.int8),
        "plateau_mechanisms": np.full((n_runs, n_slots), -1, dtype=np.int8),
        "plateau_escape": np.zeros((n_runs, n_slots, width), dtype=bool),
    }
