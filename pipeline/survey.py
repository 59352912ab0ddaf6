"""Survey files: a typed model of ``surveys/<name>.yaml``, its loader and its human error messages.

A survey is a grid (the Cartesian product of lists) over *settings*, plus settings held fixed, times
seeds. Every setting can be fixed or a grid axis. The model is the single source of truth: the JSON
schema (``pipeline/schemas/survey.schema.json``) and the field reference (``surveys/README.md``) are
generated from it by ``python -m pipeline.survey export-schema`` and a test fails when they are stale.

Validation happens once, here, before anything runs: unknown keys, wrong types, out-of-range or
non-finite numbers, empty or repeated grid values, a setting both fixed and on the grid, too many
runs, and the cross-setting rules of :data:`CONDITIONAL_SETTINGS` and :data:`CELL_RULES`, checked in
every grid cell. Every error is a :class:`SurveyError` whose message names the file, the field, the
value and what is allowed, one problem per line.

Conventions of resolved settings (:meth:`Survey.cells`): a setting that does not apply in a cell
(``leak`` with ``activation: relu``, ``teacher_*`` without a teacher, ``interval_*`` without
``input_distribution: interval``, ``init_scale`` / ``init_width_exponent`` with ``xavier``) resolves
to ``None`` there, so that it cannot change the run's seeds or its stored coordinates.
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import json
import math
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

__all__ = [
    "CELL_RULES",
    "CONDITIONAL_SETTINGS",
    "MAX_RUNS",
    "NAME_PATTERN",
    "SCHEMA_PATH",
    "REFERENCE_PATH",
    "SCHEMA_VERSION",
    "SETTING_GROUPS",
    "SETTING_KINDS",
    "SETTING_NAMES",
    "Classify",
    "Execution",
    "Seeds",
    "Survey",
    "SurveyError",
    "SurveySpec",
    "export_schema",
    "load_survey",
    "main",
    "parse_survey",
    "reference_text",
    "schema_text",
]

SCHEMA_VERSION = 1
MAX_RUNS = 10_000_000
"""Most runs (grid cells x data seeds x init seeds) one survey may hold; split bigger surveys."""
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
"""A survey's name is its file stem: lower-case letters, digits, ``_`` and ``-`` (no ``/``, no ``..``)."""
_NAME_MAX = 64
_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = _ROOT / "pipeline" / "schemas" / "survey.schema.json"
REFERENCE_PATH = _ROOT / "surveys" / "README.md"
_MAX_ERRORS = 12


class SurveyError(ValueError):
    """A survey file that cannot be run; the message is for humans, one problem per line."""


