"""Re-classify the end points and plateau points of a sampled-loss survey store with the installed classifier.

Prints the verdicts stored in the store (by the classifier that wrote it) against the verdicts of the
classifier installed now, for end points and for plateau points, so a change of the classifier is measured
on the same points (minima of every globality are counted together: the store layer decides globality).

    python benchmarks/reclassify_store.py results/saddle_to_saddle/survey.zarr surveys/saddle_to_saddle.yaml
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch
import xarray as xr

from pipeline.batch import run_inputs
from pipeline.stationary import classify_batch, labels
from pipeline.survey import load_survey
from pipeline.survey.plan import make_plan, run_settings

_MINIMA = {"global_min", "spurious_local_min", "local_min"}


def _name(code: int) -> str:
    name = labels.POINT_TYPE[int(code)]
    return "minimum" if name in _MINIMA else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("survey")
    args = parser.parse_args()
    torch.set_num_threads(1)
    survey = load_survey(args.survey)
    plan = make_plan(survey).set_index("run", drop=False)
    ds = xr.open_zarr(args.store, chunks=None)
    end_pairs: Counter = Counter()
    plateau_pairs: Counter = Counter()
    radius_violations = 0
    for run in ds.run.values:
        row = plan.loc[int(run)]
        settings = run_settings(row)
        inputs = run_inputs(settings, survey.master_seed, int(row["data_seed"]), int(row["init_seed"]))
        m, d = inputs.w0.shape
        k = inputs.a0.shape[1]
        x = torch.as_tensor(inputs.dataset.x)[None]
        y = torch.as_tensor(inputs.dataset.y)[None]
        stored = ds.sel(run=run)
        if settings["activation"] == "quadratic":  # the smooth classifier has its own tests
            raise ValueError(f"run {run}: the quadratic activation is not covered here (ReLU and leaky ReLU only)")
        leak = 0.0 if settings["activation"] == "relu" else float(settings["leak"])
        options = dict(leak=leak, train_output=settings["output_layer"] == "trained",
                       learning_rate=settings["learning_rate"])  # fmt: skip
        w = torch.as_tensor(stored["w_final"].values[:m, :d])[None]
        a = torch.as_tensor(stored["a_final"].values[:m, :k])[None]
        end = classify_batch(w, a, x, y, mode="end_point", **options)
        end_pairs[(_name(stored["end_point_type"].values), _name(end.point_type[0]))] += 1
        if end.has_witness[0] and end.point_type[0] == labels.code(labels.POINT_TYPE, "saddle"):
            norm = np.sqrt(np.square(end.witness_w[0]).sum() + np.square(end.witness_a[0]).sum())
            radius_violations += int(norm > end.witness_radius[0])
        codes = stored["plateau_point_type"].values
        slots = np.flatnonzero((stored["plateau_start"].values >= 0) & (codes >= 0))
        if slots.size:
            pw = torch.as_tensor(stored["plateau_w"].values[slots][:, :m, :d])
            pa = torch.as_tensor(stored["plateau_a"].values[slots][:, :m, :k])
            plateau = classify_batch(pw, pa, x, y, mode="plateau", **options)
            for slot, new in zip(slots, plateau.point_type, strict=True):
                plateau_pairs[(_name(codes[slot]), _name(new))] += 1
    for what, pairs in (("end points", end_pairs), ("plateau points", plateau_pairs)):
        print(f"{what}: stored -> recomputed (count)")
        for (old, new), count in sorted(pairs.items(), key=lambda item: -item[1]):
            print(f"  {old:>15} -> {new:<15} {count}")
    print(f"end-point saddle witnesses longer than their validity radius: {radius_violations}")


if __name__ == "__main__":
    main()
