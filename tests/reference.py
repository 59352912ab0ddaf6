"""Independent numpy float64 oracles for testing the stationary-point classifier.

Nothing here imports ``pipeline``: every formula is written from the mathematics of
/work/shared/docs/theory.md (sections 1-2) so that the classifier is checked against code that
shares none of its mistakes.

Conventions (theory.md section 1): inputs ``x`` (n, d) (a bias is a constant-1 column), targets
``y`` (n, k), input weights ``w`` (m, d) (row ``j`` is ``w_j``), output weights ``a`` (m, k);
``f(x_i) = sum_j a_j rho(w_j . x_i)``, ``rho(z) = z`` for ``z >= 0`` and ``leak * z`` for ``z < 0``,
loss ``L = 1/(2n) sum_i ||f(x_i) - y_i||^2``.

The oracles:

* :func:`naive_loss` -- explicit loops, the ground truth every other function is tested against;
* :func:`batched_loss` -- the same loss for a stack of parameter sets (plain numpy, for speed);
* :func:`naive_gradient` -- the gradient with ``rho'(0) = leak`` (a valid one-sided choice);
* :func:`directional_derivative` -- the exact one-sided derivative ``L'(theta; Delta)`` (section 3);
* :func:`validity_radius` -- the radius ``mu`` of the exact local expansion (section 2);
* :func:`brute_force_min_change` -- random + adversarial search for a loss decrease in a small
  neighbourhood;
* :func:`naive_gd` -- plain full-batch gradient descent producing end points of small problems.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "BruteForceResult",
    "batched_loss",
    "brute_force_min_change",
    "directional_derivative",
    "min_directional_derivative",
    "naive_gd",
    "naive_gradient",
    "naive_loss",
    "rho",
    "validity_radius",
]


def _as2d(v) -> np.ndarray:
    """Return ``v`` as a 2-D float64 numpy array (torch tensors and lists accepted)."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    return arr


def rho(z, leak: float):
    """Leaky-ReLU ``rho(z) = z`` (z >= 0), ``leak * z`` (z < 0), elementwise (numpy)."""
    z = np.asarray(z, dtype=np.float64)
    return np.where(z >= 0.0, z, leak * z)


def _rho_scalar(z: float, leak: float) -> float:
    """Scalar activation, written out by hand for the loop oracle."""
    if z >= 0.0:
        return z
    return leak * z


def naive_loss(w, a, x, y, leak: float) -> float:
    """Loss ``L = 1/(2n) sum_i ||f(x_i) - y_i||^2`` by explicit Python loops (ground truth).

    Parameters
    ----------
    w : (m, d) input weights;  a : (m, k) output weights;  x : (n, d) inputs;  y : (n, k) targets.
    leak : negative-side slope of the activation.
    """
    w, a, x, y = _as2d(w), _as2d(a), _as2d(x), _as2d(y)
    n, d = x.shape
    m, k = a.shape
    total = 0.0
    for i in range(n):
        for out in range(k):
            f = 0.0
            for j in range(m):
                z = 0.0
                for c in range(d):
                    z += w[j, c] * x[i, c]
                f += a[j, out] * _rho_scalar(z, leak)
            total += (f - y[i, out]) ** 2
    return total / (2.0 * n)