class _Strict(BaseModel):
    """Base of every survey model: frozen, strict types, unknown keys and NaN/inf rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


# --------------------------------------------------------------------------------------------------
# Settings: the catalogue of every setting (type, bounds, default, description)
# --------------------------------------------------------------------------------------------------

_Unit = Annotated[float, Field(ge=0, lt=1)]


class _Settings(_Strict):
    """Catalogue of the settings: each may be given under ``fixed:`` or as a list under ``grid:``."""

    # data
    input_dim: int = Field(2, ge=1, le=100_000, description="Raw input dimension d, before the bias column.")
    n_samples: int = Field(16, ge=1, le=10_000_000, description="Number of training samples n.")
    input_distribution: Literal["gaussian", "sphere", "interval", "orthogonal"] = Field(
        "gaussian",
        description="Inputs: standard Gaussian, uniform on the unit sphere, uniform on "
        "[interval_low, interval_high] (input_dim 1), or a random orthonormal set (n_samples <= input_dim).",
    )
    interval_low: float = Field(-1.0, ge=-1e6, le=1e6, description="Lower end of the input interval.")
    interval_high: float = Field(1.0, ge=-1e6, le=1e6, description="Upper end of the input interval.")
    bias: bool = Field(False, description="Append a constant-1 input column (the student's bias).")
    output_dim: int = Field(1, ge=1, le=10_000, description="Output dimension k.")
    # target
    target: Literal["teacher", "affine", "random"] = Field(
        "teacher",
        description="Targets: a teacher network, an affine map of the inputs, or i.i.d. N(0, 1) labels.",
    )
    teacher_width: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        None, description="Width of the teacher network; required with target teacher."
    )
    teacher_kind: Literal["gaussian", "orthonormal"] = Field(
        "gaussian",
        description="Teacher weights: Gaussian, or orthonormal input weights with output weights one "
        "(teacher_width <= input_dim, output_dim 1).",
    )
    teacher_activation: Literal["relu", "leaky_relu"] = Field("relu", description="Teacher activation.")
    teacher_leak: _Unit | None = Field(
        None,
        description="Negative-side slope of the teacher; required with teacher_activation leaky_relu, "
        "else not allowed.",
    )
    label_noise: float = Field(0.0, ge=0, le=1e6, description="Standard deviation of Gaussian label noise.")
    # student
    width: int = Field(4, ge=1, le=100_000, description="Student width m (hidden neurons).")
    activation: Literal["relu", "leaky_relu"] = Field("relu", description="Student activation.")
    leak: _Unit | None = Field(
        None, description="Negative-side slope of the student; required with activation leaky_relu, else not allowed."
    )
    output_layer: Literal["trained", "fixed"] = Field(
        "trained", description="Train the output weights, or fix them to ones (as in many theory papers)."
    )
    # initialisation
    init_distribution: Literal["gaussian", "xavier"] = Field(
        "gaussian",
        description="Initial weights: i.i.d. N(0, std^2) in both layers (std from init_scale or "
        "init_width_exponent), or Xavier (N(0, 1/d) input weights, N(0, 1/width) output weights).",
    )
    init_scale: Annotated[float, Field(gt=0, le=1e6)] | None = Field(
        None, description="Standard deviation of the Gaussian initialisation, e.g. 1.0e-6 (vanishing) to 1."
    )
    init_width_exponent: Annotated[float, Field(ge=-20, le=20)] | None = Field(
        None, description="mu in std = width**mu, instead of init_scale (e.g. -3)."
    )
    balanced_init: bool = Field(
        False, description="Rescale each neuron so that |a_j| = |w_j| (not with output_layer fixed)."
    )
    # training
    learning_rate: float = Field(0.05, gt=0, le=1e6, description="Step size of full-batch gradient descent.")
    max_steps: int = Field(10_000, ge=1, le=10**10, description="Most gradient-descent steps per run.")
    grad_tol: float = Field(
        1e-8, gt=0, lt=1, description="Stop when the gradient norm falls below grad_tol times its initial value."
    )
    dtype: Literal["float64", "float32"] = Field("float64", description="Floating-point type of the training.")
    n_checkpoints: int = Field(
        64, ge=1, le=100_000, description="Number of log-spaced steps at which the loss curve is recorded."
    )


SETTING_NAMES: tuple[str, ...] = tuple(_Settings.model_fields)
"""Every setting, in canonical order (the order of grid axes and plan columns)."""

SETTING_GROUPS: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {
        "data": ("input_dim", "n_samples", "input_distribution", "interval_low", "interval_high", "bias", "output_dim"),
        "target": ("target", "teacher_width", "teacher_kind", "teacher_activation", "teacher_leak", "label_noise"),
        "student": ("width", "activation", "leak", "output_layer"),
        "init": ("init_distribution", "init_scale", "init_width_exponent", "balanced_init"),
        "training": ("learning_rate", "max_steps", "grad_tol", "dtype", "n_checkpoints"),
    }
)
"""The settings by group; the plan's seed streams are defined from these groups."""


def _without_none(annotation: Any) -> Any:
    """``X`` for an annotation ``X | None``, else the annotation unchanged."""
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _kind(annotation: Any) -> str:
    """``"int"``, ``"float"``, ``"bool"`` or ``"str"``: the value type of a setting's annotation."""
    base = _without_none(annotation)
    while typing.get_origin(base) is Annotated:
        base = typing.get_args(base)[0]
    if typing.get_origin(base) is Literal:
        return "str"
    return {int: "int", float: "float", bool: "bool", str: "str"}[base]


_DEFAULTS: Mapping[str, Any] = types.MappingProxyType(
    {name: info.default for name, info in _Settings.model_fields.items()}
)


SETTING_KINDS: Mapping[str, str] = types.MappingProxyType(
    {name: _kind(info.annotation) for name, info in _Settings.model_fields.items()}
)
"""Value type of each setting: ``"int"``, ``"float"``, ``"bool"`` or ``"str"`` (choices)."""


def _distinct(values: list[Any]) -> list[Any]:
    """Reject a grid list holding the same value twice."""
    seen: list[Any] = []
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} appears twice; grid values must be distinct")
        seen.append(value)
    return values


def _drop_defaults(schema: dict[str, Any]) -> None:
    """Remove the placeholder ``default: null`` of the partial settings models from the JSON schema."""
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


