"""Classification of points of the interval population loss (scalar input, affine target; theory.md 9).

The loss is the exact profiled population loss ``P(w, a)`` of :mod:`pipeline.interval_population`
(inputs uniform on ``[low, high]``, a bias, the output bias at its optimum). Its regularity decides
the test (theory.md 9.2-9.3):

* ``P`` is C^1 away from *zero neurons* (``w_j = b_j = 0``) and C^2 away from zero neurons and from
  *boundary neurons*, whose breakpoint ``t_j = -b_j / w_j`` lies exactly at ``low`` or ``high``.
* Moving a boundary neuron's breakpoint into the interval by ``delta`` switches a sliver of width
  ``delta`` to the neuron's other branch; with ``r = e - mean e`` the centred residual this changes
  ``P`` by ``c_j delta^2 + O(delta^3)``,
  ``c_j = (1 - leak) (a_j . r(E)) |w_j| / (2 (high - low))`` (``E`` the end). Moving it outwards
  leaves the neuron on its branch.

Per point (after snapping breakpoints within ``BOUNDARY_TOL (high - low)`` of an end onto it):

1. relative gradient norm ``||grad P|| / (s_y^1.5 s_x^0.5)`` above the tolerance: ``not_stationary``;
2. ``P <= tau_L s_y^2``: ``global_min`` (certificate ``zero_loss``);
3. a zero neuron: with ``a_j = 0`` it escapes if ``D_j(u) = mean[r rho(u . x~)]`` is non-zero for some
   unit ``u`` (a second-order decrease, theory 4 and 5.2: ``saddle``, ``escape_zero_output``); with
   ``a_j != 0`` a direction with ``a_j . D_j(u) < 0`` is a first-order descent (``not_stationary``);
   otherwise ``undetermined``;
4. second order on the smooth piece where every boundary neuron stays on its branch: the Hessian
   ``H`` of that piece (exact, by automatic differentiation of the exact loss) restricted to the
   complement of the exactly flat directions (see :func:`flat_directions`) and the sliver
   coefficients give the one-sided quadratic model ``Q(d) = 1/2 d^T H d + sum_j c_j max(delta_j(d), 0)^2``.
   A negative eigenvalue or a negative ``c_j`` gives a candidate descent direction, which must lower
   the true loss (``saddle``, ``strict``, certificate ``negative_curvature_witness``); a boundary neuron
   with ``a_j = 0`` and ``r(E) != 0`` gives a third-order descent (``saddle``, ``non_strict``). ``H``
   positive definite on the complement and every ``c_j > 0``: ``local_min`` (``hessian_morse_bott``:
   the loss is constant on the flat manifold, grows quadratically off it and on every sliver), which
   is ``spurious_local_min`` as its loss is positive and the target is realisable. Anything else:
   ``undetermined``.

The labels are recomputed with the boundary tolerance scaled by 0.1 and 10; a change of the point
type sets ``tolerance_sensitive``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from pipeline import interval_population
from pipeline.interval_population import IntervalTarget
from pipeline.stationary import labels
from pipeline.stationary.api import SENSITIVITY_FACTORS
from pipeline.stationary.local_descent import MIN_QUALIFYING
from pipeline.stationary.record import BatchClassification, unclassified_record
from pipeline.stationary.tolerances import Tolerances, population_tolerances

__all__ = ["classify_interval_batch", "flat_directions"]

BOUNDARY_TOL = 1e-6
"""Breakpoints within this fraction of ``high - low`` of an interval end are snapped onto it."""
ZERO_TOL = 1e-12
"""Neurons with ``||(w_j, b_j)|| <= ZERO_TOL * max_j ||(w_j, b_j)||`` are zero neurons."""
CURVATURE_TOL = 1e-9
"""Eigenvalues within this fraction of the largest eigenvalue count as zero."""
SLIVER_TOL = 1e-6
"""A sliver coefficient counts as zero when ``|a_j . r(E)| <= SLIVER_TOL ||a_j|| s_y``."""
N_ANGLES = 3600
"""Unit directions ``u`` on which a zero neuron's ``D_j(u)`` is evaluated."""
STEPS = np.geomspace(1e-1, 1e-10, 19)
"""Relative step lengths tried when verifying a descent direction on the true loss."""
ROUNDING_FACTOR = 64.0
"""A verified decrease exceeds this many machine epsilons of the loss."""


