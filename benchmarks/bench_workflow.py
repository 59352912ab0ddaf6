"""Workflow benchmarks, printed side by side in one run (not a test).

(a) One shard of tiny-size runs on a local Dask cluster with 2 workers versus 1 worker (1 thread
    each), split into cluster start-up, compute and shut-down; the acceptance ratio is on compute
    and is printed for the total too. Needs 2 free cores.
(b) A survey of 100,000 tiny-size runs (surveys/tiny.yaml with ``max_steps`` lowered and 25,000
    initialisations per cell) planned, simulated shard by shard with ``landscape simulate`` and
    collected with ``landscape collect``, each step in its own process; prints the wall time and the
    peak RSS of each step's largest process (``resource.getrusage``: the step's own ru_maxrss and
    that of its largest child, e.g. a Dask worker).

    python benchmarks/bench_workflow.py            # full: about an hour on 2 cores
    python benchmarks/bench_workflow.py --quick    # smaller shard, 10,000 runs: minutes
    python benchmarks/bench_workflow.py --simulate-shards 2   # (b) simulates only 2 shards and
        collects those (the plan is still 100,000 runs); says so in the output
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
GIB = 2**30

RUSAGE_WRAPPER = """
import json, resource, sys
from pipeline.cli import main
code = main(sys.argv[1:])
self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print("RUSAGE " + json.dumps({"code": code, "self_kib": self_kib, "children_kib": children_kib}))
sys.exit(code)
"""


def tiny_variant(folder: Path, name: str, *, max_steps: int, init_seeds: int, shard_size: int, batch_size: int) -> Path:
    data = yaml.safe_load((REPO / "surveys" / "tiny.yaml").read_text(encoding="utf-8"))
    data["fixed"]["max_steps"] = max_steps
    data["seeds"]["init"] = init_seeds
    data["execution"].update(shard_size=shard_size, batch_size=batch_size)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def bench_workers(folder: Path, quick: bool, steps: int = 2000) -> None:
    """(a) 2 workers vs 1 worker on one shard of runs with ``steps`` gradient steps each."""
    from pipeline.survey import load_survey
    from pipeline.survey.plan import batches, make_plan, shard_runs
    from pipeline.workflow.commands.simulate import padding, quiet_distributed
    from pipeline.workflow.runner import ExecutionSettings, _BatchTask, _client, _run_on_dask

    quiet_distributed()
    runs_per_cell, batch = (16, 4) if quick else (64, 16)
    survey = load_survey(
        tiny_variant(
            folder, "shard", max_steps=steps, init_seeds=runs_per_cell, shard_size=4 * runs_per_cell, batch_size=batch
        )
    )
    work = batches(shard_runs(make_plan(survey), 0), batch)
    print(f"(a) one shard: {sum(len(b) for b in work)} tiny runs ({steps} steps) in {len(work)} batches of {batch}")
    times = {}
    for workers in (1, 2):
        execution = ExecutionSettings(cluster="local", workers=workers, threads_per_worker=1, device="cpu")
        task = _BatchTask(survey.master_seed, padding(survey), True, "cpu", 1)
        start = time.perf_counter()
        with _client(execution) as client:
            client.run(lambda: __import__("pipeline.batch"))  # workers import torch and the engine
            ready = time.perf_counter()
            _run_on_dask(client, task, work, None)
            computed = time.perf_counter()
        stopped = time.perf_counter()
        times[workers] = (ready - start, computed - ready, stopped - computed)
        print(
            f"    {workers} worker(s): start-up {ready - start:6.1f} s   compute {computed - ready:6.1f} s"
            f"   shut-down {stopped - computed:5.1f} s   total {stopped - start:6.1f} s"
        )
    ratio = times[1][1] / times[2][1]
    total = sum(times[1]) / sum(times[2])
    print(f"    speed-up 2 vs 1 worker: compute {ratio:.2f}x (target >= 1.7x), total incl. start-up {total:.2f}x")
    print(f"    cores visible: {os.cpu_count()}, affinity: {len(os.sched_getaffinity(0))}")


def step(argv: list[str], log: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, dict]:
    start = time.perf_counter()
    with log.open("w") as handle:
        result = subprocess.run(
            [sys.executable, "-c", RUSAGE_WRAPPER, *argv], stdout=subprocess.PIPE, stderr=handle, text=True, check=False
        )
    wall = time.perf_counter() - start
    lines = [line for line in result.stdout.splitlines() if line.startswith("RUSAGE ")]
    if result.returncode not in ok or not lines:
        raise SystemExit(f"step {argv[0]} failed ({result.returncode}); see {log}\n{result.stdout[-2000:]}")
    return wall, json.loads(lines[-1].removeprefix("RUSAGE "))


def bench_scale(folder: Path, quick: bool, simulate_shards: int | None, threads: int) -> None:
    """(b) plan, simulate, collect a survey of 100,000 (quick: 10,000) tiny runs."""
    from pipeline.survey import load_survey
    from pipeline.survey.plan import make_plan, n_shards

    init_seeds = 2_500 if quick else 25_000
    survey_path = tiny_variant(
        folder, "scale", max_steps=200, init_seeds=init_seeds, shard_size=10_000 if not quick else 2_500, batch_size=500
    )
    survey = load_survey(survey_path)
    total_shards = n_shards(make_plan(survey))
    shards = range(total_shards if simulate_shards is None else min(simulate_shards, total_shards))
    print(
        f"(b) survey of {survey.n_runs:,} tiny runs (200 steps), "
        f"{total_shards} shards of {survey.execution.shard_size:,},"
        f" batches of {survey.execution.batch_size}; simulating {len(shards)} of {total_shards} shards"
        + ("" if len(shards) == total_shards else " (a subset: time; the collect step gathers only those)")
    )
    results = folder / "results" / survey.name
    peaks: list[tuple[str, float, dict]] = []
    wall, usage = step(["plan", str(survey_path), "--out", str(results / "plan.csv")], folder / "plan.log")
    peaks.append(("plan", wall, usage))
    outs = []
    for shard in shards:
        out = results / "shards" / f"shard-{shard:04d}.zarr"
        argv = ["simulate", str(survey_path), "--shard", str(shard), "--out", str(out), "--threads", str(threads)]
        wall, usage = step(argv, folder / f"simulate-{shard}.log")
        peaks.append((f"simulate shard {shard}", wall, usage))
        outs.append(str(out))
        print(f"    simulate shard {shard}: {wall:.1f} s", flush=True)
    wall, usage = step(
        ["collect", str(survey_path), *outs, "--out", str(results / "survey.zarr")],
        folder / "collect.log",
        ok=(0,) if len(shards) == total_shards else (0, 1),  # a subset leaves planned runs missing
    )
    peaks.append(("collect", wall, usage))
    print(f"    {'step':<20} {'wall s':>8} {'own peak RSS':>14} {'largest child':>14}")
    for name, wall, usage in peaks:
        own, child = usage["self_kib"] / 2**20, usage["children_kib"] / 2**20
        print(f"    {name:<20} {wall:8.1f} {own:11.2f} GiB {child:11.2f} GiB")
    largest = max(max(u["self_kib"], u["children_kib"]) for _, _, u in peaks) / 2**20
    simulated = sum(wall for name, wall, _ in peaks if name.startswith("simulate"))
    print(f"    largest process peak RSS: {largest:.2f} GiB (target < 2 GiB)")
    if len(shards) < total_shards:
        estimate = simulated / len(shards) * total_shards / 60
        print(f"    simulate time for all {total_shards} shards, extrapolated: {estimate:.0f} min")
    size = sum(f.stat().st_size for f in (results / "survey.zarr").rglob("*") if f.is_file())
    print(f"    survey store on disk: {size / 2**20:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    parser.add_argument("--simulate-shards", type=int, help="(b): simulate only this many shards")
    parser.add_argument("--threads", type=int, default=2, help="(b): --threads of each simulate step")
    parser.add_argument("--only", choices=("workers", "scale"), help="run one of the two benchmarks")
    parser.add_argument("--steps", type=int, default=2000, help="(a): gradient steps per run of the shard")
    args = parser.parse_args()
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="bench-workflow-", dir=base) as tmp:
        folder = Path(tmp)
        if args.only in (None, "workers"):
            bench_workers(folder, args.quick, args.steps)
        if args.only in (None, "scale"):
            bench_scale(folder, args.quick, args.simulate_shards, args.threads)


if __name__ == "__main__":
    main()
