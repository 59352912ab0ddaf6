"""Population (infinite-data) loss of one-hidden-layer ReLU-like networks for standard Gaussian inputs.

Teacher-student setting of theory.md section 11.1 (Safran & Shamir 2018), extended to leaky ReLU and vector
outputs: inputs ``x ~ N(0, I_d)``, student ``f(x) = sum_i a_i rho(w_i . x)``, teacher ``g(x) = sum_j b_j rho(v_j . x)``,
``rho(z) = max(z, leak * z)`` and

    F = 1/2 E ||f(x) - g(x)||^2
      = 1/2 [ sum_{i,i'} (a_i . a_i') K(w_i, w_i') - 2 sum_{i,j} (a_i . b_j) K(w_i, v_j)
              + sum_{j,j'} (b_j . b_j') K(v_j, v_j') ],

    K(u, q) = E[rho(u . x) rho(q . x)] = leak u . q + (1 - leak)^2 kappa(u, q)

with ``kappa`` the arc-cosine kernel; the kernels, their numerics and the closed-form gradients are in
:mod:`pipeline.losses.population_kernels`.

Shapes (leading run axis ``R`` everywhere, as in :mod:`pipeline.losses.nets`):

============  ===============  ==============================
name          shape            meaning
============  ===============  ==============================
``w``         (R, m, d)        student input weights
``a``         (R, m, k)        student output weights
``v``         (R or 1, t, d)   teacher input weights
``b``         (R or 1, t, k)   teacher output weights
============  ===============  ==============================

Every function is written in torch and takes device and dtype from its inputs.

Gradient convention at zero neurons
-----------------------------------
Zero vector ``u = 0`` (or ``q = 0``): ``kappa = 0``. ``kappa(., q)`` is convex, 1-homogeneous and minimal at
``0``, hence not differentiable there; the **convention** is ``grad_u kappa(0, q) = 0``: the limit of the
closed-form gradient as ``u -> 0`` from the direction ``-q`` (``theta -> pi``), the minimum-norm subgradient of
``kappa(., q)`` at 0, and ``E[relu'(u . x) x relu(q . x)]`` with ``relu'(0) = 0``. Autograd of
:func:`population_loss` returns the same value (the antiparallel/zero branch). The linear part ``leak u . q``
keeps its gradient ``leak q``. Consequence: a zero student neuron ``w_i = 0`` receives
``grad_w_i F = leak (sum_i' (a_i . a_i') w_i' - sum_j (a_i . b_j) v_j)``; for ReLU it is 0 and gradient descent
never moves a zero neuron's input weights (as with the empirical convention of :mod:`pipeline.losses.nets`). For
``leak > 0`` the empirical convention ``rho'(0) = leak`` of :mod:`pipeline.losses.nets` would give ``(1 + leak) / 2``
times this vector instead; that value is not a limit of gradients nor a subgradient of ``K(., q)``, so it is not
used here. The exact one-sided derivative at such points is :func:`directional_derivative`.

Regularity (see :func:`regularity`): ``F`` is real-analytic wherever every student neuron is nonzero and no pair
of neurons (student-student or student-teacher) is parallel or antiparallel. At nonzero (anti)parallel pairs it is
still C^2 (the Hessian is continuous and Lipschitz, but not differentiable: not C^3). At ``w_i = 0`` it is
generally not differentiable (the one-sided derivative along ``u`` contains ``sum_q c_iq kappa(u, q)``), and never
C^2 in a neighbourhood unless neuron ``i`` is decoupled. (theory.md 11.1 says "C^1 but not C^2 where two neurons are
parallel or ``w_i = 0``"; the computation above and the tests of this module show C^2 at nonzero parallel pairs.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.losses import nets
from pipeline.losses.population_hessian import population_hessian_batch
from pipeline.losses.population_kernels import (
    kappa_from_gram,
    kernel,
    loss_and_gradients,
    nonnegative,
    self_kernel,
    teacher_loss_term,
)

__all__ = [
    "LOSS",
    "PopulationPoint",
    "PopulationWorkspace",
    "Regularity",
    "directional_derivative",
    "population_gradients",
    "population_hessian",
    "population_loss",
    "population_point",
    "regularity",
]

LOSS = "F = 1/2 E_{x ~ N(0, I_d)} ||f(x) - g(x)||^2 (g the teacher)"
"""The population loss of Gaussian inputs, as the store describes it."""


def population_loss(w: torch.Tensor, a: torch.Tensor, v: torch.Tensor, b: torch.Tensor, leak: float) -> torch.Tensor:
    """Population loss ``F = 1/2 E||f(x) - g(x)||^2``, ``x ~ N(0, I_d)``, shape (R,) (any leading axes broadcast).

    Differentiable by autograd everywhere with finite results, including exactly (anti)parallel neurons and zero
    neurons (see the module docstring for the value taken at ``w_i = 0``).
    """
    k_ww = self_kernel(w, leak)
    k_wv = kernel(w, v, leak)
    student = 0.5 * (torch.matmul(a, a.transpose(-1, -2)) * k_ww).sum(dim=(-2, -1))
    cross = (torch.matmul(a, b.transpose(-1, -2)) * k_wv).sum(dim=(-2, -1))
    return nonnegative(student - cross + teacher_loss_term(v, b, leak))


def population_gradients(
    w: torch.Tensor,
    a: torch.Tensor,
    v: torch.Tensor,
    b: torch.Tensor,
    leak: float,
    *,
    train_output: bool = True,
) -> nets.Gradients:
    """Closed-form loss and gradients (one evaluation); see :class:`PopulationWorkspace`."""
    return PopulationWorkspace(v, b, w.shape[0], w.shape[1], leak, train_output=train_output)(w, a)


class PopulationWorkspace:
    """Drop-in replacement of :class:`pipeline.losses.nets.GradientWorkspace` for the population loss.

    ``workspace(w, a)`` returns :class:`pipeline.losses.nets.Gradients` with ``loss`` (R,) = ``F``,
    ``grad_w`` (R, m, d), ``grad_a`` (R, m, k) (zeros when ``train_output`` is False) and ``residual`` an
    **empty** tensor of shape (R, 0, k): there are no samples (the residual is a function of ``x``). Consumers
    that read residuals (the empirical stationary-point classifier) must use the population quantities of this
    module instead.

    Parameters
    ----------
    v, b
        Teacher input (R or 1, t, d) and output (R or 1, t, k) weights; a leading 1 is shared by all runs.
    n_runs, width
        ``R`` and ``m`` (checked at each call).
    leak
        Negative slope of the activation, in [0, 1).
    train_output
        If False, ``grad_a`` is zero.
    """

    def __init__(
        self, v: torch.Tensor, b: torch.Tensor, n_runs: int, width: int, leak: float, *, train_output: bool = True
    ) -> None:
        if v.ndim != 3 or b.ndim != 3 or v.shape[:2] != b.shape[:2] or v.shape[0] not in (1, n_runs):
            raise ValueError(
                f"teacher v {tuple(v.shape)} and b {tuple(b.shape)} must be (R or 1, t, d) and (R or 1, t, k)"
                f" with the same leading sizes; R = {n_runs}"
            )
        if not 0.0 <= leak < 1.0:
            raise ValueError(f"leak must be in [0, 1); got {leak}")
        self.v = v
        self.b = b
        self.n_runs = n_runs
        self.width = width
        self.leak = leak
        self.train_output = train_output
        self.teacher_term = teacher_loss_term(v, b, leak).expand(n_runs)
        self._residual = torch.empty(n_runs, 0, b.shape[-1], dtype=v.dtype, device=v.device)

    def __call__(self, w: torch.Tensor, a: torch.Tensor) -> nets.Gradients:
        """Population loss and closed-form gradients at ``w`` (R, m, d), ``a`` (R, m, k)."""
        if w.shape[:2] != (self.n_runs, self.width) or a.shape[:2] != (self.n_runs, self.width):
            raise ValueError(f"w {tuple(w.shape)} and a {tuple(a.shape)} must be (R={self.n_runs}, m={self.width}, .)")
        loss, grad_w, grad_a = loss_and_gradients(w, a, self.v, self.b, self.leak, self.teacher_term, self.train_output)
        return nets.Gradients(loss=loss, residual=self._residual, grad_w=grad_w, grad_a=grad_a)


def directional_derivative(
    w: torch.Tensor,
    a: torch.Tensor,
    v: torch.Tensor,
    b: torch.Tensor,
    leak: float,
    dw: torch.Tensor,
    da: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact one-sided derivative ``F'(theta; Delta) = lim_{t -> 0+} (F(theta + t Delta) - F(theta)) / t``, (R,).

    Equal to ``grad . Delta`` at nonzero neurons (F is C^1 there); for a zero neuron ``w_i = 0`` its input-weight
    part is ``leak (C U)_i . dw_i + (1 - leak)^2 sum_q C_iq kappa(dw_i, u_q)`` (positively homogeneous, in general
    not linear in ``dw_i``), with ``U``, ``C`` as in the closed-form gradient. ``da`` None means no output change.
    """
    _, grad_w, grad_a = loss_and_gradients(w, a, v, b, leak, teacher_loss_term(v, b, leak), True)
    n_runs, m = w.shape[:2]
    partners = torch.cat([w, v.expand(n_runs, *v.shape[1:])], dim=1)
    coupling = torch.cat([torch.matmul(a, a.transpose(-1, -2)), -torch.matmul(a, b.transpose(-1, -2))], dim=-1)
    # kappa(dw_i, u_q) for every i, q: (R, m, m + t)
    kappa = kappa_from_gram(
        torch.einsum("rid,rqd->riq", dw, partners),
        dw.square().sum(-1).unsqueeze(-1),
        partners.square().sum(-1).unsqueeze(-2),
    )
    zero_part = (grad_w * dw).sum(-1) + (1.0 - leak) ** 2 * (coupling * kappa).sum(-1)  # grad_w = leak C U at w_i = 0
    is_zero = w.square().sum(-1) == 0
    per_neuron = torch.where(is_zero, zero_part, (grad_w * dw).sum(-1))
    total = per_neuron.sum(-1)
    if da is not None:
        total = total + (grad_a * da).sum(dim=(-2, -1))
    return total


