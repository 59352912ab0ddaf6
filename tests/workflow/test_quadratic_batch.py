"""The quadratic activation end to end through :func:`pipeline.batch.simulate_batch`: sampled data and the
interval population, trained, classified and padded like every other batch."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.batch import run_inputs, run_settings, simulate_batch
from pipeline.globality import GLOBAL_BASIS
from pipeline.stationary import labels
from pipeline.survey import parse_survey
from pipeline.survey.plan import make_plan
from pipeline.workflow.commands.simulate import padding

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SURVEYS = {
    "sampled": {
        "fixed": {"input_dim": 2, "n_samples": 10, "bias": True, "target": "random", "width": 2,
                  "activation": "quadratic", "init_scale": 0.5, "learning_rate": 0.02, "max_steps": 3000},
    },
    "interval": {
        "fixed": {"input_dim": 1, "input_distribution": "interval_population", "bias": True, "target": "affine",
                  "activation": "quadratic", "init_scale": 1.0, "learning_rate": 0.1, "max_steps": 5000},
        "grid": {"width": [1, 2]},
    },
}  # fmt: skip


def _batches(kind: str) -> list[tuple]:
    spec = SURVEYS[kind]
    survey = parse_survey(
        {"schema_version": 1, "master_seed": 5, "seeds": {"data": 2, "init": 3}, "grid": {}, **spec}, name=kind
    )
    plan = make_plan(survey)
    out = []
    for _, rows in plan.groupby("cell"):
        out.append((survey, rows, simulate_batch(rows, master_seed=survey.master_seed, padding=padding(survey))))
    return out


def test_sampled_quadratic_batch_end_points_are_classified_and_minima_survive_brute_force() -> None:
    for survey, rows, record in _batches("sampled"):
        assert record["end_point_type"].shape == (len(rows),)
        assert set(record["global_basis"]) == {GLOBAL_BASIS.index("best_known")}  # random labels: no theorem
        assert not record["end_differentiable"].dtype == object and record["end_differentiable"].all()
        assert (record["end_game_method"] == record["end_game_method"][0]).all() and not record["end_game_used"].any()
        settings = run_settings(rows.iloc[0])
        minima = np.isin(record["end_point_type"], [labels.code(labels.POINT_TYPE, "local_min")])
        stationary = record["end_point_type"] != labels.code(labels.POINT_TYPE, "not_stationary")
        assert stationary.any()
        for index in np.flatnonzero(minima):
            row = rows.iloc[index]
            data = run_inputs(settings, survey.master_seed, int(row.data_seed), int(row.init_seed)).dataset
            w, a = record["end_w"][index], record["end_a"][index]
            change = _brute_force(w, a, data.x, data.y)
            assert change >= -1e-12 * max(float(record["end_loss"][index]), 1e-300)


def _brute_force(w: np.ndarray, a: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Smallest loss change over random perturbations at three radii (quadratic activation, naive loss)."""
    rng = np.random.default_rng(0)

    def loss(w_: np.ndarray, a_: np.ndarray) -> float:
        return 0.5 * float(np.sum(((x @ w_.T) ** 2 @ a_ - y) ** 2)) / x.shape[0]

    base = loss(w, a)
    return min(
        loss(w + r * rng.normal(size=w.shape), a + r * rng.normal(size=a.shape)) - base
        for r in (1e-2, 1e-3, 1e-4)
        for _ in range(300)
    )


def test_interval_quadratic_batch_reaches_zero_loss_or_drifts() -> None:
    results = {int(rows.iloc[0].width): record for _, rows, record in _batches("interval")}
    global_min = labels.code(labels.POINT_TYPE, "global_min")
    spurious = labels.code(labels.POINT_TYPE, "spurious_local_min")
    for record in results.values():
        assert not (record["end_point_type"] == spurious).any()  # CJR: no spurious minimum
    assert (results[2]["end_point_type"] == global_min).any()
    assert set(results[2]["global_basis"]) == {GLOBAL_BASIS.index("realisable_target")}
    # width 1 never attains the affine target (a (w x + b)^2 has a double root); its infimum 0 is approached
    assert not (results[1]["end_point_type"] == global_min).any()
    assert set(results[1]["global_basis"]) == {GLOBAL_BASIS.index("best_known")}


def test_brute_force_reference_sees_the_quadratic_loss() -> None:
    """Sanity check of the helper: the zero network with non-zero labels has nearby descent."""
    x = np.random.default_rng(1).normal(size=(8, 2))
    y = np.random.default_rng(2).normal(size=(8, 1))
    assert _brute_force(np.zeros((2, 2)), np.zeros((2, 1)), x, y) < 0
