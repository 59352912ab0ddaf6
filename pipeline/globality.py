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

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.losses.activations import activation_from_settings
from pipeline.stationary import labels
from pipeline.stationary.minima import minimum_types

__all__ = [
    "ARCHITECTURE",
    "GLOBAL_BASIS",
    "GLOBAL_RELATIVE_TOLERANCE",
    "GLOBAL_RULE",
    "activation_leak",
    "global_value_basis",
    "reference_losses",
    "resolve_globality",
]

GLOBAL_BASIS: tuple[str, ...] = ("realisable_target", "interpolation_width", "best_known")
"""What a run's global-minimum value rests on. ``realisable_target``: the student contains the noiseless
target, so the global minimum is 0. ``interpolation_width``: a one-hidden-layer network with a bias input
and a trained output layer interpolates any ``n`` distinct inputs once its width is at least ``n`` (ReLU;
Zhang et al. 2017, Theorem 1: project on a direction that separates the inputs and place one kink between
consecutive projections, which gives a triangular system for the output weights) or ``2n`` (leaky ReLU,
whose two units ``rho(z) + leak rho(-z) = (1 - leak^2) relu(z)`` make one ReLU unit), so the global minimum is 0;
a quadratic network computes a quadratic form of the input and cannot interpolate in general.
``best_known``: no theorem applies; the value is the best loss the survey found (:func:`reference_losses`)."""

ARCHITECTURE: tuple[str, ...] = ("data_key", "data_seed", "width", "activation", "leak", "output_layer")
"""Coordinates that identify one loss function: a reference loss is shared only within a group of equal values."""

GLOBAL_RELATIVE_TOLERANCE = 1e-4
"""A minimum within this relative distance of the reference loss is the best known one."""

GLOBAL_RULE = (
    "global_min: a global-minimum value of 0 proved by global_basis (realisable target, or interpolation width)"
    " and loss ~ 0, or loss within a relative "
    f"{GLOBAL_RELATIVE_TOLERANCE:g} of global_reference_loss (the best final loss of the runs of the same width, "
    "activation, leak and output layer on the same data set); otherwise spurious_local_min"
)


def activation_leak(activation: str | None, leak: float | None) -> float:
    """The activation's negative slope: 0 for ReLU."""
    return float(leak) if activation == "leaky_relu" and leak is not None else 0.0


def global_value_basis(settings: Mapping[str, Any], x: np.ndarray | None) -> str:
    """The :data:`GLOBAL_BASIS` entry that proves a global-minimum value for a batch of one grid cell.

    Parameters
    ----------
    settings
        The cell's settings (:func:`pipeline.survey.plan.run_settings`).
    x
        The runs' inputs (R, n, d), bias column included; ``None`` for population losses (no interpolation).
    """
    if settings["label_noise"]:  # None with given data (no label noise setting)
        return "best_known"
    student = activation_from_settings(settings["activation"], settings["leak"])
    if settings["target"] == "affine" and settings["bias"] and settings["output_layer"] == "trained":
        if student.has_kink:
            return "realisable_target"  # one neuron whose kink lies outside the data is affine on it
        # (1 + l/2)^2 - (1 - l/2)^2 = 2 l for an affine l = slope . x + intercept: two quadratic units per output
        return "realisable_target" if settings["width"] >= 2 * settings["output_dim"] else "best_known"
    if settings["target"] == "teacher":
        same_activation = activation_from_settings(settings["teacher_activation"], settings["teacher_leak"]) == student
        fixed_ok = settings["output_layer"] == "trained" or settings["teacher_kind"] == "orthonormal"
        if same_activation and fixed_ok and settings["width"] >= settings["teacher_width"]:
            return "realisable_target"
    if x is None or not settings["bias"] or settings["output_layer"] != "trained" or not student.has_kink:
        return "best_known"
    units_per_point = 1 if activation_leak(settings["activation"], settings["leak"]) == 0.0 else 2
    distinct = all(np.unique(run, axis=0).shape[0] == run.shape[0] for run in np.asarray(x))
    if distinct and settings["width"] >= units_per_point * x.shape[-2]:
        return "interpolation_width"
    return "best_known"


def reference_losses(dataset: xr.Dataset) -> np.ndarray:
    """Best ``loss_final`` per group of equal ``ARCHITECTURE`` coordinates, broadcast to every run, (R,)."""
    keys = [dataset[name].values for name in ARCHITECTURE if name in dataset.coords]
    groups = pd.MultiIndex.from_arrays([pd.Index(np.asarray(k)).astype(str) for k in keys]).factorize()[0]
    return pd.Series(dataset["loss_final"].values).groupby(groups).transform("min").to_numpy()


def resolve_globality(point_type: np.ndarray, end_loss: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``local_min`` codes become ``global_min`` or ``spurious_local_min`` against ``reference`` (copies).

    The classifier's rule (:func:`pipeline.stationary.minima.minimum_types`) with the reference loss as the
    global value; the minima the classifier already resolved keep their verdict.
    """
    resolved = point_type.astype(np.int8).copy()
    local = resolved == labels.code(labels.POINT_TYPE, "local_min")
    resolved[local] = minimum_types(
        end_loss[local],
        global_value=reference[local],
        relative=GLOBAL_RELATIVE_TOLERANCE,
        absolute=np.finfo(float).tiny,
    )
    return resolved
