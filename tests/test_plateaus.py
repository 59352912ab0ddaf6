"""Plateau detection on constructed loss curves with known plateaus (issue 19: short shoulders).

Each curve is an analytic function of the natural time ``tau = step * learning_rate * s_x * s_y``
(the recorder's ``rate_scale`` per step), so the steps where it is flat (normalised decrease rate
``|dL/dtau| / L`` below ``rate_tol``) are known in closed form: the oracle the detector is checked
against.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.trajectory import PlateauRecorder, PlateauSettings

DTYPE = torch.float64
RATE_TOL = PlateauSettings().rate_tol


def detect(
    curves: np.ndarray,
    rate_scale: np.ndarray,
    settings: PlateauSettings | None = None,
    grad_norm: np.ndarray | None = None,
) -> PlateauRecorder:
    """Feed loss curves (R, T) to a recorder, one step at a time; the runs stop after the last step.

    The gradient norm fed is ``grad_norm`` (R, T), by default ``|L_t - L_{t-1}|`` (smallest where the
    curve is flattest); the parameters are the step number, so the stored ones name the representative step.
    """
    n_runs, n_steps = curves.shape
    loss = torch.as_tensor(curves, dtype=DTYPE)
    if grad_norm is None:
        grad_norm = np.abs(np.diff(curves, prepend=curves[:, :1], axis=1))
    slope = torch.as_tensor(grad_norm, dtype=DTYPE)
    state = torch.zeros(n_runs, 1, 1, dtype=DTYPE)
    recorder = PlateauRecorder(settings or PlateauSettings(), torch.as_tensor(rate_scale, dtype=DTYPE), state, state)
    active = torch.ones(n_runs, dtype=torch.bool)
    for step in range(n_steps):
        state = torch.full((n_runs, 1, 1), float(step), dtype=DTYPE)
        recorder.update(step, active, loss[:, step], slope[:, step], state, state)
    recorder.finish(active, n_steps - 1, torch.zeros(n_runs, dtype=torch.bool))
    return recorder


def plateaus(recorder: PlateauRecorder, run: int) -> list[tuple[int, int, int, float, bool]]:
    """(start, end, representative step, loss, final) of the stored plateaus of ``run``."""
    count = min(int(recorder.count[run]), recorder.settings.max_plateaus)
    fields = (recorder.start, recorder.end, recorder.representative_step, recorder.loss, recorder.is_final)
    return [tuple(field[run, p].item() for field in fields) for p in range(count)]  # type: ignore[misc]


# ----------------------------------------------------------------------------------------------------------------
# Four levels with two short shoulders (the published case of Wu, Simsek & Ged with 3-d inputs: 0.1036, ~0.060,
# ~0.022, 0.0176; the detector used to report two)

LEVELS = np.array([0.1036, 0.060, 0.022, 0.0176])
DROPS = np.array([80.0, 140.0, 195.0])  # natural times of the three drops
WIDTH = 2.5  # natural time of a drop (logistic scale)
DURATION = 300.0
RATE_SCALE = 0.02  # natural time per step: 15,000 steps


def four_level_curve(tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The loss and its derivative in natural time: ``L_4 + sum_k (L_k - L_{k+1}) sigma((c_k - tau) / WIDTH)``."""
    loss, slope = np.full_like(tau, LEVELS[-1]), np.zeros_like(tau)
    for drop, high, low in zip(DROPS, LEVELS[:-1], LEVELS[1:], strict=True):
        sigma = 0.5 * (1 + np.tanh((drop - tau) / (2 * WIDTH)))
        loss += (high - low) * sigma
        slope -= (high - low) * sigma * (1 - sigma) / WIDTH
    return loss, slope


def flat_windows(tau: np.ndarray, rate: np.ndarray) -> list[tuple[float, float]]:
    """Maximal intervals of ``tau`` where ``rate < RATE_TOL`` (the oracle's plateaus, before any length rule)."""
    flat = np.concatenate([[False], rate < RATE_TOL, [False]])
    edges = np.flatnonzero(np.diff(flat.astype(int)))
    return [(tau[i], tau[j - 1]) for i, j in zip(edges[::2], edges[1::2], strict=True)]


def wobble(tau: np.ndarray, amplitude: float) -> np.ndarray:
    """Relative loss oscillation of period 0.5 natural time units (neurons bouncing on kinks) whose rate
    ``|d log L / dtau|`` peaks at ``amplitude``."""
    period = 0.5
    return 1 + amplitude * period / (2 * np.pi) * np.sin(2 * np.pi * tau / period)