@dataclass(frozen=True)
class _Verdict:
    """The classification of one point; per-neuron arrays are (m,)."""

    stationarity: str
    point_type: str
    certificate: str = "none"
    strictness: str = "not_applicable"
    mechanisms: int = 0
    curvature: float = np.nan
    witness: tuple[np.ndarray, np.ndarray, float] | None = None
    escape: np.ndarray | None = None


def classify_interval_batch(
    w: torch.Tensor,
    a: torch.Tensor,
    target: IntervalTarget,
    *,
    leak: float,
    boundary_tolerance_factor: float = 1.0,
    mode: str = "end_point",
) -> BatchClassification:
    """Classify a batch of points of the interval population loss.

    Parameters
    ----------
    w, a
        Points, (R, m, 2) with rows ``(w_j, b_j)`` and (R, m, k).
    target
        The affine target on its interval (shared or per run).
    leak
        Negative slope in [0, 1).
    boundary_tolerance_factor
        Multiplies ``BOUNDARY_TOL``.
    mode
        ``"end_point"`` or ``"plateau"`` (relaxed tolerances,
        :func:`pipeline.stationary.tolerances.population_tolerances`).
    """
    tol = population_tolerances(mode)
    w, a = w.detach().to(torch.float64).cpu(), a.detach().to(torch.float64).cpu()
    target = IntervalTarget(
        target.low,
        target.high,
        target.slope.detach().to(torch.float64).cpu(),
        target.intercept.detach().to(torch.float64).cpu(),
    )
    record = unclassified_record(w.numpy(), a.numpy())
    for run in range(w.shape[0]):
        if not (torch.isfinite(w[run]).all() and torch.isfinite(a[run]).all()):
            continue
        problem = target.select(torch.tensor([run]))
        tolerance = BOUNDARY_TOL * boundary_tolerance_factor
        point = _Point.snap(w[run], a[run], problem, leak, tolerance)
        verdict = _classify(point, tol=tol)
        _store(record, run, point, verdict)
        for factor in SENSITIVITY_FACTORS:
            other = _classify(_Point.snap(w[run], a[run], problem, leak, tolerance * factor), tol=tol, witnesses=False)
            record["tolerance_sensitive"][run] |= other.point_type != verdict.point_type
    return BatchClassification(**record)


@dataclass(frozen=True)
class _Point:
    """One snapped point with the per-neuron facts the test needs (numpy arrays, (m,) unless noted)."""

    w: torch.Tensor  # (m, 2), snapped
    a: torch.Tensor  # (m, k)
    target: IntervalTarget
    leak: float
    zero: np.ndarray  # zero neuron
    boundary: np.ndarray  # breakpoint exactly at an end
    end: np.ndarray  # that end (NaN if none)
    kinked: np.ndarray  # breakpoint strictly inside
    dead: np.ndarray  # ReLU, w . x~ <= 0 on the whole interval (not zero)
    branch: np.ndarray  # slope of the branch a non-kinked neuron is on (NaN for kinked / zero)
    value: float  # the profiled loss at the snapped point
    gap: float  # its relative gradient norm ||grad P|| / (s_y^1.5 s_x^0.5)

    @classmethod
    def snap(cls, w: torch.Tensor, a: torch.Tensor, target: IntervalTarget, leak: float, tolerance: float) -> _Point:
        low, high = target.low, target.high
        slope, offset = w[:, 0].numpy().copy(), w[:, 1].numpy().copy()
        norms = np.hypot(slope, offset)
        zero = norms <= ZERO_TOL * max(float(norms.max()), np.finfo(float).tiny)
        slope[zero], offset[zero] = 0.0, 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(slope != 0, -offset / slope, np.inf)
        end = np.full(slope.shape, np.nan)
        for edge in (low, high):
            near = ~zero & (np.abs(t - edge) <= tolerance * (high - low))
            end[near] = edge
            offset[near] = -slope[near] * edge
        boundary = ~np.isnan(end)
        kinked = ~zero & ~boundary & (t > low) & (t < high)
        middle = 0.5 * (low + high)
        side = np.sign(slope * middle + offset)  # the branch on the interval for a non-kinked neuron
        branch = np.where(kinked | zero, np.nan, np.where(side > 0, 1.0, leak))
        at_ends = np.maximum(slope * low + offset, slope * high + offset)
        dead = (leak == 0.0) & ~zero & (at_ends <= 0)
        snapped = torch.as_tensor(np.stack([slope, offset], axis=1))
        grads = interval_population.interval_gradients(snapped[None], a[None], target, leak)
        s_x, s_y = _scales(target)
        gap = float(grads.norm()[0]) / (s_y**1.5 * s_x**0.5)
        return cls(snapped, a, target, leak, zero, boundary, end, kinked, dead, branch, float(grads.loss[0]), gap)

    def loss(self, w: torch.Tensor, a: torch.Tensor, *, on_piece: bool = False) -> torch.Tensor:
        """The profiled loss at ``(w, a)``; ``on_piece``: boundary neurons kept on their branch."""
        fixed = None
        if on_piece:
            fixed = torch.as_tensor(np.where(self.boundary, self.branch, np.nan))[None]
        return interval_population.interval_loss(w[None], a[None], self.target, self.leak, fixed_slope=fixed)[0]


