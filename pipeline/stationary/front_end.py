"""The classifier's front end: the steps every loss's points go through to a verdict (theory.md 8.2).

A loss gives its points as :class:`Points`: the record of their first-order facts (loss, relative gap, roles,
kinks), the data scale, and three hooks: the Clarke test of points that fail the directional one, the
first-order descents of points that are not stationary, and the local analysis (:class:`Analysis`) of the
numerically stationary points of positive loss. :func:`judge_points` applies the steps, the same for every loss:

1. numerically zero loss, ``L <= tau_L s_y^2`` plus the loss's float-noise floor: ``global_min``, certificate
   ``none`` (the loss is non-negative: no local certificate is needed), whatever the relative gap says (it is
   ill-conditioned as the loss goes to 0); stationarity at least ``approx_stationary``;
2. the relative gap: ``stationary`` up to ``tol.stationary``, ``approx_stationary`` up to
   ``tol.approx_stationary``, ``clarke_only`` where the loss's Clarke test holds, else ``not_stationary``. Points
   past the analysed limit are ``not_stationary``: ``tol.approx_stationary`` for a loss with kinks that gradient
   descent zig-zags across (its points reach stationarity only to within the relaxed tolerance,
   ``Points.analyse_approximate``), ``tol.stationary`` for the others; a verified first-order descent of the
   loss (``first_order_descent``) makes ``is_local_min`` false;
3. the analysis of the other points: a first-order descent it names (a one-sided slope at a numerically
   stationary point) makes the point ``not_stationary`` with stationarity ``clarke_only``;
4. its witness candidates: the verified one of the run's first rank (of those, the largest decrease) makes the
   point a ``saddle`` with the candidate's certificate, strictness and curvature; a run whose candidates all fail
   is ``undetermined``: a saddle is never a guess;
5. no candidate and the analysis's minimum certificate holds: a local minimum, ``global_min`` where its loss is
   within ``BEST_KNOWN_RELATIVE`` (plus ``tau_L s_y^2``) of the global value (0 for a realisable target, or the
   best known loss), ``spurious_local_min`` above it, ``local_min`` where the global value is unknown; anything
   else ``undetermined``.

Every witness is verified by the one rule of :func:`pipeline.stationary.local_descent.verify_witness`; the loss
gives the path, its polynomial model and the true change of the loss along it, in :class:`Candidates`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from pipeline.stationary import labels
from pipeline.stationary.local_descent import Witness
from pipeline.stationary.minima import minimum_types
from pipeline.stationary.record import BatchClassification
from pipeline.stationary.tolerances import Tolerances

__all__ = ["BEST_KNOWN_RELATIVE", "Analysis", "Candidates", "Points", "judge_points"]

_C = labels.code

BEST_KNOWN_RELATIVE = 1e-6
"""A local minimum within this relative distance (plus ``tau_L s_y^2``) of the global value is global."""


@dataclass(frozen=True)
class Candidates:
    """``E`` witness candidates (one or more per run) and what a verified one makes of its run.

    Attributes
    ----------
    runs : (E,) int
        The run of each candidate.
    verify
        Their verification by :func:`pipeline.stationary.local_descent.verify_witness` (a :class:`Witness` of
        ``E`` candidates); a search that already applied that rule (the higher-order probe) gives its outcome.
    certificate, strictness
        Label names: one for every candidate, or one per candidate.
    curvature : (E,)
        The curvature a verified candidate's verdict rests on (NaN: none).
    rank : (E,) int or None
        Order of preference within a run (0 first; None: all 0).
    mechanisms : (E,) int or None
        ``MECHANISM`` bit fields of the saddles (None: the loss records them itself).
    """

    runs: np.ndarray
    verify: Callable[[], Witness]
    certificate: str | Sequence[str]
    strictness: str | Sequence[str] = "strict"
    curvature: np.ndarray | None = None
    rank: np.ndarray | None = None
    mechanisms: np.ndarray | None = None

    def certificate_codes(self) -> np.ndarray:
        """``CERTIFICATE`` codes (E,) of the candidates."""
        names = [self.certificate] * len(self.runs) if isinstance(self.certificate, str) else self.certificate
        return np.array([_C(labels.CERTIFICATE, name) for name in names], np.int8)

    def facts(self, index: int) -> tuple[str, str, float, int, int]:
        """Certificate, strictness, curvature, rank and mechanisms of candidate ``index``."""

        def pick(value: str | Sequence[str]) -> str:
            return value if isinstance(value, str) else value[index]

        curvature = np.nan if self.curvature is None else float(self.curvature[index])
        rank = 0 if self.rank is None else int(self.rank[index])
        mechanisms = 0 if self.mechanisms is None else int(self.mechanisms[index])
        return pick(self.certificate), pick(self.strictness), curvature, rank, mechanisms


@dataclass(frozen=True)
class Analysis:
    """A loss's local analysis of ``A`` numerically stationary points of positive loss.

    Attributes
    ----------
    runs : (A,) int
        The analysed runs.
    minimum : (A,) bool
        The loss's minimum certificate holds (read only for runs without candidates).
    certificate : (A,) int8
        ``CERTIFICATE`` code of that minimum.
    curvature : (A,)
        The curvature of the analysis (NaN: none): recorded for minima and undetermined points.
    escape : (A, m) bool or None
        Escape neurons (None: not recorded).
    candidates
        Saddle witness candidates (step 4 of the module docstring).
    descents
        First-order descents at numerically stationary points (step 3).
    """

    runs: np.ndarray
    minimum: np.ndarray
    certificate: np.ndarray
    curvature: np.ndarray
    escape: np.ndarray | None = None
    candidates: Sequence[Candidates] = field(default=())
    descents: Sequence[Candidates] = field(default=())


class Points(Protocol):
    """``R`` points of one loss as the front end sees them."""

    @property
    def record(self) -> BatchClassification:
        """The unclassified record: the points, their loss, relative gap and the loss's other facts."""

    @property
    def output_scale(self) -> np.ndarray:
        """``s_y`` (R,): at a loss of at most ``tol.global_loss s_y^2`` a point is a zero-loss minimum."""

    @property
    def analyse_approximate(self) -> bool:
        """Approximately stationary points are analysed (step 2 of the module docstring)."""

    @property
    def loss_floor(self) -> np.ndarray:
        """The float-noise floor of the computed loss (R,), added to that level."""

    def clarke(self, runs: np.ndarray, tol: Tolerances) -> np.ndarray:
        """Which of ``runs`` (failing the directional test) pass the Clarke test, (len(runs),) bool."""

    def descents(self, runs: np.ndarray) -> Sequence[Candidates]:
        """First-order descent candidates of the non-stationary ``runs`` (step 2)."""

    def analyse(self, runs: np.ndarray, tol: Tolerances) -> Analysis:
        """The local analysis of ``runs``: numerically stationary, positive loss."""


