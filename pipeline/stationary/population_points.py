"""Classification of points of the population (infinite Gaussian data) loss.

For standard Gaussian inputs the loss ``F`` is given in closed form (:mod:`pipeline.population`,
theory.md 11.1). It is C^1 everywhere and C^2 away from zero neurons (``w_j = 0``), so where no
neuron is zero a second-order test is exact (theory.md 8.2 step 7, differentiable case):

* relative gradient norm above the tolerance: ``not_stationary``;
* the Hessian restricted to the complement of the symmetry directions has a negative eigenvalue:
  ``saddle`` (``strict``), with the eigenvector as a witness verified on the true loss;
* it is positive definite there: ``local_min`` with certificate ``hessian_morse_bott`` (the symmetry
  orbit is a critical manifold with non-degenerate normal Hessian, so a true local minimum lies
  within ``||grad F|| / lambda_min`` of the point), resolved to global or spurious when the target
  is realisable;
* numerically zero loss (``F <= tau_L s_y^2``): ``global_min``, certificate ``zero_loss`` (``F >= 0``);
* anything else, and every point with a zero neuron (where the escape-neuron theory of the
  empirical loss does not carry over): ``undetermined``.

The flat directions (:func:`_flat_complement`) are the per-neuron rescalings ``(dw_j, da_j) = (w_j, -a_j)``
when the output layer is trained, and for groups of parallel neurons every change of their lengths (and
output weights) that keeps the group's function: the minima with a neuron split into parallel copies
(theory.md 7, E3) form such a family, so their Hessian kernel is the family's tangent and the Morse-Bott
test certifies them instead of giving up.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.linalg
import torch

from pipeline import population
from pipeline.stationary import labels
from pipeline.stationary.api import SENSITIVITY_FACTORS
from pipeline.stationary.local_descent import LineModel, geometric_steps, line_path, verify_witness
from pipeline.stationary.minima import minimum_types
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
    teacher = (teacher_w.to(torch.float64), teacher_a.to(torch.float64))
    tol = population_tolerances(mode)
    record = _classify(w, a, teacher, leak=leak, train_output=train_output, realisable=realisable, tol=tol)
    gap = record.first_order_gap
    for factor in SENSITIVITY_FACTORS:
        scaled = replace(tol, stationary=tol.stationary * factor)
        runs = np.flatnonzero((gap <= scaled.stationary) != (gap <= tol.stationary))
        if runs.size == 0:
            continue
        index = torch.as_tensor(runs)
        subset = (_rows(teacher[0], index), _rows(teacher[1], index))
        other = _classify(
            w[index], a[index], subset, leak=leak, train_output=train_output, realisable=realisable, tol=scaled
        )
        record.tolerance_sensitive[runs] |= other.point_type != record.point_type[runs]
    return record


def _rows(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` of a per-run tensor; a shared one (leading size 1) as it is."""
    return tensor[index] if tensor.shape[0] > 1 else tensor


def _classify(
    w: torch.Tensor,
    a: torch.Tensor,
    teacher: tuple[torch.Tensor, torch.Tensor],
    *,
    leak: float,
    train_output: bool,
    realisable: bool,
    tol: Tolerances,
) -> BatchClassification:
    """The classification of float64 points ``w`` (R, m, d), ``a`` (R, m, k) at tolerances ``tol``."""
    teacher_w, teacher_a = teacher
    n_runs, width, _ = w.shape
    grads = population.population_gradients(w, a, teacher_w, teacher_a, leak, train_output=train_output)
    flags = population.regularity(w, a, teacher_w, teacher_a)
    zero_student = torch.zeros_like(w[:, :1]), torch.zeros_like(a[:, :1])
    s_y = torch.sqrt(2 * population.population_loss(*zero_student, teacher_w, teacher_a, leak))
    gap = (grads.norm() / (s_y**1.5 * w.shape[-1] ** 0.25)).cpu().numpy()
    record = _empty_record(w, a, grads.loss, gap, flags, tol)
    for run in range(n_runs):
        if not gap[run] <= tol.stationary or not bool(flags.twice_differentiable[run]):
            continue
        point_teacher = (teacher_w[min(run, teacher_w.shape[0] - 1)], teacher_a[min(run, teacher_a.shape[0] - 1)])
        _second_order(record, run, w[run], a[run], point_teacher, leak, train_output)
    zero_loss = float(tol.global_loss) * s_y.cpu().numpy() ** 2
    _resolve_globality(record, realisable, zero_loss)
    _zero_loss_minima(record, zero_loss)
    finite = (torch.isfinite(w).all(dim=(1, 2)) & torch.isfinite(a).all(dim=(1, 2))).cpu().numpy()
    record.point_type[~finite] = labels.code(labels.POINT_TYPE, "non_finite")
    record.is_local_min[~finite] = labels.code(labels.IS_LOCAL_MIN, "unknown")
    return record


