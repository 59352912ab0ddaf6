"""Simulate one batch of runs: plan rows in, a padded record of numpy arrays out.

A batch holds runs of a single grid cell (identical settings, different seeds). For each run the
dataset and the initialisation are regenerated from the run's own seeds (:func:`run_inputs`, the
public way to re-check any stored run), all runs are trained together by the engine, and the end
points and plateau points are classified. Arrays are padded to the survey-wide sizes
(:class:`Padding`) so that batches and shards concatenate along ``run``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.batch_record import record_batch
from pipeline.data import Dataset, data_source
from pipeline.dynamics import train
from pipeline.end_game import EndGameOptions
from pipeline.globality import global_value_basis
from pipeline.initialization import draw_initialization, init_scale_std
from pipeline.losses.activations import activation_from_settings
from pipeline.problems import VerdictOptions, build_problem
from pipeline.seeds import run_generator
from pipeline.stationary.record import missing_value
from pipeline.survey.plan import data_settings, init_settings, run_settings

__all__ = ["Padding", "RunInputs", "resolve_device", "run_inputs", "simulate_batch"]


@dataclass(frozen=True)
class Padding:
    """Survey-wide sizes of the padded dimensions of the store."""

    neuron: int
    input: int
    output: int
    checkpoint: int
    plateau: int
    embedding: int = 0


@dataclass(frozen=True)
class RunInputs:
    """A run's dataset and initial parameters, regenerated from its seeds (numpy float64)."""

    dataset: Dataset
    w0: np.ndarray
    a0: np.ndarray


def run_inputs(settings: Mapping[str, Any], master_seed: int, data_seed: int, init_seed: int) -> RunInputs:
    """Regenerate the dataset and initialisation of one run exactly from its settings and seeds."""
    data_rng = run_generator(master_seed, "data", data_seed, data_settings(settings))
    dataset = data_source(settings["input_distribution"]).make(data_rng, settings)
    init_rng = run_generator(master_seed, "init", init_seed, init_settings(settings))
    xavier = settings["init_distribution"] == "xavier"
    std = 1.0 if xavier else init_scale_std(settings["init_scale"], settings["width"], settings["init_width_exponent"])
    w0, a0 = draw_initialization(
        init_rng,
        width=settings["width"],
        input_dim=dataset.x.shape[1],
        output_dim=settings["output_dim"],
        std=std,
        balanced=settings["balanced_init"],
        output_fixed=settings["output_layer"] == "fixed",
        distribution=settings["init_distribution"],
    )
    return RunInputs(dataset=dataset, w0=w0, a0=a0)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("execution.device is 'cuda' but torch sees no CUDA device; use 'auto' or 'cpu'")
    return torch.device(device)


def simulate_batch(
    rows: pd.DataFrame,
    *,
    master_seed: int,
    padding: Padding,
    device: str = "cpu",
    classify_plateaus: bool = True,
    kink_tolerance_factor: float = 1.0,
    end_game: EndGameOptions | None = None,
    embedding_betas: tuple[float, ...] | None = None,
) -> dict[str, np.ndarray]:
    """Train and classify the runs of one batch, and follow unfinished runs with the end game.

    Parameters
    ----------
    rows
        Plan rows of one grid cell (columns of :func:`pipeline.survey.plan.make_plan`).
    master_seed
        The survey's master seed.
    padding
        Survey-wide sizes of the padded dimensions.
    device
        ``auto``, ``cpu`` or ``cuda[:i]``.
    classify_plateaus
        Also classify the representative point of every plateau (plateau mode).
    kink_tolerance_factor
        Multiplies the classifier's kink tolerance.
    end_game
        Options of :mod:`pipeline.end_game` (default :class:`~pipeline.end_game.EndGameOptions`). Runs
        whose end point is ``not_stationary`` or ``undetermined`` (and did not diverge) are finished, and
        the finished point's classification replaces the end point's unless it is ``not_stationary``.
    embedding_betas
        When given, embed every certified end point into width ``m + 1`` with these E3 split ratios and
        classify the embeddings (:mod:`pipeline.stationary.embedding`; sampled data only).

    The batch's loss is the problem its data source defines (:func:`pipeline.problems.build_problem`), trained
    by the cell's dynamics (:func:`pipeline.dynamics.train`) and recorded by :func:`pipeline.batch_record.record_batch`.

    Returns
    -------
    dict
        Store variable name -> array with a leading run axis, padded (see :mod:`pipeline.store`).
    """
    settings = run_settings(rows.iloc[0])
    if rows["cell"].nunique() != 1:
        raise ValueError("a batch must hold runs of one grid cell; group the plan with pipeline.survey.plan.batches")
    inputs = [run_inputs(settings, master_seed, int(row.data_seed), int(row.init_seed)) for row in rows.itertuples()]
    options = dict(dtype=getattr(torch, settings["dtype"]), device=resolve_device(device))
    datasets = [i.dataset for i in inputs]
    sampled = data_source(settings["input_distribution"]).sampled
    verdicts = VerdictOptions(
        global_value_basis(settings, np.stack([dataset.x for dataset in datasets]) if sampled else None),
        settings["learning_rate"],
        kink_tolerance_factor,
    )
    activation = activation_from_settings(settings["activation"], settings["leak"])
    problem = build_problem(datasets, settings, activation, settings["output_layer"] == "trained", verdicts, **options)
    descent = train(
        problem,
        torch.as_tensor(np.stack([i.w0 for i in inputs]), **options),
        torch.as_tensor(np.stack([i.a0 for i in inputs]), **options),
        settings,
    )
    record = record_batch(
        problem,
        descent,
        end_game=end_game or EndGameOptions(),
        embedding_betas=embedding_betas,
        classify_plateaus=classify_plateaus,
    )
    return _pad(record, padding)


def _pad(record: dict[str, np.ndarray], padding: Padding) -> dict[str, np.ndarray]:
    """Pad every array to the survey-wide sizes of its dimensions (see pipeline.store.VARIABLES)."""
    from pipeline.store import VARIABLES  # the store owns the dimension names

    sizes = dataclasses.asdict(padding)
    padded = {}
    for name, values in record.items():
        dims = VARIABLES[name].dims
        target = tuple(values.shape[0:1]) + tuple(sizes[dim] for dim in dims[1:])
        if values.shape == target:
            padded[name] = np.ascontiguousarray(values)
            continue
        out = np.full(target, missing_value(values.dtype), dtype=values.dtype)
        out[tuple(slice(0, size) for size in values.shape)] = values
        padded[name] = out
    return padded
