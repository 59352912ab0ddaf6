"""One story per stationary point (issues 12 and 19): a converged run's final plateau takes the end point's verdict."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from pipeline.batch import _last_plateau_is_the_end_point
from pipeline.engine import StopReason


def test_final_plateaus_of_converged_runs_take_the_end_verdict_and_no_other_slot_changes():
    rng = np.random.default_rng(0)
    runs, slots, width = 4, 3, 5
    record = {}
    for name in ("point_type", "stationarity", "certificate", "mechanisms"):
        record[f"plateau_{name}"] = rng.integers(0, 5, (runs, slots)).astype(np.int8)
        record[f"end_{name}"] = rng.integers(0, 5, runs).astype(np.int8)
    record["plateau_escape"] = rng.random((runs, slots, width)) < 0.5
    record["end_escape"] = rng.random((runs, width)) < 0.5
    before = {name: values.copy() for name, values in record.items()}
    # run 0 converged in its last plateau (slot 1); run 1 converged without a final plateau;
    # run 2 hit the step budget inside its final plateau; run 3 converged in slot 2
    is_final = torch.zeros(runs, slots, dtype=torch.bool)
    is_final[0, 1] = is_final[2, 0] = is_final[3, 2] = True
    stop = torch.tensor([StopReason.CONVERGED, StopReason.CONVERGED, StopReason.MAX_STEPS, StopReason.CONVERGED])
    _last_plateau_is_the_end_point(record, SimpleNamespace(stop_reason=stop, plateau_is_final=is_final))
    changed = {(0, 1), (3, 2)}
    for name in ("point_type", "stationarity", "certificate", "mechanisms", "escape"):
        for r in range(runs):
            for p in range(slots):
                expected = record[f"end_{name}"][r] if (r, p) in changed else before[f"plateau_{name}"][r, p]
                np.testing.assert_array_equal(record[f"plateau_{name}"][r, p], expected)
