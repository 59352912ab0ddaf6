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

from pipeline.activations import Activation, activation_from_settings
from pipeline.data import Dataset, data_source
from pipeline.end_game import EndGameMethod, EndGameOptions, Finish, finish_runs
from pipeline.engine import (
    DescentResult,
    StopReason,
    data_scales,
    run_gradient_descent,
    run_interval_gradient_descent,
    run_population_gradient_descent,
)
from pipeline.globality import GLOBAL_BASIS, global_value_basis
from pipeline.initialization import draw_initialization, init_scale_std
from pipeline.interval_population import IntervalTarget
from pipeline.plan import data_settings, init_settings, run_settings
from pipeline.resolution import approaching_zero_loss, observed_loss_rate
from pipeline.seeds import run_generator
from pipeline.stationary import classify_batch, labels
from pipeline.stationary.consistency import escape_consistency
from pipeline.stationary.embedding import classify_embeddings
from pipeline.stationary.groups import group_neurons
from pipeline.stationary.interval_points import classify_interval_batch
from pipeline.stationary.population_points import classify_population_batch
from pipeline.stationary.record import missing_value
from pipeline.stationary.smooth_batch import classify_smooth_batch, classify_smooth_interval_batch
from pipeline.trajectory import final_plateau_at_end

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
        Plan rows of one grid cell (columns of :func:`pipeline.plan.make_plan`).
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
    problem = _problem(settings, inputs, options, kink_tolerance_factor)
    descent = problem.descend(
        torch.as_tensor(np.stack([i.w0 for i in inputs]), **options),
        torch.as_tensor(np.stack([i.a0 for i in inputs]), **options),
        learning_rate=settings["learning_rate"],
        max_steps=settings["max_steps"],
        grad_tol=settings["grad_tol"],
        n_checkpoints=settings["n_checkpoints"],
    )
    record = _descent_arrays(descent)
    w_end, a_end = descent.w_final, descent.a_final
    end = problem.classify(w_end, a_end, "end_point")
    end_game = end_game or EndGameOptions()
    end, finished = _end_game(problem, descent, end, w_end, a_end, end_game)
    record.update(finished)
    record.update(_zero_loss_approach(problem, descent, end_game.zero_loss_threshold))
    record["global_basis"] = np.full(len(rows), GLOBAL_BASIS.index(problem.student.global_basis), dtype=np.int8)
    record.update({f"end_{field.name}": getattr(end, field.name) for field in dataclasses.fields(end)})
    record.update(problem.groups(end))
    if embedding_betas is not None:
        if not isinstance(problem, _SampledProblem):
            raise ValueError("classify.embeddings needs sampled inputs (the embeddings use the empirical loss)")
        record.update(problem.embeddings(end, embedding_betas))
    if classify_plateaus:
        record.update(_plateau_arrays(descent, problem))
        _last_plateau_is_the_end_point(record, descent)
    else:
        record.update(_empty_plateau_record(descent))
    amplitude = _plateau_amplitudes(descent)
    present = _numpy(descent.plateau_start >= 0)
    record.update(escape_consistency(amplitude, record["plateau_escape"], present, GROWTH_FACTOR))
    return _pad(record, padding)


@dataclass(frozen=True)
class _Student:
    """What every loss shares: the activation, whether the output layer trains, the survey settings."""

    activation: Activation
    train_output: bool
    settings: Mapping[str, Any]
    kink_tolerance_factor: float
    global_basis: str

    @property
    def leak(self) -> float:
        """The negative slope of a piecewise-linear activation (what the kink-aware code reads)."""
        return self.activation.leak

    @property
    def zero_loss_attainable(self) -> bool:
        """A theorem proves that this loss has global minimum 0 (:func:`pipeline.globality.global_value_basis`)."""
        return self.global_basis != "best_known"


