"""The escape-consistency statistic of saddle-to-saddle dynamics (theory.md section 6).

At a plateau the classifier predicts which neurons are escape neurons. The theory says that the
neurons whose amplitude ``||w_j|| ||a_j||`` grows before the next plateau are escape neurons of the
plateau point (non-escape small neurons do not grow). Comparing the prediction with what gradient
descent did next is a built-in check of the classifier and of the plateau detection.
"""

from __future__ import annotations

import numpy as np

__all__ = ["escape_consistency"]


def escape_consistency(
    amplitude: np.ndarray, escape: np.ndarray, present: np.ndarray, growth_factor: float
) -> dict[str, np.ndarray]:
    """Which neurons grew after each plateau, and how that matches the predicted escape neurons.

    Parameters
    ----------
    amplitude : (R, P + 1, m)
        Neuron amplitudes at the P plateau points, then at the end point.
    escape : (R, P, m) bool
        Escape neurons predicted at each plateau point.
    present : (R, P) bool
        Which plateau slots hold a plateau (slots are filled from the front).
    growth_factor
        A neuron grew if its amplitude at the next plateau point (or the end point after the last
        plateau) exceeds ``growth_factor`` times its amplitude at this one.

    Returns
    -------
    dict
        ``plateau_grew`` (R, P, m) bool; ``plateau_n_grew``, ``plateau_n_grew_predicted`` (grew and
        predicted escape) and ``plateau_n_escape`` (R, P) int16, -1 where no plateau.
    """
    n_slots = present.shape[1]
    has_next_plateau = np.concatenate([present[:, 1:], np.zeros_like(present[:, :1])], axis=1)
    next_index = np.where(has_next_plateau, np.arange(n_slots) + 1, n_slots)
    following = np.take_along_axis(amplitude, next_index[:, :, None], axis=1)
    current = amplitude[:, :n_slots]
    with np.errstate(invalid="ignore"):
        grew = (following > growth_factor * current) & present[:, :, None]
    grew &= np.isfinite(following) & np.isfinite(current)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.where(present, mask.sum(axis=-1), -1).astype(np.int16)

    return {
        "plateau_grew": grew,
        "plateau_n_grew": count(grew),
        "plateau_n_grew_predicted": count(grew & escape),
        "plateau_n_escape": count(escape & present[:, :, None]),
    }
