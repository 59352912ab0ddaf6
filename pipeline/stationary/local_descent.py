"""Local descent: when a decrease of the loss along a perturbation proves what it claims.

A saddle is a point with descent arbitrarily close to it, so a witness proves a saddle only if the
loss decreases along it *as the step shrinks*, inside the region where the local model is exact
(theory.md section 2: no pre-activation off the kink sets changes sign), and by more than the rounding
of the computed loss change. A single decrease found at some large step proves nothing: it may come
from a jump across other neurons' kinks (the non-local witnesses of issue 12).

The rule, for any loss and any kind of witness (first-order descent, escape curve, negative curvature,
higher-order curve): the true loss change is evaluated along a geometric sequence of steps ``t_0 > t_1 > ...``
with ``t_0`` at most half the validity radius, against the model's prediction at every step,
split into the *leading* term that carries the claim (``c_p t^p``: the directional derivative for a
first-order witness, the curvature term for a saddle) and a *residue* that bounds the rest (the
first-order term of a numerically stationary point, the output-gradient part of an escape curve).
A step *qualifies* when the leading term exceeds ``QUALIFY_FLOOR`` rounding floors and ``RESIDUE_RATIO``
residues; below the smallest qualifying step rounding or the residue dominates. The witness is verified iff

* the true change is below minus the rounding floor at the smallest qualifying step and at least
  ``MIN_QUALIFYING - 1`` consecutive qualifying steps above it (a factor ``RATIO ** (MIN_QUALIFYING - 1)``
  in the step: the decrease is seen to persist as the step shrinks down to where rounding dominates,
  not found once), and
* at the smallest qualifying step the true change agrees with the model (leading plus the predicted
  residue) to within ``AGREEMENT`` of the leading term: the decrease is the one the local theory predicts, and
* the leading term is a decrease at every step of the ladder: a claim whose model turns into an increase as
  the step shrinks (a higher-order decrease beaten by a positive lower-order term of the model) is no local
  decrease, even where a decrease is seen at larger steps.

The stored witness is the largest step of that decreasing run (inside the validity radius by construction);
larger steps, where higher-order terms may win, are not part of the claim. Written here rather than taken from
a library: this is the acceptance rule of the classifier's certificates, not a numerical method that a library
offers.

Every classifier verifies its witnesses with :func:`verify_witness`: the certificate gives the path of the
witness (a straight line, an escape curve, a higher-order curve) and its polynomial :class:`LineModel`, the loss
gives only the true change along the path and its rounding floor. The outcome is a :class:`Witness`, which
:meth:`pipeline.stationary.record.BatchClassification.set_witness` stores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

__all__ = [
    "AGREEMENT",
    "MIN_QUALIFYING",
    "QUALIFY_FLOOR",
    "RATIO",
    "RESIDUE_RATIO",
    "STEPS",
    "Change",
    "LineModel",
    "LocalDescent",
    "Path",
    "Witness",
    "geometric_steps",
    "line_path",
    "rounding_floor",
    "sampled_validity_radius",
    "verify_local_descent",
    "verify_witness",
]

RATIO = 4.0
STEPS = 28
MIN_QUALIFYING = 3
QUALIFY_FLOOR = 16.0
RESIDUE_RATIO = 4.0
AGREEMENT = 0.5

Path = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""Steps (E, T) -> the perturbations ``dw`` (E, T, m, d), ``da`` (E, T, m, k) of the witnesses at those steps."""
Change = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""Perturbations ``dw`` (E, T, m, d), ``da`` (E, T, m, k) -> true loss changes (E, T): the only per-loss part."""


@dataclass(frozen=True)
class LocalDescent:
    """Outcome of :func:`verify_local_descent` for ``E`` candidates.

    Attributes
    ----------
    verified : (E,) bool
        The decrease is local (see the module docstring).
    largest, smallest : (E,) int64
        Indices (into the step axis) of the largest and smallest qualifying steps; -1 where none.
    decrease : (E,)
        ``-change`` at the largest qualifying step (NaN where none).
    """

    verified: torch.Tensor
    largest: torch.Tensor
    smallest: torch.Tensor
    decrease: torch.Tensor


def geometric_steps(start: torch.Tensor, count: int = STEPS) -> torch.Tensor:
    """Steps ``start * RATIO ** -k`` for ``k = 0 .. count - 1``, shape (E, count)."""
    ladder = RATIO ** -torch.arange(count, dtype=start.dtype, device=start.device)
    return start.unsqueeze(-1) * ladder


def rounding_floor(loss: torch.Tensor, loss_floor: torch.Tensor) -> torch.Tensor:
    """Rounding floor of a computed loss change, (E,).

    ``loss_floor = 1/2 F^2`` is the float-noise floor of the loss itself (``F = 64 m eps s_f``, the
    rounding of an output; :class:`pipeline.stationary.neurons.NeuronQuantities`). A change computed from
    two forward passes, ``1/n sum_i r_i . delta f_i + 1/(2n) ||delta f||^2``, carries an error of at most
    ``F sqrt(2 L)`` from the first term and ``1/2 F^2`` from the second: ``2 sqrt(loss_floor L) + loss_floor``.
    """
    return 2.0 * torch.sqrt(loss_floor * loss.clamp_min(0.0)) + loss_floor


def sampled_validity_radius(z: torch.Tensor, kink: torch.Tensor, x: torch.Tensor, dw: torch.Tensor) -> torch.Tensor:
    """Largest ``t`` with no pre-activation off the kink sets changing sign along ``w + t dw``, (E,).

    Parameters
    ----------
    z, kink : (E, n, m)
        Pre-activations and kink sets of the point.
    x : (E or 1, n, d)
    dw : (E, m, d)
        The input-weight part of the direction.

    Returns
    -------
    ``min |z_ij| / |x_i . dw_j|`` over the pairs off the kink sets that move towards zero (inf if none):
    within it the exact expansion of theory.md section 2 holds on the line.
    """
    rate = torch.matmul(x, dw.transpose(-1, -2))  # (E, n, m)
    towards = ~kink & (z * rate < 0)
    ratio = torch.where(towards, z.abs() / rate.abs().clamp_min(torch.finfo(z.dtype).tiny), torch.inf)
    return ratio.flatten(1).amin(dim=1) if ratio[0].numel() else torch.full(z.shape[:1], torch.inf, dtype=z.dtype)


def verify_local_descent(
    change: torch.Tensor,
    leading: torch.Tensor,
    residue: torch.Tensor,
    floor: torch.Tensor,
    predicted_residue: torch.Tensor | None = None,
) -> LocalDescent:
    """Apply the rule of the module docstring to ``E`` candidates at ``T`` decreasing steps each.

    Parameters
    ----------
    change : (E, T)
        True loss changes at the steps (largest step first).
    leading : (E, T)
        The model's leading term at the steps (negative: a claimed decrease).
    residue : (E, T)
        Bound on the magnitude of everything else in the model's change at the steps.
    floor : (E,)
        Rounding floor of a computed change (:func:`rounding_floor`).
    predicted_residue : (E, T) or None
        The model's value of the residue terms, added to ``leading`` for the agreement test (default 0).
    """
    magnitude = -leading
    qualifies = (magnitude > QUALIFY_FLOOR * floor.unsqueeze(-1)) & (magnitude > RESIDUE_RATIO * residue)
    qualifies &= torch.isfinite(change) & torch.isfinite(leading)
    claims_decrease = ~(leading > 0).any(dim=-1)
    T = change.shape[-1]
    index = torch.arange(T, device=change.device).expand_as(change)
    # the smallest qualifying step, and the run of decreasing qualifying steps that ends there
    last = torch.where(qualifies, index, -1).amax(dim=-1)
    ok = qualifies & (change < -floor.unsqueeze(-1))
    broken = torch.where((index <= last.unsqueeze(-1)) & ~ok, index, -1).amax(dim=-1)
    top = broken + 1
    run = torch.where(last >= 0, last - top + 1, 0)
    safe_last = last.clamp(0, T - 1).unsqueeze(-1)
    model = leading + (predicted_residue if predicted_residue is not None else torch.zeros_like(leading))
    error = (change - model).gather(-1, safe_last).squeeze(-1).abs()
    agrees = error <= AGREEMENT * magnitude.gather(-1, safe_last).squeeze(-1)
    verified = (run >= MIN_QUALIFYING) & agrees & claims_decrease
    largest = torch.where(run > 0, top, -1)
    smallest = torch.where(run > 0, last, -1)
    decrease = torch.where(run > 0, -change.gather(-1, top.clamp(0, T - 1).unsqueeze(-1)).squeeze(-1), torch.nan)
    return LocalDescent(verified=verified, largest=largest, smallest=smallest, decrease=decrease)


@dataclass(frozen=True)
class LineModel:
    """Polynomial model of the loss change along ``E`` witness paths; coefficients (E, K + 1) in the step ``t``.

    Column ``p`` holds the coefficient of ``t^p``. The three parts are the three roles of the rule of the module
    docstring.

    Attributes
    ----------
    claim
        The terms the certificate claims: the directional derivative ``c_1 t`` of a first-order descent, the
        curvature term ``c_2 t^2`` of a saddle, an escape curve's or a higher-order curve's leading terms.
    residue
        Lower-order terms left by a numerically stationary point: their magnitude bounds what else the change
        may hold, and they are added to the claim for the agreement test. None: no such terms.
    rest
        Higher-order terms, only added for the agreement test. None: none.
    """

    claim: torch.Tensor
    residue: torch.Tensor | None = None
    rest: torch.Tensor | None = None

    def at(self, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Claim, residue and rest (each (E, T)) at the steps (E, T)."""
        return _polynomial(self.claim, steps), _polynomial(self.residue, steps), _polynomial(self.rest, steps)


