"""The test of one point from its local model: the front end of every per-point classifier.

The Gaussian population loss, the interval population loss and the losses of a smooth activation have no kink sets
on finitely many samples; each is C^1 (or smooth) away from a few special neurons, and each gives, at a point, a
*local model*: straight-line candidate witnesses with their polynomial models, and whether its minimum certificate
holds (:class:`LocalModel`). Every such loss is judged by the same steps (theory.md 8.2, the differentiable case,
made exact where the loss has one-sided pieces), written once here:

1. numerically zero loss (``value <= tau_L s_y^2``): ``global_min``, certificate ``zero_loss`` (the loss is
   non-negative), whatever the relative gradient says (it is ill-conditioned as the loss goes to 0): stationarity
   at least ``approx_stationary``, as for sampled data;
2. relative gradient norm above ``tol.stationary``: ``not_stationary`` (``approx_stationary`` up to
   ``tol.approx_stationary``);
3. a first-order descent the loss can name at a numerically stationary point (a one-sided slope, e.g. at a zero
   neuron of the interval loss): ``not_stationary`` with stationarity ``clarke_only``, its witness stored if it
   verifies;
4. the candidates of the local model, in order of preference: the first whose decrease is verified by the rule
   of every classifier (:func:`pipeline.stationary.local_descent.verify_witness`) makes the point a ``saddle``
   (its certificate, strictness, mechanisms and curvature are the candidate's); candidates without a verified
   one leave it ``undetermined``;
5. no candidate and the minimum certificate holds: ``local_min``, resolved to ``global_min`` or
   ``spurious_local_min`` when the target is realisable (global value 0); anything else ``undetermined``.

A loss supplies a :class:`LocalPoint`: its value, relative gradient, the rounding floor and the true change of
the loss along perturbations (the only loss-specific numerics of a witness), and its local model. The
tolerance-sensitivity re-runs judge points rebuilt at scaled tolerances with ``witnesses=False`` (candidates are
counted, not verified).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from pipeline.stationary import labels
from pipeline.stationary.local_descent import LineModel, Witness, geometric_steps, line_path, verify_witness
from pipeline.stationary.minima import minimum_types
from pipeline.stationary.record import Verdict
from pipeline.stationary.tolerances import Tolerances

__all__ = ["LineCandidate", "LocalModel", "LocalPoint", "judge", "verify_lines"]


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
        What a verified candidate makes of the point (:class:`pipeline.stationary.record.Verdict`).
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


def judge(point: LocalPoint, tol: Tolerances, *, realisable: bool, witnesses: bool = True) -> Verdict:
    """The verdict on ``point`` by steps 1-5 of the module docstring.

    ``realisable``: the global value is 0, so a certified minimum is global iff its loss is numerically 0.
    ``witnesses`` False counts candidates as verified (the tolerance-sensitivity re-runs compare point types only).
    """
    if point.gap <= tol.stationary:
        stationarity = "stationary"
    elif point.gap <= tol.approx_stationary:
        stationarity = "approx_stationary"
    else:
        stationarity = "not_stationary"
    if point.value <= tol.global_loss * point.output_scale**2:
        return Verdict("stationary" if stationarity == "stationary" else "approx_stationary", "global_min", "zero_loss")
    if stationarity != "stationary":
        return Verdict(stationarity, "not_stationary")
    model = point.local_model(tol)
    if model.first_order is not None:
        found = verify_lines(point, [model.first_order]) if witnesses else None
        witness = None if found is None else found[1]
        return Verdict("clarke_only", "not_stationary", model.first_order.certificate, witness=witness)
    if model.candidates:
        if not witnesses:
            return Verdict("stationary", "saddle", escape=model.escape)
        found = verify_lines(point, model.candidates)
        if found is None:
            return Verdict("stationary", "undetermined", curvature=model.curvature, escape=model.escape)
        chosen = model.candidates[found[0]]
        return Verdict(
            "stationary", "saddle", chosen.certificate, chosen.strictness, chosen.mechanisms, chosen.curvature,
            found[1], model.escape,
        )  # fmt: skip
    if not model.minimum:
        return Verdict("stationary", "undetermined", curvature=model.curvature, escape=model.escape)
    kind = "local_min"
    if realisable:
        code = minimum_types(np.array([point.value]), global_value=np.zeros(1), relative=0.0, absolute=0.0)[0]
        kind = labels.POINT_TYPE[code]
    return Verdict("stationary", kind, model.certificate, curvature=model.curvature, escape=model.escape)


def verify_lines(point: LocalPoint, candidates: Sequence[LineCandidate]) -> tuple[int, Witness] | None:
    """The first candidate whose decrease is verified, and its witness; None if none is.

    :func:`pipeline.stationary.local_descent.verify_witness` on the lines ``t (dw, da)``, each down its ladder from
    its ``top``, against the change of the loss that ``point`` computes and its rounding floor.
    """
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
    witness = verify_witness(line_path(dw, da), point.change, model, steps, floor, radius)
    pick = witness.first()
    return None if pick is None else (pick, witness.take(slice(pick, pick + 1)))
