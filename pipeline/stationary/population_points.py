"""Classification of points of the population (infinite Gaussian data) loss.

For standard Gaussian inputs the loss ``F`` is given in closed form (:mod:`pipeline.losses.population`,
theory.md 11.1). It is C^1 everywhere and C^2 away from zero neurons (``w_j = 0``), so where no
neuron is zero a second-order test is exact (theory.md 8.2 step 7, differentiable case):

* relative gradient norm above the tolerance: ``not_stationary``;
* the Hessian restricted to the complement of the symmetry directions has a negative eigenvalue:
  ``saddle`` (``strict``), with the eigenvector as a witness verified on the true loss;
* it is positive definite there: ``local_min`` with certificate ``hessian_morse_bott`` (the symmetry
  orbit is a critical manifold with non-degenerate normal Hessian, so a true local minimum lies
  within ``||grad F|| / lambda_min`` of the point), resolved to global or spurious when the target
  is realisable;
* numerically zero loss (``F <= tau_L s_y^2``): ``global_min``, certificate ``none`` (``F >= 0``: no local
  certificate is needed);
* anything else, and every point with a zero neuron (where the escape-neuron theory of the
  empirical loss does not carry over): ``undetermined``.

The flat directions (:func:`_flat_complement`) are the per-neuron rescalings ``(dw_j, da_j) = (w_j, -a_j)``
when the output layer is trained, and for groups of parallel neurons every change of their lengths (and
output weights) that keeps the group's function: the minima with a neuron split into parallel copies
(theory.md 7, E3) form such a family, so their Hessian kernel is the family's tangent and the Morse-Bott
test certifies them instead of giving up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import scipy.linalg
import torch

from pipeline.losses import population
from pipeline.losses.nets import Gradients
from pipeline.stationary import labels
from pipeline.stationary.api import SENSITIVITY_FACTORS
from pipeline.stationary.local_descent import STEPS
from pipeline.stationary.local_test import LineCandidate, LocalModel, judge, point_type_at, steepest_descent
from pipeline.stationary.record import BatchClassification, unclassified_batch
from pipeline.stationary.tolerances import Tolerances, population_tolerances

__all__ = ["classify_population_batch"]

CURVATURE_TOL = 1e-9
"""Eigenvalues within this fraction of the largest eigenvalue count as zero."""
ROUNDING_FACTOR = 64.0
"""A verified decrease exceeds this many machine epsilons of the loss's magnitude."""
PARALLEL_ANGLE = 1e-7
"""Input weights whose unit vectors differ by less than this (radians) count as parallel (one group)."""


def classify_population_batch(
    w: torch.Tensor,
    a: torch.Tensor,
    teacher_w: torch.Tensor,
    teacher_a: torch.Tensor,
    *,
    leak: float,
    train_output: bool = True,
    realisable: bool = False,
    mode: str = "end_point",
) -> BatchClassification:
    """Classify a batch of points of the population loss.

    The point types are recomputed with the stationarity tolerance scaled by 0.1 and 10 (the only
    tolerance that decides which test runs); a change sets ``tolerance_sensitive``.

    Parameters
    ----------
    w, a
        Points, (R, m, d) and (R, m, k).
    teacher_w, teacher_a
        Teacher, (R or 1, t, d) and (R or 1, t, k); student and teacher share the activation.
    leak
        Negative slope in [0, 1).
    train_output
        False: the output layer is fixed (not a parameter).
    realisable
        The student can represent the teacher: a local minimum is global iff ``F ~ 0``.
    mode
        ``"end_point"`` or ``"plateau"`` (relaxed tolerances,
        :func:`pipeline.stationary.tolerances.population_tolerances`).
    """
    w, a = w.to(torch.float64), a.to(torch.float64)
    teacher_w, teacher_a = teacher_w.to(torch.float64), teacher_a.to(torch.float64)
    tol = population_tolerances(mode)
    grads = population.population_gradients(w, a, teacher_w, teacher_a, leak, train_output=train_output)
    flags = population.regularity(w, a, teacher_w, teacher_a)
    zero_student = torch.zeros_like(w[:, :1]), torch.zeros_like(a[:, :1])
    s_y = torch.sqrt(2 * population.population_loss(*zero_student, teacher_w, teacher_a, leak))
    gap = (grads.norm() / (s_y**1.5 * w.shape[-1] ** 0.25)).cpu().numpy()
    zero_neuron = flags.zero_neuron.cpu().numpy()
    roles = np.where(zero_neuron, labels.code(labels.ROLE, "zero_input"), labels.code(labels.ROLE, "active_smooth"))
    record = unclassified_batch(
        w.cpu().numpy(),
        a.cpu().numpy(),
        loss=grads.loss.cpu().numpy(),
        first_order_gap=gap,
        differentiable=flags.differentiable.cpu().numpy(),
        roles=roles.astype(np.int8),
    )
    output_scale = np.broadcast_to(s_y.cpu().numpy(), gap.shape)
    finite = (torch.isfinite(w).all(dim=(1, 2)) & torch.isfinite(a).all(dim=(1, 2))).cpu().numpy()
    points = {
        run: _PopulationPoint(
            w[run],
            a[run],
            (_row(teacher_w, run), _row(teacher_a, run)),
            leak=leak,
            train_output=train_output,
            value=float(record.loss[run]),
            gap=float(gap[run]),
            output_scale=float(output_scale[run]),
            twice_differentiable=bool(flags.twice_differentiable[run]),
        )  # fmt: skip
        for run in np.flatnonzero(finite).tolist()
    }
    judge(record, points, tol, realisable=realisable)
    for run, point in points.items():
        for factor in SENSITIVITY_FACTORS:
            scaled = replace(tol, stationary=tol.stationary * factor)
            if (gap[run] <= scaled.stationary) != (gap[run] <= tol.stationary):
                other = point_type_at(record, run, point, scaled, realisable=realisable)
                record.tolerance_sensitive[run] |= other != record.point_type[run]
    return record