def _scales(target: IntervalTarget) -> tuple[float, float]:
    """``s_x`` (largest input norm with the bias column) and ``s_y`` (root mean square target)."""
    s_x = float(np.sqrt(max(target.low**2, target.high**2) + 1.0))
    return s_x, float(interval_population.target_scale(target)[0])


def _classify(point: _Point, *, tol: Tolerances, witnesses: bool = True) -> _Verdict:
    """Steps 1-4 of the module docstring for one snapped point."""
    s_x, s_y = _scales(point.target)
    if point.gap > tol.stationary:
        name = "approx_stationary" if point.gap <= tol.approx_stationary else "not_stationary"
        return _Verdict(name, "not_stationary")
    if point.value <= tol.global_loss * s_y**2:
        return _Verdict("stationary", "global_min", certificate="zero_loss")
    residual_at_ends = _centred_residual_at_ends(point)
    if point.zero.any():
        return _zero_neuron_test(point, s_x=s_x, s_y=s_y, tol=tol, witnesses=witnesses)
    return _second_order(point, residual_at_ends, s_y, witnesses)


def _centred_residual_at_ends(point: _Point) -> dict[float, np.ndarray]:
    """``r(E) = e(E) - mean e`` at both interval ends, each (k,)."""
    low, high = point.target.low, point.target.high
    nodes, weights = interval_population.quadrature(point.w[None], low, high)
    inputs = torch.stack([nodes, torch.ones_like(nodes)], dim=-1)[0]
    ends = torch.tensor([[low, 1.0], [high, 1.0]], dtype=torch.float64)

    def error(x: torch.Tensor) -> torch.Tensor:
        activation = torch.nn.functional.leaky_relu(x @ point.w.T, point.leak)
        return activation @ point.a - point.target(x[None, :, 0])[0]

    mean = (weights[0].unsqueeze(-1) * error(inputs)).sum(0)
    at_ends = (error(ends) - mean).numpy()
    return {low: at_ends[0], high: at_ends[1]}


def _zero_neuron_test(point: _Point, *, s_x: float, s_y: float, tol: Tolerances, witnesses: bool) -> _Verdict:
    """Step 3: first- and second-order directions of zero neurons (slopes against ``tol.stationary``, ``D_j`` against
    ``tol.escape``)."""
    angles = np.linspace(0.0, 2.0 * np.pi, N_ANGLES, endpoint=False)
    directions = torch.as_tensor(np.stack([np.cos(angles), np.sin(angles)], axis=1))
    values = _zero_neuron_derivatives(point, directions)  # (U, k)
    tolerance = tol.stationary * s_y * s_x
    escape_tolerance = tol.escape * s_y * s_x
    escape = np.zeros(point.zero.shape, dtype=bool)
    for neuron in np.flatnonzero(point.zero):
        a_j = point.a[neuron].numpy()
        if np.linalg.norm(a_j) > ZERO_TOL * s_y:
            slopes = values @ a_j  # one-sided derivative along (dw_j, da_j) = (u, 0)
            best = int(slopes.argmin())
            if slopes[best] < -tolerance * np.linalg.norm(a_j):  # Clarke-stationary, not directionally
                dw = np.zeros(point.w.shape)
                dw[neuron] = directions[best].numpy()
                witness = _verify(point, dw, np.zeros(point.a.shape), both_signs=False) if witnesses else None
                return _Verdict("clarke_only", "not_stationary", "first_order_descent", witness=witness)
            continue
        strength = np.linalg.norm(values, axis=1)
        best = int(strength.argmax())
        if strength[best] <= escape_tolerance:
            continue
        escape[neuron] = True
        if not witnesses:
            return _Verdict("stationary", "saddle", escape=escape)
        dw = np.zeros(point.w.shape)
        da = np.zeros(point.a.shape)
        dw[neuron] = directions[best].numpy()
        da[neuron] = -values[best] / strength[best]
        witness = _verify(point, dw, da, both_signs=False)
        if witness is not None:
            return _Verdict(
                "stationary",
                "saddle",
                "escape_zero_output",
                "strict",
                _mechanism_bit("Z"),
                curvature=-float(strength[best]),
                witness=witness,
                escape=escape,
            )
    return _Verdict("stationary", "undetermined", escape=escape)


