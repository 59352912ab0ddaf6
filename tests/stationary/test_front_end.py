"""The front end of every loss (:func:`pipeline.stationary.front_end.judge_points`) on a hand-made batch of points.

The points are numbers (loss, relative gap) and the hooks answer from tables; candidate witnesses come with a
given outcome. So each step of the front end's module docstring is forced and its verdict checked, for several
runs in one batch: which runs are analysed, the Clarke test, first-order descents, the choice among verified
candidates (rank first, then the largest decrease), undetermined points, minima against a known global value.
(The rule that verifies a witness has its own tests: ``test_local_descent``, ``test_local_test``.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from pipeline.stationary import labels
from pipeline.stationary.front_end import BEST_KNOWN_RELATIVE, Analysis, Candidates, judge_points
from pipeline.stationary.local_descent import Witness
from pipeline.stationary.record import BatchClassification, unclassified_batch
from pipeline.stationary.tolerances import Tolerances

TOL = Tolerances(stationary=1e-6, approx_stationary=1e-3, global_loss=1e-10)


def outcome(verified: list[bool], decrease: list[float]) -> Witness:
    """A :class:`Witness` of ``E`` one-parameter candidates with the given outcome (``dw`` = the decrease)."""
    E = len(verified)
    dec = torch.tensor(decrease, dtype=torch.float64)
    return Witness(
        dw=dec.reshape(E, 1, 1), da=torch.zeros(E, 1, 1, dtype=torch.float64), verified=torch.tensor(verified),
        decrease=dec, radius=torch.full((E,), np.inf, dtype=torch.float64), min_step=torch.ones(E, dtype=torch.float64),
    )  # fmt: skip


def candidates(runs: list[int], verified: list[bool], decrease: list[float], **facts: object) -> Candidates:
    return Candidates(np.array(runs), lambda: outcome(verified, decrease), **facts)  # type: ignore[arg-type]


@dataclass
class TablePoints:
    """Points whose facts and hook answers are given; records which hooks were called."""

    loss: list[float]
    gap: list[float]
    clarke_runs: set[int] = field(default_factory=set)
    descent_runs: dict[int, bool] = field(default_factory=dict)  # run -> verified
    minimum_runs: set[int] = field(default_factory=set)
    analysis_candidates: list[Candidates] = field(default_factory=list)
    analysis_descents: list[Candidates] = field(default_factory=list)
    analyse_approximate: bool = True
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        R = len(self.loss)
        self.record: BatchClassification = unclassified_batch(
            np.zeros((R, 1, 1)), np.zeros((R, 1, 1)), loss=np.array(self.loss), first_order_gap=np.array(self.gap)
        )
        self.output_scale = np.ones(R)
        self.loss_floor = np.zeros(R)

    def clarke(self, runs: np.ndarray, tol: Tolerances) -> np.ndarray:
        self.calls.append("clarke")
        return np.isin(runs, list(self.clarke_runs))

    def descents(self, runs: np.ndarray) -> list[Candidates]:
        self.calls.append("descents")
        chosen = [int(r) for r in runs if int(r) in self.descent_runs]
        if not chosen:
            return []
        verified = [self.descent_runs[r] for r in chosen]
        return [candidates(chosen, verified, [1.0] * len(chosen), certificate="first_order_descent")]

    def analyse(self, runs: np.ndarray, tol: Tolerances) -> Analysis:
        self.calls.append("analyse")
        minimum = np.isin(runs, list(self.minimum_runs))
        certificate = np.full(runs.shape, labels.code(labels.CERTIFICATE, "no_escape"), np.int8)
        curvature = np.arange(runs.size, dtype=float) + 0.5
        return Analysis(
            runs, minimum, certificate, curvature, candidates=self.analysis_candidates, descents=self.analysis_descents
        )


def decoded(record: BatchClassification, table: tuple[str, ...], name: str) -> list[str]:
    return [table[code] for code in getattr(record, name)]


def test_zero_loss_the_gap_the_clarke_test_and_first_order_descents():
    points = TablePoints(
        loss=[1e-12, 1.0, 1.0, 1.0, 1.0],
        gap=[0.5, 0.5, 0.5, 0.5, 1e-7],
        clarke_runs={2},
        descent_runs={1: True, 3: False},
        minimum_runs={4},
    )
    record = judge_points(points, TOL, global_value=np.full(5, np.nan))
    assert decoded(record, labels.POINT_TYPE, "point_type") == [
        "global_min", "not_stationary", "not_stationary", "not_stationary", "local_min",
    ]  # fmt: skip
    assert decoded(record, labels.STATIONARITY, "stationarity") == [
        "approx_stationary", "not_stationary", "clarke_only", "not_stationary", "stationary",
    ]  # fmt: skip
    assert decoded(record, labels.CERTIFICATE, "certificate") == [
        "none", "first_order_descent", "none", "none", "no_escape",
    ]  # fmt: skip
    # is_local_min false only on a verified descent (run 1), not on the gap alone (runs 2, 3)
    assert decoded(record, labels.IS_LOCAL_MIN, "is_local_min") == ["true", "false", "unknown", "unknown", "true"]
    assert record.has_witness.tolist() == [False, True, False, False, False]


@pytest.mark.parametrize("analyse_approximate", [True, False])
def test_approximately_stationary_points_are_analysed_only_where_the_loss_says_so(analyse_approximate: bool):
    points = TablePoints(loss=[1.0], gap=[1e-4], minimum_runs={0}, analyse_approximate=analyse_approximate)
    record = judge_points(points, TOL, global_value=np.full(1, np.nan))
    assert labels.STATIONARITY[record.stationarity[0]] == "approx_stationary"
    expected = "local_min" if analyse_approximate else "not_stationary"
    assert labels.POINT_TYPE[record.point_type[0]] == expected
    assert ("analyse" in points.calls) == analyse_approximate


def test_the_verified_candidate_of_the_first_rank_with_the_largest_decrease_is_chosen():
    groups = [
        candidates(
            [0, 0],
            [True, True],
            [1.0, 2.0],
            certificate="negative_curvature_witness",
            curvature=np.array([-1.0, -2.0]),
            rank=np.array([1, 1]),
        ),
        candidates(
            [0, 1],
            [True, False],
            [5.0, 9.0],
            certificate="escape_zero_output",
            curvature=np.array([-3.0, -4.0]),
            rank=np.array([2, 0]),
        ),
        candidates(
            [2],
            [True],
            [0.5],
            certificate="negative_curvature_witness",
            strictness="non_strict",
            curvature=np.array([0.0]),
        ),
    ]
    points = TablePoints(loss=[1.0, 1.0, 1.0], gap=[0.0, 0.0, 0.0], minimum_runs={1}, analysis_candidates=groups)
    record = judge_points(points, TOL, global_value=np.zeros(3))
    # run 0: rank 1 beats the larger decrease of rank 2; within rank 1 the larger decrease (2.0)
    assert labels.POINT_TYPE[record.point_type[0]] == "saddle"
    assert record.witness_decrease[0] == 2.0 and record.curvature[0] == -2.0
    assert labels.CERTIFICATE[record.certificate[0]] == "negative_curvature_witness"
    # run 1: its only candidate fails: undetermined, never a saddle, and not a minimum either (it had a candidate)
    assert labels.POINT_TYPE[record.point_type[1]] == "undetermined" and not record.has_witness[1]
    assert labels.STRICTNESS[record.strictness[1]] == "unknown"
    assert record.curvature[1] == 1.5  # the analysis's curvature of the undetermined point
    assert labels.STRICTNESS[record.strictness[2]] == "non_strict"
    assert decoded(record, labels.IS_LOCAL_MIN, "is_local_min") == ["false", "unknown", "false"]


def test_a_first_order_descent_of_the_analysis_decides_before_the_candidates():
    descent = candidates([0], [True], [1.0], certificate="first_order_descent", strictness="not_applicable")
    saddle = candidates([0], [True], [3.0], certificate="negative_curvature_witness")
    points = TablePoints(loss=[1.0], gap=[0.0], analysis_candidates=[saddle], analysis_descents=[descent])
    record = judge_points(points, TOL, global_value=np.zeros(1))
    assert labels.STATIONARITY[record.stationarity[0]] == "clarke_only"
    assert labels.POINT_TYPE[record.point_type[0]] == "not_stationary"
    assert labels.CERTIFICATE[record.certificate[0]] == "first_order_descent" and record.witness_decrease[0] == 1.0


def test_minima_are_global_or_spurious_against_the_global_value_and_local_where_it_is_unknown():
    best = 2.0
    loss = [best * (1 + 0.5 * BEST_KNOWN_RELATIVE), best * (1 + 10 * BEST_KNOWN_RELATIVE), 3.0, 3.0]
    points = TablePoints(loss=loss, gap=[0.0] * 4, minimum_runs={0, 1, 2, 3})
    record = judge_points(points, TOL, global_value=np.array([best, best, 0.0, np.nan]))
    assert decoded(record, labels.POINT_TYPE, "point_type") == [
        "global_min", "spurious_local_min", "spurious_local_min", "local_min",
    ]  # fmt: skip


def test_the_label_only_re_runs_skip_the_clarke_test_and_the_descents_but_verify_saddles():
    groups = [candidates([1], [False], [1.0], certificate="negative_curvature_witness")]
    points = TablePoints(
        loss=[1.0, 1.0], gap=[0.5, 0.0], clarke_runs={0}, descent_runs={0: True}, analysis_candidates=groups
    )
    record = judge_points(points, TOL, global_value=np.zeros(2), labels_only=True)
    assert "clarke" not in points.calls and "descents" not in points.calls
    assert decoded(record, labels.POINT_TYPE, "point_type") == ["not_stationary", "undetermined"]
