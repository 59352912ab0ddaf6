"""Every run's inputs are regenerated exactly from its seeds by the public pipeline.batch.run_inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from pipeline.batch import run_inputs
from pipeline.survey import load_survey
from pipeline.survey.plan import make_plan, run_settings


def test_run_inputs_regenerate_the_stored_initialisation(micro_survey: Path, micro_store: Path) -> None:
    survey = load_survey(micro_survey)
    plan = make_plan(survey).set_index("run", drop=False)
    dataset = xr.open_zarr(micro_store, chunks=None)
    for run in (0, 5, 10, 15):  # both widths, both init scales, several init seeds
        stored = dataset.sel(run=run)
        row = plan.loc[run]
        assert int(stored["init_seed"]) == int(row["init_seed"])
        inputs = run_inputs(run_settings(row), survey.master_seed, int(row["data_seed"]), int(row["init_seed"]))
        width, n_inputs = inputs.w0.shape
        np.testing.assert_array_equal(stored["w_init"].values[:width, :n_inputs], inputs.w0)
        np.testing.assert_array_equal(stored["a_init"].values[:width], inputs.a0)
        assert np.isnan(stored["w_init"].values[width:]).all()  # padding beyond the run's own width
