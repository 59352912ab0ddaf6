"""One classification pass over a batch of points (theory.md section 8.2, steps 1-8).

``classify_once`` takes float64 tensors with a leading run axis and returns a
:class:`~pipeline.stationary.record.BatchClassification` (label codes from :mod:`pipeline.stationary.labels`).
The steps write the verdicts of disjoint sets of runs into it: not stationary, certified minima,
zero-output saddles, and the second-order test of the vector-output runs (the verdicts that rest on a
witness, in :mod:`pipeline.stationary.saddles`). ``settled_not_stationary`` is the
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
from pipeline.stationary.first_order import FirstOrder, clarke_gap, first_order, output_gaps
from pipeline.stationary.kinks import SnappedPoint, snap_point
from pipeline.stationary.margins import local_min_margins
from pipeline.stationary.minima import minimum_types
from pipeline.stationary.neurons import (
    FitQuantities,
    NeuronQuantities,
    fit_quantities,
    neuron_quantities,
    parallel_inputs,
    select_runs,
)
from pipeline.stationary.record import BatchClassification, unclassified_batch
from pipeline.stationary.saddles import (
    Batch,
    record_mechanisms,
    record_not_stationary,
    record_second_order,
    record_zero_output_saddles,
)
from pipeline.stationary.tolerances import Tolerances

__all__ = ["classify_once", "settled_not_stationary"]

_C = labels.code

BEST_KNOWN_RELATIVE = 1e-6
"""A local minimum within this relative distance (plus ``tau_L s_y^2``) of the global value is global."""


def classify_once(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    leak: float,
    tol: Tolerances,
    train_output: bool,
    learning_rate: float | None,
    realisable: bool,
    best_known_loss: torch.Tensor | None,
    kink: torch.Tensor | None = None,
    labels_only: bool = False,
) -> BatchClassification:
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
    BatchClassification
        ``tolerance_sensitive`` is all False (the re-runs of :func:`pipeline.stationary.api.classify_batch`
        decide it); with ``labels_only`` so is ``differentiable``.
    """
    sp = snap_point(w, a, x, y, leak, tol, learning_rate, kink=kink)
    q = neuron_quantities(sp.w, sp.a, x, y, sp.kink, leak)
    point = Batch(q=q, w=sp.w, a=sp.a, x=x, leak=leak, train_output=train_output)
    fo = first_order(q, sp.a, x, train_output, tol.approx_stationary)
    zero_loss = _zero_loss(q, tol)
    stationarity = _stationarity(point, fo=fo, zero_loss=zero_loss, tol=tol, clarke=not labels_only)
    st = (fo.gap <= tol.approx_stationary) | zero_loss

    par = parallel_inputs(x)
    escape, d_zero = _stationary_escape(point, par=par, tol=tol.escape, stationary=st)
    escape = escape & ~zero_loss.to(escape.device).unsqueeze(-1)  # no direction lowers a zero loss: no escape neuron
    zero_escape = escape & q.a_zero & ~zero_loss.unsqueeze(-1)

    if labels_only:
        is_differentiable = np.zeros(w.shape[0], bool)
    else:
        is_differentiable = differentiable(q, sp.a, par, tol.stationary).cpu().numpy()
    record = _undetermined(point, stationarity=stationarity, fo=fo, escape=escape, differentiable=is_differentiable)
    record_not_stationary(record, point, fo=fo, mask=~st, witnesses=not labels_only)
    _minima(
        record,
        point,
        d_zero=d_zero,
        mask=st & (~escape.any(dim=-1) | zero_loss),
        tol=tol,
        realisable=realisable,
        best_known=best_known_loss,
    )
    record_zero_output_saddles(record, point, zero_escape=zero_escape)
    vector = st & ~zero_loss & escape.any(dim=-1) & ~zero_escape.any(dim=-1)
    for r in vector.nonzero().flatten().tolist():
        record_second_order(record, point, d_zero=d_zero, curvature_tol=tol.curvature, run=r)
    if not labels_only:
        record_mechanisms(record, q=q, escape=escape)
    return record


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
    result: torch.Tensor = (output_gaps(fit).amax(dim=-1) > tol.approx_stationary) & ~_zero_loss(fit, tol)
    return result


def _zero_loss(fit: FitQuantities | NeuronQuantities, tol: Tolerances) -> torch.Tensor:
    """Numerically zero loss, ``L <= tau_L s_y^2`` plus the float-noise floor, (R,) bool."""
    result: torch.Tensor = fit.loss <= tol.global_loss * fit.s_y.square() + fit.loss_floor
    return result


