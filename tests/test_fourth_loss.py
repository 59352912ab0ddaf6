"""A fourth loss plugged in from this module alone: the proof that :class:`pipeline.problems.Problem` is the one
place a loss plugs into descent, classification and the batch record (issue 13).

The toy loss is the weighted empirical loss ``L_c = 1/(2n) sum_i c_i ||f(x_i) - y_i||^2`` with weights
``c_i > 0``. Its gradients come from autograd on that formula (independent of :mod:`pipeline.losses.nets`). A ReLU
network is positively homogeneous in its input, ``f(s x) = s f(x)`` for ``s > 0``, so ``L_c`` on ``(x, y)`` is
the unweighted loss on ``(sqrt(c_i) x_i, sqrt(c_i) y_i)``: same values, gradients, Hessians and kinks, hence
the same stationary points of the same types. The toy problem judges its points with the sampled classifier
on the rescaled data; the tests check the identity with an independent evaluation, then run the whole chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from pipeline.batch_record import record_batch
from pipeline.dynamics import StopReason, descend
from pipeline.end_game import EndGameOptions, Finish
from pipeline.losses.activations import Activation, as_activation
from pipeline.losses.nets import Gradients
from pipeline.problems import SampledProblem, VerdictOptions
from pipeline.stationary import labels
from pipeline.store import VARIABLES

DT = torch.float64


@dataclass(frozen=True)
class WeightedSampledProblem:
    """``1/(2n) sum_i c_i ||f(x_i) - y_i||^2`` on ``x`` (1, n, d), ``y`` (1, n, k), weights ``c`` (n,)."""

    LOSS: ClassVar[str] = "L = 1/(2n) sum_i c_i ||f(x_i) - y_i||^2"
    x: torch.Tensor
    y: torch.Tensor
    weights: torch.Tensor
    activation: Activation = field(default_factory=lambda: as_activation(0.0))
    train_output: bool = True
    verdicts: VerdictOptions = field(default_factory=VerdictOptions)

    @property
    def rescaled(self) -> SampledProblem:
        """The unweighted problem on ``sqrt(c_i) x_i``, ``sqrt(c_i) y_i`` (equal to this one for a ReLU net)."""
        root = self.weights.sqrt()[None, :, None]
        return SampledProblem(root * self.x, root * self.y, self.activation, self.train_output, self.verdicts)

    def check(self, w0: torch.Tensor, a0: torch.Tensor) -> None:
        if w0.shape[-1] != self.x.shape[-1] or a0.shape[-1] != self.y.shape[-1]:
            raise ValueError("w0 (R, m, d) and a0 (R, m, k) must match x (1, n, d) and y (1, n, k)")

    def scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        root = self.weights.sqrt()[None, :, None]
        s_x = torch.linalg.vector_norm(root * self.x, dim=-1).amax(dim=-1)
        s_y = torch.sqrt((self.weights[None, :, None] * self.y.square()).sum(dim=(-2, -1)) / self.y.shape[-2])
        return s_x, s_y

    def loss(self, w: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``L_c`` per run, (R,), straight from its formula."""
        hidden = torch.relu(torch.einsum("rmd,snd->rnm", w, self.x))
        residual = torch.einsum("rnm,rmk->rnk", hidden, a) - self.y
        return 0.5 * (self.weights[None, :, None] * residual.square()).sum(dim=(-2, -1)) / self.x.shape[-2]

    def evaluator(self, n_runs: int, width: int):  # noqa: ANN201 (the Problem protocol's Evaluator)
        def evaluate(w: torch.Tensor, a: torch.Tensor) -> Gradients:
            w, a = w.detach().requires_grad_(True), a.detach().requires_grad_(True)
            loss = self.loss(w, a)
            grad_w, grad_a = torch.autograd.grad(loss.sum(), (w, a))
            if not self.train_output:
                grad_a = torch.zeros_like(grad_a)
            residual = torch.empty(n_runs, 0, self.y.shape[-1], dtype=w.dtype)
            return Gradients(loss.detach(), residual, grad_w, grad_a)

        return evaluate

    def classify(self, w: torch.Tensor, a: torch.Tensor, mode: str, runs: np.ndarray | None = None) -> Any:
        return self.rescaled.classify(w, a, mode, runs)

    def finish(self, w: torch.Tensor, a: torch.Tensor, runs: np.ndarray, options: EndGameOptions) -> Finish | None:
        return self.rescaled.finish(w, a, runs, options)

    def loss_scale(self, n_runs: int) -> np.ndarray:
        return np.broadcast_to(self.scales()[1].square().numpy(), (n_runs,)).astype(float)

    def groups(self, end: Any) -> dict[str, np.ndarray]:
        return self.rescaled.groups(end)

    def embeddings(self, end: Any, betas: tuple[float, ...]) -> dict[str, np.ndarray]:
        return self.rescaled.embeddings(end, betas)


