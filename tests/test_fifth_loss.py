"""A loss with its own activation and its own local model, written in this test module only: the per-point front
end (:func:`pipeline.stationary.local_test.judge`) is where such a loss plugs into classification (issue 13).

The loss is a ridge-regularised regression with a tanh network,
``L(w, a) = 1/(2n) sum_i ||sum_j a_j tanh(w_j . x_i) - y_i||^2 + lambda/2 (||w||^2 + ||a||^2)``: smooth, with no
continuous symmetry (the ridge breaks the rescalings, tanh is not homogeneous), so its local model is the plain
Hessian test: a negative eigenvalue is a candidate in both signs (claim ``1/2 mu t^2``, residue ``(grad . d) t``),
a positive definite Hessian certifies a strict local minimum. Oracles: the origin is a critical point whose
Hessian is known in closed form (``lambda I`` on the diagonal, ``-1/n sum_i y_i x_i^T`` coupling ``w_j`` and
``a_j``), so it is a saddle exactly when the data's correlation exceeds ``lambda``; points reached by long gradient
descent are minima that a brute-force perturbation search written here cannot lower.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from pipeline.batch_record import record_batch
from pipeline.dynamics import StopReason, descend
from pipeline.end_game import EndGameOptions, Finish
from pipeline.losses.activations import Activation, as_activation
from pipeline.losses.nets import Gradients
from pipeline.problems import VerdictOptions
from pipeline.problems.base import no_groups
from pipeline.stationary import labels
from pipeline.stationary.local_descent import STEPS
from pipeline.stationary.local_test import LineCandidate, LocalModel, judge, steepest_descent
from pipeline.stationary.record import unclassified_batch
from pipeline.stationary.tolerances import Tolerances, population_tolerances
from pipeline.store import VARIABLES

DT = torch.float64
CURVATURE_TOL = 1e-9


def ridge_tanh_loss(w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor, ridge: float) -> torch.Tensor:
    """The loss per run, (R,), for ``w`` (R, m, d), ``a`` (R, m, k), ``x`` (1, n, d), ``y`` (1, n, k)."""
    residual = torch.tanh(w @ x.mT).mT @ a - y
    fit = 0.5 * residual.square().sum(dim=(-2, -1)) / x.shape[-2]
    return fit + 0.5 * ridge * (w.square().sum(dim=(-2, -1)) + a.square().sum(dim=(-2, -1)))


@dataclass(frozen=True)
class RidgeTanhPoint:
    """One point ``w`` (m, d), ``a`` (m, k) of the loss as the front end sees it."""

    problem: RidgeTanhProblem
    w: torch.Tensor
    a: torch.Tensor
    ladder: int = STEPS

    def _loss(self, w: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return ridge_tanh_loss(w, a, self.problem.x, self.problem.y, self.problem.ridge)

    @cached_property
    def theta(self) -> torch.Tensor:
        return torch.cat([self.w.reshape(-1), self.a.reshape(-1)])

    def flat_loss(self, theta: torch.Tensor) -> torch.Tensor:
        n_w = self.w.numel()
        return self._loss(theta[:n_w].reshape(1, *self.w.shape), theta[n_w:].reshape(1, *self.a.shape))[0]

    @cached_property
    def value(self) -> float:
        return float(self.flat_loss(self.theta))

    @cached_property
    def gradient(self) -> torch.Tensor:
        return torch.func.grad(self.flat_loss)(self.theta)

    @property
    def gap(self) -> float:
        return float(self.gradient.norm()) / float(self.problem.scales()[1][0]) ** 1.5

    @property
    def output_scale(self) -> float:
        return 0.0  # the ridge keeps the loss positive: no zero-loss global minimum to recognise

    @property
    def floor(self) -> float:
        return 64 * float(np.finfo(float).eps) * self.value

    def change(self, moves_w: torch.Tensor, moves_a: torch.Tensor) -> torch.Tensor:
        count = moves_w.shape[0] * moves_w.shape[1]
        moved = self._loss(
            (self.w + moves_w).reshape(count, *self.w.shape), (self.a + moves_a).reshape(count, *self.a.shape)
        )
        return moved.reshape(moves_w.shape[:2]) - self.value

    def local_model(self, tol: Tolerances) -> LocalModel:
        hessian = torch.func.hessian(self.flat_loss)(self.theta)
        eigenvalues, eigenvectors = torch.linalg.eigh(hessian)
        scale = float(eigenvalues.abs().max())
        lowest = float(eigenvalues[0])
        if lowest >= -CURVATURE_TOL * scale:
            return LocalModel(minimum=lowest > CURVATURE_TOL * scale, curvature=lowest)
        direction = eigenvectors[:, 0]
        slope = float(self.gradient @ direction)
        n_w = self.w.numel()
        dw, da = direction[:n_w].reshape(self.w.shape), direction[n_w:].reshape(self.a.shape)
        top = max(float(self.theta.norm()), 1.0)
        candidates = [
            LineCandidate(sign * dw, sign * da, (0.0, sign * slope, 0.5 * lowest), top, curvature=lowest)
            for sign in (1.0, -1.0)
        ]
        return LocalModel(candidates, curvature=lowest)

    def descent(self) -> LineCandidate | None:
        n_w = self.w.numel()
        grad_w, grad_a = self.gradient[:n_w].reshape(self.w.shape), self.gradient[n_w:].reshape(self.a.shape)
        hessian = torch.func.hessian(self.flat_loss)(self.theta)

        def curvature(dw: torch.Tensor, da: torch.Tensor) -> float:
            direction = torch.cat([dw.reshape(-1), da.reshape(-1)])
            return float(direction @ hessian @ direction)

        return steepest_descent(grad_w, grad_a, lambda dw, da: (max(float(self.theta.norm()), 1.0), np.inf), curvature)


@dataclass(frozen=True)
class RidgeTanhProblem:
    """The Problem protocol for the ridge-regularised tanh regression on ``x`` (1, n, d), ``y`` (1, n, k)."""

    LOSS: ClassVar[str] = "L = 1/(2n) sum_i ||sum_j a_j tanh(w_j . x_i) - y_i||^2 + lambda/2 ||theta||^2"
    x: torch.Tensor
    y: torch.Tensor
    ridge: float
    activation: Activation = field(default_factory=lambda: as_activation(0.0))  # the store's label; tanh is ours
    train_output: bool = True
    verdicts: VerdictOptions = field(default_factory=VerdictOptions)

    def check(self, w0: torch.Tensor, a0: torch.Tensor) -> None:
        if w0.shape[-1] != self.x.shape[-1] or a0.shape[-1] != self.y.shape[-1]:
            raise ValueError("w0 (R, m, d) and a0 (R, m, k) must match x (1, n, d) and y (1, n, k)")

    def scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        s_x = self.x.norm(dim=-1).amax(dim=-1)
        return s_x, torch.sqrt(self.y.square().sum(dim=(-2, -1)) / self.y.shape[-2])

    def evaluator(self, n_runs: int, width: int):  # noqa: ANN201 (the Problem protocol's Evaluator)
        def evaluate(w: torch.Tensor, a: torch.Tensor) -> Gradients:
            w, a = w.detach().requires_grad_(True), a.detach().requires_grad_(True)
            loss = ridge_tanh_loss(w, a, self.x, self.y, self.ridge)
            grad_w, grad_a = torch.autograd.grad(loss.sum(), (w, a))
            return Gradients(loss.detach(), torch.empty(n_runs, 0, self.y.shape[-1], dtype=w.dtype), grad_w, grad_a)

        return evaluate

    def classify(self, w: torch.Tensor, a: torch.Tensor, mode: str, runs: np.ndarray | None = None) -> Any:
        tol = population_tolerances(mode)
        w, a = w.detach().to(DT), a.detach().to(DT)
        record = unclassified_batch(w.numpy(), a.numpy())
        roles = np.full(w.shape[1], labels.code(labels.ROLE, "active_smooth"), dtype=np.int8)
        points = {run: RidgeTanhPoint(self, w[run], a[run]) for run in range(w.shape[0])}
        for run, point in points.items():
            record.set_point(run, w=w[run].numpy(), a=a[run].numpy(), loss=point.value, gap=point.gap, roles=roles,
                             differentiable=True)  # fmt: skip
        return judge(record, points, tol, realisable=False)

    def flow_system(self, a0: torch.Tensor) -> None:
        return None

    def finish(self, w: torch.Tensor, a: torch.Tensor, runs: np.ndarray, options: EndGameOptions) -> Finish | None:
        return None

    def loss_scale(self, n_runs: int) -> np.ndarray:
        return np.full(n_runs, np.nan)

    def groups(self, end: Any) -> dict[str, np.ndarray]:
        return no_groups(end)

    def embeddings(self, end: Any, betas: tuple[float, ...]) -> dict[str, np.ndarray]:
        raise ValueError("no embeddings for this loss")


def _problem(ridge: float, seed: int = 0, n: int = 16) -> RidgeTanhProblem:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, n, 3, generator=gen, dtype=DT)
    y = torch.tanh(x @ torch.tensor([[1.5], [-1.0], [0.5]], dtype=DT)) * 2.0
    return RidgeTanhProblem(x, y, ridge)


def _correlation(problem: RidgeTanhProblem) -> float:
    """The largest singular value of ``1/n sum_i y_i x_i^T``: the origin's Hessian has eigenvalues ``lambda +- s``."""
    return float(torch.linalg.matrix_norm((problem.y[0].mT @ problem.x[0]) / problem.x.shape[-2], ord=2))


