"""Classification of points of the interval population loss (scalar input, affine target; theory.md 9).

The loss is the exact profiled population loss ``P(w, a)`` of :mod:`pipeline.interval_population`
(inputs uniform on ``[low, high]``, a bias, the output bias at its optimum). Its regularity decides
the test (theory.md 9.2-9.3):

* ``P`` is C^1 away from *zero neurons* (``w_j = b_j = 0``) and C^2 away from zero neurons and from
  *boundary neurons*, whose breakpoint ``t_j = -b_j / w_j`` lies exactly at ``low`` or ``high``.
* Moving a boundary neuron's breakpoint into the interval by ``delta`` switches a sliver of width
  ``delta`` to the neuron's other branch; with ``r = e - mean e`` the centred residual this changes
  ``P`` by ``c_j delta^2 + O(delta^3)``,
  ``c_j = (1 - leak) (a_j . r(E)) |w_j| / (2 (high - low))`` (``E`` the end). Moving it outwards
  leaves the neuron on its branch.

Per point (after snapping breakpoints within ``BOUNDARY_TOL (high - low)`` of an end onto it):

1. relative gradient norm ``||grad P|| / (s_y^1.5 s_x^0.5)`` above the tolerance: ``not_stationary``;
2. ``P <= tau_L s_y^2``: ``global_min`` (certificate ``zero_loss``);
3. a zero neuron: with ``a_j = 0`` it escapes if ``D_j(u) = mean[r rho(u . x~)]`` is non-zero for some
   unit ``u`` (a second-order decrease, theory 4 and 5.2: ``saddle``, ``escape_zero_output``); with
   ``a_j != 0`` a direction with ``a_j . D_j(u) < 0`` is a first-order descent (``not_stationary``);
   otherwise ``undetermined``;
4. second order on the smooth piece where every boundary neuron stays on its branch: the Hessian
   ``H`` of that piece (exact, by automatic differentiation of the exact loss) restricted to the
   complement of the exactly flat directions (see :func:`flat_directions`) and the sliver
   coefficients give the one-sided quadratic model ``Q(d) = 1/2 d^T H d + sum_j c_j max(delta_j(d), 0)^2``.
   A negative eigenvalue or a negative ``c_j`` gives a candidate descent direction, which must lower
   the true loss (``saddle``, ``strict``, certificate ``negative_curvature_witness``); a boundary neuron
   with ``a_j = 0`` and ``r(E) != 0`` gives a third-order candidate (``saddle``, ``non_strict``), which is a
   descent only where its quadratic term ``1/2 ||a_j||^2 var(rho_j)`` vanishes (a dead ReLU neuron touching
   the end): elsewhere the model turns into an increase as the step shrinks and the point stays
   ``undetermined``. ``H``
   positive definite on the complement and every ``c_j > 0``: ``local_min`` (``hessian_morse_bott``:
   the loss is constant on the flat manifold, grows quadratically off it and on every sliver), which
   is ``spurious_local_min`` as its loss is positive and the target is realisable. Anything else:
   ``undetermined``.

Every witness is verified by the rule of all classifiers (:func:`pipeline.stationary.local_descent.verify_witness`)
with its model: ``c_1 t`` for a first-order descent, ``-||D_j(u)|| t^2`` for a zero neuron's escape,
``Q(d) t^2`` (residue ``(grad P . d) t``) on the piece, and the cubic term of the third-order candidate; only the
evaluation of ``P`` along the line is particular to this loss. The point and its local quantities are in
:mod:`pipeline.stationary.interval_point`.

The labels are recomputed with the boundary tolerance scaled by 0.1 and 10; a change of the point
type sets ``tolerance_sensitive``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from pipeline.interval_population import IntervalTarget
from pipeline.stationary import labels
from pipeline.stationary.api import SENSITIVITY_FACTORS
from pipeline.stationary.interval_point import (
    ZERO_TOL,
    IntervalPoint,
    centred_residual_at_ends,
    flat_directions,
    interval_roles,
    interval_scales,
    inward_displacement,
    inward_move,
    piece_derivatives,
    sliver_terms,
    validity_radius,
    zero_neuron_derivatives,
)
from pipeline.stationary.local_descent import LineModel, Witness, geometric_steps, line_path, verify_witness
from pipeline.stationary.record import BatchClassification, Verdict, unclassified_batch
from pipeline.stationary.tolerances import Tolerances, population_tolerances

__all__ = ["classify_interval_batch"]

BOUNDARY_TOL = 1e-6
"""Breakpoints within this fraction of ``high - low`` of an interval end are snapped onto it."""
CURVATURE_TOL = 1e-9
"""Eigenvalues within this fraction of the largest eigenvalue count as zero."""
N_ANGLES = 3600
"""Unit directions ``u`` on which a zero neuron's ``D_j(u)`` is evaluated."""
TOP_STEP = 0.1
"""The largest step of a witness ladder, as a fraction of the parameter size (at most half the validity radius)."""
ROUNDING_FACTOR = 64.0
"""The rounding floor of a computed loss change, in machine epsilons of the loss."""