def _polynomial(coefficients: torch.Tensor | None, steps: torch.Tensor) -> torch.Tensor:
    """``sum_p c_p t^p`` (E, T) of coefficients (E, K + 1) at steps (E, T); zeros for None."""
    if coefficients is None:
        return torch.zeros_like(steps)
    powers = torch.arange(coefficients.shape[-1], dtype=steps.dtype, device=steps.device)
    return (coefficients.unsqueeze(-2) * steps.unsqueeze(-1) ** powers).sum(dim=-1)


@dataclass(frozen=True)
class Witness:
    """Outcome of :func:`verify_witness` for ``E`` candidate witnesses.

    Attributes
    ----------
    dw : (E, m, d), da : (E, m, k)
        The perturbations at the largest verified step (at the largest step of the ladder where none is).
    verified : (E,) bool
        The decrease is local (the rule of the module docstring).
    decrease : (E,)
        ``L(w, a) - L(w + dw, a + da)`` (NaN without a decreasing run).
    radius : (E,)
        Norm of the perturbation at the validity radius of the model along the path (inf if unbounded).
    min_step : (E,)
        Norm of the perturbation at the smallest verified step.
    """

    dw: torch.Tensor
    da: torch.Tensor
    verified: torch.Tensor
    decrease: torch.Tensor
    radius: torch.Tensor
    min_step: torch.Tensor

    def take(self, index: torch.Tensor | slice) -> Witness:
        """The candidates ``index``."""
        return Witness(**{field.name: getattr(self, field.name)[index] for field in fields(self)})

    def first(self) -> int | None:
        """Index of the first verified candidate (candidates given in order of preference); None if none is."""
        if not bool(self.verified.any()):
            return None
        return int(self.verified.to(torch.int8).argmax())

    def strongest(self) -> int | None:
        """Index of the verified candidate of largest decrease; None if none is verified."""
        if not bool(self.verified.any()):
            return None
        return int(torch.where(self.verified, self.decrease, -torch.inf).argmax())


