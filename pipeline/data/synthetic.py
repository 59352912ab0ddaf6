"""Synthetic data sets: inputs, targets (teacher network, affine map, random labels) and label noise.

All functions are pure: every random draw comes from the explicit :class:`numpy.random.Generator`
argument, in float64, and arrays are returned as numpy (the caller converts to torch). Shapes follow
:mod:`pipeline.losses.nets`: inputs ``x`` are (n, d), targets ``y`` are (n, k).
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.data.dataset import Dataset
from pipeline.initialization import check_positive_int

__all__ = [
    "INPUT_DISTRIBUTIONS",
    "TARGETS",
    "TEACHER_KINDS",
    "add_label_noise",
    "affine_targets",
    "append_bias",
    "draw_affine_map",
    "draw_inputs",
    "make_dataset",
    "random_labels",
    "teacher_network",
    "teacher_targets",
]

INPUT_DISTRIBUTIONS = ("gaussian", "sphere", "interval", "orthogonal")
TEACHER_KINDS = ("gaussian", "orthonormal")
TARGETS = ("teacher", "affine", "random")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}; got {value!r}")


def _check_leak(name: str, leak: float) -> None:
    """Raise a ValueError naming ``name`` unless ``leak`` is in [0, 1)."""
    if not 0.0 <= leak < 1.0:
        raise ValueError(f"{name} must be in [0, 1); got {leak!r}")


def _check_matrix(name: str, array: np.ndarray) -> None:
    """Raise a ValueError naming ``name`` unless ``array`` is two-dimensional."""
    if np.ndim(array) != 2:
        raise ValueError(f"{name} must be a 2-d array; got shape {np.shape(array)}")


def _orthonormal_rows(rng: np.random.Generator, n_rows: int, dim: int) -> np.ndarray:
    """Haar-random set of ``n_rows <= dim`` orthonormal rows, shape (n_rows, dim).

    QR of a (dim, n_rows) standard Gaussian matrix, with the signs of ``R``'s diagonal moved into
    ``Q`` so that the result is uniformly distributed (not biased by the QR sign convention).
    """
    q, r = np.linalg.qr(rng.standard_normal((dim, n_rows)))
    return (q * np.sign(np.diag(r))).T


def draw_inputs(
    rng: np.random.Generator,
    distribution: str,
    n_samples: int,
    input_dim: int,
    *,
    interval: tuple[float, float] = (-1.0, 1.0),
) -> np.ndarray:
    """Draw ``n_samples`` inputs of dimension ``input_dim``.

    Parameters
    ----------
    rng
        Source of all randomness.
    distribution
        ``"gaussian"``: i.i.d. standard normal entries. ``"sphere"``: uniform on the unit sphere
        ``S^{d-1}`` (normalised Gaussian rows). ``"interval"``: uniform on ``[lo, hi]``; requires
        ``input_dim == 1``. ``"orthogonal"``: a Haar-random orthonormal set of rows; requires
        ``n_samples <= input_dim``.
    n_samples, input_dim
        ``n`` and ``d``, both >= 1.
    interval
        ``(lo, hi)`` with ``lo < hi``, used by ``"interval"`` only.

    Returns
    -------
    numpy.ndarray
        (n_samples, input_dim), float64.
    """
    _check_choice("distribution", distribution, INPUT_DISTRIBUTIONS)
    check_positive_int("n_samples", n_samples)
    check_positive_int("input_dim", input_dim)
    if distribution == "gaussian":
        return rng.standard_normal((n_samples, input_dim))
    if distribution == "sphere":
        x = rng.standard_normal((n_samples, input_dim))
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    if distribution == "interval":
        lo, hi = interval
        if input_dim != 1:
            raise ValueError(f"input_dim must be 1 for distribution 'interval'; got {input_dim}")
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"interval must be finite (lo, hi) with lo < hi; got {interval!r}")
        return rng.uniform(lo, hi, size=(n_samples, 1))
    if n_samples > input_dim:
        raise ValueError(
            f"n_samples must be <= input_dim for distribution 'orthogonal'; got n_samples={n_samples}, "
            f"input_dim={input_dim}"
        )
    return _orthonormal_rows(rng, n_samples, input_dim)


def append_bias(x: np.ndarray) -> np.ndarray:
    """Append a constant-1 column to ``x`` (n, d), giving (n, d + 1); a bias is this extra input."""
    _check_matrix("x", x)
    return np.concatenate([x, np.ones((x.shape[0], 1), dtype=x.dtype)], axis=1)


def teacher_network(
    rng: np.random.Generator, *, input_dim: int, width: int, output_dim: int, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the weights of a one-hidden-layer teacher ``x -> sum_j b_j rho(v_j . x)``.

    Draw order: ``v`` then ``b`` (``b`` is not drawn for ``"orthonormal"``).

    Parameters
    ----------
    rng
        Source of all randomness.
    input_dim, width, output_dim
        ``d``, the teacher width ``m*`` and ``k``, all >= 1.
    kind
        ``"gaussian"``: entries of ``v`` i.i.d. ``N(0, 1/input_dim)`` (rows of norm about 1) and
        entries of ``b`` i.i.d. ``N(0, 1/width)`` (outputs of order 1 whatever the width).
        ``"orthonormal"``: Haar-random orthonormal rows ``v_j`` (requires ``width <= input_dim``)
        and ``b`` all ones: the Safran–Shamir teacher (theory.md section 11.1).

    Returns
    -------
    v : numpy.ndarray
        (width, input_dim) input weights of the teacher.
    b : numpy.ndarray
        (width, output_dim) output weights of the teacher.
    """
    _check_choice("kind", kind, TEACHER_KINDS)
    check_positive_int("input_dim", input_dim)
    check_positive_int("width", width)
    check_positive_int("output_dim", output_dim)
    if kind == "gaussian":
        v = rng.standard_normal((width, input_dim)) / math.sqrt(input_dim)
        b = rng.standard_normal((width, output_dim)) / math.sqrt(width)
        return v, b
    if width > input_dim:
        raise ValueError(
            f"width must be <= input_dim for an orthonormal teacher; got width={width}, input_dim={input_dim}"
        )
    return _orthonormal_rows(rng, width, input_dim), np.ones((width, output_dim))


