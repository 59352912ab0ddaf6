"""Oracle tests for the stationary-point classifier: brute force on end points of random small problems.

A fast sample in the default run, a large one marked ``slow``: every certified minimum must survive
a random + adversarial search inside the validity radius, every saddle / non-stationary point must
come with a loss-decreasing witness (tests/reference.py, tests/oracle_points.py).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tests import reference as ref
from tests.oracle_points import (
    assert_survives_brute_force,
    check_report_consistency,
    classify,
)


def random_end_point(seed):
    """A random small problem and the end point of plain GD on it (reference.naive_gd).

    n in 3..8, one or two features plus a bias column, width 1..4, leak in {0, 0.2}, k in {1, 2};
    targets are noise or (realisable) the output of a random teacher of width 1-2; initialisation
    N(0, 1) * scale with scale 1/sqrt(d) (normal) or 1e-3 (vanishing: saddle-to-saddle dynamics);
    about one problem in six trains with a fixed output layer.
    """
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 9))
    d = int(rng.integers(1, 3)) + 1
    m = int(rng.integers(1, 5))
    k = int(rng.choice([1, 2]))
    leak = float(rng.choice([0.0, 0.2]))
    x = np.hstack([rng.standard_normal((n, d - 1)), np.ones((n, 1))])
    realisable = bool(rng.random() < 0.35)
    if realisable:
        m_t = int(rng.integers(1, 3))
        y = ref.rho(x @ rng.standard_normal((m_t, d)).T, leak) @ rng.standard_normal((m_t, k))
    else:
        y = rng.standard_normal((n, k))
    train_output = bool(rng.random() > 1 / 6)
    scale = 1.0 / np.sqrt(d) if rng.random() < 0.6 else 1e-3
    w0 = scale * rng.standard_normal((m, d))
    a0 = scale * rng.standard_normal((m, k)) if train_output else rng.standard_normal((m, k))
    lr, lr_final = 0.05, 5e-5
    w, a = ref.naive_gd(w0, a0, x, y, leak, lr=lr, steps=12000, train_output=train_output, lr_final=lr_final)
    return dict(
        w=w,
        a=a,
        x=x,
        y=y,
        leak=leak,
        realisable=realisable,
        train_output=train_output,
        learning_rate=lr_final,
        seed=seed,
    )


def run_brute_force_survey(seeds, *, check_invariance=0):
    """Classify the end points of ``seeds``; return (labels, failures) after all oracle checks."""
    labels = Counter()
    failures = []
    for q, seed in enumerate(seeds):
        p = random_end_point(seed)
        x, y, leak, to = p["x"], p["y"], p["leak"], p["train_output"]
        tag = f"seed={seed} m={p['w'].shape[0]} k={y.shape[1]} leak={leak} train_output={to}"
        try:
            rep = classify(
                p["w"],
                p["a"],
                x,
                y,
                leak=leak,
                train_output=to,
                learning_rate=p["learning_rate"],
                realisable=p["realisable"],
            )
        except ImportError:
            raise
        except Exception as err:  # record and go on: one crash should not hide the other points
            labels["<classifier raised>"] += 1
            failures.append(f"{tag}: classifier raised {type(err).__name__}: {err}")
            continue
        labels[rep.point_type] += 1
        tag = f"{tag}: {rep.point_type} ({rep.stationarity}, {rep.certificate})"
        try:
            check_report_consistency(rep, p["w"], p["a"], x, y, leak, train_output=to)
        except AssertionError as err:
            failures.append(f"{tag}: {err}")
            continue
        # a global-min claim is a loss-tolerance judgement (L >= 0 bounds every decrease by L itself),
        # so brute force is vacuous there; the loss is checked below instead
        if rep.point_type in {"local_min", "spurious_local_min"}:
            ok, res, tol = assert_survives_brute_force(
                rep, x, y, leak, train_output=to, seed=seed, n_random=1500, n_adversarial=4, adversarial_steps=80
            )
            if not ok:
                failures.append(
                    f"{tag}: brute force found change {res.min_change:.3e} < -{tol:.1e} "
                    f"(stationarity {rep.stationarity}, gap {rep.first_order_gap:.2e})"
                )
        if rep.point_type == "spurious_local_min":
            if not p["realisable"]:
                failures.append(f"{tag}: spurious without global information")
        s_y2 = float(np.sum(y**2) / y.shape[0])
        # outputs are sums of m terms |a_j| ||w_j|| ||x_i||, each rounded: losses below this are float noise
        amplitude = float(np.sum(np.linalg.norm(p["w"], axis=1) * np.linalg.norm(p["a"], axis=1)))
        noise = (64 * p["w"].shape[0] * np.finfo(float).eps * amplitude * np.linalg.norm(x, axis=1).max()) ** 2
        if rep.point_type == "global_min" and rep.loss > 1e-3 * s_y2 + noise:
            failures.append(f"{tag}: global_min with loss {rep.loss:.3e}")
        # L >= 0: a point whose loss is zero to float precision is a global minimum (8.2 step 8:
        # "interpolating data: global iff loss <= tau_L s_y^2"), whatever its relative gap says
        if rep.loss <= 1e-20 * s_y2 and rep.point_type not in {"global_min", "local_min"}:
            failures.append(f"{tag}: loss {rep.loss:.1e} (zero to float precision) but not a minimum")
        if rep.loss <= 1e-20 * s_y2 and p["realisable"] and rep.point_type != "global_min":
            failures.append(f"{tag}: realisable and loss {rep.loss:.1e} but not global_min")
        if q < check_invariance and not rep.tolerance_sensitive:
            w, a = p["w"], p["a"]
            perm = np.roll(np.arange(w.shape[0]), 1)
            c = np.linspace(0.5, 2.0, w.shape[0])[:, None]
            for w2, a2, what in ((w[perm], a[perm], "permutation"), (c * w, a / c, "rescaling")):
                rep2 = classify(
                    w2, a2, x, y, leak=leak, train_output=to, learning_rate=None, realisable=p["realisable"]
                )
                rep1 = classify(w, a, x, y, leak=leak, train_output=to, learning_rate=None, realisable=p["realisable"])
                if rep1.tolerance_sensitive or rep2.tolerance_sensitive:
                    continue
                if rep2.point_type != rep1.point_type:
                    failures.append(f"{tag}: {what} changed {rep1.point_type} -> {rep2.point_type}")
    return labels, failures


def _report_survey(labels, failures, n):
    print(f"\nlabel distribution over {n} random end points: {dict(labels)}")
    for f in failures:
        print("FAIL", f)
    assert not failures, f"{len(failures)} oracle failures, first: {failures[0]}"
    assert len(labels) > 1, f"every point got the same label {labels}: the sample does not exercise the classifier"


def test_brute_force_random_end_points_fast():
    seeds = range(1000, 1030)
    labels, failures = run_brute_force_survey(seeds, check_invariance=10)
    _report_survey(labels, failures, len(seeds))


@pytest.mark.slow
def test_brute_force_random_end_points_slow():
    seeds = range(2000, 2300)
    labels, failures = run_brute_force_survey(seeds, check_invariance=40)
    _report_survey(labels, failures, len(seeds))
