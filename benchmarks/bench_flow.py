"""Gradient flow against fixed-step gradient descent and per-network scipy, side by side in one process.

On two kinds of runs, every method run until each run is resolved (the engine's convergence test, or the same
flow-time budget ``max_steps * learning_rate``):

* vanishing initialisation (``surveys/saddle_to_saddle.yaml``: 8 Gaussian inputs, random targets, width 8,
  ReLU, balanced initialisation of scale 1e-6, learning rate 0.05, 40,000 steps, ``grad_tol`` 1e-9);
* the Safran-Shamir population loss (``surveys/safran_shamir.yaml``: orthonormal teacher of width k = d, student
  width k + 1 with output weights fixed to one, Xavier initialisation, learning rate 0.1, 40,000 steps,
  ``grad_tol`` 1e-10).

Methods: (a) ``pipeline.dynamics.descend``, gradient descent (one gradient per step); (b) the batched integrator
``pipeline.dynamics.gradient_flow`` (exact Hessian, RODAS4, per-run steps); (c) ``scipy.integrate.solve_ivp``
with BDF and with LSODA, one network at a time, with the same closed-form gradient and Hessian as Jacobian,
stopped by a terminal event on the engine's whole-gradient test (what a Python user would write instead of
MLPGradientFlow.jl). Printed per method: gradient and Hessian evaluations (sums over runs), wall time, the
runs converged, and the largest absolute difference of the final loss to gradient descent's (inf: a network
scipy did not finish); then the ratios.

Run: ``python benchmarks/bench_flow.py [--runs 40] [--k 6] [--threads 1] [--scipy-runs 2] [--scipy-budget 10]
[--all] [--device cuda]`` (``--runs``: runs per batch, as the surveys' ``batch_size`` of 40 and 50 for these two
workloads; ``--k``: the Safran-Shamir teacher width; scipy is timed on the first ``--scipy-runs`` runs and scaled to
all, on the CPU only; a network
still running after ``--scipy-budget`` seconds is stopped and counted as not converged, its time a lower bound).
Nothing is asserted: the printed numbers are the result.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp

from pipeline.dynamics import FlowOptions, descend, flow
from pipeline.dynamics.flow_system import pack
from pipeline.losses.activations import as_activation
from pipeline.problems import (
    GaussianPopulationProblem,
    Problem,
    SampledProblem,
)

DTYPE = torch.float64


@dataclass(frozen=True)
class Case:
    """One benchmark cell: its runs and their loss."""

    name: str
    w0: torch.Tensor
    a0: torch.Tensor
    train_output: bool
    learning_rate: float
    max_steps: int
    grad_tol: float
    problem: Problem

    def to(self, device: str) -> Case:
        """The same cell with every tensor on ``device``."""
        fields = dataclasses.fields(self.problem)  # type: ignore[arg-type]
        tensors = {f.name: getattr(self.problem, f.name).to(device) for f in fields
                   if isinstance(getattr(self.problem, f.name), torch.Tensor)}  # fmt: skip
        problem = dataclasses.replace(self.problem, **tensors)  # type: ignore[type-var]
        return dataclasses.replace(self, w0=self.w0.to(device), a0=self.a0.to(device), problem=problem)


def vanishing_case(n_runs: int, d: int, k: int, seed: int) -> Case:
    """``saddle_to_saddle``: 8 Gaussian inputs in ``d`` dimensions, random targets, width 8, balanced 1e-6 init."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n_runs, 8, d, generator=generator, dtype=DTYPE)
    y = torch.randn(n_runs, 8, k, generator=generator, dtype=DTYPE)
    w0 = 1e-6 * torch.randn(n_runs, 8, d, generator=generator, dtype=DTYPE)
    direction = torch.randn(n_runs, 8, k, generator=generator, dtype=DTYPE)
    a0 = direction / direction.norm(dim=-1, keepdim=True) * w0.norm(dim=-1, keepdim=True)
    return Case(
        f"vanishing init d={d} k={k}", w0, a0, True, 0.05, 40000, 1e-9, SampledProblem(x, y, as_activation(0.0), True)
    )


