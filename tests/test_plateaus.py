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


def detect(curves: np.ndarray, rate_scale: np.ndarray, settings: PlateauSettings | None = None) -> PlateauRecorder:
    """Feed loss curves (R, T) to a recorder, one step at a time; the runs stop after the last step.

    The gradient norm fed is ``|L_t - L_{t-1}|`` (smallest where the curve is flattest); the
    parameters are the step number, so the stored ones name the representative step.
    """
    n_runs, n_steps = curves.shape
    loss = torch.as_tensor(curves, dtype=DTYPE)
    slope = torch.as_tensor(np.abs(np.diff(curves, prepend=curves[:, :1], axis=1)), dtype=DTYPE)
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
    # run 0: the smooth curve; run 1: with an oscillation whose rate (5 rate_tol) exceeds the tolerance
    curves = np.stack([loss, loss * wobble(tau, 5 * RATE_TOL)])
    recorder = detect(curves, np.full(2, RATE_SCALE))
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
