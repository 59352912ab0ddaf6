"""Helpers of the analysis tests: hand-made stores (through pipeline.store, no engine) and surveys run in-process."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.resolution import OUTCOME
from pipeline.store import record_to_dataset, write_atomic
from pipeline.survey import load_survey
from pipeline.survey.plan import make_plan, n_shards
from pipeline.workflow.commands import collect, plan, resolve, simulate

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "surveys" / "tiny.yaml"

# Point-type codes (pipeline.stationary.labels.POINT_TYPE) and outcome codes (pipeline.resolution.OUTCOME).
GLOBAL, SPURIOUS, LOCAL, SADDLE, UNDETERMINED, NOT_STATIONARY = range(6)
CONVERGED, STUCK, STALLED, NOT_CONVERGED, DIVERGED, OUTCOME_UNDETERMINED = (
    OUTCOME.index(name)
    for name in (
        "converged_global", "stuck_spurious_local_min", "stalled_at_saddle", "unresolved_moving", "diverged",
        "undetermined",
    )
)  # fmt: skip
Z, O_SPLIT, O_TOUCH, O_OTHER, V = (1, 2, 4, 8, 16)
ESCAPE_ZERO_OUTPUT, NEGATIVE_CURVATURE_WITNESS, FIRST_ORDER_DESCENT = 1, 3, 4  # labels.CERTIFICATE codes


def write_store(
    path: Path, rows: pd.DataFrame, record: Mapping[str, np.ndarray], chunk_runs: int | None = None
) -> Path:
    """A store from plan-like rows and a record of schema variables (pipeline.store, no engine)."""
    return write_atomic(record_to_dataset(rows, dict(record)), path, chunk_runs=chunk_runs)


def small_record() -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Ten runs at width 2 and ten at width 4, with counts chosen to be checked by hand.

    width 2: point types 3 global, 1 spurious, 4 saddle, 2 not stationary; escape counts
             [0, 0, 0, 1, 1, 2, 2, 2, 0, 0]; plateaus: run 0 has (grew 3, predicted 2, escape 4)
             and (grew 1, predicted 1, escape 1), run 1 has (grew 0, predicted 0, escape 2),
             run 2 has (grew 0, predicted 0, escape 0).
    width 4: 6 global, 0 spurious, 2 saddle, 1 undetermined, 1 not stationary; no escape neurons;
             run 10 has one plateau (grew 2, predicted 1, escape 1).
    Saddle mechanisms: width 2: Z, Z|O-split, O-touch, none; width 4: Z, V.
    Plateau points (all left by their run except run 0's second, which lasted until the run stopped):
             run 0: saddle Z, strict (escape_zero_output), loss 0.5, steps 10-110; then a saddle Z (final);
             run 1: saddle O-split+Z, strict, loss 0.25, steps 0-50;
             run 2: not stationary, loss 0.75, steps 5-25;
             run 10: saddle Z certified by a second-order witness (strictness unknown), loss 0.1, steps 100-1100.
    """
    n = 20
    rows = pd.DataFrame(
        {
            "run": np.arange(n),
            "width": np.repeat([2, 4], 10),
            "init_scale": np.tile([1e-3, 1.0], 10),
            "activation": np.array(["relu"] * n, dtype=object),
        }
    )
    point_type = np.array(
        [GLOBAL] * 3 + [SPURIOUS] + [SADDLE] * 4 + [NOT_STATIONARY] * 2
        + [GLOBAL] * 6 + [SADDLE] * 2 + [UNDETERMINED] + [NOT_STATIONARY],
        dtype=np.int8,
    )  # fmt: skip
    outcome = np.array(
        [CONVERGED] * 3 + [STUCK] + [STALLED] * 4 + [NOT_CONVERGED] * 2
        + [CONVERGED] * 6 + [STALLED] * 2 + [OUTCOME_UNDETERMINED] + [NOT_CONVERGED],
        dtype=np.int8,
    )  # fmt: skip
    mechanisms = np.zeros(n, dtype=np.int8)
    mechanisms[[4, 5, 6, 7]] = [Z, Z | O_SPLIT, O_TOUCH, 0]
    mechanisms[[16, 17]] = [Z, V]
    strictness = np.full(n, 3, dtype=np.int8)  # not_applicable
    strictness[[4, 5, 6, 7, 16, 17]] = [0, 0, 1, 2, 0, 1]
    plateaus = 3
    grew = np.full((n, plateaus), -1, dtype=np.int16)
    predicted = np.full((n, plateaus), -1, dtype=np.int16)
    escape = np.full((n, plateaus), -1, dtype=np.int16)
    grew[0, :2], predicted[0, :2], escape[0, :2] = [3, 1], [2, 1], [4, 1]
    grew[1, 0], predicted[1, 0], escape[1, 0] = 0, 0, 2
    grew[10, 0], predicted[10, 0], escape[10, 0] = 2, 1, 1
    grew[2, 0], predicted[2, 0], escape[2, 0] = 0, 0, 0
    start, end = np.full((n, plateaus), -1, dtype=np.int64), np.full((n, plateaus), -1, dtype=np.int64)
    loss = np.full((n, plateaus), np.nan)
    kind = np.full((n, plateaus), -1, dtype=np.int8)
    certificate = np.full((n, plateaus), -1, dtype=np.int8)
    plateau_mechanisms = np.full((n, plateaus), -1, dtype=np.int8)
    final = np.zeros((n, plateaus), dtype=bool)
    for (run, slot), values in {
        (0, 0): (10, 110, 0.5, SADDLE, ESCAPE_ZERO_OUTPUT, Z),
        (0, 1): (110, 200, 0.2, SADDLE, ESCAPE_ZERO_OUTPUT, Z),
        (1, 0): (0, 50, 0.25, SADDLE, ESCAPE_ZERO_OUTPUT, Z | O_SPLIT),
        (2, 0): (5, 25, 0.75, NOT_STATIONARY, FIRST_ORDER_DESCENT, 0),
        (10, 0): (100, 1100, 0.1, SADDLE, NEGATIVE_CURVATURE_WITNESS, Z),
    }.items():
        start[run, slot], end[run, slot], loss[run, slot], kind[run, slot] = values[:4]
        certificate[run, slot], plateau_mechanisms[run, slot] = values[4:]
    final[0, 1] = True
    n_plateaus = (grew >= 0).sum(axis=1).astype(np.int64)
    neuron, inputs = 4, 3
    record = {
        "end_point_type": point_type,
        "outcome": outcome,
        "end_mechanisms": mechanisms,
        "end_strictness": strictness,
        "n_escape_neurons": np.array([0, 0, 0, 1, 1, 2, 2, 2, 0, 0] + [0] * 10, dtype=np.int16),
        "n_plateaus": n_plateaus,
        "plateau_n_grew": grew,
        "plateau_n_grew_predicted": predicted,
        "plateau_n_escape": escape,
        "plateau_start": start,
        "plateau_end": end,
        "plateau_loss": loss,
        "plateau_is_final": final,
        "plateau_point_type": kind,
        "plateau_certificate": certificate,
        "plateau_mechanisms": plateau_mechanisms,
        "w_final": np.ones((n, neuron, inputs)),
        "a_final": np.ones((n, neuron, 1)),
        "plateau_w": np.ones((n, plateaus, neuron, inputs)),
        "checkpoint_amplitude": np.ones((n, 5, neuron)),
    }
    return rows, record


def run_in_process(survey: Path, folder: Path) -> Path:
    """Run a survey through the ``landscape`` steps in-process (resolve, plan, simulate, collect); returns the store."""
    folder.mkdir(parents=True, exist_ok=True)
    resolved = folder / "survey.resolved.yaml"
    assert resolve.main([str(survey), "--out", str(resolved)]) == 0
    assert plan.main([str(resolved), "--out", str(folder / "plan.csv")]) == 0
    shards = []
    for shard in range(n_shards(make_plan(load_survey(survey)))):
        path = folder / "shards" / f"shard-{shard:04d}.zarr"
        assert simulate.main([str(resolved), "--shard", str(shard), "--in-process", "--out", str(path)]) == 0
        shards.append(str(path))
    store = folder / "survey.zarr"
    assert collect.main([str(resolved), *shards, "--out", str(store)]) == 0
    return store
