"""Oracle tests for the stationary-point classifier: invariances and tolerance sensitivity.

Every label is invariant under neuron permutation and positive rescaling (theory 1), checked on
every hand-built point; the ``tolerance_sensitive`` flag marks exactly one band of kink distances
around the kink tolerance (theory 8.2 step 2).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.oracle_points import (
    clarke_only_point,
    classify,
    dependent_kinks_point,
    duplicated_vector_point,
    generic_data,
    ls_local_min_point,
    rrr_width1_point,
    split_base_point,
    split_point,
    with_dead_neurons,
)


def hand_built_cases():
    """(name, w, a, x, y, leak) for every hand-built point (used by the invariance tests)."""
    cases = []
    x, y = generic_data(2)
    cases.append(("zero_net", np.zeros((3, 3)), np.zeros((3, 2)), x, y, 0.2))
    w, a, x, y = ls_local_min_point(0.0)
    wd, ad = with_dead_neurons(np.vstack([w, np.zeros((1, 2))]), np.vstack([a, np.zeros((1, 1))]))
    cases.append(("zero_neuron_plus_dead", wd, ad, x, y, 0.0))
    wd, ad = with_dead_neurons(w, a)
    cases.append(("dead", wd, ad, x, y, 0.0))
    for beta in (0.25, 0.0, 1.5):
        cases.append((f"split_{beta}", *split_point(beta), 0.0))
    cases.append(("clarke_only", *clarke_only_point(), 0.0))
    for gb in (-1.5, -2.5):
        cases.append((f"dependent_{gb}", *dependent_kinks_point(gb), 0.0))
    cases.append(("rrr", *rrr_width1_point(), 0.0))
    cases.append(("duplicated", *duplicated_vector_point(0.3), 0.0))
    return cases


_SUMMARY = ("point_type", "is_local_min", "stationarity", "certificate")


def _summary(rep):
    return tuple(getattr(rep, f) for f in _SUMMARY) + (frozenset(rep.mechanisms),)


@pytest.mark.parametrize("case", hand_built_cases(), ids=lambda c: c[0])
def test_invariance_permutation_and_rescaling(case):
    # f and L are invariant under permuting neurons and under (w_j, a_j) -> (c w_j, a_j / c), c > 0
    # (positive homogeneity of rho); so is every label (theory 1; kink tolerances are relative).
    name, w, a, x, y, leak = case
    base = classify(w, a, x, y, leak=leak)
    m = w.shape[0]
    perm = np.arange(m)[::-1].copy()
    if m > 2:
        perm = np.roll(np.arange(m), 1)
    rep = classify(w[perm], a[perm], x, y, leak=leak)
    assert _summary(rep) == _summary(base)
    assert rep.escape.tolist() == base.escape[perm].tolist()
    for c in ([2.0] * m, [0.5] * m, list(np.linspace(0.25, 3.0, m))):
        c = np.asarray(c)[:, None]
        rep = classify(c * w, a / c, x, y, leak=leak)
        assert _summary(rep) == _summary(base), f"rescaling by {c.ravel()} changed the label"
        assert rep.escape.tolist() == base.escape.tolist()


def test_tolerance_sensitive_flag():
    # Section 8.2 step 2: the kink tolerance is relative, tau_z >= 1e-8 (learning_rate=None gives the
    # floor), and `tolerance_sensitive` is set if the label changes when tau_z is scaled by 0.1 or 10.
    # Move the kink point of the split base point off the kink by a relative distance eps
    # (w = (1, eps), x_0 = (0, 1): z_0 / (||w|| ||x_0||) ~ eps). Snapped (eps << tau_z) it is the local
    # minimum; unsnapped, x_0 is active (r_0 = 2) and dL/dw = (0, 1)/4 != 0: not stationary.
    # Exactly one band of eps, about two decades wide around the tolerance, must be flagged.
    w0, a, x, y = split_base_point()
    clean = classify(w0, a, x, y, leak=0.0)
    assert clean.point_type == "local_min" and not clean.tolerance_sensitive
    eps_grid = 10.0 ** np.arange(-14.0, -2.5, 0.5)
    flags, types = [], []
    for eps in eps_grid:
        w = np.array([[1.0, eps]])
        rep = classify(w, a, x, y, leak=0.0)
        flags.append(bool(rep.tolerance_sensitive))
        types.append(rep.point_type)
    assert types[0] == "local_min" and not flags[0], "a point 1e-14 off the kink must be snapped"
    assert types[-1] == "not_stationary" and not flags[-1], "a point 1e-3 off the kink is not a kink"
    flagged = np.flatnonzero(flags)
    assert flagged.size > 0, f"no eps flagged tolerance_sensitive: {list(zip(eps_grid, types, strict=True))}"
    assert np.all(np.diff(flagged) == 1), "flagged eps do not form one band"
    width = np.log10(eps_grid[flagged[-1]] / eps_grid[flagged[0]])
    assert width <= 2.5, f"tolerance-sensitive band {width} decades wide"
    # the label flips inside the band (that is what makes it sensitive)
    lo, hi = max(flagged[0] - 1, 0), min(flagged[-1] + 1, len(types) - 1)
    assert types[lo] != types[hi]
