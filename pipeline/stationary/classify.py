"""One classification pass over a batch of points (theory.md section 8.2, steps 1-8).

``classify_once`` takes float64 tensors with a leading run axis and returns a
:class:`~pipeline.stationary.record.BatchClassification` (label codes from :mod:`pipeline.stationary.labels`).
The sampled loss gives its snapped points to the front end of every loss
(:func:`pipeline.stationary.front_end.judge_points`: zero loss, first-order gaps with the Clarke test of
section 3, first-order descents, the local analysis, verified witnesses, minima): its analysis is the escape
test of section 4 (no escape neuron: a ``no_escape`` minimum), the escape curves of zero-output escape neurons
and the second-order test of vector outputs (the candidates in :mod:`pipeline.stationary.saddles`); the
mechanisms and the local-minimum margins are written after the verdicts. ``settled_not_stationary`` is the
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
from pipeline.stationary.front_end import Analysis, Candidates, judge_points
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
from pipeline.stationary.record import BatchClassification, unclassified_batch
from pipeline.stationary.saddles import (
    Batch,
    descent_candidates,
    record_mechanisms,
    second_order_verdict,
    zero_output_candidates,
)
from pipeline.stationary.tolerances import Tolerances

__all__ = ["classify_once", "settled_not_stationary"]

_C = labels.code


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
        differentiability, first-order witnesses, mechanisms or margins. Saddles still need their locally
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
    par = parallel_inputs(x)
    if labels_only:
        is_differentiable = np.zeros(w.shape[0], bool)
    else:
        is_differentiable = differentiable(q, sp.a, par, tol.stationary).cpu().numpy()
    points = _SampledPoints(point, tol=tol, par=par, differentiable=is_differentiable)
    global_value = _global_value(realisable, best_known_loss, w.shape[0])
    record = judge_points(points, tol, global_value=global_value, labels_only=labels_only)
    if labels_only:
        return record
    escape = torch.as_tensor(record.escape, device=w.device)
    record_mechanisms(record, q=q, escape=escape)
    certified = record.is_local_min == _C(labels.IS_LOCAL_MIN, "true")
    zero_loss = certified & (record.certificate == _C(labels.CERTIFICATE, "none"))
    minima = zero_loss | (record.certificate == _C(labels.CERTIFICATE, "no_escape"))
    runs = np.flatnonzero(minima)
    if runs.size:
        record.margin[runs], record.margin_limit[runs] = local_min_margins(
            q, a=sp.a, x=x, d_zero=points.d_zero, leak=leak, train_output=train_output, runs=runs
        )
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


def _global_value(realisable: bool, best_known: torch.Tensor | None, n_runs: int) -> np.ndarray:
    """The global value per run (R,): the best known loss where given, else 0 for a realisable target, else NaN."""
    value = np.full(n_runs, 0.0 if realisable else np.nan)
    if best_known is None:
        return value
    known = best_known.cpu().numpy()
    return np.where(np.isfinite(known), known, value)


class _SampledPoints:
    """The snapped points of a classification pass as the front end (:func:`judge_points`) sees them.

    The escape flags and ``D_j = 0`` flags are computed once, for the runs the front end analyses and the
    zero-loss runs (whose margins read them); every other run's flags are False.
    """

    analyse_approximate = True  # gradient descent zig-zags across kinks: stationarity only to the relaxed tolerance

    def __init__(self, point: Batch, *, tol: Tolerances, par: torch.Tensor, differentiable: np.ndarray) -> None:
        self.point = point
        q = point.q
        self.fo = first_order(q, point.a, point.x, point.train_output, tol.approx_stationary)
        zero_loss = _zero_loss(q, tol)
        self.escape, self.d_zero = _stationary_escape(
            point, par=par, tol=tol.escape, stationary=(self.fo.gap <= tol.approx_stationary) | zero_loss
        )
        self.escape &= ~zero_loss.to(self.escape.device).unsqueeze(-1)  # no direction lowers a zero loss
        self.output_scale = q.s_y.cpu().numpy()
        self.loss_floor = q.loss_floor.cpu().numpy()
        self.record = unclassified_batch(
            point.w.cpu().numpy(),
            point.a.cpu().numpy(),
            loss=q.loss.cpu().numpy(),
            first_order_gap=self.fo.gap.cpu().numpy(),
            strictness=np.full(point.w.shape[0], _C(labels.STRICTNESS, "unknown"), np.int8),
            differentiable=differentiable,
            kink=q.kink.any(dim=-2).cpu().numpy(),
            roles=q.roles.cpu().numpy(),
        )

    def clarke(self, runs: np.ndarray, tol: Tolerances) -> np.ndarray:
        """The Clarke test of section 3 (with the output gaps) on ``runs``."""
        point, fo = self.point, self.fo
        failing = torch.as_tensor(runs, device=point.w.device)
        gaps = clarke_gap(point.q, point.a, point.x, fo, failing, tol.approx_stationary)
        gaps = torch.maximum(gaps, fo.out_gap[failing].amax(dim=-1))
        result: np.ndarray = (gaps <= tol.approx_stationary).cpu().numpy()
        return result

    def descents(self, runs: np.ndarray) -> list[Candidates]:
        """The steepest first-order descents of ``runs``."""
        return descent_candidates(self.point, fo=self.fo, runs=runs)

    def analyse(self, runs: np.ndarray, tol: Tolerances) -> Analysis:
        """Section 8.2 steps 6-7: no escape neuron -> ``no_escape`` minimum; a zero-output escape neuron -> its
        escape curve; vector output with escape neurons ``a_j != 0`` -> the second-order test."""
        q = self.point.q
        device = self.escape.device
        selected = torch.zeros(self.escape.shape[0], dtype=torch.bool, device=device)
        selected[torch.as_tensor(runs, device=device)] = True
        escape = self.escape & selected.unsqueeze(-1)
        zero_escape = escape & q.a_zero
        candidates, saddle_runs, kappa = zero_output_candidates(self.record, self.point, zero_escape=zero_escape)
        minimum = ~escape[runs].any(dim=-1).cpu().numpy()
        certificate = np.full(runs.shape, _C(labels.CERTIFICATE, "no_escape"), np.int8)
        curvature = np.full(runs.shape, np.nan)
        curvature[np.searchsorted(runs, saddle_runs)] = kappa
        vector = selected & escape.any(dim=-1) & ~zero_escape.any(dim=-1)
        for r in vector.nonzero().flatten().tolist():
            verdict = second_order_verdict(self.point, d_zero=self.d_zero, curvature_tol=tol.curvature, run=r)
            row = int(np.searchsorted(runs, r))
            candidates += verdict.candidates
            minimum[row], curvature[row] = verdict.minimum, verdict.curvature
            certificate[row] = _C(labels.CERTIFICATE, "hessian_morse_bott")
        return Analysis(runs, minimum, certificate, curvature, escape[runs].cpu().numpy(), candidates)


def _stationary_escape(
    point: Batch, *, par: torch.Tensor, tol: float, stationary: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Escape flags and ``D_j = 0`` flags (R, m) of the ``stationary`` runs (R,) bool; False for the others."""
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
