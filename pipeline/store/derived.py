"""Survey-wide derived variables of a gathered store: global or spurious (end points, and the final plateaus
that are the end point), outcome, neuron counts.

The collect step (:mod:`pipeline.workflow.commands.collect`) passes :func:`add_derived_variables` to
:func:`pipeline.store.gathering.gather`: the storage layer writes these variables but decides none of them. The
global/spurious verdict of the minima the classifier left ``local_min`` uses the classifier's own rule
(:func:`pipeline.globality.resolve_globality`) against the survey's reference loss.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.globality import GLOBAL_RULE, reference_losses, resolve_globality
from pipeline.resolution import resolve_runs
from pipeline.stationary import labels
from pipeline.store.schema import VARIABLES
from pipeline.trajectory import final_plateau_at_end

__all__ = ["add_derived_variables"]


def add_derived_variables(dataset: xr.Dataset) -> xr.Dataset:
    """Survey-wide variables: global reference loss, global/spurious resolution, outcome, counts.

    Only 1-D per-run arrays are loaded; parameter arrays stay lazy.
    """
    reference_loss = reference_losses(dataset)
    point_type = resolve_globality(dataset["end_point_type"].values, dataset["end_loss"].values, reference_loss)
    limit, resolution, outcome = resolve_runs(
        point_type,
        dataset["end_strictness"].values,
        dataset["end_has_witness"].values,
        dataset["stop_reason"].values,
        dataset["zero_loss_approach"].values,
        np.asarray(dataset["plateau_is_final"].values.any(axis=-1)),
    )
    roles = dataset["end_roles"].values
    dead = np.isin(roles, [labels.code(labels.ROLE, "dead"), labels.code(labels.ROLE, "dead_touching")])
    plateau_type = dataset["plateau_point_type"].values.copy()
    at_end = final_plateau_at_end(
        dataset["plateau_is_final"].values, dataset["plateau_loss"].values, dataset["end_loss"].values
    )
    runs, slots = np.nonzero(at_end & (plateau_type >= 0))  # -1: plateau points not classified
    plateau_type[runs, slots] = point_type[runs]  # one story per point: the end point's globality too
    derived = {
        "end_point_type": point_type,
        "plateau_point_type": plateau_type,
        "global_reference_loss": reference_loss,
        "outcome": outcome,
        "limit": limit,
        "resolution": resolution,
        "n_escape_neurons": dataset["end_escape"].values.sum(axis=-1).astype(np.int16),
        "n_dead_neurons": dead.sum(axis=-1).astype(np.int16),
        "n_kink_neurons": dataset["end_kink"].values.sum(axis=-1).astype(np.int16),
    }
    for name, values in derived.items():
        dataset[name] = xr.Variable(VARIABLES[name].dims, values, attrs=VARIABLES[name].attrs())
    dataset["end_point_type"].attrs["global_rule"] = GLOBAL_RULE
    return dataset