@dataclass(frozen=True)
class _Candidate:
    """A straight-line witness candidate ``t (dw, da)`` with its model ``sum_p coefficients[p] t^p``.

    ``coefficients`` is ``(0, c_1, c_2, ...)``: ``c_1`` is the residue of a numerically stationary point (the
    claim of a first-order descent, ``claim_from = 1``), the terms from ``claim_from`` on are the claim.
    """

    strictness: str
    dw: np.ndarray  # (m, 2)
    da: np.ndarray  # (m, k)
    coefficients: tuple[float, ...]
    claim_from: int = 2


def classify_interval_batch(
    w: torch.Tensor,
    a: torch.Tensor,
    target: IntervalTarget,
    *,
    leak: float,
    boundary_tolerance_factor: float = 1.0,
    mode: str = "end_point",
) -> BatchClassification:
    """Classify a batch of points of the interval population loss.

    Parameters
    ----------
    w, a
        Points, (R, m, 2) with rows ``(w_j, b_j)`` and (R, m, k).
    target
        The affine target on its interval (shared or per run).
    leak
        Negative slope in [0, 1).
    boundary_tolerance_factor
        Multiplies ``BOUNDARY_TOL``.
    mode
        ``"end_point"`` or ``"plateau"`` (relaxed tolerances,
        :func:`pipeline.stationary.tolerances.population_tolerances`).
    """
    tol = population_tolerances(mode)
    w, a = w.detach().to(torch.float64).cpu(), a.detach().to(torch.float64).cpu()
    target = IntervalTarget(
        target.low,
        target.high,
        target.slope.detach().to(torch.float64).cpu(),
        target.intercept.detach().to(torch.float64).cpu(),
    )
    record = unclassified_batch(w.numpy(), a.numpy())
    for run in range(w.shape[0]):
        if not (torch.isfinite(w[run]).all() and torch.isfinite(a[run]).all()):
            continue
        problem = target.select(torch.tensor([run]))
        tolerance = BOUNDARY_TOL * boundary_tolerance_factor
        point = IntervalPoint.snap(w[run], a[run], problem, leak, tolerance)
        verdict = _classify(point, tol=tol)
        roles = interval_roles(point)
        differentiable = not np.any(point.zero & (np.linalg.norm(point.a.numpy(), axis=1) > 0))
        record.set_point(
            run,
            w=point.w.numpy(),
            a=point.a.numpy(),
            loss=point.value,
            gap=point.gap,
            roles=roles,
            differentiable=differentiable,
            kink=point.kinked | point.boundary,
        )
        record.set_verdict(run, verdict)
        for factor in SENSITIVITY_FACTORS:
            snapped = IntervalPoint.snap(w[run], a[run], problem, leak, tolerance * factor)
            other = _classify(snapped, tol=tol, witnesses=False)
            record.tolerance_sensitive[run] |= other.point_type != verdict.point_type
    return record


def _classify(point: IntervalPoint, *, tol: Tolerances, witnesses: bool = True) -> Verdict:
    """Steps 1-4 of the module docstring for one snapped point."""
    s_x, s_y = interval_scales(point.target)
    if point.gap > tol.stationary:
        name = "approx_stationary" if point.gap <= tol.approx_stationary else "not_stationary"
        return Verdict(name, "not_stationary")
    if point.value <= tol.global_loss * s_y**2:
        return Verdict("stationary", "global_min", certificate="zero_loss")
    residual_at_ends = centred_residual_at_ends(point)
    if point.zero.any():
        return _zero_neuron_test(point, s_x=s_x, s_y=s_y, tol=tol, witnesses=witnesses)
    return _second_order(point, residual_at_ends, s_y, witnesses)


