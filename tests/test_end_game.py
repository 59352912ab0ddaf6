"""The end game (pipeline.end_game) and the run resolution rules (pipeline.resolution).

Oracles: autograd for the Jacobian; a planted zero-loss network (the teacher itself) for the
interpolation regime; the certified spurious minimum of the WSG toy (tests/stationary/data) for a
positive-loss limit; closed-form loss curves for the observed rates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.end_game import EndGameMethod, EndGameOptions, finish_runs
from pipeline.end_game.exponential import residual_jacobian
from pipeline.losses import nets
from pipeline.resolution import approaching_zero_loss, observed_loss_rate
from pipeline.stationary import classify_point

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DATA = Path(__file__).parent / "stationary" / "data"


@pytest.mark.parametrize(("leak", "train_output", "k"), [(0.0, True, 1), (0.1, True, 2), (0.0, False, 2)])
def test_residual_jacobian_matches_autograd(leak, train_output, k):
    rng = np.random.default_rng(0)
    n, d, m = 7, 3, 4
    x, y = rng.standard_normal((n, d)), rng.standard_normal((n, k))
    w, a = rng.standard_normal((m, d)), rng.standard_normal((m, k))
    theta = np.concatenate([w.ravel(), a.ravel()]) if train_output else w.ravel()
    residual, jacobian = residual_jacobian(theta, x, y, leak, m, train_output, a)

    def torch_residual(t):
        tw = t[: m * d].reshape(m, d)
        ta = t[m * d :].reshape(m, k) if train_output else torch.as_tensor(a)
        f = nets.forward(tw[None], ta[None], torch.as_tensor(x)[None], leak)[0]
        return ((f - torch.as_tensor(y)) / np.sqrt(n)).reshape(-1)

    t = torch.as_tensor(theta)
    np.testing.assert_allclose(residual, torch_residual(t).numpy(), atol=1e-14)
    np.testing.assert_allclose(jacobian, torch.autograd.functional.jacobian(torch_residual, t).numpy(), atol=1e-12)
    loss = nets.loss(torch.as_tensor(w)[None], torch.as_tensor(a)[None], torch.as_tensor(x)[None],
                     torch.as_tensor(y)[None], leak)  # fmt: skip
    assert 0.5 * residual @ residual == pytest.approx(float(loss[0]), rel=1e-12)


def _teacher_problem(seed: int, n: int = 12, width: int = 4):
    """A realisable problem: a ReLU teacher of width 2 inside a student of ``width`` (extra neurons zero)."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.standard_normal((n, 2)), np.ones((n, 1))], axis=1)
    teacher_w = np.concatenate([rng.standard_normal((2, 2)), np.zeros((2, 1))], axis=1)
    teacher_a = rng.standard_normal((2, 1))
    y = np.maximum(x @ teacher_w.T, 0) @ teacher_a
    w = np.concatenate([teacher_w, 1e-3 * rng.standard_normal((width - 2, 3))])
    a = np.concatenate([teacher_a, np.zeros((width - 2, 1))])
    return x, y, w, a


def test_interpolation_regime_reaches_zero_loss_close_to_the_start():
    """From a perturbed zero-loss network, the end game reaches zero loss within a few perturbation sizes."""
    starts, xs, ys = [], [], []
    for seed in range(6):
        x, y, w, a = _teacher_problem(seed)
        rng = np.random.default_rng(100 + seed)
        starts.append((w + 1e-3 * rng.standard_normal(w.shape), a + 1e-3 * rng.standard_normal(a.shape)))
        xs.append(x)
        ys.append(y)
    w0 = torch.as_tensor(np.stack([s[0] for s in starts]))
    a0 = torch.as_tensor(np.stack([s[1] for s in starts]))
    finish = finish_runs(w0, a0, torch.as_tensor(np.stack(xs)), torch.as_tensor(np.stack(ys)), leak=0.0,
                         train_output=True, learning_rate=0.05, options=EndGameOptions())  # fmt: skip
    scale = np.mean(np.stack(ys) ** 2, axis=(1, 2))
    assert (finish.loss_after <= 1e-12 * scale).all(), finish.loss_after  # start: ~1e-6 * scale
    assert (finish.loss_after <= finish.loss_before).all()
    perturbation = 1e-3 * np.sqrt(w0[0].numel() + a0[0].numel())  # expected norm of the perturbation
    assert (finish.distance <= 10 * perturbation).all(), (finish.distance, perturbation)
    assert (finish.gradient_evaluations >= 1).all() and (finish.gradient_evaluations <= 300 + 200 + 100).all()
    assert set(finish.method) <= {
        int(EndGameMethod.FLOW_GAUSS_NEWTON),
        int(EndGameMethod.FLOW_GAUSS_NEWTON_KINK_REFINE),
    }
    for run in range(len(starts)):
        report = classify_point(finish.w[run], finish.a[run], xs[run], ys[run], leak=0.0, realisable=True)
        assert report.point_type == "global_min"