def _zero_neuron_derivatives(point: _Point, directions: torch.Tensor) -> np.ndarray:
    """``D(u) = mean[r(x) rho(u . x~)]`` for every unit ``u`` (U, 2), exact; shape (U, k).

    The integrand is piecewise quadratic with kinks at the network's breakpoints and at ``u``'s own,
    so each ``u`` is integrated with the two-point rule on the segments of both.
    """
    n_dirs = directions.shape[0]
    width = point.w.shape[0]
    combined = torch.cat([point.w.expand(n_dirs, width, 2), directions[:, None, :]], dim=1)
    nodes, weights = interval_population.quadrature(combined, point.target.low, point.target.high)
    inputs = torch.stack([nodes, torch.ones_like(nodes)], dim=-1)  # (U, Q, 2)
    activation = torch.nn.functional.leaky_relu(inputs @ point.w.T, point.leak)
    error = activation @ point.a - point.target(nodes)
    residual = error - (weights.unsqueeze(-1) * error).sum(dim=1, keepdim=True)
    probe = torch.nn.functional.leaky_relu((inputs * directions[:, None, :]).sum(-1), point.leak)
    return (weights.unsqueeze(-1) * residual * probe.unsqueeze(-1)).sum(dim=1).numpy()


def flat_directions(point: _Point) -> np.ndarray:
    """Orthonormal basis (P, f) of directions along which ``P`` is exactly constant on the piece.

    Parameters are ordered ``[w.flatten(), a.flatten()]``. While no breakpoint crosses an interval end:

    * a dead ReLU neuron does not enter the loss: its ``w_j`` and ``a_j`` are free;
    * a kinked neuron has its rescaling ``(w_j, -a_j)``;
    * a neuron on one branch ``s_j`` over the whole interval contributes the affine function
      ``s_j a_j (w_j x + b_j)``, whose constant part the output bias absorbs: its ``b_j`` is free, and
      these neurons enter only through the total slope ``S = sum_j s_j w_j a_j`` (k values); the
      tangent of ``{S = const}`` is free where its Jacobian has rank k (else only the rescalings).
    """
    width, k = point.a.shape
    size = 2 * width + width * k
    w_np, a_np = point.w.numpy(), point.a.numpy()
    columns: list[np.ndarray] = []

    def vector(dw: dict[tuple[int, int], float], da: dict[int, np.ndarray]) -> np.ndarray:
        out = np.zeros(size)
        for (j, q), value in dw.items():
            out[2 * j + q] = value
        for j, output in da.items():
            out[2 * width + k * j : 2 * width + k * (j + 1)] = output
        return out

    linear = ~point.zero & ~point.kinked & ~point.dead
    for j in range(width):
        if point.dead[j]:
            columns += [vector({(j, 0): 1.0}, {}), vector({(j, 1): 1.0}, {})]
            columns += [vector({}, {j: unit}) for unit in np.eye(k)]
        elif point.kinked[j] or linear[j]:
            columns.append(vector({(j, 0): w_np[j, 0], (j, 1): w_np[j, 1]}, {j: -a_np[j]}))
        if linear[j]:
            columns.append(vector({(j, 1): 1.0}, {}))
    block = np.flatnonzero(linear)
    if block.size:
        jacobian = np.zeros((k, size))  # dS / dtheta
        for j in block.tolist():
            jacobian[:, 2 * j] = point.branch[j] * a_np[j]
            jacobian[:, 2 * width + k * j : 2 * width + k * (j + 1)] = point.branch[j] * w_np[j, 0] * np.eye(k)
        block_mask = np.zeros(size, dtype=bool)
        for j in block.tolist():
            block_mask[[2 * j, 2 * j + 1]] = True
            block_mask[2 * width + k * j : 2 * width + k * (j + 1)] = True
        if np.linalg.matrix_rank(jacobian) == k:
            tangent = scipy.linalg.null_space(jacobian[:, block_mask])
            embedded = np.zeros((size, tangent.shape[1]))
            embedded[block_mask] = tangent
            columns += list(embedded.T)
    if not columns:
        return np.zeros((size, 0))
    basis: np.ndarray = scipy.linalg.orth(np.stack(columns, axis=1))
    return basis


