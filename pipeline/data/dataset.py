"""The data set a run trains on, whatever its source (drawn at random, a file, scikit-learn, a population)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A data set as the student sees it.

    Attributes
    ----------
    x : (n, d_eff)
        Inputs, float64; ``d_eff = input_dim + 1`` when a bias column was appended.
    y : (n, k)
        Targets, float64, label noise included.
    teacher_v : (m*, input_dim) or None
        Teacher input weights (acting on the inputs without the bias column); None unless the
        target is a teacher.
    teacher_b : (m*, k) or None
        Teacher output weights; None unless the target is a teacher.
    affine_slope : (input_dim, k) or None
        Slope of an affine target given as a map (population inputs); None otherwise.
    affine_intercept : (k,) or None
        Its intercept.
    """

    x: np.ndarray
    y: np.ndarray
    teacher_v: np.ndarray | None = None
    teacher_b: np.ndarray | None = None
    affine_slope: np.ndarray | None = None
    affine_intercept: np.ndarray | None = None