def test_constructed_four_level_trajectory_has_four_plateaus():
    tau = RATE_SCALE * np.arange(int(DURATION / RATE_SCALE) + 1)
    loss, slope = four_level_curve(tau)
    windows = flat_windows(tau, -slope / loss)
    # the oracle: four flat windows, one per level; the third (a shoulder between two drops) is shorter than a
    # fifth of the time elapsed before it, so a length rule relative to the elapsed time would drop it
    assert len(windows) == 4
    (s2, e2), (s3, e3) = windows[1], windows[2]
    assert e3 - s3 < 0.2 * s3 and e2 - s2 < 0.5 * s2
    # run 0: the smooth curve; run 1: with an oscillation whose rate (5 rate_tol) exceeds the tolerance; the
    # gradient norm of both is that of the smooth curve (smallest where it is flattest, near the saddles)
    curves = np.stack([loss, loss * wobble(tau, 5 * RATE_TOL)])
    recorder = detect(curves, np.full(2, RATE_SCALE), grad_norm=np.abs(np.stack([slope, slope])))
    for run in range(2):
        found = plateaus(recorder, run)
        assert [p[4] for p in found] == [False, False, False, True]
        for (start, end, step, level, _), (low, high), expected in zip(found, windows, LEVELS, strict=True):
            assert level == pytest.approx(expected, rel=5e-3)
            # the representative lies in the oracle's flat window, and the plateau covers most of the window
            assert low <= step * RATE_SCALE <= high
            assert (min(end * RATE_SCALE, high) - max(start * RATE_SCALE, low)) > 0.8 * (high - low)


def test_oscillation_on_a_shoulder_needs_the_long_average():
    """Without the long moving average (one natural time unit) the oscillating curve above breaks into pieces
    too short to count: the test above exercises it."""
    tau = RATE_SCALE * np.arange(int(DURATION / RATE_SCALE) + 1)
    loss, _ = four_level_curve(tau)
    short_only = PlateauSettings(smoothing_time=1e-9)  # the long average's weight becomes the short one's
    recorder = detect((loss * wobble(tau, 5 * RATE_TOL))[None], np.full(1, RATE_SCALE), short_only)
    assert int(recorder.count[0]) < len(LEVELS)


def interrupted_plateau(kind: str) -> np.ndarray:
    """Flat at 1 for steps 0-199; an interruption; flat until 399; a drop by 0.9 per step over 400-419; flat to 700.

    ``"dip"``: the loss falls by 1.6% per step over steps 200-204 (8% in all, a short break); ``"bump"``: it rises
    by 0.2% per step over 200-229 and falls back by as much over 230-259 (a long break that returns to the level).
    """
    factors = np.ones(701)
    if kind == "dip":
        factors[200:205] = 0.984
    else:
        factors[200:230], factors[230:260] = 1.002, 1 / 1.002
    factors[400:420] = 0.9
    return np.cumprod(factors)


@pytest.mark.parametrize(
    ("kind", "merge_tol", "expected"),
    [
        ("dip", 0.02, [(1, 400), (420, 701)]),  # shorter than min_steps: within 5 merge_tol of the level
        ("dip", 0.0, [(1, 200), (205, 400), (420, 701)]),
        ("bump", 0.02, [(1, 400), (420, 701)]),  # back at the level
        ("bump", 0.0, [(1, 200), (260, 400), (420, 701)]),
    ],
)
def test_a_plateau_interrupted_briefly_or_at_its_level_stays_one(kind, merge_tol, expected):
    """A window at the previous plateau's level (merge_tol; 5 merge_tol if it opens less than min_steps after the
    plateau) continues it: the start is kept, and the representative is the better one (run 0: the gradient is
    smallest before the break; run 1: after it)."""
    curve = interrupted_plateau(kind)
    steps = np.arange(len(curve))
    grad_norm = np.stack([1 + np.abs(steps - 100), 1 + np.abs(steps - 300)]).astype(float)
    settings = PlateauSettings(smoothing=1.0, merge_tol=merge_tol)
    recorder = detect(np.stack([curve, curve]), np.ones(2), settings, grad_norm=grad_norm)
    for run, best in enumerate((100, 300)):
        found = plateaus(recorder, run)
        assert [(start, end) for start, end, *_ in found] == expected
        assert int(recorder.count[run]) == len(expected)
        if len(expected) == 2:
            assert found[0][2] == best and float(recorder.w[run, 0, 0, 0]) == best
            assert found[0][3] == curve[best]