def _empty_record(
    w: torch.Tensor,
    a: torch.Tensor,
    loss: torch.Tensor,
    gap: np.ndarray,
    flags: population.Regularity,
    tol: Tolerances,
) -> BatchClassification:
    """First-order labels; second-order fields start as 'undetermined' / NaN."""
    stationarity = np.select(
        [gap <= tol.stationary, gap <= tol.approx_stationary],
        [labels.code(labels.STATIONARITY, "stationary"), labels.code(labels.STATIONARITY, "approx_stationary")],
        labels.code(labels.STATIONARITY, "not_stationary"),
    ).astype(np.int8)
    stationary = gap <= tol.stationary
    point_type = np.where(
        stationary, labels.code(labels.POINT_TYPE, "undetermined"), labels.code(labels.POINT_TYPE, "not_stationary")
    )
    zero_neuron = flags.zero_neuron.cpu().numpy()
    roles = np.where(zero_neuron, labels.code(labels.ROLE, "zero_input"), labels.code(labels.ROLE, "active_smooth"))
    return unclassified_batch(
        w.cpu().numpy(),
        a.cpu().numpy(),
        loss=loss.cpu().numpy(),
        stationarity=stationarity,
        first_order_gap=gap,
        point_type=point_type.astype(np.int8),
        is_local_min=np.where(stationary, 2, 0).astype(np.int8),
        differentiable=flags.differentiable.cpu().numpy(),
        roles=roles.astype(np.int8),
    )


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


def _second_order(
    record: BatchClassification,
    run: int,
    w: torch.Tensor,
    a: torch.Tensor,
    teacher: tuple[torch.Tensor, torch.Tensor],
    leak: float,
    train_output: bool,
) -> None:
    """Hessian test of one stationary, twice-differentiable point; fills the record in place."""
    hessian = population.population_hessian(w, a, *teacher, leak, train_output=train_output).cpu().numpy()
    basis = _flat_complement(w, a, train_output)
    eigenvalues, eigenvectors = np.linalg.eigh(basis.T @ hessian @ basis)
    scale = max(float(np.abs(eigenvalues).max()), np.finfo(float).tiny)
    lowest = float(eigenvalues[0])
    record.curvature[run] = lowest
    if lowest > CURVATURE_TOL * scale:
        # no margin (NaN): a basin radius of this smooth loss needs a bound on its third derivatives, which the
        # test does not have; ||grad|| / lambda_min is the distance to the minimum, not a radius without descent
        record.point_type[run] = labels.code(labels.POINT_TYPE, "local_min")
        record.is_local_min[run] = 1
        record.certificate[run] = labels.code(labels.CERTIFICATE, "hessian_morse_bott")
        return
    if lowest < -CURVATURE_TOL * scale:
        direction = basis @ eigenvectors[:, 0]
        _verify_witness(record, run, w, a, teacher, leak, train_output, direction, lowest)


