"""The end game at kinks: which pairs slide, neurons at the origin, and the rescaling symmetry (pipeline.end_game).

Oracles: a brute-force enumeration of the self-consistent ways two pairs on one kink can move (each
side, or sliding); plain gradient descent with a tiny step, run here with autograd, which zig-zags along
a kink where the Filippov flow slides and leaves it where the flow leaves; the network function for
the rescaling ``(w_j, a_j) -> (c w_j, a_j / c)``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from pipeline.end_game import EndGameOptions, finish_runs, rebalance
from pipeline.end_game.exponential import leave_origin
from pipeline.end_game.kinks import filippov_sides
from pipeline.losses import nets

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEP, STEPS = 1e-5, 4000  # gradient descent of flow time 0.04: kinks are left or kept, nothing else changes


def _two_pairs_on_a_kink(seed: int) -> tuple[np.ndarray, ...]:
    """Neuron 1 of a width-2 network has samples 0 and 1 on its kink (``w_1`` orthogonal to ``x_0`` and ``x_1``)."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 1))
    w = np.stack([rng.standard_normal(3), rng.choice([-1, 1]) * np.cross(x[0], x[1])])
    a = rng.standard_normal((2, 1))
    return x, y, w, a


def _gradient_descent_sides(x, y, w, a, leak) -> np.ndarray:
    """``z`` of the two kink pairs after half of ``STEPS`` steps and after all, (2, R, 2): GD with autograd.

    ``x, y, w, a`` are stacked over R networks, each trained on its own data.
    """
    tw, ta = torch.tensor(w, requires_grad=True), torch.tensor(a, requires_grad=True)
    tx, ty = torch.as_tensor(x), torch.as_tensor(y)
    history = []
    for step in range(STEPS):
        gw, ga = torch.autograd.grad(nets.loss(tw, ta, tx, ty, leak).sum(), (tw, ta))
        with torch.no_grad():
            tw -= STEP * gw
            ta -= STEP * ga
        if step + 1 in (STEPS // 2, STEPS):
            history.append(torch.einsum("rid,rd->ri", tx[:, :2], tw[:, 1]).detach().numpy())
    return np.array(history)


def _consistent_sides(x, error, w, a, leak) -> set[tuple[str, str]]:
    """Every assignment of the two kink pairs to a side or to sliding that is self-consistent (brute force).

    A pair on the inactive side (slope ``leak``) must not move up, one on the active side (slope 1) must
    not move down, and sliding pairs get the slopes in ``[leak, 1]`` that keep them at ``z = 0``.
    """
    drive = (error @ a[1]) / x.shape[0]
    rest = (drive[2:] * np.where(x[2:] @ w[1] > 0, 1.0, leak)) @ x[2:]
    found = set()
    for sides in itertools.product(("inactive", "active", "slides"), repeat=2):
        slopes = np.array([{"inactive": leak, "active": 1.0, "slides": np.nan}[side] for side in sides])
        slide = np.isnan(slopes)
        if slide.any():  # x_i . dL/dw_1 = 0 for the sliding pairs: a linear system in their slopes
            fixed = rest + (np.where(slide, 0.0, slopes) * drive[:2]) @ x[:2]
            system = x[:2][slide] @ (drive[:2][slide, None] * x[:2][slide]).T
            slopes[slide] = np.linalg.solve(system, -x[:2][slide] @ fixed)
            if not ((slopes[slide] >= leak) & (slopes[slide] <= 1.0)).all():
                continue
        velocity = -(x[:2] @ (rest + (slopes * drive[:2]) @ x[:2]))
        inactive = np.array([side == "inactive" for side in sides])
        active = np.array([side == "active" for side in sides])
        if (velocity[inactive] <= 1e-12).all() and (velocity[active] >= -1e-12).all():
            found.add(sides)
    return found


@pytest.mark.parametrize("leak", [0.0, 0.2])
def test_pairs_slide_or_leave_as_small_step_gradient_descent_does(leak):
    problems = [_two_pairs_on_a_kink(seed) for seed in range(48)]
    halves, ends = _gradient_descent_sides(*(np.stack(arrays) for arrays in zip(*problems, strict=True)), leak)
    outcomes = []
    for seed, (x, y, w, a) in enumerate(problems):
        theta = np.concatenate([w.ravel(), a.ravel()])
        error = (np.where(x @ w.T > 0, 1.0, leak) * (x @ w.T)) @ a - y
        candidates = np.zeros((6, 2), dtype=bool)
        candidates[:2, 1] = True
        sliding, active = filippov_sides(error, theta, x, leak, 2, True, a, candidates)
        predicted = tuple("slides" if sliding[i, 1] else "active" if active[i, 1] else "inactive" for i in range(2))
        consistent = _consistent_sides(x, error, w, a, leak)
        assert predicted in consistent, (seed, predicted, consistent)
        if len(consistent) > 1:
            continue  # repelling kinks: the flow may take either side, and gradient descent picks one by rounding
        # a zig-zag moves z_i by a few steps' worth: STEP |x_i| |dL/dw_1|, bounded by the sum over samples
        zigzag = 4 * STEP * np.linalg.norm(x[:2], axis=1) * (np.abs(error @ a[1]) @ np.linalg.norm(x, axis=1)) / 6
        for i in range(2):
            half, end = halves[seed, i], ends[seed, i]
            if abs(end) <= zigzag[i]:
                observed = "slides"
            elif abs(end) > 1.5 * abs(half) and abs(end) > 100 * zigzag[i]:
                observed = "active" if end > 0 else "inactive"
            else:
                continue  # gradient descent itself is undecided within this flow time
            outcomes.append((seed, i, observed, predicted[i], end, zigzag[i]))
    wrong = [o for o in outcomes if o[2] != o[3]]
    assert not wrong, wrong
    assert len(outcomes) >= 40, len(outcomes)  # pairs with one consistent way that gradient descent decides
    assert {o[2] for o in outcomes} == {"slides", "active", "inactive"}, [o[2] for o in outcomes]


def test_rebalance_keeps_the_function_and_sets_the_balance():
    rng = np.random.default_rng(3)
    w, a = rng.standard_normal((5, 4, 3)), rng.standard_normal((5, 4, 2))
    x = torch.as_tensor(rng.standard_normal((1, 7, 3)))
    target = rng.standard_normal((5, 4))
    w1, a1 = rebalance(w, a, target)
    np.testing.assert_allclose((w1**2).sum(-1) - (a1**2).sum(-1), target, atol=1e-12)
    before = nets.forward(torch.as_tensor(w), torch.as_tensor(a), x, 0.1)
    after = nets.forward(torch.as_tensor(w1), torch.as_tensor(a1), x, 0.1)
    np.testing.assert_allclose(after.numpy(), before.numpy(), rtol=1e-12, atol=1e-12)
    a[0, 1] = 0.0  # a neuron with no output weight cannot be rescaled to a balance: left as it is
    w2, a2 = rebalance(w, a, target)
    np.testing.assert_array_equal(w2[0, 1], w[0, 1])


def _neuron_at_origin(output_weight: float) -> tuple[np.ndarray, ...]:
    """A ReLU network whose neuron 0 fits samples 1 and 2, and whose neuron 1 sits at the origin with ``a_1``.

    Sample 0 (``x_0 = (1, 0)``, target 1) is left unfitted (residual -1). At ``w_1 = 0`` every pattern meets; the
    Filippov set of ``w_1`` always contains 0 for ReLU (the all-inactive pattern), but with ``a_1 > 0`` the
    direction ``u = x_0`` lowers the loss at first order (``D(u) = (r_0 a_1 / n) u . x_0 < 0``): gradient descent
    leaves, and neuron 1 fits sample 0. With ``a_1 < 0`` no direction lowers it: the origin holds the neuron.
    """
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    y = np.array([[1.0], [1.0], [0.0]])
    w = np.array([[0.0, 1.0], [0.0, 0.0]])
    a = np.array([[1.0], [output_weight]])
    return x, y, w, a


def test_the_end_game_leaves_the_origin_along_a_first_order_descent():
    x, y, w, a = _neuron_at_origin(1.0)
    theta = np.concatenate([w.ravel(), a.ravel()])
    moved = leave_origin(theta, x, y, 0.0, 2, True, a)
    assert moved is not theta
    step = moved[2:4]
    assert np.linalg.norm(step) > 0 and step[0] > 0  # towards x_0, the unfitted sample
    # brute force: the loss falls linearly along the chosen direction (first order, not by a jump)
    loss = [float(nets.loss(*(torch.tensor(v)[None] for v in (np.stack([w[0], t * step]), a, x, y)), 0.0)[0])
            for t in (0.0, 1e-3, 2e-3)]  # fmt: skip
    assert loss[1] < loss[0] and loss[2] - loss[0] == pytest.approx(2 * (loss[1] - loss[0]), rel=1e-6)
    finish = finish_runs(
        *(torch.tensor(v)[None] for v in (w, a, x, y)), leak=0.0, train_output=True, learning_rate=0.01,
        options=EndGameOptions(),
    )  # fmt: skip
    assert finish.loss_before[0] == pytest.approx(1 / 6) and finish.loss_after[0] < 1e-12  # it fits sample 0


def test_the_origin_holds_a_neuron_without_a_first_order_descent():
    x, y, w, a = _neuron_at_origin(-1.0)
    theta = np.concatenate([w.ravel(), a.ravel()])
    assert leave_origin(theta, x, y, 0.0, 2, True, a) is theta
    angles = np.linspace(0.0, 2 * np.pi, 721)
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    slopes = (-1.0 / 3) * -1.0 * np.maximum(directions @ x[0], 0.0)  # D(u) = (r_0 a_1 / n) relu(u . x_0)
    assert slopes.min() >= 0.0  # the brute-force oracle agrees: no direction lowers the loss at first order