def teacher_targets(x: np.ndarray, v: np.ndarray, b: np.ndarray, leak: float) -> np.ndarray:
    """Teacher outputs ``y_i = sum_j b_j rho(v_j . x_i)`` with ``rho(z) = max(z, leak * z)``.

    The teacher acts on exactly the matrix ``x`` it is given (with or without a bias column: the
    caller decides).

    Parameters
    ----------
    x
        (n, d) inputs.
    v
        (m, d) teacher input weights.
    b
        (m, k) teacher output weights.
    leak
        Negative-side slope of the teacher's activation, in [0, 1).

    Returns
    -------
    numpy.ndarray
        (n, k) targets.
    """
    _check_matrix("x", x)
    _check_matrix("v", v)
    _check_matrix("b", b)
    _check_leak("leak", leak)
    if v.shape[1] != x.shape[1]:
        raise ValueError(f"v must have x's {x.shape[1]} columns; got shape {v.shape}")
    if b.shape[0] != v.shape[0]:
        raise ValueError(f"b must have v's {v.shape[0]} rows; got shape {b.shape}")
    z = x @ v.T
    return np.where(z > 0, z, leak * z) @ b


def affine_targets(
    rng: np.random.Generator,
    x: np.ndarray,
    output_dim: int,
    *,
    slope: np.ndarray | None = None,
    intercept: np.ndarray | None = None,
) -> np.ndarray:
    """Affine targets ``y = x @ slope + intercept``.

    Draw order: ``slope`` then ``intercept``; only those not given are drawn, entries i.i.d. N(0, 1).

    Parameters
    ----------
    rng
        Source of the randomness.
    x
        (n, d) inputs.
    output_dim
        ``k`` >= 1.
    slope
        (d, k) matrix, or None to draw it.
    intercept
        (k,) vector, or None to draw it.

    Returns
    -------
    numpy.ndarray
        (n, k) targets.
    """
    _check_matrix("x", x)
    check_positive_int("output_dim", output_dim)
    shape = (x.shape[1], output_dim)
    if slope is None:
        slope = rng.standard_normal(shape)
    elif np.shape(slope) != shape:
        raise ValueError(f"slope must have shape {shape}; got {np.shape(slope)}")
    if intercept is None:
        intercept = rng.standard_normal(output_dim)
    elif np.shape(intercept) != (output_dim,):
        raise ValueError(f"intercept must have shape {(output_dim,)}; got {np.shape(intercept)}")
    return x @ slope + intercept


