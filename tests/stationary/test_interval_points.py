"""Oracle tests of the interval classifier (pipeline.stationary.interval_points, theory.md section 9).

Setting (CJR, theory 9.1): ``N(x) = c + sum_j a_j rho(w_j x + b_j)`` on ``x ~ U[low, high]``, an
affine target ``f(x) = kappa x + beta``, the profiled loss ``P = min_c 1/(2 (high - low)) int (N - f)^2``.
The oracles are written here: the loss by ``scipy.integrate.quad`` (with the breakpoints as break
points; the bias ``c`` minimised in closed form ``c* = mean(f - N_0)``), the hand-built points of
theory 9.3 with their known types, and a brute-force random-perturbation search for a loss decrease
around every point the classifier calls a minimum.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import scipy.integrate
import torch
from numpy.typing import ArrayLike

from pipeline.losses.interval_population import IntervalTarget, interval_loss, target_scale
from pipeline.problems import run_interval_gradient_descent
from pipeline.stationary import labels
from pipeline.stationary.api import BatchClassification
from pipeline.stationary.interval_points import classify_interval_batch

DTYPE = torch.float64
KAPPA, BETA = 1.5, 0.3
INTERVALS = ((-1.0, 1.0), (0.0, 2.0))
QUAD = {"epsabs": 1e-14, "epsrel": 1e-12, "limit": 200}


# ----------------------------------------------------------------------------------------------
# Independent quad oracle
# ----------------------------------------------------------------------------------------------


def oracle_loss(
    w_in: ArrayLike, a_in: ArrayLike, low: float, high: float, leak: float, kappa: float = KAPPA, beta: float = BETA
) -> float:
    """``P(w, a)`` for a scalar output: quad of ``e = N_0 - f`` and of ``(e - mean e)^2``."""
    w, a = np.asarray(w_in, dtype=np.float64), np.asarray(a_in, dtype=np.float64).reshape(-1)
    kinks = sorted({-b / s for s, b in w if s != 0.0 and low < -b / s < high})

    def error(x: float) -> float:
        z = w[:, 0] * x + w[:, 1]
        return float(a @ np.where(z > 0.0, z, leak * z)) - (kappa * x + beta)

    def integral(g: Callable[[float], float]) -> float:
        return scipy.integrate.quad(g, low, high, points=kinks or None, **QUAD)[0]

    mean = integral(error) / (high - low)  # = -c*
    return integral(lambda x: (error(x) - mean) ** 2) / (2.0 * (high - low))


def dead_loss(low: float, high: float, kappa: float = KAPPA) -> float:
    """Theory 9.3 in our normalisation: a constant network leaves ``e = -kappa (x - mid)``, so
    ``P = kappa^2 (high - low)^2 / 24`` (CJR's ``kappa^2 (b - a)^3 / 12`` divided by ``2 (b - a)``)."""
    return kappa**2 * (high - low) ** 2 / 24.0


# ----------------------------------------------------------------------------------------------
# Calling the classifier
# ----------------------------------------------------------------------------------------------


def target_of(low: float, high: float, kappa: float = KAPPA, beta: float = BETA) -> IntervalTarget:
    return IntervalTarget(low, high, torch.tensor([[kappa]], dtype=DTYPE), torch.tensor([[beta]], dtype=DTYPE))


def classify(
    w: list[list[float]] | np.ndarray,
    a: list[list[float]] | np.ndarray,
    low: float,
    high: float,
    leak: float,
    **kwargs: float,
) -> BatchClassification:
    """Classify one point ``w`` (m, 2), ``a`` (m, 1)."""
    w_t = torch.tensor(np.asarray(w, dtype=np.float64)[None])
    a_t = torch.tensor(np.asarray(a, dtype=np.float64)[None])
    return classify_interval_batch(w_t, a_t, target_of(low, high), leak=leak, **kwargs)


def point_type(result: BatchClassification, run: int = 0) -> str:
    return labels.POINT_TYPE[result.point_type[run]]


def roles(result: BatchClassification, run: int = 0) -> list[str]:
    return [labels.ROLE[code] for code in result.roles[run]]


# ----------------------------------------------------------------------------------------------
# Hand-built points of theory 9.3 (each a function of the interval)
# ----------------------------------------------------------------------------------------------


def strictly_dead(low: float, high: float) -> tuple[list[list[float]], list[list[float]]]:
    """ReLU negative on the whole closed interval (breakpoint beyond ``high``, increasing)."""
    return [[1.0, -(high + 0.5)]], [[0.7]]


def strictly_dead_decreasing(low: float, high: float) -> tuple[list[list[float]], list[list[float]]]:
    return [[-2.0, 2.0 * (low - 0.25)]], [[-0.4]]


def semi_at_high(a_j: float) -> Callable[[float, float], tuple[list[list[float]], list[list[float]]]]:
    """Breakpoint exactly at ``high``, inactive inside (``w_j > 0``)."""
    return lambda low, high: ([[1.0, -high]], [[a_j]])


def semi_at_low(a_j: float) -> Callable[[float, float], tuple[list[list[float]], list[list[float]]]]:
    """Breakpoint exactly at ``low``, inactive inside (``w_j < 0``)."""
    return lambda low, high: ([[-1.5, 1.5 * low]], [[a_j]])


def fully_active_fit(low: float, high: float) -> tuple[list[list[float]], list[list[float]]]:
    """One ReLU active on the whole interval with ``a w = kappa``: ``N = f`` with ``c`` optimal."""
    return [[2.0, -2.0 * (low - 1.0)]], [[KAPPA / 2.0]]


def decreasing_active_fit(low: float, high: float) -> tuple[list[list[float]], list[list[float]]]:
    """Active on the whole interval with a negative input weight (breakpoint beyond ``high``)."""
    return [[-1.0, high + 0.5]], [[-KAPPA]]


def combine(*parts: Callable[[float, float], tuple[list, list]]) -> Callable[[float, float], tuple[list, list]]:
    """Neurons of several hand-built points side by side."""

    def build(low: float, high: float) -> tuple[list, list]:
        w: list = []
        a: list = []
        for part in parts:
            w_p, a_p = part(low, high)
            w, a = w + w_p, a + a_p
        return w, a

    return build


def degenerate(b_j: float) -> Callable[[float, float], tuple[list, list]]:
    """Constant neuron ``w_j = 0``: active (degenerate) for ``b_j > 0``; zero output ``a_j = 0``."""
    return lambda low, high: ([[0.0, b_j]], [[0.0]])


def zero_neuron(low: float, high: float) -> tuple[list, list]:
    return [[0.0, 0.0]], [[0.0]]


# (name, builder, leak, point type, strictness or None (unchecked), roles)
HAND_BUILT = [
    ("strictly_dead", strictly_dead, 0.0, "spurious_local_min", None, ["dead"]),
    ("strictly_dead_decreasing", strictly_dead_decreasing, 0.0, "spurious_local_min", None, ["dead"]),
    ("two_dead", combine(strictly_dead, strictly_dead_decreasing), 0.0, "spurious_local_min", None, ["dead", "dead"]),
    ("semi_high_away", semi_at_high(-0.7), 0.0, "spurious_local_min", None, ["dead_touching"]),
    ("semi_low_away", semi_at_low(0.7), 0.0, "spurious_local_min", None, ["dead_touching"]),
    (
        "dead_and_both_ends_away",
        combine(strictly_dead, semi_at_high(-0.2), semi_at_low(1.1)),
        0.0,
        "spurious_local_min",
        None,
        ["dead", "dead_touching", "dead_touching"],
    ),
    ("semi_high_wrong_way", semi_at_high(0.7), 0.0, "saddle", "strict", ["dead_touching"]),
    ("semi_low_wrong_way", semi_at_low(-0.7), 0.0, "saddle", "strict", ["dead_touching"]),
    (
        "away_and_wrong_way",
        combine(semi_at_high(-0.7), semi_at_low(-0.3)),
        0.0,
        "saddle",
        "strict",
        ["dead_touching", "dead_touching"],
    ),
    ("semi_high_zero_output", semi_at_high(0.0), 0.0, "saddle", "non_strict", ["dead_touching"]),
    ("semi_low_zero_output", semi_at_low(0.0), 0.0, "saddle", "non_strict", ["dead_touching"]),
    ("degenerate_active_zero_output", degenerate(0.8), 0.0, "saddle", None, ["zero_output"]),
    ("dead_and_degenerate", combine(strictly_dead, degenerate(0.5)), 0.0, "saddle", None, ["dead", "zero_output"]),
    ("zero_neuron", zero_neuron, 0.0, "saddle", None, ["zero"]),
    ("global_fit", fully_active_fit, 0.0, "global_min", None, ["active_smooth"]),
    ("global_fit_decreasing", decreasing_active_fit, 0.0, "global_min", None, ["active_smooth"]),
    (
        "global_fit_with_dead_and_zero",
        combine(fully_active_fit, strictly_dead, zero_neuron),
        0.0,
        "global_min",
        None,
        ["active_smooth", "dead", "zero"],
    ),
    # leaky ReLU: no neuron is dead, so constant-realisation critical points need w_j = 0 (theory 9.3)
    ("leaky_zero_neuron", zero_neuron, 0.1, "saddle", None, ["zero"]),
    ("leaky_degenerate_positive", degenerate(0.8), 0.1, "saddle", None, ["zero_output"]),
    ("leaky_degenerate_negative", degenerate(-0.8), 0.1, "saddle", None, ["zero_output"]),
    ("leaky_global_fit", fully_active_fit, 0.1, "global_min", None, ["active_smooth"]),
    (
        "leaky_global_on_negative_branch",
        lambda low, high: ([[1.0, -(high + 1.0)]], [[KAPPA / 0.1]]),
        0.1,
        "global_min",
        None,
        ["active_smooth"],
    ),
    ("leaky_global_fit_plus_zero", combine(fully_active_fit, zero_neuron), 0.3, "global_min", None, None),
]
HAND_IDS = [case[0] for case in HAND_BUILT]


def test_dead_loss_closed_form_by_quad() -> None:
    """Oracle: quad of the constant network; checks the normalisation ``kappa^2 (b - a)^2 / 24``."""
    for low, high in (*INTERVALS, (-0.5, 2.5)):
        assert oracle_loss([[1.0, -(high + 1.0)]], [[0.3]], low, high, 0.0) == pytest.approx(
            dead_loss(low, high), rel=1e-12
        )


@pytest.mark.parametrize(("low", "high"), INTERVALS)
@pytest.mark.parametrize(
    ("name", "build", "leak", "expected", "strictness", "expected_roles"), HAND_BUILT, ids=HAND_IDS
)
def test_hand_built_points_have_their_known_type(
    name: str,
    build: Callable[[float, float], tuple[list, list]],
    leak: float,
    expected: str,
    strictness: str | None,
    expected_roles: list[str] | None,
    low: float,
    high: float,
) -> None:
    """Oracle: theory 9.3 (types), the quad loss (values), and, at saddles, that the witness lowers
    the quad loss."""
    w, a = build(low, high)
    result = classify(w, a, low, high, leak)
    got = point_type(result)
    assert got == expected, (name, got)
    assert labels.STATIONARITY[result.stationarity[0]] == "stationary"
    loss = oracle_loss(w, a, low, high, leak)
    assert result.loss[0] == pytest.approx(loss, rel=1e-10, abs=1e-14)
    if expected_roles is not None:
        assert roles(result) == expected_roles
    if expected == "spurious_local_min":
        assert loss == pytest.approx(dead_loss(low, high), rel=1e-10)
        assert labels.IS_LOCAL_MIN[result.is_local_min[0]] == "true"
        assert not result.has_witness[0]
    elif expected == "global_min":
        assert loss < 1e-20
        assert labels.IS_LOCAL_MIN[result.is_local_min[0]] == "true"
    else:
        assert labels.IS_LOCAL_MIN[result.is_local_min[0]] == "false"
        assert result.has_witness[0]
        if strictness is not None:
            assert labels.STRICTNESS[result.strictness[0]] == strictness
        # the witness is a perturbation of the classified point that lowers the true loss
        moved = oracle_loss(result.w[0] + result.witness_w[0], result.a[0] + result.witness_a[0], low, high, leak)
        base = oracle_loss(result.w[0], result.a[0], low, high, leak)
        assert moved < base - 1e-12 * base
        assert base - moved == pytest.approx(result.witness_decrease[0], rel=1e-6)
    assert not result.tolerance_sensitive[0]


@pytest.mark.parametrize(("low", "high"), INTERVALS)
def test_zero_neuron_with_nonzero_output_is_not_a_minimum(low: float, high: float) -> None:
    """Oracle: theory 9.3 (``w_j = b_j = 0`` gives a descent direction) and the quad loss: activating
    the neuron on the end where ``a_j e > 0`` is worse, on the other end better, at first order."""
    a_j = 0.7
    result = classify([[0.0, 0.0]], [[a_j]], low, high, 0.0)
    assert point_type(result) in {"saddle", "not_stationary"}
    assert labels.IS_LOCAL_MIN[result.is_local_min[0]] == "false"
    base = oracle_loss([[0.0, 0.0]], [[a_j]], low, high, 0.0)
    # e = -kappa (x - mid) < 0 near high: with a_j > 0 a neuron active near high lowers the loss
    t = 1e-3
    moved = oracle_loss([[t, -t * (high - 0.5 * (high - low))]], [[a_j]], low, high, 0.0)
    assert moved < base - 1e-6 * t


@pytest.mark.parametrize(("low", "high"), INTERVALS)
@pytest.mark.parametrize(
    "build",
    [strictly_dead, semi_at_high(-0.7), semi_at_low(0.7), semi_at_high(0.0)],
    ids=["dead", "semi_high_away", "semi_low_away", "semi_zero_output"],
)
def test_leaky_versions_of_relu_minima_are_not_critical(
    build: Callable[[float, float], tuple[list, list]], low: float, high: float
) -> None:
    """Oracle: theory 9.2-9.3 (no neuron of a leaky ReLU is dead) and a central difference of the quad
    loss in ``a_j``: the neuron is the affine ``leak a_j (w_j x + b_j)`` on the interval, so the centred
    residual is ``r = (leak a_j w_j - kappa) (x - mid)`` and ``dP/da_j = leak w_j mean(r x) != 0``."""
    leak = 0.1
    w, a = build(low, high)
    result = classify(w, a, low, high, leak)
    assert point_type(result) == "not_stationary"
    h = 1e-5
    a_plus, a_minus = np.array(a) + h, np.array(a) - h
    slope_in_a = (oracle_loss(w, a_plus, low, high, leak) - oracle_loss(w, a_minus, low, high, leak)) / (2 * h)
    s_j = w[0][0]
    expected = leak * s_j * (leak * a[0][0] * s_j - KAPPA) * (high - low) ** 2 / 12.0  # var(x) = (b - a)^2 / 12
    assert abs(expected) > 1e-3
    assert slope_in_a == pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------------------------------------------
# Invariances
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.5, 3.0])
@pytest.mark.parametrize(
    ("name", "build", "leak", "expected", "strictness", "expected_roles"), HAND_BUILT, ids=HAND_IDS
)
def test_rescaling_and_permuting_neurons_keep_the_type(
    name: str,
    build: Callable[[float, float], tuple[list, list]],
    leak: float,
    expected: str,
    strictness: str | None,
    expected_roles: list[str] | None,
    factor: float,
) -> None:
    """Oracle: ``(w_j, a_j) -> (c w_j, a_j / c)`` (c > 0) and permutations leave the network unchanged."""
    low, high = INTERVALS[1]
    w, a = (np.array(v, dtype=np.float64) for v in build(low, high))
    width = w.shape[0]
    scales = factor ** np.arange(1, width + 1)  # a different factor per neuron
    order = np.roll(np.arange(width), 1)
    w_new, a_new = (w * scales[:, None])[order], (a / scales[:, None])[order]
    original = classify(w, a, low, high, leak)
    moved = classify(w_new, a_new, low, high, leak)
    assert point_type(moved) == point_type(original) == expected
    assert roles(moved) == [roles(original)[j] for j in order]
    assert labels.STRICTNESS[moved.strictness[0]] == labels.STRICTNESS[original.strictness[0]]


