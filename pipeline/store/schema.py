"""The schema of the survey store: every data variable with its dimensions, description, units and flags.

This table is the single source of truth for the store (``results/<survey>/survey.zarr``):
:mod:`pipeline.batch` pads arrays to its dimensions, :mod:`pipeline.store.writing` attaches its attributes
and :func:`pipeline.store.validation.validate` checks a store against it. Categorical variables are small
integers with CF ``flag_values`` / ``flag_meanings`` (or ``flag_masks`` for bit fields); -1 marks
"no value" (a padded plateau slot).

Dimensions: ``run``; ``neuron`` (padded to the survey's largest width, NaN/False/-1 beyond a run's
own ``width``); ``input`` (input dimension including the bias column, padded); ``output``;
``checkpoint`` (log-spaced steps of the trajectory summary, padded); ``plateau`` (slots, padded);
``embedding`` (the embeddings of the end point into width ``m + 1``, slots of
:func:`pipeline.stationary.embedding.embedding_layout` for the largest width, padded).

A variable with an ``option`` is written only when that survey option is on (``classify.embeddings``); a
store holds all variables of an option or none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import BytesBytesCodec
from zarr.codecs import Crc32cCodec, ZstdCodec

from pipeline.dynamics import StopReason
from pipeline.end_game import EndGameMethod
from pipeline.globality import GLOBAL_BASIS
from pipeline.problems import loss_formula
from pipeline.resolution import LIMIT, OUTCOME, RESOLUTION
from pipeline.stationary import labels

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "OUTCOME",
    "SCHEMA_VERSION",
    "VARIABLES",
    "Variable",
    "compressors",
    "loss_description",
    "run_input_distributions",
]

SCHEMA_VERSION = 2
"""2: end game, limit verdicts and resolution statuses (pipeline.resolution), global_basis."""


@dataclass(frozen=True)
class Variable:
    """Dimensions and attributes of one store variable."""

    dims: tuple[str, ...]
    description: str
    units: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    option: str | None = None

    def attrs(self, input_distributions: Iterable[str] = ()) -> dict[str, Any]:
        """The variable's attributes as written to a store of runs on ``input_distributions``.

        A description that names ``{loss}`` states the loss of those runs (:func:`loss_description`).
        """
        description = self.description
        if "{loss}" in description:
            description = description.replace("{loss}", loss_description(input_distributions))
        attrs: dict[str, Any] = {"description": description}
        if self.units is not None:
            attrs["units"] = self.units
        attrs.update(self.flags)
        return attrs


def loss_description(input_distributions: Iterable[str]) -> str:
    """The losses that runs on ``input_distributions`` minimise (:func:`pipeline.problems.loss_formula`),
    joined by "; ".

    With no distribution named, the loss on training inputs.
    """
    formulas = sorted({loss_formula(name) for name in input_distributions}) or [loss_formula("")]
    return "; ".join(formulas)


def run_input_distributions(dataset: xr.Dataset) -> list[str]:
    """The input distributions of a store's runs (none named when it has no such coordinate)."""
    if "input_distribution" not in dataset.coords:
        return []
    return sorted({str(value) for value in np.unique(dataset["input_distribution"].values)})


def compressors() -> tuple[BytesBytesCodec, ...]:
    """The codecs applied to the bytes of every chunk of every array (shard and survey stores).

    zstd, then a CRC-32C of the compressed bytes (zarr v3's ``crc32c`` codec): zarr refuses to
    decode a chunk whose bytes changed on disk or in a copy, instead of returning wrong numbers.
    A CRC cannot tell one intact chunk from another; the manifest (:mod:`pipeline.store.manifest`) can.
    """
    return (ZstdCodec(level=0, checksum=False), Crc32cCodec())


RUN = ("run",)
NEURON = ("run", "neuron")
W = ("run", "neuron", "input")
A = ("run", "neuron", "output")
CHECKPOINT = ("run", "checkpoint")
PLATEAU = ("run", "plateau")
EMBEDDING = ("run", "embedding")
STOP_FLAGS = {
    "flag_values": [int(reason) for reason in StopReason],
    "flag_meanings": " ".join(reason.name.lower() for reason in StopReason),
}


def _point_variables(prefix: str, what: str, dims: tuple[str, ...]) -> dict[str, Variable]:
    """Classification variables of a point (end point: dims ``(run,)``; plateau points: ``(run, plateau)``)."""
    return {
        f"{prefix}_point_type": Variable(
            dims, f"type of the {what} (theory.md 8.1)", flags=labels.flag_attrs(labels.POINT_TYPE)
        ),
        f"{prefix}_stationarity": Variable(
            dims, f"directional stationarity of the {what} (theory.md 3)", flags=labels.flag_attrs(labels.STATIONARITY)
        ),
        f"{prefix}_certificate": Variable(
            dims, f"what certifies the type of the {what}", flags=labels.flag_attrs(labels.CERTIFICATE)
        ),
        f"{prefix}_mechanisms": Variable(
            dims, f"saddle mechanisms of the {what} (bit field)", flags=labels.mechanism_flag_attrs()
        ),
        f"{prefix}_escape": Variable(dims + ("neuron",), f"escape neurons of the {what} (theory.md 4)"),
    }