def _zero_neuron_test(point: IntervalPoint, *, s_x: float, s_y: float, tol: Tolerances, witnesses: bool) -> Verdict:
    """Step 3: first- and second-order directions of zero neurons (slopes against ``tol.stationary``, ``D_j`` against
    ``tol.escape``)."""
    angles = np.linspace(0.0, 2.0 * np.pi, N_ANGLES, endpoint=False)
    directions = torch.as_tensor(np.stack([np.cos(angles), np.sin(angles)], axis=1))
    values = zero_neuron_derivatives(point, directions)  # (U, k)
    tolerance = tol.stationary * s_y * s_x
    escape_tolerance = tol.escape * s_y * s_x
    escape = np.zeros(point.zero.shape, dtype=bool)
    for neuron in np.flatnonzero(point.zero):
        a_j = point.a[neuron].numpy()
        if np.linalg.norm(a_j) > ZERO_TOL * s_y:
            slopes = values @ a_j  # one-sided derivative along (dw_j, da_j) = (u, 0)
            best = int(slopes.argmin())
            if slopes[best] < -tolerance * np.linalg.norm(a_j):  # Clarke-stationary, not directionally
                dw = np.zeros(point.w.shape)
                dw[neuron] = directions[best].numpy()
                candidate = _Candidate("not_applicable", dw, np.zeros(point.a.shape), (0.0, float(slopes[best])), 1)
                found = _verify(point, [candidate]) if witnesses else None
                witness = None if found is None else found[1]
                return Verdict("clarke_only", "not_stationary", "first_order_descent", witness=witness)
            continue
        strength = np.linalg.norm(values, axis=1)
        best = int(strength.argmax())
        if strength[best] <= escape_tolerance:
            continue
        escape[neuron] = True
        if not witnesses:
            return Verdict("stationary", "saddle", escape=escape)
        dw = np.zeros(point.w.shape)
        da = np.zeros(point.a.shape)
        dw[neuron] = directions[best].numpy()
        da[neuron] = -values[best] / strength[best]
        # the network changes by t^2 da_j rho(u . x~): exactly -||D_j(u)|| t^2 plus a t^4 term
        found = _verify(point, [_Candidate("strict", dw, da, (0.0, 0.0, -float(strength[best])))])
        if found is not None:
            return Verdict(
                "stationary",
                "saddle",
                "escape_zero_output",
                "strict",
                _mechanism_bit("Z"),
                curvature=-float(strength[best]),
                witness=found[1],
                escape=escape,
            )
    return Verdict("stationary", "undetermined", escape=escape)


