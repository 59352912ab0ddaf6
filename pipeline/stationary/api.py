"""Public entry points ``classify_batch`` and ``classify_point`` (docs/classifier-api.md).

``classify_batch`` casts to float64 on the input device, runs one classification pass
(:func:`pipeline.stationary.classify.classify_once`) and re-runs, only for the runs whose kink sets
change, with the kink tolerance scaled by 0.1 and 10 (``tolerance_sensitive``: the point type
changes). The kink sets at all three tolerances come from one evaluation of ``|z|`` and the bound
(both scale linearly), and the re-runs compute labels only (no witnesses); runs whose output gaps
already make them ``not_stationary`` skip the kink solves (an exact screen, see ``_point_types``).
``classify_point`` wraps it with ``R = 1`` and decodes the labels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from numpy.typing import ArrayLike

from pipeline.stationary import labels
from pipeline.stationary.classify import classify_once, settled_not_stationary
from pipeline.stationary.kinks import SnappedPoint, kink_scores, resnap_point
from pipeline.stationary.record import BatchClassification, missing_value
from pipeline.stationary.tolerances import Tolerances, tolerances_for

__all__ = ["BatchClassification", "PointReport", "classify_batch", "classify_point"]

SENSITIVITY_FACTORS: tuple[float, ...] = (0.1, 10.0)


@dataclass(frozen=True)
class PointReport:
    """Decoded classification of one point (field meanings: docs/classifier-api.md)."""

    w: np.ndarray
    a: np.ndarray
    loss: float
    stationarity: str
    first_order_gap: float
    point_type: str
    is_local_min: bool | None
    certificate: str
    mechanisms: frozenset[str]
    strictness: str
    differentiable: bool
    escape: np.ndarray
    kink: np.ndarray
    roles: tuple[str, ...]
    escape_strength: np.ndarray
    margin: float
    witness: tuple[np.ndarray, np.ndarray] | None
    tolerance_sensitive: bool
    curvature: float


def _as_tensor(value: ArrayLike, device: torch.device | None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(device=device if device is not None else value.device, dtype=torch.float64)
    return torch.as_tensor(np.asarray(value, dtype=np.float64), device=device)


def _validate(w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor, leak: float) -> None:
    if w.dim() != 3 or a.dim() != 3 or x.dim() != 3 or y.dim() != 3:
        raise ValueError("classify_batch expects w (R, m, d), a (R, m, k), x (R or 1, n, d), y (R or 1, n, k)")
    R, m, d = w.shape
    if a.shape[:2] != (R, m):
        raise ValueError(f"a has shape {tuple(a.shape)}; expected ({R}, {m}, k)")
    if x.shape[-1] != d or x.shape[0] not in (1, R):
        raise ValueError(f"x has shape {tuple(x.shape)}; expected (1 or {R}, n, {d})")
    if y.shape[-1] != a.shape[-1] or y.shape[0] not in (1, R) or y.shape[1] != x.shape[1]:
        raise ValueError(f"y has shape {tuple(y.shape)}; expected (1 or {R}, {x.shape[1]}, {a.shape[-1]})")
    if not 0.0 <= leak < 1.0:
        raise ValueError(f"leak must lie in [0, 1); got {leak}")


@dataclass(frozen=True)
class _Options:
    """The options of :func:`classify_batch` that every pass shares."""

    leak: float
    train_output: bool
    learning_rate: float | None
    realisable: bool


def classify_batch(
    w: ArrayLike,
    a: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    *,
    leak: float,
    train_output: bool = True,
    mode: str = "end_point",
    learning_rate: float | None = None,
    realisable: bool = False,
    best_known_loss: ArrayLike | float | None = None,
    kink_tolerance_factor: float = 1.0,
) -> BatchClassification:
    """Classify a batch of points of one-hidden-layer ReLU-like networks.

    Parameters
    ----------
    w : (R, m, d), a : (R, m, k), x : (R or 1, n, d), y : (R or 1, n, k)
        Torch tensors (any device) or arrays; computations run in float64 on ``w``'s device.
    leak
        Negative-side slope in [0, 1).
    train_output
        False: the output layer is fixed (not a parameter).
    mode
        ``"end_point"`` or ``"plateau"`` (amplitude snapping, relaxed tolerances).
    learning_rate
        Step size of the GD that produced the points (kink tolerance, theory 8.2 step 2).
    realisable
        The target is exactly representable: a local minimum is global iff its loss is ~0.
    best_known_loss
        Float or (R,) array: best loss known for the same data (NaN entries: unknown).
    kink_tolerance_factor
        Multiplies the kink tolerance (theory 8.2 step 2); the sensitivity re-runs scale this one.

    Returns
    -------
    BatchClassification
    """
    device = w.device if isinstance(w, torch.Tensor) else None
    wt, at, xt, yt = (_as_tensor(v, device) for v in (w, a, x, y))
    _validate(wt, at, xt, yt, leak)
    options = _Options(leak=leak, train_output=train_output, learning_rate=learning_rate, realisable=realisable)
    tol = tolerances_for(mode).scaled_kink(kink_tolerance_factor)
    finite = torch.isfinite(wt).all(dim=(1, 2)) & torch.isfinite(at).all(dim=(1, 2))
    if not bool(finite.all()):
        return _with_non_finite(finite, wt, at, xt, yt, best_known_loss=best_known_loss, tol=tol, options=options)
    return _classify_finite(wt, at, xt, yt, best_known_loss=best_known_loss, tol=tol, options=options)


def _classify_finite(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    best_known_loss: ArrayLike | float | None,
    tol: Tolerances,
    options: _Options,
) -> BatchClassification:
    """One full pass and the label-only re-runs at the scaled kink tolerances (``tolerance_sensitive``)."""
    best = None
    if best_known_loss is not None:
        best = torch.as_tensor(np.broadcast_to(np.asarray(best_known_loss, dtype=np.float64), (w.shape[0],)).copy())
    absz, bound = kink_scores(w, a, x, y, options.leak, tol, options.learning_rate)
    base_kink = absz <= bound
    out = classify_once(w, a, x, y, tol=tol, best_known_loss=best, kink=base_kink, **asdict(options))
    base = SnappedPoint(
        w=torch.as_tensor(out.w, device=w.device), a=torch.as_tensor(out.a, device=w.device), kink=base_kink
    )
    for factor in SENSITIVITY_FACTORS:
        scaled_kink = absz <= factor * bound
        changed = (scaled_kink != base_kink).flatten(1).any(dim=1)
        runs = changed.nonzero().flatten()
        if runs.numel() == 0:
            continue
        sub = _point_types(
            SnappedPoint(w=base.w[runs], a=base.a[runs], kink=base_kink[runs]),
            w[runs],
            a[runs],
            x[runs] if x.shape[0] > 1 else x,
            y[runs] if y.shape[0] > 1 else y,
            tol=tol.scaled_kink(factor),
            best_known_loss=None if best is None else best[runs.cpu()],
            kink=scaled_kink[runs],
            options=options,
        )
        rn = runs.cpu().numpy()
        out.tolerance_sensitive[rn] |= sub != out.point_type[rn]
    return out


def _point_types(
    base: SnappedPoint,
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    tol: Tolerances,
    best_known_loss: torch.Tensor | None,
    kink: torch.Tensor,
    options: _Options,
) -> np.ndarray:
    """``point_type`` codes (R,) at the kink sets ``kink``, as ``classify_once(..., labels_only=True)`` gives them.

    ``base`` is the snapped point of the same runs at the base tolerance. With a trained output
    layer, runs settled by :func:`pipeline.stationary.classify.settled_not_stationary` (an output gap
    above the relaxed tolerance) skip the kink solves; only the others are classified.
    """
    types = np.full(w.shape[0], labels.code(labels.POINT_TYPE, "not_stationary"), np.int8)
    rest = torch.arange(w.shape[0], device=w.device)
    leak = options.leak
    if options.train_output:  # a fixed output layer has no output gaps
        settled = settled_not_stationary(resnap_point(base, w, a, x, y, leak, tol, kink), x, y, leak=leak, tol=tol)
        rest = (~settled).nonzero().flatten()
    if rest.numel() == 0:
        return types
    sub = classify_once(
        w[rest],
        a[rest],
        x[rest] if x.shape[0] > 1 else x,
        y[rest] if y.shape[0] > 1 else y,
        tol=tol,
        best_known_loss=None if best_known_loss is None else best_known_loss[rest.cpu()],
        kink=kink[rest],
        labels_only=True,
        **asdict(options),
    )
    types[rest.cpu().numpy()] = sub.point_type
    return types


def _with_non_finite(
    finite: torch.Tensor,
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    best_known_loss: ArrayLike | float | None,
    tol: Tolerances,
    options: _Options,
) -> BatchClassification:
    """Classify the finite points; label the others ``non_finite`` (a label, never an exception)."""
    keep = finite.nonzero().flatten()
    n_runs = w.shape[0]

    def pick(data: torch.Tensor) -> torch.Tensor:
        return data[keep] if data.shape[0] > 1 else data

    best = None
    if best_known_loss is not None:
        best = np.broadcast_to(np.asarray(best_known_loss, dtype=np.float64), (n_runs,))[keep.cpu().numpy()]
    part = None
    if keep.numel():
        part = _classify_finite(pick(w), pick(a), pick(x), pick(y), best_known_loss=best, tol=tol, options=options)
    record = {}
    for f in fields(BatchClassification):
        like = getattr(part, f.name) if part is not None else _placeholder(f.name, w, a)
        full = np.full((n_runs, *like.shape[1:]), missing_value(like.dtype), dtype=like.dtype)
        if part is not None:
            full[keep.cpu().numpy()] = like
        record[f.name] = full
    bad = (~finite).cpu().numpy()
    record["w"][bad], record["a"][bad] = w[~finite].cpu().numpy(), a[~finite].cpu().numpy()
    result = BatchClassification(**record)
    result.set_labels(
        bad, point_type="non_finite", is_local_min="unknown", certificate="none", strictness="not_applicable"
    )
    result.stationarity[bad] = labels.code(labels.STATIONARITY, "not_stationary")
    result.mechanisms[bad] = 0
    return result


def _placeholder(name: str, w: torch.Tensor, a: torch.Tensor) -> np.ndarray:
    """An empty array with the field's shape and dtype (when no point of the batch is finite)."""
    n_runs, width = w.shape[:2]
    shapes = {"w": w.shape, "a": a.shape, "witness_w": w.shape, "witness_a": a.shape}
    per_neuron = {"escape": bool, "kink": bool, "roles": np.int8, "escape_strength": np.float64}
    bools = {"differentiable", "has_witness", "tolerance_sensitive"}
    codes = {"stationarity", "point_type", "is_local_min", "certificate", "mechanisms", "strictness", "margin_limit"}
    if name in shapes:
        return np.zeros((0, *shapes[name][1:]))
    if name in per_neuron:
        return np.zeros((0, width), dtype=per_neuron[name])
    return np.zeros(0, dtype=bool if name in bools else np.int8 if name in codes else np.float64)


