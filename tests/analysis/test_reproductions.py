"""Reproductions at reduced size against the theory's exact statements (theory.md sections 9 and 10).

Bo Liu's cell criterion is exact: every differentiable local minimum that gradient descent reaches lies in a
genuine activation cell, and the genuine-cell rate of 1-d Gaussian data with noise labels has a closed form.
Cheridito, Jentzen and Rossmannek's classification is exact: for an affine target on an interval, leaky ReLU
and the quadratic activation have no spurious local minima, and every spurious local minimum of ReLU has a
constant realisation (every neuron inactive) with loss ``slope^2 (high - low)^2 / 24`` in the normalisation
``1/(2 (high - low)) int``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from analysis.genuine import genuine_rate_table
from analysis.genuine_end_points import check_end_points
from analysis.query import decode
from analysis.reproductions import reproduction_for
from analysis.runs import open_survey, run_frame
from pipeline.batch import run_inputs
from pipeline.stationary import labels
from pipeline.survey import load_survey
from pipeline.survey.plan import make_plan, run_settings
from tests.analysis.helpers import run_in_process

SURVEYS = Path(__file__).resolve().parents[2] / "surveys"


@pytest.mark.slow
def test_genuine_rate_survey_agrees_with_the_cell_theory(tmp_path: Path) -> None:
    spec = yaml.safe_load((SURVEYS / "genuine_rate.yaml").read_text())
    spec["seeds"] = {"data": 12, "init": 4}
    spec["grid"] = {"n_samples": [6, 12]}
    spec["fixed"]["max_steps"] = 8000
    folder = tmp_path / "genuine_rate"
    folder.mkdir()
    survey = folder / "genuine_rate.yaml"
    survey.write_text(yaml.safe_dump(spec))
    dataset = open_survey(run_in_process(survey, folder))
    counts = check_end_points(dataset)
    assert counts["differentiable_minima"] > 0
    assert counts["not_genuine"] == 0  # exact: no differentiable minimum outside a genuine cell
    assert counts["genuine"] == counts["differentiable_minima"]
    reproduction = reproduction_for(dataset)
    assert reproduction is not None and f"{counts['genuine']} lie in genuine cells" in reproduction.reading


@pytest.mark.slow
@pytest.mark.parametrize("n", [6, 12])
def test_measured_genuine_rate_matches_the_closed_form_within_sampling_error(n: int) -> None:
    table = genuine_rate_table([n], 40_000, np.random.default_rng(n), cell="middle")
    row = table.iloc[0]
    standard_error = np.sqrt(row["closed_form"] * (1 - row["closed_form"]) / row["n_datasets"])
    assert abs(row["rate"] - row["closed_form"]) <= 5 * standard_error + 5 * row["closed_form_se"]


@pytest.mark.slow
def test_cjr_survey_agrees_with_the_classification_of_critical_points(tmp_path: Path) -> None:
    spec = yaml.safe_load((SURVEYS / "cjr_affine.yaml").read_text())
    spec["seeds"] = {"data": 2, "init": 12}
    spec["grid"]["width"] = [1, 2]
    spec["fixed"]["max_steps"] = 8000
    folder = tmp_path / "cjr_affine"
    folder.mkdir()
    survey_path = folder / "cjr_affine.yaml"
    survey_path.write_text(yaml.safe_dump(spec))
    dataset = open_survey(run_in_process(survey_path, folder))
    frame = run_frame(dataset, ["n_dead_neurons", "end_loss"], by=["activation", "width"])
    frame["point_type"] = decode(dataset["end_point_type"], labels.POINT_TYPE)
    spurious = frame[frame["point_type"] == "spurious_local_min"]
    assert (frame["point_type"] == "global_min").sum() > 0
    assert (spurious["activation"] == "leaky_relu").sum() == 0  # exact: leaky ReLU has none
    assert (spurious["activation"] == "quadratic").sum() == 0  # exact: nor has the quadratic activation
    quadratic = frame[(frame["activation"] == "quadratic") & (frame["width"] == 2)]
    assert (quadratic["point_type"] == "global_min").sum() > 0  # width 2 attains the affine target
    relu = spurious[spurious["activation"] == "relu"]
    assert len(relu) > 0  # width-1 ReLU nets that start dead stay dead: the test is not vacuous
    assert (relu["n_dead_neurons"] == relu["width"]).all()  # every neuron inactive: a constant realisation
    survey = load_survey(survey_path)
    plan = make_plan(survey)
    low, high = spec["fixed"]["interval_low"], spec["fixed"]["interval_high"]
    for run, loss in relu["end_loss"].items():
        row = plan.loc[int(dataset["run"].values[run])]
        slope = run_inputs(run_settings(row), survey.master_seed, int(row["data_seed"]), int(row["init_seed"]))
        expected = float(slope.dataset.affine_slope[0, 0]) ** 2 * (high - low) ** 2 / 24.0
        assert loss == pytest.approx(expected, rel=1e-6)
    reproduction = reproduction_for(dataset)
    assert reproduction is not None and f"relu: {len(relu)} of" in reproduction.reading
    assert "quadratic: 0 of" in reproduction.reading
