"""The sampled loss as a flow system (:mod:`pipeline.dynamics.flow_system`): exact Hessian, Filippov sliding.

Sampled loss and kinks (theory.md section 3). Between kinks the frozen loss is the loss. A pair ``(i, j)`` on
its kink (``|z_ij| <= KINK_BAND |x_i| |w_j|``, ``w_j != 0``) is given the side the Filippov flow takes it to,
judged pair by pair from the one-sided velocities ``dz_ij/dt`` with slope 1 and with slope ``leak`` (the other
pairs of its neuron at their own slopes): the active side if the flow leaves to it, the inactive side if it
leaves to that one, and *sliding* when both one-sided velocities point into the kink (an attracting pair,
``r_i . a_j > 0``). A repelling pair (both sides point away) takes the side of
:func:`pipeline.end_game.kinks.filippov_sides`.
The Filippov velocity of a sliding pair is the convex combination of slopes that keeps ``z_ij = 0``; it equals
the gradient without the pair's own term, projected onto ``x_i^perp``: the frozen loss gives the pair slope 0
and the flow of ``w_j`` is projected onto the orthogonal complement of its sliding inputs (the rows of the
Jacobian too, so that every Rosenbrock stage keeps ``z_ij`` constant). Pairs on one neuron are judged one at a
time, which is exact for a single pair per neuron and for pairs whose inputs are orthogonal.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.dynamics.flow_system import KINK_BAND, flat_gradients, unpack
from pipeline.end_game.kinks import ORIGIN_BAND, ORIGIN_TOL, origin_velocity
from pipeline.losses import nets

__all__ = ["NEGLIGIBLE", "SampledFlow"]

NEGLIGIBLE = 1e-8
"""Relative amplitude below which a neuron's kink crossings are not located (:meth:`SampledFlow.violation`)."""


