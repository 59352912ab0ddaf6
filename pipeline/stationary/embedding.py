"""Network embedding (theory.md 7): every point of width ``m`` as points of width ``m + 1``, with the verdicts
the embedding theorems predict and the verdicts the classifier gives.

Embeddings of a point ``(w, a)`` (each computes the same function on every input):

* ``E1_zero``: append the zero neuron ``(0, 0)``;
* ``E1_dead`` (ReLU only): append ``(s v, 0)``, ``v`` a unit direction with every pre-activation
  ``x_i . v <= -t ||x_i||`` for the largest ``t`` (one LP per run; not built when ``t = 0``, i.e. the inputs
  surround the origin), ``s`` the mean ``||w_j||`` of the point's non-zero neurons (1 if none);
* ``E2``: append ``(0, s e_1)``, ``s`` the mean ``||a_j||`` of the non-zero output weights (1 if none);
* ``E3`` (``j``, ``beta``): neuron ``j`` becomes ``(w_j, beta a_j)`` and ``(w_j, (1 - beta) a_j)`` is appended
  (``gamma_1 = gamma_2 = 1``).

Slot layout along the ``embedding`` axis (:func:`embedding_layout`): ``E1_zero``, ``E1_dead``, ``E2``, then
``E3`` for neuron 0 and every ``beta``, neuron 1, ... (so a narrower network's slots are a prefix of a wider one's).

The prediction is a *set* of point types (bit ``2**code`` of :data:`~pipeline.stationary.labels.POINT_TYPE`; 0:
no prediction), from the original verdict ``V`` and the neuron's properties. Two facts carry every row: every
embedding keeps the residuals, and ``L_{m+1}(E(theta)) = L_m(theta)`` for all ``theta`` near the point, so an
embedding of a saddle is never a local minimum (a descent path maps to a descent path) and a zero loss stays
zero. With ``kinked_j`` for ``g_j`` not identically 0 (some line through kink inputs has
``sum gamma_ij ||x_i|| != 0``) and ``clean`` for a local minimum without escape neurons (5.1):

============  =============================  =================================================================
embedding     ``V`` a local min, loss > 0    ``V`` a saddle
============  =============================  =================================================================
E1_zero       saddle if ``D_new != 0`` (the   saddle
              zero neuron escapes, 5.2), else
              ``V`` if clean
E1_dead       ``V`` (the new neuron is locally invisible: ``L_{m+1} = L_m`` near the point)
E2            ``V`` or not stationary (scalar   saddle or not stationary
              output and clean: never escape)
E3 kinked j   beta outside [0, 1]: not stationary; beta in {0, 1}: saddle (the zero-output copy escapes,
              ``D_j != 0``); beta in (0, 1): ``V`` if clean (saddle ``V``: saddle)
E3 g_j = 0    ``V`` if clean (copies escape iff j did)  saddle
============  =============================  =================================================================

``V = global_min`` (a numerically zero loss) predicts ``global_min`` for every embedding. Where a row says
nothing (a vector-output minimum certified by the second-order test, which may have escape neurons), the
prediction is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import linprog

from pipeline.stationary import labels
from pipeline.stationary.api import classify_batch
from pipeline.stationary.kinks import kink_mask
from pipeline.stationary.neurons import line_sums, neuron_quantities, parallel_inputs
from pipeline.stationary.record import BatchClassification
from pipeline.stationary.tolerances import tolerances_for

__all__ = [
    "CERTIFIED",
    "DEFAULT_BETAS",
    "classify_embeddings",
    "embed",
    "embedding_layout",
    "neuron_facts",
    "predicted_types",
]

DEFAULT_BETAS: tuple[float, ...] = (-0.5, 0.0, 0.3, 0.5, 1.0, 1.5)
"""Split ratios of E3: one outside [0, 1] on each side, both ends, the symmetric split and an asymmetric one
(theory.md 5.3 uses 0.5 and 0.3)."""
CERTIFIED: tuple[str, ...] = ("global_min", "spurious_local_min", "local_min", "saddle")
"""End-point types whose embeddings are built: the certified verdicts."""
DEAD_MARGIN = 1e-9
"""A strictly dead direction needs ``x_i . v <= -DEAD_MARGIN ||x_i||`` for every input."""

_KIND = {name: labels.code(labels.EMBEDDING_KIND, name) for name in labels.EMBEDDING_KIND}
_N_FIXED = 3  # E1_zero, E1_dead, E2


def _bit(name: str) -> int:
    return 1 << labels.code(labels.POINT_TYPE, name)


def embedding_layout(width: int, betas: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kind code (E,) int8, split neuron (E,) int16 (-1 for E1/E2) and ``beta`` (E,) (NaN for E1/E2).

    ``E = 3 + width * len(betas)``.
    """
    n_beta = len(betas)
    kind = np.array([_KIND["E1_zero"], _KIND["E1_dead"], _KIND["E2"]] + [_KIND["E3"]] * width * n_beta, np.int8)
    neuron = np.concatenate([np.full(_N_FIXED, -1), np.repeat(np.arange(width), n_beta)]).astype(np.int16)
    beta = np.concatenate([np.full(_N_FIXED, np.nan), np.tile(np.asarray(betas, dtype=np.float64), width)])
    return kind, neuron, beta


