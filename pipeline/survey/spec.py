"""The survey file: the models of ``surveys/<name>.yaml`` and of a validated, named survey."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import yaml
from pydantic import ConfigDict, Field, model_validator

from pipeline.data.given import given_source
from pipeline.data.sources import data_source
from pipeline.end_game import EndGameOptions
from pipeline.stationary.embedding import DEFAULT_BETAS
from pipeline.survey.conditional import CONDITIONAL, normalised
from pipeline.survey.rules import check_settings, combos
from pipeline.survey.settings import DEFAULTS, SETTING_NAMES, FixedSettings, GridSettings, Strict

SCHEMA_VERSION = 1
MAX_RUNS = 10_000_000
"""Most runs (grid cells x data seeds x init seeds) one survey may hold; split bigger surveys."""
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
"""A survey's name is its file stem: lower-case letters, digits, ``_`` and ``-`` (no ``/``, no ``..``)."""
_NAME_MAX = 64


class Seeds(Strict):
    """How many random seeds each grid cell runs."""

    data: int = Field(1, ge=1, le=1_000_000, description="Data sets (data seeds) per grid cell.")
    init: int = Field(1, ge=1, le=1_000_000, description="Initialisations (init seeds) per data set.")


class Classify(Strict):
    """Stationary-point classification of end points (and plateau points)."""

    classify_plateaus: bool = Field(True, description="Also classify the stationary point near each plateau.")
    kink_tolerance_factor: float = Field(
        1.0, gt=0, le=1e6, description="Multiplies the classifier's tolerance for data on a neuron's kink."
    )
    embeddings: bool = Field(
        False,
        description="Embed every certified end point into width m + 1 (theory.md 7: a zero neuron, a dead ReLU "
        "neuron, a zero-input neuron, and every neuron split with every ratio of embedding_betas), classify each "
        "and store the verdicts with the theorem's predictions; needs sampled inputs and a trained output layer.",
    )
    embedding_betas: list[float] = Field(
        default_factory=lambda: list(DEFAULT_BETAS),
        min_length=1,
        max_length=16,
        description="Split ratios beta of the E3 embeddings (distinct, finite); the default has one ratio below 0, "
        "0, two inside (0, 1), 1 and one above 1.",
    )

    @model_validator(mode="after")
    def _betas_distinct(self) -> Classify:
        betas = self.embedding_betas
        if len(set(betas)) != len(betas):
            raise ValueError(
                f"embedding_betas: {betas} lists a ratio twice; list each once, e.g. {list(DEFAULT_BETAS)}"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _refine_end_point_was_replaced(cls, data: Any) -> Any:
        if isinstance(data, dict) and "refine_end_point" in data:
            raise ValueError(
                "refine_end_point: removed; the end game (section end_game) now finishes every unfinished end point"
                " before it is classified. Delete classify.refine_end_point (use end_game: {enabled: false} to turn"
                " the end game off)"
            )
        return data


class EndGame(Strict):
    """The end game: follow runs that gradient descent left unfinished to their limit (pipeline.end_game)."""

    enabled: bool = Field(
        True, description="Finish runs whose end point is not certified (not_stationary or undetermined)."
    )
    flow_evaluations: int = Field(
        300, ge=1, le=1_000_000, description="Hessian evaluations of the gradient-flow stage per run."
    )
    max_evaluations: int = Field(
        200, ge=1, le=1_000_000, description="Residual evaluations of the trust-region Gauss-Newton stage per run."
    )
    refine_iterations: int = Field(
        100, ge=0, le=1_000_000, description="Iterations of the kink-constrained Levenberg-Marquardt stage per run."
    )
    zero_loss_threshold: float = Field(
        1e-6,
        gt=0,
        lt=1,
        description="A run whose loss stays below this fraction of s_y^2 = ||Y||^2/n and still falls is "
        "converging_to_zero_loss.",
    )

    def options(self) -> EndGameOptions:
        """The engine-level options."""
        return EndGameOptions(**self.model_dump())


class Execution(Strict):
    """Where and in what pieces the runs are computed; never changes the results."""

    shard_size: int = Field(256, ge=1, le=10_000_000, description="Runs per shard (one Snakemake job each).")
    batch_size: int = Field(128, ge=1, le=1_000_000, description="Most runs per batch (one Dask task each).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Engine device; auto uses CUDA if present.")
    cluster: Literal["local", "scheduler", "slurm"] = Field(
        "local",
        description="Dask cluster: a local one, an existing scheduler (scheduler_address), "
        "or SLURM workers via dask-jobqueue.",
    )
    scheduler_address: Annotated[str, Field(pattern=r"^(tcp|tls|inproc|ucx|ws|wss)://\S+$")] | None = Field(
        None, description="Address of a running Dask scheduler, e.g. tcp://10.0.0.1:8786 (cluster scheduler only)."
    )
    workers: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        None, description="Number of Dask workers; null: one per core (or per GPU) available to the job."
    )
    threads_per_worker: int = Field(1, ge=1, le=1024, description="Threads per Dask worker (torch and BLAS).")

    @model_validator(mode="after")
    def _address_iff_scheduler(self) -> Execution:
        if self.cluster == "scheduler" and self.scheduler_address is None:
            raise ValueError(
                "scheduler_address: missing; cluster 'scheduler' needs the address of a "
                "running scheduler, e.g. tcp://10.0.0.1:8786"
            )
        if self.cluster != "scheduler" and self.scheduler_address is not None:
            raise ValueError(
                f"scheduler_address: {self.scheduler_address!r} is not allowed with "
                f"cluster {self.cluster!r}; remove it or set cluster: scheduler"
            )
        return self