@dataclass(frozen=True)
class _SampledProblem:
    """The empirical loss on a finite data set ``x`` (R or 1, n, d), ``y`` (R or 1, n, k)."""

    student: _Student
    x: torch.Tensor
    y: torch.Tensor

    def descend(self, w0: torch.Tensor, a0: torch.Tensor, **options: Any) -> DescentResult:
        return run_gradient_descent(
            w0, a0, self.x, self.y, leak=self.student.activation, train_output=self.student.train_output, **options
        )

    def classify(self, w: torch.Tensor, a: torch.Tensor, mode: str, runs: np.ndarray | None = None) -> Any:
        """Classify points ``w`` (P, m, d), ``a`` (P, m, k); ``runs`` (P,) picks per-run data when given."""
        x, y = _select(self.x, runs), _select(self.y, runs)
        if not self.student.activation.has_kink:
            return classify_smooth_batch(
                w, a, x, y, activation=self.student.activation, train_output=self.student.train_output,
                realisable=self.student.zero_loss_attainable, mode=mode,
            )  # fmt: skip
        return classify_batch(
            w,
            a,
            x,
            y,
            leak=self.student.leak,
            train_output=self.student.train_output,
            learning_rate=self.student.settings["learning_rate"],
            realisable=self.student.zero_loss_attainable,
            mode=mode,
            kink_tolerance_factor=self.student.kink_tolerance_factor,
        )

    def finish(self, w: torch.Tensor, a: torch.Tensor, runs: np.ndarray, options: EndGameOptions) -> Finish:
        """The end game (:func:`pipeline.end_game.finish_runs`) from points ``w``, ``a`` of runs ``runs``."""
        return finish_runs(
            w, a, _select(self.x, runs), _select(self.y, runs), leak=self.student.leak,
            train_output=self.student.train_output, learning_rate=self.student.settings["learning_rate"],
            options=options,
        )  # fmt: skip

    def loss_scale(self) -> np.ndarray:
        """``s_y**2 = ||Y||_F^2 / n`` per run (or one shared value), the loss scale of the data."""
        return _numpy(data_scales(self.x, self.y)[1].square())

    def embeddings(self, end: Any, betas: tuple[float, ...]) -> dict[str, np.ndarray]:
        """The end points' embeddings into width ``m + 1``, predicted and classified (theory.md 7)."""
        return classify_embeddings(
            end, self.x, self.y, leak=self.student.leak, realisable=self.student.zero_loss_attainable, betas=betas,
            kink_tolerance_factor=self.student.kink_tolerance_factor,
        )  # fmt: skip

    def groups(self, end: Any) -> dict[str, np.ndarray]:
        """Neuron groups of the classified end point and the width of the network it embeds (theory.md 7)."""
        if not self.student.activation.has_kink:
            return _no_groups(end)
        groups = group_neurons(
            torch.as_tensor(end.w), torch.as_tensor(end.a), self.x.cpu().to(torch.float64), self.student.leak
        )
        return {
            "end_neuron_group": _numpy(groups.group).astype(np.int16),
            "end_reduced_width": _numpy(groups.width).astype(np.int16),
        }


@dataclass(frozen=True)
class _GaussianPopulationProblem:
    """The population loss of standard Gaussian inputs against a teacher (R or 1, t, d), (R or 1, t, k)."""

    student: _Student
    teacher_w: torch.Tensor
    teacher_a: torch.Tensor

    def descend(self, w0: torch.Tensor, a0: torch.Tensor, **options: Any) -> DescentResult:
        return run_population_gradient_descent(
            w0, a0, self.teacher_w, self.teacher_a, leak=self.student.leak, train_output=self.student.train_output,
            **options,
        )  # fmt: skip

    def classify(self, w: torch.Tensor, a: torch.Tensor, mode: str, runs: np.ndarray | None = None) -> Any:
        return classify_population_batch(
            w,
            a,
            _select(self.teacher_w, runs),
            _select(self.teacher_a, runs),
            leak=self.student.leak,
            train_output=self.student.train_output,
            realisable=self.student.zero_loss_attainable,
            mode=mode,
        )

    def groups(self, end: Any) -> dict[str, np.ndarray]:
        return _no_groups(end)


@dataclass(frozen=True)
class _IntervalPopulationProblem:
    """The exact population loss of inputs uniform on an interval against an affine target (theory.md 9)."""

    student: _Student
    target: IntervalTarget

    def descend(self, w0: torch.Tensor, a0: torch.Tensor, **options: Any) -> DescentResult:
        return run_interval_gradient_descent(
            w0, a0, self.target, leak=self.student.activation, train_output=self.student.train_output, **options
        )

    def classify(self, w: torch.Tensor, a: torch.Tensor, mode: str, runs: np.ndarray | None = None) -> Any:
        target = self.target if runs is None else self.target.select(torch.as_tensor(runs))
        if not self.student.activation.has_kink:
            return classify_smooth_interval_batch(
                w, a, target, activation=self.student.activation,
                realisable=self.student.zero_loss_attainable, mode=mode,
            )  # fmt: skip
        return classify_interval_batch(
            w,
            a,
            target,
            leak=self.student.leak,
            boundary_tolerance_factor=self.student.kink_tolerance_factor,
            mode=mode,
        )

    def groups(self, end: Any) -> dict[str, np.ndarray]:
        return _no_groups(end)


