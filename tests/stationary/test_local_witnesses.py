"""Verdicts that hold (issue 12): every saddle witness is a local decrease, every local minimum survives brute force.

The oracles are independent of the classifier: the loss is ``tests/reference.naive_loss`` (numpy), the
locality of a witness is checked by the signs of the pre-activations along it, and local minima face the
brute-force perturbation search of ``tests/reference.brute_force_min_change``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pipeline.problems import run_gradient_descent
from pipeline.stationary import classify_batch, classify_point, labels
from pipeline.stationary.local_descent import verify_local_descent
from tests import audit
from tests import oracle_points as op
from tests.oracle_points import assert_survives_brute_force
from tests.stationary.helpers import kinked_minimum

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DATA = Path(__file__).parent / "data"
SADDLE = labels.code(labels.POINT_TYPE, "saddle")
MINIMA = {labels.code(labels.POINT_TYPE, name) for name in ("global_min", "spurious_local_min", "local_min")}


def test_published_toy_spurious_minimum_is_a_local_minimum_whatever_the_learning_rate():
    """Wu, Simsek & Ged's 2-d input, 2-d output toy (4 points, width 50, ReLU): a GD end point at loss 0.085.

    Produced by this engine (init std 50^-3, learning rate 4e-3, 130,515 steps to the gradient criterion).
    With the learning rate given, the old classifier called it a strict saddle (mechanism V) on a witness
    that raised the loss at 0.1%, 1% and 10% of its length: the piecewise test took the wrong side of
    one-sided kinks, and the zig-zag kink rule snapped neurons that sit still 5e-6 from their kink.
    """
    data = np.load(DATA / "wsg_2d_2d_spurious_minimum.npz")
    w, a, x, y = data["w"], data["a"], data["x"], data["y"]
    for learning_rate in (4e-3, None):
        report = classify_point(w, a, x, y, leak=0.0, learning_rate=learning_rate)
        assert report.point_type == "local_min", learning_rate
        assert report.certificate == "no_escape"
    ok, res, tol = assert_survives_brute_force(report, x, y, 0.0, n_random=600, n_adversarial=2,
                                               adversarial_steps=40)  # fmt: skip
    assert ok, (res.min_change, tol)


def _as_tensor(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64))


def test_local_descent_rule_on_synthetic_sequences():
    """A clean quadratic decrease passes; a decrease only at large steps, or at rounding level, does not."""
    steps = 0.1 * 4.0 ** -np.arange(12)
    leading = -2.0 * steps**2
    floor = _as_tensor([1e-16])
    residue = np.zeros_like(steps)
    clean = verify_local_descent(_as_tensor([leading]), _as_tensor([leading]), _as_tensor([residue]), floor)
    assert bool(clean.verified[0]) and int(clean.largest[0]) == 0
    # the true loss rises at first order at small steps (the issue-12 signature): not local
    jump = leading + 1e-4 * steps
    bad = verify_local_descent(_as_tensor([jump]), _as_tensor([leading]), _as_tensor([residue]), floor)
    assert not bool(bad.verified[0])
    # decreases of 1e-17 against a floor of 1e-16: rounding, not descent
    tiny = -1e-17 * np.ones_like(steps)
    rounding = verify_local_descent(_as_tensor([tiny]), _as_tensor([tiny]), _as_tensor([residue]), floor)
    assert not bool(rounding.verified[0])
    # a first-order residue that dominates at every step: the curvature claim is not shown
    residue_big = 1.0 * steps
    masked = verify_local_descent(_as_tensor([leading - steps]), _as_tensor([leading]), _as_tensor([residue_big]),
                                  floor)  # fmt: skip
    assert not bool(masked.verified[0])


def _gd_points(seed: int, n_runs: int, steps: int) -> list[dict]:
    """End points and early (plateau) iterates of GD over random data, widths, outputs and activations.

    Half of every batch starts at scale 1e-4 (saddle-to-saddle), half at scale 1.
    """
    rng = np.random.default_rng(seed)
    batches = []
    for leak in (0.0, 0.1):
        for k in (1, 2, 3):
            m = int(rng.choice([2, 4, 8]))
            n, d = 8, 3
            x = torch.as_tensor(np.hstack([rng.standard_normal((n, d - 1)), np.ones((n, 1))]))[None]
            y = torch.as_tensor(rng.standard_normal((n, k)))[None]
            g = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
            init = torch.where(torch.arange(n_runs) % 2 == 0, 1e-4, 1.0).to(torch.float64)[:, None, None]
            w0 = init * torch.randn(n_runs, m, d, generator=g, dtype=torch.float64)
            a0 = init * torch.randn(n_runs, m, k, generator=g, dtype=torch.float64)
            for max_steps, mode in ((steps, "end_point"), (steps // 8, "plateau")):
                res = run_gradient_descent(w0, a0, x, y, leak=leak, learning_rate=0.05, max_steps=max_steps)
                batches.append(dict(w=res.w_final, a=res.a_final, x=x, y=y, leak=leak, mode=mode))
    return batches


def _check_batch(batch: dict, brute_force_budget: int) -> tuple[int, int]:
    """Independent checks of every saddle witness and of up to ``brute_force_budget`` minima; counts checked."""
    cls = classify_batch(batch["w"], batch["a"], batch["x"], batch["y"], leak=batch["leak"], mode=batch["mode"],
                         learning_rate=0.05)  # fmt: skip
    x, y, leak = batch["x"][0].numpy(), batch["y"][0].numpy(), batch["leak"]
    saddles = minima = 0
    for r in range(cls.w.shape[0]):
        w, a = cls.w[r], cls.a[r]
        if cls.point_type[r] == SADDLE:
            assert cls.has_witness[r]
            # the true loss falls at every step 2^-j of the witness down to its smallest verified step (50
            # digits), the witness is no longer than its validity radius and crosses no kink it does not model
            reason = audit.witness_failure(w, a, cls.witness_w[r], cls.witness_a[r], cls.witness_radius[r],
                                           cls.witness_min_step[r], x, y, leak)  # fmt: skip
            assert reason is None, (r, reason)
            saddles += 1
        elif cls.point_type[r] in MINIMA and batch["mode"] == "end_point" and minima < brute_force_budget:
            # the verdict of the batch itself (the snapped point it certified), not a re-classification
            verdict = SimpleNamespace(w=w, a=a, stationarity=labels.STATIONARITY[int(cls.stationarity[r])])
            ok, res, tol = assert_survives_brute_force(verdict, x, y, leak, seed=r, n_random=400, n_adversarial=1,
                                                       adversarial_steps=30)  # fmt: skip
            assert ok, (r, res.min_change, tol)
            minima += 1
    return saddles, minima


def test_saddle_witnesses_are_local_and_minima_survive_brute_force():
    totals = np.zeros(2, dtype=int)
    for batch in _gd_points(seed=5, n_runs=16, steps=2000):
        totals += _check_batch(batch, brute_force_budget=2)
    assert totals[0] > 0 and totals[1] > 0  # both kinds of verdict were exercised


@pytest.mark.slow
def test_saddle_witnesses_are_local_and_minima_survive_brute_force_thousands():
    totals = np.zeros(2, dtype=int)
    for seed in range(2):
        for batch in _gd_points(seed=100 + seed, n_runs=96, steps=6000):
            totals += _check_batch(batch, brute_force_budget=10)
    print(f"saddle witnesses checked: {totals[0]}, minima brute-forced: {totals[1]}")
    assert totals[0] > 100 and totals[1] > 40


def test_a_tiny_strictly_dead_neuron_is_not_snapped_into_an_escape_neuron_at_plateaus():
    """Theory 7.3 (issue 12): a strictly dead ReLU neuron cannot grow; amplitude snapping keeps it dead."""
    w, a, x, y = kinked_minimum(0.5)
    dead = -np.linalg.lstsq(x, np.ones(x.shape[0]), rcond=None)[0]  # x_i . dead < 0 for most points
    dead = dead if (x @ dead < 0).all() else None
    if dead is None:  # a direction with every data point strictly on its negative side
        dead = -x.mean(axis=0) / np.linalg.norm(x.mean(axis=0))
        assert (x @ dead < 0).all(), "no strictly dead direction for this data"
    tiny_w, tiny_a = 1e-7 * dead / np.linalg.norm(dead), np.array([[1e-7]])
    plateau = classify_point(np.vstack([w, tiny_w]), np.vstack([a, tiny_a]), x, y, mode="plateau")
    assert not plateau.escape.any()
    assert plateau.point_type in {"local_min", "spurious_local_min", "global_min"}
    # the same tiny neuron pointing into the data is snapped to the zero neuron, an escape neuron (Z)
    alive = classify_point(np.vstack([w, -tiny_w]), np.vstack([a, tiny_a]), x, y, mode="plateau")
    assert alive.escape[1] and alive.point_type == "saddle"


_LS = op.ls_local_min_point(0.0)
HAND_BUILT = {
    "split neuron, beta = 0 (saddle, zero-output copy)": (op.split_point(0.0), "saddle"),
    "split neuron, beta = 0.5 (kinked minimum)": (op.split_point(0.5), "minimum"),
    "split neuron, beta = 0.3 (kinked minimum)": (op.split_point(0.3), "minimum"),
    "kinked neuron with multiplier 0.5": (kinked_minimum(0.5), "minimum"),
    "least-squares cell minimum with dead neurons": ((*op.with_dead_neurons(*_LS[:2]), *_LS[2:]), "minimum"),
    "dependent kinks, gamma_b = -1.5": (op.dependent_kinks_point(-1.5), "minimum"),
    "reduced-rank regression, width 1 (vector output)": (op.rrr_width1_point(), "minimum"),
    "duplicated vector neuron, beta = 0.3 (saddle V)": (op.duplicated_vector_point(0.3), "saddle"),
}


@pytest.mark.parametrize("name", list(HAND_BUILT))
def test_hand_built_points_of_known_type_pass_the_independent_audit(name):
    """Hand-built kinked minima and saddles (theory.md 3, 5.3, 7): the verdict is the known type; a saddle's
    witness falls at every shrinking step, a minimum's margin survives the audit's perturbation search."""
    (w, a, x, y), expected = HAND_BUILT[name]
    cls = classify_batch(*(torch.as_tensor(np.asarray(v, dtype=np.float64))[None] for v in (w, a, x, y)), leak=0.0)
    point_type = labels.POINT_TYPE[int(cls.point_type[0])]
    w, a = cls.w[0], cls.a[0]
    if expected == "saddle":
        assert point_type == "saddle"
        assert audit.witness_failure(w, a, cls.witness_w[0], cls.witness_a[0], cls.witness_radius[0],
                                     cls.witness_min_step[0], x, y, 0.0) is None  # fmt: skip
    else:
        assert cls.point_type[0] in MINIMA, point_type
        margin, gap = float(cls.margin[0]), float(cls.first_order_gap[0])
        rng = np.random.default_rng(0)
        if np.isfinite(margin) and margin > 0:
            assert audit.margin_failure(w, a, x, y, 0.0, margin, gap, rng) is None
        assert audit.local_descent_failure(w, a, x, y, 0.0, gap, rng) is None