def _second_order(
    point: IntervalPoint, residual_at_ends: dict[float, np.ndarray], s_y: float, witnesses: bool
) -> Verdict:
    """Step 4: the one-sided quadratic model on the piece; descent directions are verified."""
    width, k = point.a.shape
    sliver, third_order = sliver_terms(point, residual_at_ends, s_y)
    gradient, hessian = piece_derivatives(point)
    complement = scipy.linalg.null_space(flat_directions(point).T)
    eigenvalues, eigenvectors = np.linalg.eigh(complement.T @ hessian @ complement)
    scale = max(float(np.abs(eigenvalues).max(initial=0.0)), np.finfo(float).tiny)
    lowest = float(eigenvalues[0]) if eigenvalues.size else np.inf
    escape = (sliver < 0) | third_order

    def candidate(strictness: str, dw: np.ndarray, da: np.ndarray, cubic: float = 0.0) -> _Candidate:
        direction = np.concatenate([dw.ravel(), da.ravel()])
        quadratic = 0.5 * direction @ hessian @ direction
        quadratic += float(sliver @ np.maximum(inward_displacement(point, dw), 0.0) ** 2)
        return _Candidate(strictness, dw, da, (0.0, float(gradient @ direction), quadratic, cubic))

    candidates: list[_Candidate] = []
    if lowest < -CURVATURE_TOL * scale:
        direction = complement @ eigenvectors[:, 0]
        dw, da = direction[: 2 * width].reshape(width, 2), direction[2 * width :].reshape(width, k)
        candidates += [candidate("strict", dw, da), candidate("strict", -dw, -da)]
    for j in np.flatnonzero(sliver < 0).tolist():
        candidates.append(candidate("strict", inward_move(point, j), np.zeros((width, k))))
    length = point.target.high - point.target.low
    for j in np.flatnonzero(third_order).tolist():
        da = np.zeros((width, k))
        r_end = residual_at_ends[point.end[j]]
        da[j] = -r_end / np.linalg.norm(r_end)
        # the sliver of width t / |w_j| adds t da_j (1 - leak) |w_j| |x - t_j| to the output there, whose mean
        # against r gives c_3 t^3 with c_3 = (1 - leak) (da_j . r(E)) / (2 (high - low) |w_j|)
        cubic = -(1.0 - point.leak) * float(np.linalg.norm(r_end)) / (2.0 * length * abs(float(point.w[j, 0])))
        candidates.append(candidate("non_strict", inward_move(point, j), da, cubic))
    if candidates:
        if not witnesses:
            return Verdict("stationary", "saddle", escape=escape)
        found = _verify(point, candidates)
        if found is not None:
            return Verdict(
                "stationary",
                "saddle",
                "negative_curvature_witness",
                candidates[found[0]].strictness,
                curvature=min(lowest, float(sliver.min(initial=0.0))),
                witness=found[1],
                escape=escape,
            )
        return Verdict("stationary", "undetermined", curvature=lowest, escape=escape)
    if lowest > CURVATURE_TOL * scale and np.all(sliver[point.boundary] > 0):
        return Verdict("stationary", "spurious_local_min", "hessian_morse_bott", curvature=lowest, escape=escape)
    return Verdict("stationary", "undetermined", curvature=lowest, escape=escape)


def _verify(point: IntervalPoint, candidates: list[_Candidate]) -> tuple[int, Witness] | None:
    """The first candidate whose decrease is verified, and its witness; None if none is.

    :func:`pipeline.stationary.local_descent.verify_witness` on the lines ``t (dw, da)`` from ``TOP_STEP`` of the
    parameter size (at most half the validity radius, :func:`pipeline.stationary.interval_point.validity_radius`)
    down the shared ladder; the true change is the exact profiled loss at the moved point minus the loss at the point.
    """
    s_x, s_y = interval_scales(point.target)
    natural = np.sqrt(s_y / s_x)  # parameter size of a network of output scale s_y
    size = max(float(np.sqrt(np.square(point.w.numpy()).sum() + np.square(point.a.numpy()).sum())), natural)
    dw = torch.as_tensor(np.stack([c.dw for c in candidates]))
    da = torch.as_tensor(np.stack([c.da for c in candidates]))
    norm = torch.sqrt(dw.square().sum(dim=(-2, -1)) + da.square().sum(dim=(-2, -1)))
    radius = torch.tensor([validity_radius(point, c.dw) for c in candidates], dtype=torch.float64)
    steps = geometric_steps(torch.minimum(0.5 * radius, TOP_STEP * size / norm))
    order = max(len(c.coefficients) for c in candidates)
    coefficients = torch.zeros(len(candidates), order, dtype=torch.float64)
    claimed = torch.zeros(len(candidates), order, dtype=torch.bool)
    for row, c in enumerate(candidates):
        coefficients[row, : len(c.coefficients)] = torch.tensor(c.coefficients, dtype=torch.float64)
        claimed[row, c.claim_from :] = True
    model = LineModel(claim=torch.where(claimed, coefficients, 0.0), residue=torch.where(claimed, 0.0, coefficients))
    base = point.loss(point.w, point.a)
    floor = torch.full(
        (len(candidates),), ROUNDING_FACTOR * np.finfo(float).eps * max(float(base), np.finfo(float).tiny)
    )

    def change(moves_w: torch.Tensor, moves_a: torch.Tensor) -> torch.Tensor:
        return point.loss(point.w + moves_w, point.a + moves_a) - base

    witness = verify_witness(line_path(dw, da), change, model, steps, floor, radius * norm)
    pick = witness.first()
    return None if pick is None else (pick, witness.take(slice(pick, pick + 1)))


def _mechanism_bit(name: str) -> int:
    return 1 << labels.code(labels.MECHANISM, name)