def test_batch_classification_equals_single_classification() -> None:
    """Oracle: runs are independent; a batch of hand-built points gives each its own label."""
    low, high = INTERVALS[0]
    builders = [strictly_dead, semi_at_high(0.7), degenerate(0.8), fully_active_fit, semi_at_high(0.0)]
    points = [build(low, high) for build in builders]
    w = torch.tensor(np.array([p[0] for p in points], dtype=np.float64))
    a = torch.tensor(np.array([p[1] for p in points], dtype=np.float64))
    batch = classify_interval_batch(w, a, target_of(low, high), leak=0.0)
    singles = [point_type(classify(p[0], p[1], low, high, 0.0)) for p in points]
    assert [point_type(batch, run) for run in range(len(points))] == singles
    assert singles == ["spurious_local_min", "saddle", "saddle", "global_min", "saddle"]


def test_non_finite_points_are_labelled_not_classified() -> None:
    """Oracle: the label table (``non_finite`` for NaN parameters)."""
    result = classify([[np.nan, 1.0]], [[0.5]], -1.0, 1.0, 0.0)
    assert point_type(result) == "non_finite"


# ----------------------------------------------------------------------------------------------
# Tolerance sensitivity
# ----------------------------------------------------------------------------------------------

GAP = 3e-6  # between 0.1 and 10 times BOUNDARY_TOL = 1e-6 (fraction of high - low)