def classify_point(
    w: ArrayLike,
    a: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    *,
    leak: float = 0.0,
    train_output: bool = True,
    mode: str = "end_point",
    learning_rate: float | None = None,
    realisable: bool = False,
    best_known_loss: float | None = None,
) -> PointReport:
    """Classify one point: ``w`` (m, d), ``a`` (m, k), ``x`` (n, d), ``y`` (n, k) (arrays or tensors).

    A 1-d ``a`` (m,) or ``y`` (n,) is read as scalar output (k = 1). Thin wrapper around
    :func:`classify_batch` with ``R = 1``; labels are decoded to strings.
    """
    device = w.device if isinstance(w, torch.Tensor) else None
    wt, at, xt, yt = (_as_tensor(v, device) for v in (w, a, x, y))
    if at.dim() == 1:
        at = at.unsqueeze(-1)
    if yt.dim() == 1:
        yt = yt.unsqueeze(-1)
    batch = classify_batch(
        wt[None],
        at[None],
        xt[None],
        yt[None],
        leak=leak,
        train_output=train_output,
        mode=mode,
        learning_rate=learning_rate,
        realisable=realisable,
        best_known_loss=best_known_loss,
    )
    witness = (batch.witness_w[0], batch.witness_a[0]) if batch.has_witness[0] else None
    return PointReport(
        w=batch.w[0],
        a=batch.a[0],
        loss=float(batch.loss[0]),
        stationarity=labels.STATIONARITY[batch.stationarity[0]],
        first_order_gap=float(batch.first_order_gap[0]),
        point_type=labels.POINT_TYPE[batch.point_type[0]],
        is_local_min=labels.decode_is_local_min(batch.is_local_min[0]),
        certificate=labels.CERTIFICATE[batch.certificate[0]],
        mechanisms=labels.decode_mechanisms(batch.mechanisms[0]),
        strictness=labels.STRICTNESS[batch.strictness[0]],
        differentiable=bool(batch.differentiable[0]),
        escape=batch.escape[0],
        kink=batch.kink[0],
        roles=tuple(labels.ROLE[c] for c in batch.roles[0]),
        escape_strength=batch.escape_strength[0],
        margin=float(batch.margin[0]),
        witness=witness,
        tolerance_sensitive=bool(batch.tolerance_sensitive[0]),
        curvature=float(batch.curvature[0]),
    )