class SurveySpec(Strict):
    """The content of a survey file ``surveys/<name>.yaml``."""

    model_config = ConfigDict(title="Survey")

    schema_version: Literal[1] = Field(description="Version of this file format; must be 1.")
    description: Annotated[str, Field(max_length=200, pattern=r"^[^\n\r]*$")] = Field(
        "", description="One line saying what the survey asks."
    )
    master_seed: int = Field(0, ge=0, lt=2**63, description="Master seed; every run's seeds derive from it.")
    seeds: Seeds = Field(default_factory=lambda: Seeds.model_validate({}), description=Seeds.__doc__)
    fixed: FixedSettings = Field(
        default_factory=lambda: FixedSettings.model_validate({}), description=FixedSettings.__doc__
    )
    grid: GridSettings = Field(
        default_factory=lambda: GridSettings.model_validate({}), description=GridSettings.__doc__
    )
    cases: list[FixedSettings] = Field(
        default_factory=list,
        description="Settings varied together, one mapping per case (every case sets the same settings, "
        "none of them under fixed or grid); the survey runs every case with every grid cell. "
        "Example: [{input_dim: 6, teacher_width: 6}, {input_dim: 8, teacher_width: 8}].",
    )
    classify: Classify = Field(default_factory=lambda: Classify.model_validate({}), description=Classify.__doc__)
    end_game: EndGame = Field(default_factory=lambda: EndGame.model_validate({}), description=EndGame.__doc__)
    execution: Execution = Field(default_factory=lambda: Execution.model_validate({}), description=Execution.__doc__)

    @model_validator(mode="after")
    def _check_survey(self) -> SurveySpec:
        fixed, grid = self.fixed_settings, self.grid_axes
        both = [name for name in SETTING_NAMES if name in grid and name in self.fixed.model_fields_set]
        if both:
            raise ValueError(
                "\n".join(
                    f"grid.{name}: {name} is also under fixed; a setting is either fixed or a grid axis, "
                    f"not both; remove fixed.{name} or grid.{name}"
                    for name in both
                )
            )
        self._check_cases(fixed, grid)
        if self.n_runs > MAX_RUNS:
            shape = " x ".join(f"{len(v)} {k}" for k, v in grid.items()) or "1 cell"
            raise ValueError(
                f"grid: {self.n_runs:,} runs ({shape} x {self.seeds.data} data seeds x {self.seeds.init} "
                f"init seeds) exceed the cap of {MAX_RUNS:,} runs per survey; shrink the grid or the seeds, "
                "or split the survey into several files"
            )
        cases = self.case_settings or [{}]
        applies = frozenset().union(*(check_settings({**fixed, **case}, grid)[1] for case in cases))
        messages: list[str] = []
        for case in cases:
            messages += check_settings({**fixed, **case}, grid, applies)[0]
        if messages:
            raise ValueError("\n".join(dict.fromkeys(messages)))
        self._check_data_seeds()
        self._check_embeddings()
        return self

    def _check_data_seeds(self) -> None:
        """More than one data seed needs data that vary with it: drawn data, or subsamples of a given set."""
        if self.seeds.data == 1:
            return
        for cell in self.cells():
            if data_source(cell["input_distribution"]).given and cell["subsample"] is None:
                raise ValueError(
                    f"seeds.data: {self.seeds.data} data seeds would train {self.seeds.data} times on the same given "
                    f"data set ({given_source(cell)}); set seeds.data: 1, or subsample: n to draw a random subset "
                    "of n rows per data seed"
                )

    def _check_cases(self, fixed: dict[str, Any], grid: dict[str, list[Any]]) -> None:
        cases = self.case_settings
        if not cases:
            return
        keys = list(cases[0])
        for index, case in enumerate(cases):
            if not case:
                raise ValueError(f"cases[{index}]: empty; every case sets at least one setting")
            if sorted(case) != sorted(keys):
                raise ValueError(
                    f"cases[{index}]: sets {sorted(case)} but cases[0] sets {sorted(keys)}; every case must set "
                    "the same settings"
                )
        for name in keys:
            where = "fixed" if name in fixed else "grid" if name in grid else None
            if where:
                raise ValueError(
                    f"cases: {name} is also under {where}; a setting varied by cases cannot be fixed or a grid "
                    f"axis; remove {where}.{name} or {name} from the cases"
                )
        if len({tuple(sorted(case.items())) for case in cases}) != len(cases):
            raise ValueError("cases: two cases are identical; list each case once")

    def _check_embeddings(self) -> None:
        """The embedding theorems (theory.md 7) are about the empirical loss of a ReLU-like net with a trained output
        layer."""
        if not self.classify.embeddings:
            return
        for cell in self.cells():
            if not data_source(cell["input_distribution"]).sampled or cell["output_layer"] != "trained":
                raise ValueError(
                    "classify.embeddings: needs sampled inputs and a trained output layer (the embeddings are"
                    f" classified on the empirical loss); a cell has input_distribution {cell['input_distribution']!r}"
                    f" and output_layer {cell['output_layer']!r}; set classify.embeddings: false or change the cell"
                )
            if cell["activation"] == "quadratic":
                raise ValueError(
                    "classify.embeddings: the embedding theorems (theory.md 7) and their classifier are for ReLU and"
                    " leaky ReLU; a cell has activation 'quadratic'; set classify.embeddings: false or another"
                    " activation"
                )

    @property
    def case_settings(self) -> list[dict[str, Any]]:
        """The cases, each the dict of the settings it sets (empty list without cases)."""
        return [{k: v for k, v in case.model_dump(exclude_unset=True).items() if v is not None} for case in self.cases]

    @property
    def varied_settings(self) -> list[str]:
        """Settings that vary across cells: the case settings, then the grid axes, in setting order."""
        varied = set(self.grid_axes) | {name for case in self.case_settings for name in case}
        return [name for name in SETTING_NAMES if name in varied]

    @property
    def fixed_settings(self) -> dict[str, Any]:
        """The settings given under ``fixed`` (explicit nulls left out)."""
        return {k: v for k, v in self.fixed.model_dump(exclude_unset=True).items() if v is not None}

    @property
    def grid_axes(self) -> dict[str, list[Any]]:
        """The grid axes, in canonical setting order, each the list of its values."""
        given = self.grid.model_dump(exclude_unset=True)
        return {name: list(given[name]) for name in SETTING_NAMES if name in given}

    @property
    def n_cells(self) -> int:
        """Number of grid cells: cases x grid points (1 without cases and grid)."""
        return max(len(self.cases), 1) * math.prod(len(values) for values in self.grid_axes.values())

    @property
    def runs_per_cell(self) -> int:
        """Data seeds x init seeds."""
        return self.seeds.data * self.seeds.init

    @property
    def n_runs(self) -> int:
        """Grid cells x data seeds x init seeds."""
        return self.n_cells * self.runs_per_cell

    def cells(self) -> list[dict[str, Any]]:
        """One dict per grid cell, every setting resolved (defaults filled, inapplicable ones None).

        Cells come case by case (in listed order), and within a case in grid order: the Cartesian
        product of the axes in canonical setting order (:data:`SETTING_NAMES`), the last axis varying
        fastest, each axis in its listed order.
        """
        grid = self.grid_axes
        return [
            normalised(cell)
            for case in self.case_settings or [{}]
            for cell in combos(SETTING_NAMES, {**DEFAULTS, **self.fixed_settings, **case}, grid)
        ]

    def resolved_dict(self) -> dict[str, Any]:
        """The survey with every default written out: deterministic, and it loads back to ``self``.

        ``fixed`` holds every setting that is not a grid axis and applies in at least one cell.
        """
        fixed_given, grid, cases = self.fixed_settings, self.grid_axes, self.case_settings
        applies_somewhere: set[str] = set()
        for case in cases or [{}]:
            applies_somewhere |= check_settings({**fixed_given, **case}, grid)[1]
        fixed = {}
        for name in SETTING_NAMES:
            if name in grid or (cases and name in cases[0]):
                continue
            value = fixed_given.get(name, DEFAULTS[name])
            if value is None or (name in CONDITIONAL and name not in applies_somewhere):
                continue
            fixed[name] = value
        return {
            "schema_version": self.schema_version,
            "description": self.description,
            "master_seed": self.master_seed,
            "seeds": self.seeds.model_dump(),
            "fixed": fixed,
            "grid": grid,
            "cases": cases,
            "classify": self.classify.model_dump(),
            "end_game": self.end_game.model_dump(),
            "execution": self.execution.model_dump(),
        }

    def resolved_yaml(self) -> str:
        """:meth:`resolved_dict` as YAML text (keys in model order, no timestamps)."""
        return yaml.safe_dump(self.resolved_dict(), sort_keys=False, default_flow_style=None, width=100)


class Survey(SurveySpec):
    """A validated survey: the file's content plus its name (the file stem)."""

    name: Annotated[str, Field(max_length=_NAME_MAX, pattern=NAME_PATTERN)] = Field(
        "survey", description="The survey's name: its file stem; names results/<name>/."
    )
