"""Closed-form Gaussian kernel integrals of ReLU-like units, and the population loss and gradients built on them.

For standard Gaussian inputs ``x ~ N(0, I_d)`` and ``rho(z) = max(z, leak * z)``:

    K(u, q) = E[rho(u . x) rho(q . x)] = leak u . q + (1 - leak)^2 kappa(u, q),
    kappa(u, q) = |u| |q| / (2 pi) (sin theta + (pi - theta) cos theta)      (arc-cosine kernel, theta = angle(u, q)).

:func:`loss_and_gradients` evaluates the population loss ``F`` of :mod:`pipeline.losses.population` and its gradients
from these kernels in one pass. Every function is written in torch, takes device and dtype from its inputs and
broadcasts over leading axes.

Numerics
--------
* ``theta = atan2(sqrt(max(|u|^2 |q|^2 - (u . q)^2, 0)), u . q)``. Squared norms and inner products are read
  from one Gram matrix, so a neuron paired with itself gives exactly ``theta = 0``.
* (Anti)parallel pairs, ``sin^2 theta <= 64 eps``: the kernel is evaluated by its limit ``kappa = u.q / 2``
  (parallel) or ``0`` (antiparallel). Both sides of the ``torch.where`` are fed safe arguments, so autograd (first
  and second order, ``torch.func.hessian`` included) is finite there and returns the limits of the general formula
  (``kappa`` is C^2 at nonzero (anti)parallel pairs: its Hessian ``|q| sin theta / (2 pi |u|) (I - u^ u^T + n n^T)``
  tends to 0). Inside this band the value is exact to ``O(theta^3)`` and the gradient to ``O(theta^2)``.
* Zero vector ``u = 0`` (or ``q = 0``): ``kappa = 0``, by the antiparallel/zero branch (the gradient convention
  there is stated in :mod:`pipeline.losses.population`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

__all__ = [
    "StudentPairs",
    "arccos_kernel",
    "kappa_from_gram",
    "kernel",
    "loss_and_gradients",
    "nonnegative",
    "parallel_band",
    "self_kernel",
    "student_pairs",
    "teacher_loss_term",
]

_TWO_PI = 2.0 * math.pi


def parallel_band(dtype: torch.dtype) -> float:
    """``sin^2 theta`` below which a pair is evaluated by its (anti)parallel limit."""
    return 64.0 * torch.finfo(dtype).eps


def kappa_from_gram(c: torch.Tensor, nu: torch.Tensor, nq: torch.Tensor) -> torch.Tensor:
    """Arc-cosine kernel from ``c = u . q``, ``nu = |u|^2``, ``nq = |q|^2`` (broadcast); autograd-safe.

    General branch ``(s + (pi - theta) c) / (2 pi)`` with ``s = |u||q| sin theta``; limit branch ``max(c, 0) / 2``
    for (anti)parallel pairs and zero vectors (``c > 0``: ``theta = 0``; otherwise ``theta = pi`` or a zero vector).
    """
    p = nu * nq
    s2 = p - c * c
    limit = s2 <= parallel_band(c.dtype) * p
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
    return kappa_from_gram(c, nu, nq)


def kernel(u: torch.Tensor, q: torch.Tensor, leak: float) -> torch.Tensor:
    """``K(u_i, q_j) = E[rho(u_i . x) rho(q_j . x)] = leak u_i . q_j + (1 - leak)^2 kappa(u_i, q_j)``, (..., m, n)."""
    c = torch.matmul(u, q.transpose(-1, -2))
    nu = u.square().sum(-1).unsqueeze(-1)
    nq = q.square().sum(-1).unsqueeze(-2)
    return leak * c + (1.0 - leak) ** 2 * kappa_from_gram(c, nu, nq)


def self_kernel(u: torch.Tensor, leak: float) -> torch.Tensor:
    """``K(u_i, u_j)`` with norms read from the Gram diagonal (exact ``theta = 0`` on the diagonal), (..., m, m)."""
    gram = torch.matmul(u, u.transpose(-1, -2))
    sq = torch.diagonal(gram, dim1=-2, dim2=-1)
    return leak * gram + (1.0 - leak) ** 2 * kappa_from_gram(gram, sq.unsqueeze(-1), sq.unsqueeze(-2))


def teacher_loss_term(v: torch.Tensor, b: torch.Tensor, leak: float) -> torch.Tensor:
    """``1/2 sum_{j,j'} (b_j . b_j') K(v_j, v_j')``, shape (R or 1,)."""
    return 0.5 * (torch.matmul(b, b.transpose(-1, -2)) * self_kernel(v, leak)).sum(dim=(-2, -1))


def nonnegative(loss: torch.Tensor) -> torch.Tensor:
    """``F`` with its value floored at zero and its derivatives (autograd, any order) those of the closed form.

    The closed form is a difference of terms as large as the teacher term and comes out below zero by rounding
    (a few ``eps`` times that term) at a global minimum; zero is the admissible value nearest to it. Only the
    value is floored (``F + (max(F, 0) - F)`` with the correction detached), so Hessians at a global minimum
    stay those of the closed form.
    """
    return loss + (torch.clamp(loss, min=0.0) - loss).detach()


class StudentPairs(NamedTuple):
    """Every (student, partner) pair of a batch, partners ``U = [W; V]`` (the students, then the teacher).

    Attributes
    ----------
    partners : (R, m + t, d)
        ``U``.
    coupling : (R, m, m + t)
        ``C = [A A^T, -A B^T]``: ``F = 1/2 sum_{i,q} C_iq K(w_i, u_q) + const``.
    inner : (R, m, m + t)
        ``w_i . u_q``.
    student_sq, partner_sq : (R, m), (R, m + t)
        ``|w_i|^2`` (read from the Gram diagonal, so that ``theta_ii = 0`` exactly) and ``|u_q|^2``.
    """

    partners: torch.Tensor
    coupling: torch.Tensor
    inner: torch.Tensor
    student_sq: torch.Tensor
    partner_sq: torch.Tensor


def student_pairs(w: torch.Tensor, a: torch.Tensor, v: torch.Tensor, b: torch.Tensor) -> StudentPairs:
    """The pair quantities of the loss, its gradient and its Hessian (:mod:`pipeline.losses.population_hessian`)."""
    n_runs, m = w.shape[:2]
    partners = torch.cat([w, v.expand(n_runs, *v.shape[1:])], dim=1)
    coupling = torch.cat([torch.matmul(a, a.transpose(-1, -2)), -torch.matmul(a, b.transpose(-1, -2))], dim=-1)
    inner = torch.matmul(w, partners.transpose(-1, -2))
    student_sq = torch.diagonal(inner[..., :m], dim1=-2, dim2=-1)
    partner_sq = torch.cat([student_sq, v.square().sum(-1).expand(n_runs, -1)], dim=1)
    return StudentPairs(partners, coupling, inner, student_sq, partner_sq)


def loss_and_gradients(
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
    n_runs, m = w.shape[:2]
    partners, coupling, c, nw, nq = student_pairs(w, a, v, b)
    p = nw.unsqueeze(-1) * nq.unsqueeze(-2)
    s = torch.sqrt(torch.clamp(p - c * c, min=0.0))
    theta = torch.where(p > 0, torch.atan2(s, c), torch.full_like(c, math.pi))
    kappa = kappa_from_gram(c, nw.unsqueeze(-1), nq.unsqueeze(-2))
    k_all = leak * c + (1.0 - leak) ** 2 * kappa
    # F = 1/2 sum C_ii' K_ii' (students) + sum C_ij K_ij (teacher couplings carry the minus sign) + teacher term
    loss = 0.5 * (coupling[..., :m] * k_all[..., :m]).sum(dim=(-2, -1))
    loss = nonnegative(loss + (coupling[..., m:] * k_all[..., m:]).sum(dim=(-2, -1)) + teacher_term)
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
