"""Network embedding (theory.md 7; pipeline.stationary.embedding) against independent oracles.

The hand-built points of ``tests/oracle_points.py`` have known types; the expected verdict of each embedding
is written here from theory.md 7 (not from the module's table), and every predicted saddle or non-stationary
embedding is confirmed on the true loss by ``tests/reference.py`` (one-sided derivatives, brute force).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.losses import nets
from pipeline.stationary import classify_batch, labels
from pipeline.stationary.embedding import (
    DEFAULT_BETAS,
    classify_embeddings,
    embed,
    embedding_layout,
    predicted_types,
)
from tests import reference as ref
from tests.oracle_points import (
    generic_data,
    ls_local_min_point,
    rrr_width1_point,
    split_base_point,
    verify_stationary,
)

BETAS = DEFAULT_BETAS


def _tensors(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.as_tensor(np.asarray(v, dtype=np.float64))[None] for v in arrays]


def _run(w, a, x, y, *, leak=0.0, realisable=False):
    """Classify the point, then its embeddings; (source type, {label: (predicted set, observed)}, embedded)."""
    wt, at, xt, yt = _tensors(w, a, x, y)
    end = classify_batch(wt, at, xt, yt, leak=leak, realisable=realisable)
    record = classify_embeddings(end, xt, yt, leak=leak, realisable=realisable, betas=BETAS)
    kind, neuron, beta = embedding_layout(w.shape[0], BETAS)
    w_e, a_e, _ = embed(torch.as_tensor(end.w), torch.as_tensor(end.a), xt, leak, BETAS)
    verdicts, points = {}, {}
    for slot in range(kind.size):
        name = labels.EMBEDDING_KIND[kind[slot]] + (f"_{neuron[slot]}_{beta[slot]:g}" if neuron[slot] >= 0 else "")
        bits = int(record["embedding_predicted"][0, slot])
        observed = int(record["embedding_point_type"][0, slot])
        verdicts[name] = (
            {t for i, t in enumerate(labels.POINT_TYPE) if bits >> i & 1},
            labels.POINT_TYPE[observed] if observed >= 0 else None,
        )
        points[name] = (w_e[0, slot].numpy(), a_e[0, slot].numpy())
    return labels.POINT_TYPE[end.point_type[0]], verdicts, points


def _descends(w, a, x, y, leak):
    """Brute force on the true loss finds a decrease next to (w, a) (radii inside the validity region)."""
    mu = ref.validity_radius(w, x, 1e-9, per_neuron=True)
    radius = np.minimum(0.5 * mu, 1e-2)
    found = ref.brute_force_min_change(w, a, x, y, leak, radius=radius, rng=np.random.default_rng(0), n_random=500)
    return found.min_change < -1e-12


@pytest.mark.parametrize("leak", [0.0, 0.3])
@pytest.mark.parametrize("k", [1, 2])
def test_every_embedding_computes_the_same_function(leak, k):
    rng = np.random.default_rng(3)
    w, a = torch.as_tensor(rng.normal(size=(5, 3, 4))), torch.as_tensor(rng.normal(size=(5, 3, k)))
    x = torch.as_tensor(np.hstack([rng.normal(size=(9, 3)), np.ones((9, 1))]))[None]
    w_e, a_e, built = embed(w, a, x, leak, BETAS)
    assert w_e.shape == (5, 3 + 3 * len(BETAS), 4, 4) and a_e.shape == (5, 3 + 3 * len(BETAS), 4, k)
    assert bool(built[:, 1].all()) == (leak == 0)  # a dead ReLU neuron exists with a bias column; leaky has none
    before = nets.forward(w, a, x, leak)
    for slot in np.flatnonzero(built.all(dim=0).numpy()):
        torch.testing.assert_close(nets.forward(w_e[:, slot], a_e[:, slot], x, leak), before, rtol=1e-13, atol=1e-13)


def test_no_dead_neuron_when_the_inputs_surround_the_origin():
    x = torch.as_tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])[None]
    _, _, built = embed(
        torch.ones(1, 1, 2, dtype=torch.float64), torch.ones(1, 1, 1, dtype=torch.float64), x, 0.0, BETAS
    )
    assert not bool(built[0, 1]) and bool(built[0, [0, 2]].all())


def test_trichotomy_at_a_kinked_local_minimum():
    # theory.md 7: splitting a kinked neuron of a non-differentiable local minimum gives local minima for beta in
    # (0, 1), saddles for beta in {0, 1}, non-stationary points outside [0, 1]; a zero neuron gives a saddle
    # (non-zero residual, generic data), a dead ReLU neuron keeps the minimum, E2 is never a saddle.
    w, a, x, y = split_base_point()
    source, verdicts, points = _run(w, a, x, y)
    assert source == "local_min"
    expected = {
        "E1_zero": ({"saddle"}, "saddle"),
        "E1_dead": ({"local_min"}, "local_min"),
        "E3_0_-0.5": ({"not_stationary"}, "not_stationary"),
        "E3_0_0": ({"saddle"}, "saddle"),
        "E3_0_0.3": ({"local_min"}, "local_min"),
        "E3_0_0.5": ({"local_min"}, "local_min"),
        "E3_0_1": ({"saddle"}, "saddle"),
        "E3_0_1.5": ({"not_stationary"}, "not_stationary"),
    }
    for name, verdict in expected.items():
        assert verdicts[name] == verdict, name
    assert verdicts["E2"][0] == {"local_min", "not_stationary"} and verdicts["E2"][1] in verdicts["E2"][0]
    for name in ("E1_zero", "E3_0_0", "E3_0_1"):  # independent: the true loss decreases next to the saddles
        assert _descends(*points[name], x, y, 0.0), name
    for name in ("E3_0_-0.5", "E3_0_1.5"):  # independent: a first-order descent direction exists
        verify_stationary(*points[name], x, y, 0.0, expect=False)
    for name in ("E1_dead", "E3_0_0.3", "E3_0_0.5"):  # independent: stationary, and brute force finds no descent
        verify_stationary(*points[name], x, y, 0.0)
        assert not _descends(*points[name], x, y, 0.0), name


@pytest.mark.parametrize("leak", [0.0, 0.2])
def test_a_differentiable_neuron_splits_into_minima_for_every_beta(leak):
    # theory.md 7: g_j == 0 (differentiable neuron) -> every beta is stationary and copies escape iff j did
    # (it did not): local minima for every beta, including outside [0, 1].
    w, a, x, y = ls_local_min_point(leak)
    source, verdicts, points = _run(w, a, x, y, leak=leak)
    assert source == "local_min"
    for beta in BETAS:
        name = f"E3_0_{beta:g}"
        assert verdicts[name] == ({"local_min"}, "local_min"), name
    for name in ("E3_0_-0.5", "E3_0_1.5"):  # independent: stationary although beta is outside [0, 1]
        verify_stationary(*points[name], x, y, leak)
    assert verdicts["E1_zero"] == ({"saddle"}, "saddle")
    assert _descends(*points["E1_zero"], x, y, leak)


def test_a_saddle_stays_a_saddle_and_splits_of_zero_neurons_are_saddles():
    # the zero network on generic data is a saddle (every neuron escapes, theory.md 4); no embedding is a minimum
    x, y = generic_data(1)
    source, verdicts, _ = _run(np.zeros((2, 3)), np.zeros((2, 1)), x, y)
    assert source == "saddle"
    for name, (predicted, observed) in verdicts.items():
        assert predicted == ({"saddle", "not_stationary"} if name == "E2" else {"saddle"}), name
        assert observed in predicted, name


def test_a_zero_loss_point_stays_global():
    w, a, x, _ = split_base_point()
    y = ref.rho(x @ w.T, 0.0) @ a  # realisable: the point fits exactly
    source, verdicts, _ = _run(w, a, x, y, realisable=True)
    assert source == "global_min"
    assert all(verdict == ({"global_min"}, "global_min") for verdict in verdicts.values())


def test_no_prediction_for_splits_of_a_vector_output_minimum_with_an_escape_neuron():
    # theory.md 5.3: duplicating the escape neuron of the rank-one minimum gives a saddle; 5.1 does not apply
    w, a, x, y = rrr_width1_point()
    source, verdicts, points = _run(w, a, x, y)
    assert source == "local_min"
    assert verdicts["E3_0_0.5"] == (set(), "saddle")
    assert _descends(*points["E3_0_0.5"], x, y, 0.0)
    assert verdicts["E1_zero"] == ({"saddle"}, "saddle")


_MIN, _SADDLE, _GLOBAL = (labels.code(labels.POINT_TYPE, name) for name in ("local_min", "saddle", "global_min"))


@pytest.mark.parametrize(
    ("source", "escape", "kinked", "zero_escapes", "slot", "expected"),
    [
        # (source, neuron 0 escapes, neuron 0 kinked, zero neuron escapes, embedding, allowed types)
        (_MIN, False, False, True, "E1_zero", {"saddle"}),
        (_MIN, False, False, False, "E1_zero", {"local_min"}),
        (_MIN, True, False, False, "E1_zero", set()),
        (_MIN, True, False, True, "E1_dead", {"local_min"}),
        (_MIN, False, True, True, "E2", {"local_min", "not_stationary"}),
        (_SADDLE, True, False, True, "E2", {"saddle", "not_stationary"}),
        (_MIN, False, True, True, -0.5, {"not_stationary"}),
        (_MIN, False, True, True, 0.0, {"saddle"}),
        (_MIN, True, True, True, 1.0, {"saddle"}),
        (_MIN, False, True, True, 0.3, {"local_min"}),
        (_MIN, True, True, True, 0.3, set()),
        (_MIN, False, False, True, 1.5, {"local_min"}),
        (_SADDLE, True, True, True, 1.5, {"not_stationary"}),
        (_SADDLE, True, True, True, 0.0, {"saddle"}),
        (_SADDLE, True, False, True, -0.5, {"saddle"}),
        (_GLOBAL, False, True, False, -0.5, {"global_min"}),
    ],
)
def test_predictions_follow_the_theorem(source, escape, kinked, zero_escapes, slot, expected):
    kind, neuron, beta = embedding_layout(1, BETAS)
    index = labels.EMBEDDING_KIND.index(slot) if isinstance(slot, str) else int(np.flatnonzero(beta == slot)[0])
    bits = predicted_types(
        np.array([source]),
        np.array([[escape]]),
        np.array([[kinked]]),
        np.array([zero_escapes]),
        betas=BETAS,
        scalar_output=True,
    )[0, index]
    assert {t for i, t in enumerate(labels.POINT_TYPE) if int(bits) >> i & 1} == expected


def test_vector_output_e2_has_no_prediction():
    bits = predicted_types(
        np.array([_MIN]), np.zeros((1, 1), bool), np.zeros((1, 1), bool), np.array([True]), betas=BETAS,
        scalar_output=False,
    )  # fmt: skip
    assert bits[0, labels.EMBEDDING_KIND.index("E2")] == 0


def test_uncertified_points_are_not_embedded():
    w, a, x, y = split_base_point()
    wt, at, xt, yt = _tensors(w + 0.1, a, x, y)  # off the minimum: not stationary
    end = classify_batch(wt, at, xt, yt, leak=0.0)
    assert labels.POINT_TYPE[end.point_type[0]] == "not_stationary"
    record = classify_embeddings(end, xt, yt, leak=0.0, realisable=False, betas=BETAS)
    assert record["embedding_source_type"][0] == -1
    assert (record["embedding_kind"] == -1).all() and (record["embedding_point_type"] == -1).all()
    assert (record["embedding_predicted"] == -1).all() and np.isnan(record["embedding_beta"]).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_cuda_give_the_same_embedding_verdicts():
    w, a, x, y = split_base_point()
    records = []
    for device in ("cpu", "cuda"):
        wt, at, xt, yt = (t.to(device) for t in _tensors(w, a, x, y))
        end = classify_batch(wt, at, xt, yt, leak=0.0)
        records.append(classify_embeddings(end, xt, yt, leak=0.0, realisable=False, betas=BETAS))
    for name, values in records[0].items():
        np.testing.assert_array_equal(values, records[1][name], err_msg=name)