def line_path(dw: torch.Tensor, da: torch.Tensor) -> Path:
    """The straight lines ``t (dw, da)`` of directions ``dw`` (E, m, d), ``da`` (E, m, k)."""

    def path(steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return steps[..., None, None] * dw.unsqueeze(1), steps[..., None, None] * da.unsqueeze(1)

    return path


def verify_witness(
    path: Path,
    change: Change,
    model: LineModel,
    steps: torch.Tensor,
    floor: torch.Tensor,
    radius: torch.Tensor,
) -> Witness:
    """Verify ``E`` candidate witnesses by the rule of the module docstring.

    Parameters
    ----------
    path
        The perturbations of the candidates at given steps (:func:`line_path` for straight lines).
    change
        The true loss change of perturbations: how the loss is evaluated is the only part that depends on it.
    model
        The certificate's polynomial model of the change along the path.
    steps : (E, T)
        The ladder (largest first, :func:`geometric_steps`), its top at most half the validity radius.
    floor : (E,)
        Rounding floor of a computed change of this loss.
    radius : (E,)
        Norm of the perturbation at the validity radius (inf if unbounded).
    """
    dw, da = path(steps)
    true = change(dw, da)
    claim, residue, rest = model.at(steps)
    check = verify_local_descent(true, claim, residue.abs(), floor, residue + rest)
    index = torch.arange(steps.shape[0], device=steps.device)
    top, bottom = check.largest.clamp_min(0), check.smallest.clamp_min(0)
    norm = torch.sqrt(dw.square().sum(dim=(-2, -1)) + da.square().sum(dim=(-2, -1)))  # (E, T)
    return Witness(
        dw=dw[index, top],
        da=da[index, top],
        verified=check.verified,
        decrease=check.decrease,
        radius=radius,
        min_step=norm[index, bottom],
    )