def _row(tensor: torch.Tensor, run: int) -> torch.Tensor:
    """Row ``run`` of a per-run tensor (the only row of a shared one)."""
    return tensor[min(run, tensor.shape[0] - 1)]


@dataclass
class _PopulationPoint:
    """One point of the population loss as the front end sees it (:func:`pipeline.stationary.local_test.judge`).

    The local model (theory.md 8.2 step 7, differentiable case): where no neuron is zero the loss is C^2; the
    Hessian restricted to the complement of the exactly flat directions (:func:`_flat_complement`) gives a
    negative-curvature candidate in both signs (claim ``1/2 lambda t^2``, residue ``(grad . d) t``, steps from half
    the distance at which a neuron could reach zero) or, positive definite, the ``hessian_morse_bott`` minimum.
    A point with a zero neuron has no local model here (``undetermined``).
    """

    w: torch.Tensor
    a: torch.Tensor
    teacher: tuple[torch.Tensor, torch.Tensor]
    leak: float
    train_output: bool
    value: float
    gap: float
    output_scale: float
    twice_differentiable: bool
    ladder: int = STEPS

    def local_model(self, tol: Tolerances) -> LocalModel:
        """The Hessian test of the module docstring (no model at a point with a zero neuron)."""
        if not self.twice_differentiable:
            return LocalModel()
        w, a, teacher = self.w, self.a, self.teacher
        hessian = population.population_hessian(w, a, *teacher, self.leak, train_output=self.train_output)
        basis = _flat_complement(w, a, self.train_output)
        eigenvalues, eigenvectors = np.linalg.eigh(basis.T @ hessian.cpu().numpy() @ basis)
        scale = max(float(np.abs(eigenvalues).max()), np.finfo(float).tiny)
        lowest = float(eigenvalues[0])
        if lowest >= -CURVATURE_TOL * scale:
            # no margin: a basin radius of this smooth loss needs a bound on its third derivatives, which the
            # test does not have; ||grad|| / lambda_min is the distance to the minimum, not a radius without descent
            return LocalModel(minimum=lowest > CURVATURE_TOL * scale, curvature=lowest)
        return LocalModel(self._curvature_candidates(basis @ eigenvectors[:, 0], lowest), curvature=lowest)

    def descent(self) -> LineCandidate | None:
        """The steepest-descent line (:func:`pipeline.stationary.local_test.steepest_descent`)."""
        gradient = self._gradients
        return steepest_descent(gradient.grad_w[0], gradient.grad_a[0], self._extent, self._curvature_along)

    def _curvature_along(self, dw: torch.Tensor, da: torch.Tensor) -> float:
        """``d^T H d`` with the closed-form Hessian (NaN where a zero neuron leaves it undefined)."""
        if not self.twice_differentiable:
            return np.nan
        hessian = population.population_hessian(
            self.w, self.a, *self.teacher, self.leak, train_output=self.train_output
        )
        direction = torch.cat([dw.reshape(-1), da.reshape(-1)]) if self.train_output else dw.reshape(-1)
        return float(direction @ hessian @ direction)

    def _curvature_candidates(self, direction: np.ndarray, curvature: float) -> list[LineCandidate]:
        """The lines ``+-t direction`` (unit) with the claim ``1/2 lambda t^2`` and the residue ``(grad . d) t``."""
        w, a = self.w, self.a
        n_w = w.numel()
        dw = torch.as_tensor(direction[:n_w].reshape(w.shape))
        da = torch.as_tensor(direction[n_w:].reshape(a.shape)) if self.train_output else torch.zeros_like(a)
        slope = float((self._gradients.grad_w[0] * dw).sum() + (self._gradients.grad_a[0] * da).sum())
        top, radius = self._extent(dw, da)
        return [
            LineCandidate(sign * dw, sign * da, (0.0, slope * sign, 0.5 * curvature), top, radius, curvature=curvature)
            for sign in (1.0, -1.0)
        ]

    def _extent(self, dw: torch.Tensor, da: torch.Tensor) -> tuple[float, float]:
        """Largest step and validity radius along the unit direction ``(dw, da)``: half the distance at which a
        neuron could reach zero, at most the parameter scale."""
        w, a = self.w, self.a
        moving = dw.norm(dim=-1) > 0
        radius = float((w.norm(dim=-1)[moving] / dw.norm(dim=-1)[moving]).min()) if bool(moving.any()) else np.inf
        scale = max(float(torch.sqrt(w.square().sum() + a.square().sum())), 1.0)
        return min(0.5 * radius, scale), radius

    @cached_property
    def _gradients(self) -> Gradients:
        """The gradients at the point (a batch of one)."""
        w, a, teacher = self.w, self.a, self.teacher
        return population.population_gradients(
            w[None], a[None], teacher[0][None], teacher[1][None], self.leak, train_output=self.train_output
        )

    @cached_property
    def _base(self) -> torch.Tensor:
        """The loss at the point as :meth:`change` evaluates it, (1,)."""
        return population.population_loss(
            self.w[None], self.a[None], self.teacher[0][None], self.teacher[1][None], self.leak
        )

    @property
    def floor(self) -> float:
        """``ROUNDING_FACTOR`` ulps of the closed form's terms (kernel terms of size ``(sum_j ||a_j|| ||w_j||)^2``
        and the teacher's)."""
        w, a, teacher = self.w, self.a, self.teacher
        magnitude = float(self._base[0]) + float((w.norm(dim=-1) * a.norm(dim=-1)).sum()) ** 2
        magnitude += float((teacher[0].norm(dim=-1) * teacher[1].norm(dim=-1)).sum()) ** 2
        return ROUNDING_FACTOR * float(np.finfo(float).eps) * magnitude

    def change(self, moves_w: torch.Tensor, moves_a: torch.Tensor) -> torch.Tensor:
        """The closed-form loss at the moved points minus the loss at the point, (E, T)."""
        w, a, teacher = self.w, self.a, self.teacher
        count = moves_w.shape[0] * moves_w.shape[1]
        moved = population.population_loss(
            (w + moves_w).reshape(count, *w.shape),
            (a + moves_a).reshape(count, *a.shape),
            teacher[0].expand(count, -1, -1),
            teacher[1].expand(count, -1, -1),
            self.leak,
        )
        return moved.reshape(moves_w.shape[:2]) - self._base