class _Partial(_Strict):
    """Base of the partial settings models; their placeholder defaults stay out of the schema."""

    model_config = ConfigDict(json_schema_extra=_drop_defaults)


def _partial_settings(name: str, doc: str, *, as_list: bool) -> type[_Partial]:
    """A model with every setting optional: its value (``fixed``) or a list of values (``grid``)."""
    fields: dict[str, Any] = {}
    for setting, info in _Settings.model_fields.items():
        value_type: Any = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        annotation: Any
        if as_list:
            item: Any = _without_none(value_type)
            annotation = Annotated[list[item], Field(min_length=1), AfterValidator(_distinct)]
            extra: dict[str, Any] | None = {"uniqueItems": True}
            description = f"Grid axis: a non-empty list of distinct values. {info.description}"
        else:
            annotation, extra, description = value_type, None, info.description or ""
        fields[setting] = (annotation, Field(None, description=description, json_schema_extra=extra))
    return create_model(name, __base__=_Partial, __doc__=doc, **fields)


if TYPE_CHECKING:  # the two models are built at import time; type checkers see their base
    FixedSettings = _Partial
    GridSettings = _Partial
else:
    FixedSettings = _partial_settings(
        "FixedSettings", "Settings held fixed in every run; absent settings take their defaults.", as_list=False
    )
    GridSettings = _partial_settings(
        "GridSettings", "Settings varied: the survey runs the Cartesian product of these lists.", as_list=True
    )


# --------------------------------------------------------------------------------------------------
# Cross-setting rules, checked in every grid cell
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conditional:
    """A setting that applies only when ``test`` holds on the cell (else it resolves to None)."""

    setting: str
    controls: tuple[str, ...]
    test: Callable[[Mapping[str, Any]], bool]
    scope: str
    """Human text: where the setting applies (``"leaky_relu only"``)."""
    fix: str
    """Human text: how to make it apply (``"set activation: leaky_relu"``)."""
    required: bool = False
    """The setting has no default: it must be given wherever it applies."""


def _teacher(v: Mapping[str, Any]) -> bool:
    return v["target"] == "teacher"


def _gaussian_init(v: Mapping[str, Any]) -> bool:
    return v["init_distribution"] == "gaussian"


def _interval(v: Mapping[str, Any]) -> bool:
    return v["input_distribution"] == "interval"


CONDITIONAL_SETTINGS: tuple[Conditional, ...] = (
    Conditional(
        "leak",
        ("activation",),
        lambda v: v["activation"] == "leaky_relu",
        "leaky_relu only",
        "set activation: leaky_relu",
        required=True,
    ),
    Conditional(
        "interval_low",
        ("input_distribution",),
        _interval,
        "input_distribution interval only",
        "set input_distribution: interval",
    ),
    Conditional(
        "interval_high",
        ("input_distribution",),
        _interval,
        "input_distribution interval only",
        "set input_distribution: interval",
    ),
    Conditional("teacher_width", ("target",), _teacher, "target teacher only", "set target: teacher", required=True),
    Conditional("teacher_kind", ("target",), _teacher, "target teacher only", "set target: teacher"),
    Conditional("teacher_activation", ("target",), _teacher, "target teacher only", "set target: teacher"),
    Conditional(
        "teacher_leak",
        ("target", "teacher_activation"),
        lambda v: _teacher(v) and v["teacher_activation"] == "leaky_relu",
        "a teacher with teacher_activation leaky_relu only",
        "set teacher_activation: leaky_relu",
        required=True,
    ),
    Conditional(
        "init_scale",
        ("init_distribution",),
        _gaussian_init,
        "init_distribution gaussian only",
        "set init_distribution: gaussian",
    ),
    Conditional(
        "init_width_exponent",
        ("init_distribution",),
        _gaussian_init,
        "init_distribution gaussian only",
        "set init_distribution: gaussian",
    ),
)
"""Settings that apply only in some cells (resolved to None elsewhere). Given on the grid where they
do not apply, or fixed where they apply in no cell, they are errors; a required one missing where it
applies is an error."""

_CONDITIONAL = {c.setting: c for c in CONDITIONAL_SETTINGS}

Problem = tuple[str, str]
"""(setting named in the message, text after ``<location>: ``)."""