_Problem = _SampledProblem | _GaussianPopulationProblem | _IntervalPopulationProblem


def _problem(
    settings: Mapping[str, Any], inputs: list[RunInputs], options: dict[str, Any], kink_tolerance_factor: float
) -> _Problem:
    """The loss of one batch, with its data stacked on the run axis as tensors of the given dtype and device."""
    source = data_source(settings["input_distribution"])
    student = _Student(
        activation_from_settings(settings["activation"], settings["leak"]),
        settings["output_layer"] == "trained",
        settings,
        kink_tolerance_factor,
        global_value_basis(settings, np.stack([i.dataset.x for i in inputs]) if source.sampled else None),
    )

    def stacked(name: str) -> torch.Tensor:
        return torch.as_tensor(np.stack([getattr(i.dataset, name) for i in inputs]), **options)

    if source.loss == "gaussian_population":
        return _GaussianPopulationProblem(student, stacked("teacher_v"), stacked("teacher_b"))
    if source.loss == "interval_population":
        target = IntervalTarget(
            settings["interval_low"],
            settings["interval_high"],
            stacked("affine_slope")[:, 0],
            stacked("affine_intercept"),
        )
        return _IntervalPopulationProblem(student, target)
    return _SampledProblem(student, stacked("x"), stacked("y"))


_UNFINISHED = ("not_stationary", "undetermined")
"""End-point types the end game tries to finish."""


def _end_game(
    problem: _Problem, descent: DescentResult, end: Any, w: torch.Tensor, a: torch.Tensor, options: EndGameOptions
) -> tuple[Any, dict[str, np.ndarray]]:
    """Finish the unfinished runs; return the end classification to store and the ``end_game_*`` record."""
    n_runs = w.shape[0]
    record: dict[str, np.ndarray] = {
        "end_game_method": np.full(n_runs, int(EndGameMethod.NONE), dtype=np.int8),
        "end_game_gradient_evaluations": np.zeros(n_runs, dtype=np.int64),
        "end_game_hessian_evaluations": np.zeros(n_runs, dtype=np.int64),
        "end_game_distance": np.full(n_runs, np.nan),
        "end_game_flow_time": np.full(n_runs, np.nan),
        "end_game_loss_before": np.full(n_runs, np.nan),
        "end_game_loss_after": np.full(n_runs, np.nan),
        "end_game_used": np.zeros(n_runs, dtype=bool),
    }
    unfinished = np.isin(end.point_type, [labels.code(labels.POINT_TYPE, name) for name in _UNFINISHED])
    unfinished &= _numpy(descent.stop_reason) != int(StopReason.DIVERGED)
    runs = np.flatnonzero(unfinished)
    if not options.enabled or runs.size == 0 or not isinstance(problem, _SampledProblem):
        return end, record
    if not problem.student.activation.has_kink:  # the end game follows the flow across kinks; none here
        return end, record
    index = torch.as_tensor(runs, device=w.device)
    finish = problem.finish(w[index], a[index], runs, options)
    finished = problem.classify(torch.as_tensor(finish.w), torch.as_tensor(finish.a), "end_point", runs)
    use = finished.point_type != labels.code(labels.POINT_TYPE, "not_stationary")
    for name in (
        "method", "distance", "loss_before", "loss_after", "flow_time", "gradient_evaluations", "hessian_evaluations"
    ):  # fmt: skip
        record[f"end_game_{name}"][runs] = getattr(finish, name)
    record["end_game_used"][runs] = use
    chosen = np.zeros(n_runs, dtype=bool)
    chosen[runs[use]] = True
    return _replace_rows(end, chosen, _rows(finished, use)), record


def _rows(records: Any, rows: np.ndarray) -> Any:
    """A dataclass of per-run arrays restricted to ``rows`` (bool mask)."""
    return dataclasses.replace(
        records, **{field.name: np.asarray(getattr(records, field.name))[rows] for field in dataclasses.fields(records)}
    )