def safran_shamir_case(n_runs: int, k: int, seed: int) -> Case:
    """``safran_shamir``: orthonormal teacher of width ``k = d``, student width ``k + 1``, output fixed to ones."""
    generator = torch.Generator().manual_seed(seed)
    v, b = torch.eye(k, dtype=DTYPE)[None], torch.ones(1, k, 1, dtype=DTYPE)
    w0 = torch.randn(n_runs, k + 1, k, generator=generator, dtype=DTYPE) / math.sqrt(k)
    a0 = torch.ones(n_runs, k + 1, 1, dtype=DTYPE)
    return Case(
        f"Safran-Shamir k={k} n={k + 1}", w0, a0, False, 0.1, 40000, 1e-10,
        GaussianPopulationProblem(v, b, as_activation(0.0), False),
    )  # fmt: skip


def timed(function: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


class OutOfTime(Exception):
    """A per-network solver ran past its wall-time budget."""


def scipy_flow(
    case: Case, run: int, method: str, rtol: float, atol: float, budget: float
) -> tuple[float, int, int, bool]:
    """One network by ``solve_ivp``: final loss, gradient and Jacobian evaluations, converged.

    A network still running after ``budget`` seconds is stopped: loss NaN, evaluations those made so far.
    """
    deadline = time.perf_counter() + budget
    calls = {"field": 0, "jacobian": 0}
    problem = case.problem.flow_system(case.a0)
    assert problem is not None, "both benchmark losses have a flow system"
    problem.freeze(pack(case.w0, case.a0, case.train_output))  # a frozen problem can be narrowed to one run
    problem = problem.select(torch.tensor([run]))
    s_x, s_y = (scale.expand(case.w0.shape[0])[run] for scale in case.problem.scales())
    threshold = float(max(case.grad_tol, 100 * np.finfo(float).eps) * s_y**1.5 * s_x**0.5)

    def field(_: float, theta: np.ndarray) -> np.ndarray:
        calls["field"] += 1
        if time.perf_counter() > deadline:
            raise OutOfTime
        point = torch.from_numpy(theta)[None]
        problem.freeze(point)  # the sampled loss's activation pattern at this point
        return -problem.gradients(point)[1][0].numpy()

    def jacobian(_: float, theta: np.ndarray) -> np.ndarray:
        calls["jacobian"] += 1
        point = torch.from_numpy(theta)[None]
        problem.freeze(point)
        return -problem.hessian(point)[0].numpy()

    def resolved(_: float, theta: np.ndarray) -> float:
        return float(np.linalg.norm(field(0.0, theta))) - threshold

    resolved.terminal = True  # type: ignore[attr-defined]
    theta0 = pack(case.w0[run : run + 1], case.a0[run : run + 1], case.train_output)[0].numpy()
    horizon = case.max_steps * case.learning_rate
    try:
        solution = solve_ivp(field, (0.0, horizon), theta0, method=method, jac=jacobian, rtol=rtol, atol=atol,
                             events=resolved)  # fmt: skip
    except OutOfTime:
        return math.nan, calls["field"], calls["jacobian"], False
    end = torch.from_numpy(solution.y[:, -1])[None]
    problem.freeze(end)
    loss = float(problem.gradients(end)[0].loss[0])
    return loss, calls["field"], calls["jacobian"], solution.status == 1


def compare(case: Case, scipy_runs: int, rtol: float, atol: float, budget: float) -> None:
    descent, gd_time = timed(
        lambda: descend(case.problem, case.w0, case.a0, learning_rate=case.learning_rate, max_steps=case.max_steps,
                        grad_tol=case.grad_tol)
    )  # fmt: skip
    gd_loss = descent.loss_final  # type: ignore[attr-defined]
    gd_evaluations = int((descent.steps_taken + 1).sum())  # type: ignore[attr-defined]
    options = FlowOptions(learning_rate=case.learning_rate, max_time=case.max_steps * case.learning_rate, rtol=rtol,
                          atol=atol, grad_tol=case.grad_tol)  # fmt: skip
    flow_result, flow_time = timed(lambda: flow(case.problem, case.w0, case.a0, options))
    flow_loss = flow_result.descent.loss_final  # type: ignore[attr-defined]
    n_runs = case.w0.shape[0]
    print(f"\n== {case.name}: {n_runs} runs, {case.max_steps} steps of {case.learning_rate} ==")
    header = f"{'method':<22}{'gradients':>11}{'Hessians':>10}{'wall s':>9}{'converged':>11}{'max |dL| vs GD':>18}"
    print(header)
    converged = int((descent.stop_reason == 1).sum())  # type: ignore[attr-defined]
    print(f"{'gradient descent':<22}{gd_evaluations:>11}{0:>10}{gd_time:>9.2f}{converged:>11}{'-':>18}")
    difference = float((flow_loss - gd_loss).abs().max())
    flow_converged = int((flow_result.descent.stop_reason == 1).sum())  # type: ignore[attr-defined]
    print(f"{'flow (batched)':<22}{int(flow_result.n_gradients.sum()):>11}{int(flow_result.n_hessians.sum()):>10}"  # type: ignore[attr-defined]
          f"{flow_time:>9.2f}{flow_converged:>11}{difference:>18.2e}")  # fmt: skip
    ratios = {"flow": (gd_evaluations / int(flow_result.n_gradients.sum()), None)}  # type: ignore[attr-defined]
    if case.w0.device.type != "cpu":
        print(f"ratios: GD / flow gradients = {ratios['flow'][0]:.1f};  wall GD / flow = {gd_time / flow_time:.2f}"
              " (scipy: CPU only)")  # fmt: skip
        return
    for method in ("BDF", "LSODA"):
        runs = range(min(scipy_runs, n_runs))
        results, seconds = timed(
            lambda method=method, runs=runs: [scipy_flow(case, run, method, rtol, atol, budget) for run in runs]
        )
        losses = torch.tensor([result[0] for result in results], dtype=DTYPE)  # type: ignore[union-attr]
        scale = n_runs / len(runs)
        gradients = int(sum(result[1] for result in results) * scale)  # type: ignore[union-attr]
        jacobians = int(sum(result[2] for result in results) * scale)  # type: ignore[union-attr]
        done = sum(result[3] for result in results)  # type: ignore[union-attr]
        difference = float(
            ((losses - gd_loss[: len(runs)]).abs() / gd_loss[: len(runs)].abs()).nan_to_num(math.inf).max()
        )
        print(f"{'scipy ' + method + ' (scaled)':<22}{gradients:>11}{jacobians:>10}{seconds * scale:>9.2f}"
              f"{f'{done}/{len(runs)}':>11}{difference:>18.2e}")  # fmt: skip
        ratios[method] = (seconds * scale, jacobians)
    print(f"ratios: GD / flow gradients = {ratios['flow'][0]:.1f};  wall GD / flow = {gd_time / flow_time:.2f}"
          f";  wall BDF / flow = {ratios['BDF'][0] / flow_time:.2f}"
          f";  wall LSODA / flow = {ratios['LSODA'][0] / flow_time:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per batch (the surveys' batch_size)")
    parser.add_argument("--k", type=int, default=6, help="Safran-Shamir teacher width (student k + 1)")
    parser.add_argument("--scipy-runs", type=int, default=2)
    parser.add_argument("--scipy-budget", type=float, default=10.0, help="seconds per network and method")
    parser.add_argument("--all", action="store_true", help="also the vanishing-initialisation cell d=3, k=2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--atol", type=float, default=1e-12)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (scipy runs on the CPU only)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [vanishing_case(args.runs, 2, 1, seed=1), safran_shamir_case(args.runs, args.k, seed=3)]
    if args.all:
        cases.insert(1, vanishing_case(args.runs, 3, 2, seed=2))
    for case in cases:
        compare(case.to(args.device), args.scipy_runs, args.rtol, args.atol, args.scipy_budget)


if __name__ == "__main__":
    main()