def _flat_complement(w: torch.Tensor, a: torch.Tensor, train_output: bool) -> np.ndarray:
    """Orthonormal basis (P, P - f) of the complement of the directions along which ``F`` is exactly constant.

    Neurons with parallel input weights (same direction ``u``, angle below ``PARALLEL_ANGLE``) form a group
    whose contribution is ``(sum_j a_j ||w_j||) rho(u . x)``: every change of the lengths ``||w_j||`` (along
    ``u``) and, if trained, of the output weights that keeps ``sum_j a_j ||w_j||`` fixed leaves the network, and
    hence ``F``, unchanged. Those directions (the null space of ``(dl, da) -> sum_j (da_j l_j + a_j dl_j)``)
    are the tangent of a manifold of critical points: the per-neuron rescalings (a group of one, trained
    output) and the splits of one neuron into parallel copies of theory.md 7 (E3), whatever the ratio.
    """
    W, A = w.cpu().numpy(), a.cpu().numpy()
    width, d = W.shape
    k = A.shape[1]
    size = W.size + (A.size if train_output else 0)
    lengths = np.linalg.norm(W, axis=1)
    units = W / np.where(lengths > 0, lengths, 1.0)[:, None]
    directions = []
    for group in _parallel_groups(units, lengths):
        g = len(group)
        # the linear map (dl (g,), da (g, k)) -> sum_j da_j l_j + a_j dl_j, as a (k, g + g k) matrix
        columns = [A[j] for j in group]
        if train_output:
            columns += [lengths[j] * np.eye(k)[:, c] for j in group for c in range(k)]
        for null in scipy.linalg.null_space(np.column_stack(columns)).T:
            vector = np.zeros(size)
            for position, j in enumerate(group):
                vector[j * d : (j + 1) * d] = null[position] * units[j]
                if train_output:
                    start = W.size + j * k
                    vector[start : start + k] = null[g + position * k : g + (position + 1) * k]
            directions.append(vector)
    if not directions:
        return np.eye(size)
    complement: np.ndarray = scipy.linalg.null_space(np.array(directions))
    return complement


def _parallel_groups(units: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    """Groups of non-zero neurons with parallel input weights (single-linkage on the angle)."""
    groups: list[list[int]] = []
    for j in np.flatnonzero(lengths > 0):
        for group in groups:
            if np.linalg.norm(units[group[0]] - units[j]) <= PARALLEL_ANGLE:
                group.append(int(j))
                break
        else:
            groups.append([int(j)])
    return groups