@pytest.mark.parametrize(("low", "high"), INTERVALS)
@pytest.mark.parametrize(
    ("where", "a_j", "snapped_type"),
    [
        ("inside", -0.7, "spurious_local_min"),  # a sliver inside, pointing away: snapped it is a minimum
        ("inside", 0.7, "saddle"),  # pointing the wrong way
        ("outside", 0.7, "saddle"),  # strictly dead (a minimum) unless snapped onto the end (a saddle)
    ],
)
def test_breakpoint_near_an_end_is_tolerance_sensitive(
    low: float, high: float, where: str, a_j: float, snapped_type: str
) -> None:
    """Oracle: theory 9.3. At distance ``3e-6 (high - low)`` from ``high`` the label depends on
    whether the breakpoint is snapped onto the end: with 10x the tolerance it is the semi-inactive
    type of the hand-built points, with 0.1x it is not."""
    length = high - low
    t = high - GAP * length if where == "inside" else high + GAP * length
    w, a = [[1.0, -t]], [[a_j]]
    result = classify(w, a, low, high, 0.0)
    assert result.tolerance_sensitive[0]
    wide = classify(w, a, low, high, 0.0, boundary_tolerance_factor=10.0)
    narrow = classify(w, a, low, high, 0.0, boundary_tolerance_factor=0.1)
    assert point_type(wide) == snapped_type
    assert roles(wide) == ["dead_touching"]
    assert point_type(narrow) != snapped_type
    assert roles(narrow) == (["active_kinked"] if where == "inside" else ["dead"])