@dataclass(frozen=True)
class Regularity:
    """Where the population loss is smooth (batched flags; see :func:`regularity`).

    Attributes
    ----------
    zero_neuron : (R, m) bool
        ``|w_i| <= zero_tol * scale``.
    parallel_students : (R, m, m) bool
        Distinct nonzero student neurons with ``|sin angle| <= angle_tol`` (parallel or antiparallel).
    parallel_teacher : (R, m, t) bool
        Nonzero student neuron (anti)parallel to a nonzero teacher neuron.
    differentiable : (R,) bool
        ``F`` is differentiable at the point (exact criterion at zero neurons, see :func:`regularity`).
    twice_differentiable : (R,) bool
        No zero student neuron: ``F`` is C^2 near the point, and the Hessian of :func:`population_hessian` is
        the true Hessian (at (anti)parallel pairs it is the continuous limit).
    smooth : (R,) bool
        Additionally no (anti)parallel pair: ``F`` is real-analytic near the point (C^3 and higher).
    """

    zero_neuron: torch.Tensor
    parallel_students: torch.Tensor
    parallel_teacher: torch.Tensor
    differentiable: torch.Tensor
    twice_differentiable: torch.Tensor
    smooth: torch.Tensor


def regularity(
    w: torch.Tensor,
    a: torch.Tensor,
    v: torch.Tensor,
    b: torch.Tensor,
    *,
    angle_tol: float = 1e-6,
    zero_tol: float = 0.0,
    coupling_tol: float = 1e-9,
) -> Regularity:
    """Classify each point as smooth / C^2 / differentiable / nondifferentiable.

    * ``smooth`` False where a student neuron is zero or two neurons (student-student, student-teacher) are
      parallel or antiparallel (``|sin angle| <= angle_tol``).
    * ``twice_differentiable`` False where a student neuron is zero (``|w_i| <= zero_tol * scale``, ``scale`` the
      largest student or teacher input-weight norm; default: exact zeros only).
    * ``differentiable`` False where a zero neuron ``i`` has a nonlinear one-sided derivative. Since
      ``kappa(u, q) - kappa(-u, q) = u . q / 2`` is linear and the even parts ``E|u . x| |q^ . x|`` of different lines
      ``+-q^`` are linearly independent, ``F`` is differentiable in ``w_i`` iff for every line through the origin
      the couplings sum to zero: ``sum_{q on the line} C_iq |q| = 0`` (relative tolerance ``coupling_tol``).
      A zero neuron with ``a_i = 0`` is always differentiable. ``F`` is always differentiable in ``a``.
    """
    n_runs, m = w.shape[:2]
    partners = torch.cat([w, v.expand(n_runs, *v.shape[1:])], dim=1)  # (R, m + t, d)
    coupling = torch.cat([torch.matmul(a, a.transpose(-1, -2)), -torch.matmul(a, b.transpose(-1, -2))], dim=-1)
    gram = torch.matmul(partners, partners.transpose(-1, -2))
    sq = torch.diagonal(gram, dim1=-2, dim2=-1)
    norm = torch.sqrt(sq)
    scale = norm.amax(dim=-1, keepdim=True)
    nonzero = sq > 0 if zero_tol == 0.0 else norm > zero_tol * scale
    p = sq.unsqueeze(-1) * sq.unsqueeze(-2)
    same_line = (p - gram * gram) <= angle_tol**2 * p
    same_line = same_line & nonzero.unsqueeze(-1) & nonzero.unsqueeze(-2)
    eye = torch.eye(partners.shape[1], dtype=torch.bool, device=w.device)
    off_diag = same_line & ~eye
    parallel_students = off_diag[:, :m, :m]
    parallel_teacher = off_diag[:, :m, m:]
    zero_neuron = ~nonzero[:, :m]
    # line sums sum_{q' on the line of q} C_iq' |q'| for every zero neuron i and partner q
    weighted = coupling * (norm * nonzero).unsqueeze(-2)  # (R, m, m + t)
    line_sums = torch.matmul(weighted, same_line.to(weighted.dtype).transpose(-1, -2))
    bound = coupling_tol * weighted.abs().sum(-1, keepdim=True)
    linear = (line_sums.abs() <= bound).all(dim=-1)  # (R, m)
    differentiable = (linear | ~zero_neuron).all(dim=-1)
    twice = ~zero_neuron.any(dim=-1)
    smooth = twice & ~parallel_students.any(dim=(-2, -1)) & ~parallel_teacher.any(dim=(-2, -1))
    return Regularity(
        zero_neuron=zero_neuron,
        parallel_students=parallel_students,
        parallel_teacher=parallel_teacher,
        differentiable=differentiable,
        twice_differentiable=twice,
        smooth=smooth,
    )


