"""One story per stationary point (issues 12 and 19): a final plateau the run never left takes the end verdict."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import xarray as xr

from pipeline.batch_record import _last_plateau_is_the_end_point
from pipeline.stationary import labels
from pipeline.store.derived import add_derived_variables
from pipeline.trajectory import PlateauSettings


def test_final_plateaus_at_the_end_level_take_the_end_verdict_and_no_other_slot_changes():
    rng = np.random.default_rng(0)
    runs, slots, width = 5, 3, 5
    record = {}
    for name in ("point_type", "stationarity", "certificate", "mechanisms"):
        record[f"plateau_{name}"] = rng.integers(0, 5, (runs, slots)).astype(np.int8)
        record[f"end_{name}"] = rng.integers(0, 5, runs).astype(np.int8)
    record["plateau_escape"] = rng.random((runs, slots, width)) < 0.5
    record["end_escape"] = rng.random((runs, width)) < 0.5
    before = {name: values.copy() for name, values in record.items()}
    merge_tol = PlateauSettings().merge_tol
    plateau_loss = torch.tensor([[0.5, 0.2, np.nan], [0.5, 0.3, 0.1], [0.4, np.nan, np.nan], [0.9, 0.6, 0.3],
                                 [0.2, 0.1, np.nan]], dtype=torch.float64)  # fmt: skip
    # run 0: the end point is its final plateau's point (same loss); run 1: no final plateau; run 2: the
    # end game continued the final plateau within the detector's merge tolerance (the same level); run 3: the
    # end game left the final plateau for a level 3 merge tolerances lower; run 4: final plateau in slot 1
    # but the end loss is its level to rounding
    record["end_loss"] = np.array([0.2, 0.05, 0.4 * (1 - 0.5 * merge_tol), 0.3 * (1 - 3 * merge_tol), 0.1 + 1e-17])
    is_final = torch.zeros(runs, slots, dtype=torch.bool)
    is_final[0, 1] = is_final[2, 0] = is_final[3, 2] = is_final[4, 1] = True
    _last_plateau_is_the_end_point(record, SimpleNamespace(plateau_is_final=is_final, plateau_loss=plateau_loss))
    changed = {(0, 1), (2, 0), (4, 1)}
    for name in ("point_type", "stationarity", "certificate", "mechanisms", "escape"):
        for r in range(runs):
            for p in range(slots):
                expected = record[f"end_{name}"][r] if (r, p) in changed else before[f"plateau_{name}"][r, p]
                np.testing.assert_array_equal(record[f"plateau_{name}"][r, p], expected)


def test_a_final_plateau_at_the_end_point_takes_its_global_or_spurious_verdict(micro_store: Path) -> None:
    """The collect step resolves globality for the end point and for the final plateau that is the end point."""
    dataset = xr.open_zarr(micro_store).load()
    local_min = labels.code(labels.POINT_TYPE, "local_min")
    resolved = [labels.code(labels.POINT_TYPE, name) for name in ("global_min", "spurious_local_min")]
    minima = np.isin(dataset["end_point_type"].values, resolved)
    run = int(np.flatnonzero(minima)[0])
    for name, value in (("plateau_is_final", False), ("plateau_point_type", local_min)):
        dataset[name][:] = value
    dataset["plateau_is_final"][run, 0] = True  # the end point's plateau; slot 1 is a plateau the run left
    dataset["plateau_loss"][run, :2] = float(dataset["end_loss"][run])
    derived = add_derived_variables(dataset)
    assert derived["plateau_point_type"].values[run, 0] == derived["end_point_type"].values[run]
    assert derived["plateau_point_type"].values[run, 1] == local_min
