from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.data import (
    Dataset,
    add_label_noise,
    affine_targets,
    append_bias,
    draw_inputs,
    make_dataset,
    random_labels,
    teacher_network,
    teacher_targets,
)


def rng(seed=0):
    return np.random.default_rng(seed)


def assert_standard_normal(sample):
    """Mean and variance of i.i.d. N(0, 1) entries within 5 standard errors."""
    size = sample.size
    assert abs(sample.mean()) < 5 / math.sqrt(size)
    assert abs(sample.var() - 1) < 5 * math.sqrt(2 / size)


def assert_orthonormal_rows(array):
    np.testing.assert_allclose(array @ array.T, np.eye(array.shape[0]), atol=1e-12)


@pytest.mark.parametrize("distribution", ["gaussian", "sphere", "orthogonal"])
def test_inputs_reproducible(distribution):
    first = draw_inputs(rng(3), distribution, 4, 6)
    np.testing.assert_array_equal(first, draw_inputs(rng(3), distribution, 4, 6))
    assert first.shape == (4, 6) and first.dtype == np.float64
    assert not np.array_equal(first, draw_inputs(rng(4), distribution, 4, 6))


def test_gaussian_inputs_are_standard_normal():
    assert_standard_normal(draw_inputs(rng(), "gaussian", 20_000, 5))


@pytest.mark.parametrize("input_dim", [1, 2, 7])
def test_sphere_inputs_unit_norm_and_centred(input_dim):
    x = draw_inputs(rng(), "sphere", 20_000, input_dim)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-12)
    # Each coordinate has mean 0 and variance 1/d on the sphere; hence |mean| < 5 / sqrt(n d).
    assert np.all(np.abs(x.mean(axis=0)) < 5 / math.sqrt(x.shape[0] * input_dim))
    np.testing.assert_allclose(x.var(axis=0), 1 / input_dim, rtol=0.05)


@pytest.mark.parametrize("interval", [(-1.0, 1.0), (2.0, 5.0)])
def test_interval_inputs(interval):
    lo, hi = interval
    x = draw_inputs(rng(), "interval", 20_000, 1, interval=interval)
    assert x.shape == (20_000, 1)
    assert x.min() >= lo and x.max() <= hi
    # Uniform on [lo, hi]: mean (lo + hi)/2, std (hi - lo)/sqrt(12).
    assert abs(x.mean() - (lo + hi) / 2) < 5 * (hi - lo) / math.sqrt(12 * x.size)


@pytest.mark.parametrize(("n_samples", "input_dim"), [(1, 1), (3, 5), (8, 8)])
def test_orthogonal_inputs_orthonormal(n_samples, input_dim):
    assert_orthonormal_rows(draw_inputs(rng(), "orthogonal", n_samples, input_dim))


def test_orthogonal_inputs_unbiased_signs():
    # Haar-random directions: the first coordinate of a random unit vector has mean 0.
    firsts = [draw_inputs(rng(seed), "orthogonal", 1, 3)[0, 0] for seed in range(2000)]
    assert abs(np.mean(firsts)) < 5 * math.sqrt(1 / 3 / 2000)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("cube", 4, 2), {}, "distribution"),
        (("gaussian", -1, 2), {}, "n_samples"),
        (("gaussian", 0, 2), {}, "n_samples"),
        (("gaussian", 4, -2), {}, "input_dim"),
        (("gaussian", 4, 2.0), {}, "input_dim"),
        (("orthogonal", 5, 4), {}, "n_samples"),
        (("interval", 4, 2), {}, "input_dim"),
        (("interval", 4, 1), {"interval": (1.0, -1.0)}, "interval"),
    ],
)
def test_draw_inputs_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        draw_inputs(rng(), *args, **kwargs)


def test_append_bias():
    x = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(append_bias(x), [[0, 1, 1], [2, 3, 1], [4, 5, 1]])


def test_orthonormal_teacher():
    v, b = teacher_network(rng(), input_dim=6, width=4, output_dim=2, kind="orthonormal")
    assert_orthonormal_rows(v)
    np.testing.assert_array_equal(b, np.ones((4, 2)))


def test_gaussian_teacher_scales():
    v, b = teacher_network(rng(), input_dim=100, width=400, output_dim=50, kind="gaussian")
    assert v.shape == (400, 100) and b.shape == (400, 50)
    assert_standard_normal(v * 10)
    assert_standard_normal(b * 20)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "orthonormal", "width": 7}, "width"),
        ({"kind": "sparse"}, "kind"),
        ({"output_dim": 0}, "output_dim"),
    ],
)
def test_teacher_network_errors(kwargs, match):
    full = dict(input_dim=6, width=4, output_dim=2, kind="gaussian") | kwargs
    with pytest.raises(ValueError, match=match):
        teacher_network(rng(), **full)