# ----------------------------------------------------------------------------------------------------------------
# Smooth monotone decays: no plateau is invented


def test_no_plateau_on_smooth_decays_faster_than_the_tolerance():
    """Exponential decays at rates 2, 10, 100 and 1000 rate_tol, a sum of two exponentials with rates 1000 and
    5 rate_tol, and an exponential decay at 10 rate_tol with a period-two zig-zag three times its per-step
    decrease: every normalised decrease rate stays above rate_tol, so none has a plateau."""
    rate_scale = 0.02
    tau = rate_scale * np.arange(10001)
    curves = [np.exp(-factor * RATE_TOL * tau) for factor in (2, 10, 100, 1000)]
    curves.append(0.7 * np.exp(-RATE_TOL * 1000 * tau) + 0.3 * np.exp(-RATE_TOL * 5 * tau))
    zigzag = 1 + 1.5 * 10 * RATE_TOL * rate_scale * (-1.0) ** np.arange(len(tau))
    curves.append(np.exp(-10 * RATE_TOL * tau) * zigzag)
    recorder = detect(np.stack(curves), np.full(len(curves), rate_scale))
    assert recorder.count.tolist() == [0] * len(curves)


@pytest.mark.parametrize("rate_scale", [0.01, 1.0])
def test_slowing_decay_has_one_final_plateau_after_the_rate_falls_below_the_tolerance(rate_scale):
    """``L = (1 + tau)^-p`` decays at the normalised rate ``p / (1 + tau)``: no plateau while the rate exceeds
    rate_tol, then one, lasting until the end, starting after the crossing by at most the lag of the moving
    averages (a few of their spans)."""
    p = 0.05
    crossing = p / RATE_TOL - 1
    n_steps = int(2 * crossing / rate_scale) + 1
    tau = rate_scale * np.arange(n_steps)
    recorder = detect(((1 + tau) ** -p)[None], np.full(1, rate_scale))
    found = plateaus(recorder, 0)
    assert len(found) == 1 and found[0][4]
    lag = 3 * max(1 / PlateauSettings().smoothing * rate_scale, PlateauSettings().smoothing_time)
    assert crossing <= found[0][0] * rate_scale <= crossing + lag


# ----------------------------------------------------------------------------------------------------------------
# The published case itself, by gradient descent


@pytest.mark.slow
def test_published_three_dimensional_case_has_four_plateaus():
    """Wu, Simsek & Ged, 3-d inputs, scalar output, width 50, init std 50^-6.5 (authors' code, seed 12).

    Their loss is the mean squared error, twice ours, so their learning rate 1e-3 is our 2e-3. The loss
    curve shows four levels: the zero network ``||y||^2 / (2n) = 0.1036``, shoulders at about 0.060 and
    0.022, and a long plateau at 0.0176 (reached after about 200,000 steps; the run stops on it).
    """
    from pipeline.problems import run_gradient_descent

    x = torch.tensor(
        [[-0.3, -0.75, -0.5], [-0.2, -0.2, 0.4], [-0.6, 1, -1], [-0.4, 0.4, 0.3], [0.6, -0.1, -0.7],
         [0.4, -0.9, 0.3], [0.2, 0.2, -0.5]], dtype=DTYPE,
    )[None]  # fmt: skip
    y = torch.tensor([-0.5, 0.1, -0.6, 0.3, 0.8, -0.3, -0.1], dtype=DTYPE).reshape(1, 7, 1)
    generator = torch.Generator().manual_seed(12)  # the authors' draws: input weights, then output weights
    std = 50**-6.5
    w0 = std * torch.empty(50, 3).normal_(generator=generator).to(DTYPE)[None]
    a0 = std * torch.empty(1, 50).normal_(generator=generator).to(DTYPE).T[None]
    result = run_gradient_descent(w0, a0, x, y, leak=0.0, learning_rate=2e-3, max_steps=220_000)
    count = int(result.n_plateaus[0])
    assert count == 4
    levels = result.plateau_loss[0, :count].numpy()
    np.testing.assert_allclose(levels, [0.1036, 0.060, 0.022, 0.0176], rtol=0.05)
    assert float(levels[0]) == pytest.approx(float(y.square().sum()) / 14, rel=1e-9)
    assert result.plateau_is_final[0, :count].tolist() == [False, False, False, True]