@pytest.mark.parametrize(("low", "high"), INTERVALS)
@pytest.mark.parametrize(
    "build",
    [strictly_dead, semi_at_high(-0.7), semi_at_low(-0.7), fully_active_fit, degenerate(0.8)],
    ids=["dead", "semi_away", "semi_wrong", "global", "degenerate"],
)
def test_points_far_from_any_end_or_exactly_on_one_are_not_sensitive(
    build: Callable[[float, float], tuple[list, list]], low: float, high: float
) -> None:
    """Oracle: breakpoints farther than 10x the tolerance from the ends, or exactly on one, snap the
    same way at every tolerance, so the type cannot change."""
    w, a = build(low, high)
    assert not classify(w, a, low, high, 0.0).tolerance_sensitive[0]


# ----------------------------------------------------------------------------------------------
# Brute force at gradient-descent end points
# ----------------------------------------------------------------------------------------------

RADII = (1e-2, 1e-3, 1e-4, 1e-5)
BRUTE_REL_TOL = 1e-10


def dead_radius(w: np.ndarray, low: float, high: float) -> float:
    """Radius within which no strictly dead neuron can turn on: ``min_j margin_j / s_x`` with
    ``margin_j = -max(z_j(low), z_j(high))`` and ``|dz_j(E)| <= ||d(w_j, b_j)|| sqrt(E^2 + 1)``.

    A strictly dead neuron whose breakpoint lies just outside the interval is a local minimum only in
    this neighbourhood: a larger step can activate it on the wrong side (theory 9.3)."""
    at_ends = np.maximum(w[:, 0] * low + w[:, 1], w[:, 0] * high + w[:, 1])
    margins = -at_ends[at_ends < 0.0]
    s_x = np.sqrt(max(low**2, high**2) + 1.0)
    return float(margins.min() / s_x) if margins.size else np.inf


