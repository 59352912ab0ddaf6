"""One witness rule for every classifier (issue 13): regressions of the witnesses the old verifiers accepted.

Every saddle label rests on :func:`pipeline.stationary.local_descent.verify_witness`: a decrease at a run of
shrinking steps, explained by the claimed term of the certificate's model. Before, the interval classifier, the
smooth classifier and the higher-order probe had verifiers of their own, and each accepted witnesses that the
rule rejects; each case below was accepted by one of them and is ``undetermined`` (or unverified) now. The
oracles are the true losses and the rule's own statement, not the classifier's model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.losses import nets
from pipeline.losses.activations import Quadratic
from pipeline.losses.interval_population import IntervalTarget, interval_loss
from pipeline.stationary import labels, second_order
from pipeline.stationary.interval_points import classify_interval_batch
from pipeline.stationary.local_descent import LineModel, geometric_steps, line_path, verify_witness
from pipeline.stationary.smooth_batch import classify_smooth_batch
from pipeline.stationary.witness import sampled_change
from tests.stationary.test_interval_points import INTERVALS, semi_at_high, target_of
from tests.stationary.test_nonstrict_probe import _second_order_verdict, _symmetric_point

DTYPE = torch.float64


def _one_dimensional(coefficients: list[float]) -> tuple[LineModel, torch.Tensor, object]:
    """A line in a 1 x 1 parameter space whose true change is exactly ``sum_p c_p t^p`` (the claim)."""
    claim = torch.tensor([coefficients], dtype=DTYPE)
    steps = geometric_steps(torch.tensor([1.0], dtype=DTYPE))

    def change(dw: torch.Tensor, da: torch.Tensor) -> torch.Tensor:
        t = dw[..., 0, 0]
        return sum(c * t**p for p, c in enumerate(coefficients))

    return LineModel(claim=claim), steps, change


def test_a_claim_that_turns_into_an_increase_as_the_step_shrinks_is_no_witness() -> None:
    """``c_2 t^2 + c_3 t^3`` with ``c_2 > 0 > c_3``: a decrease at the large steps (many of them, every one agreeing
    with the model) but an increase below ``t = c_2 / |c_3|``. The old interval verifier (a decrease above the
    rounding floor at three consecutive steps) took such a third-order candidate of a boundary neuron with
    ``a_j = 0`` that is not dead; the rule requires the claim to be a decrease at every step."""
    direction = torch.ones(1, 1, 1, dtype=DTYPE), torch.zeros(1, 1, 1, dtype=DTYPE)
    floor, radius = torch.tensor([1e-30], dtype=DTYPE), torch.tensor([np.inf], dtype=DTYPE)
    model, steps, change = _one_dimensional([0.0, 0.0, 1e-6, -1.0])
    true = change(*line_path(*direction)(steps))
    assert int((true < 0).sum()) >= 8 and float(true[0, -1]) > 0  # a long decreasing run, then an increase
    assert not bool(verify_witness(line_path(*direction), change, model, steps, floor, radius).verified[0])
    cubic, steps, change = _one_dimensional([0.0, 0.0, 0.0, -1.0])  # the dead neuron's case: c_2 = 0
    assert bool(verify_witness(line_path(*direction), change, cubic, steps, floor, radius).verified[0])


# cjr_affine, run 279 of the baseline store: a ReLU end point on [-1, 1], numerically stationary (relative gap
# below the tolerance), with a negative eigenvalue of the piece Hessian
RUN_279_W = [
    [-1.0187492963777978, -0.9635765177973847],
    [-0.3386509794170111, -0.33865097941700484],
    [1.5996071841645245, 1.340799307433228],
    [-0.3285560194540602, 0.6904396605095098],
]
RUN_279_A = [[0.05132672479830017], [0.939487804624757], [-0.005535560173352059], [1.0687135225772466]]
RUN_279_TARGET = IntervalTarget(
    -1.0, 1.0, torch.tensor([[-0.35993605556959174]], dtype=DTYPE), torch.tensor([[-0.8328024602600542]], dtype=DTYPE)
)


def test_interval_decrease_carried_by_the_residual_gradient_is_undetermined() -> None:
    """The old interval verifier labelled this point a strict saddle with a witness of decrease 1.08e-8: a
    decrease at three consecutive steps along the negative-curvature line. At every such step the first-order
    term of the numerically stationary point is larger than the curvature term (and along the other sign the
    loss rises at first order as the step shrinks): the decrease is the residual gradient's, not the
    curvature's, and proves no saddle."""
    w, a = torch.tensor([RUN_279_W], dtype=DTYPE), torch.tensor([RUN_279_A], dtype=DTYPE)
    result = classify_interval_batch(w, a, RUN_279_TARGET, leak=0.0)
    assert labels.POINT_TYPE[result.point_type[0]] == "undetermined"
    assert labels.STATIONARITY[result.stationarity[0]] == "stationary"
    assert result.curvature[0] < 0 and not result.has_witness[0]


