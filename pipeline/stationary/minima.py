"""Global, spurious or local: the one rule that resolves a local minimum against a global-minimum value.

A local minimum is global when its loss is within tolerance of a known value of the global minimum, and
spurious above it; without a known value it stays ``local_min``. Every verdict uses this rule, with the value
its caller knows: 0 for a realisable target (:mod:`pipeline.stationary.classify`,
:mod:`pipeline.stationary.population_points`), a best known loss given to the classifier, or the survey's
reference loss at collection (:func:`pipeline.globality.resolve_globality`). The classifier resolves what it
can decide from one point; collection resolves only the minima left ``local_min``.
"""

from __future__ import annotations

import numpy as np

from pipeline.stationary import labels

__all__ = ["minimum_types"]


def minimum_types(
    loss: np.ndarray, *, global_value: np.ndarray, relative: float, absolute: np.ndarray | float
) -> np.ndarray:
    """``POINT_TYPE`` codes (R,) int8 of local minima of loss ``loss`` (R,) against ``global_value`` (R,).

    ``global_min`` where ``loss <= global_value (1 + relative) + absolute``, ``spurious_local_min`` above,
    ``local_min`` where ``global_value`` is NaN (unknown).
    """
    kind = np.full(np.shape(loss), labels.code(labels.POINT_TYPE, "local_min"), np.int8)
    known = np.isfinite(global_value)
    is_global = loss <= global_value * (1 + relative) + absolute
    kind[known & is_global] = labels.code(labels.POINT_TYPE, "global_min")
    kind[known & ~is_global] = labels.code(labels.POINT_TYPE, "spurious_local_min")
    return kind
