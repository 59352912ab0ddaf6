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

from pipeline.data import Dataset, make_dataset
from pipeline.engine import DescentResult, run_gradient_descent
from pipeline.initialization import draw_initialization, init_scale_std
from pipeline.plan import data_settings, init_settings, run_settings
from pipeline.seeds import run_generator
from pipeline.stationary import classify_batch
from pipeline.stationary.consistency import escape_consistency

__all__ = ["Padding", "RunInputs", "resolve_device", "run_inputs", "simulate_batch"]

GROWTH_FACTOR = 10.0
"""A neuron *grew* between two plateau points if its amplitude ||w_j|| ||a_j|| rose by this factor."""


@dataclass(frozen=True)
class Padding:
    """Survey-wide sizes of the padded dimensions of the store."""

    neuron: int
    input: int
    output: int
    checkpoint: int
    plateau: int


@dataclass(frozen=True)
class RunInputs:
    """A run's dataset and initial parameters, regenerated from its seeds (numpy float64)."""

    dataset: Dataset
    w0: np.ndarray
    a0: np.ndarray


def run_inputs(settings: Mapping[str, Any], master_seed: int, data_seed: int, init_seed: int) -> RunInputs:
    """Regenerate the dataset and initialisation of one run exactly from its settings and seeds."""
    data_rng = run_generator(master_seed, "data", data_seed, data_settings(settings))
    dataset = make_dataset(
        data_rng,
        distribution=settings["input_distribution"],
        n_samples=settings["n_samples"],
        input_dim=settings["input_dim"],
        output_dim=settings["output_dim"],
        bias=settings["bias"],
        target=settings["target"],
        teacher_width=settings["teacher_width"],
        teacher_kind=settings["teacher_kind"] or "gaussian",
        teacher_leak=_leak(settings["teacher_activation"], settings["teacher_leak"]),
        noise_std=settings["label_noise"],
        interval=(settings["interval_low"], settings["interval_high"])
        if settings["input_distribution"] == "interval"
        else (-1.0, 1.0),
    )
    init_rng = run_generator(master_seed, "init", init_seed, init_settings(settings))
    std = init_scale_std(settings["init_scale"], settings["width"], settings["init_width_exponent"])
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
) -> dict[str, np.ndarray]:
    """Train and classify the runs of one batch.

    Parameters
    ----------
    rows
        Plan rows of one grid cell (columns of :func:`pipeline.plan.make_plan`).
    master_seed
        The survey's master seed.
    padding
        Survey-wide sizes of the padded dimensions.
    device
        ``auto``, ``cpu`` or ``cuda[:i]``.
    classify_plateaus
        Also classify the representative point of every plateau (plateau mode).

    Returns
    -------
    dict
        Store variable name -> array with a leading run axis, padded (see :mod:`pipeline.store`).
    """
    settings = run_settings(rows.iloc[0])
    if rows["cell"].nunique() != 1:
        raise ValueError("a batch must hold runs of one grid cell; group the plan with pipeline.plan.batches")
    inputs = [run_inputs(settings, master_seed, int(row.data_seed), int(row.init_seed)) for row in rows.itertuples()]
    options = dict(dtype=getattr(torch, settings["dtype"]), device=resolve_device(device))
    x = torch.as_tensor(np.stack([i.dataset.x for i in inputs]), **options)
    y = torch.as_tensor(np.stack([i.dataset.y for i in inputs]), **options)
    leak = _leak(settings["activation"], settings["leak"])
    train_output = settings["output_layer"] == "trained"
    descent = run_gradient_descent(
        torch.as_tensor(np.stack([i.w0 for i in inputs]), **options),
        torch.as_tensor(np.stack([i.a0 for i in inputs]), **options),
        x,
        y,
        leak=leak,
        learning_rate=settings["learning_rate"],
        max_steps=settings["max_steps"],
        train_output=train_output,
        grad_tol=settings["grad_tol"],
        n_checkpoints=settings["n_checkpoints"],
    )
    common = dict(leak=leak, train_output=train_output, learning_rate=settings["learning_rate"])
    realisable = _realisable(settings)
    end = classify_batch(descent.w_final, descent.a_final, x, y, realisable=realisable, **common)
    record = _descent_arrays(descent)
    record.update({f"end_{field.name}": getattr(end, field.name) for field in dataclasses.fields(end)})
    if classify_plateaus:
        record.update(_plateau_arrays(descent, x, y, common))
    return _pad(record, padding)


