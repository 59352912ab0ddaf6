"""One classification pass over a batch of points (theory.md section 8.2, steps 1-8).

``classify_once`` takes float64 tensors with a leading run axis and returns a dict of numpy
arrays (label codes from :mod:`pipeline.stationary.labels`). ``settled_not_stationary`` is the
cheap screen of the tolerance-sensitivity re-runs: runs it returns are ``not_stationary`` in
``classify_once`` too (it evaluates the same tensors). The public entry points with the re-runs
live in :mod:`pipeline.stationary.api`.

Fixed output layer (``train_output=False``): only ``W`` is perturbed, and the exact expansion of
section 2 reduces to ``L(W + dW) - L(W) = 1/n sum_j g_j(dw_j) + 1/(2n) sum_i ||delta f_i||^2`` for
``||dw_j|| < mu_j`` (``delta f_i = sum_j a_j phi_ij(dw_j)``; no ``da`` terms). The quadratic term is
non-negative, so *every directionally stationary point is a local minimum* (any output dimension,
any fixed ``a``): certificate ``no_escape``, no escape neurons, no saddles among stationary points,
and the margin (a neighbourhood radius in ``a``) is ``inf`` because ``a`` is not a parameter.

Numerically zero loss (``L <= tau_L s_y^2`` plus the float-noise floor ``q.loss_floor``): a global
minimum because ``L >= 0``, whatever the
relative gaps say (they are ill-conditioned as ``R -> 0``): ``global_min``, ``is_local_min`` True,
certificate ``none`` (no local certificate is needed), stationarity at least ``approx_stationary``.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.stationary import labels
from pipeline.stationary.escape import differentiable, escape_flags
from pipeline.stationary.first_order import clarke_gap, first_order, output_gaps
from pipeline.stationary.kinks import SnappedPoint, snap_point
from pipeline.stationary.margins import local_min_margins
from pipeline.stationary.neurons import (
    FitQuantities,
    NeuronQuantities,
    fit_quantities,
    neuron_quantities,
    parallel_inputs,
    select_runs,
)
from pipeline.stationary.second_order import record_non_strict, second_order
from pipeline.stationary.strength import escape_strength
from pipeline.stationary.tolerances import Tolerances
from pipeline.stationary.witness import Witness, escape_witness, line_witness

__all__ = ["classify_once", "settled_not_stationary"]

_C = labels.code


def classify_once(
    w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *, leak: float, tol: Tolerances,
    train_output: bool, learning_rate: float | None, realisable: bool, best_known_loss: torch.Tensor | None,
    kink: torch.Tensor | None = None, labels_only: bool = False,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Classify every run of the batch at one kink tolerance.

    Parameters
    ----------
    w : (R, m, d), a : (R, m, k), x : (R or 1, n, d), y : (R or 1, n, k)
        float64 tensors on one device.
    best_known_loss : (R,) or None
        Best known loss per run (NaN: unknown).
    kink : (R, n, m) or None
        Precomputed kink sets of the zero-snapped point (:func:`pipeline.stationary.kinks.kink_scores`).
    labels_only
        Compute only what decides ``point_type`` (the tolerance-sensitivity re-runs): no Clarke test,
        differentiability, first-order witnesses or mechanisms. Saddles still need their locally
        verified witness, so the escape curves and step 7 run in full.

    Returns
    -------
    dict of numpy arrays keyed by the ``BatchClassification`` field names.
    """
    R, m, d = w.shape
    k = a.shape[-1]
    sp = snap_point(w, a, x, y, leak, tol, learning_rate, kink=kink)
    w, a = sp.w, sp.a
    q = neuron_quantities(w, a, x, y, sp.kink, leak)
    fo = first_order(q, a, x, train_output, tol.approx_stationary)
    stationarity = torch.full((R,), _C(labels.STATIONARITY, "not_stationary"), dtype=torch.int8)
    stationarity[fo.gap.cpu() <= tol.approx_stationary] = _C(labels.STATIONARITY, "approx_stationary")
    stationarity[fo.gap.cpu() <= tol.stationary] = _C(labels.STATIONARITY, "stationary")
    failing = (fo.gap.cpu() > tol.approx_stationary).nonzero().flatten()
    if failing.numel() and not labels_only:
        failing = failing.to(w.device)
        clarke = clarke_gap(q, a, x, fo, failing, tol.approx_stationary)
        clarke = torch.maximum(clarke, fo.out_gap[failing].amax(dim=-1))
        clarke, failing = clarke.cpu(), failing.cpu()
        stationarity[failing[clarke <= tol.approx_stationary]] = _C(labels.STATIONARITY, "clarke_only")
    zero_loss = _zero_loss(q, tol)
    approx = _C(labels.STATIONARITY, "approx_stationary")
    stationarity[zero_loss.cpu() & (stationarity > approx)] = approx
    st = (fo.gap <= tol.approx_stationary) | zero_loss

    par = parallel_inputs(x)
    escape, d_zero = _stationary_escape(q, a, x, par, leak, tol.escape, train_output, st)
    escape = escape & ~zero_loss.to(escape.device).unsqueeze(-1)  # no direction lowers a zero loss: no escape neuron
    zero_escape = escape & q.a_zero

    out = _empty(R, m, d, k, w)
    out["stationarity"] = stationarity.numpy()
    out["first_order_gap"] = fo.gap.cpu().numpy()
    out["loss"] = q.loss.cpu().numpy()
    if not labels_only:
        out["differentiable"] = differentiable(q, a, par, tol.stationary).cpu().numpy()
    out["escape"] = escape.cpu().numpy()
    out["kink"] = q.kink.any(dim=-2).cpu().numpy()
    out["roles"] = q.roles.cpu().numpy()
    out["w"], out["a"] = w.cpu().numpy(), a.cpu().numpy()

    _not_stationary(out, q, fo, w, a, x, leak, train_output, ~st, labels_only)
    minimum = st & (~escape.any(dim=-1) | zero_loss)
    _minima(out, q, d_zero, a, x, leak, minimum, train_output, tol, realisable, best_known_loss)
    zero_escape = zero_escape & ~zero_loss.unsqueeze(-1)
    _zero_output_saddles(out, q, w, a, x, leak, zero_escape)
    vector = st & ~zero_loss & escape.any(dim=-1) & ~zero_escape.any(dim=-1)
    for r in vector.nonzero().flatten().tolist():
        _second_order_run(out, q, w, a, x, leak, d_zero, tol, r)
    if not labels_only:
        _mechanisms(out, q, escape, k)
    return out


