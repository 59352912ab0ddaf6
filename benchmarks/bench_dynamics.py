"""Gradient descent against the gradient flow on the same survey runs, end to end through ``simulate_batch``.

One cell (width 3, leaky ReLU teacher of width 2, 8 Gaussian points in 2-d, initialisation scale 0.5, learning
rate 0.01) is run with ``dynamics: gd`` and ``dynamics: gradient_flow``; printed: wall time of each batch
(training, classification and end game), the end-point verdicts that agree, and the largest difference of the
loss at the end of training. Nothing is asserted (``tests/workflow/test_flow_batch.py`` asserts a smaller case).

    python benchmarks/bench_dynamics.py [--data 4] [--init 5] [--max-steps 50000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pipeline.batch import simulate_batch
from pipeline.commands.simulate import padding
from pipeline.plan import make_plan
from pipeline.stationary import labels
from pipeline.survey import parse_survey


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=int, default=4)
    parser.add_argument("--init", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=50000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    fixed = {"input_dim": 2, "n_samples": 8, "target": "teacher", "teacher_width": 2, "width": 3,
             "activation": "leaky_relu", "leak": 0.1, "teacher_activation": "leaky_relu", "teacher_leak": 0.1,
             "init_scale": 0.5, "learning_rate": 0.01, "max_steps": args.max_steps}  # fmt: skip
    spec = {"schema_version": 1, "master_seed": 11, "seeds": {"data": args.data, "init": args.init}, "fixed": fixed,
            "grid": {"dynamics": ["gd", "gradient_flow"]}}  # fmt: skip
    survey = parse_survey(spec, name="bench_dynamics")
    records, seconds = {}, {}
    for _, rows in make_plan(survey).groupby("cell"):
        name = str(rows.iloc[0].dynamics)
        start = time.perf_counter()
        records[name] = simulate_batch(rows, master_seed=survey.master_seed, padding=padding(survey))
        seconds[name] = time.perf_counter() - start
    gd, flow = records["gd"], records["gradient_flow"]
    agree = gd["end_point_type"] == flow["end_point_type"]
    print(f"{agree.size} runs, {args.max_steps} steps of 0.01 (flow time {args.max_steps * 0.01:g})")
    print(f"wall: gd {seconds['gd']:.2f} s, gradient_flow {seconds['gradient_flow']:.2f} s, "
          f"ratio {seconds['gd'] / seconds['gradient_flow']:.1f}")  # fmt: skip
    print(f"end-point verdicts agree on {int(agree.sum())} of {agree.size}")
    for run in np.flatnonzero(~agree):
        print(f"  run {run}: gd {labels.POINT_TYPE[gd['end_point_type'][run]]}, "
              f"flow {labels.POINT_TYPE[flow['end_point_type'][run]]}")  # fmt: skip
    print(f"largest |loss_final difference|: {np.abs(gd['loss_final'] - flow['loss_final']).max():.2e}")


if __name__ == "__main__":
    main()