def perturbation_min_change(
    w: np.ndarray,
    a: np.ndarray,
    target: IntervalTarget,
    leak: float,
    rng: np.random.Generator,
    n_random: int = 300,
    max_radius: float = np.inf,
) -> float:
    """Smallest ``P(theta + d) - P(theta)`` over random directions and the +-coordinate directions at
    radii ``RADII`` times the parameter norm, each capped at ``max_radius`` (``interval_loss`` on one
    batch of perturbed copies)."""
    theta = np.concatenate([w.ravel(), a.ravel()])
    size = theta.size
    directions = rng.normal(size=(n_random, size))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    directions = np.concatenate([directions, np.eye(size), -np.eye(size)])
    norm = max(float(np.linalg.norm(theta)), 1.0)
    steps = np.concatenate([min(radius * norm, max_radius) * directions for radius in RADII])
    moved = theta[None] + steps
    n_w = w.size
    moved_w = torch.tensor(moved[:, :n_w].reshape(-1, *w.shape))
    moved_a = torch.tensor(moved[:, n_w:].reshape(-1, *a.shape))
    loss = interval_loss(moved_w, moved_a, target, leak).numpy()
    base = float(interval_loss(torch.tensor(w[None]), torch.tensor(a[None]), target, leak)[0])
    return float(loss.min() - base)


