"""Population (infinite-data) loss of one-hidden-layer ReLU-like networks for standard Gaussian inputs.

Teacher-student setting of theory.md section 11.1 (Safran & Shamir 2018), extended to leaky ReLU and vector
outputs: inputs ``x ~ N(0, I_d)``, student ``f(x) = sum_i a_i rho(w_i . x)``, teacher ``g(x) = sum_j b_j rho(v_j . x)``,
``rho(z) = max(z, leak * z)`` and

    F = 1/2 E ||f(x) - g(x)||^2
      = 1/2 [ sum_{i,i'} (a_i . a_i') K(w_i, w_i') - 2 sum_{i,j} (a_i . b_j) K(w_i, v_j)
              + sum_{j,j'} (b_j . b_j') K(v_j, v_j') ],

    K(u, q) = E[rho(u . x) rho(q . x)] = leak u . q + (1 - leak)^2 kappa(u, q),
    kappa(u, q) = |u| |q| / (2 pi) (sin theta + (pi - theta) cos theta)      (arc-cosine kernel, theta = angle(u, q)).

Shapes (leading run axis ``R`` everywhere, as in :mod:`pipeline.nets`):

============  ===============  ==============================
name          shape            meaning
============  ===============  ==============================
``w``         (R, m, d)        student input weights
``a``         (R, m, k)        student output weights
``v``         (R or 1, t, d)   teacher input weights
``b``         (R or 1, t, k)   teacher output weights
============  ===============  ==============================

Every function is written in torch and takes device and dtype from its inputs.

Numerics
--------
* ``theta = atan2(sqrt(max(|u|^2 |q|^2 - (u . q)^2, 0)), u . q)``. Squared norms and inner products are read
  from one Gram matrix, so a neuron paired with itself gives exactly ``theta = 0``.
* (Anti)parallel pairs, ``sin^2 theta <= 64 eps``: the kernel is evaluated by its limit ``kappa = u.q / 2``
  (parallel) or ``0`` (antiparallel). Both sides of the ``torch.where`` are fed safe arguments, so autograd (first
  and second order, ``torch.func.hessian`` included) is finite there and returns the limits of the general formula
  (``kappa`` is C^2 at nonzero (anti)parallel pairs: its Hessian ``|q| sin theta / (2 pi |u|) (I - u^ u^T + n n^T)``
  tends to 0). Inside this band the value is exact to ``O(theta^3)`` and the gradient to ``O(theta^2)``.
* Zero vector ``u = 0`` (or ``q = 0``): ``kappa = 0``. ``kappa(., q)`` is convex, 1-homogeneous and minimal at
  ``0``, hence not differentiable there; the **convention** is ``grad_u kappa(0, q) = 0``: the limit of the
  closed-form gradient as ``u -> 0`` from the direction ``-q`` (``theta -> pi``), the minimum-norm subgradient of
  ``kappa(., q)`` at 0, and ``E[relu'(u . x) x relu(q . x)]`` with ``relu'(0) = 0``. Autograd of
  :func:`population_loss` returns the same value (the antiparallel/zero branch). The linear part ``leak u . q``
  keeps its gradient ``leak q``. Consequence: a zero student neuron ``w_i = 0`` receives
  ``grad_w_i F = leak (sum_i' (a_i . a_i') w_i' - sum_j (a_i . b_j) v_j)``; for ReLU it is 0 and gradient descent
  never moves a zero neuron's input weights (as with the empirical convention of :mod:`pipeline.nets`). For
  ``leak > 0`` the empirical convention ``rho'(0) = leak`` of :mod:`pipeline.nets` would give ``(1 + leak) / 2``
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

import math
from dataclasses import dataclass

import torch

from pipeline import nets

__all__ = [
    "LOSS",
    "PopulationPoint",
    "PopulationWorkspace",
    "Regularity",
    "arccos_kernel",
    "directional_derivative",
    "kernel",
    "population_gradients",
    "population_hessian",
    "population_loss",
    "population_point",
    "regularity",
]

LOSS = "F = 1/2 E_{x ~ N(0, I_d)} ||f(x) - g(x)||^2 (g the teacher)"
"""The population loss of Gaussian inputs, as the store describes it."""

_TWO_PI = 2.0 * math.pi


def _parallel_band(dtype: torch.dtype) -> float:
    """``sin^2 theta`` below which a pair is evaluated by its (anti)parallel limit."""
    return 64.0 * torch.finfo(dtype).eps


def _kappa_from_gram(c: torch.Tensor, nu: torch.Tensor, nq: torch.Tensor) -> torch.Tensor:
    """Arc-cosine kernel from ``c = u . q``, ``nu = |u|^2``, ``nq = |q|^2`` (broadcast); autograd-safe.

    General branch ``(s + (pi - theta) c) / (2 pi)`` with ``s = |u||q| sin theta``; limit branch ``max(c, 0) / 2``
    for (anti)parallel pairs and zero vectors (``c > 0``: ``theta = 0``; otherwise ``theta = pi`` or a zero vector).
    """
    p = nu * nq
    s2 = p - c * c
    limit = s2 <= _parallel_band(c.dtype) * p
    one = torch.ones((), dtype=c.dtype, device=c.device)
    s = torch.sqrt(torch.where(limit, one, s2))
    theta = torch.atan2(s, torch.where(limit, one, c))
    general = (s + (math.pi - theta) * c) / _TWO_PI
    parallel = torch.where(c > 0, 0.5 * c, torch.zeros_like(c))
    return torch.where(limit, parallel, general)


def arccos_kernel(u: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``kappa(u_i, q_j) = E[relu(u_i . x) relu(q_j . x)]`` for ``u`` (..., m, d), ``q`` (..., n, d); (..., m, n)."""
    c = torch.matmul(u, q.transpose(-1, -2))
    nu = u.square().sum(-1).unsqueeze(-1)
    nq = q.square().sum(-1).unsqueeze(-2)
    return _kappa_from_gram(c, nu, nq)


