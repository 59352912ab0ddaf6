"""The end game of the population losses (:mod:`pipeline.end_game.by_flow`) inside a batch.

Oracle: gradient descent run 25 times longer on the same runs. A short budget leaves runs unfinished; the end game
(the batched flow to its limit) must reach the verdict that the long run reaches, at a loss no higher than where
it started, and never a spurious minimum where the theorem excludes them (leaky ReLU on CJR's interval loss,
theory.md 9).
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.batch import simulate_batch
from pipeline.end_game import EndGameMethod
from pipeline.stationary import labels
from pipeline.survey import parse_survey
from pipeline.survey.plan import make_plan
from pipeline.workflow.commands.simulate import padding

pytestmark = pytest.mark.usefixtures("one_torch_thread")

UNFINISHED = [labels.code(labels.POINT_TYPE, name) for name in ("not_stationary", "undetermined")]
CELLS = {
    "interval": {"input_dim": 1, "input_distribution": "interval_population", "bias": True, "target": "affine",
                 "width": 4, "activation": "leaky_relu", "leak": 0.1, "init_scale": 1.0, "learning_rate": 0.5},
    "gaussian": {"input_dim": 3, "input_distribution": "gaussian_population", "target": "teacher", "teacher_width": 3,
                 "teacher_kind": "orthonormal", "width": 4, "output_layer": "fixed", "init_distribution": "xavier",
                 "learning_rate": 0.1},
}  # fmt: skip


def _record(fixed: dict, max_steps: int) -> dict[str, np.ndarray]:
    spec = {"schema_version": 1, "master_seed": 3, "seeds": {"data": 2, "init": 4},
            "fixed": fixed | {"max_steps": max_steps}}  # fmt: skip
    survey = parse_survey(spec, name="population_end_game")
    (_, rows), *_ = make_plan(survey).groupby("cell")
    return simulate_batch(rows, master_seed=survey.master_seed, padding=padding(survey))


@pytest.mark.parametrize("loss", sorted(CELLS))
def test_the_end_game_reaches_the_verdict_of_a_long_run(loss: str) -> None:
    short, long = _record(CELLS[loss], 400), _record(CELLS[loss], 10000)
    ran = short["end_game_method"] == int(EndGameMethod.FLOW)
    assert ran.sum() >= 2  # 400 steps leave runs unfinished: the end game is exercised
    assert (short["end_game_method"][~ran] == int(EndGameMethod.NONE)).all()
    assert (short["end_game_loss_after"][ran] <= short["end_game_loss_before"][ran]).all()
    assert (short["end_game_hessian_evaluations"][ran] >= 1).all()
    used = short["end_game_used"]
    assert used[ran].mean() >= 0.75
    np.testing.assert_array_equal(short["end_point_type"][used], long["end_point_type"][used])
    assert not np.isin(short["end_point_type"][used], UNFINISHED).any()
    if loss == "interval":
        assert labels.code(labels.POINT_TYPE, "spurious_local_min") not in short["end_point_type"]