def batched_loss(W, A, x, y, leak: float) -> np.ndarray:
    """Loss for a stack of parameter sets: W (P, m, d), A (P, m, k) -> (P,) (plain numpy)."""
    W = np.asarray(W, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    x, y = _as2d(x), _as2d(y)
    z = np.einsum("nd,pmd->pnm", x, W)
    f = np.einsum("pnm,pmk->pnk", rho(z, leak), A)
    return 0.5 * np.sum((f - y[None]) ** 2, axis=(1, 2)) / x.shape[0]


def naive_gradient(w, a, x, y, leak: float) -> tuple[np.ndarray, np.ndarray]:
    """Gradient ``(dL/dw, dL/da)`` with the convention ``rho'(0) = leak``.

    ``dL/da_j = 1/n sum_i rho(z_ij) r_i`` and ``dL/dw_j = 1/n sum_i (a_j . r_i) rho'(z_ij) x_i``
    (derived by hand from the chain rule; at a kink this is one element of the set of one-sided
    derivatives, which is all plain gradient descent ever uses).
    """
    return _gradient_core(_as2d(w), _as2d(a), _as2d(x), _as2d(y), leak)


def _gradient_core(w: np.ndarray, a: np.ndarray, x: np.ndarray, y: np.ndarray, leak: float):
    """:func:`naive_gradient` on float64 arrays of the right shapes (no conversions; GD inner loop)."""
    z = x @ w.T  # (n, m)
    slope = np.where(z > 0.0, 1.0, leak)  # rho'(z), with rho'(0) = leak
    h = z * slope  # rho(z) = rho'(z) z (positive homogeneity)
    r = h @ a - y  # (n, k)
    c = r @ a.T  # c_ij = a_j . r_i, (n, m)
    n = x.shape[0]
    return (c * slope).T @ x / n, h.T @ r / n


def directional_derivative(w, a, x, y, leak: float, dw, da) -> float:
    """Exact one-sided derivative ``L'(theta; (dw, da)) = lim_{t->0+} (L(theta + t Delta) - L) / t``.

    Theory section 3: ``(1/n) sum_i r_i . sum_j [da_j rho(z_ij) + a_j rho'(z_ij; x_i . dw_j)]`` with
    the one-sided ``rho'(z; t) = t`` (z > 0), ``leak t`` (z < 0), ``rho(t)`` (z == 0, exactly).
    """
    w, a, x, y = _as2d(w), _as2d(a), _as2d(x), _as2d(y)
    dw, da = _as2d(dw), _as2d(da)
    n = x.shape[0]
    z = x @ w.T
    r = rho(z, leak) @ a - y
    t = x @ dw.T  # x_i . dw_j
    phi = np.where(z > 0.0, t, np.where(z < 0.0, leak * t, rho(t, leak)))
    df = rho(z, leak) @ da + phi @ a  # first-order change of f, (n, k)
    return float(np.sum(r * df) / n)


def min_directional_derivative(
    w, a, x, y, leak: float, *, rng: np.random.Generator, n_dirs: int = 4000, train_output: bool = True
) -> tuple[float, np.ndarray, np.ndarray]:
    """Smallest one-sided derivative over unit directions (random, axis-aligned, and per-neuron).

    Used to verify hand-built stationary points (value ~0 up to rounding) and non-stationary ones
    (clearly negative). Returns ``(value, dw, da)`` for the best direction found.
    """
    w, a = _as2d(w), _as2d(a)
    m, d = w.shape
    k = a.shape[1]
    dims = m * d + (m * k if train_output else 0)
    dirs = [rng.standard_normal((n_dirs, dims))]
    dirs.append(np.vstack([np.eye(dims), -np.eye(dims)]))
    # directions moving only one neuron's input weights (the kink structure lives there)
    for j in range(m):
        block = np.zeros((n_dirs // max(m, 1), dims))
        block[:, j * d : (j + 1) * d] = rng.standard_normal((block.shape[0], d))
        dirs.append(block)
    dirs = np.vstack(dirs)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    best = (np.inf, None, None)
    for v in dirs:
        dw = v[: m * d].reshape(m, d)
        da = v[m * d :].reshape(m, k) if train_output else np.zeros((m, k))
        val = directional_derivative(w, a, x, y, leak, dw, da)
        if val < best[0]:
            best = (val, dw, da)
    return best


def validity_radius(w, x, kink_tol: float = 0.0, *, per_neuron: bool = False):
    """Radius of the exact local expansion of theory section 2.

    ``mu_j = min_{i not a kink of j} |z_ij| / ||x_i||`` and ``mu = min_j mu_j`` (``inf`` if every
    pre-activation is a kink, e.g. ``w = 0``). Data point ``i`` counts as a kink of neuron ``j`` iff
    ``|z_ij| <= kink_tol * ||w_j|| * ||x_i||`` (relative, as in section 8.2 step 2; ``kink_tol = 0``
    means exact zeros only). For ``||dw_j|| < mu_j`` no non-kink pre-activation changes sign.

    Returns ``mu`` (float), or the array ``(mu_j)`` of shape (m,) if ``per_neuron``.
    """
    w, x = _as2d(w), _as2d(x)
    xnorm = np.linalg.norm(x, axis=1)
    mus = np.full(w.shape[0], np.inf)
    for j in range(w.shape[0]):
        wn = np.linalg.norm(w[j])
        for i in range(x.shape[0]):
            z = float(np.dot(w[j], x[i]))
            if abs(z) <= kink_tol * wn * xnorm[i]:
                continue
            if xnorm[i] > 0.0:
                mus[j] = min(mus[j], abs(z) / xnorm[i])
    if per_neuron:
        return mus
    return float(np.min(mus)) if mus.size else np.inf


class BruteForceResult(NamedTuple):
    """Outcome of :func:`brute_force_min_change`."""

    min_change: float
    """Smallest ``L(theta + Delta) - L(theta)`` found (0.0 if nothing beat the unperturbed point)."""
    dw: np.ndarray
    """Input-weight part of the best perturbation, (m, d)."""
    da: np.ndarray
    """Output-weight part of the best perturbation, (m, k) (zeros if the output is fixed)."""
    n_evaluated: int
    """Number of perturbations whose loss was evaluated."""


def _row_radii(value, m: int) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (m,)).copy()
    arr[~np.isfinite(arr)] = 1.0
    return arr


def _project_rows(v: np.ndarray) -> np.ndarray:
    """Project every row of ``v`` onto the closed unit ball."""
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norms, 1.0)


def brute_force_min_change(
    w,
    a,
    x,
    y,
    leak: float,
    *,
    radius,
    rng: np.random.Generator,
    n_random: int = 3000,
    n_adversarial: int = 6,
    train_output: bool = True,
    a_radius=None,
    adversarial_steps: int = 150,
) -> BruteForceResult:
    """Search a small neighbourhood of ``(w, a)`` for the largest loss decrease.

    Perturbations satisfy ``||dw_j|| <= radius_j`` and ``||da_j|| <= a_radius_j`` row by row
    (``radius`` and ``a_radius`` are scalars or arrays of shape (m,); ``a_radius`` defaults to
    ``radius``; ``inf`` entries are replaced by 1). Choose ``radius_j < mu_j`` (see
    :func:`validity_radius`) so that the search stays inside the region where the loss is the
    exact polynomial of theory section 2.

    Search families (all evaluated on the true loss, :func:`batched_loss`):

    1. uniformly random directions on the joint unit sphere, at scales 1, 0.3, 0.1, 1e-2, 1e-3;
    2. axis-aligned single-coordinate moves, both signs, same scales;
    3. single-neuron pairs ``dw_j = s u, da_j = t v`` over a grid of scales ``s, t`` in
       {1, 0.3, 0.1, 1e-2, 1e-3} (theory section 2's pitfall: a tiny neuron is escaped by scaling
       ``dw_j`` down and ``da_j`` up; section 5.2's escape needs ``t ~ s D / P``), both signs;
    4. adversarial: projected gradient descent with Armijo backtracking on the true loss, in
       coordinates normalised by the radii, started at small random offsets (all parameters free,
       and restricted to one neuron's block) and at the best random candidates.

    Returns a :class:`BruteForceResult`; ``min_change`` is ``min(0, best change found)``.
    """
    w, a, x, y = _as2d(w), _as2d(a), _as2d(x), _as2d(y)
    m, d = w.shape
    k = a.shape[1]
    rw = _row_radii(radius, m)
    ra = _row_radii(radius if a_radius is None else a_radius, m)
    if not train_output:
        ra = np.zeros(m)
    base = naive_loss(w, a, x, y, leak)

    cand_w: list[np.ndarray] = []
    cand_a: list[np.ndarray] = []
    scales = np.array([1.0, 0.3, 0.1, 1e-2, 1e-3])

    # 1. joint random directions, unit norm in normalised coordinates
    per_scale = max(1, n_random // (2 * len(scales)))
    for s in scales:
        vw = rng.standard_normal((per_scale, m, d))
        va = rng.standard_normal((per_scale, m, k))
        norm = np.sqrt(np.sum(vw**2, axis=(1, 2)) + np.sum(va**2, axis=(1, 2)))[:, None, None]
        cand_w.append(s * vw / norm * rw[None, :, None])
        cand_a.append(s * va / norm * ra[None, :, None])

    # 2. axis-aligned moves
    for s in scales:
        for sign in (1.0, -1.0):
            for j in range(m):
                for c in range(d):
                    dw = np.zeros((1, m, d))
                    dw[0, j, c] = sign * s * rw[j]
                    cand_w.append(dw)
                    cand_a.append(np.zeros((1, m, k)))
                for c in range(k):
                    da = np.zeros((1, m, k))
                    da[0, j, c] = sign * s * ra[j]
                    cand_w.append(np.zeros((1, m, d)))
                    cand_a.append(da)

    # 3. single-neuron pairs dw_j = s_w u, da_j = s_a v over a grid of both scales (any ratio: the
    #    pitfall of section 2 needs s_w << s_a for tiny neurons; the zero-output escape of 5.2 needs
    #    s_a ~ s_w D / P when the other neurons' rho_ij are large), both signs of v
    pair_scales = (1.0, 0.3, 0.1, 1e-2, 1e-3)
    n_pair = max(1, n_random // (2 * max(m, 1) * len(pair_scales) ** 2))
    for j in range(m):
        for s_w in pair_scales:
            for s_a in pair_scales:
                u = rng.standard_normal((n_pair, d))
                u /= np.linalg.norm(u, axis=1, keepdims=True)
                v = rng.standard_normal((n_pair, k))
                v /= np.linalg.norm(v, axis=1, keepdims=True)
                dw = np.zeros((2 * n_pair, m, d))
                da = np.zeros((2 * n_pair, m, k))
                dw[:n_pair, j] = s_w * rw[j] * u
                da[:n_pair, j] = s_a * ra[j] * v
                dw[n_pair:, j] = s_w * rw[j] * u
                da[n_pair:, j] = -s_a * ra[j] * v
                cand_w.append(dw)
                cand_a.append(da)

    DW = np.concatenate(cand_w)
    DA = np.concatenate(cand_a)
    changes = batched_loss(w[None] + DW, a[None] + DA, x, y, leak) - base
    n_eval = len(changes)
    order = np.argsort(changes)
    best_val = float(changes[order[0]])
    best = (DW[order[0]].copy(), DA[order[0]].copy())

    # 4. adversarial projected gradient descent in normalised coordinates v = Delta / radius
    sw = rw[:, None]
    sa = ra[:, None]
    # starts: (offset_w, offset_a, mask) -- the mask restricts the search to one neuron's block
    # (zero-output escapes of section 5.2 move a single neuron; moving a kinked neighbour at the
    # same time costs at first order and hides the second-order gain) or leaves all free.
    full = np.ones((m, 1))
    starts = []
    for _q in range(n_adversarial):
        vw = 0.05 * rng.standard_normal((m, d))
        va = 0.05 * rng.standard_normal((m, k)) if train_output else np.zeros((m, k))
        starts.append((_project_rows(vw), _project_rows(va), full))
    for j in range(m):
        mask = np.zeros((m, 1))
        mask[j] = 1.0
        for _q in range(max(1, n_adversarial // 3)):
            vw = 0.3 * rng.standard_normal((m, d)) * mask
            va = (0.3 * rng.standard_normal((m, k)) * mask) if train_output else np.zeros((m, k))
            starts.append((_project_rows(vw), _project_rows(va), mask))
    for idx in order[: max(1, n_adversarial // 2)]:
        starts.append((DW[idx] / np.where(sw > 0, sw, 1.0), DA[idx] / np.where(sa > 0, sa, 1.0), full))
    for vw, va, mask in starts:
        vw, va = vw.copy(), va.copy()
        cur = naive_loss_fast(w + sw * vw, a + sa * va, x, y, leak)
        n_eval += 1
        step = 1.0
        for _ in range(adversarial_steps):
            gw, ga = naive_gradient(w + sw * vw, a + sa * va, x, y, leak)
            gw = gw * sw * mask  # chain rule to normalised coordinates
            ga = ga * sa * mask if train_output else np.zeros_like(ga)
            gnorm2 = float(np.sum(gw**2) + np.sum(ga**2))
            if gnorm2 == 0.0:
                break
            accepted = False
            for _ in range(30):
                nw = _project_rows(vw - step * gw)
                na = _project_rows(va - step * ga)
                val = naive_loss_fast(w + sw * nw, a + sa * na, x, y, leak)
                n_eval += 1
                if val < cur:
                    vw, va, cur = nw, na, val
                    step *= 2.0
                    accepted = True
                    break
                step *= 0.5
            if not accepted:
                break
        change = cur - base
        if change < best_val:
            best_val = change
            best = (sw * vw, sa * va)
    return BruteForceResult(min(0.0, best_val), best[0], best[1], n_eval)


def torch_loss(w, a, x, y, leak: float):
    """``L_r = 1/(2n) sum_i ||sum_j a_j rho(w_j . x_i) - y_i||^2`` per run, (R,), in torch without
    ``pipeline.losses.nets``.

    ``w`` (R, m, d), ``a`` (R, m, k), ``x`` (R or 1, n, d), ``y`` (R or 1, n, k); differentiable by autograd
    (``rho'(0) = leak``), for the gradients of the engine tests.
    """
    z = torch.einsum("rnd,rmd->rnm", x.expand(w.shape[0], -1, -1), w)
    hidden = torch.where(z > 0, z, leak * z)
    residual = torch.einsum("rnm,rmk->rnk", hidden, a) - y
    return (residual * residual).sum(dim=(1, 2)) / (2 * x.shape[1])


def naive_loss_fast(w, a, x, y, leak: float) -> float:
    """Same value as :func:`naive_loss` (vectorised numpy; tested against it)."""
    return float(batched_loss(np.asarray(w)[None], np.asarray(a)[None], x, y, leak)[0])


def naive_gd(
    w0,
    a0,
    x,
    y,
    leak: float,
    lr: float,
    steps: int,
    train_output: bool = True,
    *,
    lr_final: float | None = None,
    decay_fraction: float = 0.4,
) -> tuple[np.ndarray, np.ndarray]:
    """Plain full-batch gradient descent on :func:`naive_loss` with :func:`naive_gradient`.

    The step size is ``lr`` throughout, or, if ``lr_final`` is given, ``lr`` for the first
    ``1 - decay_fraction`` of the steps and then geometrically decaying to ``lr_final`` (this shrinks
    the zig-zag of GD across a kink, whose amplitude is proportional to the step size; theory 8.2
    step 2). ``rho'(0) = leak`` as in torch. Returns the end point ``(w, a)``.
    """
    w = _as2d(w0).copy()
    a = _as2d(a0).copy()
    x, y = _as2d(x), _as2d(y)
    n_const = steps if lr_final is None else int(round(steps * (1.0 - decay_fraction)))
    n_decay = steps - n_const
    ratio = 1.0 if lr_final is None or n_decay == 0 else (lr_final / lr) ** (1.0 / n_decay)
    step_size = lr
    for t in range(steps):
        if t >= n_const:
            step_size *= ratio
        gw, ga = _gradient_core(w, a, x, y, leak)
        w -= step_size * gw
        if train_output:
            a -= step_size * ga
        if t % 1000 == 999 and not (np.all(np.isfinite(w)) and np.all(np.isfinite(a))):
            raise FloatingPointError("naive_gd diverged; use a smaller learning rate")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(a))):
        raise FloatingPointError("naive_gd diverged; use a smaller learning rate")
    return w, a