def _leak(activation: str | None, leak: float | None) -> float:
    """The activation's negative slope: 0 for ReLU."""
    return float(leak) if activation == "leaky_relu" and leak is not None else 0.0


def _realisable(settings: Mapping[str, Any]) -> bool:
    """True when the student can represent the target exactly (a noiseless teacher it contains)."""
    if settings["target"] != "teacher" or settings["label_noise"] > 0:
        return False
    same_activation = _leak(settings["teacher_activation"], settings["teacher_leak"]) == _leak(
        settings["activation"], settings["leak"]
    )
    fixed_ok = settings["output_layer"] == "trained" or settings["teacher_kind"] == "orthonormal"
    return same_activation and fixed_ok and settings["width"] >= settings["teacher_width"]


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def _descent_arrays(descent: DescentResult) -> dict[str, np.ndarray]:
    """The engine's record as store variables."""
    names = {field.name: field.name for field in dataclasses.fields(descent)}
    record = {names[name]: _numpy(getattr(descent, name)) for name in names}
    n_runs = record["w_init"].shape[0]
    record["checkpoint_step"] = np.broadcast_to(record["checkpoint_step"], (n_runs, record["checkpoint_step"].size))
    return record


def _plateau_arrays(
    descent: DescentResult, x: torch.Tensor, y: torch.Tensor, common: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Classify every stored plateau point (plateau mode) and the escape-consistency statistic."""
    n_runs, n_slots = descent.plateau_start.shape
    present = _numpy(descent.plateau_start >= 0)
    runs, slots = np.nonzero(present)
    record: dict[str, np.ndarray] = {}
    if runs.size:
        index_runs = torch.as_tensor(runs, device=x.device)
        index_slots = torch.as_tensor(slots, device=x.device)
        pick = (lambda data: data) if x.shape[0] == 1 else (lambda data: data[index_runs])
        points = classify_batch(
            descent.plateau_w[index_runs, index_slots],
            descent.plateau_a[index_runs, index_slots],
            pick(x),
            pick(y),
            mode="plateau",
            **common,
        )
        for name in ("point_type", "stationarity", "certificate", "mechanisms", "escape"):
            values = getattr(points, name)
            full = np.full((n_runs, n_slots, *values.shape[1:]), _fill(values.dtype), dtype=values.dtype)
            full[runs, slots] = values
            record[f"plateau_{name}"] = full
    else:
        record.update(_empty_plateau_record(descent))
    amplitude = _plateau_amplitudes(descent)
    record.update(escape_consistency(amplitude, record["plateau_escape"], present, GROWTH_FACTOR))
    return record


def _plateau_amplitudes(descent: DescentResult) -> np.ndarray:
    """Amplitudes at each plateau point followed by the end point, shape (R, P + 1, m)."""
    at_plateaus = torch.linalg.vector_norm(descent.plateau_w, dim=-1) * torch.linalg.vector_norm(
        descent.plateau_a, dim=-1
    )
    at_end = torch.linalg.vector_norm(descent.w_final, dim=-1) * torch.linalg.vector_norm(descent.a_final, dim=-1)
    return _numpy(torch.cat([at_plateaus, at_end.unsqueeze(1)], dim=1))


def _empty_plateau_record(descent: DescentResult) -> dict[str, np.ndarray]:
    n_runs, n_slots = descent.plateau_start.shape
    width = descent.w_final.shape[1]
    return {
        "plateau_point_type": np.full((n_runs, n_slots), -1, dtype=np.int8),
        "plateau_stationarity": np.full((n_runs, n_slots), -1, dtype=np.int8),
        "plateau_certificate": np.full((n_runs, n_slots), -1, dtype=np.int8),
        "plateau_mechanisms": np.full((n_runs, n_slots), -1, dtype=np.int8),
        "plateau_escape": np.zeros((n_runs, n_slots, width), dtype=bool),
    }


def _fill(dtype: np.dtype) -> Any:
    """Padding value of a dtype: NaN for floats, False for bools, -1 for integers."""
    if np.issubdtype(dtype, np.floating):
        return np.nan
    if np.issubdtype(dtype, np.bool_):
        return False
    return -1


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
        out = np.full(target, _fill(values.dtype), dtype=values.dtype)
        out[tuple(slice(0, size) for size in values.shape)] = values
        padded[name] = out
    return padded