def _rule_interval(v: Mapping[str, Any]) -> list[Problem]:
    if not _interval(v):
        return []
    out = []
    if not v["interval_low"] < v["interval_high"]:
        out.append(
            (
                "interval_low",
                f"{v['interval_low']!r} is not below interval_high {v['interval_high']!r}; "
                "interval_low must be < interval_high",
            )
        )
    if v["input_dim"] != 1:
        out.append(
            (
                "input_dim",
                f"{v['input_dim']!r} is not allowed with input_distribution 'interval' "
                "(uniform on an interval is for scalar input); set input_dim: 1 or another input_distribution",
            )
        )
    return out


def _rule_orthogonal(v: Mapping[str, Any]) -> list[Problem]:
    if v["input_distribution"] == "orthogonal" and v["n_samples"] > v["input_dim"]:
        return [
            (
                "n_samples",
                f"{v['n_samples']!r} is not allowed with input_distribution 'orthogonal' and "
                f"input_dim {v['input_dim']!r} (orthogonal inputs need n_samples <= input_dim); lower n_samples, "
                "raise input_dim or use another input_distribution",
            )
        ]
    return []


def _rule_orthonormal_teacher(v: Mapping[str, Any]) -> list[Problem]:
    if not (_teacher(v) and v["teacher_kind"] == "orthonormal"):
        return []
    out = []
    if v["teacher_width"] is not None and v["teacher_width"] > v["input_dim"]:
        out.append(
            (
                "teacher_width",
                f"{v['teacher_width']!r} is too wide for an orthonormal teacher with "
                f"input_dim {v['input_dim']!r} (needs teacher_width <= input_dim); lower teacher_width, "
                "raise input_dim or set teacher_kind: gaussian",
            )
        )
    if v["output_dim"] != 1:
        out.append(
            (
                "output_dim",
                f"{v['output_dim']!r} is not allowed with an orthonormal teacher (its output "
                "weights are ones: output_dim must be 1); set output_dim: 1 or teacher_kind: gaussian",
            )
        )
    return out


def _rule_init_scale(v: Mapping[str, Any]) -> list[Problem]:
    if not _gaussian_init(v):
        return []
    scale, mu = v["init_scale"], v["init_width_exponent"]
    if scale is None and mu is None:
        return [
            (
                "init_scale",
                "missing; init_distribution 'gaussian' needs init_scale (a std > 0, e.g. 1.0e-6) "
                "or init_width_exponent (mu in std = width**mu)",
            )
        ]
    if scale is not None and mu is not None:
        return [
            (
                "init_width_exponent",
                f"{mu!r} is not allowed together with init_scale {scale!r}; "
                "give only one of init_scale and init_width_exponent",
            )
        ]
    return []


def _rule_balanced(v: Mapping[str, Any]) -> list[Problem]:
    if v["balanced_init"] and v["output_layer"] == "fixed":
        return [
            (
                "balanced_init",
                "True is not allowed with output_layer 'fixed' (fixed output weights are ones "
                "and cannot be balanced); set balanced_init: false or output_layer: trained",
            )
        ]
    return []


CELL_RULES: tuple[tuple[tuple[str, ...], Callable[[Mapping[str, Any]], list[Problem]]], ...] = (
    (("input_distribution", "interval_low", "interval_high", "input_dim"), _rule_interval),
    (("input_distribution", "n_samples", "input_dim"), _rule_orthogonal),
    (("target", "teacher_kind", "teacher_width", "input_dim", "output_dim"), _rule_orthonormal_teacher),
    (("init_distribution", "init_scale", "init_width_exponent"), _rule_init_scale),
    (("balanced_init", "output_layer"), _rule_balanced),
)
"""(settings read, check) pairs; each check runs on every combination of the grid values it reads."""


def _combos(names: Sequence[str], base: Mapping[str, Any], grid: Mapping[str, list]) -> Iterator[dict]:
    """Every combination of the values of ``names`` over the grid (fixed and defaults held)."""
    axes = [name for name in dict.fromkeys(names) if name in grid]
    for values in itertools.product(*(grid[axis] for axis in axes)):
        cell = {name: base[name] for name in names}
        cell.update(zip(axes, values, strict=True))
        yield cell


def _cell_context(names: Sequence[str], values: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} {values[name]!r}" for name in names)