def judge_points(
    points: Points, tol: Tolerances, *, global_value: np.ndarray, labels_only: bool = False
) -> BatchClassification:
    """Write the verdicts of steps 1-5 of the module docstring into ``points.record`` and return it.

    Parameters
    ----------
    global_value : (R,)
        The global minimum value per run (NaN: unknown).
    labels_only
        Decide ``point_type`` only (the tolerance-sensitivity re-runs): no Clarke test and no first-order
        descents. Saddles still need a verified witness.
    """
    record = points.record
    finite = np.isfinite(record.loss) & np.isfinite(record.first_order_gap)
    gap = np.where(finite, record.first_order_gap, np.inf)
    zero = finite & (record.loss <= tol.global_loss * points.output_scale**2 + points.loss_floor)
    stationarity = _stationarity(points, gap, tol, clarke=not labels_only)
    record.stationarity[:] = np.where(
        zero, np.minimum(stationarity, _C(labels.STATIONARITY, "approx_stationary")), stationarity
    )
    limit = tol.approx_stationary if points.analyse_approximate else tol.stationary
    moving = finite & ~zero & (gap > limit)
    record.set_labels(
        moving, point_type="not_stationary", is_local_min="unknown", certificate="none", strictness="not_applicable"
    )
    if not labels_only:
        _record_descents(record, points.descents(np.flatnonzero(moving)), clarke_only=False)
    record.set_labels(
        zero, point_type="global_min", is_local_min="true", certificate="none", strictness="not_applicable"
    )
    analysed = np.flatnonzero(finite & ~zero & ~moving)
    if analysed.size:
        _record_analysis(record, points.analyse(analysed, tol), global_value, tol, points.output_scale)
    return record