def draw_affine_map(rng: np.random.Generator, input_dim: int, output_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Slope (input_dim, k) then intercept (k,) of an affine map, i.i.d. N(0, 1) entries (as :func:`affine_targets`)."""
    check_positive_int("input_dim", input_dim)
    check_positive_int("output_dim", output_dim)
    return rng.standard_normal((input_dim, output_dim)), rng.standard_normal(output_dim)


def random_labels(rng: np.random.Generator, n_samples: int, output_dim: int) -> np.ndarray:
    """Labels with i.i.d. N(0, 1) entries, independent of the inputs, shape (n_samples, output_dim)."""
    check_positive_int("n_samples", n_samples)
    check_positive_int("output_dim", output_dim)
    return rng.standard_normal((n_samples, output_dim))


def add_label_noise(rng: np.random.Generator, y: np.ndarray, noise_std: float) -> np.ndarray:
    """Return ``y + noise_std * N(0, 1)`` entrywise, a new array of ``y``'s shape.

    Nothing is drawn when ``noise_std == 0`` (a copy of ``y`` is returned).
    """
    if not (math.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std must be finite and >= 0; got {noise_std!r}")
    if noise_std == 0:
        return np.array(y, dtype=np.float64)
    return y + noise_std * rng.standard_normal(np.shape(y))


def make_dataset(
    rng: np.random.Generator,
    *,
    distribution: str,
    n_samples: int,
    input_dim: int,
    output_dim: int,
    bias: bool,
    target: str,
    teacher_width: int | None = None,
    teacher_kind: str = "gaussian",
    teacher_leak: float = 0.0,
    noise_std: float = 0.0,
    interval: tuple[float, float] = (-1.0, 1.0),
) -> Dataset:
    """Draw a full data set from one generator.

    Draw order (fixed, so a data generator always gives the same data set): the inputs
    (:func:`draw_inputs`), then the target parameters (teacher ``v`` then ``b``; affine slope then
    intercept; or the random labels), then the label noise. The teacher and the affine map act on
    the raw inputs, *before* the bias column is appended, so a student with a bias can represent an
    affine target exactly and a bias-free teacher with zero bias weights.

    Parameters
    ----------
    rng
        Source of all randomness (the run's ``"data"`` generator, see :mod:`pipeline.seeds`).
    distribution, n_samples, input_dim, interval
        See :func:`draw_inputs`.
    output_dim
        ``k`` >= 1.
    bias
        Append a constant-1 input column to the student's inputs.
    target
        ``"teacher"``, ``"affine"`` or ``"random"`` (i.i.d. N(0, 1) labels).
    teacher_width, teacher_kind, teacher_leak
        Teacher width (required for ``target="teacher"``), kind (see :func:`teacher_network`) and
        activation leak in [0, 1); ignored for other targets.
    noise_std
        Standard deviation of the Gaussian label noise, >= 0.

    Returns
    -------
    Dataset
    """
    _check_choice("target", target, TARGETS)
    x = draw_inputs(rng, distribution, n_samples, input_dim, interval=interval)
    teacher_v = teacher_b = None
    if target == "teacher":
        if teacher_width is None:
            raise ValueError("teacher_width must be given (an int >= 1) when target is 'teacher'")
        _check_leak("teacher_leak", teacher_leak)
        teacher_v, teacher_b = teacher_network(
            rng, input_dim=input_dim, width=teacher_width, output_dim=output_dim, kind=teacher_kind
        )
        y = teacher_targets(x, teacher_v, teacher_b, teacher_leak)
    elif target == "affine":
        y = affine_targets(rng, x, output_dim)
    else:
        y = random_labels(rng, n_samples, output_dim)
    y = add_label_noise(rng, y, noise_std)
    if bias:
        x = append_bias(x)
    return Dataset(x=x, y=y, teacher_v=teacher_v, teacher_b=teacher_b)
