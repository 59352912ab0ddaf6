"""Initial weights of a batch of students, drawn in float64 numpy from an explicit generator.

Shapes follow :mod:`pipeline.losses.nets`: input weights ``w0`` are (m, d) (``d`` includes a bias column
when there is one), output weights ``a0`` are (m, k).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["INIT_DISTRIBUTIONS", "check_positive_int", "draw_initialization", "init_scale_std"]

INIT_DISTRIBUTIONS = ("gaussian", "xavier")


def check_positive_int(name: str, value: int) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}")


def init_scale_std(init_scale: float | None, width: int, width_exponent: float | None) -> float:
    """Standard deviation of the initial weights: ``init_scale``, or ``width ** width_exponent``.

    Parameters
    ----------
    init_scale
        A fixed standard deviation > 0 (vanishing scales such as 1e-6 are fine), or None.
    width
        Student width ``m`` >= 1.
    width_exponent
        ``mu`` in ``std = width ** mu`` (the authors' convention; mu = -3 in their first
        experiment), or None. Exactly one of ``init_scale`` and ``width_exponent`` is given.

    Returns
    -------
    float
        The standard deviation, > 0.
    """
    check_positive_int("width", width)
    if init_scale is not None and width_exponent is None:
        if not (math.isfinite(init_scale) and init_scale > 0):
            raise ValueError(f"init_scale must be finite and > 0; got {init_scale!r}")
        return float(init_scale)
    if width_exponent is not None and init_scale is None:
        if not math.isfinite(width_exponent):
            raise ValueError(f"width_exponent must be finite; got {width_exponent!r}")
        return float(width) ** width_exponent
    raise ValueError(
        "exactly one of init_scale and width_exponent must be given; "
        f"got init_scale={init_scale!r}, width_exponent={width_exponent!r}"
    )


def _balance(w: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rescale each neuron so that ``||a_j|| = ||w_j|| = sqrt(||w_j|| ||a_j||)``.

    The product ``||w_j|| ||a_j||`` is unchanged; a neuron with a zero layer becomes all zeros.
    """
    norm_w = np.linalg.norm(w, axis=1, keepdims=True)
    norm_a = np.linalg.norm(a, axis=1, keepdims=True)
    target = np.sqrt(norm_w * norm_a)
    scale_w = np.divide(target, norm_w, out=np.zeros_like(target), where=norm_w > 0)
    scale_a = np.divide(target, norm_a, out=np.zeros_like(target), where=norm_a > 0)
    return w * scale_w, a * scale_a


def draw_initialization(
    rng: np.random.Generator,
    *,
    width: int,
    input_dim: int,
    output_dim: int,
    std: float,
    balanced: bool = False,
    output_fixed: bool = False,
    distribution: str = "gaussian",
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the initial weights of one student.

    Draw order: ``w0`` then ``a0`` (``a0`` is not drawn when ``output_fixed``).

    Parameters
    ----------
    rng
        Source of all randomness (the run's ``"init"`` generator, see :mod:`pipeline.seeds`).
    width, input_dim, output_dim
        ``m``, ``d`` (including a bias column if any) and ``k``, all >= 1.
    std
        Standard deviation > 0 of the ``"gaussian"`` initialisation; see :func:`init_scale_std`.
    balanced
        Rescale each neuron so that ``||a_j|| = ||w_j||``, keeping ``||w_j|| ||a_j||`` unchanged.
        Not allowed with ``output_fixed``.
    output_fixed
        Output weights fixed to ones (then ``a0`` is all ones and not trained).
    distribution
        ``"gaussian"``: all entries of both layers i.i.d. ``N(0, std**2)`` (the authors'
        ``N(0, 1) * width**mu``, theory.md section 1). ``"xavier"``: entries of ``w0`` i.i.d.
        ``N(0, 1/input_dim)`` (Safran–Shamir, theory.md section 11.2) and of ``a0`` i.i.d.
        ``N(0, 1/width)``; ``std`` is ignored.

    Returns
    -------
    w0 : numpy.ndarray
        (width, input_dim) float64 input weights.
    a0 : numpy.ndarray
        (width, output_dim) float64 output weights.
    """
    if distribution not in INIT_DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {list(INIT_DISTRIBUTIONS)}; got {distribution!r}")
    check_positive_int("width", width)
    check_positive_int("input_dim", input_dim)
    check_positive_int("output_dim", output_dim)
    if not (math.isfinite(std) and std > 0):
        raise ValueError(f"std must be finite and > 0; got {std!r}")
    if balanced and output_fixed:
        raise ValueError("balanced must be False when output_fixed is True (fixed output weights are ones)")
    if distribution == "gaussian":
        w_std, a_std = std, std
    else:
        w_std, a_std = 1.0 / math.sqrt(input_dim), 1.0 / math.sqrt(width)
    w0 = w_std * rng.standard_normal((width, input_dim))
    if output_fixed:
        return w0, np.ones((width, output_dim))
    a0 = a_std * rng.standard_normal((width, output_dim))
    if balanced:
        return _balance(w0, a0)
    return w0, a0
