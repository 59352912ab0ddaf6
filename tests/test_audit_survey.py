"""The independent audit of verdicts (``tests/audit.py``) and the ``audit`` survey (issues 12 and 19).

First the audit itself is shown to catch what it looks for (a witness that rises at small steps, one that
crosses kinks, a margin past a dead neuron's activation); then the slow test runs the ``audit`` survey at a
reduced size in-process and requires zero invalid witnesses, zero violated margins and zero disagreements
between a final plateau and its end point. ``python -m tests.audit STORE SURVEY`` prints the same counts for a
full store (README, "Certificates that hold").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.stationary import classify_batch, labels
from tests import audit
from tests import oracle_points as op
from tests.analysis.helpers import REPO, run_in_process


def _classified(w, a, x, y):
    cls = classify_batch(*(torch.as_tensor(arr)[None] for arr in (w, a, x, y)), leak=0.0)
    return cls, labels.POINT_TYPE[int(cls.point_type[0])]


def test_audit_accepts_a_local_saddle_witness_and_rejects_one_that_rises_at_small_steps():
    """theory.md 7, E3: the split neuron with beta = 0 is a saddle; adding a kink-leaving push to the witness
    keeps the decrease at full length but makes the loss rise at a quarter of it (first order beats second)."""
    w, a, x, y = op.split_point(0.0)
    cls, point_type = _classified(w, a, x, y)
    assert point_type == "saddle"
    args = (cls.witness_radius[0], cls.witness_min_step[0], x, y, 0.0)
    assert audit.witness_failure(cls.w[0], cls.a[0], cls.witness_w[0], cls.witness_a[0], *args) is None
    pushed = cls.witness_w[0].copy()
    pushed[1] += 0.01 * np.array([0.0, 1.0])  # g_1(u) = |u_2| > 0: raises the loss at first order
    full = audit.loss_change(cls.w[0], cls.a[0], pushed[None], cls.witness_a[0][None], x, y, 0.0)[0]
    assert full < 0  # the decrease a single-scale search would accept
    reason = audit.witness_failure(cls.w[0], cls.a[0], pushed, cls.witness_a[0], np.inf, 1e-6, x, y, 0.0)
    assert reason is not None and "loss change" in reason


def test_audit_finds_descent_past_a_dead_neuron_when_a_margin_claims_too_much():
    """The audit's counterexample of issue 19: a dead zero-output neuron ``delta`` from activating x_0.

    Past ``delta`` the neuron touches x_0 with a non-zero residual and becomes an escape neuron: the loss
    falls. The classifier's margin is at most ``delta``; a claim of ``10 delta`` is caught.
    """
    w, a, x, y = op.ls_local_min_point(0.0)
    delta = 1e-3
    w, a = np.vstack([w, [[-1.0, -delta]]]), np.vstack([a, [[0.0]]])  # z = -t - delta: x_0 = (0, 1) nearest
    cls, point_type = _classified(w, a, x, y)
    assert point_type in audit.MINIMA and 0 < cls.margin[0] <= delta
    rng = np.random.default_rng(0)
    assert audit.margin_failure(w, a, x, y, 0.0, cls.margin[0], 0.0, rng) is None
    assert audit.margin_failure(w, a, x, y, 0.0, 10 * delta, 0.0, rng) is not None
    # a witness that jumps the kink is not local: x_0's pre-activation changes sign along it
    push, out = np.zeros_like(w), np.zeros_like(a)
    push[1, 1], out[1, 0] = 10 * delta, 0.5
    assert audit.loss_change(w, a, push[None], out[None], x, y, 0.0)[0] < 0
    assert "changes sign" in audit.witness_failure(w, a, push, out, np.inf, 1e-9, x, y, 0.0)


@pytest.mark.slow
def test_audit_survey_has_no_invalid_witness_no_violated_margin_and_one_story_per_final_plateau(tmp_path: Path):
    spec = yaml.safe_load((REPO / "surveys" / "audit.yaml").read_text())
    spec["seeds"] = {"data": 1, "init": 2}  # 96 runs: every cell of the audit's shapes, two initialisations
    survey = tmp_path / "audit.yaml"
    survey.write_text(yaml.safe_dump(spec))
    store = run_in_process(survey, tmp_path)
    counts = audit.audit_store(str(store), str(survey))
    print(f"audit: {counts}")
    assert counts.failures == []
    assert counts.invalid_witnesses == counts.margins_violated == counts.plateau_end_disagreements == 0
    assert counts.saddles_checked > 0 and counts.minima_checked > 20 and counts.final_plateaus > 0


def _audited(tmp_path: Path, spec: dict) -> audit.AuditCounts:
    survey = tmp_path / "survey.yaml"
    survey.write_text(yaml.safe_dump(spec))
    store = run_in_process(survey, tmp_path)
    return audit.audit_store(str(store), str(survey))


@pytest.mark.slow
def test_verdicts_at_points_the_gradient_flow_reaches_pass_the_audit(tmp_path: Path):
    """Issue 15: the audit's cells trained by the gradient flow (end points, plateaus and the end game from the
    flow's end points): every saddle's witness lowers the loss at every step down to its smallest, every minimum
    survives the perturbation search, and a final plateau tells the end point's story."""
    spec = yaml.safe_load((REPO / "surveys" / "audit.yaml").read_text())
    spec["seeds"] = {"data": 1, "init": 1}
    spec["fixed"] |= {"dynamics": "gradient_flow"}
    spec["grid"] |= {"width": [2, 4], "n_samples": [8]}
    counts = _audited(tmp_path, spec)
    print(f"audit: {counts}")
    assert counts.failures == []
    assert counts.saddles_checked + counts.minima_checked >= 10


@pytest.mark.slow
def test_verdicts_of_the_population_end_game_and_flow_pass_the_audit(tmp_path: Path):
    """Issues 13 and 15: Safran-Shamir cells (k = 6, widths 6 and 7) cut to 4,000 steps, so that the population
    end game finishes runs, under gradient descent and under the flow: every certified minimum survives the
    population perturbation search and every saddle's witness lowers the population loss at every step."""
    spec = yaml.safe_load((REPO / "surveys" / "safran_shamir.yaml").read_text())
    spec["seeds"] = {"data": 1, "init": 10}
    spec["cases"] = spec["cases"][:2]  # k = 6, widths 6 and 7
    spec["fixed"] = {name: value for name, value in spec["fixed"].items() if name not in ("dynamics", "max_time")}
    spec["fixed"] |= {"max_steps": 4000}
    spec.setdefault("grid", {})["dynamics"] = ["gd", "gradient_flow"]
    counts = _audited(tmp_path, spec)
    print(f"audit: {counts}")
    assert counts.failures == []
    assert counts.minima_checked >= 10
