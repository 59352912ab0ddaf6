"""Global or spurious: the survey-wide half of a local minimum's verdict (theory.md 8.2 step 8).

The classifier certifies *local* minimality from local information; whether a local minimum is global
needs a value of the global minimum for the same network on the same data. Without a provable value
(a realisable target at numerically zero loss is decided in the classifier), the reference is the best
final loss that any run of the survey reached **with the same architecture on the same data set**: same
data (``data_key``, ``data_seed``), same width, activation and leak, same output layer. Runs of another width
or activation minimise a different function; comparing with them would call minima of a narrow network
"spurious" because a wider one fits better. The reference is an upper bound on the global minimum, so a
minimum above it is certainly not global (``spurious_local_min``), and one at it is the best known
(``global_min`` in the sense stated in the store's ``global_rule`` attribute).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.stationary import labels

__all__ = ["ARCHITECTURE", "GLOBAL_RELATIVE_TOLERANCE", "GLOBAL_RULE", "reference_losses", "resolve_globality"]

ARCHITECTURE: tuple[str, ...] = ("data_key", "data_seed", "width", "activation", "leak", "output_layer")
"""Coordinates that identify one loss function: a reference loss is shared only within a group of equal values."""

GLOBAL_RELATIVE_TOLERANCE = 1e-4
"""A minimum within this relative distance of the reference loss is the best known one."""

GLOBAL_RULE = (
    "global_min: realisable target and loss ~ 0, or loss within a relative "
    f"{GLOBAL_RELATIVE_TOLERANCE:g} of global_reference_loss (the best final loss of the runs of the same width, "
    "activation, leak and output layer on the same data set); otherwise spurious_local_min"
)


def reference_losses(dataset: xr.Dataset) -> np.ndarray:
    """Best ``loss_final`` per group of equal ``ARCHITECTURE`` coordinates, broadcast to every run, (R,)."""
    keys = [dataset[name].values for name in ARCHITECTURE if name in dataset.coords]
    groups = pd.MultiIndex.from_arrays([pd.Index(np.asarray(k)).astype(str) for k in keys]).factorize()[0]
    return pd.Series(dataset["loss_final"].values).groupby(groups).transform("min").to_numpy()


def resolve_globality(point_type: np.ndarray, end_loss: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``local_min`` codes become ``global_min`` or ``spurious_local_min`` against ``reference`` (copies)."""
    resolved = point_type.astype(np.int8).copy()
    local = resolved == labels.code(labels.POINT_TYPE, "local_min")
    is_global = end_loss <= reference * (1 + GLOBAL_RELATIVE_TOLERANCE) + np.finfo(float).tiny
    resolved[local & is_global] = labels.code(labels.POINT_TYPE, "global_min")
    resolved[local & ~is_global] = labels.code(labels.POINT_TYPE, "spurious_local_min")
    return resolved