def _check_settings(fixed: Mapping[str, Any], grid: Mapping[str, list]) -> tuple[list[str], set[str]]:
    """Messages for every broken cross-setting rule, and the conditional settings that apply somewhere."""
    base = {**_DEFAULTS, **fixed}

    def where(setting: str) -> str:
        if setting in grid:
            return f"grid.{setting}"
        return f"fixed.{setting}" if fixed.get(setting) is not None else setting

    messages: list[str] = []
    applies_somewhere: set[str] = set()
    for cond in CONDITIONAL_SETTINGS:
        for values in _combos((cond.setting, *cond.controls), base, grid):
            value = values[cond.setting]
            if cond.test(values):
                applies_somewhere.add(cond.setting)
                if value is None and cond.required:
                    messages.append(
                        f"{cond.setting}: missing; it is required with "
                        f"{_cell_context(cond.controls, values)}; add {cond.setting} under fixed or grid"
                    )
            elif value is not None and cond.setting in grid:
                messages.append(
                    f"grid.{cond.setting}: {value!r} is not allowed with "
                    f"{_cell_context(cond.controls, values)} ({cond.setting} applies to {cond.scope}); "
                    f"remove {cond.setting} or {cond.fix}"
                )
        if fixed.get(cond.setting) is not None and cond.setting not in applies_somewhere:
            values = next(_combos(cond.controls, base, grid))
            messages.append(
                f"fixed.{cond.setting}: {fixed[cond.setting]!r} is not allowed with "
                f"{_cell_context(cond.controls, values)} ({cond.setting} applies to {cond.scope}); "
                f"remove {cond.setting} or {cond.fix}"
            )
    if messages:  # later rules would repeat these problems
        return list(dict.fromkeys(messages)), applies_somewhere
    for names, check in CELL_RULES:
        for values in _combos(names, base, grid):
            for setting, text in check(_normalised(values)):
                messages.append(f"{where(setting)}: {text}")
    return list(dict.fromkeys(messages)), applies_somewhere


