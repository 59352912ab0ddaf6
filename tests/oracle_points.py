"""Shared helpers of the oracle tests for the stationary-point classifier (``pipeline.stationary.classify_point``).

Written against the public contract (docs/classifier-api.md) and the mathematics
(/work/shared/docs/theory.md sections 2-8); no classifier code is reused. The oracles live in
``tests/reference.py`` (numpy float64, independent loss / gradient / brute force / GD); this module
holds the contract checks built on them and the exact constructions of hand-built points of known
type (each verified with the independent oracles before the classifier's label is asserted).

The classifier is imported lazily inside :func:`classify` so that this module always imports (the
oracle self-tests run on their own), while every classifier test *fails* (never skips) if the
package is missing or broken.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests import reference as ref

LOCAL_MIN_TYPES = {"global_min", "spurious_local_min", "local_min"}
POINT_TYPES = LOCAL_MIN_TYPES | {"saddle", "undetermined", "not_stationary"}
STATIONARITIES = {"stationary", "approx_stationary", "clarke_only", "not_stationary"}
CERTIFICATES = {
    "no_escape",
    "escape_zero_output",
    "hessian_morse_bott",
    "negative_curvature_witness",
    "first_order_descent",
    "none",
}
MECHANISMS = {"Z", "O-split", "O-touch", "O-other", "V"}

# Stationarity tolerances of the specification (theory 8.2 step 5): the relative first-order gap of
# a point called `stationary` is <= 1e-6 (end points); `approx_stationary` uses a relaxed one
# (we allow the spec's plateau value 1e-2, the most generous).
SPEC_GAP = {"stationary": 1e-6, "approx_stationary": 1e-2}
# Absolute part of the brute-force tolerance: min change >= -(BRUTE_ABS_TOL * (1 + loss) + slack).
BRUTE_ABS_TOL = 1e-10


def classify(w, a, x, y, **kwargs):
    """Call ``pipeline.stationary.classify_point`` (imported here: an import failure fails the test)."""
    from pipeline.stationary import classify_point

    return classify_point(
        np.array(w, dtype=np.float64),
        np.array(a, dtype=np.float64),
        np.array(x, dtype=np.float64),
        np.array(y, dtype=np.float64),
        **kwargs,
    )


def check_report_consistency(report, w, a, x, y, leak, *, train_output=True):
    """Contract checks that hold for every report (types, shapes, loss, witness validity)."""
    w = np.asarray(w, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    m = w.shape[0]
    assert report.point_type in POINT_TYPES, report.point_type
    assert report.stationarity in STATIONARITIES, report.stationarity
    assert report.certificate in CERTIFICATES, report.certificate
    assert set(report.mechanisms) <= MECHANISMS, report.mechanisms
    assert np.asarray(report.w).shape == w.shape and np.asarray(report.a).shape == a.shape
    assert np.asarray(report.escape).shape == (m,)
    rw, ra = np.asarray(report.w, dtype=np.float64), np.asarray(report.a, dtype=np.float64)
    # the classified point is the given point up to kink snapping (a tiny projection)
    assert np.allclose(rw, w, rtol=1e-3, atol=1e-3 * (1 + np.abs(w).max())), "report.w far from w"
    if not train_output:
        assert np.array_equal(ra, a), "output layer must not change when train_output=False"
    true_loss = ref.naive_loss(rw, ra, x, y, leak)
    assert report.loss == pytest.approx(true_loss, rel=1e-9, abs=1e-14)
    # is_local_min is consistent with the point type
    if report.point_type in LOCAL_MIN_TYPES:
        assert report.is_local_min is True
    elif report.point_type in {"saddle", "not_stationary"}:
        assert report.is_local_min is False
    else:
        assert report.is_local_min is None
    if report.point_type != "saddle":
        assert not report.mechanisms, "mechanisms are reported for saddles only"
    else:
        assert report.mechanisms, "a saddle must name its escape mechanism(s)"
    if report.point_type == "not_stationary":
        assert report.certificate == "first_order_descent"
    if report.point_type in {"saddle", "not_stationary"}:
        assert_witness_decreases(report, x, y, leak, train_output=train_output)


def assert_witness_decreases(report, x, y, leak, *, train_output=True):
    """The saddle / non-stationary witness must decrease the TRUE (naive) loss at the classified point."""
    assert report.witness is not None, f"{report.point_type} without a witness"
    dw, da = (np.asarray(v, dtype=np.float64) for v in report.witness)
    rw, ra = np.asarray(report.w, dtype=np.float64), np.asarray(report.a, dtype=np.float64)
    assert dw.shape == rw.shape and da.shape == ra.shape
    if not train_output:
        assert not np.any(da), "witness moves the fixed output layer"
    before = ref.naive_loss(rw, ra, x, y, leak)
    after = ref.naive_loss(rw + dw, ra + da, x, y, leak)
    assert after < before, f"witness does not decrease the loss: {after!r} >= {before!r}"


def verify_stationary(w, a, x, y, leak, *, train_output=True, expect=True):
    """Independent check of a construction: exact one-sided derivatives (theory section 3).

    ``expect=True``: dL/da = 0 and every sampled one-sided derivative is >= -1e-12.
    ``expect=False``: some one-sided direction decreases the loss at first order.
    """
    rng = np.random.default_rng(12345)
    _, grad_a = ref.naive_gradient(w, a, x, y, leak)
    value, _, _ = ref.min_directional_derivative(w, a, x, y, leak, rng=rng, train_output=train_output)
    if expect:
        if train_output:
            assert np.abs(grad_a).max() <= 1e-12, "construction bug: dL/da != 0"
        assert value >= -1e-12, f"construction bug: first-order descent {value}"
    else:
        assert value < -1e-6, "construction bug: expected a first-order descent direction"


def brute_radii(w, a, x, *, cap=1e-3):
    """Brute-force radii at a classified point: inside the validity radius and the 5.1 margin.

    ``||dw_j|| <= min(mu_j / 2, cap (1 + ||w_j||))`` keeps every non-kink sign (section 2; kinks are
    pre-activations with ``|z| <= 1e-9 ||w_j|| ||x_i||``, i.e. exact up to the snapping projection).
    ``||da_j|| <= min(cap (1 + ||a_j||), ||a_j|| / 10)`` for ``a_j != 0`` stays well inside the
    local-minimum margin ``|a_j|`` of section 5.1 (tiny-but-nonzero members of kinked groups, 7.3,
    are local minima only within that margin); ``cap`` for ``a_j = 0``.
    """
    mu = ref.validity_radius(w, x, 1e-9, per_neuron=True)
    wn = np.linalg.norm(w, axis=1)
    an = np.linalg.norm(a, axis=1)
    rw = np.minimum(0.5 * mu, cap * (1 + wn))
    ra = np.where(an > 0, np.minimum(cap * (1 + an), 0.1 * an), cap)
    return rw, ra


def first_order_slack(w, a, x, y, leak, rw, ra, gap):
    """Largest first-order decrease a point with relative stationarity gap ``gap`` may show.

    Theory 8.2 step 5 normalises the gaps by ``||R||_F ||a_j|| s_x`` (input weights) and
    ``||R||_F ||rho(X w_j)||`` (output weights); the one-sided derivative of ``L`` (with its 1/n)
    along ``(dw_j, da_j)`` is then at least ``-gap/n ||R|| (||a_j|| s_x ||dw_j|| + ||rho_j|| ||da_j||)``.
    """
    n = x.shape[0]
    r = ref.rho(x @ w.T, leak) @ a - y
    rn = np.linalg.norm(r)
    sx = np.linalg.norm(x, axis=1).max()
    rho_n = np.linalg.norm(ref.rho(x @ w.T, leak), axis=0)
    an = np.linalg.norm(a, axis=1)
    return gap / n * rn * float(np.sum(an * sx * rw + rho_n * ra))


def assert_survives_brute_force(report, x, y, leak, *, train_output=True, seed=0, **bf_kwargs):
    """A certified local minimum must not show a loss decrease inside the validity radius."""
    w, a = np.asarray(report.w, dtype=np.float64), np.asarray(report.a, dtype=np.float64)
    rw, ra = brute_radii(w, a, x)
    res = ref.brute_force_min_change(
        w,
        a,
        x,
        y,
        leak,
        radius=rw,
        a_radius=ra,
        rng=np.random.default_rng(seed),
        train_output=train_output,
        **bf_kwargs,
    )
    loss = ref.naive_loss(w, a, x, y, leak)
    gap = SPEC_GAP.get(report.stationarity, 0.0)
    tol = BRUTE_ABS_TOL * (1 + loss) + first_order_slack(w, a, x, y, leak, rw, ra * train_output, gap)
    return res.min_change >= -tol, res, tol


# =====================================================================================
# Hand-built points of known type (exact constructions)
# =====================================================================================


def generic_data(k=1):
    """Five inputs (two features + bias), no two parallel (generic in the sense of theory 4)."""
    x = np.array([[0.5, -1.25, 1.0], [1.0, 0.5, 1.0], [-0.75, 1.0, 1.0], [0.25, 1.75, 1.0], [-1.5, -0.5, 1.0]])
    y = np.array([[1.0, -0.5], [-0.25, 2.0], [0.75, 0.5], [-1.0, 1.25], [2.0, -1.5]])[:, :k]
    return x, y


def ls_local_min_point(leak):
    """Width-1 differentiable local minimum (theory 5.1; Liu's genuine cell minimum, section 10).

    Inputs ``x_i = (t_i, 1)``, ``t = 0, 1, 2, 3``. Targets = the line ``0.75 + 0.25 t`` plus the
    residual pattern ``e = (1, -1, -1, 1)``, which is orthogonal to both columns of X, so the
    least-squares fit of y is exactly ``u = (0.25, 0.75)``. With ``w = u``, ``a = 1`` every
    pre-activation ``0.75 + 0.25 t`` is > 0 (all active, any leak): the net is linear near the
    point, ``dL/da = w.X^T r / n = 0`` and ``dL/dw = a X^T r / n = 0`` exactly (dyadic numbers),
    no kinks, ``a != 0`` and scalar output, so no escape neuron: a local minimum with loss 1/2.
    """
    x = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    y = np.array([[1.75], [0.0], [0.25], [2.5]])
    return np.array([[0.25, 0.75]]), np.array([[1.0]]), x, y


def with_dead_neurons(w, a):
    """Append two strictly dead ReLU neurons for the data of :func:`ls_local_min_point`.

    ``(0, -1)`` gives ``z = -1`` on every input, ``(-1, -1)`` gives ``z = -t - 1 <= -1``: all
    pre-activations < 0, so rho = 0 and, for ReLU, ``D_j == 0`` (theory 4, "dead ReLU neuron"):
    they change neither stationarity nor local minimality (theory 7, E1), whatever their a_j.
    """
    return np.vstack([w, [[0.0, -1.0], [-1.0, -1.0]]]), np.vstack([a, [[0.7], [-0.4]]])


def split_base_point():
    """Non-differentiable, non-global local minimum, scalar output, ReLU (theory 3 and 7).

    ``x_i = (t_i, 1)`` with ``t = -1, 0, 1, 2``; ``w = (1, 0)``, ``a = 1``: z = t, so t = -1 is
    inactive, t = 0 is a kink point, t = 1, 2 are active. Targets chosen so that the residuals are
    ``r = (-1, 2, -2, 1)``: ``G = sum_{I+} r_i z_i = -2 + 2 = 0`` and
    ``p = sum_{I+} r_i x_i = (0, -1)``, kink coefficient ``gamma_0 = a r_0 = 2 > 0``;
    ``g(u) = p.u + gamma_0 relu(x_0.u) = -u_2 + 2 relu(u_2) = |u_2| >= 0`` and not identically 0.
    Section 3 (independent kink): gamma_0 >= 0 and s = 1/2 in [0, 1] solves p + s gamma_0 x_0 = 0.
    Scalar output with a != 0: no escape neuron, hence a local minimum (5.1). Loss 10/8.
    """
    x = np.array([[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    y = np.array([[1.0], [-2.0], [3.0], [1.0]])
    return np.array([[1.0, 0.0]]), np.array([[1.0]]), x, y


def split_point(beta):
    """Split the kinked neuron of :func:`split_base_point` (theory 7, E3, gamma_1 = gamma_2 = 1).

    Copies ``(w, beta a)`` and ``(w, (1 - beta) a)`` compute the same function; their ``g`` are
    ``beta g_j`` and ``(1 - beta) g_j`` with ``g_j(u) = |u_2|``, the same ``D_j != 0``. Trichotomy
    (7, scalar output, g_j not identically 0): beta in (0, 1) local min; beta in {0, 1} saddle (the
    zero-output copy is an escape neuron, mechanism O-split); beta outside [0, 1]: one copy has
    ``g < 0`` somewhere -> not stationary, but Clarke stationary (s = 1/2 still works, sign ignored).
    """
    w, a, x, y = split_base_point()
    return np.vstack([w, w]), np.array([[beta], [1.0 - beta]]), x, y


def clarke_only_point():
    """Clarke- but not directionally stationary point (theory 3, "contrast with Clarke").

    Same inputs and neuron as :func:`split_base_point`, residuals ``r = (-1, -2, 2, -1)``:
    ``G = 2 - 2 = 0``, ``p = (0, 1)``, ``gamma_0 = -2 < 0``. ``g(u) = u_2 - 2 relu(u_2) = -|u_2|``:
    activating (or moving away from) the kink point decreases the loss at first order, yet the
    Clarke condition holds with coefficient s = 1/2: ``p + s gamma_0 x_0 = 0``.
    """
    x = np.array([[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    y = np.array([[1.0], [2.0], [-1.0], [3.0]])
    return np.array([[1.0, 0.0]]), np.array([[1.0]]), x, y


def dependent_kinks_point(gamma_b):
    """Three collinear kink inputs with gamma = (1, gamma_b, 1) (theory 3, "dependent kinks").

    ``w = (1, 0, 0)``, ``a = 1``, ReLU; kink inputs ``x_a = (0, -1, 1)``, ``x_b = (0, 0, 1) =
    (x_a + x_c)/2``, ``x_c = (0, 1, 1)`` (z = 0; f = 0, so ``r = -y`` and ``gamma_i = a r_i``:
    targets ``-(1, gamma_b, 1)``); active inputs ``(1, 0, 1)``, ``(2, 1, 1)`` fitted exactly (r = 0)
    and an inactive one ``(-1, 0.5, 1)``. Then ``G = 0``, ``p = 0`` and with A = x_a.u, C = x_c.u:
    ``g(u) = relu(A) + relu(C) + gamma_b relu((A + C)/2)``, minimal at A = C: 2 + gamma_b.
    So stationary (and, scalar output with a != 0, a local minimum) iff gamma_b >= -2; for
    gamma_b < -2 only Clarke stationary (s = 0 works). A test assuming independent kinks would wrongly
    reject gamma_b in [-2, 0).
    """
    x = np.array(
        [[0.0, -1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [2.0, 1.0, 1.0], [-1.0, 0.5, 1.0]]
    )
    y = np.array([[-1.0], [-gamma_b], [-1.0], [1.0], [2.0], [0.3]])
    return np.array([[1.0, 0.0, 0.0]]), np.array([[1.0]]), x, y


_Q = np.array([[0.6, -0.8], [0.8, 0.6]])  # rotation of the output space (avoids axis-aligned luck)


def rrr_width1_point():
    """Width-1, vector-output reduced-rank-regression local minimum with an escape neuron (theory 5.3).

    Inputs ``(+-1, +-1, 1)``: orthogonal columns, ``X^T X = 4 I``. Targets ``y_i = Q (3, t1_i)``,
    i.e. ``Y = X M^T`` with ``M = Q [[0, 0, 3], [0, 1, 0]]`` (singular values 3 > 1). ``w = (0, 0, 2)``
    (z = 2 > 0 on every input: linear region), ``a = Q (1.5, 0)``: ``a w^T = Q [[0, 0, 3], [0, 0, 0]]``
    is the best rank-one approximation (Eckart-Young), a local minimum of the width-1 net.
    ``B = R^T X = -4 Q e_2 e_2^T != 0`` and ``a^T B = 0``: g == 0, D(u) = B u != 0 -> the neuron IS an
    escape neuron with a != 0; the point is still a local min (needs the second-order test).
    """
    x = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [-1.0, 1.0, 1.0], [-1.0, -1.0, 1.0]])
    y = np.stack([3.0 * np.ones(4), x[:, 1]], axis=1) @ _Q.T
    return np.array([[0.0, 0.0, 2.0]]), (_Q @ np.array([1.5, 0.0]))[None], x, y


def duplicated_vector_point(beta):
    """The data of :func:`rrr_width1_point` with two copies ``a_1 = beta v``, ``a_2 = (1 - beta) v`` (5.3).

    Same function and residuals, both neurons escape with ``a_j != 0``; two neurons with the same
    activation pattern can realise a rank-two linear map, and moving ``w_1`` along ``e_2``, ``w_2``
    against it and ``a_1`` along ``Q e_2`` decreases the loss at second order: a strict saddle
    (mechanism V).
    """
    w, v, x, y = rrr_width1_point()
    return np.vstack([w, w]), np.vstack([beta * v, (1.0 - beta) * v]), x, y
