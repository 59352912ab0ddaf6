"""Per-point losses through the front end (:func:`pipeline.stationary.local_test.judge`) on hand-built points.

A toy loss of one neuron, ``L(w, a) = c + 1/2 p w^2 + 1/2 q a^2 + s w`` (``w``, ``a`` scalars as (1, 1) arrays),
with a hand-written local model: its true change along a line is known in closed form, so each verdict of the
module docstring's steps can be forced and checked, including a candidate whose claimed decrease is false.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from pipeline.stationary import labels
from pipeline.stationary.local_descent import STEPS
from pipeline.stationary.local_test import LineCandidate, LocalModel, LocalPoint, judge, steepest_descent
from pipeline.stationary.record import unclassified_batch
from pipeline.stationary.tolerances import Tolerances, population_tolerances

TOL = population_tolerances("end_point")
DTYPE = torch.float64


@dataclass(frozen=True)
class ToyPoint:
    """The point ``w = a = 0`` of the toy loss; ``claims`` are candidate directions ``(dw, da, claimed curvature)``."""

    c: float
    p: float
    q: float
    s: float = 0.0
    claims: tuple[tuple[float, float, float], ...] = ()
    certify_minimum: bool = False
    first_order_slope: float | None = None
    ladder: int = STEPS

    @property
    def value(self) -> float:
        return self.c

    @property
    def gap(self) -> float:
        return abs(self.s)

    @property
    def output_scale(self) -> float:
        return 1.0

    @property
    def floor(self) -> float:
        return 64 * float(np.finfo(float).eps) * max(self.c, np.finfo(float).tiny)

    def change(self, moves_w: torch.Tensor, moves_a: torch.Tensor) -> torch.Tensor:
        w, a = moves_w[..., 0, 0], moves_a[..., 0, 0]
        return 0.5 * self.p * w**2 + 0.5 * self.q * a**2 + self.s * w

    def local_model(self, tol: object) -> LocalModel:
        candidates = [
            LineCandidate(
                torch.tensor([[dw]], dtype=DTYPE),
                torch.tensor([[da]], dtype=DTYPE),
                (0.0, self.s * dw, 0.5 * curvature),
                top=1.0,
                curvature=curvature,
            )  # fmt: skip
            for dw, da, curvature in self.claims
        ]
        first = None
        if self.first_order_slope is not None:
            first = LineCandidate(
                torch.ones(1, 1, dtype=DTYPE), torch.zeros(1, 1, dtype=DTYPE), (0.0, self.first_order_slope),
                top=1.0, claim_from=1, strictness="not_applicable", certificate="first_order_descent",
            )  # fmt: skip
        return LocalModel(candidates, minimum=self.certify_minimum, curvature=min(self.p, self.q), first_order=first)

    def descent(self) -> LineCandidate | None:
        gradient = torch.tensor([[self.s]], dtype=DTYPE)  # dL/dw at w = a = 0; dL/da = 0
        return steepest_descent(
            gradient, torch.zeros(1, 1, dtype=DTYPE), lambda dw, da: (1.0, np.inf),
            lambda dw, da: float(self.p * dw.square().sum() + self.q * da.square().sum()),
        )  # fmt: skip


@dataclass(frozen=True)
class Judged:
    """The verdict of one point, decoded from the record the front end wrote."""

    stationarity: str
    point_type: str
    certificate: str
    strictness: str
    curvature: float
    has_witness: bool
    witness_w: float
    witness_a: float
    decrease: float


def judge_one(point: LocalPoint, tol: Tolerances, *, realisable: bool, labels_only: bool = False) -> Judged:
    record = unclassified_batch(
        np.zeros((1, 1, 1)), np.zeros((1, 1, 1)), loss=np.array([point.value]), first_order_gap=np.array([point.gap])
    )
    judge(record, {0: point}, tol, realisable=realisable, labels_only=labels_only)
    return Judged(
        labels.STATIONARITY[record.stationarity[0]],
        labels.POINT_TYPE[record.point_type[0]],
        labels.CERTIFICATE[record.certificate[0]],
        labels.STRICTNESS[record.strictness[0]],
        float(record.curvature[0]),
        bool(record.has_witness[0]),
        float(record.witness_w[0, 0, 0]),
        float(record.witness_a[0, 0, 0]),
        float(record.witness_decrease[0]),
    )


def test_a_true_negative_curvature_claim_makes_a_saddle_with_its_witness():
    point = ToyPoint(c=1.0, p=1.0, q=-2.0, claims=((0.0, 1.0, -2.0),))
    verdict = judge_one(point, TOL, realisable=True)
    assert (verdict.stationarity, verdict.point_type, verdict.strictness) == ("stationary", "saddle", "strict")
    assert verdict.curvature == -2.0
    assert verdict.has_witness
    assert verdict.decrease == pytest.approx(verdict.witness_a**2, rel=1e-12)  # -1/2 q t^2 = t^2


def test_a_false_claim_is_not_verified_and_the_point_stays_undetermined():
    # the model claims negative curvature along w, but the loss curves up there: no witness, no verdict
    point = ToyPoint(c=1.0, p=1.0, q=-2.0, claims=((1.0, 0.0, -2.0),))
    verdict = judge_one(point, TOL, realisable=True)
    assert verdict.point_type == "undetermined" and not verdict.has_witness
    assert verdict.curvature == -2.0  # the model's lowest curvature is still reported


def test_the_first_verified_candidate_in_order_of_preference_is_chosen():
    point = ToyPoint(c=1.0, p=-1.0, q=-2.0, claims=((1.0, 0.0, 3.0), (1.0, 0.0, -1.0), (0.0, 1.0, -2.0)))
    verdict = judge_one(point, TOL, realisable=True)
    assert verdict.point_type == "saddle"
    assert verdict.witness_w != 0.0 and verdict.witness_a == 0.0
    assert verdict.curvature == -1.0  # the chosen candidate's, not the strongest


def test_a_certified_minimum_is_global_or_spurious_only_against_a_known_global_value():
    point = ToyPoint(c=0.5, p=1.0, q=1.0, certify_minimum=True)
    assert judge_one(point, TOL, realisable=False).point_type == "local_min"
    assert judge_one(point, TOL, realisable=True).point_type == "spurious_local_min"
    uncertified = ToyPoint(c=0.5, p=1.0, q=0.0)
    assert judge_one(uncertified, TOL, realisable=True).point_type == "undetermined"


def test_numerically_zero_loss_decides_before_the_gradient_and_the_model():
    # a relative gradient above tol.stationary, and a model with a (true) descent: zero loss still wins
    point = ToyPoint(c=0.5 * TOL.global_loss, p=1.0, q=-2.0, s=10 * TOL.stationary, claims=((0.0, 1.0, -2.0),))
    verdict = judge_one(point, TOL, realisable=True)
    assert (verdict.point_type, verdict.certificate, verdict.stationarity) == (
        "global_min", "none", "approx_stationary",
    )  # fmt: skip
    assert (
        judge_one(ToyPoint(c=0.5 * TOL.global_loss, p=1.0, q=1.0), TOL, realisable=False).stationarity == "stationary"
    )


@pytest.mark.parametrize(("gap", "stationarity"), [(1e-4, "approx_stationary"), (0.5, "not_stationary")])
def test_a_gradient_above_the_tolerance_is_not_stationary(gap: float, stationarity: str):
    point = ToyPoint(c=1.0, p=1.0, q=-2.0, s=gap, claims=((0.0, 1.0, -2.0),))
    verdict = judge_one(point, TOL, realisable=True)
    assert (verdict.stationarity, verdict.point_type) == (stationarity, "not_stationary")
    # the steepest descent -s along w: the loss falls as 1/2 t^2 - s t, so the first-order witness holds
    assert verdict.has_witness and verdict.certificate == "first_order_descent"
    step = -verdict.witness_w
    assert step > 0 and verdict.decrease == pytest.approx(gap * step - 0.5 * step**2, rel=1e-9)
    assert verdict.stationarity != "stationary"


def test_a_first_order_descent_is_clarke_only_and_its_witness_is_verified_only_where_the_loss_falls():
    # a model naming a one-sided slope of -1e-3 along w at a numerically stationary point (tol.stationary 1e-2):
    # the verdict is not_stationary either way; the witness holds where the loss really falls along w (s = -1e-3)
    tol = Tolerances(stationary=1e-2, approx_stationary=1e-1)
    for s, verified in ((0.0, False), (-1e-3, True)):
        verdict = judge_one(ToyPoint(c=1.0, p=1.0, q=1.0, s=s, first_order_slope=-1e-3), tol, realisable=True)
        certificate = "first_order_descent" if verified else "none"  # a certificate only with its witness
        assert (verdict.stationarity, verdict.point_type, verdict.certificate) == (
            "clarke_only", "not_stationary", certificate,
        )  # fmt: skip
        assert verdict.has_witness == verified


def test_the_label_only_re_runs_still_need_a_verified_witness_for_a_saddle():
    false_claim = ToyPoint(c=1.0, p=1.0, q=-2.0, claims=((1.0, 0.0, -2.0),))
    assert judge_one(false_claim, TOL, realisable=True, labels_only=True).point_type == "undetermined"
    true_claim = ToyPoint(c=1.0, p=1.0, q=-2.0, claims=((0.0, 1.0, -2.0),))
    assert judge_one(true_claim, TOL, realisable=True, labels_only=True).point_type == "saddle"


def test_the_zero_loss_level_is_the_mode_s_tolerance_times_the_output_scale_squared():
    point = ToyPoint(c=1e-7, p=1.0, q=1.0, certify_minimum=True)  # s_y = 1: end points 1e-8, plateaus 1e-6
    assert judge_one(point, TOL, realisable=True).point_type == "spurious_local_min"
    assert judge_one(point, population_tolerances("plateau"), realisable=True).point_type == "global_min"