def _normalised(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every conditional setting that does not apply set to None."""
    out = dict(values)
    for name in values:
        cond = _CONDITIONAL.get(name)
        if cond is not None and all(c in values for c in cond.controls) and not cond.test(values):
            out[name] = None
    return out


# --------------------------------------------------------------------------------------------------
# The survey file
# --------------------------------------------------------------------------------------------------


class Seeds(_Strict):
    """How many random seeds each grid cell runs."""

    data: int = Field(1, ge=1, le=1_000_000, description="Data sets (data seeds) per grid cell.")
    init: int = Field(1, ge=1, le=1_000_000, description="Initialisations (init seeds) per data set.")


class Classify(_Strict):
    """Stationary-point classification of end points (and plateau points)."""

    classify_plateaus: bool = Field(True, description="Also classify the stationary point near each plateau.")
    refine_end_point: bool = Field(
        False, description="Refine the end point to an exact stationary point before classifying it."
    )
    kink_tolerance_factor: float = Field(
        1.0, gt=0, le=1e6, description="Multiplies the classifier's tolerance for data on a neuron's kink."
    )


class Execution(_Strict):
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


class SurveySpec(_Strict):
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
    classify: Classify = Field(default_factory=lambda: Classify.model_validate({}), description=Classify.__doc__)
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
        if self.n_runs > MAX_RUNS:
            shape = " x ".join(f"{len(v)} {k}" for k, v in grid.items()) or "1 cell"
            raise ValueError(
                f"grid: {self.n_runs:,} runs ({shape} x {self.seeds.data} data seeds x {self.seeds.init} "
                f"init seeds) exceed the cap of {MAX_RUNS:,} runs per survey; shrink the grid or the seeds, "
                "or split the survey into several files"
            )
        messages, _ = _check_settings(fixed, grid)
        if messages:
            raise ValueError("\n".join(messages))
        return self

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
        """Number of grid cells (1 without a grid)."""
        return math.prod(len(values) for values in self.grid_axes.values())

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

        Cells come in grid order: the Cartesian product of the axes in canonical setting order
        (:data:`SETTING_NAMES`), the last axis varying fastest, each axis in its listed order.
        """
        base = {**_DEFAULTS, **self.fixed_settings}
        grid = self.grid_axes
        return [_normalised(cell) for cell in _combos(SETTING_NAMES, base, grid)]

    def resolved_dict(self) -> dict[str, Any]:
        """The survey with every default written out: deterministic, and it loads back to ``self``.

        ``fixed`` holds every setting that is not a grid axis and applies in at least one cell.
        """
        fixed_given, grid = self.fixed_settings, self.grid_axes
        _, applies_somewhere = _check_settings(fixed_given, grid)
        fixed = {}
        for name in SETTING_NAMES:
            if name in grid:
                continue
            value = fixed_given.get(name, _DEFAULTS[name])
            if value is None or (name in _CONDITIONAL and name not in applies_somewhere):
                continue
            fixed[name] = value
        return {
            "schema_version": self.schema_version,
            "description": self.description,
            "master_seed": self.master_seed,
            "seeds": self.seeds.model_dump(),
            "fixed": fixed,
            "grid": grid,
            "classify": self.classify.model_dump(),
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


# --------------------------------------------------------------------------------------------------
# Loading and error messages
# --------------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that reads ``1e-6`` as a float (YAML 1.2) and rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (each key may appear once)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

_SECTIONS: Mapping[str, type[BaseModel]] = {
    "seeds": Seeds,
    "fixed": FixedSettings,
    "grid": GridSettings,
    "classify": Classify,
    "execution": Execution,
}


def _location(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _allowed_keys(loc: Sequence[Any]) -> list[str]:
    if len(loc) == 1:
        return [k for k in SurveySpec.model_fields]
    model = _SECTIONS.get(loc[0])
    return list(model.model_fields) if model is not None else []


def _format_error(error: Mapping[str, Any]) -> list[str]:
    """Human lines for one pydantic error: ``<field path>: <value and what is wrong>; <what is allowed>``."""
    loc, kind, value = tuple(error["loc"]), error["type"], error.get("input")
    ctx = error.get("ctx") or {}
    where = _location(loc)
    if kind in ("value_error", "assertion_error"):
        text = str(ctx.get("error", error["msg"]))
        if not loc:
            return text.splitlines()
        return [
            f"{where}.{line}" if re.match(r"^[a-z_]+: ", line) else f"{where}: {line}" for line in text.splitlines()
        ]
    if kind == "extra_forbidden":
        key, allowed = loc[-1], _allowed_keys(loc)
        guess = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        if len(loc) == 1 and key in SETTING_NAMES:
            hint = f" (settings go under fixed: or grid:, e.g. fixed: {{{key}: ...}})"
        if loc == ("name",):
            return ["name: not allowed in the file; a survey's name is its file stem"]
        return [f"{where}: unknown key{hint}; allowed keys: {', '.join(allowed)}"]
    if kind == "missing":
        return [f"{where}: missing; this key is required"]
    if kind == "literal_error":
        return [f"{where}: {_show(value)} is not allowed; allowed: {ctx.get('expected')}"]
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        bound = next(iter(ctx.values()))
        return [f"{where}: {_show(value)} is out of range; it must be {bounds[kind]} {bound}"]
    if kind == "finite_number":
        return [f"{where}: {_show(value)} is not allowed; it must be a finite number (no NaN or infinity)"]
    if kind == "too_short":
        return [f"{where}: empty list; a grid axis needs at least one value"]
    if kind == "string_pattern_mismatch" and loc == ("name",):
        return [
            f"name: {_show(value)} is not a valid survey name (the file stem); it must match {NAME_PATTERN}: "
            "lower-case letters, digits, '_' and '-', no path separators or dots"
        ]
    if kind == "string_pattern_mismatch":
        return [f"{where}: {_show(value)} does not match the pattern {ctx.get('pattern')}"]
    expected = {
        "int_type": "an integer",
        "int_from_float": "an integer",
        "float_type": "a number",
        "bool_type": "true or false",
        "string_type": "a string",
        "list_type": "a list of values",
        "model_type": "a mapping of keys to values",
        "dict_type": "a mapping of keys to values",
        "model_attributes_type": "a mapping of keys to values",
    }
    if kind in expected:
        return [f"{where}: {_show(value)} ({type(value).__name__}) has the wrong type; expected {expected[kind]}"]
    return [f"{where}: {_show(value)}: {error['msg']}"]


def _error_message(source: str, errors: Sequence[Mapping[str, Any]]) -> str:
    lines = list(dict.fromkeys(line for error in errors for line in _format_error(error)))
    if len(lines) > _MAX_ERRORS:
        lines = [*lines[:_MAX_ERRORS], f"... and {len(lines) - _MAX_ERRORS} more problems"]
    return "\n".join(f"{source}: {line}" for line in lines)


def parse_survey(data: Any, name: str = "survey", *, source: str = "<survey>") -> Survey:
    """Validate a survey already read from YAML (a mapping) and named ``name``.

    Raises
    ------
    SurveyError
        One line per problem, each ``<source>: <field>: <what is wrong>; <what is allowed>``.
    """
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        raise SurveyError(
            f"{source}: the survey is {kind}; expected a mapping with keys {', '.join(SurveySpec.model_fields)}"
        )
    if "name" in data:
        raise SurveyError(f"{source}: name: not allowed in the file; a survey's name is its file stem")
    try:
        return Survey.model_validate({**data, "name": name})
    except ValidationError as error:
        raise SurveyError(_error_message(source, error.errors())) from None


def load_survey(path: str | Path, name: str | None = None) -> Survey:
    """Load and validate ``surveys/<name>.yaml`` (safe YAML: no object construction).

    The survey's name is ``name`` or else the file stem, and must match :data:`NAME_PATTERN`.

    Raises
    ------
    SurveyError
        For a missing or unreadable file, invalid YAML, or an invalid survey; the message names the
        file, the field, the value and what is allowed.
    """
    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        raise SurveyError(f"{path}: a survey file must end in .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SurveyError(f"{path}: cannot read the survey file: {error}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SurveyError(f"{path}: invalid YAML{where}: {problem}") from None
    return parse_survey(data, name or path.stem, source=str(path))


# --------------------------------------------------------------------------------------------------
# Generated files: JSON schema and field reference
# --------------------------------------------------------------------------------------------------


def _no_titles(node: Any) -> None:
    """Drop pydantic's auto-generated property titles (descriptions say more)."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for prop in props.values():
                if isinstance(prop, dict):
                    prop.pop("title", None)
        for value in node.values():
            _no_titles(value)
    elif isinstance(node, list):
        for value in node:
            _no_titles(value)


def schema_text() -> str:
    """The JSON schema of a survey file (``additionalProperties: false`` on every mapping)."""
    schema = SurveySpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$comment"] = "Generated by `python -m pipeline.survey export-schema` from pipeline/survey.py; do not edit."
    _no_titles(schema)
    return json.dumps(schema, indent=2, ensure_ascii=True) + "\n"


def _constraint_text(prop: Mapping[str, Any]) -> tuple[str, str]:
    """(type, allowed values) of one JSON-schema property, for the reference table."""
    options = prop.get("anyOf", [prop])
    nullable = any(o.get("type") == "null" for o in options)
    chosen: Mapping[str, Any] = next((o for o in options if o.get("type") != "null"), {})
    kind = chosen.get("type", "")
    if "enum" in chosen:
        kind, allowed = "choice", " | ".join(f"`{v}`" for v in chosen["enum"])
    elif "const" in chosen:
        allowed = f"`{chosen['const']}`"
    else:
        parts = []
        for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
            if key in chosen:
                parts.append(f"{sign} {chosen[key]:g}" if isinstance(chosen[key], float) else f"{sign} {chosen[key]}")
        if "pattern" in chosen:
            parts.append(f"matches `{chosen['pattern']}`")
        if "maxLength" in chosen:
            parts.append(f"at most {chosen['maxLength']} characters")
        allowed = ", ".join(parts) or "any"
    if nullable:
        kind += " or null"
    return kind, allowed


def _default_text(model: type[BaseModel], name: str, defaults: Mapping[str, Any]) -> str:
    if model.model_fields[name].is_required():
        return "required"
    value = defaults.get(name)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"`{value}`" if value != "" else '`""`'


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def _table(model: type[BaseModel], names: Sequence[str], defaults: Mapping[str, Any]) -> list[str]:
    props = model.model_json_schema()["properties"]
    lines = ["| key | type | allowed | default | description |", "| --- | --- | --- | --- | --- |"]
    for name in names:
        kind, allowed = _constraint_text(props[name])
        description = _cell(model.model_fields[name].description or "")
        default = _default_text(model, name, defaults)
        lines.append(f"| `{name}` | {kind} | {_cell(allowed)} | {default} | {description} |")
    return lines


def reference_text() -> str:
    """``surveys/README.md``: the field reference of survey files, generated from the models."""
    spec_defaults = {"description": "", "master_seed": 0}
    out = [
        "# Survey files",
        "",
        "<!-- Generated by `python -m pipeline.survey export-schema` from pipeline/survey.py; do not edit. -->",
        "",
        "A survey file `surveys/<name>.yaml` describes a grid of settings times seeds. Its name is the file",
        f"stem (`{NAME_PATTERN}`) and names the results folder `results/<name>/`. Check a file with",
        "`python -m pipeline.survey validate surveys/<name>.yaml`. The JSON schema is",
        "`pipeline/schemas/survey.schema.json`.",
        "",
        "```yaml",
        "schema_version: 1",
        'description: "one line"',
        "master_seed: 20261122",
        "seeds: {data: 2, init: 8}      # data sets per grid cell, initialisations per data set",
        "fixed: {input_dim: 2, target: teacher, teacher_width: 2, learning_rate: 0.05}",
        "grid: {width: [2, 4, 8], init_scale: [1.0e-6, 1.0e-2, 1.0]}   # the Cartesian product",
        "classify: {classify_plateaus: true}",
        "execution: {shard_size: 256, batch_size: 128}",
        "```",
        "",
        "Rules checked before anything runs, in every grid cell:",
        "",
        '- unknown keys, wrong types (`8` is not `"8"`; write floats as `1.0e-6` or `1e-6`), out-of-range',
        "  values, NaN and infinity are errors that name the field and what is allowed;",
        "- a grid axis is a non-empty list of distinct values; a setting is either under `fixed` or under",
        "  `grid`, never both; settings not given take the defaults below;",
        f"- a survey holds at most {MAX_RUNS:,} runs (grid cells x data seeds x init seeds);",
        "- some settings apply only in some cells (below); on the grid they must apply in every cell, under",
        "  `fixed` in at least one (elsewhere they resolve to null); a required one must be given wherever",
        "  it applies;",
        "- `interval` inputs need `input_dim: 1` and `interval_low < interval_high`; `orthogonal` inputs need",
        "  `n_samples <= input_dim`; an orthonormal teacher needs `teacher_width <= input_dim` and",
        "  `output_dim: 1`; a Gaussian initialisation needs exactly one of `init_scale` and",
        "  `init_width_exponent`; `balanced_init` needs `output_layer: trained`.",
        "",
        "| setting | applies to |",
        "| --- | --- |",
        *[f"| `{c.setting}` | {c.scope}{' (required there)' if c.required else ''} |" for c in CONDITIONAL_SETTINGS],
        "",
        "## Top level",
        "",
        *_table(SurveySpec, ["schema_version", "description", "master_seed"], spec_defaults),
        "",
        "`seeds`, `fixed`, `grid`, `classify` and `execution` are mappings described below.",
        "",
        "## `seeds`",
        "",
        *_table(Seeds, list(Seeds.model_fields), Seeds.model_validate({}).model_dump()),
        "",
        "## Settings (under `fixed:` as a value, or under `grid:` as a list of values)",
        "",
    ]
    for group, names in SETTING_GROUPS.items():
        out += [f"### {group}", "", *_table(_Settings, names, _DEFAULTS), ""]
    out += [
        "## `classify`",
        "",
        *_table(Classify, list(Classify.model_fields), Classify.model_validate({}).model_dump()),
        "",
    ]
    out += [
        "## `execution`",
        "",
        *_table(Execution, list(Execution.model_fields), Execution.model_validate({}).model_dump()),
    ]
    return "\n".join(out) + "\n"


def export_schema(schema_path: str | Path = SCHEMA_PATH, reference_path: str | Path | None = REFERENCE_PATH) -> None:
    """Write the JSON schema (and the field reference ``surveys/README.md`` unless None)."""
    schema_path = Path(schema_path)
    schema_path.parent.mkdir(parents=True, exist_ok=True)
    schema_path.write_text(schema_text(), encoding="utf-8")
    if reference_path is not None:
        Path(reference_path).write_text(reference_text(), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pipeline.survey export-schema [--check]`` or ``validate FILE...``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.survey", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export-schema", help="write the JSON schema and surveys/README.md")
    export.add_argument("--check", action="store_true", help="fail (exit 1) if the files are stale; write nothing")
    check = commands.add_parser("validate", help="validate survey files and print their size")
    check.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "export-schema":
        if args.check:
            stale = [
                str(p)
                for p, text in ((SCHEMA_PATH, schema_text()), (REFERENCE_PATH, reference_text()))
                if not p.exists() or p.read_text(encoding="utf-8") != text
            ]
            if stale:
                print(f"stale: {', '.join(stale)}; run python -m pipeline.survey export-schema", file=sys.stderr)
                return 1
            return 0
        export_schema()
        print(f"wrote {SCHEMA_PATH} and {REFERENCE_PATH}")
        return 0
    status = 0
    for path in args.files:
        try:
            survey = load_survey(path)
        except SurveyError as error:
            print(error, file=sys.stderr)
            status = 2
            continue
        axes = ", ".join(f"{k} ({len(v)})" for k, v in survey.grid_axes.items()) or "none"
        print(
            f"{path}: ok: {survey.n_runs:,} runs = {survey.n_cells:,} cells x {survey.seeds.data} data seeds "
            f"x {survey.seeds.init} init seeds; grid axes: {axes}"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
