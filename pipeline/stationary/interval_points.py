"""Classification of points of the interval population loss (scalar input, affine target; theory.md 9).

The loss is the exact profiled population loss ``P(w, a)`` of :mod:`pipeline.losses.interval_population`
(inputs uniform on ``[low, high]``, a bias, the output bias at its optimum). Its regularity decides
the test (theory.md 9.2-9.3):

* ``P`` is C^1 away from *zero neurons* (``w_j = b_j = 0``) and C^2 away from zero neurons and from
  *boundary neurons*, whose breakpoint ``t_j = -b_j / w_j`` lies exactly at ``low`` or ``high``.
* Moving a boundary neuron's breakpoint into the interval by ``delta`` switches a sliver of width
  ``delta`` to the neuron's other branch; with ``r = e - mean e`` the centred residual this changes
  ``P`` by ``c_j delta^2 + O(delta^3)``,
  ``c_j = (1 - leak) (a_j . r(E)) |w_j| / (2 (high - low))`` (``E`` the end). Moving it outwards
  leaves the neuron on its branch.

Per point (after snapping breakpoints within ``BOUNDARY_TOL (high - low)`` of an end onto it), by the steps every
per-point classifier shares (:func:`pipeline.stationary.local_test.judge`):

1. ``P <= tau_L s_y^2``: ``global_min`` (certificate ``none``: ``P >= 0``);
2. relative gradient norm ``||grad P|| / (s_y^1.5 s_x^0.5)`` above the tolerance: ``not_stationary``;
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

Steps 3 and 4 are this loss's local model (:class:`pipeline.stationary.local_test.LocalModel`); every witness is
verified by the rule of all classifiers (:func:`pipeline.stationary.local_descent.verify_witness`) with its model:
``c_1 t`` for a first-order descent, ``-||D_j(u)|| t^2`` for a zero neuron's escape, ``Q(d) t^2`` (residue
``(grad P . d) t``) on the piece, and the cubic term of the third-order candidate; only the evaluation of ``P``
along the line is particular to this loss. The point and its local quantities are in
:mod:`pipeline.stationary.interval_point`.

The labels are recomputed with the boundary tolerance scaled by 0.1 and 10; a change of the point
type sets ``tolerance_sensitive``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.linalg
import torch

from pipeline.losses import interval_population
from pipeline.losses.interval_population import IntervalTarget
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
from pipeline.stationary.local_descent import STEPS
from pipeline.stationary.local_test import LineCandidate, LocalModel, judge, point_type_at, steepest_descent
from pipeline.stationary.record import BatchClassification, unclassified_batch
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
    tolerance = BOUNDARY_TOL * boundary_tolerance_factor
    points: dict[int, _IntervalLocal] = {}
    for run in range(w.shape[0]):
        if not (torch.isfinite(w[run]).all() and torch.isfinite(a[run]).all()):
            continue
        problem = target.select(torch.tensor([run]))
        points[run] = _IntervalLocal(IntervalPoint.snap(w[run], a[run], problem, leak, tolerance))
        snapped = points[run].point
        differentiable = not np.any(snapped.zero & (np.linalg.norm(snapped.a.numpy(), axis=1) > 0))
        record.set_point(
            run,
            w=snapped.w.numpy(),
            a=snapped.a.numpy(),
            loss=snapped.value,
            gap=snapped.gap,
            roles=interval_roles(snapped),
            differentiable=differentiable,
            kink=snapped.kinked | snapped.boundary,
        )
    judge(record, points, tol, realisable=True)
    for run in points:
        problem = target.select(torch.tensor([run]))
        for factor in SENSITIVITY_FACTORS:
            other = _IntervalLocal(IntervalPoint.snap(w[run], a[run], problem, leak, tolerance * factor))
            record.tolerance_sensitive[run] |= (
                point_type_at(record, run, other, tol, realisable=True) != (record.point_type[run])
            )
    return record


@dataclass(frozen=True)
class _IntervalLocal:
    """A snapped point of the interval loss as the front end (:func:`pipeline.stationary.local_test.judge`) sees it:
    steps 3 and 4 of the module docstring give its local model."""

    point: IntervalPoint
    ladder: int = STEPS

    @property
    def value(self) -> float:
        """The profiled loss at the snapped point."""
        return self.point.value

    @property
    def gap(self) -> float:
        """Its relative gradient norm."""
        return self.point.gap

    @property
    def output_scale(self) -> float:
        """``s_y``, the root mean square of the target."""
        return interval_scales(self.point.target)[1]

    @cached_property
    def _base(self) -> torch.Tensor:
        return self.point.loss(self.point.w, self.point.a)

    @property
    def floor(self) -> float:
        """``ROUNDING_FACTOR`` ulps of the loss."""
        return ROUNDING_FACTOR * float(np.finfo(float).eps) * max(float(self._base), np.finfo(float).tiny)

    def change(self, moves_w: torch.Tensor, moves_a: torch.Tensor) -> torch.Tensor:
        """The exact profiled loss at the moved points minus the loss at the point."""
        return self.point.loss(self.point.w + moves_w, self.point.a + moves_a) - self._base

    def local_model(self, tol: Tolerances) -> LocalModel:
        """Step 3 (a zero neuron) or step 4 (the one-sided quadratic model on the piece)."""
        if self.point.zero.any():
            return self._zero_neuron_model(tol)
        return self._piece_model()

    def descent(self) -> LineCandidate | None:
        """The steepest-descent line (:func:`pipeline.stationary.local_test.steepest_descent`) of the exact loss."""
        point = self.point
        grads = interval_population.interval_gradients(point.w[None], point.a[None], point.target, point.leak)
        return steepest_descent(grads.grad_w[0], grads.grad_a[0], self._extent, self._curvature_along)

    def _curvature_along(self, dw: torch.Tensor, da: torch.Tensor) -> float:
        """``d^T H d`` with the Hessian of the point's piece."""
        hessian = piece_derivatives(self.point)[1]
        direction = torch.cat([dw.reshape(-1), da.reshape(-1)]).numpy()
        return float(direction @ hessian @ direction)

    def _line(self, dw: np.ndarray, da: np.ndarray, coefficients: tuple[float, ...], **verdict: Any) -> LineCandidate:
        """The candidate ``t (dw, da)`` down its ladder from :meth:`_extent`."""
        dw_t, da_t = torch.as_tensor(dw), torch.as_tensor(da)
        return LineCandidate(dw_t, da_t, coefficients, *self._extent(dw_t, da_t), **verdict)

    def _extent(self, dw: torch.Tensor, da: torch.Tensor) -> tuple[float, float]:
        """Largest step and validity radius along ``t (dw, da)``: ``TOP_STEP`` of the parameter size, at most half
        the validity radius (:func:`pipeline.stationary.interval_point.validity_radius`)."""
        point = self.point
        s_x, s_y = interval_scales(point.target)
        natural = np.sqrt(s_y / s_x)  # parameter size of a network of output scale s_y
        size = max(float(np.sqrt(np.square(point.w.numpy()).sum() + np.square(point.a.numpy()).sum())), natural)
        norm = float(torch.sqrt(dw.square().sum() + da.square().sum()))
        radius = validity_radius(point, dw.numpy())
        return min(0.5 * radius, TOP_STEP * size / norm), radius

    def _zero_neuron_model(self, tol: Tolerances) -> LocalModel:
        """Step 3: first- and second-order directions of zero neurons (slopes against ``tol.stationary``, ``D_j``
        against ``tol.escape``)."""
        point = self.point
        s_x, s_y = interval_scales(point.target)
        angles = np.linspace(0.0, 2.0 * np.pi, N_ANGLES, endpoint=False)
        directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        values = zero_neuron_derivatives(point, torch.as_tensor(directions))  # (U, k)
        zero_output = np.linalg.norm(point.a.numpy(), axis=1) <= ZERO_TOL * s_y
        for neuron in np.flatnonzero(point.zero & ~zero_output):
            a_j = point.a[neuron].numpy()
            slopes = values @ a_j  # one-sided derivative along (dw_j, da_j) = (u, 0)
            best = int(slopes.argmin())
            if slopes[best] < -tol.stationary * s_y * s_x * np.linalg.norm(a_j):  # Clarke-stationary only
                dw = np.zeros(point.w.shape)
                dw[neuron] = directions[best]
                descent = self._line(
                    dw, np.zeros(point.a.shape), (0.0, float(slopes[best])), claim_from=1,
                    strictness="not_applicable", certificate="first_order_descent",
                )  # fmt: skip
                return LocalModel(first_order=descent)
        strength = np.linalg.norm(values, axis=1)
        best = int(strength.argmax())
        escape = point.zero & zero_output & (strength[best] > tol.escape * s_y * s_x)
        candidates = []
        for neuron in np.flatnonzero(escape):
            dw, da = np.zeros(point.w.shape), np.zeros(point.a.shape)
            dw[neuron] = directions[best]
            da[neuron] = -values[best] / strength[best]
            # the network changes by t^2 da_j rho(u . x~): exactly -||D_j(u)|| t^2 plus a t^4 term
            candidates.append(
                self._line(
                    dw, da, (0.0, 0.0, -float(strength[best])), certificate="escape_zero_output",
                    mechanisms=_mechanism_bit("Z"), curvature=-float(strength[best]),
                )
            )  # fmt: skip
        return LocalModel(candidates, escape=escape)

    def _piece_model(self) -> LocalModel:
        """Step 4: the one-sided quadratic model on the piece and its candidates."""
        point = self.point
        width, k = point.a.shape
        _, s_y = interval_scales(point.target)
        residual_at_ends = centred_residual_at_ends(point)
        sliver, third_order = sliver_terms(point, residual_at_ends, s_y)
        gradient, hessian = piece_derivatives(point)
        complement = scipy.linalg.null_space(flat_directions(point).T)
        eigenvalues, eigenvectors = np.linalg.eigh(complement.T @ hessian @ complement)
        scale = max(float(np.abs(eigenvalues).max(initial=0.0)), np.finfo(float).tiny)
        lowest = float(eigenvalues[0]) if eigenvalues.size else np.inf
        escape = (sliver < 0) | third_order
        curvature = min(lowest, float(sliver.min(initial=0.0)))

        def candidate(strictness: str, dw: np.ndarray, da: np.ndarray, cubic: float = 0.0) -> LineCandidate:
            direction = np.concatenate([dw.ravel(), da.ravel()])
            quadratic = 0.5 * direction @ hessian @ direction
            quadratic += float(sliver @ np.maximum(inward_displacement(point, dw), 0.0) ** 2)
            coefficients = (0.0, float(gradient @ direction), quadratic, cubic)
            return self._line(dw, da, coefficients, strictness=strictness, curvature=curvature)

        candidates: list[LineCandidate] = []
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
        minimum = lowest > CURVATURE_TOL * scale and bool(np.all(sliver[point.boundary] > 0))
        return LocalModel(candidates, minimum=minimum, curvature=lowest, escape=escape)


def _mechanism_bit(name: str) -> int:
    return 1 << labels.code(labels.MECHANISM, name)