def test_spurious_minimum_is_refound_not_escaped():
    """From near the certified spurious minimum of the WSG toy, the end game returns to it (positive loss)."""
    data = np.load(DATA / "wsg_2d_2d_spurious_minimum.npz")
    w, a, x, y = data["w"], data["a"], data["x"], data["y"]
    rng = np.random.default_rng(3)
    w0 = w + 1e-6 * rng.standard_normal(w.shape)
    a0 = a + 1e-6 * rng.standard_normal(a.shape)
    finish = finish_runs(torch.as_tensor(w0)[None], torch.as_tensor(a0)[None], torch.as_tensor(x)[None],
                         torch.as_tensor(y)[None], leak=0.0, train_output=True, learning_rate=4e-3,
                         options=EndGameOptions())  # fmt: skip
    minimum = float(nets.loss(*(torch.as_tensor(v)[None] for v in (w, a, x, y)), 0.0)[0])
    assert finish.loss_after[0] == pytest.approx(minimum, rel=1e-6)
    assert finish.distance[0] < 1e-3
    report = classify_point(finish.w[0], finish.a[0], x, y, leak=0.0, learning_rate=4e-3)
    assert report.point_type == "local_min"


@pytest.mark.parametrize(
    ("field", "value"), [("max_evaluations", 0), ("refine_iterations", -1), ("zero_loss_threshold", 0.0),
                         ("zero_loss_threshold", 1.5)],
)  # fmt: skip
def test_bad_options_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"end_game.{field}"):
        EndGameOptions(**{field: value}).check()


def test_observed_rates_tell_zero_loss_from_a_positive_limit():
    steps = np.array([0, 100, 1000, 5000, 10000, 15000, 20000], dtype=float)
    to_zero = 1e-3 * np.exp(-4e-4 * steps)  # linear convergence to 0
    power = 1e-3 / (1 + steps)  # sublinear convergence to 0
    to_positive = 1e-5 + 1e-3 * np.exp(-4e-4 * steps)  # settles on 1e-5
    padded = np.array([[*steps, -1]] * 3)
    losses = np.array([[*to_zero, np.nan], [*power, np.nan], [*to_positive, np.nan]])
    late, middle = observed_loss_rate(padded, losses)
    assert late[0] == pytest.approx(-4e-4, rel=1e-9) and middle[0] == pytest.approx(-4e-4, rel=1e-9)
    final = losses[:, -2]
    verdict = approaching_zero_loss(final, late, middle, np.ones(3), threshold=1e-3)
    assert verdict.tolist() == [True, True, False]
    assert not approaching_zero_loss(final, late, middle, np.ones(3), threshold=1e-9).any()


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [("end_game.max_evaluations", -5, "max_evaluations"), ("end_game.flow_evaluations", 0, "flow_evaluations"),
     ("end_game.zero_loss_threshold", 2.0, "zero_loss_threshold"), ("end_game.refine_iterations", -1,
      "refine_iterations"), ("end_game.budget", 3, "budget")],
)  # fmt: skip
def test_survey_rejects_bad_end_game_settings_naming_the_field(path, value, fragment):
    from tests.survey_helpers import base, rejected, with_

    message = rejected(with_(path, value, base()))
    assert "end_game" in message and fragment in message, message


def test_survey_end_game_defaults_reach_the_engine():
    from tests.survey_helpers import base, parse

    options = parse(base()).end_game.options()
    assert options == EndGameOptions()
    options.check()


def test_a_zero_loss_point_has_no_escape_neuron():
    """At zero loss no perturbation lowers the loss, so no neuron is an escape neuron (theory.md 4)."""
    x, y, w, a = _teacher_problem(0, width=4)
    w[2:], a[2:] = 0.0, 0.0  # two exactly zero neurons: escape candidates where the residual is not 0
    report = classify_point(w, a, x, y, leak=0.0, realisable=True)
    assert report.point_type == "global_min"
    assert not report.escape.any()


def test_the_removed_refine_option_says_what_replaced_it():
    from tests.survey_helpers import base, rejected, with_

    message = rejected(with_("classify.refine_end_point", True, base()))
    assert "classify.refine_end_point" in message and "end_game" in message