def settled_not_stationary(
    sp: SnappedPoint, x: torch.Tensor, y: torch.Tensor, *, leak: float, tol: Tolerances
) -> torch.Tensor:
    """Runs that :func:`classify_once` labels ``not_stationary`` (trained output layer), from the output gaps.

    ``sp`` must be the snapped point that :func:`classify_once` classifies (:func:`snap_point`, or
    :func:`pipeline.stationary.kinks.resnap_point`, which gives the same values). The first-order gap
    of a run is the maximum over its neurons of the output and input gaps, so an output gap above
    ``tol.approx_stationary`` makes the run not stationary (unless its loss is numerically zero)
    whatever the kink solves give for the input gaps; the forward pass is the very computation of
    :func:`classify_once`, so the verdict is exact. (A fixed output layer has no output gaps.)

    Returns
    -------
    (R,) bool tensor on the device of ``sp.w``.
    """
    if sp.w.shape[1] == 0:
        return torch.zeros(sp.w.shape[0], dtype=torch.bool, device=sp.w.device)
    fit = fit_quantities(sp.w, sp.a, x, y, sp.kink, leak)
    return (output_gaps(fit).amax(dim=-1) > tol.approx_stationary) & ~_zero_loss(fit, tol)


def _zero_loss(fit: FitQuantities | NeuronQuantities, tol: Tolerances) -> torch.Tensor:
    """Numerically zero loss, ``L <= tau_L s_y^2`` plus the float-noise floor, (R,) bool."""
    return fit.loss <= tol.global_loss * fit.s_y.square() + fit.loss_floor


