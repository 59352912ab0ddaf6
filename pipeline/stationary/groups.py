"""Neuron groups and the narrower network a point embeds (theory.md sections 7 and 8.1).

Two neurons belong to one *group* when their input weights point in the same direction (positive
scaling only: ``rho`` is not odd, so ``w`` and ``-w`` are different directions) **and** they have the
same activation pattern on the data (sign of ``z_ij``, with kinks ``|z_ij| <= kink_tol ||w_j|| ||x_i||``
as a third sign). Neurons that contribute nothing to ``f`` on the data are dropped (group ``-1``):
zero-amplitude neurons (``||w_j|| ||a_j|| = 0``, or tiny relative to the largest neuron), dead ReLU
neurons (no positive pre-activation; ``dead_touching`` when some are kinks) and groups whose members
cancel (``sum_j a_j w_j^T = 0``).

Reversing the embeddings E1-E3 of section 7, every group is merged into one neuron: with
``M_g = sum_{j in g} a_j w_j^T`` (a rank-one ``k x d`` matrix ``(sum_j a_j ||w_j||) u^T`` when the members
are exactly parallel), the merged neuron is ``w = s u``, ``a = M_g u / s`` with ``u`` the top right
singular vector of ``M_g`` oriented along the group's mean direction and ``s = sqrt(||M_g u||)``
(balanced, ``||w|| = ||a||``). Singletons are copied unchanged. Within a shared pattern a group's
output is ``s_i M_g x_i``; a merge is kept only if the merged neuron has the group's pattern and
reproduces the group's outputs on the data to ``exact_tol`` (always for scalar outputs, and for exactly
parallel members); otherwise the cluster is split back into singletons and counted in ``unmerged``.
The reduced network therefore computes the original outputs on the data to float precision
(``forward_error`` reports the check).

Clustering is complete linkage on the angle matrix with a prohibitive distance between different
patterns. Candidate pairs (same pattern, angle below ``angle_tol``) are found batched in torch; where
every connected component of the candidate graph is a clique, complete linkage returns exactly these
components and no per-run call is needed; the remaining runs go to scikit-learn
(``AgglomerativeClustering(metric="precomputed", linkage="complete")``). All other work is batched over
runs in torch (float64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import AgglomerativeClustering

from pipeline.losses import nets

__all__ = ["NEURON_CATEGORY", "NeuronGroups", "activation_pattern", "group_neurons"]

NEURON_CATEGORY: tuple[str, ...] = ("kept", "zero", "dead", "dead_touching", "cancelled")
"""Per-neuron category codes (position in the tuple): ``kept`` neurons belong to a group; the others
contribute nothing to the outputs on the data and have group ``-1``."""

_KEPT, _ZERO, _DEAD, _DEAD_TOUCHING, _CANCELLED = range(len(NEURON_CATEGORY))
_FAR = 1.0e3  # "infinite" distance between different patterns (angles are at most pi)


@dataclass(frozen=True)
class NeuronGroups:
    """Neuron groups of a batch of points and the reduced networks.

    Attributes
    ----------
    group : (R, m) int64
        Group id of each neuron, ``0 .. width - 1`` in order of the group's first neuron; ``-1`` for
        dropped neurons. Group ``g`` is reduced neuron ``g``.
    category : (R, m) int8
        :data:`NEURON_CATEGORY` code.
    width : (R,) int64
        Width of the reduced network (number of groups).
    group_size : (R, m) int64
        Number of original neurons in reduced neuron ``g`` (0 in the padding).
    w : (R, m, d), a : (R, m, k)
        Reduced parameters in the first ``width`` rows, zero padding after; dtype of the inputs.
    unmerged : (R,) int64
        Clusters (parallel, same pattern) that could not be merged exactly and were split into singletons.
    forward_error : (R,)
        ``max_i ||f_reduced(x_i) - f(x_i)||`` relative to the output scale (float64 check).
    """

    group: torch.Tensor
    category: torch.Tensor
    width: torch.Tensor
    group_size: torch.Tensor
    w: torch.Tensor
    a: torch.Tensor
    unmerged: torch.Tensor
    forward_error: torch.Tensor


def activation_pattern(w: torch.Tensor, x: torch.Tensor, kink_tol: float) -> torch.Tensor:
    """Signs of ``z_ij`` with kinks ``|z_ij| <= kink_tol ||w_j|| ||x_i||`` as 0, int8 (R, n, m)."""
    z = nets.pre_activations(w, x)
    bound = kink_tol * w.norm(dim=-1).unsqueeze(-2) * x.norm(dim=-1).unsqueeze(-1)
    sign = torch.sign(z).to(torch.int8)
    return torch.where(z.abs() <= bound, torch.zeros_like(sign), sign)


def group_neurons(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    leak: float,
    *,
    angle_tol: float = 1e-4,
    kink_tol: float = 1e-8,
    zero_tol: float = 1e-12,
    exact_tol: float = 1e-10,
    output_scale: torch.Tensor | None = None,
) -> NeuronGroups:
    """Group the neurons of each point and reduce it to the narrower network it embeds.

    Parameters
    ----------
    w, a, x
        ``(R, m, d)``, ``(R, m, k)``, ``(R or 1, n, d)`` (see :mod:`pipeline.losses.nets`).
    leak
        Negative slope of the activation; dead neurons exist only for ``leak == 0``.
    angle_tol
        Largest angle (radians) between two directions of one group (complete linkage).
    kink_tol
        Relative kink tolerance of the activation pattern (theory.md 8.2 step 2).
    zero_tol
        A neuron is zero if ``||w_j|| ||a_j|| s_x <= zero_tol * scale`` (``scale``: ``output_scale`` per
        run, e.g. ``s_y``, or by default the largest ``||w_j|| ||a_j|| s_x`` of the run); exact zeros
        always are. A group is cancelled by the same rule applied to ``||M_g|| s_x``.
    exact_tol
        A merge is kept only if it reproduces the group's outputs to ``exact_tol`` times the group's
        amplitude ``sum_j ||w_j|| ||a_j|| s_x``.
    output_scale
        Optional (R,) scale for ``zero_tol``.
    """
    out_dtype = w.dtype
    w64, a64 = w.detach().to(torch.float64), a.detach().to(torch.float64)
    runs, m, d = w64.shape
    x64 = x.detach().to(device=w64.device, dtype=torch.float64).expand(runs, -1, -1)
    pattern = activation_pattern(w64, x64, kink_tol)  # (R, n, m)
    w_norm, a_norm = w64.norm(dim=-1), a64.norm(dim=-1)
    s_x = x64.norm(dim=-1).amax(dim=-1)  # (R,)
    amplitude = w_norm * a_norm * s_x.unsqueeze(-1)  # (R, m) bound on a neuron's output
    if output_scale is None:
        scale = amplitude.amax(dim=-1)
    else:
        scale = torch.as_tensor(output_scale, dtype=torch.float64, device=w64.device).expand(runs)
    scale = scale.unsqueeze(-1)
    category = torch.full((runs, m), _KEPT, dtype=torch.int8, device=w64.device)
    zero = (w_norm == 0) | (a_norm == 0) | (amplitude <= zero_tol * scale)
    if leak == 0:
        no_positive = ~(pattern > 0).any(dim=-2)
        touching = (pattern == 0).any(dim=-2)
        category[no_positive & touching] = _DEAD_TOUCHING
        category[no_positive & ~touching] = _DEAD
    category[zero] = _ZERO
    live = category == _KEPT

    labels = _cluster(w64, pattern, live, angle_tol)  # representative neuron per neuron, -1 dropped
    merged_w, merged_a, size, valid, m_norm = _merge(w64, a64, x64, pattern, labels, leak, kink_tol, exact_tol)
    labels, category, unmerged = _finish(labels, category, size, valid, m_norm, s_x, scale.squeeze(-1), zero_tol)
    group, width, group_size, w_red, a_red = _reduce(w64, a64, merged_w, merged_a, labels)
    f_orig = nets.forward(w64, a64, x64, leak)
    f_red = nets.forward(w_red, a_red, x64, leak)
    out_scale = torch.maximum(f_orig.norm(dim=-1).amax(dim=-1), scale.squeeze(-1))
    error = (f_red - f_orig).norm(dim=-1).amax(dim=-1)
    forward_error = torch.where(out_scale > 0, error / out_scale.clamp_min(torch.finfo(torch.float64).tiny), error)
    return NeuronGroups(
        group=group,
        category=category,
        width=width,
        group_size=group_size,
        w=w_red.to(out_dtype),
        a=a_red.to(out_dtype),
        unmerged=unmerged,
        forward_error=forward_error,
    )


def _cluster(w: torch.Tensor, pattern: torch.Tensor, live: torch.Tensor, angle_tol: float) -> torch.Tensor:
    """Cluster label per neuron: the smallest neuron index of its cluster, ``-1`` if not live, (R, m)."""
    runs, m, _ = w.shape
    unit = w / w.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
    chord = (unit.unsqueeze(-2) - unit.unsqueeze(-3)).norm(dim=-1)  # (R, m, m)
    angle = 2.0 * torch.asin((0.5 * chord).clamp(max=1.0))
    same = _same_pattern(pattern)
    both = live.unsqueeze(-1) & live.unsqueeze(-2)
    eye = torch.eye(m, dtype=torch.bool, device=w.device)
    candidate = same & both & (angle < angle_tol) & ~eye
    index = torch.arange(m, device=w.device).expand(runs, m)
    labels = torch.where(live, index, torch.full_like(index, -1))
    if not bool(candidate.any()):
        return labels
    # Connected components of the candidate graph (boolean transitive closure). Where every component
    # is a clique, complete linkage returns exactly the components; scikit-learn only sees the rest.
    reach = candidate | (eye & live.unsqueeze(-1))
    for _ in range(max(1, (m - 1).bit_length())):
        reach = reach | ((reach.to(torch.float32) @ reach.to(torch.float32)) > 0)
    first = torch.where(reach, index.unsqueeze(-2), torch.full_like(reach, m, dtype=torch.int64)).amin(dim=-1)
    labels = torch.where(live, first, labels)
    clique = (reach == (candidate | (eye & live.unsqueeze(-1)))).all(dim=(-2, -1))
    busy = torch.nonzero(~clique).flatten().tolist()
    if not busy:
        return labels
    labels = labels.clone()
    distance = torch.where(same, angle, torch.full_like(angle, _FAR)).cpu().numpy()
    involved_all = candidate.any(dim=-1).cpu().numpy()
    for r in busy:
        nodes = np.flatnonzero(involved_all[r])
        sub = distance[r][np.ix_(nodes, nodes)]
        sub = 0.5 * (sub + sub.T)
        np.fill_diagonal(sub, 0.0)
        model = AgglomerativeClustering(
            n_clusters=None, distance_threshold=angle_tol, metric="precomputed", linkage="complete"
        )
        cluster = model.fit_predict(sub)
        for c in np.unique(cluster):
            members = nodes[cluster == c]
            labels[r, torch.as_tensor(members, device=w.device)] = int(members.min())
    return labels


def _same_pattern(pattern: torch.Tensor, chunk: int = 1 << 24) -> torch.Tensor:
    """``same[r, p, q]``: neurons ``p`` and ``q`` have identical patterns, (R, m, m)."""
    runs, n, m = pattern.shape
    step = max(1, chunk // max(1, n * m * m))
    parts = []
    for start in range(0, runs, step):
        block = pattern[start : start + step]
        parts.append((block.unsqueeze(-1) == block.unsqueeze(-2)).all(dim=-3))
    return torch.cat(parts, dim=0)


def _merge(
    w: torch.Tensor,
    a: torch.Tensor,
    x: torch.Tensor,
    pattern: torch.Tensor,
    labels: torch.Tensor,
    leak: float,
    kink_tol: float,
    exact_tol: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merged neuron of every cluster (indexed by its representative), with validity checks.

    Returns merged ``w`` (R, m, d), ``a`` (R, m, k), cluster sizes (R, m), ``valid`` (R, m) (the
    merge reproduces the cluster) and the cluster matrix norms ``||M_g||`` (R, m).
    """
    runs, m, d = w.shape
    one_hot = (labels.unsqueeze(-2) == torch.arange(m, device=w.device).view(1, m, 1)).to(w.dtype)  # (R, g, j)
    size = one_hot.sum(dim=-1).to(torch.int64)
    matrix = torch.einsum("rgj,rjk,rjd->rgkd", one_hot, a, w)  # M_g
    w_norm = w.norm(dim=-1)
    amp = w_norm * a.norm(dim=-1)
    unit = w / w_norm.unsqueeze(-1).clamp_min(torch.finfo(w.dtype).tiny)
    mean_dir = torch.einsum("rgj,rj,rjd->rgd", one_hot, amp, unit)
    _, sing, vh = torch.linalg.svd(matrix, full_matrices=False)
    u = vh[..., 0, :]  # (R, g, d)
    flip = (u * mean_dir).sum(dim=-1) < 0
    u = torch.where(flip.unsqueeze(-1), -u, u)
    a_total = torch.einsum("rgkd,rgd->rgk", matrix, u)
    s = a_total.norm(dim=-1).sqrt()
    merged_w = u * s.unsqueeze(-1)
    merged_a = a_total / s.unsqueeze(-1).clamp_min(torch.finfo(w.dtype).tiny)
    m_norm = sing[..., 0]
    # Validity: pattern of the merged neuron and reproduction of the group's outputs.
    group_pattern = torch.einsum("rgj,rnj->rng", one_hot, pattern.to(w.dtype)) / size.clamp_min(1).unsqueeze(-2)
    merged_pattern = activation_pattern(merged_w, x, kink_tol).to(w.dtype)
    same_pattern = (merged_pattern == group_pattern).all(dim=-2)
    hidden = nets.activation(nets.pre_activations(w, x), leak)  # (R, n, j)
    group_out = torch.einsum("rgj,rnj,rjk->rngk", one_hot, hidden, a)
    merged_out = nets.activation(nets.pre_activations(merged_w, x), leak).unsqueeze(-1) * merged_a.unsqueeze(-3)
    error = (group_out - merged_out).norm(dim=-1).amax(dim=-2)  # (R, g)
    s_x = x.norm(dim=-1).amax(dim=-1, keepdim=True)
    group_amp = torch.einsum("rgj,rj->rg", one_hot, amp) * s_x
    valid = same_pattern & (error <= exact_tol * group_amp)
    return merged_w, merged_a, size, valid, m_norm


