"""Points judged from a local model: how the per-point losses plug into the front end of every loss.

The Gaussian population loss, the interval population loss and the losses of a smooth activation have no kink sets
on finitely many samples; each is C^1 (or smooth) away from a few special neurons, and each gives, at a point, a
*local model* (:class:`LocalModel`): straight-line candidate witnesses with their polynomial models in order of
preference, a first-order descent where the loss has a one-sided slope at a numerically stationary point (e.g. a
zero neuron of the interval loss), and whether its minimum certificate holds. A loss supplies a
:class:`LocalPoint`: its value, relative gradient, output scale, the rounding floor and the true change of the
loss along perturbations (the only loss-specific numerics of a witness), its local model, and the steepest-descent
line of a point that is not stationary (a first-order witness, :func:`steepest_descent`).

:func:`judge` gives such points to the front end (:func:`pipeline.stationary.front_end.judge_points`), which
applies the steps of every loss: zero loss, the relative gradient (points of these losses are analysed only when
stationary to the strict tolerance: their flows converge, so an approximately stationary point is still moving),
the first-order descent, the candidates verified by the one rule of
:func:`pipeline.stationary.local_descent.verify_witness`, the minimum certificate against the global value 0 where
the target is realisable. The tolerance-sensitivity re-runs (:func:`point_type_at`) judge a point rebuilt at
scaled tolerances for its point type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from pipeline.stationary import labels
from pipeline.stationary.front_end import Analysis, Candidates, judge_points
from pipeline.stationary.local_descent import LineModel, Witness, geometric_steps, line_path, verify_witness
from pipeline.stationary.record import BatchClassification, unclassified_batch
from pipeline.stationary.tolerances import Tolerances

__all__ = [
    "LineCandidate",
    "LocalModel",
    "LocalPoint",
    "judge",
    "line_candidates",
    "point_type_at",
    "steepest_descent",
    "verify_lines",
]


@dataclass(frozen=True)
class LineCandidate:
    """A straight-line witness candidate ``t (dw, da)`` with its model ``sum_p coefficients[p] t^p``.

    Attributes
    ----------
    dw, da : (m, d), (m, k)
        The direction.
    coefficients
        ``(0, c_1, c_2, ...)``: the terms from ``claim_from`` on are the claim, the lower ones the residue of a
        numerically stationary point (:class:`pipeline.stationary.local_descent.LineModel`).
    claim_from
        1 for a first-order descent (its slope is the claim), 2 or more otherwise.
    top
        The largest step of the ladder (at most half the validity radius).
    radius
        The validity radius of the model along the line, in units of ``t`` (inf: unbounded).
    strictness, certificate, mechanisms, curvature
        What a verified candidate makes of the point (label names of :mod:`pipeline.stationary.labels`).
    """

    dw: torch.Tensor
    da: torch.Tensor
    coefficients: tuple[float, ...]
    top: float
    radius: float = np.inf
    claim_from: int = 2
    strictness: str = "strict"
    certificate: str = "negative_curvature_witness"
    mechanisms: int = 0
    curvature: float = np.nan


@dataclass(frozen=True)
class LocalModel:
    """A loss's local analysis of a numerically stationary point of positive loss.

    Attributes
    ----------
    candidates
        Witness candidates in order of preference.
    minimum
        The loss's minimum certificate holds (only read when there is no candidate).
    certificate
        The certificate of that minimum.
    curvature
        The lowest curvature the analysis found (NaN: none computed).
    escape : (m,) bool or None
        Escape neurons.
    first_order
        A first-order descent (step 3 of the module docstring), or None.
    """

    candidates: Sequence[LineCandidate] = ()
    minimum: bool = False
    certificate: str = "hessian_morse_bott"
    curvature: float = np.nan
    escape: np.ndarray | None = None
    first_order: LineCandidate | None = field(default=None)


class LocalPoint(Protocol):
    """One point of a loss as the front end sees it."""

    @property
    def value(self) -> float:
        """The loss at the point."""

    @property
    def gap(self) -> float:
        """The relative gradient norm (the first-order gap)."""

    @property
    def output_scale(self) -> float:
        """``s_y``: at a loss of at most ``tol.global_loss s_y^2`` the point is a numerically zero-loss minimum."""

    @property
    def floor(self) -> float:
        """The rounding floor of a computed change of the loss at the point."""

    @property
    def ladder(self) -> int:
        """Steps of a witness ladder."""

    def change(self, moves_w: torch.Tensor, moves_a: torch.Tensor) -> torch.Tensor:
        """True loss changes (E, T) of perturbations ``moves_w`` (E, T, m, d), ``moves_a`` (E, T, m, k)."""

    def local_model(self, tol: Tolerances) -> LocalModel:
        """The local analysis of the point, numerically stationary and of positive loss."""

    def descent(self) -> LineCandidate | None:
        """The steepest-descent line of a point that is not stationary (:func:`steepest_descent`), or None."""


def judge(
    record: BatchClassification,
    points: Mapping[int, LocalPoint],
    tol: Tolerances,
    *,
    realisable: bool,
    labels_only: bool = False,
) -> BatchClassification:
    """Write the verdicts of ``points`` (run -> point) into ``record`` by the front end of every loss.

    ``record`` holds each judged run's loss and relative gap (the values of its point); runs without a point have
    a non-finite loss and are not judged. ``realisable``: the global value is 0. ``labels_only``: the
    tolerance-sensitivity re-runs (point types only; saddles still need a verified witness).
    """
    global_value = np.full(record.loss.shape, 0.0 if realisable else np.nan)
    return judge_points(_LocalPoints(record, points), tol, global_value=global_value, labels_only=labels_only)


def point_type_at(
    record: BatchClassification, run: int, point: LocalPoint, tol: Tolerances, *, realisable: bool
) -> int:
    """``POINT_TYPE`` code of ``point`` (run ``run`` of ``record``, re-snapped or not) at the tolerances ``tol``."""
    value, gap = np.array([point.value]), np.array([point.gap])
    scratch = unclassified_batch(record.w[run : run + 1], record.a[run : run + 1], loss=value, first_order_gap=gap)
    judged = judge(scratch, {0: point}, tol, realisable=realisable, labels_only=True)
    return int(judged.point_type[0])


class _LocalPoints:
    """Per-point losses' points as the front end's :class:`pipeline.stationary.front_end.Points`: no Clarke test,
    the steepest-descent line at moving points, and each point's :class:`LocalModel` as its analysis."""

    analyse_approximate = False  # the flows of these losses reach stationarity: an approximate point is still moving

    def __init__(self, record: BatchClassification, points: Mapping[int, LocalPoint]) -> None:
        self.record = record
        self.points = points
        self.output_scale = np.full(record.loss.shape, np.nan)
        for run, point in points.items():
            self.output_scale[run] = point.output_scale
        self.loss_floor = np.zeros(record.loss.shape)

    def clarke(self, runs: np.ndarray, tol: Tolerances) -> np.ndarray:
        """No Clarke test beyond the local model's first-order descents."""
        return np.zeros(runs.shape, bool)

    def descents(self, runs: np.ndarray) -> list[Candidates]:
        """The steepest-descent line of each point that names one."""
        lines = {int(run): self.points[int(run)].descent() for run in runs}
        return [line_candidates(self.points[run], run, [line]) for run, line in lines.items() if line is not None]

    def analyse(self, runs: np.ndarray, tol: Tolerances) -> Analysis:
        """Each run's :class:`LocalModel`: its first-order descent, else its candidates in order, else its minimum."""
        models = [self.points[int(run)].local_model(tol) for run in runs]
        width = self.record.escape.shape[1]
        escape = np.stack([np.zeros(width, bool) if m.escape is None else m.escape for m in models]) if models else None
        candidates, descents = [], []
        for run, model in zip(runs.tolist(), models, strict=True):
            point = self.points[run]
            if model.first_order is not None:
                descents.append(line_candidates(point, run, [model.first_order]))
            elif model.candidates:
                candidates.append(line_candidates(point, run, model.candidates))
        return Analysis(
            runs,
            minimum=np.array([m.minimum for m in models], bool),
            certificate=np.array([labels.code(labels.CERTIFICATE, m.certificate) for m in models], np.int8),
            curvature=np.array([m.curvature for m in models], float),
            escape=escape,
            candidates=candidates,
            descents=descents,
        )


