"""Hand-built points for the classifier tests (theory.md sections 3, 5.3 and 7)."""

from __future__ import annotations

import numpy as np


def cell_minimum(seed: int = 0, n: int = 12, d: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One smooth ReLU neuron at an exact least-squares minimum of its activation cell (scalar output).

    Returns ``w`` (1, d), ``a`` (1, 1), ``x`` (n, d) (last column 1), ``y`` (n, 1).
    """
    rng = np.random.default_rng(seed)
    for _ in range(100):
        x = np.hstack([rng.normal(size=(n, d - 1)), np.ones((n, 1))])
        v = rng.normal(size=d)
        y = x @ v + 0.3 * rng.normal(size=n)
        act = x @ v > 0
        if act.sum() < d + 1:
            continue
        u, *_ = np.linalg.lstsq(x[act], y[act], rcond=None)
        if np.array_equal(x @ u > 0, act) and np.abs(x @ u).min() > 1e-3:
            norm = np.linalg.norm(u)
            return (u / np.sqrt(norm))[None], np.array([[np.sqrt(norm)]]), x, y[:, None]
    raise RuntimeError("no consistent cell found")


def kinked_minimum(s: float = 0.5, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One ReLU neuron with a data point exactly on its kink, stationary with multiplier ``s``.

    ``x_0`` lies on the hyperplane, ``a r_0 = 1 > 0``, and the active residuals satisfy
    ``sum_{I+} r_i x_i = -s r_0 x_0`` (theory section 3), so for ``s`` in (0, 1) the point is a
    non-differentiable local minimum (scalar output, ``a != 0``: no escape).
    """
    rng = np.random.default_rng(seed)
    n, d = 10, 3
    x = np.hstack([rng.normal(size=(n, d - 1)), np.ones((n, 1))])
    u = np.array([1.0, 0.5, 0.2])
    x0 = np.cross(u, rng.normal(size=d))
    x0 = x0 / x0[-1] if abs(x0[-1]) > 1e-3 else x0
    x[0] = x0
    act = x @ u > 1e-9
    act[0] = False
    r = np.zeros(n)
    r[0] = 1.0
    r_act, *_ = np.linalg.lstsq(x[act].T, -s * r[0] * x[0], rcond=None)
    r[act] = r_act
    f = np.maximum(x @ u, 0.0)
    f[0] = 0.0
    y = f - r
    return u[None].copy(), np.array([[1.0]]), x, y[:, None]


def rank_one_regression(seed: int = 0, n: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Width-1, 2-output net with all pre-activations positive at its best rank-one fit (section 5.3)."""
    rng = np.random.default_rng(seed)
    x = np.hstack([0.3 * rng.normal(size=(n, 2)), np.ones((n, 1))])
    y = np.stack([1 + 0.5 * x[:, 0], 0.5 - 0.8 * x[:, 1]], axis=1) + 0.2 * rng.normal(size=(n, 2))
    proj = x @ np.linalg.solve(x.T @ x, x.T)
    _, vecs = np.linalg.eigh(y.T @ proj @ y)
    a = vecs[:, -1]
    u = np.linalg.solve(x.T @ x, x.T @ y @ a)
    if (x @ u).mean() < 0:
        u, a = -u, -a
    assert (x @ u > 0).all()
    return u[None], a[None], x, y