def population_hessian(
    w: torch.Tensor,
    a: torch.Tensor,
    v: torch.Tensor,
    b: torch.Tensor,
    leak: float,
    *,
    train_output: bool = True,
) -> torch.Tensor:
    """Hessian of ``F`` for one run in closed form: ``w`` (m, d), ``a`` (m, k), ``v`` (t, d), ``b`` (t, k).

    Parameters are ordered ``[w.flatten(), a.flatten()]`` (row-major; ``a`` omitted when ``train_output`` is
    False), so the result is (P, P) with ``P = m d (+ m k)``. Finite everywhere; the true Hessian where
    :func:`regularity` reports ``twice_differentiable`` (at zero neurons the true Hessian does not exist and the
    value returned is that of the convention branch, as autograd of :func:`population_loss` gives it). One run of
    :func:`pipeline.losses.population_hessian.population_hessian_batch`.
    """
    return population_hessian_batch(w[None], a[None], v[None], b[None], leak, train_output=train_output)[0]


@dataclass(frozen=True)
class PopulationPoint:
    """Population quantities of one run for the classifier (theory 8.2 step 7, 11.1).

    Attributes
    ----------
    loss : ()
        ``F``.
    grad_w, grad_a : (m, d), (m, k)
        Per-neuron gradients ``dF/dw_i`` (population ``p_i``) and ``dF/da_i`` (population ``G_i``); ``grad_a`` is
        zero when the output layer is fixed.
    hessian : (P, P)
        :func:`population_hessian` (ordering ``[w.flatten(), a.flatten()]``).
    regularity : Regularity
        Flags with a run axis of size 1.
    smooth, twice_differentiable, differentiable : bool
        The run's flags as Python booleans.
    """

    loss: torch.Tensor
    grad_w: torch.Tensor
    grad_a: torch.Tensor
    hessian: torch.Tensor
    regularity: Regularity
    smooth: bool
    twice_differentiable: bool
    differentiable: bool


def population_point(
    w: torch.Tensor,
    a: torch.Tensor,
    v: torch.Tensor,
    b: torch.Tensor,
    leak: float,
    *,
    train_output: bool = True,
    angle_tol: float = 1e-6,
    zero_tol: float = 0.0,
) -> PopulationPoint:
    """Loss, per-neuron gradients, Hessian and regularity flags of one run (unbatched 2-D inputs)."""
    grads = population_gradients(w[None], a[None], v[None], b[None], leak, train_output=train_output)
    flags = regularity(w[None], a[None], v[None], b[None], angle_tol=angle_tol, zero_tol=zero_tol)
    return PopulationPoint(
        loss=grads.loss[0],
        grad_w=grads.grad_w[0],
        grad_a=grads.grad_a[0],
        hessian=population_hessian(w, a, v, b, leak, train_output=train_output),
        regularity=flags,
        smooth=bool(flags.smooth[0]),
        twice_differentiable=bool(flags.twice_differentiable[0]),
        differentiable=bool(flags.differentiable[0]),
    )
