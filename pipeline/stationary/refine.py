"""Refinement of end points to exact stationary points within their activation pattern.

Gradient descent stops at a point whose gradient is small but not zero. With the activation pattern
frozen (signs of ``z_ij``; near-zero ``|z_ij| <= kink_tol ||w_j|| ||x_i||`` are *kinks* that must stay
exactly at 0, i.e. the linear constraints ``w_j . x_i = 0``), the network is bilinear,
``f_i = sum_j s_ij a_j (w_j . x_i)`` with fixed slopes ``s_ij`` (1 on ``I_+``, ``leak`` on ``I_-``), and the
loss is a quartic polynomial. This module minimises that polynomial for every run with a batched
Levenberg-Marquardt iteration in torch (float64):

* ``w_j`` is parametrised in the null space of its kink rows (projector ``P_j``), so kinks stay at 0;
* the step solves ``(H + mu D) delta = -g`` with the exact Hessian ``H = (J^T J + C) / n`` when that matrix
  is positive definite (quadratic convergence), else the Gauss-Newton matrix ``J^T J / n``; ``D`` is a
  per-neuron block-scalar damping (so the null-space structure is preserved);
* a step is accepted only if it keeps the pattern (no non-kink ``z_ij`` changes sign) and decreases the
  loss, evaluated exactly from the polynomial increment (no cancellation at the float floor);
* the iteration stops when the in-pattern gradient is at float precision
  (``||g|| <= grad_rtol * s_r * s_x * ||theta||``, ``s_r = rms||f_i|| + rms||y_i||``) or stalls (no halving
  of the gradient norm for ``patience`` iterations, or the damping runs away).

The refined point is returned only if it keeps the pattern and its loss (``pipeline.losses.nets.loss``) does
not exceed the original loss; otherwise the original point is returned with ``refined = False``. The
record states numbers only: a small gradient norm is never by itself a claim of criticality (at a kink
the full gradient of :func:`pipeline.losses.nets.gradients` uses ``rho'(0) = leak`` and need not vanish).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.losses import nets
from pipeline.stationary.kinks import kink_mask
from pipeline.stationary.tolerances import Tolerances

__all__ = ["REFINE_STATUS", "Refinement", "pattern_gradient", "refine_end_points"]

REFINE_STATUS: tuple[str, ...] = ("converged", "not_converged", "left_pattern", "loss_increased")
"""Status codes (position in the tuple). ``converged`` and ``not_converged`` return the refined point
(``refined = True``; ``not_converged``: improved but the gradient tolerance was not reached);
``left_pattern`` and ``loss_increased`` return the original point."""

_CONVERGED, _NOT_CONVERGED, _LEFT_PATTERN, _LOSS_INCREASED = range(len(REFINE_STATUS))
_MU_START, _MU_MIN, _MU_MAX = 1e-4, 1e-15, 1e8
_PROGRESS = 0.5  # a sweep makes progress if it halves the gradient norm of the last progress point


@dataclass(frozen=True)
class Refinement:
    """Result of :func:`refine_end_points` (leading run axis ``R``).

    Attributes
    ----------
    w : (R, m, d), a : (R, m, k)
        The refined point where ``refined``, else the original point (input dtype).
    refined : (R,) bool
        The returned point is the refined one (pattern kept, loss not increased).
    converged : (R,) bool
        The in-pattern gradient reached ``grad_rtol`` (within the iteration budget).
    status : (R,) int8
        :data:`REFINE_STATUS` code.
    loss_before, loss_after : (R,)
        :func:`pipeline.losses.nets.loss` at the original and at the returned point.
    grad_norm_before, grad_norm_after : (R,)
        Euclidean norm of the full gradient, ``pipeline.losses.nets.gradients(...).norm()``.
    pattern_grad_before, pattern_grad_after : (R,)
        Norm of the in-pattern (reduced) gradient: the gradient of the pattern polynomial with every
        ``dL/dw_j`` projected onto the null space of its kink rows.
    iterations : (R,) int64
        Levenberg-Marquardt iterations used.
    shift : (R,)
        ``||theta_after - theta_before|| / ||theta_before||``.
    kink : (R, n, m) bool
        The kink sets that were held at ``z = 0``.
    """

    w: torch.Tensor
    a: torch.Tensor
    refined: torch.Tensor
    converged: torch.Tensor
    status: torch.Tensor
    loss_before: torch.Tensor
    loss_after: torch.Tensor
    grad_norm_before: torch.Tensor
    grad_norm_after: torch.Tensor
    pattern_grad_before: torch.Tensor
    pattern_grad_after: torch.Tensor
    iterations: torch.Tensor
    shift: torch.Tensor
    kink: torch.Tensor


def refine_end_points(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    leak: float,
    *,
    train_output: bool = True,
    max_iterations: int = 100,
    kink_tol: float = 1e-8,
    kink: torch.Tensor | None = None,
    learning_rate: float | None = None,
    grad_rtol: float = 1e-14,
    patience: int = 10,
    chunk_elements: int = 1 << 24,
) -> Refinement:
    """Refine every run's point to a stationary point of the loss within its activation pattern.

    Parameters
    ----------
    w, a, x, y
        ``(R, m, d)``, ``(R, m, k)``, ``(R or 1, n, d)``, ``(R or 1, n, k)`` (see :mod:`pipeline.losses.nets`).
    leak
        Negative slope of the activation.
    train_output
        If False the output weights stay fixed (only ``w`` is refined).
    max_iterations
        Levenberg-Marquardt iterations per run.
    kink_tol
        ``i`` is a kink of ``j`` if ``|z_ij| <= kink_tol ||w_j|| ||x_i||`` (ignored if ``kink`` is given).
    kink
        Optional (R, n, m) kink sets (overrides ``kink_tol`` and ``learning_rate``).
    learning_rate
        If given, kinks also use the gradient-descent zig-zag rule of theory.md 8.2 step 2
        (:func:`pipeline.stationary.kinks.kink_mask`, the classifier's rule): points that GD keeps
        crossing are held on the kink instead of blocking the refinement.
    grad_rtol
        Convergence: in-pattern gradient norm ``<= grad_rtol * s_r * s_x * ||theta||``.
    patience
        A run stops (``not_converged``) after this many iterations without halving its in-pattern
        gradient norm (typically: the pattern's minimum lies outside the pattern, or at a kink that
        was not detected).
    chunk_elements
        Runs are processed in chunks whose Jacobian has at most about this many entries.
    """
    out_dtype = w.dtype
    w64, a64 = w.detach().to(torch.float64), a.detach().to(torch.float64)
    runs, m, d = w64.shape
    n, k = x.shape[-2], a64.shape[-1]
    x64 = x.detach().to(device=w64.device, dtype=torch.float64).expand(runs, -1, -1)
    y64 = y.detach().to(device=w64.device, dtype=torch.float64).expand(runs, -1, -1)
    z = nets.pre_activations(w64, x64)
    if kink is None:
        kink = kink_mask(w64, a64, x64, y64, leak, Tolerances(kink=kink_tol), learning_rate)
    kink = kink.to(device=w64.device, dtype=torch.bool).expand(runs, n, m)
    sign = torch.where(kink, torch.zeros_like(z), torch.sign(z))

    new_w, new_a = w64.clone(), a64.clone()
    converged = torch.zeros(runs, dtype=torch.bool, device=w64.device)
    iterations = torch.zeros(runs, dtype=torch.int64, device=w64.device)
    params = m * (d + k)
    step = max(1, chunk_elements // max(1, n * k * params))
    for start in range(0, runs, step):
        sl = slice(start, start + step)
        out = _refine_chunk(
            w64[sl],
            a64[sl],
            x64[sl],
            y64[sl],
            sign[sl],
            kink[sl],
            leak,
            train_output,
            max_iterations,
            grad_rtol,
            patience,
        )
        new_w[sl], new_a[sl], converged[sl], iterations[sl] = out

    before = nets.gradients(w64, a64, x64, y64, leak, train_output=train_output)
    after = nets.gradients(new_w, new_a, x64, y64, leak, train_output=train_output)
    loss_before, loss_after = before.loss.clone(), after.loss.clone()
    z_new = nets.pre_activations(new_w, x64)
    kept = ((torch.sign(z_new) == sign) | kink).all(dim=(-2, -1))
    not_worse = loss_after <= loss_before
    refined = kept & not_worse
    status = torch.where(converged, _CONVERGED, _NOT_CONVERGED)
    status = torch.where(not_worse, status, torch.full_like(status, _LOSS_INCREASED))
    status = torch.where(kept, status, torch.full_like(status, _LEFT_PATTERN)).to(torch.int8)
    out_w = torch.where(refined.view(-1, 1, 1), new_w, w64)
    out_a = torch.where(refined.view(-1, 1, 1), new_a, a64)
    grad_after = torch.where(refined, after.norm(), before.norm())
    loss_after = torch.where(refined, loss_after, loss_before)
    pattern_before = pattern_gradient(w64, a64, x64, y64, leak, kink, train_output=train_output)
    pattern_after = pattern_gradient(out_w, out_a, x64, y64, leak, kink, train_output=train_output)
    theta_norm = torch.sqrt(w64.square().sum(dim=(-2, -1)) + a64.square().sum(dim=(-2, -1)))
    moved = torch.sqrt((out_w - w64).square().sum(dim=(-2, -1)) + (out_a - a64).square().sum(dim=(-2, -1)))
    shift = moved / theta_norm.clamp_min(torch.finfo(torch.float64).tiny)
    return Refinement(
        w=out_w.to(out_dtype),
        a=out_a.to(out_dtype),
        refined=refined,
        converged=converged & refined,
        status=status,
        loss_before=loss_before,
        loss_after=loss_after,
        grad_norm_before=before.norm(),
        grad_norm_after=grad_after,
        pattern_grad_before=pattern_before,
        pattern_grad_after=pattern_after,
        iterations=iterations,
        shift=shift,
        kink=kink,
    )


def pattern_gradient(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    leak: float,
    kink: torch.Tensor,
    *,
    train_output: bool = True,
) -> torch.Tensor:
    """Norm of the in-pattern gradient (R,): slopes from the signs of ``z``, kinks held at ``z = 0``.

    ``dL/da_j = 1/n sum_i r_i s_ij z_ij`` and ``dL/dw_j = P_j 1/n sum_i (a_j . r_i) s_ij x_i`` with ``P_j``
    the projector onto the null space of the kink rows of ``j``; kink entries use ``z_ij = 0``.
    """
    runs = w.shape[0]
    n = x.shape[-2]
    x = x.expand(runs, -1, -1)
    z = nets.pre_activations(w, x)
    z = torch.where(kink, torch.zeros_like(z), z)
    slope = torch.where(z > 0, torch.ones_like(z), torch.full_like(z, leak))
    residual = torch.matmul(slope * z, a) - y
    grad_a = torch.matmul((slope * z).transpose(-1, -2), residual) / n
    c = torch.matmul(residual, a.transpose(-1, -2))  # (R, n, m)
    grad_w = torch.einsum("rnm,rnd->rmd", slope * c, x) / n
    grad_w = torch.einsum("rmde,rme->rmd", _null_projectors(x, kink), grad_w)
    total = grad_w.square().sum(dim=(-2, -1))
    if train_output:
        total = total + grad_a.square().sum(dim=(-2, -1))
    return total.sqrt()


def _null_projectors(x: torch.Tensor, kink: torch.Tensor) -> torch.Tensor:
    """``P_j = I - X_0^T (X_0 X_0^T)^+ X_0`` for every neuron, (R, m, d, d)."""
    runs, n, m = kink.shape
    d = x.shape[-1]
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    proj = eye.expand(runs, m, d, d).clone()
    has = kink.any(dim=-2)
    if not bool(has.any()):
        return proj
    r_idx, j_idx = torch.nonzero(has, as_tuple=True)
    rows = x[r_idx] * kink[r_idx, :, j_idx].unsqueeze(-1).to(x.dtype)  # (E, n, d)
    gram = rows.transpose(-1, -2) @ rows
    evals, evecs = torch.linalg.eigh(gram)
    keep = evals > 1e-12 * evals.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    basis = evecs * keep.unsqueeze(-2).to(x.dtype)
    proj[r_idx, j_idx] = eye - basis @ basis.transpose(-1, -2)
    return proj


def _refine_chunk(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    sign: torch.Tensor,
    kink: torch.Tensor,
    leak: float,
    train_output: bool,
    max_iterations: int,
    grad_rtol: float,
    patience: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Levenberg-Marquardt within the pattern for a chunk of runs; returns ``w, a, converged, iterations``."""
    runs, m, d = w.shape
    n, k = x.shape[-2], a.shape[-1]
    proj = _null_projectors(x, kink)  # (C, m, d, d)
    xp = torch.einsum("rmde,rne->rnmd", proj, x)  # P_j x_i, (C, n, m, d)
    slope = torch.where(sign > 0, torch.ones_like(sign), torch.full_like(sign, leak))
    w = torch.einsum("rmde,rme->rmd", proj, w)  # start on the kinks
    a = a.clone()
    s_x = x.norm(dim=-1).amax(dim=-1)
    s_r = (y.square().sum(dim=(-2, -1)) / n).sqrt()
    mu = torch.full((runs,), _MU_START, dtype=w.dtype, device=w.device)
    converged = torch.zeros(runs, dtype=torch.bool, device=w.device)
    z_start = torch.matmul(x, w.transpose(-1, -2))
    # Snapping onto the kinks already changed a non-kink sign: nothing to refine within this pattern.
    stalled = ~((torch.sign(z_start) == sign) | (sign == 0)).all(dim=(-2, -1))
    reference = torch.full((runs,), float("inf"), dtype=w.dtype, device=w.device)
    idle = torch.zeros(runs, dtype=torch.int64, device=w.device)
    iterations = torch.zeros(runs, dtype=torch.int64, device=w.device)
    a_mask = 1.0 if train_output else 0.0
    eye_k = torch.eye(k, dtype=w.dtype, device=w.device)
    eye_m = torch.eye(m, dtype=w.dtype, device=w.device)
    for sweep in range(max_iterations + 1):
        active = torch.nonzero(~converged & ~stalled).flatten()
        if active.numel() == 0:
            break
        wa, aa, xa, ya, xpa, sa, sga = (t[active] for t in (w, a, x, y, xp, slope, sign))
        z = torch.matmul(xa, wa.transpose(-1, -2))
        z = torch.where(sga == 0, torch.zeros_like(z), z)
        hidden = sa * z  # (E, n, m)
        f = torch.matmul(hidden, aa)
        r = f - ya
        # Jacobian of f (rows (i, l)) w.r.t. (w_j in projected coordinates, a_j).
        jw = torch.einsum("ejl,enj,enjd->enljd", aa, sa, xpa).reshape(-1, n * k, m * d)
        ja = torch.einsum("enj,lq->enljq", hidden, eye_k).reshape(-1, n * k, m * k) * a_mask
        jac = torch.cat([jw, ja], dim=-1)  # (E, n k, P)
        grad = torch.matmul(jac.transpose(-1, -2), r.reshape(-1, n * k, 1)).squeeze(-1) / n  # (E, P)
        theta = torch.sqrt(wa.square().sum(dim=(-2, -1)) + aa.square().sum(dim=(-2, -1)))
        scale = (s_r[active] + (f.square().sum(dim=(-2, -1)) / n).sqrt()) * s_x[active] * theta
        grad_norm = grad.norm(dim=-1)
        done = grad_norm <= grad_rtol * scale
        converged[active[done]] = True
        progress = grad_norm <= _PROGRESS * reference[active]
        reference[active] = torch.where(progress, grad_norm, reference[active])
        idle[active] = torch.where(progress, torch.zeros_like(idle[active]), idle[active] + 1)
        stalled[active] |= idle[active] > patience
        done = done | stalled[active]
        if sweep == max_iterations or bool(done.all()):
            continue
        keep = torch.nonzero(~done).flatten()
        active = active[keep]
        iterations[active] += 1
        jac, grad, r, hidden = jac[keep], grad[keep], r[keep], hidden[keep]
        wa, aa, xa, sa, sga, xpa = wa[keep], aa[keep], xa[keep], sa[keep], sga[keep], xpa[keep]
        gn = torch.matmul(jac.transpose(-1, -2), jac) / n
        # Second-order term of the bilinear model: d^2 f_il / (da_jl dw_j) = s_ij P_j x_i.
        cross = torch.einsum("enl,enj,enjd->ejld", r, sa, xpa) / n * a_mask  # (E, m, k, d)
        block = torch.einsum("ejlq,ji->ejqil", cross, eye_m).reshape(-1, m * d, m * k)
        hess = gn.clone()
        hess[:, : m * d, m * d :] += block
        hess[:, m * d :, : m * d] += block.transpose(-1, -2)
        delta = _damped_step(hess, gn, _block_damping(gn, m, d, k), mu[active], grad)
        dw = torch.einsum("ejpq,ejq->ejp", proj[active], delta[:, : m * d].reshape(-1, m, d))
        da = delta[:, m * d :].reshape(-1, m, k) * a_mask
        dz = torch.matmul(xa, dw.transpose(-1, -2))
        dz = torch.where(sga == 0, torch.zeros_like(dz), dz)
        # Exact loss increment of the bilinear model (no cancellation against the loss itself).
        df = torch.matmul(hidden, da) + torch.matmul(sa * dz, aa + da)
        d_loss = ((r * df).sum(dim=(-2, -1)) + 0.5 * df.square().sum(dim=(-2, -1))) / n
        z_new = torch.matmul(xa, (wa + dw).transpose(-1, -2))
        in_pattern = ((torch.sign(z_new) == sga) | (sga == 0)).all(dim=(-2, -1))
        accept = in_pattern & (d_loss < 0)
        acc = active[accept]
        w[acc] = wa[accept] + dw[accept]
        a[acc] = aa[accept] + da[accept]
        mu[acc] = (mu[acc] / 10).clamp_min(_MU_MIN)
        rej = active[~accept]
        mu[rej] = mu[rej] * 10
        stalled |= mu > _MU_MAX
    w = torch.einsum("rmde,rme->rmd", proj, w)
    return w, a, converged, iterations


def _block_damping(gn: torch.Tensor, m: int, d: int, k: int) -> torch.Tensor:
    """Diagonal damping, constant within each neuron's ``w_j`` block and ``a_j`` block, (E, P)."""
    diag = torch.diagonal(gn, dim1=-2, dim2=-1)
    dw = diag[:, : m * d].reshape(-1, m, d).mean(dim=-1, keepdim=True).expand(-1, m, d).reshape(-1, m * d)
    da = diag[:, m * d :].reshape(-1, m, k).mean(dim=-1, keepdim=True).expand(-1, m, k).reshape(-1, m * k)
    damping = torch.cat([dw, da], dim=-1)
    floor = 1e-12 * damping.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(gn.dtype).tiny)
    return damping.clamp_min(floor) if bool((floor > 0).all()) else damping + floor


def _damped_step(
    hess: torch.Tensor, gn: torch.Tensor, damping: torch.Tensor, mu: torch.Tensor, grad: torch.Tensor
) -> torch.Tensor:
    """Solve ``(H + mu D) delta = -g``; Gauss-Newton ``H`` where the exact one is not positive definite."""
    shift = torch.diag_embed(mu.unsqueeze(-1) * damping)
    factor, info = torch.linalg.cholesky_ex(hess + shift)
    bad = info > 0
    if bool(bad.any()):
        factor_gn, _ = torch.linalg.cholesky_ex(gn[bad] + shift[bad])
        factor = factor.clone()
        factor[bad] = factor_gn
    return torch.cholesky_solve(-grad.unsqueeze(-1), factor).squeeze(-1)
