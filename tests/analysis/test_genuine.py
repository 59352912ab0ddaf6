"""Genuine cells of a single ReLU neuron on 1-D data (theory.md section 10).

analysis.genuine (the cell criterion, closed form, Monte Carlo) and analysis.genuine_end_points (survey end
points).

Statistical tolerances are five standard errors computed from the sample sizes used here.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from analysis.genuine import (
    THEORY_MIDDLE_GAP,
    _closed_form_batch,
    _genuine_batch,
    active_mask,
    cell_least_squares,
    closed_form_probability,
    genuine_rate_table,
    is_genuine,
)
from analysis.genuine_end_points import check_end_points, end_point_cells
from pipeline.batch import run_inputs
from pipeline.survey import Survey, parse_survey
from pipeline.survey.plan import make_plan, run_settings

Z = 5.0  # tolerance in standard errors
MEANINGS = "global_min spurious_local_min local_min saddle undetermined not_stationary"
LOCAL_MIN = 2


def _sorted_normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.sort(rng.standard_normal(n))


@pytest.mark.parametrize("orientation", ["right", "left"])
def test_conditional_formula_against_label_monte_carlo(orientation: str) -> None:
    """For one fixed x, the Cauchy formula matches the genuine rate over 2e5 pure-noise label draws."""
    rng = np.random.default_rng(20261122)
    x = _sorted_normal(rng, 10)
    k = 4 if orientation == "right" else 6
    p = closed_form_probability(x, k, orientation)
    assert 0.01 < p < 0.2  # a non-trivial cell, like theory's 0.0249 example
    draws = 200_000
    y = rng.standard_normal((draws, len(x))) * 3.0  # sigma does not matter
    active = np.broadcast_to(active_mask(len(x), k, orientation), y.shape)
    rate = _genuine_batch(np.broadcast_to(x, y.shape), y, active).mean()
    assert abs(rate - p) < Z * np.sqrt(p * (1 - p) / draws)


def test_middle_gap_average_matches_theory() -> None:
    """n = 6, 12, 24: measured rate and averaged closed form against theory.md 10's values."""
    n_datasets = 100_000
    table = genuine_rate_table([6, 12, 24], n_datasets, np.random.default_rng(7), cell="middle")
    rounding = 5e-5  # theory quotes 4 decimals
    for row in table.itertuples():
        theory = THEORY_MIDDLE_GAP[row.n]
        assert row.theory == theory
        assert abs(row.rate - theory) < Z * np.sqrt(theory * (1 - theory) / n_datasets) + rounding
        assert abs(row.closed_form - theory) < Z * row.closed_form_se + rounding
        assert row.ci_low < row.rate < row.ci_high


def test_all_cells_rate_matches_closed_form() -> None:
    """Uniformly drawn interior cells: the measured rate agrees with the paired closed-form mean."""
    n_datasets = 40_000
    table = genuine_rate_table([5, 10], n_datasets, np.random.default_rng(3), cell="all")
    for row in table.itertuples():
        assert np.isnan(row.theory)
        se = np.sqrt(row.closed_form * (1 - row.closed_form) / n_datasets)
        assert abs(row.rate - row.closed_form) < Z * se


def test_batch_functions_agree_with_scalar_ones() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(3, 9))
        x, y = _sorted_normal(rng, n), rng.standard_normal(n)
        k = int(rng.integers(1, n))
        orientation = "right" if rng.random() < 0.5 else "left"
        active = active_mask(n, k, orientation)[None, :]
        assert _genuine_batch(x[None, :], y[None, :], active)[0] == is_genuine(x, y, k, orientation)
        batch = _closed_form_batch(x[None, :], np.array([k]), active)[0]
        assert batch == pytest.approx(closed_form_probability(x, k, orientation), abs=1e-12)