def _replace_rows(records: Any, rows: np.ndarray, replacement: Any) -> Any:
    """A copy of a dataclass of per-run arrays with ``rows`` (bool mask) taken from ``replacement``."""
    merged = {}
    for field in dataclasses.fields(records):
        values = np.array(getattr(records, field.name), copy=True)
        values[rows] = np.asarray(getattr(replacement, field.name)).astype(values.dtype, copy=False)
        merged[field.name] = values
    return dataclasses.replace(records, **merged)


def _zero_loss_approach(problem: _Problem, descent: DescentResult, threshold: float) -> dict[str, np.ndarray]:
    """Observed loss rates of gradient descent's last stretch and whether the loss goes to 0."""
    step, loss = _numpy(descent.checkpoint_step), _numpy(descent.checkpoint_loss)
    late, middle = observed_loss_rate(np.broadcast_to(step, loss.shape), loss)
    scale = problem.loss_scale() if isinstance(problem, _SampledProblem) else np.full(loss.shape[0], np.nan)
    final = _numpy(descent.loss_final)
    return {
        "convergence_rate": late,
        "loss_scale": np.broadcast_to(scale, final.shape).astype(float),
        "zero_loss_approach": approaching_zero_loss(
            final, late, middle, np.broadcast_to(scale, final.shape), threshold
        ),
    }


def _select(tensor: torch.Tensor, runs: np.ndarray | None) -> torch.Tensor:
    """Rows ``runs`` of a per-run tensor (a shared tensor, leading size 1, is returned as is)."""
    if runs is None or tensor.shape[0] == 1:
        return tensor
    return tensor[torch.as_tensor(runs, device=tensor.device)]


def _no_groups(end: Any) -> dict[str, np.ndarray]:
    """Neuron groups are defined by activation patterns on data; population losses have none."""
    n_runs, width = end.escape.shape
    return {
        "end_neuron_group": np.full((n_runs, width), -1, dtype=np.int16),
        "end_reduced_width": np.full(n_runs, -1, dtype=np.int16),
    }


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def _descent_arrays(descent: DescentResult) -> dict[str, np.ndarray]:
    """The engine's record as store variables."""
    names = {field.name: field.name for field in dataclasses.fields(descent)}
    record = {names[name]: _numpy(getattr(descent, name)) for name in names}
    n_runs = record["w_init"].shape[0]
    record["checkpoint_step"] = np.broadcast_to(record["checkpoint_step"], (n_runs, record["checkpoint_step"].size))
    return record


def _plateau_arrays(descent: DescentResult, problem: _Problem) -> dict[str, np.ndarray]:
    """Classify every stored plateau point (plateau mode)."""
    n_runs, n_slots = descent.plateau_start.shape
    runs, slots = np.nonzero(_numpy(descent.plateau_start >= 0))
    if runs.size == 0:
        return _empty_plateau_record(descent)
    index_runs = torch.as_tensor(runs, device=descent.plateau_w.device)
    index_slots = torch.as_tensor(slots, device=descent.plateau_w.device)
    points = problem.classify(
        descent.plateau_w[index_runs, index_slots], descent.plateau_a[index_runs, index_slots], "plateau", runs
    )
    record: dict[str, np.ndarray] = {}
    for name in ("point_type", "stationarity", "certificate", "mechanisms", "escape"):
        values = getattr(points, name)
        full = np.full((n_runs, n_slots, *values.shape[1:]), missing_value(values.dtype), dtype=values.dtype)
        full[runs, slots] = values
        record[f"plateau_{name}"] = full
    return record


def _last_plateau_is_the_end_point(record: dict[str, np.ndarray], descent: DescentResult) -> None:
    """One story per stationary point: a final plateau the run never left takes its end point's verdict.

    Its end-point classification (no amplitude snapping, strict tolerances, the end game's limit) is the verdict
    of both (:func:`pipeline.trajectory.final_plateau_at_end`); a final plateau that the continuation left for a
    lower level keeps its plateau-mode verdict, like every plateau the run left. The collect step gives these
    plateaus the end point's global/spurious verdict too (:mod:`pipeline.store.derived`).
    """
    at_end = final_plateau_at_end(_numpy(descent.plateau_is_final), _numpy(descent.plateau_loss), record["end_loss"])
    runs, slots = np.nonzero(at_end)
    for name in ("point_type", "stationarity", "certificate", "mechanisms", "escape"):
        record[f"plateau_{name}"][runs, slots] = record[f"end_{name}"][runs]


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