def _stationary_escape(
    q: NeuronQuantities, a: torch.Tensor, x: torch.Tensor, par: torch.Tensor, leak: float, tol: float,
    train_output: bool, st: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Escape flags and ``D_j = 0`` flags (R, m) of the stationary runs ``st``; False for the others.

    No other run reads them (its ``escape`` record is False), so only the stationary runs are evaluated.
    """
    escape = torch.zeros_like(q.a_zero)
    d_zero = torch.zeros_like(q.a_zero)
    runs = st.nonzero().flatten()
    if runs.numel() == 0:
        return escape, d_zero
    esc = escape_flags(select_runs(q, runs), a[runs], x[runs] if x.shape[0] > 1 else x,
                       par[runs] if par.shape[0] > 1 else par, leak, tol, train_output)  # fmt: skip
    escape[runs], d_zero[runs] = esc.escape, esc.d_zero
    return escape, d_zero


def _empty(R: int, m: int, d: int, k: int, w: torch.Tensor) -> dict[str, np.ndarray]:
    """Arrays initialised to 'undetermined' / NaN."""
    return {
        "point_type": np.full(R, _C(labels.POINT_TYPE, "undetermined"), np.int8),
        "is_local_min": np.full(R, _C(labels.IS_LOCAL_MIN, "unknown"), np.int8),
        "certificate": np.full(R, _C(labels.CERTIFICATE, "none"), np.int8),
        "strictness": np.full(R, _C(labels.STRICTNESS, "unknown"), np.int8),
        "mechanisms": np.zeros(R, np.int8),
        "margin": np.full(R, np.nan),
        "margin_limit": np.full(R, -1, np.int8),
        "escape_strength": np.full((R, m), np.nan),
        "curvature": np.full(R, np.nan),
        "witness_w": np.full((R, m, d), np.nan),
        "witness_a": np.full((R, m, k), np.nan),
        "has_witness": np.zeros(R, bool),
        "witness_decrease": np.full(R, np.nan),
        "witness_radius": np.full(R, np.nan),
        "witness_min_step": np.full(R, np.nan),
    }


def _set_witness(out: dict, runs: np.ndarray, wit: Witness) -> None:
    """Store the verified witnesses of ``runs`` (with their validity radius and smallest verified step)."""
    ok = wit.verified.cpu().numpy()
    sel = runs[ok]
    out["witness_w"][sel] = wit.dw.cpu().numpy()[ok]
    out["witness_a"][sel] = wit.da.cpu().numpy()[ok]
    out["has_witness"][sel] = True
    out["witness_decrease"][sel] = wit.decrease.cpu().numpy()[ok]
    out["witness_radius"][sel] = wit.radius.cpu().numpy()[ok]
    out["witness_min_step"][sel] = wit.min_step.cpu().numpy()[ok]


def _not_stationary(out, q: NeuronQuantities, fo, w, a, x, leak, train_output, mask, labels_only) -> None:
    """``not_stationary`` label and a verified first-order descent witness."""
    runs = mask.nonzero().flatten()
    if runs.numel() == 0:
        return
    rn = runs.cpu().numpy()
    out["point_type"][rn] = _C(labels.POINT_TYPE, "not_stationary")
    out["strictness"][rn] = _C(labels.STRICTNESS, "not_applicable")
    if labels_only:
        return
    gap_abs = fo.in_gap[runs] * (q.r_norm * q.s_x)[runs].unsqueeze(-1) * a[runs].norm(dim=-1)
    dw = gap_abs.unsqueeze(-1) * fo.direction[runs]  # n L'(theta; d) = -sum ||G_j||^2 - sum gap_j^2
    da = -q.G[runs] if train_output else torch.zeros_like(q.G[runs])
    wit = line_witness(q, w, a, x, leak, runs, dw, da, order=1)
    _set_witness(out, rn, wit)
    ok = rn[wit.verified.cpu().numpy()]
    out["is_local_min"][ok] = _C(labels.IS_LOCAL_MIN, "false")
    out["certificate"][ok] = _C(labels.CERTIFICATE, "first_order_descent")


def _minima(out, q: NeuronQuantities, d_zero, a, x, leak, mask, train_output, tol, realisable, best_known) -> None:
    """Section 5.1 (and the fixed-output theorem): certified local minima, globality and margin."""
    rn = mask.cpu().numpy()
    if not rn.any():
        return
    loss = q.loss.cpu().numpy()
    s_y = q.s_y.cpu().numpy()
    zero_loss = loss <= tol.global_loss * s_y**2 + q.loss_floor.cpu().numpy()
    kind = np.full(loss.shape, _C(labels.POINT_TYPE, "local_min"), np.int8)
    if realisable:
        kind[:] = _C(labels.POINT_TYPE, "spurious_local_min")
    if best_known is not None:
        bk = best_known.cpu().numpy()
        known = np.isfinite(bk)
        better = loss <= bk * (1 + 1e-6) + tol.global_loss * s_y**2
        kind[known & better] = _C(labels.POINT_TYPE, "global_min")
        kind[known & ~better] = _C(labels.POINT_TYPE, "spurious_local_min")
    kind[zero_loss] = _C(labels.POINT_TYPE, "global_min")
    out["point_type"][rn] = kind[rn]
    out["is_local_min"][rn] = _C(labels.IS_LOCAL_MIN, "true")
    certificate = np.where(zero_loss, _C(labels.CERTIFICATE, "none"), _C(labels.CERTIFICATE, "no_escape"))
    out["certificate"][rn] = certificate[rn]
    out["strictness"][rn] = _C(labels.STRICTNESS, "not_applicable")
    runs = np.flatnonzero(rn)
    out["margin"][runs], out["margin_limit"][runs] = local_min_margins(q, a, x, d_zero, leak, train_output, runs)


def _zero_output_saddles(out, q: NeuronQuantities, w, a, x, leak, zero_escape) -> None:
    """Section 5.2: escape neurons with ``a_j = 0`` -> strict saddle with a locally verified witness; ``kappa_j``.

    Runs in the label-only passes too: without a verified witness the point is ``undetermined``.
    """
    runs, neurons = zero_escape.nonzero(as_tuple=True)
    if runs.numel() == 0:
        return
    kappa, _, u = escape_strength(q, w, x, runs, neurons, leak)
    out["escape_strength"][runs.cpu().numpy(), neurons.cpu().numpy()] = kappa.cpu().numpy()
    R, m = zero_escape.shape
    table = torch.full((R, m), float("inf"), dtype=kappa.dtype, device=kappa.device)
    table[runs, neurons] = kappa
    saddle_runs = zero_escape.any(dim=-1).nonzero().flatten()
    best = table[saddle_runs].argmin(dim=-1)
    u_table = torch.zeros(R, m, w.shape[-1], dtype=w.dtype, device=w.device)
    u_table[runs, neurons] = u
    rn = saddle_runs.cpu().numpy()
    out["point_type"][rn] = _C(labels.POINT_TYPE, "saddle")
    out["is_local_min"][rn] = _C(labels.IS_LOCAL_MIN, "false")
    out["certificate"][rn] = _C(labels.CERTIFICATE, "escape_zero_output")
    out["strictness"][rn] = _C(labels.STRICTNESS, "strict")
    out["curvature"][rn] = table[saddle_runs, best].cpu().numpy()
    wit = escape_witness(q, w, a, x, leak, saddle_runs, best, u_table[saddle_runs, best])
    _set_witness(out, rn, wit)
    _unverified_saddles(out, rn[~wit.verified.cpu().numpy()])


def _second_order_run(out, q: NeuronQuantities, w, a, x, leak, d_zero, tol: Tolerances, r: int) -> None:
    """Section 8.2 step 7 for one vector-output run; a saddle needs a verified witness."""
    res = second_order(q, w, a, x, r, leak, d_zero, tol.curvature)
    if record_non_strict(out, r, res):
        return
    if res.verdict == "local_min":
        out["point_type"][r] = _C(labels.POINT_TYPE, "local_min")
        out["is_local_min"][r] = _C(labels.IS_LOCAL_MIN, "true")
        out["certificate"][r] = _C(labels.CERTIFICATE, "hessian_morse_bott")
        out["strictness"][r] = _C(labels.STRICTNESS, "not_applicable")
        out["curvature"][r] = res.curvature
        return
    if res.verdict != "saddle" or res.direction is None:
        return
    vw = torch.as_tensor(res.direction[0], dtype=w.dtype, device=w.device)
    va = torch.as_tensor(res.direction[1], dtype=w.dtype, device=w.device)
    runs = torch.tensor([r, r], device=w.device)
    wit = line_witness(q, w, a, x, leak, runs, torch.stack([vw, -vw]), torch.stack([va, -va]), order=2)
    pick = int(torch.where(wit.verified, wit.decrease, -torch.inf).argmax())
    if not bool(wit.verified[pick]):
        return
    out["point_type"][r] = _C(labels.POINT_TYPE, "saddle")
    out["is_local_min"][r] = _C(labels.IS_LOCAL_MIN, "false")
    out["certificate"][r] = _C(labels.CERTIFICATE, "negative_curvature_witness")
    out["strictness"][r] = _C(labels.STRICTNESS, "strict")
    out["curvature"][r] = res.curvature
    chosen = Witness(*(field[pick : pick + 1] for field in (wit.dw, wit.da, wit.verified, wit.decrease, wit.radius,
                                                              wit.min_step)))  # fmt: skip
    _set_witness(out, np.array([r]), chosen)


def _unverified_saddles(out: dict, runs: np.ndarray) -> None:
    """Saddles by the escape theorem whose witness is not locally verified: ``undetermined`` (never a guess)."""
    if runs.size == 0:
        return
    out["point_type"][runs] = _C(labels.POINT_TYPE, "undetermined")
    out["is_local_min"][runs] = _C(labels.IS_LOCAL_MIN, "unknown")
    out["certificate"][runs] = _C(labels.CERTIFICATE, "none")
    out["strictness"][runs] = _C(labels.STRICTNESS, "unknown")


def _mechanisms(out, q: NeuronQuantities, escape: torch.Tensor, k: int) -> None:
    """Saddle mechanisms (section 8.1) as a bit field over the escape neurons of each saddle."""
    saddle = torch.as_tensor(out["point_type"] == _C(labels.POINT_TYPE, "saddle"), device=escape.device)
    runs = (saddle & escape.any(dim=-1)).nonzero().flatten()
    if runs.numel() == 0:
        return
    role = q.roles[runs]
    esc = escape[runs]
    a_zero = q.a_zero[runs]
    pattern = q.pos[runs].to(torch.int8) * 2 + q.kink[runs].to(torch.int8)  # (E, n, m)
    same = (pattern.unsqueeze(-1) == pattern.unsqueeze(-2)).all(dim=1)  # (E, m, m)
    same = same & ~torch.eye(same.shape[-1], dtype=torch.bool, device=same.device)
    partner = (same & ~a_zero.unsqueeze(-2)).any(dim=-1)
    bits = torch.zeros_like(esc, dtype=torch.int64)
    r_zero, r_touch = _C(labels.ROLE, "zero"), _C(labels.ROLE, "dead_touching")
    bits = torch.where(esc & (role == r_zero), 1 << _C(labels.MECHANISM, "Z"), bits)
    other = esc & a_zero & (role != r_zero)
    bits = torch.where(other & (role == r_touch), 1 << _C(labels.MECHANISM, "O-touch"), bits)
    rest = other & (role != r_touch)
    bits = torch.where(rest & partner, 1 << _C(labels.MECHANISM, "O-split"), bits)
    bits = torch.where(rest & ~partner, 1 << _C(labels.MECHANISM, "O-other"), bits)
    if k > 1:
        vector = out["certificate"][runs.cpu().numpy()] == _C(labels.CERTIFICATE, "negative_curvature_witness")
        vec = torch.as_tensor(vector, device=esc.device).unsqueeze(-1) & esc & ~a_zero
        bits = torch.where(vec, 1 << _C(labels.MECHANISM, "V"), bits)
    combined = torch.zeros(runs.numel(), dtype=torch.int64, device=esc.device)
    for j in range(bits.shape[-1]):
        combined |= bits[:, j]
    out["mechanisms"][runs.cpu().numpy()] = combined.cpu().numpy().astype(np.int8)
