"""What a dynamics returns: the per-run record of a training run and why it stopped.

Every dynamics (:mod:`pipeline.dynamics`) returns a :class:`DescentResult`, so that the trajectory
summary, plateau points, end-point classification and store are the same whatever trained the runs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from pipeline.trajectory import CheckpointRecorder, PlateauRecorder

__all__ = ["DescentResult", "StopReason"]


class StopReason(enum.IntEnum):
    """Why a run stopped (stored as small integers).

    ``CONVERGED``: the gradient is below the tolerance both in absolute terms and relative to the size
    of every neuron (see :func:`pipeline.dynamics.descend`); ``MAX_STEPS``: the step budget ran out;
    ``DIVERGED``: the loss became non-finite or grew by ``divergence_factor``.
    """

    CONVERGED = 1
    MAX_STEPS = 2
    DIVERGED = 3


@dataclass(frozen=True)
class DescentResult:
    """Per-run outcome of :func:`pipeline.dynamics.descend`; every tensor has a leading run axis ``R``.

    Attributes
    ----------
    w_init, a_init, w_final, a_final : (R, m, d), (R, m, k)
        Initial and final parameters.
    loss_final, grad_norm_final : (R,)
        Loss (the problem's ``LOSS``) and Euclidean norm of its gradient over all trained parameters, at the final
        parameters.
    steps_taken : (R,) int64
        Number of gradient steps applied.
    stop_reason : (R,) int64
        A :class:`StopReason` value.
    checkpoint_step : (C,) int64
        Log-spaced steps of the trajectory summary.
    checkpoint_loss, checkpoint_grad_norm : (R, C)
        Loss and gradient norm at the checkpoints (NaN after the run stopped).
    checkpoint_amplitude, checkpoint_balance : (R, C, m)
        ``||w_j|| ||a_j||`` and ``||w_j||^2 - ||a_j||^2`` at the checkpoints.
    n_plateaus : (R,) int64
        Plateaus detected (only the first ``P`` are stored).
    plateau_start, plateau_end, plateau_step : (R, P) int64
        First step, first step after, and representative (smallest gradient norm) step; -1 if absent.
    plateau_loss, plateau_grad_norm : (R, P)
        Loss and gradient norm at the representative step.
    plateau_is_final : (R, P) bool
        The plateau lasted until the run stopped.
    plateau_w, plateau_a : (R, P, m, d), (R, P, m, k)
        Parameters at the representative step.
    """

    w_init: torch.Tensor
    a_init: torch.Tensor
    w_final: torch.Tensor
    a_final: torch.Tensor
    loss_final: torch.Tensor
    grad_norm_final: torch.Tensor
    steps_taken: torch.Tensor
    stop_reason: torch.Tensor
    checkpoint_step: torch.Tensor
    checkpoint_loss: torch.Tensor
    checkpoint_grad_norm: torch.Tensor
    checkpoint_amplitude: torch.Tensor
    checkpoint_balance: torch.Tensor
    n_plateaus: torch.Tensor
    plateau_start: torch.Tensor
    plateau_end: torch.Tensor
    plateau_step: torch.Tensor
    plateau_loss: torch.Tensor
    plateau_grad_norm: torch.Tensor
    plateau_is_final: torch.Tensor
    plateau_w: torch.Tensor
    plateau_a: torch.Tensor

    @classmethod
    def from_recorders(
        cls,
        start: tuple[torch.Tensor, torch.Tensor],
        final: tuple[torch.Tensor, torch.Tensor],
        final_state: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        checkpoint_step: torch.Tensor,
        checkpoints: CheckpointRecorder,
        plateaus: PlateauRecorder,
    ) -> DescentResult:
        """The record of a dynamics from its recorders.

        ``start`` and ``final`` are ``(w, a)``; ``final_state`` is ``(loss_final, grad_norm_final, steps_taken,
        stop_reason)``; the checkpoint and plateau fields are the recorders'.
        """
        loss_final, grad_norm_final, steps_taken, stop_reason = final_state
        return cls(
            w_init=start[0], a_init=start[1], w_final=final[0], a_final=final[1], loss_final=loss_final,
            grad_norm_final=grad_norm_final, steps_taken=steps_taken, stop_reason=stop_reason,
            checkpoint_step=checkpoint_step, checkpoint_loss=checkpoints.loss,
            checkpoint_grad_norm=checkpoints.grad_norm, checkpoint_amplitude=checkpoints.amplitude,
            checkpoint_balance=checkpoints.balance,
            n_plateaus=plateaus.count, plateau_start=plateaus.start, plateau_end=plateaus.end,
            plateau_step=plateaus.representative_step, plateau_loss=plateaus.loss, plateau_grad_norm=plateaus.grad_norm,
            plateau_is_final=plateaus.is_final, plateau_w=plateaus.w, plateau_a=plateaus.a,
        )  # fmt: skip
