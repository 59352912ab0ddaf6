"""Bounded-memory summaries of gradient-descent trajectories: checkpoints and plateaus.

Both recorders are updated once per step with tensors of the current step and keep
O(checkpoints) and O(plateaus) memory, never O(steps).

Plateaus (theory.md section 8.2 step 0) are maximal windows of steps in which the loss is flat on
the natural time scale of the problem. Flatness is measured by the *normalised loss-decrease
rate*

    q_t = EMA_t(L_{t-1} - L_t) / (learning_rate * L_t * s_x * s_y),

the relative loss decrease per unit of gradient-flow time, in units of the data's natural rate
``s_x * s_y`` (``s_x = max_i ||x_i||``, ``s_y = sqrt(||Y||_F^2 / n)``: a balanced network fitting
the data has parameters of size ``sqrt(s_y / s_x)``, hence curvature of order ``s_x * s_y``). The
loss decrease is averaged twice, exponentially: over ``1 / smoothing`` steps, which cancels the
period-two zig-zag of gradient descent across a kink, and over ``smoothing_time`` natural time units
(``1 / (s_x s_y)`` of gradient-flow time, the time scale of the dynamics), which also cancels the
slower oscillations of neurons bouncing on kinks (hundreds of steps at small learning rates). A
step is flat when either average is below ``rate_tol`` in absolute value: the short one notices a
plateau right after a fast drop (which the long one remembers for a few time units), the long one
holds through the oscillations on a short shoulder, which would otherwise split it into pieces
too short to count. A flat window whose representative loss is within ``merge_tol`` of the previous
plateau's (the same level), or within ``5 * merge_tol`` when it opens less than ``min_steps`` after
that plateau ended (no descent in between), continues that plateau: a rate hovering around
``rate_tol`` while the loss creeps on, or oscillates at one level, does not split a plateau into
many, while a lower shoulder, even right after, is a plateau of its own.

A flat window becomes a plateau when it lasts at least ``max(min_steps, min_fraction * gap)``
steps, where ``gap`` is the time since the previous plateau ended (since step 0 before the first):
a plateau is long compared with the descent that led to it. Measuring the length against the
preceding descent rather than against the total elapsed time keeps the short shoulders between
fast drops late in training (saddle-to-saddle dynamics, theory.md section 6), while a brief
flattening in the middle of a long smooth decay is still no plateau. Exponential convergence to a
zero-loss minimum has ``q_t`` bounded below and is never a plateau; the approach to a saddle or to
a non-global minimum is. The representative of a plateau is its step of smallest gradient norm,
whose parameters are kept so that the plateau point can be classified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["CheckpointRecorder", "PlateauRecorder", "checkpoint_steps", "final_plateau_at_end"]


def checkpoint_steps(max_steps: int, n_checkpoints: int) -> np.ndarray:
    """Log-spaced, strictly increasing steps ``0 = s_0 < ... <= max_steps`` (at most ``n_checkpoints``).

    Step 0 and ``max_steps`` are always included.
    """
    if n_checkpoints < 2:
        raise ValueError(f"n_checkpoints must be at least 2, got {n_checkpoints}")
    if max_steps < 1:
        return np.zeros(1, dtype=np.int64)
    # geomspace with a single point returns its start (1), which would add a third step: keep [0, max_steps]
    grid = np.geomspace(1, max_steps, n_checkpoints - 1) if n_checkpoints > 2 else np.zeros(0)
    return np.unique(np.concatenate([[0], np.rint(grid).astype(np.int64), [max_steps]]))


class CheckpointRecorder:
    """Loss, gradient norm, neuron amplitude and balance at a fixed set of steps.

    Values of runs that stopped before a checkpoint are NaN there.

    Parameters
    ----------
    steps
        Checkpoint steps, shape (C,), increasing.
    n_runs, width
        Batch size ``R`` and network width ``m``.
    like
        A tensor whose dtype and device the records take.
    """

    def __init__(self, steps: np.ndarray, n_runs: int, width: int, like: torch.Tensor) -> None:
        self.steps = steps
        self._index = {int(step): i for i, step in enumerate(steps)}
        nan: dict[str, Any] = dict(dtype=like.dtype, device=like.device)
        self.loss = torch.full((n_runs, len(steps)), torch.nan, **nan)
        self.grad_norm = torch.full((n_runs, len(steps)), torch.nan, **nan)
        self.amplitude = torch.full((n_runs, len(steps), width), torch.nan, **nan)
        self.balance = torch.full((n_runs, len(steps), width), torch.nan, **nan)

    def record(
        self,
        step: int,
        active: torch.Tensor,
        loss: torch.Tensor,
        grad_norm: torch.Tensor,
        w: torch.Tensor,
        a: torch.Tensor,
    ) -> None:
        """Record the state at ``step`` for the runs where ``active`` (R,) is true, if it is a checkpoint."""
        column = self._index.get(step)
        if column is None:
            return
        w_norm = torch.linalg.vector_norm(w, dim=-1)
        a_norm = torch.linalg.vector_norm(a, dim=-1)
        keep = active.unsqueeze(-1)
        self.loss[:, column] = torch.where(active, loss, self.loss[:, column])
        self.grad_norm[:, column] = torch.where(active, grad_norm, self.grad_norm[:, column])
        self.amplitude[:, column] = torch.where(keep, w_norm * a_norm, self.amplitude[:, column])
        self.balance[:, column] = torch.where(keep, w_norm.square() - a_norm.square(), self.balance[:, column])


@dataclass(frozen=True)
class PlateauSettings:
    """Thresholds of plateau detection (see the module docstring).

    Attributes
    ----------
    rate_tol
        Flat when the absolute normalised loss-decrease rate is below this.
    min_steps, min_fraction
        A flat window starting at step ``s`` is a plateau if it lasts ``max(min_steps, min_fraction * (s - e))``
        steps, ``e`` the end of the previous plateau (0 before the first).
    smoothing
        Weight of the newest loss decrease in the short moving average (1: no smoothing).
    smoothing_time
        Natural time units spanned by the long moving average: its weight is
        ``min(smoothing, learning_rate * s_x * s_y / smoothing_time)``.
    merge_tol
        A flat window whose representative loss is within this relative distance of the previous
        plateau's (five times this if it opens less than ``min_steps`` after it ended) continues it.
    max_plateaus
        Plateaus stored per run (later ones are counted, not stored).
    """

    rate_tol: float = 1e-3
    min_steps: int = 20
    min_fraction: float = 0.2
    smoothing: float = 0.1
    smoothing_time: float = 1.0
    merge_tol: float = 0.02
    max_plateaus: int = 8


class PlateauRecorder:
    """Streaming plateau detection with the parameters at each plateau's representative step.

    Parameters
    ----------
    settings
        Detection thresholds.
    rate_scale
        ``learning_rate * s_x * s_y`` per run, shape (R,).
    w, a
        Initial parameters, (R, m, d) and (R, m, k); give the shapes, dtype and device.
    """

    def __init__(self, settings: PlateauSettings, rate_scale: torch.Tensor, w: torch.Tensor, a: torch.Tensor) -> None:
        n_runs, slots = w.shape[0], settings.max_plateaus
        like: dict[str, Any] = dict(dtype=w.dtype, device=w.device)
        index: dict[str, Any] = dict(dtype=torch.int64, device=w.device)
        self.settings = settings
        self._flat_bound = settings.rate_tol * rate_scale  # flat: |mean decrease| < rate_tol * rate_scale * loss
        # the short and the long moving average, stacked: one update for both, (2, R)
        long_weight = torch.clamp(rate_scale / settings.smoothing_time, max=settings.smoothing)
        self._weights = torch.stack([torch.full_like(long_weight, settings.smoothing), long_weight])
        self._previous_loss: torch.Tensor | None = None
        self._mean_decrease = torch.zeros(2, n_runs, **like)
        self._in_flat = torch.zeros(n_runs, dtype=torch.bool, device=w.device)
        self._fed = torch.zeros(n_runs, dtype=torch.bool, device=w.device)  # a decrease was averaged (``elapsed``)
        self._flat_start = torch.zeros(n_runs, **index)
        # the last plateau: its end, its representative's loss (NaN before the first) and gradient norm
        self._previous_end = torch.zeros(n_runs, **index)
        self._previous_level = torch.full((n_runs,), torch.nan, **like)
        self._previous_grad = torch.full((n_runs,), torch.inf, **like)
        self._best_grad = torch.full((n_runs,), torch.inf, **like)
        self._best_step = torch.zeros(n_runs, **index)
        self._best_loss = torch.zeros(n_runs, **like)
        self._best_w = w.clone()
        self._best_a = a.clone()
        self.count = torch.zeros(n_runs, **index)
        self.start = torch.full((n_runs, slots), -1, **index)
        self.end = torch.full((n_runs, slots), -1, **index)
        self.representative_step = torch.full((n_runs, slots), -1, **index)
        self.loss = torch.full((n_runs, slots), torch.nan, **like)
        self.grad_norm = torch.full((n_runs, slots), torch.nan, **like)
        self.is_final = torch.zeros((n_runs, slots), dtype=torch.bool, device=w.device)
        self.w = torch.full((n_runs, slots, *w.shape[1:]), torch.nan, **like)
        self.a = torch.full((n_runs, slots, *a.shape[1:]), torch.nan, **like)

    def update(
        self,
        step: int | torch.Tensor,
        active: torch.Tensor,
        loss: torch.Tensor,
        grad_norm: torch.Tensor,
        w: torch.Tensor,
        a: torch.Tensor,
        elapsed: torch.Tensor | None = None,
    ) -> None:
        """Feed the state at ``step`` (before the update of that step) for the active runs.

        Gradient descent feeds every step (``step`` an int, ``elapsed`` None). A dynamics with steps of its own
        (the gradient flow) feeds ``step`` (R,) int64, its time in gradient-descent steps, and ``elapsed`` (R,),
        the gradient-descent steps since the last feed: the loss decrease is taken per step and the moving
        averages decay as over ``elapsed`` steps. Runs every step, so it is written with few tensor operations:
        in-place masked fills, and the plateau commit skipped unless a flat window closes.
        """
        if self._previous_loss is None:
            self._previous_loss = loss.clone()
            return
        if elapsed is None:
            weight: float | torch.Tensor = 1.0 if step == 1 else self._weights  # the first decrease starts both
            decrease = self._previous_loss - loss
        else:
            weight = torch.where(self._fed, -torch.expm1(elapsed * torch.log1p(-self._weights)), 1.0)
            self._fed = self._fed | active
            decrease = (self._previous_loss - loss) / elapsed.clamp(min=1.0)
        averaged = torch.lerp(self._mean_decrease, decrease, weight)
        self._mean_decrease = torch.where(active, averaged, self._mean_decrease)
        self._previous_loss = torch.where(active, loss, self._previous_loss)
        # either average below the bound; a sustained rise (catapult) is not a plateau
        flat = active & (self._mean_decrease.abs() < self._flat_bound * loss).any(dim=0)
        starting = flat > self._in_flat  # flat and not yet in a flat window
        _fill(self._flat_start, starting, step)
        self._best_grad.masked_fill_(starting, torch.inf)
        self._record_best(step, flat & (grad_norm < self._best_grad), loss, grad_norm, w, a)
        self._commit(active & (self._in_flat > flat), step, final=False)  # the window ends
        self._in_flat = torch.where(active, flat, self._in_flat)

    def _record_best(
        self,
        step: int | torch.Tensor,
        better: torch.Tensor,
        loss: torch.Tensor,
        grad_norm: torch.Tensor,
        w: torch.Tensor,
        a: torch.Tensor,
    ) -> None:
        """Make ``step`` the representative of the open flat window of the runs where ``better`` (R,)."""
        self._best_grad = torch.where(better, grad_norm, self._best_grad)
        _fill(self._best_step, better, step)
        self._best_loss = torch.where(better, loss, self._best_loss)
        if bool(better.any()):
            self._best_w = torch.where(better[:, None, None], w, self._best_w)
            self._best_a = torch.where(better[:, None, None], a, self._best_a)

    def finish(self, stopping: torch.Tensor, step: int | torch.Tensor, diverged: torch.Tensor) -> None:
        """Close the open flat window of runs that stop at ``step`` (``stopping`` (R,)).

        The window includes ``step``; it is a final plateau unless the run ``diverged`` (R,).
        """
        closing = stopping & self._in_flat
        self._commit(closing & ~diverged, step + 1, final=True)
        self._commit(closing & diverged, step + 1, final=False)
        self._in_flat = self._in_flat & ~stopping

    def _commit(self, closing: torch.Tensor, step: int | torch.Tensor, *, final: bool) -> None:
        """Store the closing flat windows (``step``: the first step after them) that are plateaus.

        A window right after the previous plateau or at its level continues it (its end moves to
        ``step``, and its representative becomes the window's if that has the smaller gradient norm);
        another window is a new plateau if it is long enough.
        """
        if not bool(closing.any()):  # most steps: cheaper than the tests below
            return
        settings = self.settings
        level = self._previous_level
        gap = self._flat_start - self._previous_end
        distance = (self._best_loss - level).abs() / level  # NaN before the first plateau: no window continues
        tolerance = torch.where(gap < settings.min_steps, 5 * settings.merge_tol, settings.merge_tol)
        continuing = closing & (distance <= tolerance)
        length = step - self._flat_start
        long_enough = length >= torch.clamp((settings.min_fraction * gap).to(torch.int64), min=settings.min_steps)
        new = closing & ~continuing & long_enough
        commit = new | continuing
        if not bool(commit.any()):
            return
        self.count = self.count + new.to(torch.int64)
        _fill(self._previous_end, commit, step)
        stored = commit & (self.count <= settings.max_plateaus)
        runs = torch.nonzero(stored).squeeze(-1)
        slot = self.count[runs] - 1
        self.end[runs, slot] = step if isinstance(step, int) else step[runs]
        self.is_final[runs, slot] = final
        self.start[runs, slot] = torch.where(new[runs], self._flat_start[runs], self.start[runs, slot])
        # the representative: the window's own for a new plateau, or the better one for a continued plateau
        better = new | (continuing & (self._best_grad < self._previous_grad))
        self._previous_level = torch.where(better, self._best_loss, self._previous_level)
        self._previous_grad = torch.where(better, self._best_grad, self._previous_grad)
        runs = torch.nonzero(stored & better).squeeze(-1)
        slot = self.count[runs] - 1
        self.representative_step[runs, slot] = self._best_step[runs]
        self.loss[runs, slot] = self._best_loss[runs]
        self.grad_norm[runs, slot] = self._best_grad[runs]
        self.w[runs, slot] = self._best_w[runs]
        self.a[runs, slot] = self._best_a[runs]


def _fill(target: torch.Tensor, where: torch.Tensor, step: int | torch.Tensor) -> None:
    """``target[where] = step`` in place, for one step (int) or a step per run (R,)."""
    if isinstance(step, int):
        target.masked_fill_(where, step)
    else:
        target.copy_(torch.where(where, step, target))


def final_plateau_at_end(plateau_is_final: np.ndarray, plateau_loss: np.ndarray, end_loss: np.ndarray) -> np.ndarray:
    """The plateau slots whose point is the end point's: the final plateau, when the run never left its level.

    A final plateau lasted until gradient descent stopped; the end point (gradient descent's, or the end game's
    continuation of an unfinished run) is the stationary point it was near when its loss is at the plateau's
    level, by the detector's own test that two flat windows are one plateau: within ``merge_tol`` (relative).

    Parameters
    ----------
    plateau_is_final, plateau_loss : (R, P)
        Whether each stored plateau lasted until the run stopped; its representative loss (NaN: empty slot).
    end_loss : (R,)
        Loss of the classified end point.

    Returns
    -------
    (R, P) bool
    """
    level = np.asarray(plateau_loss) * (1 - PlateauSettings().merge_tol)
    return np.asarray(plateau_is_final, dtype=bool) & (np.asarray(end_loss)[:, None] >= level)
