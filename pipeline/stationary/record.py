"""The classification record of a batch: :class:`BatchClassification`, its verdict writers and its fill values.

Every classifier (:mod:`pipeline.stationary.classify`, :mod:`pipeline.stationary.population_points`,
:mod:`pipeline.stationary.interval_points`, :mod:`pipeline.stationary.smooth_batch`) starts from
:func:`unclassified_batch` with the facts of its points (for the per-point classifiers run by run through
:meth:`~BatchClassification.set_point`), and the front end (:func:`pipeline.stationary.front_end.judge_points`)
writes the verdicts. The record is frozen (no field is rebound); verdicts go into the arrays only through its
methods: :meth:`~BatchClassification.set_labels` (labels of many runs), :meth:`~BatchClassification.set_witness`
(verified witnesses, :class:`pipeline.stationary.local_descent.Witness`) and :meth:`~BatchClassification.set_saddle`
(a saddle on its witness).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.stationary import labels
from pipeline.stationary.local_descent import Witness

__all__ = ["BatchClassification", "missing_value", "unclassified_batch"]


@dataclass(frozen=True)
class BatchClassification:
    """Classification of a batch; numpy arrays with a leading run axis ``R``.

    Integer fields hold codes of the tables in :mod:`pipeline.stationary.labels`.

    Attributes
    ----------
    w : (R, m, d), a : (R, m, k)
        The classified (snapped) points.
    loss, first_order_gap, margin : (R,) float
        Loss, relative stationarity gap (max over neurons), local-minimum margin: no perturbation of
        smaller Euclidean norm lowers the loss (:mod:`pipeline.stationary.margins`; NaN if not a certified
        local minimum; ``inf`` if nothing limits it).
    margin_limit : (R,) int8
        ``MARGIN_LIMIT`` code of what bounds the margin (-1 without a margin).
    stationarity, point_type, is_local_min, certificate, strictness : (R,) int8
        Codes of ``STATIONARITY``, ``POINT_TYPE``, ``IS_LOCAL_MIN``, ``CERTIFICATE``, ``STRICTNESS``.
    mechanisms : (R,) int8
        Bit field over ``MECHANISM`` (saddles only).
    differentiable, has_witness, tolerance_sensitive : (R,) bool
    curvature : (R,) float
        ``min kappa_j`` (zero-output saddles) or the Hessian eigenvalue of the second-order test.
    escape, kink : (R, m) bool
    roles : (R, m) int8
        ``ROLE`` codes.
    escape_strength : (R, m) float
        ``kappa_j`` for zero-output escape neurons, NaN elsewhere.
    witness_w : (R, m, d), witness_a : (R, m, k)
        Verified descent perturbations (NaN where ``has_witness`` is False).
    witness_decrease : (R,)
        Loss decrease achieved by the witness (NaN without one).
    witness_radius : (R,)
        Norm of the witness perturbation at the validity radius of the local expansion along it (inf:
        unbounded; NaN without a witness). The stored witness is at most half of it.
    witness_min_step : (R,)
        Norm of the witness perturbation at the smallest step at which the decrease was verified.
    """

    w: np.ndarray
    a: np.ndarray
    loss: np.ndarray
    stationarity: np.ndarray
    first_order_gap: np.ndarray
    point_type: np.ndarray
    is_local_min: np.ndarray
    certificate: np.ndarray
    mechanisms: np.ndarray
    strictness: np.ndarray
    differentiable: np.ndarray
    escape: np.ndarray
    kink: np.ndarray
    roles: np.ndarray
    escape_strength: np.ndarray
    margin: np.ndarray
    margin_limit: np.ndarray
    curvature: np.ndarray
    witness_w: np.ndarray
    witness_a: np.ndarray
    has_witness: np.ndarray
    witness_decrease: np.ndarray
    witness_radius: np.ndarray
    witness_min_step: np.ndarray
    tolerance_sensitive: np.ndarray

    def set_labels(
        self,
        runs: np.ndarray | int,
        *,
        point_type: str | np.ndarray,
        is_local_min: str,
        certificate: str | np.ndarray,
        strictness: str,
    ) -> None:
        """Write the verdict of ``runs`` (indices, a bool mask or one index).

        Each label is a name of its table, or for ``point_type`` and ``certificate`` also an array of codes
        aligned with ``runs`` (one label per run).
        """
        self.point_type[runs] = _code(labels.POINT_TYPE, point_type)
        self.is_local_min[runs] = labels.code(labels.IS_LOCAL_MIN, is_local_min)
        self.certificate[runs] = _code(labels.CERTIFICATE, certificate)
        self.strictness[runs] = labels.code(labels.STRICTNESS, strictness)

    def set_witness(self, runs: np.ndarray, witness: Witness) -> None:
        """Store the verified ones of the witnesses ``witness`` (E candidates) of ``runs`` (E,), with their facts."""
        ok = witness.verified.cpu().numpy()
        chosen = np.asarray(runs)[ok]
        self.witness_w[chosen] = witness.dw.cpu().numpy()[ok]
        self.witness_a[chosen] = witness.da.cpu().numpy()[ok]
        self.has_witness[chosen] = True
        self.witness_decrease[chosen] = witness.decrease.cpu().numpy()[ok]
        self.witness_radius[chosen] = witness.radius.cpu().numpy()[ok]
        self.witness_min_step[chosen] = witness.min_step.cpu().numpy()[ok]

    def set_saddle(self, run: int, witness: Witness, *, certificate: str, strictness: str, curvature: float) -> None:
        """Label run ``run`` a saddle on its verified ``witness`` (one candidate), with the curvature it rests on."""
        self.set_labels(run, point_type="saddle", is_local_min="false", certificate=certificate, strictness=strictness)
        self.curvature[run] = curvature
        self.set_witness(np.array([run]), witness)

    def set_point(
        self,
        run: int,
        *,
        w: np.ndarray,
        a: np.ndarray,
        loss: float,
        gap: float,
        roles: np.ndarray,
        differentiable: bool,
        kink: np.ndarray | None = None,
    ) -> None:
        """Write the classified (snapped) point of one run and its facts: ``w`` (m, d), ``a`` (m, k), ``roles`` and
        ``kink`` (m,)."""
        self.w[run], self.a[run] = w, a
        self.loss[run], self.first_order_gap[run] = loss, gap
        self.roles[run] = roles
        self.differentiable[run] = differentiable
        if kink is not None:
            self.kink[run] = kink


def _code(table: tuple[str, ...], value: str | np.ndarray) -> int | np.ndarray:
    """The code of a label name, or codes given as they are."""
    return labels.code(table, value) if isinstance(value, str) else value


def missing_value(dtype: np.dtype) -> float | bool | int:
    """Fill value of a field for runs, neurons or plateaus with no value: NaN, False or -1."""
    if np.issubdtype(dtype, np.floating):
        return np.nan
    return False if np.issubdtype(dtype, np.bool_) else -1


def unclassified_batch(w: np.ndarray, a: np.ndarray, **fields: np.ndarray) -> BatchClassification:
    """A :class:`BatchClassification` of points (R, m, d), (R, m, k) with no verdict yet.

    Every point is ``non_finite`` (what a point that is never classified stays), with no certificate,
    witness or flags, and NaN for the numbers; ``fields`` replace these (what a classifier knows of every
    run before its verdicts), and the classifier's writers overwrite what it decides.
    """
    n_runs, width = w.shape[:2]
    nan = np.full(n_runs, np.nan)
    record = {
        "w": np.array(w, dtype=np.float64),
        "a": np.array(a, dtype=np.float64),
        "loss": nan.copy(),
        "stationarity": np.full(n_runs, labels.code(labels.STATIONARITY, "not_stationary"), dtype=np.int8),
        "first_order_gap": nan.copy(),
        "point_type": np.full(n_runs, labels.code(labels.POINT_TYPE, "non_finite"), dtype=np.int8),
        "is_local_min": np.full(n_runs, labels.code(labels.IS_LOCAL_MIN, "unknown"), dtype=np.int8),
        "certificate": np.full(n_runs, labels.code(labels.CERTIFICATE, "none"), dtype=np.int8),
        "mechanisms": np.zeros(n_runs, dtype=np.int8),
        "strictness": np.full(n_runs, labels.code(labels.STRICTNESS, "not_applicable"), dtype=np.int8),
        "differentiable": np.zeros(n_runs, dtype=bool),
        "escape": np.zeros((n_runs, width), dtype=bool),
        "kink": np.zeros((n_runs, width), dtype=bool),
        "roles": np.zeros((n_runs, width), dtype=np.int8),
        "escape_strength": np.full((n_runs, width), np.nan),
        "margin": nan.copy(),
        "margin_limit": np.full(n_runs, -1, dtype=np.int8),
        "curvature": nan.copy(),
        "witness_w": np.full(w.shape, np.nan),
        "witness_a": np.full(a.shape, np.nan),
        "has_witness": np.zeros(n_runs, dtype=bool),
        "witness_decrease": nan.copy(),
        "witness_radius": nan.copy(),
        "witness_min_step": nan.copy(),
        "tolerance_sensitive": np.zeros(n_runs, dtype=bool),
    }
    record.update(fields)
    return BatchClassification(**record)
