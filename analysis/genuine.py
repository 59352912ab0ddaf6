"""Genuine cells of a single ReLU neuron on 1-D data with a bias (theory.md section 10).

A single neuron ``f(x) = a relu(w x + b)`` on sorted distinct inputs ``x[0] < ... < x[n-1]`` has the
activation cells of a 1-D arrangement. A cell is named by a *gap index* ``k`` in ``0..n`` (the breakpoint
``-b/w`` lies in the gap ``(x[k-1], x[k])``, with ``x[-1] = -inf`` and ``x[n] = +inf``) and an
*orientation*:

``"right"``
    ``w > 0``: the neuron is active on the right part, ``S = {x[k], ..., x[n-1]}`` (0-based; this is
    theory.md's ``S = {x_(k+1), ..., x_(n)}`` in 1-based order statistics, the same ``k``).
``"left"``
    ``w < 0``: the mirrored cell, active on the left part ``S = {x[0], ..., x[k-1]}``.

Inside a cell ``f(x_i) = u^T (x_i, 1)`` on ``S`` and ``0`` off it, with ``u = a (w, b)``, so the loss is a
least-squares problem in ``u``. The cell criterion of theory.md 10: the cell holds a differentiable local
minimum (its infimum is attained inside it) iff an LS solution ``u*`` is *genuine*: ``u* = 0``, or the
line ``u*^T (x, 1)`` has one strict sign on ``S`` and the opposite strict sign off ``S``. For an interior
gap this says that the fitted line's root lies in the gap. Only the activation pattern matters, so
``("right", 0)`` and ``("left", n)`` are the same cell (all points active), as are ``("right", n)`` and
``("left", 0)`` (none active: always genuine, with ``u* = 0``).

With pure-noise labels the root of the LS line on ``S`` is ``Cauchy(mean_S, s_S)`` (mean and population
standard deviation of ``S``), which gives :func:`closed_form_probability`; :func:`genuine_rate_table`
compares it with Monte Carlo. :mod:`analysis.genuine_end_points` checks gradient-descent end points of a
survey store against the criterion.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import binomtest

__all__ = [
    "THEORY_MIDDLE_GAP",
    "CellFit",
    "Orientation",
    "active_mask",
    "cell_least_squares",
    "closed_form_probability",
    "genuine_rate_table",
    "is_genuine",
]

Orientation = Literal["right", "left"]

THEORY_MIDDLE_GAP: Mapping[int, float] = {6: 0.0846, 12: 0.0410, 24: 0.0203, 48: 0.0099, 96: 0.0049}
"""theory.md 10: the closed form averaged over Gaussian samples, middle gap ``k = n // 2``, 4 decimals."""


@dataclass(frozen=True)
class CellFit:
    """The least-squares fit of one cell.

    Attributes
    ----------
    u
        ``(slope, intercept)`` of the LS line on the active set (the minimum-norm solution when the fit
        is not unique).
    active
        Boolean mask of the active set ``S`` (over the sorted inputs).
    prediction
        ``u^T (x_i, 1)`` on ``S``, ``0`` elsewhere.
    loss
        ``sum_i (prediction_i - y_i)^2 / (2 n)``, the cell's infimum.
    unique
        Whether the LS solution is unique (``S`` holds two distinct inputs).
    """

    u: np.ndarray
    active: np.ndarray
    prediction: np.ndarray
    loss: float
    unique: bool


def active_mask(n: int, k: int, orientation: Orientation) -> np.ndarray:
    """Mask of the active set of cell ``(k, orientation)`` over ``n`` sorted inputs.

    Raises
    ------
    ValueError
        If ``k`` is not in ``0..n`` or the orientation is unknown.
    """
    if not 0 <= k <= n:
        raise ValueError(f"gap index k must be in 0..{n}; got {k}")
    if orientation not in ("right", "left"):
        raise ValueError(f"orientation must be 'right' or 'left'; got {orientation!r}")
    index = np.arange(n)
    return index >= k if orientation == "right" else index < k


def _check_sorted(x: np.ndarray, y: np.ndarray | None = None) -> None:
    if x.ndim != 1 or np.any(np.diff(x) < 0):
        raise ValueError("x must be a 1-D array sorted ascending")
    if y is not None and y.shape != x.shape:
        raise ValueError(f"y must have the shape of x {x.shape}; got {y.shape}")