def descend_and_classify(
    leak: float, width: int, n_runs: int, seed: int, max_steps: int
) -> tuple[BatchClassification, IntervalTarget, np.ndarray, tuple[float, float]]:
    """Gradient descent from random initialisations on random affine targets (one per run)."""
    gen = torch.Generator().manual_seed(seed)
    low, high = INTERVALS[seed % 2]
    slope = torch.randn(n_runs, 1, generator=gen, dtype=DTYPE)
    intercept = torch.randn(n_runs, 1, generator=gen, dtype=DTYPE)
    target = IntervalTarget(low, high, slope, intercept)
    w0 = torch.randn(n_runs, width, 2, generator=gen, dtype=DTYPE)
    a0 = 0.5 * torch.randn(n_runs, width, 1, generator=gen, dtype=DTYPE)
    descent = run_interval_gradient_descent(w0, a0, target, leak=leak, learning_rate=0.25, max_steps=max_steps)
    result = classify_interval_batch(descent.w_final, descent.a_final, target, leak=leak)
    return result, target, slope[:, 0].numpy(), (low, high)


def check_end_points(leak: float, width: int, n_runs: int, seed: int, max_steps: int) -> dict[str, int]:
    """Brute-force every minimum label; returns the label counts."""
    result, target, slope, (low, high) = descend_and_classify(leak, width, n_runs, seed, max_steps)
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    for run in range(n_runs):
        name = point_type(result, run)
        counts[name] = counts.get(name, 0) + 1
        one = target.select(torch.tensor([run]))
        beta = float(one.intercept[0, 0])
        if name == "saddle" and result.has_witness[run]:  # rare at end points; checked when it happens
            base = oracle_loss(result.w[run], result.a[run], low, high, leak, slope[run], beta)
            moved_w, moved_a = result.w[run] + result.witness_w[run], result.a[run] + result.witness_a[run]
            assert oracle_loss(moved_w, moved_a, low, high, leak, slope[run], beta) < base
        if name not in {"spurious_local_min", "global_min"}:
            continue
        scale = float(target_scale(one)[0]) ** 2
        radius = 0.5 * dead_radius(result.w[run], low, high)
        change = perturbation_min_change(result.w[run], result.a[run], one, leak, rng, max_radius=radius)
        # a global minimum is certified by ``P <= 1e-8 s_y^2``, so there the loss itself may still go
        # (it cannot go below 0): the search then checks that nothing is found below the minimum value 0
        allowed = result.loss[run] if name == "global_min" else 0.0
        assert change >= -allowed - BRUTE_REL_TOL * (result.loss[run] + scale), (run, name, change)
        oracle = oracle_loss(result.w[run], result.a[run], low, high, leak, slope[run], beta)
        assert result.loss[run] == pytest.approx(oracle, rel=1e-9, abs=1e-12 * scale)
        if name == "spurious_local_min":
            assert leak == 0.0, "leaky ReLU has no spurious local minima (theory 9.3)"
            assert set(roles(result, run)) <= {"dead", "dead_touching"}
            assert result.loss[run] == pytest.approx(dead_loss(low, high, slope[run]), rel=1e-6)
        else:
            assert result.loss[run] <= 1e-8 * scale
    return counts


def test_brute_force_small() -> None:
    """Oracle: random-perturbation search with ``interval_loss`` and the quad loss (fast subset)."""
    relu = check_end_points(0.0, 2, 16, seed=1, max_steps=1500)
    leaky = check_end_points(0.1, 2, 12, seed=2, max_steps=1500)
    assert relu.get("spurious_local_min", 0) >= 1 and relu.get("global_min", 0) >= 1
    assert leaky.get("global_min", 0) >= 1 and "spurious_local_min" not in leaky


@pytest.mark.slow
@pytest.mark.parametrize("width", [1, 2, 3])
@pytest.mark.parametrize("leak", [0.0, 0.1])
def test_brute_force_at_descent_end_points(leak: float, width: int) -> None:
    """Oracle: random-perturbation search with ``interval_loss`` at every end point labelled a minimum;
    the closed-form loss and the all-dead structure of ReLU spurious minima (theory 9.3)."""
    counts = check_end_points(leak, width, 40, seed=10 + width, max_steps=4000)
    assert counts.get("global_min", 0) >= 1
    if leak == 0.0 and width <= 2:
        assert counts.get("spurious_local_min", 0) >= 1
    assert "spurious_local_min" not in counts or leak == 0.0