def _stationarity(
    point: Batch, *, fo: FirstOrder, zero_loss: torch.Tensor, tol: Tolerances, clarke: bool
) -> torch.Tensor:
    """``STATIONARITY`` codes (R,) int8 on the CPU: the first-order gaps, the Clarke test, zero loss.

    ``clarke`` False skips the Clarke test of the runs that fail the directional one (they stay
    ``not_stationary``). A numerically zero loss is at least ``approx_stationary``.
    """
    gap = fo.gap.cpu()
    stationarity = torch.full(gap.shape, _C(labels.STATIONARITY, "not_stationary"), dtype=torch.int8)
    stationarity[gap <= tol.approx_stationary] = _C(labels.STATIONARITY, "approx_stationary")
    stationarity[gap <= tol.stationary] = _C(labels.STATIONARITY, "stationary")
    failing = (gap > tol.approx_stationary).nonzero().flatten()
    if failing.numel() and clarke:
        failing = failing.to(point.w.device)
        gaps = clarke_gap(point.q, point.a, point.x, fo, failing, tol.approx_stationary)
        gaps = torch.maximum(gaps, fo.out_gap[failing].amax(dim=-1))
        gaps, failing = gaps.cpu(), failing.cpu()
        stationarity[failing[gaps <= tol.approx_stationary]] = _C(labels.STATIONARITY, "clarke_only")
    approx = _C(labels.STATIONARITY, "approx_stationary")
    stationarity[zero_loss.cpu() & (stationarity > approx)] = approx
    return stationarity


def _stationary_escape(
    point: Batch, *, par: torch.Tensor, tol: float, stationary: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Escape flags and ``D_j = 0`` flags (R, m) of the ``stationary`` runs (R,) bool; False for the others.

    No other run reads them (its ``escape`` record is False), so only the stationary runs are evaluated.
    """
    q = point.q
    escape = torch.zeros_like(q.a_zero)
    d_zero = torch.zeros_like(q.a_zero)
    runs = stationary.nonzero().flatten()
    if runs.numel() == 0:
        return escape, d_zero
    esc = escape_flags(
        select_runs(q, runs),
        a=point.a[runs],
        x=point.x[runs] if point.x.shape[0] > 1 else point.x,
        par=par[runs] if par.shape[0] > 1 else par,
        leak=point.leak,
        tol=tol,
        train_output=point.train_output,
    )
    escape[runs], d_zero[runs] = esc.escape, esc.d_zero
    return escape, d_zero


def _undetermined(
    point: Batch, *, stationarity: torch.Tensor, fo: FirstOrder, escape: torch.Tensor, differentiable: np.ndarray
) -> BatchClassification:
    """The record before any verdict: the first-order facts, every run ``undetermined``, NaN numbers."""
    q = point.q
    R = point.w.shape[0]
    return unclassified_batch(
        point.w.cpu().numpy(),
        point.a.cpu().numpy(),
        loss=q.loss.cpu().numpy(),
        stationarity=stationarity.numpy(),
        first_order_gap=fo.gap.cpu().numpy(),
        point_type=np.full(R, _C(labels.POINT_TYPE, "undetermined"), np.int8),
        strictness=np.full(R, _C(labels.STRICTNESS, "unknown"), np.int8),
        differentiable=differentiable,
        escape=escape.cpu().numpy(),
        kink=q.kink.any(dim=-2).cpu().numpy(),
        roles=q.roles.cpu().numpy(),
    )


def _minima(
    record: BatchClassification,
    point: Batch,
    *,
    d_zero: torch.Tensor,
    mask: torch.Tensor,
    tol: Tolerances,
    realisable: bool,
    best_known: torch.Tensor | None,
) -> None:
    """Section 5.1 (and the fixed-output theorem): the certified local minima ``mask`` (R,) bool and their margins.

    Local or global by the same rule as every other verdict (:func:`_kind_of_minimum`).
    """
    rn = mask.cpu().numpy()
    if not rn.any():
        return
    q = point.q
    zero_loss = _zero_loss(q, tol).cpu().numpy()
    kind = _kind_of_minimum(q, zero_loss=zero_loss, tol=tol, realisable=realisable, best_known=best_known)
    certificate = np.where(zero_loss, _C(labels.CERTIFICATE, "none"), _C(labels.CERTIFICATE, "no_escape"))
    record.set_labels(
        rn, point_type=kind[rn], is_local_min="true", certificate=certificate[rn], strictness="not_applicable"
    )
    runs = np.flatnonzero(rn)
    record.margin[runs], record.margin_limit[runs] = local_min_margins(
        q, a=point.a, x=point.x, d_zero=d_zero, leak=point.leak, train_output=point.train_output, runs=runs
    )


def _kind_of_minimum(
    q: NeuronQuantities, *, zero_loss: np.ndarray, tol: Tolerances, realisable: bool, best_known: torch.Tensor | None
) -> np.ndarray:
    """``POINT_TYPE`` codes (R,) of local minima by :func:`~pipeline.stationary.minima.minimum_types`.

    The global value is the best known loss where given, else 0 for a realisable target, else unknown; a
    numerically zero loss is global whatever the value (``L >= 0``).
    """
    loss = q.loss.cpu().numpy()
    s_y = q.s_y.cpu().numpy()
    value = np.full(loss.shape, 0.0 if realisable else np.nan)
    if best_known is not None:
        bk = best_known.cpu().numpy()
        value = np.where(np.isfinite(bk), bk, value)
    kind = minimum_types(loss, global_value=value, relative=BEST_KNOWN_RELATIVE, absolute=tol.global_loss * s_y**2)
    kind[zero_loss] = _C(labels.POINT_TYPE, "global_min")
    return kind