def _second_order(point: _Point, residual_at_ends: dict[float, np.ndarray], s_y: float, witnesses: bool) -> _Verdict:
    """Step 4: the one-sided quadratic model on the piece; descent directions are verified."""
    width, k = point.a.shape
    sliver, third_order = _sliver_terms(point, residual_at_ends, s_y)
    hessian = _piece_hessian(point)
    complement = scipy.linalg.null_space(flat_directions(point).T)
    eigenvalues, eigenvectors = np.linalg.eigh(complement.T @ hessian @ complement)
    scale = max(float(np.abs(eigenvalues).max(initial=0.0)), np.finfo(float).tiny)
    lowest = float(eigenvalues[0]) if eigenvalues.size else np.inf
    escape = (sliver < 0) | third_order
    candidates: list[tuple[str, np.ndarray, np.ndarray, bool]] = []  # strictness, dw, da, both signs
    if lowest < -CURVATURE_TOL * scale:
        direction = complement @ eigenvectors[:, 0]
        dw, da = direction[: 2 * width].reshape(width, 2), direction[2 * width :].reshape(width, k)
        candidates.append(("strict", dw, da, True))
    for j in np.flatnonzero(sliver < 0).tolist():
        candidates.append(("strict", _inward(point, j), np.zeros((width, k)), False))
    for j in np.flatnonzero(third_order).tolist():
        da = np.zeros((width, k))
        r_end = residual_at_ends[point.end[j]]
        da[j] = -r_end / np.linalg.norm(r_end)
        candidates.append(("non_strict", _inward(point, j), da, False))
    if candidates:
        if not witnesses:
            return _Verdict("stationary", "saddle", escape=escape)
        for strictness, dw, da, both_signs in candidates:
            witness = _verify(point, dw, da, both_signs=both_signs)
            if witness is not None:
                return _Verdict(
                    "stationary",
                    "saddle",
                    "negative_curvature_witness",
                    strictness,
                    curvature=min(lowest, float(sliver.min(initial=0.0))),
                    witness=witness,
                    escape=escape,
                )
        return _Verdict("stationary", "undetermined", curvature=lowest, escape=escape)
    if lowest > CURVATURE_TOL * scale and np.all(sliver[point.boundary] > 0):
        return _Verdict(
            "stationary",
            "spurious_local_min",
            "hessian_morse_bott",
            curvature=lowest,
            escape=escape,
        )
    return _Verdict("stationary", "undetermined", curvature=lowest, escape=escape)


