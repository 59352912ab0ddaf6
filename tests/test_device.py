"""Same seeds, same verdicts on every device: one batch of each loss trained and classified on CPU and on CUDA.

The README promises that results do not depend on the device. Float64 rounding differs between the
two (other reduction orders in the matrix products), so numbers are compared to a tolerance and
labels exactly. Marked ``gpu``: run with ``pytest -m gpu`` on a machine with CUDA.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.batch import simulate_batch
from pipeline.survey import load_survey
from pipeline.survey.plan import make_plan
from pipeline.workflow.commands.simulate import padding

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

# (survey file, settings that shorten it): one loss each (sampled data, Gaussian and interval populations), each
# trained by gradient descent and by the gradient flow
BATCHES = {
    "sampled": ("surveys/default.yaml", {"max_steps": 4000}),
    "gaussian_population": ("surveys/safran_shamir.yaml", {"max_steps": 4000}),
    "interval_population": ("surveys/cjr_affine.yaml", {"max_steps": 4000}),
}
GD = {"dynamics": "gd", "max_time": None, "ode_rtol": None, "ode_atol": None}
FLOW = {"dynamics": "gradient_flow", "max_time": None, "ode_rtol": 1e-6, "ode_atol": 1e-12}
BATCHES = {loss: (path, overrides | GD) for loss, (path, overrides) in BATCHES.items()}
BATCHES |= {f"{loss} flow": (path, overrides | FLOW) for loss, (path, overrides) in BATCHES.items()}
LABELS = (
    "stop_reason", "steps_taken", "n_plateaus", "plateau_point_type", "end_game_used", "zero_loss_approach",
    "end_point_type", "end_stationarity", "end_certificate", "end_strictness", "end_escape",
)  # fmt: skip
DEVICES = ("cpu", "cuda")
NUMBERS = ("loss_final", "end_loss", "w_final", "end_w")


def _one_cell(path: str, overrides: dict) -> tuple:
    survey = load_survey(path)
    plan = make_plan(survey)
    rows = plan[plan["cell"] == plan["cell"].iloc[0]].head(16).assign(**overrides)
    return survey, rows


@pytest.mark.parametrize("loss", sorted(BATCHES))
def test_cpu_and_cuda_give_the_same_verdicts(loss: str) -> None:
    survey, rows = _one_cell(*BATCHES[loss])
    cpu, cuda = (
        simulate_batch(rows, master_seed=survey.master_seed, padding=padding(survey), device=device)
        for device in DEVICES
    )
    for name in LABELS:
        np.testing.assert_array_equal(cuda[name], cpu[name], err_msg=f"{loss}: {name} differs between devices")
    for name in NUMBERS:
        np.testing.assert_allclose(cuda[name], cpu[name], rtol=1e-6, atol=1e-12, err_msg=f"{loss}: {name}")