@pytest.mark.parametrize("leak", [0.0, 0.1, 0.5])
def test_teacher_targets_match_naive_loop(leak):
    generator = rng(5)
    x = generator.standard_normal((7, 3))
    v = generator.standard_normal((4, 3))
    b = generator.standard_normal((4, 2))
    expected = np.zeros((7, 2))
    for i in range(7):
        for j in range(4):
            z = sum(v[j, l] * x[i, l] for l in range(3))
            expected[i] += b[j] * max(z, leak * z)
    np.testing.assert_allclose(teacher_targets(x, v, b, leak), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("shapes", "leak", "match"),
    [
        (((5, 3), (4, 2), (4, 1)), 0.0, "v"),
        (((5, 3), (4, 3), (2, 1)), 0.0, "b"),
        (((5, 3), (4, 3), (4, 1)), 1.0, "leak"),
        (((5,), (4, 3), (4, 1)), 0.0, "x"),
    ],
)
def test_teacher_targets_errors(shapes, leak, match):
    x, v, b = (np.ones(shape) for shape in shapes)
    with pytest.raises(ValueError, match=match):
        teacher_targets(x, v, b, leak)


def test_affine_targets_given_parameters():
    x = np.arange(6.0).reshape(3, 2)
    slope = np.array([[1.0], [2.0]])
    y = affine_targets(rng(), x, 1, slope=slope, intercept=np.array([0.5]))
    np.testing.assert_array_equal(y, x @ slope + 0.5)


def test_affine_targets_draw_slope_then_intercept():
    x = rng(1).standard_normal((5, 3))
    y = affine_targets(rng(2), x, 2)
    draws = rng(2).standard_normal(3 * 2 + 2)
    np.testing.assert_allclose(y, x @ draws[:6].reshape(3, 2) + draws[6:], rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"slope": np.ones((2, 2))}, "slope"), ({"intercept": np.ones(3)}, "intercept")]
)
def test_affine_targets_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        affine_targets(rng(), np.ones((4, 3)), 2, **kwargs)


def test_random_labels():
    y = random_labels(rng(), 5000, 4)
    assert y.shape == (5000, 4)
    assert_standard_normal(y)


def test_label_noise():
    y = np.full((20_000, 2), 3.0)
    noisy = add_label_noise(rng(), y, 0.5)
    assert_standard_normal((noisy - 3.0) / 0.5)
    np.testing.assert_array_equal(add_label_noise(rng(), y, 0.0), y)


@pytest.mark.parametrize("noise_std", [-0.1, math.nan])
def test_label_noise_errors(noise_std):
    with pytest.raises(ValueError, match="noise_std"):
        add_label_noise(rng(), np.zeros((2, 1)), noise_std)


COMMON = dict(distribution="gaussian", n_samples=10, input_dim=3, output_dim=2)


@pytest.mark.parametrize("target", ["teacher", "affine", "random"])
@pytest.mark.parametrize("bias", [False, True])
def test_make_dataset_reproducible_and_shaped(target, bias):
    kwargs = COMMON | dict(bias=bias, target=target, teacher_width=4, noise_std=0.1)
    data = make_dataset(rng(9), **kwargs)
    again = make_dataset(rng(9), **kwargs)
    assert isinstance(data, Dataset)
    np.testing.assert_array_equal(data.x, again.x)
    np.testing.assert_array_equal(data.y, again.y)
    assert data.x.shape == (10, 4 if bias else 3) and data.y.shape == (10, 2)
    if bias:
        np.testing.assert_array_equal(data.x[:, -1], 1.0)
    assert (data.teacher_v is None) == (target != "teacher")
    assert (data.teacher_b is None) == (target != "teacher")


def test_make_dataset_draw_order_inputs_teacher_noise():
    data = make_dataset(rng(4), **COMMON, bias=True, target="teacher", teacher_width=4, noise_std=0.2)
    generator = rng(4)
    x = draw_inputs(generator, "gaussian", 10, 3)
    v, b = teacher_network(generator, input_dim=3, width=4, output_dim=2, kind="gaussian")
    y = add_label_noise(generator, teacher_targets(x, v, b, 0.0), 0.2)
    np.testing.assert_array_equal(data.x, append_bias(x))
    np.testing.assert_array_equal(data.teacher_v, v)
    np.testing.assert_array_equal(data.y, y)


def test_make_dataset_safran_shamir_teacher_is_exact():
    data = make_dataset(
        rng(),
        distribution="gaussian",
        n_samples=50,
        input_dim=5,
        output_dim=1,
        bias=False,
        target="teacher",
        teacher_width=5,
        teacher_kind="orthonormal",
        teacher_leak=0.1,
    )
    np.testing.assert_allclose(data.y, teacher_targets(data.x, data.teacher_v, data.teacher_b, 0.1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target": "teacher"}, "teacher_width"),
        ({"target": "teacher", "teacher_width": 2, "teacher_leak": -0.5}, "teacher_leak"),
        ({"target": "teacher", "teacher_width": 2, "teacher_kind": "x"}, "kind"),
        ({"target": "labels"}, "target"),
        ({"target": "random", "noise_std": -1.0}, "noise_std"),
    ],
)
def test_make_dataset_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_dataset(rng(), **COMMON, bias=False, **kwargs)