def kernel(u: torch.Tensor, q: torch.Tensor, leak: float) -> torch.Tensor:
    """``K(u_i, q_j) = E[rho(u_i . x) rho(q_j . x)] = leak u_i . q_j + (1 - leak)^2 kappa(u_i, q_j)``, (..., m, n)."""
    c = torch.matmul(u, q.transpose(-1, -2))
    nu = u.square().sum(-1).unsqueeze(-1)
    nq = q.square().sum(-1).unsqueeze(-2)
    return leak * c + (1.0 - leak) ** 2 * _kappa_from_gram(c, nu, nq)


def _self_kernel(u: torch.Tensor, leak: float) -> torch.Tensor:
    """``K(u_i, u_j)`` with norms read from the Gram diagonal (exact ``theta = 0`` on the diagonal), (..., m, m)."""
    gram = torch.matmul(u, u.transpose(-1, -2))
    sq = torch.diagonal(gram, dim1=-2, dim2=-1)
    return leak * gram + (1.0 - leak) ** 2 * _kappa_from_gram(gram, sq.unsqueeze(-1), sq.unsqueeze(-2))


def _teacher_term(v: torch.Tensor, b: torch.Tensor, leak: float) -> torch.Tensor:
    """``1/2 sum_{j,j'} (b_j . b_j') K(v_j, v_j')``, shape (R or 1,)."""
    return 0.5 * (torch.matmul(b, b.transpose(-1, -2)) * _self_kernel(v, leak)).sum(dim=(-2, -1))


def population_loss(w: torch.Tensor, a: torch.Tensor, v: torch.Tensor, b: torch.Tensor, leak: float) -> torch.Tensor:
    """Population loss ``F = 1/2 E||f(x) - g(x)||^2``, ``x ~ N(0, I_d)``, shape (R,) (any leading axes broadcast).

    Differentiable by autograd everywhere with finite results, including exactly (anti)parallel neurons and zero
    neurons (see the module docstring for the value taken at ``w_i = 0``).
    """
    k_ww = _self_kernel(w, leak)
    k_wv = kernel(w, v, leak)
    student = 0.5 * (torch.matmul(a, a.transpose(-1, -2)) * k_ww).sum(dim=(-2, -1))
    cross = (torch.matmul(a, b.transpose(-1, -2)) * k_wv).sum(dim=(-2, -1))
    return _nonnegative(student - cross + _teacher_term(v, b, leak))


def _nonnegative(loss: torch.Tensor) -> torch.Tensor:
    """``F`` with its value floored at zero and its derivatives (autograd, any order) those of the closed form.

    The closed form is a difference of terms as large as the teacher term and comes out below zero by rounding
    (a few ``eps`` times that term) at a global minimum; zero is the admissible value nearest to it. Only the
    value is floored (``F + (max(F, 0) - F)`` with the correction detached), so Hessians at a global minimum
    stay those of the closed form.
    """
    return loss + (torch.clamp(loss, min=0.0) - loss).detach()