def _sliver_terms(
    point: _Point, residual_at_ends: dict[float, np.ndarray], s_y: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sliver coefficients ``c_j`` (m,) of boundary neurons (0 elsewhere or when negligible), and the
    boundary neurons (m,) bool with ``a_j = 0`` and ``r(E) != 0``, whose activation is a third-order descent."""
    sliver = np.zeros(point.a.shape[0])
    third_order = np.zeros(point.a.shape[0], dtype=bool)
    length = point.target.high - point.target.low
    for j in np.flatnonzero(point.boundary):
        r_end = residual_at_ends[point.end[j]]
        norm_a = float(np.linalg.norm(point.a[j].numpy()))
        value = float(point.a[j].numpy() @ r_end)
        if norm_a > ZERO_TOL * s_y and abs(value) > SLIVER_TOL * norm_a * s_y:
            sliver[j] = (1.0 - point.leak) * value * abs(float(point.w[j, 0])) / (2.0 * length)
        elif norm_a <= ZERO_TOL * s_y and np.linalg.norm(r_end) > SLIVER_TOL * s_y:
            third_order[j] = True
    return sliver, third_order


def _piece_hessian(point: _Point) -> np.ndarray:
    """Hessian (P, P) of ``P`` on the piece where boundary neurons keep their branch."""
    width, k = point.a.shape

    def loss_of(theta: torch.Tensor) -> torch.Tensor:
        return point.loss(theta[: 2 * width].reshape(width, 2), theta[2 * width :].reshape(width, k), on_piece=True)

    theta = torch.cat([point.w.reshape(-1), point.a.reshape(-1)])
    hessian: np.ndarray = torch.func.hessian(loss_of)(theta).numpy()
    return hessian


def _inward(point: _Point, neuron: int) -> np.ndarray:
    """A bias change (m, 2) that moves the breakpoint of a boundary neuron into the interval."""
    dw = np.zeros((point.w.shape[0], 2))
    inward = -1.0 if point.end[neuron] == point.target.high else 1.0  # sign of the breakpoint move dt
    dw[neuron, 1] = -inward * np.sign(float(point.w[neuron, 0]))  # dt = -db / w_j
    return dw


def _verify(
    point: _Point, dw: np.ndarray, da: np.ndarray, *, both_signs: bool = True
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """A local decrease along ``(dw, da)``: the witness at the top of the decreasing run of steps; None if none.

    The loss is evaluated along the whole ladder ``STEPS`` (largest first). The smallest step whose decrease
    exceeds the rounding floor marks where rounding stops dominating; the decrease must hold there and at
    least ``MIN_QUALIFYING - 1`` consecutive larger steps (:mod:`pipeline.stationary.local_descent`), and
    the witness is the largest step of that run, so a decrease found only after a jump at a large step
    (across another neuron's breakpoint) never counts.
    """
    s_x, s_y = _scales(point.target)
    natural = np.sqrt(s_y / s_x)  # parameter size of a network of output scale s_y
    size = max(float(np.sqrt(np.square(point.w.numpy()).sum() + np.square(point.a.numpy()).sum())), natural)
    norm = float(np.sqrt(np.square(dw).sum() + np.square(da).sum()))
    base = float(point.loss(point.w, point.a))
    floor = ROUNDING_FACTOR * np.finfo(float).eps * max(base, np.finfo(float).tiny)
    for sign in (1.0, -1.0) if both_signs else (1.0,):
        steps = sign * STEPS * size / norm
        shifted = ((point.w + torch.as_tensor(t * dw), point.a + torch.as_tensor(t * da)) for t in steps)
        decrease = np.array([base - float(point.loss(w, a)) for w, a in shifted])
        above = np.flatnonzero(decrease > floor)
        if above.size == 0:
            continue
        bottom = int(above.max())
        top = bottom
        while top > 0 and decrease[top - 1] > floor:
            top -= 1
        if bottom - top + 1 >= MIN_QUALIFYING:
            return steps[top] * dw, steps[top] * da, float(decrease[top])
    return None


def _mechanism_bit(name: str) -> int:
    return 1 << labels.code(labels.MECHANISM, name)


def _roles(point: _Point) -> np.ndarray:
    """``ROLE`` codes per neuron."""
    zero_output = np.linalg.norm(point.a.numpy(), axis=1) == 0
    touching = point.dead & point.boundary
    names = np.select(
        [point.zero & zero_output, point.zero, touching, point.dead, zero_output, point.kinked | point.boundary],
        ["zero", "zero_input", "dead_touching", "dead", "zero_output", "active_kinked"],
        "active_smooth",
    )
    return np.array([labels.code(labels.ROLE, name) for name in names], dtype=np.int8)


_IS_LOCAL_MIN = {"global_min": "true", "spurious_local_min": "true", "saddle": "false", "not_stationary": "false"}


def _store(record: dict[str, np.ndarray], run: int, point: _Point, verdict: _Verdict) -> None:
    """Write one run's verdict into the batch record."""
    record["w"][run] = point.w.numpy()
    record["loss"][run] = point.value
    record["first_order_gap"][run] = point.gap
    record["stationarity"][run] = labels.code(labels.STATIONARITY, verdict.stationarity)
    record["point_type"][run] = labels.code(labels.POINT_TYPE, verdict.point_type)
    record["is_local_min"][run] = labels.code(labels.IS_LOCAL_MIN, _IS_LOCAL_MIN.get(verdict.point_type, "unknown"))
    record["certificate"][run] = labels.code(labels.CERTIFICATE, verdict.certificate)
    record["strictness"][run] = labels.code(labels.STRICTNESS, verdict.strictness)
    record["mechanisms"][run] = verdict.mechanisms
    record["differentiable"][run] = not np.any(point.zero & (np.linalg.norm(point.a.numpy(), axis=1) > 0))
    record["kink"][run] = point.kinked | point.boundary
    record["roles"][run] = _roles(point)
    record["curvature"][run] = verdict.curvature
    if verdict.escape is not None:
        record["escape"][run] = verdict.escape
    if verdict.witness is not None:
        dw, da, decrease = verdict.witness
        record["witness_w"][run], record["witness_a"][run] = dw, da
        record["has_witness"][run] = True
        record["witness_decrease"][run] = decrease