def test_higher_order_curve_needs_a_run_of_decreasing_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The old probe accepted one step whose true change agreed with the curve's polynomial. With a loss whose
    change along the curve is the true one at the largest step only and an increase at every smaller step, that
    single step is no witness: the probe finds nothing and the point stays undetermined."""
    w, a, x, y, _ = _symmetric_point("cubic")
    assert _second_order_verdict(w, a, x, y).verdict == "saddle"  # with the true loss

    def only_at_the_top(*args: object) -> object:
        true = sampled_change(*args)

        def change(dw: torch.Tensor, da: torch.Tensor) -> torch.Tensor:
            values = true(dw, da)
            return torch.cat([values[:, :1], values[:, 1:].abs() + 1e-9], dim=1)

        return change

    monkeypatch.setattr(second_order, "sampled_change", only_at_the_top)
    res = _second_order_verdict(w, a, x, y)
    assert res.verdict is None and res.curve is None


def test_interval_and_smooth_witnesses_record_their_radius_and_smallest_step() -> None:
    """The interval and smooth classifiers stored no ``witness_radius`` or ``witness_min_step`` (NaN); the shared
    record path stores both for every witness: the smallest verified step is below the witness, which is at most
    half the radius (the smooth loss is a polynomial: radius ``inf``)."""
    low, high = INTERVALS[0]
    w, a = (torch.tensor([v], dtype=DTYPE) for v in semi_at_high(0.7)(low, high))  # a strict saddle (theory 9.3)
    interval = classify_interval_batch(w, a, target_of(low, high), leak=0.0)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(1, 10, 3, generator=gen, dtype=DTYPE), torch.randn(1, 10, 1, generator=gen, dtype=DTYPE)
    zero_w, zero_a = torch.zeros(1, 2, 3, dtype=DTYPE), torch.zeros(1, 2, 1, dtype=DTYPE)
    smooth = classify_smooth_batch(zero_w, zero_a, x, y, activation=Quadratic())  # a non-strict saddle
    for result, finite_radius in ((interval, True), (smooth, False)):
        assert labels.POINT_TYPE[result.point_type[0]] == "saddle" and result.has_witness[0]
        size = float(np.sqrt(np.square(result.witness_w[0]).sum() + np.square(result.witness_a[0]).sum()))
        assert 0 < result.witness_min_step[0] < size
        assert np.isfinite(result.witness_radius[0]) == finite_radius
        assert size <= 0.5 * result.witness_radius[0] * (1 + 1e-12)
    moved = (torch.as_tensor(interval.witness_w), torch.as_tensor(interval.witness_a))
    target = target_of(low, high)
    assert float(interval_loss(w + moved[0], a + moved[1], target, 0.0)[0]) < float(interval_loss(w, a, target, 0.0)[0])
    moved = (torch.as_tensor(smooth.witness_w), torch.as_tensor(smooth.witness_a))
    quadratic = Quadratic()
    assert float(nets.loss(moved[0], moved[1], x, y, quadratic)) < float(nets.loss(zero_w, zero_a, x, y, quadratic))