def _verify_witness(
    record: BatchClassification,
    run: int,
    w: torch.Tensor,
    a: torch.Tensor,
    teacher: tuple[torch.Tensor, torch.Tensor],
    leak: float,
    train_output: bool,
    direction: np.ndarray,
    curvature: float,
) -> None:
    """Label a saddle only if the loss decreases locally along the negative-curvature direction.

    :func:`pipeline.stationary.local_descent.verify_witness` on the lines ``+-t direction`` (unit), with steps
    from half the distance at which a neuron could reach zero (the loss is smooth away from zero neurons),
    the claim ``1/2 lambda t^2`` and the residue ``(grad . direction) t``.
    """
    n_w = w.numel()
    dw = torch.as_tensor(direction[:n_w].reshape(w.shape))
    da = torch.as_tensor(direction[n_w:].reshape(a.shape)) if train_output else torch.zeros_like(a)
    signs = torch.tensor([1.0, -1.0], dtype=w.dtype)
    grads = population.population_gradients(
        w[None], a[None], teacher[0][None], teacher[1][None], leak, train_output=train_output
    )
    slope = float((grads.grad_w[0] * dw).sum() + (grads.grad_a[0] * da).sum())
    moving = dw.norm(dim=-1) > 0
    radius = float((w.norm(dim=-1)[moving] / dw.norm(dim=-1)[moving]).min()) if bool(moving.any()) else np.inf
    scale = max(float(torch.sqrt(w.square().sum() + a.square().sum())), 1.0)
    steps = geometric_steps(torch.tensor([min(0.5 * radius, scale)], dtype=w.dtype)).expand(2, -1)  # (2, T)
    base = population.population_loss(w[None], a[None], teacher[0][None], teacher[1][None], leak)

    def change(moves_w: torch.Tensor, moves_a: torch.Tensor) -> torch.Tensor:
        count = moves_w.shape[0] * moves_w.shape[1]
        moved = population.population_loss(
            (w + moves_w).reshape(count, *w.shape),
            (a + moves_a).reshape(count, *a.shape),
            teacher[0].expand(count, -1, -1),
            teacher[1].expand(count, -1, -1),
            leak,
        )
        return moved.reshape(moves_w.shape[:2]) - base

    # the closed form is a sum of kernel terms of size (sum_j ||a_j|| ||w_j||)^2 and the teacher's: its rounding
    magnitude = float(base[0]) + float((w.norm(dim=-1) * a.norm(dim=-1)).sum()) ** 2
    magnitude += float((teacher[0].norm(dim=-1) * teacher[1].norm(dim=-1)).sum()) ** 2
    floor = torch.full((2,), ROUNDING_FACTOR * float(np.finfo(float).eps) * magnitude, dtype=w.dtype)
    zero = torch.zeros(2, dtype=w.dtype)
    model = LineModel(
        claim=torch.stack([zero, zero, torch.full_like(zero, 0.5 * curvature)], dim=-1),
        residue=torch.stack([zero, slope * signs], dim=-1),
    )
    path = line_path(signs[:, None, None] * dw, signs[:, None, None] * da)
    wit = verify_witness(path, change, model, steps, floor, torch.full((2,), radius, dtype=w.dtype))
    pick = wit.strongest()
    if pick is not None:
        chosen = wit.take(slice(pick, pick + 1))
        record.set_saddle(
            run, chosen, certificate="negative_curvature_witness", strictness="strict", curvature=curvature
        )


def _zero_loss_minima(record: BatchClassification, zero_loss: np.ndarray) -> None:
    """``F >= 0``: a point of numerically zero loss is a global minimum, whatever its curvature says.

    Student neurons that split one teacher neuron approach the global minimum along a flat family, with
    their directions still a little apart; the Hessian test cannot certify them, the loss does.
    """
    at_zero = (record.loss <= zero_loss) & np.isfinite(record.loss)
    record.set_labels(
        at_zero, point_type="global_min", is_local_min="true", certificate="zero_loss", strictness="not_applicable"
    )
    record.has_witness[at_zero] = False


def _resolve_globality(record: BatchClassification, realisable: bool, zero_loss: np.ndarray) -> None:
    """Realisable target: a local minimum is global iff its loss is ~0 (global value 0), else spurious."""
    if not realisable:
        return
    local = record.point_type == labels.code(labels.POINT_TYPE, "local_min")
    value = np.zeros(local.sum())
    record.point_type[local] = minimum_types(
        record.loss[local], global_value=value, relative=0.0, absolute=zero_loss[local]
    )
