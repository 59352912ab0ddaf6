"""Closed-form Hessian of the Gaussian population loss, batched over runs.

The loss and its kernels are those of :mod:`pipeline.losses.population` and :mod:`pipeline.losses.population_kernels`:
``F = 1/2 sum_{i,q} C_iq K(w_i, u_q) + const`` with partners ``U = [W; V]`` and couplings
``C = [A A^T, -A B^T]``, ``K(u, q) = leak u . q + (1 - leak)^2 kappa(u, q)``. For a pair at angle
``theta`` (``s = |u| |q| sin theta``), with ``n`` the unit vector orthogonal to ``u`` in the pair's plane pointing
towards ``q`` and ``m`` the one orthogonal to ``q`` pointing towards ``u``,

    d kappa / du        = ((pi - theta) q + s u / |u|^2) / (2 pi),
    d^2 kappa / du^2    = s / (2 pi |u|^2) (I - u^ u^T + n n^T),
    d^2 kappa / du dq   = ((pi - theta) I + u^ n^T + q^ m^T) / (2 pi)       ([alpha, beta] = d/dq_beta (d/du)_alpha),

the last two derived by differentiating the first (``d theta / du = -n / |u|``, ``ds/du = (|q|^2 u - (u.q) q)/s``).
The blocks of the Hessian in the ordering ``[w.flatten(), a.flatten()]`` are then

    d^2 F / dw_i dw_l = delta_il sum_q C_iq d^2K/du^2 (w_i, u_q) + C_il d^2K/du dq (w_i, w_l),
    d^2 F / dw_i da_l = dK/du (w_i, w_l) a_i^T + delta_il sum_q dK/du (w_i, u_q) c_q^T,   c = [A; -B],
    d^2 F / da_i da_l = K(w_i, w_l) I_k.

(The diagonal term uses ``K(w, w) = (leak + (1 - leak)^2 / 2) |w|^2``: its second derivative is the ``q = i``
terms of both sums.) (Anti)parallel pairs and zero vectors take the limits of the branch of
:func:`pipeline.losses.population_kernels.kappa_from_gram` (``d^2 kappa/du^2 = 0``; ``d^2 kappa/du dq = I / 2`` for
``u . q > 0``, else 0), so the result equals the autograd Hessian of :func:`pipeline.losses.population.population_loss`
(``torch.func.hessian``), including the convention at zero neurons; ``tests/test_population_hessian.py`` checks it.

Why not autograd: ``torch.func.hessian`` vectorised over runs costs about 70 gradient evaluations per Hessian at
k = 6 (20 ms against 0.27 ms, README) and dominates the gradient flow on this loss; the closed form is a few
batched outer products of the ``(R, m, m + t, d)`` pair vectors.
"""

from __future__ import annotations

import math

import torch

from pipeline.losses.population_kernels import kappa_from_gram, parallel_band, student_pairs

__all__ = ["population_hessian_batch"]