def steepest_descent(
    gradient_w: torch.Tensor,
    gradient_a: torch.Tensor,
    extent: Callable[[torch.Tensor, torch.Tensor], tuple[float, float]],
    curvature: Callable[[torch.Tensor, torch.Tensor], float],
) -> LineCandidate | None:
    """The first-order descent along the unit direction ``-g / ||g||``: claim ``c_1 = -||g||`` (its directional
    derivative), certificate ``first_order_descent``; None where the gradient is 0 or not finite.

    ``extent(dw, da)`` gives the loss's largest step and validity radius along the unit direction,
    ``curvature(dw, da)`` its second directional derivative ``d^T H d`` there (NaN: unknown). The ladder starts at
    most where the curvature term ``1/2 d^T H d t^2`` reaches the first-order one, so that below it the loss falls
    at every step, not only at the ladder's (as the sampled loss's first-order witnesses do).
    """
    norm = float(torch.sqrt(gradient_w.square().sum() + gradient_a.square().sum()))
    if not np.isfinite(norm) or norm == 0.0:
        return None
    dw, da = -gradient_w / norm, -gradient_a / norm
    top, radius = extent(dw, da)
    second = curvature(dw, da)
    if np.isfinite(second) and second > 0:
        top = min(top, 2.0 * norm / second)
    return LineCandidate(
        dw, da, (0.0, -norm), top, radius, claim_from=1, strictness="not_applicable", certificate="first_order_descent"
    )