def _finish(
    labels: torch.Tensor,
    category: torch.Tensor,
    size: torch.Tensor,
    valid: torch.Tensor,
    m_norm: torch.Tensor,
    s_x: torch.Tensor,
    scale: torch.Tensor,
    zero_tol: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split invalid multi-member clusters into singletons and drop cancelled ones.

    Returns the final labels (representative per neuron, ``-1`` dropped), categories and the number
    of split clusters per run.
    """
    runs, m = labels.shape
    multi = size >= 2
    cancelled = multi & (m_norm * s_x.unsqueeze(-1) <= zero_tol * scale.unsqueeze(-1))
    split = multi & ~valid & ~cancelled
    safe = labels.clamp_min(0)
    member_split = torch.gather(split, 1, safe) & (labels >= 0)
    member_cancelled = torch.gather(cancelled, 1, safe) & (labels >= 0)
    index = torch.arange(m, device=labels.device).expand(runs, m)
    labels = torch.where(member_split, index, labels)
    labels = torch.where(member_cancelled, torch.full_like(labels, -1), labels)
    category = torch.where(member_cancelled, torch.full_like(category, _CANCELLED), category)
    return labels, category, split.sum(dim=-1)


def _reduce(
    w: torch.Tensor, a: torch.Tensor, merged_w: torch.Tensor, merged_a: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Compact group ids, reduced width, group sizes and the padded reduced parameters."""
    runs, m, _ = w.shape
    arange = torch.arange(m, device=w.device)
    one_hot = labels.unsqueeze(-2) == arange.view(1, m, 1)  # (R, g, j)
    size = one_hot.sum(dim=-1)
    present = size > 0
    rank = torch.cumsum(present.to(torch.int64), dim=-1) - 1  # reduced index of representative g
    width = present.sum(dim=-1)
    group = torch.where(labels >= 0, torch.gather(rank, 1, labels.clamp_min(0)), torch.full_like(labels, -1))
    single = (size == 1).unsqueeze(-1)
    rep_w = torch.where(single, w, merged_w)  # representative g is neuron g for singletons
    rep_a = torch.where(single, a, merged_a)
    w_red = torch.zeros_like(w)
    a_red = torch.zeros_like(a)
    group_size = torch.zeros_like(labels)
    r_idx, g_idx = torch.nonzero(present, as_tuple=True)
    slot = rank[r_idx, g_idx]
    w_red[r_idx, slot] = rep_w[r_idx, g_idx]
    a_red[r_idx, slot] = rep_a[r_idx, g_idx]
    group_size[r_idx, slot] = size[r_idx, g_idx]
    return group, width, group_size, w_red, a_red