@pytest.mark.parametrize("above", [True, False])
def test_the_origin_is_a_saddle_exactly_when_the_correlation_exceeds_the_ridge(above: bool):
    correlation = _correlation(_problem(1.0))
    problem = _problem(0.5 * correlation if above else 2.0 * correlation)
    zeros = torch.zeros(1, 2, 3, dtype=DT), torch.zeros(1, 2, 1, dtype=DT)
    record = problem.classify(*zeros, "end_point")
    expected_lowest = problem.ridge - correlation  # the closed form of the origin's Hessian
    assert record.curvature[0] == pytest.approx(expected_lowest, rel=1e-9)
    assert labels.POINT_TYPE[record.point_type[0]] == ("saddle" if above else "local_min")
    assert bool(record.has_witness[0]) == above
    if above:  # the stored witness lowers the loss by what it claims, recomputed here
        moved = ridge_tanh_loss(torch.as_tensor(record.witness_w), torch.as_tensor(record.witness_a),
                                problem.x, problem.y, problem.ridge)  # fmt: skip
        base = ridge_tanh_loss(*zeros, problem.x, problem.y, problem.ridge)
        assert float(base - moved) == pytest.approx(record.witness_decrease[0], rel=1e-9)


def test_the_fifth_loss_runs_through_descent_classification_and_the_batch_record():
    problem = _problem(ridge=0.05)
    gen = torch.Generator().manual_seed(1)
    w0, a0 = 0.5 * torch.randn(4, 2, 3, generator=gen, dtype=DT), 0.5 * torch.randn(4, 2, 1, generator=gen, dtype=DT)
    descent = descend(problem, w0, a0, learning_rate=0.1, max_steps=20000, n_checkpoints=8, grad_tol=1e-11)
    assert (descent.stop_reason == int(StopReason.CONVERGED)).all()
    record = record_batch(problem, descent, end_game=EndGameOptions(), classify_plateaus=True)
    assert set(record) <= set(VARIABLES), sorted(set(record) - set(VARIABLES))
    assert all(values.shape[0] == 4 for values in record.values())
    types = [labels.POINT_TYPE[code] for code in record["end_point_type"]]
    assert types == ["local_min"] * 4, types
    # brute force: no random perturbation of the end points within 1e-3 lowers the loss
    gen = torch.Generator().manual_seed(2)
    w, a = torch.as_tensor(record["end_w"]), torch.as_tensor(record["end_a"])
    base = ridge_tanh_loss(w, a, problem.x, problem.y, problem.ridge)
    for _ in range(200):
        dw, da = torch.randn(w.shape, generator=gen, dtype=DT), torch.randn(a.shape, generator=gen, dtype=DT)
        size = 1e-3 / torch.sqrt(dw.square().sum(dim=(1, 2)) + da.square().sum(dim=(1, 2)))[:, None, None]
        assert (ridge_tanh_loss(w + size * dw, a + size * da, problem.x, problem.y, problem.ridge) >= base).all()