VARIABLES: dict[str, Variable] = {
    # gradient descent
    "w_init": Variable(W, "initial input weights w_j"),
    "a_init": Variable(A, "initial output weights a_j"),
    "w_final": Variable(W, "input weights at the last step"),
    "a_final": Variable(A, "output weights at the last step"),
    "loss_final": Variable(RUN, "{loss} at the last step", "target units squared"),
    "grad_norm_final": Variable(
        RUN, "Euclidean norm of the gradient of {loss} over all trained parameters, at the last step"
    ),
    "steps_taken": Variable(RUN, "gradient steps applied", "steps"),
    "stop_reason": Variable(RUN, "why the run stopped", flags=STOP_FLAGS),
    "checkpoint_step": Variable(CHECKPOINT, "step of each checkpoint (log-spaced; -1 padding)", "steps"),
    "checkpoint_loss": Variable(CHECKPOINT, "loss at the checkpoint (NaN after the run stopped)"),
    "checkpoint_grad_norm": Variable(CHECKPOINT, "gradient norm at the checkpoint"),
    "checkpoint_amplitude": Variable(CHECKPOINT + ("neuron",), "neuron amplitude ||w_j|| ||a_j|| at the checkpoint"),
    "checkpoint_balance": Variable(CHECKPOINT + ("neuron",), "neuron balance ||w_j||^2 - ||a_j||^2 at the checkpoint"),
    "n_plateaus": Variable(RUN, "plateaus detected (only the first `plateau` slots are stored)"),
    "plateau_start": Variable(PLATEAU, "first step of the plateau (-1: empty slot)", "steps"),
    "plateau_end": Variable(PLATEAU, "first step after the plateau", "steps"),
    "plateau_step": Variable(PLATEAU, "representative step (smallest gradient norm in the plateau)", "steps"),
    "plateau_loss": Variable(PLATEAU, "loss at the representative step"),
    "plateau_grad_norm": Variable(PLATEAU, "gradient norm at the representative step"),
    "plateau_is_final": Variable(PLATEAU, "the plateau lasted until the run stopped"),
    "plateau_w": Variable(PLATEAU + ("neuron", "input"), "input weights at the representative step"),
    "plateau_a": Variable(PLATEAU + ("neuron", "output"), "output weights at the representative step"),
    # end-point classification (pipeline.stationary.classify_batch)
    "end_w": Variable(W, "input weights of the classified end point (after snapping onto exact kinks)"),
    "end_a": Variable(A, "output weights of the classified end point"),
    "end_loss": Variable(RUN, "loss at the classified end point"),
    "end_first_order_gap": Variable(RUN, "relative directional-stationarity gap (max over neurons; theory.md 8.2)"),
    "end_is_local_min": Variable(
        RUN,
        "certified local minimum (true), certified not (false), unknown",
        flags=labels.flag_attrs(labels.IS_LOCAL_MIN),
    ),
    "end_strictness": Variable(RUN, "strictness of a saddle", flags=labels.flag_attrs(labels.STRICTNESS)),
    "end_differentiable": Variable(RUN, "the loss is differentiable at the end point (theory.md 8.1)"),
    "end_kink": Variable(NEURON, "neuron has data points on its kink"),
    "end_roles": Variable(NEURON, "neuron role at the end point", flags=labels.flag_attrs(labels.ROLE)),
    "end_escape_strength": Variable(NEURON, "escape strength kappa_j (theory.md 4); NaN if not escape"),
    "end_margin": Variable(
        RUN,
        "local-minimum margin: no perturbation of smaller Euclidean norm lowers the loss;"
        " min_j min(mu_j, 1 / C_j) (theory.md 2 and 5.1; pipeline.stationary.margins); NaN where no margin is"
        " claimed (the population losses: a basin radius needs third-derivative bounds)",
    ),
    "end_margin_limit": Variable(
        RUN, "what bounds the margin (-1: no margin)", flags=labels.flag_attrs(labels.MARGIN_LIMIT)
    ),
    "end_curvature": Variable(RUN, "most negative curvature found (kappa or Hessian eigenvalue)"),
    "end_witness_w": Variable(W, "descent perturbation of w (verified on the true loss); NaN if none"),
    "end_witness_a": Variable(A, "descent perturbation of a; NaN if none"),
    "end_has_witness": Variable(RUN, "a verified descent perturbation exists"),
    "end_witness_decrease": Variable(RUN, "loss decrease achieved by the witness"),
    "end_witness_radius": Variable(
        RUN, "norm of the witness perturbation at the validity radius of the local expansion (inf: unbounded)"
    ),
    "end_witness_min_step": Variable(RUN, "norm of the witness perturbation at the smallest verified step"),
    "end_tolerance_sensitive": Variable(RUN, "the label changes when the kink tolerance is scaled by 0.1 or 10"),
    **_point_variables("end", "end point", RUN),
    "end_neuron_group": Variable(
        NEURON, "group of the neuron: same direction and activation pattern (-1: zero or dead, dropped; theory.md 7)"
    ),
    "end_reduced_width": Variable(RUN, "width of the narrower network the end point embeds (-1: not computed)"),
    # the end game (pipeline.end_game) and the last stretch of gradient descent (pipeline.resolution)
    "end_game_method": Variable(
        RUN, "what the end game did", flags=labels.flag_attrs(tuple(m.name.lower() for m in EndGameMethod))
    ),
    "end_game_used": Variable(RUN, "the classified end point is the end game's point (not gradient descent's)"),
    "end_game_gradient_evaluations": Variable(RUN, "gradient (Jacobian) evaluations of the end game"),
    "end_game_hessian_evaluations": Variable(RUN, "Hessian evaluations of the end game"),
    "end_game_distance": Variable(RUN, "parameter distance the end game moved (NaN: not run)"),
    "end_game_flow_time": Variable(
        RUN, "gradient-flow time its flow stage covered (gradient descent covers learning_rate per step)"
    ),
    "end_game_loss_before": Variable(RUN, "loss where the end game started (NaN: not run)"),
    "end_game_loss_after": Variable(RUN, "loss where the end game finished (NaN: not run)"),
    "convergence_rate": Variable(
        RUN, "observed d log L / d step of gradient descent between the checkpoints nearest 3T/4 and T", "1/steps"
    ),
    "loss_scale": Variable(RUN, "s_y^2 = ||Y||_F^2 / n, twice the loss of the zero network (NaN: population loss)"),
    "zero_loss_approach": Variable(
        RUN, "loss below end_game.zero_loss_threshold * s_y^2 and still falling (pipeline.resolution)"
    ),
    "global_basis": Variable(
        RUN, "what the global-minimum value rests on (pipeline.globality)", flags=labels.flag_attrs(GLOBAL_BASIS)
    ),
    # plateau classification and the escape-consistency statistic (theory.md section 6)
    **_point_variables("plateau", "plateau point", PLATEAU),
    "plateau_grew": Variable(PLATEAU + ("neuron",), "amplitude grew 10x before the next plateau / end"),
    "plateau_n_grew": Variable(PLATEAU, "neurons that grew before the next plateau (-1: empty slot)"),
    "plateau_n_grew_predicted": Variable(PLATEAU, "neurons that grew and were predicted escape neurons"),
    "plateau_n_escape": Variable(PLATEAU, "predicted escape neurons at the plateau point"),
    # added by the runner and by gathering
    "batch_wall_time": Variable(RUN, "wall time of the run's batch (training and classification)", "s"),
    "global_reference_loss": Variable(
        RUN,
        "best final loss of the survey's runs of the same width, activation, leak and output layer on the same data"
        " set (an upper bound on that network's global minimum)",
    ),
    "outcome": Variable(
        RUN, "run outcome: the limit where resolved, else the resolution status", flags=labels.flag_attrs(OUTCOME)
    ),
    "limit": Variable(RUN, "what the run converges to (pipeline.resolution)", flags=labels.flag_attrs(LIMIT)),
    "resolution": Variable(RUN, "how the limit verdict was reached", flags=labels.flag_attrs(RESOLUTION)),
    "n_escape_neurons": Variable(RUN, "escape neurons at the end point"),
    "n_dead_neurons": Variable(RUN, "dead ReLU neurons at the end point (including those touching data)"),
    "n_kink_neurons": Variable(RUN, "neurons with data on their kink at the end point"),
    **{
        name: dataclasses.replace(variable, option="classify.embeddings")
        for name, variable in {
            # network embedding (theory.md 7; pipeline.stationary.embedding)
            "embedding_source_type": Variable(
                RUN,
                "type of the end point as its batch classified it (before the survey-wide global/spurious resolution),"
                " for the runs whose embeddings were built (certified end points; -1: none)",
                flags=labels.flag_attrs(labels.POINT_TYPE),
            ),
            "embedding_kind": Variable(
                EMBEDDING,
                "how the end point is embedded into width m + 1 (-1: not built)",
                flags=labels.flag_attrs(labels.EMBEDDING_KIND),
            ),
            "embedding_neuron": Variable(EMBEDDING, "neuron that E3 splits (-1: E1, E2 or not built)"),
            "embedding_beta": Variable(EMBEDDING, "split ratio beta of E3 (NaN: E1, E2 or not built)"),
            "embedding_point_type": Variable(
                EMBEDDING,
                "type of the embedded point (classifier; -1: not built)",
                flags=labels.flag_attrs(labels.POINT_TYPE),
            ),
            "embedding_predicted": Variable(
                EMBEDDING,
                "point types the embedding theorems allow (bit field; 0: no prediction; -1: not built)",
                flags=labels.point_type_set_attrs(),
            ),
        }.items()
    },
}
