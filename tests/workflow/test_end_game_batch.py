"""The end game inside a batch (pipeline.batch): its record, and the minima it certifies against brute force.

Issue 11: every certified local minimum the end game reaches is checked by the independent perturbation
search of ``tests/reference.py`` (not the classifier's own certificate), and so is every certified saddle of
the sample (end points and plateau points): the search must find a decrease at two shrinking radii.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pipeline.batch import run_inputs, run_settings, simulate_batch
from pipeline.end_game import EndGameMethod
from pipeline.stationary import labels
from pipeline.survey import load_survey
from pipeline.survey.plan import make_plan
from pipeline.workflow.commands.simulate import padding
from tests.oracle_points import assert_survives_brute_force
from tests.reference import brute_force_min_change, naive_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MINIMA = [labels.code(labels.POINT_TYPE, name) for name in ("global_min", "spurious_local_min", "local_min")]


@pytest.fixture(scope="module")
def tiny_batches():
    survey = load_survey("surveys/tiny.yaml")
    plan = make_plan(survey)
    records = []
    for _, rows in plan.groupby("cell"):
        torch.set_num_threads(1)
        record = simulate_batch(rows, master_seed=survey.master_seed, padding=padding(survey), device="cpu")
        records.append((rows, record))
    return survey, records


def test_end_game_record_is_consistent(tiny_batches):
    _, records = tiny_batches
    finished = 0
    for _, record in records:
        ran = record["end_game_method"] != int(EndGameMethod.NONE)
        finished += int(ran.sum())
        assert (record["end_game_loss_after"][ran] <= record["end_game_loss_before"][ran]).all()
        assert (record["end_game_gradient_evaluations"][ran] >= 1).all()
        assert np.isnan(record["end_game_distance"][~ran]).all()
        used = record["end_game_used"]
        assert (used <= ran).all()
        np.testing.assert_allclose(record["end_loss"][used], record["end_game_loss_after"][used], rtol=1e-6, atol=1e-30)
    assert finished > 0  # 2,000 steps leave runs unfinished: the end game is exercised


def test_minima_the_end_game_certifies_survive_brute_force(tiny_batches):
    survey, records = tiny_batches
    checked = 0
    for rows, record in records:
        for index, row in enumerate(rows.itertuples()):
            if not (record["end_game_used"][index] and record["end_point_type"][index] in MINIMA):
                continue
            settings = run_settings(rows.iloc[index])
            inputs = run_inputs(settings, survey.master_seed, int(row.data_seed), int(row.init_seed))
            x, y = inputs.dataset.x, inputs.dataset.y
            width, d, k = settings["width"], x.shape[1], y.shape[1]
            w, a = record["end_w"][index, :width, :d], record["end_a"][index, :width, :k]
            stationarity = labels.STATIONARITY[record["end_stationarity"][index]]
            report = SimpleNamespace(w=w, a=a, stationarity=stationarity)
            assert naive_loss(w, a, x, y, 0.0) == pytest.approx(record["end_loss"][index], rel=1e-9, abs=1e-30)
            ok, result, tol = assert_survives_brute_force(report, x, y, 0.0, n_random=300, n_adversarial=2,
                                                          adversarial_steps=30)  # fmt: skip
            assert ok, (row.run, result.min_change, tol)
            checked += 1
    assert checked >= 4, checked


@pytest.mark.slow
def test_end_game_agrees_with_long_gradient_descent(tiny_batches):
    """Issue 11 validation in miniature: the tiny survey's runs, continued 25x by plain gradient descent."""
    from pipeline.end_game import EndGameOptions
    from pipeline.resolution import LIMIT, resolve_runs

    survey, records = tiny_batches

    def limits(record):
        limit, _, _ = resolve_runs(
            record["end_point_type"], record["end_strictness"], record["end_has_witness"], record["stop_reason"],
            record["zero_loss_approach"], record["plateau_is_final"].any(axis=-1),
        )  # fmt: skip
        return np.asarray(LIMIT)[limit]

    short, long = [], []
    for rows, record in records:
        long_rows = rows.assign(max_steps=rows["max_steps"] * 25)
        long_record = simulate_batch(long_rows, master_seed=survey.master_seed, padding=padding(survey), device="cpu",
                                     classify_plateaus=False, end_game=EndGameOptions(enabled=False))  # fmt: skip
        short.extend(limits(record))
        long.extend(limits(long_record))
    short, long = np.array(short), np.array(long)
    both = (short != "unresolved") & (long != "unresolved")
    assert both.sum() >= 8, (short, long)
    assert (short[both] == long[both]).mean() >= 0.9, list(zip(short, long, strict=True))


def test_saddles_in_the_sample_show_descent_to_brute_force(tiny_batches):
    """Every point of the sample certified a saddle (end points and plateaus) has descent arbitrarily close by:
    the independent perturbation search of ``tests/reference.py`` finds a lower loss within shrinking radii."""
    survey, records = tiny_batches
    saddle = labels.code(labels.POINT_TYPE, "saddle")
    checked = 0
    for rows, record in records:
        for index, row in enumerate(rows.itertuples()):
            settings = run_settings(rows.iloc[index])
            inputs = run_inputs(settings, survey.master_seed, int(row.data_seed), int(row.init_seed))
            x, y = inputs.dataset.x, inputs.dataset.y
            width, d, k = settings["width"], x.shape[1], y.shape[1]
            points = [(record["end_w"][index], record["end_a"][index])] * int(record["end_point_type"][index] == saddle)
            points += [
                (record["plateau_w"][index, slot], record["plateau_a"][index, slot])
                for slot in np.flatnonzero(record["plateau_point_type"][index] == saddle)
            ]
            for w, a in points:
                w, a = w[:width, :d], a[:width, :k]
                loss = naive_loss(w, a, x, y, 0.0)
                for scale in (1e-2, 1e-3):  # a decrease at every scale, not one lucky jump
                    radius = scale * (1 + np.linalg.norm(w, axis=1))
                    a_radius = scale * (1 + np.linalg.norm(a, axis=1))
                    result = brute_force_min_change(
                        w, a, x, y, 0.0, radius=radius, a_radius=a_radius, rng=np.random.default_rng(checked),
                        n_random=300, n_adversarial=2, adversarial_steps=30,
                    )  # fmt: skip
                    assert result.min_change < -1e-12 * (1 + loss), (row.run, scale, result.min_change, loss)
                checked += 1
    assert checked >= 4, checked