def line_candidates(point: LocalPoint, run: int, lines: Sequence[LineCandidate]) -> Candidates:
    """The straight lines ``t (dw, da)`` of one point as front-end candidates, in their order of preference.

    Verified by :func:`pipeline.stationary.local_descent.verify_witness`, each down its ladder from its ``top``,
    against the change of the loss that ``point`` computes and its rounding floor.
    """

    def verify() -> Witness:
        return verify_lines(point, lines)

    return Candidates(
        np.full(len(lines), run),
        verify,
        certificate=[c.certificate for c in lines],
        strictness=[c.strictness for c in lines],
        curvature=np.array([c.curvature for c in lines], float),
        rank=np.arange(len(lines)),
        mechanisms=np.array([c.mechanisms for c in lines], int),
    )


def verify_lines(point: LocalPoint, candidates: Sequence[LineCandidate]) -> Witness:
    """:func:`pipeline.stationary.local_descent.verify_witness` on the lines ``t (dw, da)`` of ``candidates`` (one
    point), each down its ladder from its ``top``, against the change of the loss that ``point`` computes."""
    dw = torch.stack([c.dw for c in candidates])
    da = torch.stack([c.da for c in candidates])
    norm = torch.sqrt(dw.square().sum(dim=(-2, -1)) + da.square().sum(dim=(-2, -1)))
    steps = geometric_steps(torch.tensor([c.top for c in candidates], dtype=dw.dtype), point.ladder)
    order = max(len(c.coefficients) for c in candidates)
    coefficients = torch.zeros(len(candidates), order, dtype=dw.dtype)
    claimed = torch.zeros(len(candidates), order, dtype=torch.bool)
    for row, c in enumerate(candidates):
        coefficients[row, : len(c.coefficients)] = torch.tensor(c.coefficients, dtype=dw.dtype)
        claimed[row, c.claim_from :] = True
    model = LineModel(claim=torch.where(claimed, coefficients, 0.0), residue=torch.where(claimed, 0.0, coefficients))
    floor = torch.full((len(candidates),), point.floor, dtype=dw.dtype)
    radius = torch.tensor([c.radius for c in candidates], dtype=dw.dtype) * norm
    return verify_witness(line_path(dw, da), point.change, model, steps, floor, radius)
