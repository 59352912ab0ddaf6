"""Stationary-point classifier throughput on real gradient-descent end points (CPU, one thread).

Two measurements (issue 3, "Speed"); nothing is asserted, the printed numbers are the result:

(a) points/s/core of ``pipeline.stationary.classify_batch`` for width 16, n = 64, d = 8 (7 Gaussian
    features + a constant-1 bias column), scalar output, on end points of
    ``pipeline.problems.run_gradient_descent`` trained on a ReLU teacher (width 4) from several init
    scales (vanishing, small, standard);
(b) for the default survey's largest cells (width 16, each init scale): the wall time of the
    engine's gradient descent for one batch, of the end-point classification and of the
    plateau-point classification (the two ``classify_batch`` calls of ``pipeline.batch.simulate_batch``),
    and the ratio classification / gradient descent (target < 10 %).

Run: ``python benchmarks/bench_classifier.py [--runs 256] [--steps 4000] [--profile]``.
"""

# ruff: noqa: B023  (the timed lambdas run inside their loop iteration)
from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np
import torch

from pipeline.batch import run_inputs
from pipeline.globality import global_value_basis
from pipeline.losses import nets
from pipeline.losses.activations import activation_from_settings
from pipeline.problems import VerdictOptions, run_gradient_descent
from pipeline.stationary import classify_batch
from pipeline.survey.loading import load_survey
from pipeline.survey.plan import batches, make_plan, run_settings

WIDTH, N, D, TEACHER_WIDTH = 16, 64, 8, 4
INIT_SCALES = (1e-3, 0.1, 1.0)
LEARNING_RATE = 0.05


def end_points(runs: int, steps: int, seed: int = 0) -> list[tuple[float, dict[str, torch.Tensor]]]:
    """GD end points (per init scale) on one Gaussian data set with a ReLU teacher."""
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(1, N, D - 1, generator=gen, dtype=torch.float64)
    x = torch.cat([feats, torch.ones(1, N, 1, dtype=torch.float64)], dim=-1)
    v = torch.randn(TEACHER_WIDTH, D - 1, generator=gen, dtype=torch.float64) / (D - 1) ** 0.5
    b = torch.randn(TEACHER_WIDTH, 1, generator=gen, dtype=torch.float64) / TEACHER_WIDTH**0.5
    y = nets.forward(torch.cat([v, torch.zeros(TEACHER_WIDTH, 1, dtype=torch.float64)], -1)[None], b[None], x, 0.0)
    out = []
    for scale in INIT_SCALES:
        w0 = scale * torch.randn(runs, WIDTH, D, generator=gen, dtype=torch.float64)
        a0 = scale * torch.randn(runs, WIDTH, 1, generator=gen, dtype=torch.float64)
        res = run_gradient_descent(w0, a0, x, y, leak=0.0, learning_rate=LEARNING_RATE, max_steps=steps,
                                   grad_tol=1e-10, n_checkpoints=16)  # fmt: skip
        out.append((scale, dict(w=res.w_final, a=res.a_final, x=x, y=y)))
    return out


