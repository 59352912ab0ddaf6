"""Engine throughput, measured side by side in one process (float64, CPU by default).

Compares, on identical runs and numbers of steps:

(a) ``pipeline.problems.run_gradient_descent`` (closed-form batched gradients, full trajectory bookkeeping);
(b) the torch.func ensembling recipe: ``vmap(grad(loss))`` over stacked parameters, plain GD update;
(c) a Python loop over runs with autograd and ``torch.optim.SGD``, timed on a subset of runs and scaled.

Also prints the engine's throughput in run-steps per second and its effective GFLOP/s (6 n d m k flops
per run-step) as a fraction of this process's large-GEMM GFLOP/s, and the throughput of the Gaussian
population loss (``run_population_gradient_descent``, Safran-Shamir shapes: d = teacher width = k, student
width k + 1). Run: ``python benchmarks/bench_engine.py [--steps 200] [--device cpu] [--runs-scale 1]
[--threads N] [--repeats 3] [--clock wall|cpu]``; ``--runs-scale`` multiplies the runs of every shape
(a GPU needs many runs per tensor to fill). Every time is the best of ``--repeats`` calls (one
for the slow per-run loop). On a busy shared machine, ``--threads 1 --clock cpu`` gives the ratios
that other processes disturb least. Nothing is asserted: the printed ratios are the result.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import grad, vmap

from pipeline.problems import run_gradient_descent, run_population_gradient_descent

# (runs, n, d, width): a default-survey cell (n = 16 points in 2-d plus a bias, width 16), then larger data
SHAPES = ((160, 16, 3, 16), (1024, 16, 3, 8), (512, 64, 8, 16), (256, 256, 16, 32))
POPULATION_SHAPES = ((100, 6), (100, 12), (100, 20))  # (runs, k): teacher width = input dimension = k
LEAK, LEARNING_RATE = 0.0, 0.01


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass(frozen=True)
class Timer:
    """Best-of-``repeats`` timing with ``clock``: wall time, or this process's CPU time (``time.process_time``).

    CPU time ignores the time other processes hold the cores; it equals the wall time of an
    undisturbed run only with one thread (``--threads 1``), as idle threads may spin.
    """

    repeats: int = 3
    clock: Callable[[], float] = time.perf_counter

    def best(self, function: Callable[[], object], repeats: int | None = None) -> float:
        """Smallest time of ``repeats`` (default ``self.repeats``) calls, in seconds."""
        times = []
        for _ in range(repeats or self.repeats):
            start = self.clock()
            function()
            times.append(self.clock() - start)
        return min(times)


def gemm_gflops(device: torch.device, timer: Timer, size: int = 2048) -> float:
    """GFLOP/s of one large float64 matrix product on ``device``."""
    left = torch.randn(size, size, dtype=torch.float64, device=device)
    right = torch.randn(size, size, dtype=torch.float64, device=device)
    seconds = timer.best(lambda: _synchronised(device, lambda: left @ right))
    return 2 * size**3 / seconds / 1e9


def _synchronised(device: torch.device, function: Callable[[], object]) -> object:
    result = function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result


def vmap_recipe(w0: torch.Tensor, a0: torch.Tensor, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    """torch.func ensembling: per-model autograd gradient, vectorised with vmap over the run axis."""

    def single_loss(w: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        hidden = torch.nn.functional.leaky_relu(x[0] @ w.T, LEAK)
        return 0.5 * (hidden @ a - y[0]).square().sum() / x.shape[1]

    batched_grad = vmap(grad(single_loss, argnums=(0, 1)))
    w, a = w0.clone(), a0.clone()
    for _ in range(steps):
        grad_w, grad_a = batched_grad(w, a)
        w, a = w - LEARNING_RATE * grad_w, a - LEARNING_RATE * grad_a


def loop_recipe(w0: torch.Tensor, a0: torch.Tensor, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    """One model at a time: autograd and torch.optim.SGD."""
    for run in range(w0.shape[0]):
        w = w0[run].clone().requires_grad_(True)
        a = a0[run].clone().requires_grad_(True)
        optimiser = torch.optim.SGD([w, a], lr=LEARNING_RATE)
        for _ in range(steps):
            optimiser.zero_grad()
            hidden = torch.nn.functional.leaky_relu(x[0] @ w.T, LEAK)
            (0.5 * (hidden @ a - y[0]).square().sum() / x.shape[1]).backward()
            optimiser.step()


def measure_shape(
    shape: tuple[int, int, int, int],
    steps: int,
    loop_runs: int,
    device: torch.device,
    peak: float,
    timer: Timer,
    runs_scale: int,
) -> str:
    """One table row: the three recipes timed side by side on the same runs and steps."""
    runs, n, d, m = shape
    runs *= runs_scale
    options = dict(dtype=torch.float64, device=device)
    x, y = torch.randn(1, n, d, **options), torch.randn(1, n, 1, **options)
    w0, a0 = torch.randn(runs, m, d, **options) / d**0.5, torch.randn(runs, m, 1, **options) / m**0.5

    def engine() -> object:
        return run_gradient_descent(
            w0, a0, x, y, leak=LEAK, learning_rate=LEARNING_RATE, max_steps=steps - 1, grad_tol=1e-300
        )

    engine_s = timer.best(lambda: _synchronised(device, engine))
    vmap_s = timer.best(lambda: _synchronised(device, lambda: vmap_recipe(w0, a0, x, y, steps)))
    subset = min(loop_runs, runs)
    loop_s = timer.best(lambda: loop_recipe(w0[:subset], a0[:subset], x, y, steps), repeats=1) * runs / subset
    gflops = 6 * n * d * m * 1 * runs * steps / engine_s / 1e9
    return (
        f"{runs:6d} {n:4d} {d:3d} {m:3d} | {engine_s:8.3f} | {runs * steps / engine_s:14.3g} | {vmap_s:7.3f} |"
        f" {loop_s:15.2f} | {vmap_s / engine_s:11.1f} | {loop_s / engine_s:11.0f} | {gflops / peak:8.1%}"
        f" ({gflops:.1f} GFLOP/s)"
    )


def measure_population(shape: tuple[int, int], steps: int, device: torch.device, timer: Timer, runs_scale: int) -> str:
    """One row for the Gaussian population loss: student width k + 1 against an orthonormal teacher of width k."""
    runs, k = shape
    runs *= runs_scale
    options = dict(dtype=torch.float64, device=device)
    teacher_w, teacher_a = torch.eye(k, **options)[None], torch.ones(1, k, 1, **options)
    w0, a0 = torch.randn(runs, k + 1, k, **options) / k**0.5, torch.ones(runs, k + 1, 1, **options)

    def engine() -> object:
        return run_population_gradient_descent(
            w0, a0, teacher_w, teacher_a, leak=LEAK, learning_rate=0.1, max_steps=steps - 1, train_output=False,
            grad_tol=1e-300,
        )  # fmt: skip

    engine_s = timer.best(lambda: _synchronised(device, engine))
    return f"{runs:6d} {k:3d} {k + 1:3d} | {engine_s:8.3f} | {runs * steps / engine_s:14.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="gradient steps per run")
    parser.add_argument("--loop-runs", type=int, default=8, help="runs timed for the per-run loop (scaled up)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs-scale", type=int, default=1, help="multiply the runs of every shape")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3, help="calls per timing; the best is kept")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="cpu: this process's CPU time")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    timer = Timer(args.repeats, CLOCKS[args.clock])
    torch.manual_seed(0)
    peak = gemm_gflops(device, timer)
    threads = torch.get_num_threads()
    print(f"device {device}, torch threads {threads}, {args.clock} clock, large-GEMM float64: {peak:.1f} GFLOP/s")
    print("sampled data: the engine, the torch.func vmap recipe and a per-run autograd loop, same runs and steps")
    print("  runs    n   d   m | engine s | run-steps / s  | vmap s  | loop s (scaled) | vmap/engine | loop/engine |"
          " GEMM fraction")  # fmt: skip
    for shape in SHAPES:
        print(measure_shape(shape, args.steps, args.loop_runs, device, peak, timer, args.runs_scale))
    print("Gaussian population loss (Safran-Shamir: d = k, student width k + 1, output weights fixed)")
    print("  runs   k   m | engine s | run-steps / s")
    for shape in POPULATION_SHAPES:
        print(measure_population(shape, args.steps, device, timer, args.runs_scale))


if __name__ == "__main__":
    main()
