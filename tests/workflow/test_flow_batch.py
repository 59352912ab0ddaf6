"""``dynamics: gradient_flow`` end to end through :func:`pipeline.batch.simulate_batch`.

Oracle: small-step gradient descent (learning rate 0.01, the flow's explicit Euler discretisation) on the same
runs: the flow ends at the same losses and, on nearly every run, at the same end-point verdicts; and the
closed-form flow time of a run that stops at ``max_time``.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.batch import simulate_batch
from pipeline.dynamics import StopReason
from pipeline.stationary import labels
from pipeline.survey import parse_survey
from pipeline.survey.plan import make_plan
from pipeline.workflow.commands.simulate import padding

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SAMPLED = {"input_dim": 2, "n_samples": 8, "target": "teacher", "teacher_width": 2, "width": 3,
           "activation": "leaky_relu", "leak": 0.1, "teacher_activation": "leaky_relu", "teacher_leak": 0.1,
           "init_scale": 0.5, "learning_rate": 0.01, "max_steps": 30000}  # fmt: skip
POPULATION = {"input_dim": 3, "input_distribution": "gaussian_population", "target": "teacher", "teacher_width": 3,
              "teacher_kind": "orthonormal", "width": 4, "output_layer": "fixed", "init_distribution": "xavier",
              "learning_rate": 0.05, "max_steps": 60000, "grad_tol": 1e-7}  # fmt: skip

INTERVAL = {"input_dim": 1, "input_distribution": "interval_population", "bias": True, "target": "affine",
            "width": 2, "activation": "leaky_relu", "leak": 0.1, "init_scale": 1.0, "learning_rate": 0.05,
            "max_steps": 20000, "grad_tol": 1e-8}  # fmt: skip


def _records(fixed: dict, seeds: dict) -> dict[str, dict[str, np.ndarray]]:
    """The record of each dynamics on the same runs (one cell per dynamics)."""
    spec = {"schema_version": 1, "master_seed": 11, "seeds": seeds, "fixed": fixed,
            "grid": {"dynamics": ["gd", "gradient_flow"]}}  # fmt: skip
    survey = parse_survey(spec, name="flow")
    plan = make_plan(survey)
    return {
        str(rows.iloc[0].dynamics): simulate_batch(rows, master_seed=survey.master_seed, padding=padding(survey))
        for _, rows in plan.groupby("cell")
    }


def _agreement(records: dict[str, dict[str, np.ndarray]]) -> float:
    return float(np.mean(records["gd"]["end_point_type"] == records["gradient_flow"]["end_point_type"]))


def test_sampled_flow_cell_ends_where_small_step_gradient_descent_ends() -> None:
    records = _records(SAMPLED, {"data": 3, "init": 4})
    gd, flow = records["gd"], records["gradient_flow"]
    assert gd["end_point_type"].shape == flow["end_point_type"].shape == (12,)
    # the same loss at the same time (gradient descent is the flow's Euler method: first-order close)
    np.testing.assert_allclose(flow["loss_final"], gd["loss_final"], rtol=0.05, atol=1e-6)
    assert _agreement(records) >= 10 / 12
    # the flow's steps are flow time over the learning rate: a run that stops at max_time reached max_steps
    at_horizon = flow["stop_reason"] == int(StopReason.MAX_STEPS)
    assert (flow["steps_taken"][at_horizon] == SAMPLED["max_steps"]).all()
    assert (flow["checkpoint_step"] == gd["checkpoint_step"]).all()


def test_population_flow_cell_ends_where_small_step_gradient_descent_ends() -> None:
    records = _records(POPULATION, {"data": 1, "init": 4})
    gd, flow = records["gd"], records["gradient_flow"]
    np.testing.assert_allclose(flow["loss_final"], gd["loss_final"], rtol=1e-3, atol=1e-9)
    assert _agreement(records) == 1.0
    assert (flow["stop_reason"] == gd["stop_reason"]).all()
    assert {labels.POINT_TYPE[code] for code in flow["end_point_type"]} == {"global_min"}  # k = 3: no spurious


def test_interval_population_flow_cell_ends_where_small_step_gradient_descent_ends() -> None:
    """CJR's exact loss on [-1, 1] (leaky ReLU: no spurious minima, theory.md 9): same losses, same verdicts."""
    records = _records(INTERVAL, {"data": 2, "init": 3})
    gd, flow = records["gd"], records["gradient_flow"]
    np.testing.assert_allclose(flow["loss_final"], gd["loss_final"], rtol=1e-2, atol=1e-8)
    assert _agreement(records) >= 5 / 6
    assert "spurious_local_min" not in {labels.POINT_TYPE[code] for code in flow["end_point_type"]}
