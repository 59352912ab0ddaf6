"""Reproductions at reduced size against the theory's exact statements (theory.md section 10).

Bo Liu's cell criterion is exact: every differentiable local minimum that gradient descent reaches lies in a
genuine activation cell, and the genuine-cell rate of 1-d Gaussian data with noise labels has a closed form.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from analysis.genuine import check_end_points, genuine_rate_table
from analysis.reproductions import reproduction_for
from analysis.runs import open_survey
from tests.analysis.conftest import run_in_process

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
