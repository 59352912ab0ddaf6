"""The smooth (quadratic-activation) classifier on hand-built points of known type.

Points (theory: the loss factors through ``S = sum_j a_j w_j w_j^T``, a convex quadratic of ``S``):

* the zero network with a non-zero residual: every Hessian entry vanishes, and the cubic term of a zero
  neuron decides: a ``non_strict`` saddle with a verified witness;
* a zero-output neuron with a non-zero cross term ``2 M w_j``: a ``strict`` saddle by negative curvature;
* a global minimum of a realisable target (zero loss), with redundant neurons;
* a certified local minimum of a non-realisable target (a width-1 fit of random labels, reached by
  gradient descent and polished by Newton steps): brute-force perturbation search finds no nearby descent;
* the interval population loss at the constant network (CJR: every non-global critical point is a saddle).

Plus the symmetry directions (exactly flat, and in the Hessian's kernel), and an end-to-end batch of the
quadratic activation through :func:`pipeline.batch.simulate_batch`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.losses import nets
from pipeline.losses.activations import Quadratic
from pipeline.losses.interval_population import IntervalTarget
from pipeline.stationary import labels
from pipeline.stationary.smooth_batch import classify_smooth_batch, classify_smooth_interval_batch
from pipeline.stationary.smooth_points import symmetry_directions

DTYPE = torch.float64
QUADRATIC = Quadratic()


def _data(seed: int, n: int = 10, d: int = 3, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, n, d, generator=gen, dtype=DTYPE), torch.randn(1, n, k, generator=gen, dtype=DTYPE)


def _name(table: tuple[str, ...], codes: np.ndarray) -> list[str]:
    return [table[int(c)] for c in codes]


def test_zero_network_is_a_non_strict_saddle_by_the_cubic_term() -> None:
    x, y = _data(0)
    w, a = torch.zeros(1, 2, 3, dtype=DTYPE), torch.zeros(1, 2, 1, dtype=DTYPE)
    result = classify_smooth_batch(w, a, x, y, activation=QUADRATIC)
    assert _name(labels.POINT_TYPE, result.point_type) == ["saddle"]
    assert _name(labels.STRICTNESS, result.strictness) == ["non_strict"]
    assert result.has_witness[0] and result.escape[0].all()
    dw, da = torch.as_tensor(result.witness_w), torch.as_tensor(result.witness_a)
    start = nets.loss(w, a, x, y, QUADRATIC)
    for scale in (1.0, 0.1, 0.01):  # the decrease persists as the witness shrinks (cubic: ~ scale^3)
        assert float(nets.loss(w + scale * dw, a + scale * da, x, y, QUADRATIC)) < float(start)


def _polished_minimum(x: torch.Tensor, y: torch.Tensor, w0: torch.Tensor, a0: torch.Tensor) -> torch.Tensor:
    """A critical point near ``(w0, a0)``: gradient descent, then Newton steps on the full parameter vector."""
    width, d = w0.shape
    theta = torch.cat([w0.reshape(-1), a0.reshape(-1)])

    def loss_of(t: torch.Tensor) -> torch.Tensor:
        return nets.loss(t[: width * d].reshape(1, width, d), t[width * d :].reshape(1, width, 1), x, y, QUADRATIC)[0]

    for _ in range(3000):
        theta = theta - 0.02 * torch.func.grad(loss_of)(theta)
    for _ in range(20):
        step = torch.linalg.lstsq(torch.func.hessian(loss_of)(theta), torch.func.grad(loss_of)(theta)[:, None]).solution
        theta = theta - step[:, 0]
    return theta


def test_width_one_minimum_is_certified_and_has_no_nearby_descent() -> None:
    x, y = _data(4, n=12, d=2)
    y = y.abs() + 0.5  # positive labels: a single unit with a > 0 fits them best near a true minimum
    theta = _polished_minimum(x, y, torch.tensor([[0.8, 0.3]], dtype=DTYPE), torch.tensor([[1.0]], dtype=DTYPE))
    w, a = theta[:2].reshape(1, 1, 2), theta[2:].reshape(1, 1, 1)
    result = classify_smooth_batch(w, a, x, y, activation=QUADRATIC)
    assert _name(labels.POINT_TYPE, result.point_type) == ["local_min"]
    assert _name(labels.CERTIFICATE, result.certificate) == ["hessian_morse_bott"]
    base = float(nets.loss(w, a, x, y, QUADRATIC))
    rng = np.random.default_rng(0)
    for radius in (1e-2, 1e-3, 1e-4):
        for _ in range(500):
            dw = torch.as_tensor(rng.normal(size=(1, 1, 2)) * radius)
            da = torch.as_tensor(rng.normal(size=(1, 1, 1)) * radius)
            assert float(nets.loss(w + dw, a + da, x, y, QUADRATIC)) >= base - 1e-13


def test_zero_output_neuron_with_a_cross_term_is_a_strict_saddle() -> None:
    x, y = _data(6, n=12, d=3)
    # the zero network (r = -y) plus a neuron with a_j = 0 on the isotropic cone of M = 1/n sum_i r_i x_i x_i^T
    # (so dL/da_j = w_j^T M w_j = 0: critical) where the cross term 2 M w_j of the Hessian does not vanish
    moment = torch.einsum("n,ni,nj->ij", -y[0, :, 0], x[0], x[0]) / x.shape[1]
    values, vectors = torch.linalg.eigh(moment)
    assert values[0] < 0 < values[-1]
    w_j = torch.sqrt(values[-1]) * vectors[:, 0] + torch.sqrt(-values[0]) * vectors[:, -1]
    assert abs(float(w_j @ moment @ w_j)) < 1e-12 and float(torch.linalg.vector_norm(moment @ w_j)) > 1e-2
    w = torch.stack([w_j, torch.zeros(3, dtype=DTYPE)])[None]
    a = torch.zeros(1, 2, 1, dtype=DTYPE)
    result = classify_smooth_batch(w, a, x, y, activation=QUADRATIC)
    assert _name(labels.POINT_TYPE, result.point_type) == ["saddle"]
    assert _name(labels.STRICTNESS, result.strictness) == ["strict"]
    assert result.curvature[0] < 0 and result.has_witness[0]
    dw, da = torch.as_tensor(result.witness_w), torch.as_tensor(result.witness_a)
    assert float(nets.loss(w + dw, a + da, x, y, QUADRATIC)) < float(nets.loss(w, a, x, y, QUADRATIC))


def test_zero_loss_point_is_a_global_minimum() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 15, 3, generator=gen, dtype=DTYPE)
    teacher_w = torch.randn(1, 2, 3, generator=gen, dtype=DTYPE)
    teacher_a = torch.tensor([[[1.0], [-0.5]]], dtype=DTYPE)
    y = nets.forward(teacher_w, teacher_a, x, QUADRATIC)
    w = torch.cat([teacher_w, torch.zeros(1, 1, 3, dtype=DTYPE)], dim=1)
    a = torch.cat([teacher_a, torch.zeros(1, 1, 1, dtype=DTYPE)], dim=1)
    result = classify_smooth_batch(w, a, x, y, activation=QUADRATIC, realisable=True)
    assert _name(labels.POINT_TYPE, result.point_type) == ["global_min"]
    assert _name(labels.CERTIFICATE, result.certificate) == ["none"]


def test_symmetry_directions_are_flat_and_in_the_hessian_kernel() -> None:
    x, y = _data(5, n=9, d=3)
    w = torch.randn(1, 3, 3, dtype=DTYPE, generator=torch.Generator().manual_seed(1))
    a = torch.tensor([[[0.7], [-1.2], [0.4]]], dtype=DTYPE)
    basis = symmetry_directions(w[0].numpy(), a[0].numpy(), 2, True)
    assert basis.shape[1] == 3 + 3  # three rescalings, three pairs of the indefinite orthogonal group
    base = nets.forward(w, a, x, QUADRATIC)
    for column in basis.T:
        dw, da = torch.as_tensor(column[:9]).reshape(1, 3, 3), torch.as_tensor(column[9:]).reshape(1, 3, 1)
        moved = nets.forward(w + 1e-6 * dw, a + 1e-6 * da, x, QUADRATIC)
        assert float((moved - base).abs().max()) < 1e-10  # the network does not change to first order


@pytest.mark.parametrize("slope", [1.0, -0.7])
def test_interval_constant_network_is_a_saddle(slope: float) -> None:
    target = IntervalTarget(-1.0, 1.0, torch.tensor([[slope]], dtype=DTYPE), torch.tensor([[0.3]], dtype=DTYPE))
    # every neuron is zero or has a zero output weight on the isotropic cone of M = E[r x~ x~^T]: critical
    w = torch.tensor([[[0.0, 0.0], [0.0, 1.0]]], dtype=DTYPE)
    a = torch.zeros(1, 2, 1, dtype=DTYPE)
    result = classify_smooth_interval_batch(w, a, target, activation=QUADRATIC, realisable=True)
    assert _name(labels.POINT_TYPE, result.point_type) == ["saddle"]
    assert result.has_witness[0]
    # realisable, zero loss reached: global
    w_star = torch.tensor([[[0.5, 1.0], [-0.5, 1.0]]], dtype=DTYPE)  # (1 + x/2)^2 - (1 - x/2)^2 = 2 x
    a_star = torch.tensor([[[slope / 2.0], [-slope / 2.0]]], dtype=DTYPE)
    result = classify_smooth_interval_batch(w_star, a_star, target, activation=QUADRATIC, realisable=True)
    assert _name(labels.POINT_TYPE, result.point_type) == ["global_min"]


def test_a_width_one_interval_run_drifting_to_infinity_is_no_minimum() -> None:
    """Run 861 of ``cjr_affine`` (width 1, quadratic): after 20,000 steps its gradient and curvature are both tiny
    (loss 2.7e-7, relative gradient 3.9e-7, projected Hessian positive definite) but the nearest critical point of
    the quadratic model is far away: width 1 has no minimum of positive loss (the bias grows without bound)."""
    from pipeline.batch import run_inputs
    from pipeline.problems import run_interval_gradient_descent
    from pipeline.survey import load_survey
    from pipeline.survey.plan import make_plan, run_settings

    survey = load_survey("surveys/cjr_affine.yaml")
    row = make_plan(survey).loc[861]
    settings = run_settings(row)
    assert settings["activation"] == "quadratic" and settings["width"] == 1
    inputs = run_inputs(settings, survey.master_seed, int(row["data_seed"]), int(row["init_seed"]))
    slope, intercept = (
        torch.as_tensor(v)[None] for v in (inputs.dataset.affine_slope[:, 0], inputs.dataset.affine_intercept)
    )
    target = IntervalTarget(-1.0, 1.0, slope, intercept)
    descent = run_interval_gradient_descent(
        torch.as_tensor(inputs.w0)[None], torch.as_tensor(inputs.a0)[None], target, leak=QUADRATIC,
        learning_rate=settings["learning_rate"], max_steps=settings["max_steps"],
    )  # fmt: skip
    result = classify_smooth_interval_batch(descent.w_final, descent.a_final, target, activation=QUADRATIC,
                                            realisable=False)  # fmt: skip
    assert 0 < float(descent.loss_final[0]) < 1e-6
    assert _name(labels.POINT_TYPE, result.point_type) == ["undetermined"]