def _stationarity(points: Points, gap: np.ndarray, tol: Tolerances, *, clarke: bool) -> np.ndarray:
    """``STATIONARITY`` codes (R,) of the relative gaps, with the loss's Clarke test of the failing runs."""
    stationarity = np.full(gap.shape, _C(labels.STATIONARITY, "not_stationary"), np.int8)
    stationarity[gap <= tol.approx_stationary] = _C(labels.STATIONARITY, "approx_stationary")
    stationarity[gap <= tol.stationary] = _C(labels.STATIONARITY, "stationary")
    failing = np.flatnonzero(np.isfinite(gap) & (gap > tol.approx_stationary))
    if clarke and failing.size:
        stationarity[failing[points.clarke(failing, tol)]] = _C(labels.STATIONARITY, "clarke_only")
    return stationarity


def _record_descents(record: BatchClassification, descents: Sequence[Candidates], *, clarke_only: bool) -> None:
    """Store the verified first-order descents: ``is_local_min`` false, certificate ``first_order_descent``."""
    for group in descents:
        if clarke_only:
            record.stationarity[group.runs] = _C(labels.STATIONARITY, "clarke_only")
            record.set_labels(
                group.runs,
                point_type="not_stationary",
                is_local_min="unknown",
                certificate="none",
                strictness="not_applicable",
            )
        witness = group.verify()
        record.set_witness(group.runs, witness)
        ok = witness.verified.cpu().numpy()
        record.is_local_min[group.runs[ok]] = _C(labels.IS_LOCAL_MIN, "false")
        record.certificate[group.runs[ok]] = group.certificate_codes()[ok]


def _record_analysis(
    record: BatchClassification,
    analysis: Analysis,
    global_value: np.ndarray,
    tol: Tolerances,
    output_scale: np.ndarray,
) -> None:
    """Steps 3-5 of the module docstring on the analysed runs."""
    runs = analysis.runs
    if analysis.escape is not None:
        record.escape[runs] = analysis.escape
    record.set_labels(runs, point_type="undetermined", is_local_min="unknown", certificate="none", strictness="unknown")
    record.curvature[runs] = analysis.curvature
    descended = np.concatenate([group.runs for group in analysis.descents] or [np.zeros(0, int)])
    _record_descents(record, analysis.descents, clarke_only=True)
    with_candidates = np.concatenate([group.runs for group in analysis.candidates] or [np.zeros(0, int)])
    _record_saddles(record, analysis.candidates, skip=descended)
    minimum = analysis.minimum & ~np.isin(runs, with_candidates) & ~np.isin(runs, descended)
    chosen = runs[minimum]
    if chosen.size == 0:
        return
    absolute = tol.global_loss * output_scale[chosen] ** 2
    kind = minimum_types(
        record.loss[chosen], global_value=global_value[chosen], relative=BEST_KNOWN_RELATIVE, absolute=absolute
    )
    record.set_labels(
        chosen,
        point_type=kind,
        is_local_min="true",
        certificate=analysis.certificate[minimum],
        strictness="not_applicable",
    )


def _record_saddles(record: BatchClassification, groups: Sequence[Candidates], *, skip: np.ndarray) -> None:
    """Step 4: per run, the verified candidate of the first rank and, among those, of the largest decrease.

    Runs in ``skip`` (a first-order descent decided them) are not looked at.
    """
    best: dict[int, tuple[tuple[int, float], Candidates, Witness, int]] = {}
    for group in groups:
        if np.isin(group.runs, skip).all():
            continue
        witness = group.verify()
        verified = witness.verified.cpu().numpy()
        decrease = witness.decrease.cpu().numpy()
        for index in np.flatnonzero(verified & ~np.isin(group.runs, skip)).tolist():
            run = int(group.runs[index])
            key = (group.facts(index)[3], -float(decrease[index]))
            if run not in best or key < best[run][0]:
                best[run] = (key, group, witness, index)
    for run, (_, group, witness, index) in best.items():
        certificate, strictness, curvature, _, mechanisms = group.facts(index)
        record.set_saddle(
            run, witness.take(slice(index, index + 1)), certificate=certificate, strictness=strictness,
            curvature=curvature,
        )  # fmt: skip
        record.mechanisms[run] = mechanisms