def timed(function, repeats: int = 1) -> tuple[float, object]:
    """Smallest wall time of ``repeats`` calls and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def cpu_timed(function, repeats: int) -> tuple[float, float, object]:
    """Smallest wall time and smallest CPU time of this thread over ``repeats`` calls, and the last result.

    The CPU time is what one core spends; on a shared machine the wall time also counts the waits
    for a core.
    """
    wall, cpu, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        result = function()
        wall, cpu = min(wall, time.perf_counter() - start), min(cpu, time.thread_time() - start_cpu)
    return wall, cpu, result


def throughput(runs: int, steps: int, profile: bool) -> None:
    print(f"(a) classify_batch on GD end points: width {WIDTH}, n {N}, d {D}, k 1, {runs} runs per init scale")
    total_points, total_time, total_cpu = 0, 0.0, 0.0
    for scale, p in end_points(runs, steps):
        call = lambda: classify_batch(p["w"], p["a"], p["x"], p["y"], leak=0.0, learning_rate=LEARNING_RATE,  # noqa: E731
                                      realisable=True)  # fmt: skip
        call()  # warm-up
        seconds, cpu_seconds, res = cpu_timed(call, repeats=2)
        total_points += runs
        total_time += seconds
        total_cpu += cpu_seconds
        kinked = res.kink.sum(axis=1).mean()
        types = np.bincount(res.point_type, minlength=7)
        print(
            f"  init {scale:7.0e}: {runs / seconds:8.0f} points/s wall, {runs / cpu_seconds:8.0f} per CPU second "
            f"(mean kinked neurons {kinked:4.1f}/{WIDTH}, point_type counts {types.tolist()}, "
            f"tolerance_sensitive {int(res.tolerance_sensitive.sum())})"
        )
        if profile:
            prof = cProfile.Profile()
            prof.runcall(call)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    print(
        f"  overall: {total_points / total_time:.0f} points/s/core wall clock, {total_points / total_cpu:.0f} points "
        "per CPU second (target >= 2000)"
    )


def survey_ratio(max_steps: int | None) -> None:
    survey = load_survey("surveys/default.yaml")
    plan = make_plan(survey)
    cells = [b for b in batches(plan, survey.execution.batch_size) if int(b["width"].iloc[0]) == plan["width"].max()]
    print(f"(b) default survey, width {int(plan['width'].max())} cells, {len(cells[0])} runs per batch")
    for rows in cells:
        settings = run_settings(rows.iloc[0])
        inputs = [run_inputs(settings, survey.master_seed, int(r.data_seed), int(r.init_seed))
                  for r in rows.itertuples()]  # fmt: skip
        opts = dict(dtype=torch.float64)
        x = torch.as_tensor(np.stack([i.dataset.x for i in inputs]), **opts)
        y = torch.as_tensor(np.stack([i.dataset.y for i in inputs]), **opts)
        leak = activation_from_settings(settings["activation"], settings["leak"]).leak
        steps = settings["max_steps"] if max_steps is None else max_steps
        gd_time, descent = timed(lambda: run_gradient_descent(
            torch.as_tensor(np.stack([i.w0 for i in inputs]), **opts),
            torch.as_tensor(np.stack([i.a0 for i in inputs]), **opts), x, y, leak=leak,
            learning_rate=settings["learning_rate"], max_steps=steps, grad_tol=settings["grad_tol"],
            n_checkpoints=settings["n_checkpoints"]))  # fmt: skip
        common = dict(
            leak=leak,
            learning_rate=settings["learning_rate"],
            realisable=VerdictOptions(global_value_basis(settings, x.numpy())).realisable,
        )
        end_time, _ = timed(lambda: classify_batch(descent.w_final, descent.a_final, x, y, **common))
        runs_i, slots = np.nonzero((descent.plateau_start >= 0).numpy())
        plateau_time = 0.0
        if runs_i.size:
            ri, si = torch.as_tensor(runs_i), torch.as_tensor(slots)
            plateau_time, _ = timed(lambda: classify_batch(descent.plateau_w[ri, si], descent.plateau_a[ri, si],
                                                           x[ri], y[ri], mode="plateau", **common))  # fmt: skip
        total = end_time + plateau_time
        print(
            f"  init_scale {settings['init_scale']:7.0e}: GD {gd_time:7.2f} s ({steps} steps max), classify end "
            f"{end_time:6.3f} s + plateaus ({runs_i.size}) {plateau_time:6.3f} s -> ratio {total / gd_time:6.1%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--survey-steps", type=int, default=None, help="override max_steps of the survey (quick)")
    parser.add_argument("--skip-survey", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    throughput(args.runs, args.steps, args.profile)
    if not args.skip_survey:
        survey_ratio(args.survey_steps)


if __name__ == "__main__":
    main()
