"""Validate the end game against long plain gradient descent on runs sampled from a survey store.

For every sampled run, gradient descent is re-run from the run's seeds with ``--factor`` times the
survey's step budget and no end game; its end point is classified and resolved with the same rules
(:func:`pipeline.resolution.resolve_runs`; a best-known global value is the store's reference or the
long run's loss, whichever is lower). The long run's limit verdict is compared with the stored one
(gradient descent over the survey's budget followed by the end game), and the gradient evaluations
of both are printed side by side.

    python benchmarks/validate_end_game.py results/default --runs 300 --factor 10

Runs are sampled evenly across the survey's grid cells (seeded, so the sample is reproducible).
The comparison table is written to ``<results>/end_game_validation.csv``.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.batch import simulate_batch
from pipeline.end_game import EndGameOptions
from pipeline.globality import resolve_globality
from pipeline.resolution import LIMIT, RESOLUTION, resolve_runs
from pipeline.store import open_store
from pipeline.workflow.commands.common import load_resolved
from pipeline.workflow.commands.simulate import padding


def sample_runs(plan: pd.DataFrame, n_runs: int, seed: int) -> pd.DataFrame:
    """About ``n_runs`` plan rows, the same number from every grid cell."""
    rng = np.random.default_rng(seed)
    per_cell = max(1, -(-n_runs // plan["cell"].nunique()))
    picks = [
        group.iloc[np.sort(rng.choice(len(group), min(per_cell, len(group)), replace=False))]
        for _, group in plan.groupby("cell")
    ]
    return pd.concat(picks)


def _long_run(job: tuple[pd.DataFrame, int, object, int]) -> dict[str, np.ndarray]:
    rows, master_seed, pad, factor = job
    torch.set_num_threads(1)
    long_rows = rows.assign(max_steps=rows["max_steps"] * factor)
    record = simulate_batch(
        long_rows, master_seed=master_seed, padding=pad, device="cpu", classify_plateaus=False,
        end_game=EndGameOptions(enabled=False),
    )  # fmt: skip
    record["run"] = rows["run"].to_numpy()
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a survey's results folder (survey.zarr, plan.csv)")
    parser.add_argument("--runs", type=int, default=300, help="runs to sample (default 300)")
    parser.add_argument("--factor", type=int, default=10, help="step budget multiplier (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    args = parser.parse_args()
    survey = load_resolved(args.results / "survey.resolved.yaml")
    plan = pd.read_csv(args.results / "plan.csv")
    store = open_store(args.results / "survey.zarr")
    sample = sample_runs(plan, args.runs, args.seed)
    pad = padding(survey)
    jobs = [(rows, survey.master_seed, pad, args.factor) for _, rows in sample.groupby("cell")]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        records = list(pool.map(_long_run, jobs))
    elapsed = time.perf_counter() - start
    long = {name: np.concatenate([r[name] for r in records]) for name in records[0]}
    runs = long["run"]
    stored = store.sel(run=runs)
    reference = np.minimum(stored["global_reference_loss"].values, long["loss_final"])
    point_type = resolve_globality(long["end_point_type"], long["end_loss"], reference)
    long_limit, long_resolution, _ = resolve_runs(
        point_type, long["end_strictness"], long["end_has_witness"], long["stop_reason"],
        long["zero_loss_approach"], long["plateau_is_final"].any(axis=-1),
    )  # fmt: skip
    table = pd.DataFrame(
        {
            "run": runs,
            "cell": stored["cell"].values,
            "width": stored["width"].values,
            "init_scale": stored["init_scale"].values,
            "end_game_limit": np.asarray(LIMIT)[stored["limit"].values],
            "end_game_resolution": np.asarray(RESOLUTION)[stored["resolution"].values],
            "long_limit": np.asarray(LIMIT)[long_limit],
            "long_resolution": np.asarray(RESOLUTION)[long_resolution],
            "loss_budget": stored["loss_final"].values,
            "loss_end_game": stored["end_loss"].values,
            "loss_long": long["loss_final"],
            "steps_budget": stored["steps_taken"].values,
            "end_game_gradient_evaluations": stored["end_game_gradient_evaluations"].values,
            "long_steps": long["steps_taken"],
        }
    )
    table["agree"] = table["end_game_limit"] == table["long_limit"]
    both = (table["end_game_limit"] != "unresolved") & (table["long_limit"] != "unresolved")
    out = args.results / "end_game_validation.csv"
    table.to_csv(out, index=False)
    print(
        f"{len(table)} runs from {len(jobs)} cells; long gradient descent: {args.factor}x the budget, {elapsed:.0f} s"
    )
    print(pd.crosstab(table["end_game_limit"], table["long_limit"], margins=True).to_string())
    print(
        f"agreement of limit verdicts: {table['agree'].sum()} of {len(table)} runs ({table['agree'].mean():.1%});"
        f" where both are resolved: {table['agree'][both].sum()} of {both.sum()} ({table['agree'][both].mean():.1%})"
    )
    extra = table["long_steps"] - table["steps_budget"]
    evaluations = table["end_game_gradient_evaluations"]
    print(
        "gradient evaluations beyond the budget: end game median"
        f" {evaluations.median():.0f} (mean {evaluations.mean():.0f}),"
        f" long gradient descent median {extra.median():.0f} (mean {extra.mean():.0f})"
    )
    disagreements = table[~table["agree"]]
    if len(disagreements):
        print("disagreements:")
        print(disagreements.drop(columns=["agree"]).to_string(index=False))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