def test_cell_least_squares_fits_active_part_only() -> None:
    rng = np.random.default_rng(5)
    x, y = _sorted_normal(rng, 7), rng.standard_normal(7)
    fit = cell_least_squares(x, y, 3, "right")
    slope, intercept = np.polyfit(x[3:], y[3:], 1)
    np.testing.assert_allclose(fit.u, [slope, intercept], atol=1e-12)
    np.testing.assert_array_equal(fit.prediction[:3], 0.0)
    assert fit.unique
    assert fit.loss == pytest.approx(np.sum((fit.prediction - y) ** 2) / 14)
    assert not cell_least_squares(x, y, 6, "right").unique  # a single active point
    np.testing.assert_array_equal(cell_least_squares(x, y, 7, "right").u, 0.0)
    with pytest.raises(ValueError, match="sorted"):
        cell_least_squares(x[::-1], y, 3)


def _profile_loss(x: np.ndarray, y: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """min over a of sum (a relu(w x + b) - y)^2 for each unit direction (w, b): rows of ``directions``."""
    z = directions[:, :1] * x[None, :] + directions[:, 1:]
    h = np.where(z > 1e-12, z, 0.0)  # a point on the kink (up to rounding) is inactive
    hh, hy = (h * h).sum(axis=1), h @ y
    explained = np.divide(hy**2, hh, out=np.zeros_like(hh), where=hh > 0)
    return y @ y - explained


def _pattern(x: np.ndarray, directions: np.ndarray) -> np.ndarray:
    z = directions[:, :1] * x[None, :] + directions[:, 1:]
    return (z > 0) @ (1 << np.arange(len(x)))


def _unit(theta: np.ndarray) -> np.ndarray:
    return np.column_stack([np.cos(theta), np.sin(theta)])


def _brute_force_genuine(x: np.ndarray, y: np.ndarray, k: int, orientation: str) -> bool:
    """Dense search over the directions of (w, b), a profiled out exactly (the loss is homogeneous).

    The cell is open; its closure adds the two kink directions bounding it. The infimum over the closure
    is attained inside iff the best interior grid value is not above the best boundary value.
    """
    code = int(active_mask(len(x), k, orientation) @ (1 << np.arange(len(x))))
    grid = _unit(np.linspace(0.0, 2 * np.pi, 100_000, endpoint=False))
    interior = _profile_loss(x, y, grid[_pattern(x, grid) == code])
    kinks = np.concatenate([np.arctan2(-x, 1.0), np.arctan2(x, -1.0)])
    on_boundary = [t for t in kinks if code in _pattern(x, _unit(np.array([t - 1e-9, t + 1e-9])))]
    boundary = _profile_loss(x, y, _unit(np.array(on_boundary)))
    assert interior.size > 0 and boundary.size == 2
    return bool(interior.min() <= boundary.min() + 1e-10)


def test_is_genuine_against_brute_force() -> None:
    rng = np.random.default_rng(2026)
    outcomes, skipped = [], 0
    for _ in range(12):
        n = int(rng.integers(4, 7))
        x, y = _sorted_normal(rng, n), rng.standard_normal(n)
        for k in range(n + 1):
            for orientation in ("right", "left"):
                fit = cell_least_squares(x, y, k, orientation)
                edges = [x[i] for i in (k - 1, k) if 0 <= i < n]
                if fit.unique and fit.u[0] != 0 and min(abs(-fit.u[1] / fit.u[0] - e) for e in edges) < 1e-3:
                    skipped += 1  # root on a gap edge: the grid cannot decide
                    continue
                expected = _brute_force_genuine(x, y, k, orientation)
                assert is_genuine(x, y, k, orientation) == expected, (x, y, k, orientation)
                outcomes.append(expected)
    assert skipped <= 2
    assert 20 <= sum(outcomes) <= len(outcomes) - 20  # both answers are exercised


def test_mirrored_orientation_is_symmetric() -> None:
    """Left cell k on (x, y) is the right cell n - k on (-x reversed, y reversed)."""
    rng = np.random.default_rng(99)
    for _ in range(50):
        n = int(rng.integers(3, 9))
        x, y = _sorted_normal(rng, n), rng.standard_normal(n)
        mx, my = -x[::-1], y[::-1]
        for k in range(n + 1):
            left, right = cell_least_squares(x, y, k, "left"), cell_least_squares(mx, my, n - k, "right")
            np.testing.assert_allclose(left.u, [-right.u[0], right.u[1]], atol=1e-10)
            assert left.loss == pytest.approx(right.loss)
            assert is_genuine(x, y, k, "left") == is_genuine(mx, my, n - k, "right")
            assert closed_form_probability(x, k, "left") == pytest.approx(closed_form_probability(mx, n - k, "right"))
        # the all-active (and the all-inactive) cell has the same answer whichever orientation names it
        assert is_genuine(x, y, 0, "right") == is_genuine(x, y, n, "left")
        assert closed_form_probability(x, 0, "right") == pytest.approx(closed_form_probability(x, n, "left"))
        assert is_genuine(x, y, n, "right") and is_genuine(x, y, 0, "left")


def test_rejects_bad_arguments() -> None:
    x = np.array([-1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="gap index"):
        is_genuine(x, np.zeros(3), 4)
    with pytest.raises(ValueError, match="orientation"):
        closed_form_probability(x, 1, "up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cell"):
        genuine_rate_table([6], 10, np.random.default_rng(0), cell="edge")  # type: ignore[arg-type]


def _noise_survey() -> Survey:
    fixed = {"input_dim": 1, "n_samples": 8, "input_distribution": "gaussian", "bias": True, "target": "random",
             "width": 1, "init_scale": 1.0}  # fmt: skip
    data = {"schema_version": 1, "master_seed": 3, "seeds": {"data": 6, "init": 1}, "fixed": fixed}
    return parse_survey(data, "noise")


def _cells(n: int) -> list[tuple[int, str]]:
    return [(k, o) for k in range(1, n) for o in ("right", "left") if active_mask(n, k, o).sum() >= 2]


def test_check_end_points_on_a_hand_made_store() -> None:
    """Runs end at the LS minimum of a genuine cell (odd runs, where one exists) or inside a fake cell.

    Every end point is labelled a differentiable local minimum: the fake ones must be counted as not genuine.
    """
    survey = _noise_survey()
    plan = make_plan(survey)
    w, a, expected = np.zeros((len(plan), 1, 2)), np.zeros((len(plan), 1, 1)), []
    for run in range(len(plan)):
        row = plan.loc[run]
        data = run_inputs(run_settings(row), survey.master_seed, int(row["data_seed"]), int(row["init_seed"])).dataset
        order = np.argsort(data.x[:, 0])
        x, y = data.x[order, 0], data.y[order, 0]
        want = run % 2 == 1 and any(is_genuine(x, y, *c) for c in _cells(len(x)))
        k, orientation = next(c for c in _cells(len(x)) if is_genuine(x, y, *c) == want)
        u = cell_least_squares(x, y, k, orientation).u
        if want:  # a = eps ||u||, w = eps u / ||u|| with eps making S the active set
            eps = 1.0 if orientation == "right" else -1.0
            eps *= np.sign(u[0])
            w[run, 0], a[run, 0, 0] = eps * u / np.linalg.norm(u), eps * np.linalg.norm(u)
        else:  # kink mid-gap, pointing the cell's way
            sign = 1.0 if orientation == "right" else -1.0
            w[run, 0], a[run, 0, 0] = sign * np.array([1.0, -(x[k - 1] + x[k]) / 2]), sign * u[0]
        expected.append((k, orientation, want))
    dataset = xr.Dataset(
        {
            "end_w": (("run", "neuron", "input"), w),
            "end_a": (("run", "neuron", "output"), a),
            "end_point_type": ("run", np.full(len(plan), LOCAL_MIN, dtype=np.int8), {"flag_meanings": MEANINGS}),
            "end_differentiable": ("run", np.ones(len(plan), dtype=bool)),
        },
        coords={"run": np.arange(len(plan))},
        attrs={"survey": survey.name, "resolved_survey": survey.resolved_yaml()},
    )
    cells = end_point_cells(dataset)
    assert list(zip(cells["k"], cells["orientation"], cells["genuine"], strict=True)) == expected
    assert (cells.loc[cells["genuine"], "prediction_gap"] < 1e-10).all()
    counts = check_end_points(dataset)
    n_genuine = sum(want for *_, want in expected)
    assert 0 < n_genuine < len(plan)
    assert counts == {"eligible": len(plan), "differentiable_minima": len(plan), "dead": 0, "genuine": n_genuine,
                      "not_genuine": len(plan) - n_genuine, "other_in_genuine": 0}  # fmt: skip
