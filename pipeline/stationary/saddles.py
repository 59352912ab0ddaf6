"""The verdicts of a classification pass that rest on a verified witness (theory.md 5.2 and 8.2 step 7).

:func:`pipeline.stationary.classify.classify_once` calls them on disjoint sets of runs of its record: first-order
descents of the runs that are not stationary, the zero-output saddles of section 5.2 (escape curves), the
second-order test of vector-output runs (negative curvature and higher-order curves), and the saddle
mechanisms. A saddle label is written only with its witness verified by
:func:`pipeline.stationary.local_descent.verify_witness`; without one the run stays ``undetermined``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.stationary import labels
from pipeline.stationary.first_order import FirstOrder
from pipeline.stationary.neurons import NeuronQuantities
from pipeline.stationary.record import BatchClassification
from pipeline.stationary.second_order import record_non_strict, second_order
from pipeline.stationary.strength import escape_strength
from pipeline.stationary.witness import escape_witness, line_witness

__all__ = [
    "Batch",
    "record_mechanisms",
    "record_not_stationary",
    "record_second_order",
    "record_zero_output_saddles",
]

_C = labels.code


@dataclass(frozen=True)
class Batch:
    """The snapped points of one classification pass and what every step reads.

    Attributes
    ----------
    q
        Neuron quantities of the snapped points (kinks, residuals, roles).
    w : (R, m, d), a : (R, m, k), x : (R or 1, n, d)
        The snapped points and the inputs.
    leak, train_output
        The activation's negative slope; whether the output layer is a parameter.
    """

    q: NeuronQuantities
    w: torch.Tensor
    a: torch.Tensor
    x: torch.Tensor
    leak: float
    train_output: bool


def record_not_stationary(
    record: BatchClassification, point: Batch, *, fo: FirstOrder, mask: torch.Tensor, witnesses: bool
) -> None:
    """``not_stationary`` label of the runs ``mask`` (R,) bool; with ``witnesses``, a verified first-order descent."""
    runs = mask.nonzero().flatten()
    if runs.numel() == 0:
        return
    rn = runs.cpu().numpy()
    record.point_type[rn] = _C(labels.POINT_TYPE, "not_stationary")
    record.strictness[rn] = _C(labels.STRICTNESS, "not_applicable")
    if not witnesses:
        return
    q, a = point.q, point.a
    gap_abs = fo.in_gap[runs] * (q.r_norm * q.s_x)[runs].unsqueeze(-1) * a[runs].norm(dim=-1)
    dw = gap_abs.unsqueeze(-1) * fo.direction[runs]  # n L'(theta; d) = -sum ||G_j||^2 - sum gap_j^2
    da = -q.G[runs] if point.train_output else torch.zeros_like(q.G[runs])
    wit = line_witness(q, w=point.w, a=a, x=point.x, leak=point.leak, runs=runs, dw=dw, da=da, order=1)
    record.set_witness(rn, wit)
    ok = rn[wit.verified.cpu().numpy()]
    record.is_local_min[ok] = _C(labels.IS_LOCAL_MIN, "false")
    record.certificate[ok] = _C(labels.CERTIFICATE, "first_order_descent")


def record_zero_output_saddles(record: BatchClassification, point: Batch, *, zero_escape: torch.Tensor) -> None:
    """Section 5.2: escape neurons with ``a_j = 0`` -> strict saddle with a locally verified witness; ``kappa_j``.

    ``zero_escape`` (R, m) bool marks them. Runs in the label-only passes too: without a verified witness
    the point is ``undetermined``.
    """
    runs, neurons = zero_escape.nonzero(as_tuple=True)
    if runs.numel() == 0:
        return
    q, w = point.q, point.w
    kappa, _, u = escape_strength(q, w=w, x=point.x, runs=runs, neurons=neurons, leak=point.leak)
    record.escape_strength[runs.cpu().numpy(), neurons.cpu().numpy()] = kappa.cpu().numpy()
    R, m = zero_escape.shape
    table = torch.full((R, m), float("inf"), dtype=kappa.dtype, device=kappa.device)
    table[runs, neurons] = kappa
    saddle_runs = zero_escape.any(dim=-1).nonzero().flatten()
    best = table[saddle_runs].argmin(dim=-1)
    u_table = torch.zeros(R, m, w.shape[-1], dtype=w.dtype, device=w.device)
    u_table[runs, neurons] = u
    rn = saddle_runs.cpu().numpy()
    record.set_labels(
        rn, point_type="saddle", is_local_min="false", certificate="escape_zero_output", strictness="strict"
    )
    record.curvature[rn] = table[saddle_runs, best].cpu().numpy()
    wit = escape_witness(
        q, w=w, a=point.a, x=point.x, leak=point.leak, runs=saddle_runs, neurons=best, u=u_table[saddle_runs, best]
    )
    record.set_witness(rn, wit)
    unverified = rn[~wit.verified.cpu().numpy()]
    if unverified.size:  # saddles by the escape theorem without a locally verified witness: never a guess
        record.set_labels(
            unverified, point_type="undetermined", is_local_min="unknown", certificate="none", strictness="unknown"
        )


def record_second_order(
    record: BatchClassification, point: Batch, *, d_zero: torch.Tensor, curvature_tol: float, run: int
) -> None:
    """Section 8.2 step 7 for one vector-output run; a saddle needs a verified witness."""
    w, a = point.w, point.a
    res = second_order(point.q, w=w, a=a, x=point.x, r=run, leak=point.leak, d_zero=d_zero, tol=curvature_tol)
    if record_non_strict(record, run, res):
        return
    if res.verdict == "local_min":
        certificate = "hessian_morse_bott"
        record.set_labels(
            run, point_type="local_min", is_local_min="true", certificate=certificate, strictness="not_applicable"
        )
        record.curvature[run] = res.curvature
        return
    if res.verdict != "saddle" or res.direction is None:
        return
    vw = torch.as_tensor(res.direction[0], dtype=w.dtype, device=w.device)
    va = torch.as_tensor(res.direction[1], dtype=w.dtype, device=w.device)
    both = torch.tensor([run, run], device=w.device)
    wit = line_witness(
        point.q,
        w=w,
        a=a,
        x=point.x,
        leak=point.leak,
        runs=both,
        dw=torch.stack([vw, -vw]),
        da=torch.stack([va, -va]),
        order=2,
    )
    pick = wit.strongest()
    if pick is not None:
        chosen = wit.take(slice(pick, pick + 1))
        record.set_saddle(
            run, chosen, certificate="negative_curvature_witness", strictness="strict", curvature=res.curvature
        )


def record_mechanisms(record: BatchClassification, *, q: NeuronQuantities, escape: torch.Tensor) -> None:
    """Saddle mechanisms (section 8.1) as a bit field over the escape neurons (R, m) of each saddle."""
    saddle = torch.as_tensor(record.point_type == _C(labels.POINT_TYPE, "saddle"), device=escape.device)
    runs = (saddle & escape.any(dim=-1)).nonzero().flatten()
    if runs.numel() == 0:
        return
    role = q.roles[runs]
    esc = escape[runs]
    a_zero = q.a_zero[runs]
    pattern = q.pos[runs].to(torch.int8) * 2 + q.kink[runs].to(torch.int8)  # (E, n, m)
    same = (pattern.unsqueeze(-1) == pattern.unsqueeze(-2)).all(dim=1)  # (E, m, m)
    same = same & ~torch.eye(same.shape[-1], dtype=torch.bool, device=same.device)
    partner = (same & ~a_zero.unsqueeze(-2)).any(dim=-1)
    bits = torch.zeros_like(esc, dtype=torch.int64)
    r_zero, r_touch = _C(labels.ROLE, "zero"), _C(labels.ROLE, "dead_touching")
    bits = torch.where(esc & (role == r_zero), 1 << _C(labels.MECHANISM, "Z"), bits)
    other = esc & a_zero & (role != r_zero)
    bits = torch.where(other & (role == r_touch), 1 << _C(labels.MECHANISM, "O-touch"), bits)
    rest = other & (role != r_touch)
    bits = torch.where(rest & partner, 1 << _C(labels.MECHANISM, "O-split"), bits)
    bits = torch.where(rest & ~partner, 1 << _C(labels.MECHANISM, "O-other"), bits)
    if q.G.shape[-1] > 1:  # vector output
        vector = record.certificate[runs.cpu().numpy()] == _C(labels.CERTIFICATE, "negative_curvature_witness")
        vec = torch.as_tensor(vector, device=esc.device).unsqueeze(-1) & esc & ~a_zero
        bits = torch.where(vec, 1 << _C(labels.MECHANISM, "V"), bits)
    combined = torch.zeros(runs.numel(), dtype=torch.int64, device=esc.device)
    for j in range(bits.shape[-1]):
        combined |= bits[:, j]
    record.mechanisms[runs.cpu().numpy()] = combined.cpu().numpy().astype(np.int8)
