"""Integer code tables for every categorical field of the stationary-point classifier.

Each table is a tuple of names; the integer code of a name is its position in the tuple, so
``TABLE[code]`` decodes and :func:`code` encodes. Codes are stable: new names are only ever
appended. :func:`flag_attrs` turns a table into CF-convention ``flag_values`` / ``flag_meanings``
attributes for the survey store. The saddle-mechanism set is a bit field (CF ``flag_masks``).

Meanings (theory.md section 8.1):

``STATIONARITY``
    ``stationary`` (relative gap below the strict tolerance), ``approx_stationary`` (below the
    relaxed tolerance), ``clarke_only`` (Clarke but not directionally stationary: a kink point with
    a loss-decreasing activation), ``not_stationary``.
``POINT_TYPE``
    ``global_min``, ``spurious_local_min``, ``local_min`` (globality unknown), ``saddle``,
    ``undetermined`` (no certificate either way), ``not_stationary``, ``non_finite`` (the point has
    NaN or infinite parameters, e.g. a diverged run: it is labelled, not classified).
``IS_LOCAL_MIN``
    tri-state ``False`` (certified not a local minimum), ``True`` (certified), ``None``.
``CERTIFICATE``
    ``no_escape`` (5.1), ``escape_zero_output`` (5.2), ``hessian_morse_bott`` and
    ``negative_curvature_witness`` (8.2 step 7), ``first_order_descent``, ``none`` (also a point of numerically
    zero loss of the non-negative loss: a global minimum whatever its curvature, no local certificate needed).
``STRICTNESS``
    ``strict``, ``non_strict``, ``unknown``, ``not_applicable`` (minima, non-stationary points).
``ROLE``
    per neuron: ``active_smooth``, ``active_kinked``, ``dead`` (ReLU, all pre-activations < 0),
    ``dead_touching`` (ReLU, none > 0, some = 0), ``zero_output`` (a_j = 0), ``zero_input``
    (w_j = 0), ``zero`` (both).
``MARGIN_LIMIT``
    what bounds the local-minimum margin (:mod:`pipeline.stationary.margins`): ``unbounded``,
    ``kink_distance`` (a pre-activation off a kink set changes sign), ``output_weight`` (``1 / C_j`` of 5.1).
``MECHANISM``
    bit ``2**i`` for ``MECHANISM[i]``: ``Z`` zero neuron, ``O-split`` zero-output copy of a neuron
    with the same activation pattern, ``O-touch`` zero-output dead ReLU neuron touching data,
    ``O-other`` other zero-output escape neuron, ``V`` vector output with a_j != 0.
``EMBEDDING_KIND``
    how a point of width ``m`` is embedded into width ``m + 1`` (theory.md 7; :mod:`pipeline.stationary.embedding`):
    ``E1_zero`` (a zero neuron), ``E1_dead`` (a strictly dead ReLU neuron with zero output weight), ``E2`` (a
    zero-input neuron with a non-zero output weight), ``E3`` (neuron ``j`` split with ratio ``beta``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CERTIFICATE",
    "EMBEDDING_KIND",
    "IS_LOCAL_MIN",
    "MARGIN_LIMIT",
    "MECHANISM",
    "POINT_TYPE",
    "ROLE",
    "STATIONARITY",
    "STRICTNESS",
    "code",
    "decode_is_local_min",
    "decode_mechanisms",
    "flag_attrs",
    "mechanism_flag_attrs",
    "point_type_set_attrs",
]

MARGIN_LIMIT: tuple[str, ...] = ("unbounded", "kink_distance", "output_weight")
STATIONARITY: tuple[str, ...] = ("stationary", "approx_stationary", "clarke_only", "not_stationary")
POINT_TYPE: tuple[str, ...] = (
    "global_min",
    "spurious_local_min",
    "local_min",
    "saddle",
    "undetermined",
    "not_stationary",
    "non_finite",
)
IS_LOCAL_MIN: tuple[str, ...] = ("false", "true", "unknown")
CERTIFICATE: tuple[str, ...] = (
    "no_escape",
    "escape_zero_output",
    "hessian_morse_bott",
    "negative_curvature_witness",
    "first_order_descent",
    "none",
)
STRICTNESS: tuple[str, ...] = ("strict", "non_strict", "unknown", "not_applicable")
ROLE: tuple[str, ...] = (
    "active_smooth",
    "active_kinked",
    "dead",
    "dead_touching",
    "zero_output",
    "zero_input",
    "zero",
)
MECHANISM: tuple[str, ...] = ("Z", "O-split", "O-touch", "O-other", "V")
EMBEDDING_KIND: tuple[str, ...] = ("E1_zero", "E1_dead", "E2", "E3")


def code(table: tuple[str, ...], name: str) -> int:
    """Integer code of ``name`` in ``table``; raises ``ValueError`` naming the allowed values."""
    try:
        return table.index(name)
    except ValueError:
        raise ValueError(f"unknown label {name!r}; allowed: {', '.join(table)}") from None


def decode_is_local_min(value: int) -> bool | None:
    """Decode an ``IS_LOCAL_MIN`` code to ``False`` / ``True`` / ``None``."""
    return (False, True, None)[int(value)]


def decode_mechanisms(bits: int) -> frozenset[str]:
    """Decode a ``MECHANISM`` bit field to a set of mechanism names."""
    return frozenset(name for i, name in enumerate(MECHANISM) if int(bits) >> i & 1)


def flag_attrs(table: tuple[str, ...]) -> dict[str, object]:
    """CF attributes ``flag_values`` (int8 array) and ``flag_meanings`` (blank separated)."""
    return {"flag_values": np.arange(len(table), dtype=np.int8), "flag_meanings": " ".join(table)}


def mechanism_flag_attrs() -> dict[str, object]:
    """CF attributes ``flag_masks`` / ``flag_meanings`` for the mechanism bit field."""
    return {
        "flag_masks": (2 ** np.arange(len(MECHANISM))).astype(np.int8),
        "flag_meanings": " ".join(MECHANISM),
    }


def point_type_set_attrs() -> dict[str, object]:
    """CF attributes ``flag_masks`` / ``flag_meanings`` for a set of point types (bit ``2**code``; 0: empty set)."""
    return {
        "flag_masks": (2 ** np.arange(len(POINT_TYPE))).astype(np.int8),
        "flag_meanings": " ".join(POINT_TYPE),
    }