def _loss_and_gradients(
    w: torch.Tensor,
    a: torch.Tensor,
    v: torch.Tensor,
    b: torch.Tensor,
    leak: float,
    teacher_term: torch.Tensor,
    train_output: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form ``F``, ``grad_w F`` and ``grad_a F`` (zeros when ``train_output`` is False).

    With partners ``U = [W; V]`` (R, m + t, d) and couplings ``C = [A A^T, -A B^T]`` (R, m, m + t),
    ``grad_w_i = sum_q C_iq grad_1 K(w_i, u_q)`` and
    ``grad_1 K(w, u) = leak u + (1 - leak)^2 / (2 pi) ((pi - theta) u + |u| sin theta w / |w|)`` (theory 11.1),
    with ``theta = pi`` (so the bracket is 0) when ``w = 0`` or ``u = 0``.
    """
    n_runs = w.shape[0]
    partners = torch.cat([w, v.expand(n_runs, *v.shape[1:])], dim=1)
    coupling = torch.cat(
        [torch.matmul(a, a.transpose(-1, -2)), -torch.matmul(a, b.transpose(-1, -2))], dim=-1
    )  # (R, m, m + t)
    m = w.shape[1]
    c = torch.matmul(w, partners.transpose(-1, -2))  # (R, m, m + t)
    nw = torch.diagonal(c[..., :m], dim1=-2, dim2=-1)  # (R, m): from the Gram diagonal, so theta_ii = 0 exactly
    nq = torch.cat([nw, v.square().sum(-1).expand(n_runs, -1)], dim=1)  # (R, m + t)
    p = nw.unsqueeze(-1) * nq.unsqueeze(-2)
    s = torch.sqrt(torch.clamp(p - c * c, min=0.0))
    theta = torch.where(p > 0, torch.atan2(s, c), torch.full_like(c, math.pi))
    kappa = _kappa_from_gram(c, nw.unsqueeze(-1), nq.unsqueeze(-2))
    k_all = leak * c + (1.0 - leak) ** 2 * kappa
    # F = 1/2 sum C_ii' K_ii' (students) + sum C_ij K_ij (teacher couplings carry the minus sign) + teacher term
    loss = 0.5 * (coupling[..., :m] * k_all[..., :m]).sum(dim=(-2, -1))
    loss = _nonnegative(loss + (coupling[..., m:] * k_all[..., m:]).sum(dim=(-2, -1)) + teacher_term)
    scale = (1.0 - leak) ** 2 / _TWO_PI
    radial = (coupling * s).sum(-1) / torch.where(nw > 0, nw, torch.ones_like(nw))  # (R, m): sum_q C_iq s_iq / |w_i|^2
    grad_w = torch.matmul(leak * coupling + scale * (math.pi - theta) * coupling, partners)
    grad_w = grad_w + scale * radial.unsqueeze(-1) * w
    if train_output:
        # grad_a_i = sum_i' K(w_i, w_i') a_i' - sum_j K(w_i, v_j) b_j
        grad_a = torch.matmul(k_all[..., :m], a) - torch.matmul(k_all[..., m:], b.expand(n_runs, *b.shape[1:]))
    else:
        grad_a = torch.zeros_like(a)
    return loss, grad_w, grad_a


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
    """Drop-in replacement of :class:`pipeline.nets.GradientWorkspace` for the population loss.

    ``workspace(w, a)`` returns :class:`pipeline.nets.Gradients` with ``loss`` (R,) = ``F``, ``grad_w`` (R, m, d),
    ``grad_a`` (R, m, k) (zeros when ``train_output`` is False) and ``residual`` an **empty** tensor of shape
    (R, 0, k): there are no samples (the residual is a function of ``x``). Consumers that read residuals (the
    empirical stationary-point classifier) must use the population quantities of this module instead.

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
        self.teacher_term = _teacher_term(v, b, leak).expand(n_runs)
        self._residual = torch.empty(n_runs, 0, b.shape[-1], dtype=v.dtype, device=v.device)

    def __call__(self, w: torch.Tensor, a: torch.Tensor) -> nets.Gradients:
        """Population loss and closed-form gradients at ``w`` (R, m, d), ``a`` (R, m, k)."""
        if w.shape[:2] != (self.n_runs, self.width) or a.shape[:2] != (self.n_runs, self.width):
            raise ValueError(f"w {tuple(w.shape)} and a {tuple(a.shape)} must be (R={self.n_runs}, m={self.width}, .)")
        loss, grad_w, grad_a = _loss_and_gradients(
            w, a, self.v, self.b, self.leak, self.teacher_term, self.train_output
        )
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
    _, grad_w, grad_a = _loss_and_gradients(w, a, v, b, leak, _teacher_term(v, b, leak), True)
    n_runs, m = w.shape[:2]
    partners = torch.cat([w, v.expand(n_runs, *v.shape[1:])], dim=1)
    coupling = torch.cat([torch.matmul(a, a.transpose(-1, -2)), -torch.matmul(a, b.transpose(-1, -2))], dim=-1)
    # kappa(dw_i, u_q) for every i, q: (R, m, m + t)
    kappa = _kappa_from_gram(
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
    """Hessian of ``F`` for one run by ``torch.func.hessian``: ``w`` (m, d), ``a`` (m, k), ``v`` (t, d), ``b`` (t, k).

    Parameters are ordered ``[w.flatten(), a.flatten()]`` (row-major; ``a`` omitted when ``train_output`` is
    False), so the result is (P, P) with ``P = m d (+ m k)``. Finite everywhere; the true Hessian where
    :func:`regularity` reports ``twice_differentiable`` (at zero neurons the true Hessian does not exist and the
    value returned is that of the convention branch).
    """
    m, d = w.shape
    k = a.shape[-1]
    n_w = m * d

    def loss_of(theta: torch.Tensor) -> torch.Tensor:
        w_ = theta[:n_w].reshape(m, d)
        a_ = theta[n_w:].reshape(m, k) if train_output else a
        return population_loss(w_[None], a_[None], v[None], b[None], leak)[0]

    theta0 = torch.cat([w.reshape(-1), a.reshape(-1)]) if train_output else w.reshape(-1)
    return torch.func.hessian(loss_of)(theta0)


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
