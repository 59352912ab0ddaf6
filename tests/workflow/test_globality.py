"""Globality per architecture (issue 19): spurious means not global for *that* network on that data."""

from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.globality import reference_losses, resolve_globality
from pipeline.stationary import labels

LOCAL = labels.code(labels.POINT_TYPE, "local_min")
GLOBAL = labels.code(labels.POINT_TYPE, "global_min")
SPURIOUS = labels.code(labels.POINT_TYPE, "spurious_local_min")
SADDLE = labels.code(labels.POINT_TYPE, "saddle")


def _dataset(widths, activations, data_seeds, losses) -> xr.Dataset:
    runs = np.arange(len(losses))
    coords = {
        "run": runs,
        "data_key": ("run", np.full(len(runs), 7)),
        "data_seed": ("run", np.asarray(data_seeds)),
        "width": ("run", np.asarray(widths)),
        "activation": ("run", np.asarray(activations)),
        "leak": ("run", np.where(np.asarray(activations) == "leaky_relu", 0.1, np.nan)),
        "output_layer": ("run", np.full(len(runs), "trained")),
    }
    return xr.Dataset({"loss_final": ("run", np.asarray(losses, dtype=float))}, coords=coords)


def test_a_narrow_networks_minima_are_compared_with_the_same_architecture_only():
    # eleven width-2 leaky minima at one loss, one width-8 run far below on the same data (the audit's case)
    widths = [2] * 11 + [8]
    activations = ["leaky_relu"] * 12
    losses = [0.3] * 11 + [1e-9]
    ds = _dataset(widths, activations, [0] * 12, losses)
    reference = reference_losses(ds)
    np.testing.assert_allclose(reference, [0.3] * 11 + [1e-9])
    resolved = resolve_globality(np.full(12, LOCAL, np.int8), np.asarray(losses), reference)
    assert (resolved[:11] == GLOBAL).all()


def test_references_are_per_data_set_and_activation_and_only_local_minima_are_resolved():
    widths = [4, 4, 4, 4, 4, 4]
    activations = ["relu", "relu", "leaky_relu", "leaky_relu", "relu", "relu"]
    seeds = [0, 0, 0, 0, 1, 1]
    losses = [0.5, 0.2, 0.4, 0.4, 0.1, 0.9]
    ds = _dataset(widths, activations, seeds, losses)
    reference = reference_losses(ds)
    np.testing.assert_allclose(reference, [0.2, 0.2, 0.4, 0.4, 0.1, 0.1])
    types = np.array([LOCAL, LOCAL, LOCAL, SADDLE, LOCAL, LOCAL], np.int8)
    resolved = resolve_globality(types, np.asarray(losses), reference)
    np.testing.assert_array_equal(resolved, [SPURIOUS, GLOBAL, GLOBAL, SADDLE, GLOBAL, SPURIOUS])


def test_stalled_at_a_saddle_means_the_run_converged_there():
    """Issue 11: a saddle end point of a run stopped by the step budget is unresolved on a plateau."""
    from pipeline.dynamics import StopReason
    from pipeline.resolution import LIMIT, OUTCOME, RESOLUTION, resolve_runs

    types = np.array([SADDLE, SADDLE, GLOBAL, SADDLE, 5, 5, 5], np.int8)  # 5: not_stationary
    stops = np.array([StopReason.CONVERGED, StopReason.MAX_STEPS, StopReason.MAX_STEPS, StopReason.DIVERGED]
                     + [StopReason.MAX_STEPS] * 3)  # fmt: skip
    strictness = np.array([0, 0, 3, 0, 3, 3, 3], np.int8)
    witness = np.array([True, True, False, True, False, False, False])
    zero_loss = np.array([False] * 4 + [True, False, False])
    final_plateau = np.array([False] * 5 + [True, False])
    limit, resolution, outcome = resolve_runs(types, strictness, witness, stops, zero_loss, final_plateau)
    assert [OUTCOME[code] for code in outcome] == [
        "stalled_at_saddle", "unresolved_on_plateau", "converged_global", "diverged", "converging_to_zero_loss",
        "unresolved_on_plateau", "unresolved_moving",
    ]  # fmt: skip
    assert [LIMIT[code] for code in limit] == [
        "saddle_strict", "unresolved", "global_min", "diverged", "global_min", "unresolved", "unresolved"
    ]  # fmt: skip
    assert [RESOLUTION[code] for code in resolution] == [
        "certified", "unresolved_on_plateau", "certified", "diverged", "converging_to_zero_loss",
        "unresolved_on_plateau", "unresolved_moving",
    ]  # fmt: skip