def population_hessian_batch(
    w: torch.Tensor, a: torch.Tensor, v: torch.Tensor, b: torch.Tensor, leak: float, *, train_output: bool = True
) -> torch.Tensor:
    """Hessian of ``F`` for every run, (R, P, P), ``P = m d (+ m k)``.

    Parameters
    ----------
    w, a
        Student input (R, m, d) and output (R, m, k) weights.
    v, b
        Teacher input (R or 1, t, d) and output (R or 1, t, k) weights.
    leak
        Negative slope in [0, 1).
    train_output
        Whether ``a`` is a parameter (its rows and columns are left out otherwise).
    """
    n_runs, m, d = w.shape
    k = a.shape[-1]
    partners, coupling, c, nw, nq = student_pairs(w, a, v, b)
    p = nw.unsqueeze(-1) * nq.unsqueeze(-2)
    s2 = p - c * c
    limit = s2 <= parallel_band(w.dtype) * p
    s = torch.sqrt(torch.where(limit, torch.ones_like(s2), s2))
    general = ~limit
    # the limit branch's angle: 0 for parallel pairs (u . q > 0), pi for antiparallel pairs and zero vectors
    theta = torch.where(general, torch.atan2(s, c), math.pi * (c <= 0).to(c.dtype))
    scale = (1.0 - leak) ** 2 / (2.0 * math.pi)
    eye = torch.eye(d, dtype=w.dtype, device=w.device)

    safe_nw = torch.where(nw > 0, nw, torch.ones_like(nw)).unsqueeze(-1)  # (R, m, 1)
    w_hat = w / safe_nw.sqrt()
    # n_iq: unit, orthogonal to w_i, towards u_q: |w_i| (u_q - c_iq w_i / |w_i|^2) / s_iq (pairs off the limit)
    n = (partners.unsqueeze(1) - (c / safe_nw).unsqueeze(-1) * w.unsqueeze(2)) * (safe_nw.sqrt() / s).unsqueeze(-1)
    n = torch.where(general.unsqueeze(-1), n, torch.zeros_like(n))  # (R, m, m + t, d)

    # d^2 F / dw_i^2 (block diagonal): sum_q C_iq (1-leak)^2 s_iq / (2 pi |w_i|^2) (I - w^ w^T + n n^T)
    alpha = torch.where(general, coupling * s, torch.zeros_like(s)) / safe_nw  # (R, m, m + t)
    curvature = scale * alpha.sum(-1)  # (R, m)
    diag = curvature[..., None, None] * (eye - w_hat.unsqueeze(-1) * w_hat.unsqueeze(-2))
    diag = diag + scale * torch.einsum("rmq,rmqa,rmqb->rmab", alpha, n, n)

    # C_il d^2K/du dq (w_i, w_l) = C_il ((leak + scale (pi - theta_il)) I + scale (w^_i n_il^T + w^_l n_li^T))
    cs, n_s = c[..., :m], n[:, :, :m]
    mixed_scalar = leak + scale * (math.pi - theta[..., :m])
    w_hat_l = w_hat.unsqueeze(1).expand(-1, m, -1, -1)  # (R, i, l, d): w^_l
    rank_two = torch.einsum("ria,rilb->rialb", w_hat, n_s) + torch.einsum("rila,rlib->rialb", w_hat_l, n_s)
    mixed = scale * rank_two + mixed_scalar[:, :, None, :, None] * eye[None, None, :, None, :]
    h_ww = coupling[:, :, None, :m, None] * mixed  # (R, i, alpha, l, beta)
    idx = torch.arange(m, device=w.device)
    h_ww[:, idx, :, idx, :] += diag.transpose(0, 1)
    h_ww = h_ww.reshape(n_runs, m * d, m * d)
    if not train_output:
        return h_ww

    # dK/du (w_i, u_q) = (leak + scale (pi - theta_iq)) u_q + scale s_iq w_i / |w_i|^2
    radial = torch.where(general, s, torch.zeros_like(s)) / safe_nw
    d_kernel = (leak + scale * (math.pi - theta)).unsqueeze(-1) * partners.unsqueeze(1)
    d_kernel = d_kernel + (scale * radial).unsqueeze(-1) * w.unsqueeze(2)  # (R, m, m + t, d)
    out_partners = torch.cat([a, -b.expand(n_runs, *b.shape[1:])], dim=1)  # (R, m + t, k): C = A out_partners^T
    h_wa = torch.einsum("rila,rib->rialb", d_kernel[:, :, :m], a)
    h_wa[:, idx, :, idx, :] += torch.einsum("riqa,rqb->riab", d_kernel, out_partners).transpose(0, 1)
    h_wa = h_wa.reshape(n_runs, m * d, m * k)
    k_ww = leak * cs + (1.0 - leak) ** 2 * kappa_from_gram(cs, nw.unsqueeze(-1), nw.unsqueeze(-2))
    eye_k = torch.eye(k, dtype=w.dtype, device=w.device)
    h_aa = (k_ww[:, :, None, :, None] * eye_k[None, None, :, None, :]).reshape(n_runs, m * k, m * k)
    top = torch.cat([h_ww, h_wa], dim=2)
    bottom = torch.cat([h_wa.transpose(1, 2), h_aa], dim=2)
    return torch.cat([top, bottom], dim=1)
