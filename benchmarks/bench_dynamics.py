"""Gradient descent against the gradient flow on the same survey runs, end to end through ``simulate_batch``.

Cells of 8 Gaussian points in 2-d with a teacher of width 2 (learning rate 0.01): by default one (width 3, leaky
ReLU 0.1, initialisation scale 0.5); with ``--varied`` widths 2 and 4, ReLU and leaky ReLU, initialisation
scales 0.5 and 1e-2. Each cell runs with ``dynamics: gd`` and ``dynamics: gradient_flow``; printed: wall time of
each batch (training, classification, end game), the end-point verdicts that agree, and the largest difference
of the loss at the end of training. Nothing is asserted (``tests/workflow/test_flow_batch.py`` asserts a
smaller case).

    python benchmarks/bench_dynamics.py [--data 4] [--init 5] [--max-steps 50000] [--varied]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pipeline.batch import simulate_batch
from pipeline.stationary import labels
from pipeline.survey import parse_survey
from pipeline.survey.plan import make_plan
from pipeline.workflow.commands.simulate import padding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=int, default=4)
    parser.add_argument("--init", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=50000)
    parser.add_argument("--varied", action="store_true", help="eight cells instead of one")
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = {"input_dim": 2, "n_samples": 8, "target": "teacher", "teacher_width": 2, "width": 3,
            "activation": "leaky_relu", "leak": 0.1, "teacher_activation": "leaky_relu", "teacher_leak": 0.1,
            "init_scale": 0.5, "learning_rate": 0.01, "max_steps": args.max_steps}  # fmt: skip
    cells = [base]
    if args.varied:
        relu = {name: value for name, value in base.items() if name not in ("leak", "teacher_leak")}
        relu |= {"activation": "relu", "teacher_activation": "relu"}
        cells = [cell | {"width": width, "init_scale": scale} for cell in (base, relu) for width in (2, 4)
                 for scale in (0.5, 1e-2)]  # fmt: skip
    totals = {"runs": 0, "agree": 0, "gd": 0.0, "gradient_flow": 0.0}
    for fixed in cells:
        records, seconds = _compare(fixed, args.data, args.init)
        gd, flow = records["gd"], records["gradient_flow"]
        agree = gd["end_point_type"] == flow["end_point_type"]
        totals["runs"] += agree.size
        totals["agree"] += int(agree.sum())
        for name in ("gd", "gradient_flow"):
            totals[name] += seconds[name]
        print(f"{fixed['activation']} width {fixed['width']} init {fixed['init_scale']:g}: {agree.size} runs, wall gd "
              f"{seconds['gd']:.2f} s, flow {seconds['gradient_flow']:.2f} s, verdicts agree {int(agree.sum())}, "
              f"largest |loss_final difference| {np.abs(gd['loss_final'] - flow['loss_final']).max():.2e}")  # fmt: skip
        for run in np.flatnonzero(~agree):
            print(f"  run {run}: gd {labels.POINT_TYPE[gd['end_point_type'][run]]}, "
                  f"flow {labels.POINT_TYPE[flow['end_point_type'][run]]}")  # fmt: skip
    print(f"total: verdicts agree on {totals['agree']} of {totals['runs']}; wall gd {totals['gd']:.1f} s, flow "
          f"{totals['gradient_flow']:.1f} s, ratio {totals['gd'] / totals['gradient_flow']:.1f}")  # fmt: skip


def _compare(fixed: dict, data: int, init: int) -> tuple[dict, dict]:
    """Records and wall seconds of one cell under each dynamics."""
    spec = {"schema_version": 1, "master_seed": 11, "seeds": {"data": data, "init": init}, "fixed": fixed,
            "grid": {"dynamics": ["gd", "gradient_flow"]}}  # fmt: skip
    survey = parse_survey(spec, name="bench_dynamics")
    records, seconds = {}, {}
    for _, rows in make_plan(survey).groupby("cell"):
        name = str(rows.iloc[0].dynamics)
        start = time.perf_counter()
        records[name] = simulate_batch(rows, master_seed=survey.master_seed, padding=padding(survey))
        seconds[name] = time.perf_counter() - start
    return records, seconds


if __name__ == "__main__":
    main()