def cell_least_squares(x: np.ndarray, y: np.ndarray, k: int, orientation: Orientation = "right") -> CellFit:
    """Least-squares fit of ``y`` on ``[x, 1]`` restricted to the active set of a cell.

    Parameters
    ----------
    x
        Inputs sorted ascending, shape ``(n,)`` (raw inputs; the bias coordinate is added here).
    y
        Labels aligned with ``x``, shape ``(n,)``.
    k
        Gap index in ``0..n``: the breakpoint lies in ``(x[k-1], x[k])``.
    orientation
        ``"right"`` (active on ``x[k:]``) or ``"left"`` (active on ``x[:k]``).

    Returns
    -------
    CellFit
        Inactive points are predicted ``0`` (ReLU).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    _check_sorted(x, y)
    active = active_mask(len(x), k, orientation)
    design = np.column_stack([x[active], np.ones(int(active.sum()))])
    if active.any():
        u, _, rank, _ = np.linalg.lstsq(design, y[active], rcond=None)
    else:
        u, rank = np.zeros(2), 0
    prediction = np.where(active, u[0] * x + u[1], 0.0)
    loss = float(np.sum((prediction - y) ** 2) / (2 * len(x)))
    return CellFit(u=u, active=active, prediction=prediction, loss=loss, unique=rank == 2)


def is_genuine(x: np.ndarray, y: np.ndarray, k: int, orientation: Orientation = "right") -> bool:
    """Whether cell ``(k, orientation)`` holds a genuine LS solution (theory.md 10, cell criterion).

    True iff the fitted line is ``0``, or has one strict sign on the active set and the opposite strict
    sign on the others (for an interior gap: its root lies in ``(x[k-1], x[k])``); then the cell's
    infimum is attained inside the cell by ``a = eps ||u*||``, ``(w, b) = eps u*/||u*||``.

    A non-unique fit (fewer than two distinct active inputs) is genuine when the cell is not empty: the
    LS set holds ``u = 0`` (no active point) or every line through the single active input, among them
    one with its root anywhere in the gap.

    Parameters
    ----------
    x, y, k, orientation
        As :func:`cell_least_squares`.
    """
    fit = cell_least_squares(x, y, k, orientation)
    x = np.asarray(x, dtype=float)
    gap = (x[k - 1] if k > 0 else -np.inf, x[k] if k < len(x) else np.inf)
    if not gap[0] < gap[1]:
        return False  # tied inputs: the cell is empty
    if not fit.unique or not np.any(fit.u):
        return True
    z = fit.u[0] * x + fit.u[1]
    for eps in (1.0, -1.0):
        if np.all(eps * z[fit.active] > 0) and np.all(eps * z[~fit.active] < 0):
            return True
    return False


def closed_form_probability(x_sorted: np.ndarray, k: int, orientation: Orientation = "right") -> float:
    """P(cell ``(k, orientation)`` is genuine | x) for pure-noise labels ``y ~ N(0, sigma^2 I)``.

    The LS root on ``S`` is ``Cauchy(m, s)`` (``m``, ``s``: mean and population s.d. of ``S``), so for an
    interior gap ``(1/pi) [arctan((x[k] - m)/s) - arctan((x[k-1] - m)/s)]`` (theory.md 10). When every point
    is active the root must avoid ``[x[0], x[n-1]]``; with at most one active input the cell is genuine
    surely (see :func:`is_genuine`).

    Parameters
    ----------
    x_sorted
        Inputs sorted ascending, shape ``(n,)``.
    k, orientation
        The cell, as in :func:`cell_least_squares`.
    """
    x = np.asarray(x_sorted, dtype=float)
    _check_sorted(x)
    active = active_mask(len(x), k, orientation)
    s_x = x[active]
    if len(s_x) < 2 or np.ptp(s_x) == 0:
        return 1.0
    mean, sd = s_x.mean(), s_x.std()
    if active.all():
        inside = np.arctan((x[-1] - mean) / sd) - np.arctan((x[0] - mean) / sd)
        return float(1.0 - inside / np.pi)
    return float((np.arctan((x[k] - mean) / sd) - np.arctan((x[k - 1] - mean) / sd)) / np.pi)


def _genuine_batch(x: np.ndarray, y: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Vectorised :func:`is_genuine` for interior cells: rows of sorted distinct ``x``, ``y``, active masks.

    Every row needs an active and an inactive point; a single active point is genuine surely.
    """
    m = active.sum(axis=1)
    sx, sy = (x * active).sum(axis=1), (y * active).sum(axis=1)
    sxx, sxy = (x * x * active).sum(axis=1), (x * y * active).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (sxy - sx * sy / m) / (sxx - sx * sx / m)
        intercept = (sy - slope * sx) / m
    z = slope[:, None] * x + intercept[:, None]
    sign = np.where(active, 1.0, -1.0)
    positive = np.all(sign * z > 0, axis=1)
    negative = np.all(sign * z < 0, axis=1)
    return positive | negative | (m == 1)


