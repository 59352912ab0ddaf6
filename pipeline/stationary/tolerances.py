"""Relative tolerances of the classifier (theory.md section 8.2) for the two modes.

All tolerances are relative to the data scales ``s_x = max_i ||x_i||`` and
``s_y = sqrt(||Y||_F^2 / n)`` or to the quantities named below, so that rescaling the data never
changes a label.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["MODES", "Tolerances", "population_tolerances", "tolerances_for"]

MODES: tuple[str, ...] = ("end_point", "plateau")


@dataclass(frozen=True)
class Tolerances:
    """Tolerances of one classification pass.

    Attributes
    ----------
    kink
        ``tau_z`` floor: ``i`` is a kink point of neuron ``j`` if ``|z_ij| <= kink * ||w_j|| ||x_i||``, or
        (with a learning rate) ``|z_ij| <= kink_factor * eta |x_i . grad_{w_j} L|``.
    kink_factor
        ``C`` of step 2 (used only with a learning rate): a pre-activation within ``C`` gradient-descent
        steps of zero may be zig-zagging across its kink. Near a kinked point that GD crosses back and
        forth, the step along ``x_i`` is ``(1 - leak) s J`` on one side and ``(1 - leak) (1 - s) J`` on the
        other (``J = eta |c_ij| ||x_i||^2 / n``, ``s`` the stationarity multiplier) and ``|z_ij|`` never
        exceeds the step that crosses, so ``C = 1`` suffices for one kink; ``C = 2`` leaves a factor 2 for
        the coupling of a neuron's other kinks. A converged run (vanishing gradient) has no zig-zag: its
        kinks are those of the pure tolerance. The 0.1x / 10x sensitivity re-runs flag every label that
        depends on the choice.
    stationary, approx_stationary
        Strict and relaxed thresholds on the relative first-order gaps (step 5).
    escape
        Relative threshold on ``D_j`` (``||.|| / (||R||_F s_x)``) below which ``D_j`` counts as zero.
    zero_output
        ``a_j`` counts as zero if ``||a_j|| <= zero_output * s_y`` (end points: only tiny values).
    amplitude
        Plateau mode only: neurons with ``||w_j|| ||a_j|| s_x <= amplitude * s_y`` are set to zero.
    global_loss
        ``tau_L``: a loss ``<= tau_L s_y^2`` is a global minimum (interpolation).
    curvature
        Hessian eigenvalues below ``curvature * lambda_max`` count as zero.
    """

    kink: float = 1e-8
    kink_factor: float = 2.0
    stationary: float = 1e-6
    approx_stationary: float = 1e-3
    escape: float = 1e-6
    zero_output: float = 1e-12
    amplitude: float = 0.0
    global_loss: float = 1e-10
    curvature: float = 1e-8

    def scaled_kink(self, factor: float) -> Tolerances:
        """Copy with both kink-tolerance terms multiplied by ``factor`` (sensitivity re-runs)."""
        return replace(self, kink=self.kink * factor, kink_factor=self.kink_factor * factor)


def tolerances_for(mode: str) -> Tolerances:
    """Default tolerances for ``mode`` (``"end_point"`` or ``"plateau"``)."""
    if mode == "end_point":
        return Tolerances()
    if mode == "plateau":
        return Tolerances(stationary=1e-2, approx_stationary=1e-1, escape=1e-2, amplitude=1e-3, global_loss=1e-6)
    raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")


def population_tolerances(mode: str) -> Tolerances:
    """Tolerances of the population classifiers (:mod:`~pipeline.stationary.population_points`, ``interval_points``).

    End points: relative gradient norm ``1e-6`` (stationary) and ``1e-2`` (approximately stationary), zero loss
    ``1e-8 s_y^2``, escape threshold ``1e-6``. Plateau points: the plateau tolerances of :func:`tolerances_for`,
    as for sampled data. Only ``stationary``, ``approx_stationary``, ``escape`` and ``global_loss`` are read
    (the population losses have no data on kinks).
    """
    if mode == "end_point":
        return Tolerances(stationary=1e-6, approx_stationary=1e-2, global_loss=1e-8)
    return tolerances_for(mode)
