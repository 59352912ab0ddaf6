"""Runs that blow up are recorded ``diverged`` at the step it happened; non-finite points get a label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from pipeline.batch import simulate_batch
from pipeline.dynamics import StopReason
from pipeline.stationary import classify_batch, labels
from pipeline.store.schema import OUTCOME
from pipeline.survey import load_survey
from pipeline.survey.plan import batches, make_plan
from pipeline.workflow.commands.simulate import padding
from tests.reliability.helpers import cli, survey_file

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")]

DIVERGED = int(StopReason.DIVERGED)


@pytest.fixture(scope="module")
def blowup_survey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Learning rates 0.05 (trains), 20 (blows up after a few steps) and 1e6 (at once): 12 runs, one shard."""
    return survey_file(
        tmp_path_factory.mktemp("surveys"),
        "blowup",
        drop_fixed=("learning_rate",),
        grid={"learning_rate": [0.05, 20.0, 1.0e6], "width": [2], "init_scale": [1.0]},
        execution={"shard_size": 12, "batch_size": 4},
    )


def test_overflowing_runs_are_recorded_diverged(blowup_survey: Path, tmp_path: Path, capsys) -> None:
    shard = tmp_path / "shards" / "shard-0000.zarr"
    store = tmp_path / "survey.zarr"
    assert cli(capsys, "simulate", blowup_survey, "--shard", "0", "--out", shard, "--in-process").returncode == 0
    assert cli(capsys, "collect", blowup_survey, shard, "--out", store).returncode == 0
    check = cli(capsys, "validate", store, "--survey", blowup_survey)
    assert check.returncode == 0, check.stdout  # NaN/huge values of diverged runs are allowed

    data = xr.open_zarr(store, chunks=None)
    diverged = data["stop_reason"].values == DIVERGED
    rate = data["learning_rate"].values
    assert diverged.any() and not diverged[rate == 0.05].any()
    assert diverged[rate == 1.0e6].sum() >= 2 and diverged[rate == 20.0].any()
    steps = data["steps_taken"].values[diverged]
    assert (steps >= 1).all() and (steps < data["max_steps"].values[diverged]).all()
    assert (data["outcome"].values[diverged] == OUTCOME.index("diverged")).all()
    # the end point of a diverged run is labelled non_finite exactly when its parameters overflowed (a label,
    # never an error); a finite one gets the classifier's verdict
    codes = data["end_point_type"].values[diverged]
    w, a = data["w_final"].values[diverged], data["a_final"].values[diverged]
    finite = np.isfinite(w).all(axis=(1, 2)) & np.isfinite(a).all(axis=(1, 2))
    np.testing.assert_array_equal(codes == labels.code(labels.POINT_TYPE, "non_finite"), ~finite)
    # the loss at the recorded step is what stopped it: non-finite or a million times the start
    loss = data["loss_final"].values[diverged]
    start = data["checkpoint_loss"].values[diverged][:, 0]
    assert (~np.isfinite(loss) | (loss > 1e5 * start)).all(), (loss, start)


def test_diverged_is_recorded_at_the_step_it_happened(blowup_survey: Path) -> None:
    """Stopping one step earlier the same run has not diverged; stopping at the recorded step it has."""
    survey = load_survey(blowup_survey)
    plan = make_plan(survey)
    rows = next(batch for batch in batches(plan, 4) if batch["learning_rate"].iloc[0] == 20.0)
    first = simulate_batch(rows, master_seed=survey.master_seed, padding=padding(survey))
    (runs,) = np.nonzero(first["stop_reason"] == DIVERGED)
    assert runs.size, first["stop_reason"]
    for run in runs:
        step = int(first["steps_taken"][run])
        assert step >= 2, "pick a learning rate that takes more than one step to blow up"
        for max_steps, reason in ((step - 1, int(StopReason.MAX_STEPS)), (step, DIVERGED)):
            shorter = rows.iloc[[run]].assign(max_steps=max_steps)
            again = simulate_batch(shorter, master_seed=survey.master_seed, padding=padding(survey))
            assert (int(again["stop_reason"][0]), int(again["steps_taken"][0])) == (reason, max_steps)


def test_the_classifier_labels_non_finite_points(blowup_survey: Path) -> None:
    """NaN or infinite parameters get the label ``non_finite``; the finite points of the batch are unaffected."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, 3, generator=generator, dtype=torch.float64)
    y = torch.randn(1, 8, 1, generator=generator, dtype=torch.float64)
    w = torch.randn(4, 2, 3, generator=generator, dtype=torch.float64)
    a = torch.randn(4, 2, 1, generator=generator, dtype=torch.float64)
    w[1, 0, 0] = torch.nan
    a[2, 1, 0] = torch.inf
    w[3] = -torch.inf
    result = classify_batch(w, a, x, y, leak=0.0, learning_rate=0.05)
    non_finite = labels.code(labels.POINT_TYPE, "non_finite")
    assert result.point_type.tolist()[1:] == [non_finite] * 3
    alone = classify_batch(w[:1], a[:1], x, y, leak=0.0, learning_rate=0.05)
    assert result.point_type[0] == alone.point_type[0] != non_finite
    assert result.loss[0] == alone.loss[0]
