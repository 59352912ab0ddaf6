"""The local-minimum margin: a radius within which no perturbation lowers the loss (theory.md 2 and 5.1).

At a stationary point without escape neurons, theory.md 5.1 gives
``Phi(Delta) >= 1/n sum_j g_j(dw_j) (1 - C_j ||da_j||) + 1/(2n) sum_i ||delta f_i||^2 >= 0`` whenever the exact
expansion of section 2 holds (``||dw_j|| < mu_j``, the distance at which a pre-activation off the kink set of
neuron ``j`` changes sign) and ``||da_j|| <= 1 / C_j`` (``||D_j(u)|| <= C_j g_j(u)`` for all ``u``). Hence every
perturbation of Euclidean norm below

``margin = min_j min(mu_j, 1 / C_j)``

leaves the loss unchanged or larger: that is the claim the stored margin makes. Both limits count for every
neuron, tiny dead neurons included (a dead neuron ``1e-7`` from activating a data point limits the margin to
``1e-7``, however large its output weight). ``C_j``:

* ``D_j = 0``: 0 (no limit from the output weight);
* scalar output, or vector output without kinks: ``1 / ||a_j||`` (then ``D_j(u) = a_j g_j(u) / ||a_j||^2`` up to
  the component orthogonal to ``a_j``, which vanishes at points without escape neurons);
* vector output with kinks: on every kink sign pattern ``sigma`` (cone ``C_sigma``), ``D_sigma u`` splits into
  ``a_j g_sigma(u) / ||a_j||^2`` plus the orthogonal part ``P D_sigma u``, which vanishes on the zero face of
  ``g_sigma`` (no escape neuron; its numerically zero face component is removed); a linear program per output
  row bounds ``|(P D_sigma u)_l|`` on ``{u in C_sigma, g_sigma . u <= 1}``, so
  ``C_j <= 1 / ||a_j|| + sqrt(k) max_{sigma, l} LP`` (infinite if an LP is unbounded: margin 0).

With a fixed output layer only ``mu_j`` limits it. The limit that binds is stored beside the margin
(``MARGIN_LIMIT``: ``unbounded``, ``kink_distance``, ``output_weight``).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.optimize import linprog

from pipeline.stationary import labels
from pipeline.stationary.boxls import box_ls_scipy
from pipeline.stationary.escape import MULTIPLIER_TOL, face_span
from pipeline.stationary.neurons import NeuronQuantities

__all__ = ["local_min_margins"]

_LP_MAX_KINKS = 6


def local_min_margins(
    q: NeuronQuantities,
    a: torch.Tensor,
    x: torch.Tensor,
    d_zero: torch.Tensor,
    leak: float,
    train_output: bool,
    runs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Margins and their binding limits (``MARGIN_LIMIT`` codes) of the certified minima ``runs``, each (E,)."""
    mu = q.mu[runs].cpu().numpy()  # (E, m)
    if train_output:
        output = _output_weight_limits(q, a, x, d_zero, leak, runs)
    else:
        output = np.full(mu.shape, np.inf)
    per_neuron = np.minimum(mu, output)
    margin = per_neuron.min(axis=-1) if per_neuron.shape[-1] else np.full(len(runs), np.inf)
    kink_bound = mu.min(axis=-1) if mu.shape[-1] else np.full(len(runs), np.inf)
    limit = np.where(
        ~np.isfinite(margin),
        labels.code(labels.MARGIN_LIMIT, "unbounded"),
        np.where(
            kink_bound <= margin,
            labels.code(labels.MARGIN_LIMIT, "kink_distance"),
            labels.code(labels.MARGIN_LIMIT, "output_weight"),
        ),
    ).astype(np.int8)
    return margin, limit


def _output_weight_limits(
    q: NeuronQuantities, a: torch.Tensor, x: torch.Tensor, d_zero: torch.Tensor, leak: float, runs: np.ndarray
) -> np.ndarray:
    """``1 / C_j`` per neuron of the selected runs, (E, m)."""
    a_norm = a[runs].norm(dim=-1).cpu().numpy()
    dz = d_zero[runs].cpu().numpy()
    limits = np.where(dz, np.inf, a_norm)
    k = a.shape[-1]
    if k == 1:
        return limits
    kinked = q.kink[runs].any(dim=-2).cpu().numpy() & ~dz & (a_norm > 0)
    for e, j in zip(*np.nonzero(kinked), strict=True):
        r = int(runs[e])
        xr = (x[r] if x.shape[0] > 1 else x[0]).cpu().numpy()
        C = _kinked_vector_constant(q, xr, r, int(j), leak, a[r, j].cpu().numpy())
        limits[e, j] = 1.0 / C if C > 0 else np.inf
    return limits


def _kinked_vector_constant(q: NeuronQuantities, xr: np.ndarray, r: int, j: int, leak: float, a_j: np.ndarray) -> float:
    """Upper bound on ``C_j = sup ||D_j(u)|| / g_j(u)`` of a vector-output neuron with kinks (inf if unknown)."""
    kinks = np.flatnonzero(q.kink[r, :, j].cpu().numpy())
    if kinks.size > _LP_MAX_KINKS:
        return np.inf
    xs = xr[kinks]
    res = q.residual[r].cpu().numpy()
    B = q.B[r, j].cpu().numpy()  # (k, d): kink slope leak
    p = q.p[r, j].cpu().numpy()
    gam = q.gamma[r, :, j].cpu().numpy()[kinks]
    if (gam < 0).any():
        return np.inf
    _, s = box_ls_scipy(gam[:, None] * xs, p)
    norm2 = float(a_j @ a_j)
    proj = np.eye(a_j.size) - np.outer(a_j, a_j) / norm2
    k, d = B.shape
    worst = 0.0
    for signs in itertools.product((1.0, -1.0), repeat=kinks.size):
        sig = np.array(signs)
        up = sig > 0
        D = B + (1.0 - leak) * res[kinks][up].T @ xs[up]  # D_sigma (k, d)
        g = p + (gam[up, None] * xs[up]).sum(axis=0)  # g_sigma (d,)
        forced = (gam > 0) & np.where(up, s < 1 - MULTIPLIER_TOL, s > MULTIPLIER_TOL)
        face = face_span(xs, sig, forced)  # the zero face of g on this piece: P D vanishes there (no escape)
        rows = proj @ D
        rows = rows - (rows @ face) @ face.T
        a_ub = np.vstack([-(sig[:, None] * xs), g[None]]) if kinks.size else g[None]
        b_ub = np.concatenate([np.zeros(kinks.size), [1.0]])
        for row in rows:
            for sign in (1.0, -1.0):
                lp = linprog(-sign * row, A_ub=a_ub, b_ub=b_ub, bounds=[(None, None)] * d, method="highs")
                if lp.status == 3:  # unbounded
                    return np.inf
                if lp.status == 0:
                    worst = max(worst, -float(lp.fun))
    return float(1.0 / np.sqrt(norm2) + np.sqrt(k) * worst)
