"""The classification record of a batch: :class:`BatchClassification`, its verdict writers and its fill values.

Every classifier (:mod:`pipeline.stationary.classify`, :mod:`pipeline.stationary.population_points`,
:mod:`pipeline.stationary.interval_points`) returns a :class:`BatchClassification`. The record is frozen
(no field is rebound) while the classifier that owns it writes the verdicts of its runs into the arrays
with :meth:`BatchClassification.set_labels` and :meth:`BatchClassification.set_witness`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.stationary import labels

__all__ = ["BatchClassification", "missing_value", "unclassified_record"]


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

    def set_witness(
        self,
        runs: np.ndarray,
        *,
        dw: np.ndarray,
        da: np.ndarray,
        decrease: np.ndarray,
        radius: np.ndarray | None = None,
        min_step: np.ndarray | None = None,
    ) -> None:
        """Store verified witnesses ``dw`` (E, m, d), ``da`` (E, m, k) of ``runs`` (E,) with their (E,) facts.

        ``radius`` and ``min_step`` stay NaN when not given (witnesses whose check reports neither).
        """
        self.witness_w[runs] = dw
        self.witness_a[runs] = da
        self.has_witness[runs] = True
        self.witness_decrease[runs] = decrease
        if radius is not None:
            self.witness_radius[runs] = radius
        if min_step is not None:
            self.witness_min_step[runs] = min_step


def _code(table: tuple[str, ...], value: str | np.ndarray) -> int | np.ndarray:
    """The code of a label name, or codes given as they are."""
    return labels.code(table, value) if isinstance(value, str) else value


def missing_value(dtype: np.dtype) -> float | bool | int:
    """Fill value of a field for runs, neurons or plateaus with no value: NaN, False or -1."""
    if np.issubdtype(dtype, np.floating):
        return np.nan
    return False if np.issubdtype(dtype, np.bool_) else -1


def unclassified_record(w: np.ndarray, a: np.ndarray) -> dict[str, np.ndarray]:
    """The fields of a :class:`BatchClassification` for points (R, m, d), (R, m, k) with no verdict yet.

    Every point is ``non_finite`` (what a point that is never classified stays), with no certificate,
    witness or flags, and NaN for the numbers; classifiers overwrite what they decide.
    """
    n_runs, width = w.shape[:2]
    nan = np.full(n_runs, np.nan)
    return {
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