def _teacher_problem(seed: int, n: int = 12) -> tuple[WeightedSampledProblem, torch.Tensor, torch.Tensor]:
    """A realisable weighted problem (targets of a width-2 ReLU teacher, a bias column) and 6 starts of width 3:
    four random, two near the teacher (its neurons, slightly moved, and a small third neuron)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.cat([torch.randn(1, n, 2, generator=gen, dtype=DT), torch.ones(1, n, 1, dtype=DT)], dim=-1)
    teacher_w, teacher_a = torch.randn(1, 2, 3, generator=gen, dtype=DT), torch.randn(1, 2, 1, generator=gen, dtype=DT)
    y = torch.relu(x @ teacher_w.mT) @ teacher_a
    weights = 0.2 + 2.0 * torch.rand(n, generator=gen, dtype=DT)
    problem = WeightedSampledProblem(x, y, weights, verdicts=VerdictOptions("realisable_target", 0.05))
    w0 = 0.5 * torch.randn(6, 3, 3, generator=gen, dtype=DT)
    a0 = 0.5 * torch.randn(6, 3, 1, generator=gen, dtype=DT)
    w0[4:, :2], a0[4:, :2] = teacher_w + 0.01 * torch.randn(2, 2, 3, generator=gen, dtype=DT), teacher_a
    w0[4:, 2], a0[4:, 2] = 0.01 * w0[4:, 2], 0.01 * a0[4:, 2]
    return problem, w0, a0


def test_the_weighted_loss_is_the_unweighted_loss_on_rescaled_data():
    """The homogeneity identity the toy classifier rests on, checked against an independent evaluation."""
    problem, w0, a0 = _teacher_problem(0)
    rescaled = problem.rescaled.evaluator(6, 3)(w0, a0)
    mine = problem.evaluator(6, 3)(w0, a0)
    torch.testing.assert_close(mine.loss, rescaled.loss)
    torch.testing.assert_close(mine.grad_w, rescaled.grad_w)
    torch.testing.assert_close(mine.grad_a, rescaled.grad_a)
    uniform = WeightedSampledProblem(problem.x, problem.y, torch.ones_like(problem.weights))
    assert not torch.allclose(uniform.loss(w0, a0), mine.loss)  # the weights matter


def test_a_fourth_loss_runs_through_descent_classification_and_the_batch_record():
    problem, w0, a0 = _teacher_problem(1)
    descent = descend(problem, w0, a0, learning_rate=0.05, max_steps=4000, n_checkpoints=16)
    reference = descend(problem.rescaled, w0, a0, learning_rate=0.05, max_steps=4000, n_checkpoints=16)
    torch.testing.assert_close(descent.loss_final, reference.loss_final, rtol=1e-6, atol=1e-12)
    assert torch.equal(descent.stop_reason, reference.stop_reason)
    assert (descent.stop_reason != int(StopReason.DIVERGED)).all()

    record = record_batch(problem, descent, end_game=EndGameOptions(), classify_plateaus=True)
    assert set(record) <= set(VARIABLES), sorted(set(record) - set(VARIABLES))
    assert {name for name in VARIABLES if name.startswith("end_")} & set(record)
    assert all(values.shape[0] == 6 for values in record.values())
    expected = record_batch(problem.rescaled, reference, end_game=EndGameOptions(), classify_plateaus=True)
    np.testing.assert_array_equal(record["end_point_type"], expected["end_point_type"])
    np.testing.assert_array_equal(record["plateau_point_type"], expected["plateau_point_type"])
    near_teacher = record["end_point_type"][4:]  # the runs started next to the teacher reach a zero-loss minimum
    assert (near_teacher == labels.code(labels.POINT_TYPE, "global_min")).all(), near_teacher