class SampledFlow:
    """The loss ``1/(2n) sum_i ||f(x_i) - y_i||^2`` of a leaky ReLU network (:mod:`pipeline.losses.nets`).

    Parameters
    ----------
    x, y
        Inputs (R or 1, n, d) and targets (R or 1, n, k).
    a
        Output weights (R, m, k); used only when ``train_output`` is False.
    leak
        Negative slope in [0, 1).
    train_output
        Whether ``a`` is part of ``theta``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, leak: float, train_output: bool) -> None:
        self.x, self.y, self.a_fixed, self.leak, self.train_output = x, y, a, leak, train_output
        self.width = a.shape[1]
        self._slopes = torch.ones(0)
        self._projector: torch.Tensor | None = None
        self._side = torch.ones(0)
        self._start = torch.ones(0)

    def select(self, runs: torch.Tensor) -> SampledFlow:
        """The problem of the runs ``runs`` (indices)."""
        x = self.x if self.x.shape[0] == 1 else self.x[runs]
        y = self.y if self.y.shape[0] == 1 else self.y[runs]
        selected = SampledFlow(x, y, self.a_fixed[runs], self.leak, self.train_output)
        selected._slopes, selected._side, selected._start = self._slopes[runs], self._side[runs], self._start[runs]
        selected._projector = None if self._projector is None else self._projector[runs]
        return selected

    def _parts(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        w, a = unpack(theta, self.a_fixed, self.width, self.train_output)
        z = torch.matmul(self.x, w.transpose(-1, -2))  # (R, n, m)
        scale = torch.linalg.vector_norm(self.x, dim=-1).unsqueeze(-1) * torch.linalg.vector_norm(w, dim=-1).unsqueeze(
            -2
        )
        return w, a, z, scale

    def freeze(self, theta: torch.Tensor) -> None:
        """Fix the slopes of every pair (1, ``leak``, or 0 and a projection for sliding pairs)."""
        w, a, z, scale = self._parts(theta)
        positive = z > 0
        slopes = torch.where(positive, 1.0, self.leak).to(z.dtype)
        on_kink = (z.abs() <= KINK_BAND * scale) & (scale > 0)
        self._projector = None
        side = torch.where(positive, 1.0, -1.0).to(z.dtype)
        if self.leak < 1.0 and bool(on_kink.any()):
            slopes, sliding = self._filippov(w, a, z, slopes, on_kink)
            side = torch.where(on_kink, torch.where(slopes == 1.0, 1.0, -1.0), side)
            side = torch.where(sliding, 0.0, side)
            if bool(sliding.any()):
                self._projector = self._sliding_projector(sliding)
        pinned = self._pinned_at_origin(w, a, z, slopes)
        if bool(pinned.any()):
            if self._projector is None:
                eye = torch.eye(w.shape[-1], dtype=w.dtype, device=w.device)
                self._projector = eye.expand(*w.shape[:2], -1, -1).clone()
            self._projector[pinned] = 0.0
        self._slopes, self._side = slopes, side
        self._start = self._wrong_side(z, scale)

    def _pinned_at_origin(
        self, w: torch.Tensor, a: torch.Tensor, z: torch.Tensor, slopes: torch.Tensor
    ) -> torch.Tensor:
        """Neurons (R, m) that the Filippov flow holds at the origin ``w_j = 0``.

        At the origin every pair of the neuron is on its kink, and the flow of ``w_j`` is the minimum-norm element
        of ``{-sum_i c_i s_i x_i : s_i in [leak, 1]}``, ``c_i = r_i . a_j / n`` (a zonotope: the one-sided
        velocities of every pattern and their convex hull). When it contains 0 the neuron stays at the origin (its
        ``a_j`` then stays too, as ``z_ij = 0``); otherwise it leaves, and the usual pieces take it on. Without this
        the integrator would chatter across the ``n`` kinks meeting at the origin in ever shorter steps. The
        velocity is :func:`pipeline.end_game.kinks.origin_velocity`, solved only for the rare neurons
        :data:`~pipeline.end_game.kinks.ORIGIN_BAND` puts at the origin.
        """
        output = torch.linalg.vector_norm(a, dim=-1)
        near = (torch.linalg.vector_norm(w, dim=-1) <= ORIGIN_BAND * output) & (output > 0)
        pinned = torch.zeros_like(near)
        if not bool(near.any()):
            return pinned
        n_samples = self.x.shape[-2]
        drive = torch.matmul(torch.matmul(slopes * z, a) - self.y, a.transpose(-1, -2)) / n_samples  # (R, n, m)
        x = self.x.expand(w.shape[0], *self.x.shape[1:])
        for run, neuron in torch.nonzero(near).tolist():
            terms = (drive[run, :, neuron, None] * x[run]).detach().cpu().numpy()  # (n, d): c_i x_i
            velocity, scale = origin_velocity(terms, self.leak)
            pinned[run, neuron] = float(np.linalg.norm(velocity)) <= ORIGIN_TOL * scale
        return pinned

    def _filippov(
        self, w: torch.Tensor, a: torch.Tensor, z: torch.Tensor, slopes: torch.Tensor, on_kink: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Slopes (R, n, m) of the pairs on their kinks, and which of them slide (R, n, m).

        Repelling pairs (``r_i . a_j <= 0``) take a side from their one-sided velocities with the other kink pairs
        left out. Attracting pairs start out sliding together; the slopes that keep all of them on their kinks,
        ``s_i = c_i / (r_i . a_j / n)`` with ``c`` the least-squares coefficients of ``rest_j`` on their inputs, are
        checked against ``[leak, 1]`` and the pairs outside leave to the side their slope points to (up to three
        rounds): the minimum-norm element of the Filippov set when at most one pair per neuron leaves.
        """
        n_samples = self.x.shape[-2]
        residual = torch.matmul(slopes * z, a) - self.y
        drive = torch.matmul(residual, a.transpose(-1, -2)) / n_samples  # (R, n, m): r_i . a_j / n
        attracting = on_kink & (drive > 0)
        repelling = on_kink & ~attracting
        rest = torch.matmul((drive * slopes * ~on_kink).transpose(-1, -2), self.x)  # (R, m, d)
        rate_inactive = -(
            torch.matmul(self.x, rest.transpose(-1, -2)) + self.leak * drive * self.x.square().sum(-1, keepdim=True)
        )
        slopes = torch.where(repelling, torch.where(rate_inactive > 0, 1.0, self.leak), slopes)
        sliding = attracting
        for _ in range(3):
            decided = on_kink & ~sliding
            base = rest + torch.matmul((drive * slopes * decided).transpose(-1, -2), self.x)
            rows = sliding.transpose(-1, -2).unsqueeze(-1) * self.x.unsqueeze(-3)  # (R, m, n, d)
            coefficients = -torch.matmul(base.unsqueeze(-2), torch.linalg.pinv(rows)).squeeze(-2)  # (R, m, n)
            implied = coefficients.transpose(-1, -2) / torch.where(sliding, drive, 1.0)
            up, down = sliding & (implied > 1.0), sliding & (implied < self.leak)
            if not bool((up | down).any()):
                break
            slopes = torch.where(up, 1.0, torch.where(down, self.leak, slopes))
            sliding = sliding & ~up & ~down
        return torch.where(sliding, 0.0, slopes), sliding

    def _sliding_projector(self, sliding: torch.Tensor) -> torch.Tensor:
        """Per neuron, the projector onto the orthogonal complement of its sliding inputs, (R, m, d, d)."""
        rows = sliding.transpose(-1, -2).unsqueeze(-1) * self.x.unsqueeze(-3)  # (R, m, n, d)
        eye = torch.eye(self.x.shape[-1], dtype=self.x.dtype, device=self.x.device)
        return eye - torch.matmul(torch.linalg.pinv(rows), rows)

    def gradients(self, theta: torch.Tensor) -> tuple[nets.Gradients, torch.Tensor]:
        """Loss and gradient of the frozen loss (the Filippov velocity's negative on sliding pairs)."""
        w, a, z, _ = self._parts(theta)
        hidden = self._slopes * z
        residual = torch.matmul(hidden, a) - self.y
        n_samples = self.x.shape[-2]
        loss = 0.5 * residual.square().sum(dim=(-2, -1)) / n_samples
        signal = torch.matmul(residual, a.transpose(-1, -2)) * self._slopes / n_samples
        grad_w = torch.matmul(signal.transpose(-1, -2), self.x)
        if self._projector is not None:
            grad_w = torch.matmul(self._projector, grad_w.unsqueeze(-1)).squeeze(-1)
        grad_a = torch.matmul(hidden.transpose(-1, -2), residual) / n_samples
        return flat_gradients(loss, grad_w, grad_a if self.train_output else torch.zeros_like(a), self.train_output)

    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        """Exact Hessian of the frozen loss (rows of sliding neurons projected), (R, P, P).

        Gauss-Newton part ``J^T J / n`` with ``dr_il/dw_j = a_jl s_ij x_i`` and ``dr_il/da_jl = s_ij z_ij``, plus
        the residual part ``1/n sum_i r_il s_ij x_i`` in the ``(w_j, a_jl)`` blocks.
        """
        w, a, z, _ = self._parts(theta)
        n_runs, n_samples, width = z.shape
        d, k = w.shape[-1], a.shape[-1]
        x = self.x.expand(n_runs, n_samples, d)
        hidden = self._slopes * z
        residual = torch.matmul(hidden, a) - self.y
        # (R, n, k, m, d): a_jl s_ij x_i
        jac_w = a.transpose(-1, -2)[:, None, :, :, None] * (self._slopes[:, :, None, :, None] * x[:, :, None, None, :])
        blocks = [jac_w.reshape(n_runs, n_samples * k, width * d)]
        if self.train_output:
            eye_k = torch.eye(k, dtype=z.dtype, device=z.device)
            jac_a = hidden[:, :, None, :, None] * eye_k[None, None, :, None, :]  # (R, n, k, m, k)
            blocks.append(jac_a.reshape(n_runs, n_samples * k, width * k))
        jac = torch.cat(blocks, dim=-1)
        hess = torch.matmul(jac.transpose(-1, -2), jac) / n_samples
        if self.train_output:
            cross = torch.einsum("ril,rij,rid->rjdl", residual, self._slopes, x) / n_samples  # (R, m, d, k)
            eye_m = torch.eye(width, dtype=z.dtype, device=z.device)
            block = (cross[:, :, :, None, :] * eye_m[None, :, None, :, None]).reshape(n_runs, width * d, width * k)
            n_w = width * d
            hess[:, :n_w, n_w:] += block
            hess[:, n_w:, :n_w] += block.transpose(-1, -2)
        if self._projector is not None:
            rows = hess[:, : width * d].reshape(n_runs, width, d, -1)
            hess[:, : width * d] = torch.matmul(self._projector, rows).reshape(n_runs, width * d, -1)
        return hess

    def _wrong_side(self, z: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """``max(-side_ij z_ij / (|x_i| |w_j|), 0)``: how far each pair is on the wrong side of its piece, (R, n, m)."""
        return (-self._side * z / torch.where(scale > 0, scale, 1.0)).clamp(min=0.0)

    def violation(self, theta: torch.Tensor) -> torch.Tensor:
        """How much further than at the last freeze the most misplaced pair is on the wrong side, (R,).

        Measured from the freeze, so that a pair given a side while inside the kink band does not count as
        crossing at once. Neurons of amplitude ``|w_j| |a_j|`` below ``NEGLIGIBLE`` times the run's largest are
        left out: their pairs change sides whenever their direction turns, which a neuron near zero does
        quickly, and they move the flow by no more than their amplitude.
        """
        w, a, z, scale = self._parts(theta)
        amplitude = torch.linalg.vector_norm(w, dim=-1) * torch.linalg.vector_norm(a, dim=-1)
        counted = amplitude >= NEGLIGIBLE * amplitude.amax(dim=-1, keepdim=True)
        excess = (self._wrong_side(z, scale) - self._start) * counted.unsqueeze(-2)
        return excess.flatten(1).amax(dim=1)
