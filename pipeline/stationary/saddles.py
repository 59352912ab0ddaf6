"""The sampled loss's witness candidates (theory.md 5.2 and 8.2 step 7) and its saddle mechanisms (8.1).

:func:`pipeline.stationary.classify.classify_once` gives them to the front end
(:func:`pipeline.stationary.front_end.judge_points`), which verifies every candidate by the one rule of
:func:`pipeline.stationary.local_descent.verify_witness` and labels a run a saddle only on a verified witness:
first-order descents of the runs that are not stationary, the escape curves of zero-output escape neurons
(section 5.2), and the second-order test of vector-output runs (negative curvature lines in both signs, the
higher-order curves of a degenerate Hessian, or the ``hessian_morse_bott`` minimum).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from pipeline.stationary import labels
from pipeline.stationary.first_order import FirstOrder
from pipeline.stationary.front_end import Candidates
from pipeline.stationary.neurons import NeuronQuantities
from pipeline.stationary.record import BatchClassification
from pipeline.stationary.second_order import second_order
from pipeline.stationary.strength import escape_strength
from pipeline.stationary.witness import escape_witness, line_witness

__all__ = [
    "Batch",
    "SecondOrderVerdict",
    "descent_candidates",
    "record_mechanisms",
    "second_order_verdict",
    "zero_output_candidates",
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


def descent_candidates(point: Batch, *, fo: FirstOrder, runs: np.ndarray) -> list[Candidates]:
    """First-order descents of the non-stationary ``runs``: the steepest directional descent of section 3."""
    if runs.size == 0:
        return []
    q, a = point.q, point.a
    rt = torch.as_tensor(runs, device=a.device)
    gap_abs = fo.in_gap[rt] * (q.r_norm * q.s_x)[rt].unsqueeze(-1) * a[rt].norm(dim=-1)
    dw = gap_abs.unsqueeze(-1) * fo.direction[rt]  # n L'(theta; d) = -sum ||G_j||^2 - sum gap_j^2
    da = -q.G[rt] if point.train_output else torch.zeros_like(q.G[rt])
    verify = partial(line_witness, q, w=point.w, a=a, x=point.x, leak=point.leak, runs=rt, dw=dw, da=da, order=1)
    return [Candidates(runs, verify, certificate="first_order_descent", strictness="not_applicable")]


def zero_output_candidates(
    record: BatchClassification, point: Batch, *, zero_escape: torch.Tensor
) -> tuple[list[Candidates], np.ndarray, np.ndarray]:
    """Section 5.2: the escape curve of each run's strongest zero-output escape neuron (``zero_escape`` (R, m)).

    Records ``kappa_j`` of every such neuron in ``record.escape_strength``. Returns the candidates (one per run,
    a strict saddle with certificate ``escape_zero_output`` when verified), their runs and ``min_j kappa_j``.
    """
    runs, neurons = zero_escape.nonzero(as_tuple=True)
    if runs.numel() == 0:
        return [], np.zeros(0, int), np.zeros(0)
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
    curvature = table[saddle_runs, best].cpu().numpy()
    verify = partial(
        escape_witness, q, w=w, a=point.a, x=point.x, leak=point.leak, runs=saddle_runs, neurons=best,
        u=u_table[saddle_runs, best],
    )  # fmt: skip
    rn = saddle_runs.cpu().numpy()
    return [Candidates(rn, verify, certificate="escape_zero_output", curvature=curvature)], rn, curvature


@dataclass(frozen=True)
class SecondOrderVerdict:
    """The second-order test of one vector-output run as the front end reads it.

    Attributes
    ----------
    candidates
        Its saddle witness candidates (empty: none).
    minimum
        A ``hessian_morse_bott`` minimum.
    curvature
        The curvature of that minimum (NaN otherwise).
    """

    candidates: list[Candidates]
    minimum: bool
    curvature: float


def second_order_verdict(point: Batch, *, d_zero: torch.Tensor, curvature_tol: float, run: int) -> SecondOrderVerdict:
    """Section 8.2 step 7 for one vector-output run: a negative-curvature line in both signs (the stronger verified
    one wins), a verified higher-order curve (``non_strict``), a minimum, or nothing (undetermined)."""
    w, a = point.w, point.a
    res = second_order(point.q, w=w, a=a, x=point.x, r=run, leak=point.leak, d_zero=d_zero, tol=curvature_tol)
    certificate = "negative_curvature_witness"
    if res.curve is not None:
        curve = res.curve
        found = Candidates(
            np.array([run]), lambda: curve, certificate, strictness="non_strict", curvature=np.array([res.curvature])
        )
        return SecondOrderVerdict([found], False, np.nan)
    if res.verdict == "local_min":
        return SecondOrderVerdict([], True, res.curvature)
    if res.verdict != "saddle" or res.direction is None:
        return SecondOrderVerdict([], False, np.nan)
    vw = torch.as_tensor(res.direction[0], dtype=w.dtype, device=w.device)
    va = torch.as_tensor(res.direction[1], dtype=w.dtype, device=w.device)
    both = torch.tensor([run, run], device=w.device)
    verify = partial(
        line_witness, point.q, w=w, a=a, x=point.x, leak=point.leak, runs=both, dw=torch.stack([vw, -vw]),
        da=torch.stack([va, -va]), order=2,
    )  # fmt: skip
    lines = Candidates(np.array([run, run]), verify, certificate, curvature=np.full(2, res.curvature))
    return SecondOrderVerdict([lines], False, np.nan)


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