def _closed_form_batch(x: np.ndarray, k: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Vectorised :func:`closed_form_probability` for interior cells (rows of sorted distinct ``x``)."""
    m = active.sum(axis=1)
    mean = (x * active).sum(axis=1) / m
    sd = np.sqrt((((x - mean[:, None]) ** 2) * active).sum(axis=1) / m)
    rows = np.arange(len(x))
    hi, lo = x[rows, k], x[rows, k - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        probability = (np.arctan((hi - mean) / sd) - np.arctan((lo - mean) / sd)) / np.pi
    return np.where(m == 1, 1.0, probability)


def _draw_cells(rng: np.random.Generator, n: int, n_datasets: int, cell: str | int) -> tuple[np.ndarray, np.ndarray]:
    """Gap indices and orientation masks (True = right) of the cell examined in each data set."""
    if cell == "middle":
        return np.full(n_datasets, n // 2), np.ones(n_datasets, dtype=bool)
    if cell == "all":
        return rng.integers(1, n, size=n_datasets), rng.random(n_datasets) < 0.5
    if isinstance(cell, int | np.integer) and 1 <= cell <= n - 1:
        return np.full(n_datasets, int(cell)), np.ones(n_datasets, dtype=bool)
    raise ValueError(f"cell must be 'middle', 'all' or an interior gap index in 1..{n - 1}; got {cell!r}")


def genuine_rate_table(
    n_values: Iterable[int],
    n_datasets: int,
    rng: np.random.Generator,
    cell: Literal["middle", "all"] | int = "middle",
) -> pd.DataFrame:
    """Monte Carlo rate of genuine cells against the averaged closed form (pure-noise labels, sigma = 1).

    Each data set draws ``x ~ N(0, I_n)`` (sorted) and ``y ~ N(0, I_n)`` and examines one cell: the middle
    gap ``k = n // 2`` (right orientation; the left one has the same law), or with ``cell="all"`` an
    interior cell drawn uniformly from the ``2 (n - 1)`` with ``k`` in ``1..n-1`` and either orientation
    (all-active and all-dead cells excluded; the two cells with one active point are genuine surely), or
    a given interior ``k`` (right orientation). One cell per data set keeps the trials independent, so the
    Wilson interval is valid.

    Parameters
    ----------
    n_values
        Sample sizes ``n >= 3``.
    n_datasets
        Data sets per sample size.
    rng
        Source of all randomness.
    cell
        ``"middle"``, ``"all"`` or an interior gap index.

    Returns
    -------
    pandas.DataFrame
        One row per ``n``: ``n``, ``cell``, ``n_datasets``, ``n_genuine``, ``rate`` with its 95 % Wilson
        interval ``ci_low``, ``ci_high``; ``closed_form`` (mean over the same data sets of the conditional
        probability) with its standard error ``closed_form_se``; ``theory`` (theory.md 10, middle gap only,
        else NaN).
    """
    rows = []
    for n in n_values:
        if n < 2:
            raise ValueError(f"n must be >= 2; got {n}")
        x = np.sort(rng.standard_normal((n_datasets, n)), axis=1)
        y = rng.standard_normal((n_datasets, n))
        k, right = _draw_cells(rng, n, n_datasets, cell)
        index = np.arange(n)[None, :]
        active = np.where(right[:, None], index >= k[:, None], index < k[:, None])
        genuine = int(_genuine_batch(x, y, active).sum())
        probability = _closed_form_batch(x, k, active)
        interval = binomtest(genuine, n_datasets).proportion_ci(confidence_level=0.95, method="wilson")
        rows.append(
            {
                "n": n,
                "cell": str(cell),
                "n_datasets": n_datasets,
                "n_genuine": genuine,
                "rate": genuine / n_datasets,
                "ci_low": interval.low,
                "ci_high": interval.high,
                "closed_form": float(probability.mean()),
                "closed_form_se": float(probability.std(ddof=1) / np.sqrt(n_datasets)),
                "theory": THEORY_MIDDLE_GAP.get(n, np.nan) if cell == "middle" else np.nan,
            }
        )
    return pd.DataFrame(rows)