def embed(
    w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, leak: float, betas: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All embeddings of a batch of points into width ``m + 1``.

    Parameters
    ----------
    w : (R, m, d), a : (R, m, k), x : (R or 1, n, d)
        Points and inputs (``x`` only decides the dead direction of ``E1_dead``).
    leak
        Negative slope; ``E1_dead`` is built for ReLU (``leak == 0``) only.
    betas
        Split ratios of ``E3``.

    Returns
    -------
    w_e : (R, E, m + 1, d), a_e : (R, E, m + 1, k)
        Embedded points, slots as :func:`embedding_layout`.
    built : (R, E) bool
        False where the embedding does not exist (``E1_dead`` without a strictly dead direction).
    """
    runs, m, d = w.shape
    k = a.shape[-1]
    kind, neuron, beta = embedding_layout(m, betas)
    n_emb = kind.size
    w_e = torch.cat([w, w.new_zeros(runs, 1, d)], dim=1).unsqueeze(1).repeat(1, n_emb, 1, 1)
    a_e = torch.cat([a, a.new_zeros(runs, 1, k)], dim=1).unsqueeze(1).repeat(1, n_emb, 1, 1)
    built = torch.ones(runs, n_emb, dtype=torch.bool, device=w.device)
    dead = _dead_directions(x, leak).expand(runs, -1)
    w_e[:, 1, m] = dead * _mean_norm(w).unsqueeze(-1)
    built[:, 1] = dead.norm(dim=-1) > 0
    a_e[:, 2, m, 0] = _mean_norm(a)
    for slot in np.flatnonzero(kind == _KIND["E3"]):
        j, b = int(neuron[slot]), float(beta[slot])
        w_e[:, slot, m] = w[:, j]
        a_e[:, slot, j] = b * a[:, j]
        a_e[:, slot, m] = (1.0 - b) * a[:, j]
    return w_e, a_e, built


def _mean_norm(v: torch.Tensor) -> torch.Tensor:
    """Mean row norm of the non-zero rows of ``v`` (R, m, .), 1 where every row is zero, (R,)."""
    norm = v.norm(dim=-1)
    count = (norm > 0).sum(dim=-1)
    return torch.where(count > 0, norm.sum(dim=-1) / count.clamp_min(1), torch.ones_like(norm[:, 0]))


def _dead_directions(x: torch.Tensor, leak: float) -> torch.Tensor:
    """Unit ``v`` (R or 1, d) maximising ``t`` with ``x_i . v <= -t ||x_i||`` for inputs ``x`` (R or 1, n, d).

    Zero where no such ``v`` exists (``t = 0``) and for leaky ReLU (no dead neuron).
    """
    out = torch.zeros(x.shape[0], x.shape[-1], dtype=x.dtype, device=x.device)
    if leak != 0:
        return out
    for r, xr in enumerate(x.detach().cpu().numpy()):
        norms = np.linalg.norm(xr, axis=-1, keepdims=True)
        d = xr.shape[-1]
        cost = np.zeros(d + 1)
        cost[-1] = -1.0  # maximise t
        result = linprog(
            cost, A_ub=np.hstack([xr, norms]), b_ub=np.zeros(len(xr)), bounds=[(-1, 1)] * d + [(0, 1)], method="highs"
        )
        if result.status == 0 and -result.fun > DEAD_MARGIN:
            v = result.x[:d] / np.linalg.norm(result.x[:d])
            out[r] = torch.as_tensor(v, dtype=x.dtype, device=x.device)
    return out


def neuron_facts(
    w: torch.Tensor, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor, leak: float, kink_tolerance_factor: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The properties of a (snapped) point that the embedding theorems read.

    Parameters
    ----------
    w : (R, m, d), a : (R, m, k), x : (R or 1, n, d), y : (R or 1, n, k)
        float64 points and data.

    Returns
    -------
    kinked : (R, m) bool
        ``g_j`` is not identically 0: some line through kink inputs of ``j`` has ``sum gamma_ij ||x_i|| != 0``
        (theory.md 8.1, relative to ``||R|| s_x ||a_j||``).
    zero_neuron_escapes : (R,) bool
        An appended zero neuron is an escape neuron: ``D_new(u) = sum_i r_i rho(x_i . u)`` is not identically 0
        (theory.md 4: ``(1 + leak) / 2 sum_i r_i x_i^T != 0`` or a line with ``sum ||x_i|| r_i != 0``).
    """
    tol = tolerances_for("end_point").scaled_kink(kink_tolerance_factor)
    q = neuron_quantities(w, a, x, y, kink_mask(w, a, x, y, leak, tol, None), leak)
    par = parallel_inputs(x)
    scale = (q.r_norm * q.s_x).unsqueeze(-1)  # (R, 1)
    gamma_sums = line_sums(q.gamma, x, q.kink, par)  # (R, n, m)
    kinked = (gamma_sums.abs() > tol.stationary * (scale * a.norm(dim=-1)).unsqueeze(-2)).any(dim=-2)
    every = torch.ones_like(q.kink[..., :1])  # a zero neuron has every input on its kink
    residual_sums = line_sums(q.residual.unsqueeze(-2), x, every, par).squeeze(-2)  # (R, n, k)
    xb = x.expand(w.shape[0], -1, -1)
    b_tilde = 0.5 * (1.0 + leak) * torch.einsum("rnk,rnd->rkd", q.residual, xb)
    limit = tol.escape * scale
    escapes = (residual_sums.norm(dim=-1) > limit).any(dim=-1) | (b_tilde.flatten(-2).norm(dim=-1) > limit[:, 0])
    return kinked, escapes


def predicted_types(
    source_type: np.ndarray,
    escape: np.ndarray,
    kinked: np.ndarray,
    zero_neuron_escapes: np.ndarray,
    *,
    betas: Sequence[float],
    scalar_output: bool,
) -> np.ndarray:
    """The point types the embedding theorems allow for every embedding (the table of the module docstring).

    Parameters
    ----------
    source_type : (R,) int
        ``POINT_TYPE`` code of each original point.
    escape, kinked : (R, m) bool
        Escape neurons of the original point; ``g_j`` not identically 0 (:func:`neuron_facts`).
    zero_neuron_escapes : (R,) bool
        An appended zero neuron escapes (:func:`neuron_facts`).
    betas
        Split ratios of ``E3``.
    scalar_output
        ``k == 1`` (E2 then never adds an escape neuron).

    Returns
    -------
    (R, E) int8
        Bit ``2**code`` for each allowed ``POINT_TYPE``; 0: no prediction (also for uncertified originals).
    """
    runs, m = escape.shape
    kind, neuron, beta = embedding_layout(m, betas)
    source = np.asarray(source_type)
    code = labels.POINT_TYPE.index
    same = np.left_shift(1, np.clip(source, 0, None)).astype(np.int64)[:, None]  # (R, 1): {V}
    is_global = (source == code("global_min"))[:, None]
    is_saddle = (source == code("saddle"))[:, None]
    is_min = np.isin(source, [code("spurious_local_min"), code("local_min")])[:, None]
    clean = is_min & ~escape.any(axis=-1, keepdims=True)
    saddle, not_stationary = _bit("saddle"), _bit("not_stationary")

    e3 = kind == _KIND["E3"]
    split_kinked = np.zeros((runs, kind.size), bool)
    split_kinked[:, e3] = kinked[:, neuron[e3]]
    outside = e3 & ((beta < 0) | (beta > 1))
    on_end = e3 & ((beta == 0) | (beta == 1))
    zero_escapes = zero_neuron_escapes[:, None]

    prediction = np.zeros((runs, kind.size), np.int64)
    prediction = np.where(is_saddle, saddle, prediction)
    prediction = np.where(is_saddle & (kind == _KIND["E2"]), saddle | not_stationary, prediction)
    prediction = np.where(clean & (kind != _KIND["E1_zero"]), same, prediction)
    prediction = np.where(clean & (kind == _KIND["E2"]) & scalar_output, same | not_stationary, prediction)
    prediction = np.where(clean & (kind == _KIND["E2"]) & (not scalar_output), 0, prediction)
    prediction = np.where(is_min & (kind == _KIND["E1_dead"]), same, prediction)
    prediction = np.where(clean & (kind == _KIND["E1_zero"]) & ~zero_escapes, same, prediction)
    prediction = np.where(is_min & (kind == _KIND["E1_zero"]) & zero_escapes, saddle, prediction)
    prediction = np.where(is_min & split_kinked & on_end, saddle, prediction)
    prediction = np.where((is_min | is_saddle) & split_kinked & outside, not_stationary, prediction)
    prediction = np.where(is_global, _bit("global_min"), prediction)
    return prediction.astype(np.int8)


def classify_embeddings(
    end: BatchClassification,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    leak: float,
    realisable: bool,
    betas: Sequence[float],
    kink_tolerance_factor: float = 1.0,
) -> dict[str, np.ndarray]:
    """Embed every certified end point into width ``m + 1``; the predicted and the classifier's verdicts.

    The embeddings are built from the classified (snapped) points ``end.w``, ``end.a``, whose kinks are exact,
    and classified by :func:`pipeline.stationary.classify_batch` in end-point mode without a learning rate (no
    gradient descent produced them, so no zig-zag allowance), with the same ``realisable`` rule.

    Parameters
    ----------
    end
        The classification of the end points (R runs of width m).
    x : (R or 1, n, d), y : (R or 1, n, k)
        The runs' data (tensors).
    leak, realisable, kink_tolerance_factor
        As for :func:`pipeline.stationary.classify_batch`.
    betas
        Split ratios of ``E3``.

    Returns
    -------
    dict
        Store variables (:mod:`pipeline.store.schema`) with a leading run axis: ``embedding_source_type`` (R,),
        ``embedding_kind``, ``embedding_neuron``, ``embedding_beta``, ``embedding_point_type`` and
        ``embedding_predicted`` (R, E); -1 (NaN for ``beta``) where no embedding was built.
    """
    x64, y64 = x.detach().to(torch.float64), y.detach().to(torch.float64)
    w = torch.as_tensor(end.w, dtype=torch.float64, device=x64.device)
    a = torch.as_tensor(end.a, dtype=torch.float64, device=x64.device)
    runs, m = end.escape.shape
    kind, neuron, beta = embedding_layout(m, betas)
    certified = np.isin(end.point_type, [labels.code(labels.POINT_TYPE, name) for name in CERTIFIED])
    kinked, zero_escapes = neuron_facts(w, a, x64, y64, leak, kink_tolerance_factor)
    predicted = predicted_types(
        end.point_type,
        end.escape,
        kinked.cpu().numpy(),
        zero_escapes.cpu().numpy(),
        betas=betas,
        scalar_output=a.shape[-1] == 1,
    )
    w_e, a_e, built = embed(w, a, x64, leak, betas)
    built_np = built.cpu().numpy() & certified[:, None]
    point_type = np.full((runs, kind.size), -1, np.int8)
    index_r, index_e = np.nonzero(built_np)
    if index_r.size:
        pick = torch.as_tensor(index_r, device=x64.device)
        slot = torch.as_tensor(index_e, device=x64.device)
        verdict = classify_batch(
            w_e[pick, slot],
            a_e[pick, slot],
            x64 if x64.shape[0] == 1 else x64[pick],
            y64 if y64.shape[0] == 1 else y64[pick],
            leak=leak,
            realisable=realisable,
            kink_tolerance_factor=kink_tolerance_factor,
        )
        point_type[index_r, index_e] = verdict.point_type
    return {
        "embedding_source_type": np.where(certified, end.point_type, -1).astype(np.int8),
        "embedding_kind": np.where(built_np, kind, -1).astype(np.int8),
        "embedding_neuron": np.where(built_np, neuron, -1).astype(np.int16),
        "embedding_beta": np.where(built_np, beta, np.nan),
        "embedding_point_type": point_type,
        "embedding_predicted": np.where(built_np, predicted, -1).astype(np.int8),
    }
