"""The catalogue of survey settings: each setting's type, bounds, default and description.

Every setting may be given under ``fixed:`` (a value) or under ``grid:`` (a list of values); the
:data:`FixedSettings` and :data:`GridSettings` models are built from :class:`Settings`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model


class Strict(BaseModel):
    """Base of every survey model: frozen, strict types, unknown keys and NaN/inf rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


_Unit = Annotated[float, Field(ge=0, lt=1)]


class Settings(Strict):
    """Catalogue of the settings: each may be given under ``fixed:`` or as a list under ``grid:``."""

    # data
    input_dim: int = Field(2, ge=1, le=100_000, description="Raw input dimension d, before the bias column.")
    n_samples: int = Field(
        16, ge=1, le=10_000_000, description="Number of training samples n (not with the population inputs)."
    )
    input_distribution: Literal[
        "gaussian", "sphere", "interval", "orthogonal", "gaussian_population", "interval_population", "file", "sklearn"
    ] = Field(
        "gaussian",
        description="Inputs: standard Gaussian, uniform on the unit sphere, uniform on "
        "[interval_low, interval_high] (input_dim 1), a random orthonormal set (n_samples <= input_dim), "
        "gaussian_population: infinitely many standard Gaussian inputs, i.e. the population loss in closed form "
        "(needs a teacher with the student's activation, no bias, no label noise), or interval_population: "
        "infinitely many inputs uniform on [interval_low, interval_high], the exact population loss of "
        "Cheridito-Jentzen-Rossmannek with the output bias at its optimum (input_dim 1, bias, affine target, "
        "trained output layer, no label noise), file: the data set in data_file, or sklearn: a data set "
        "scikit-learn ships (dataset).",
    )
    data_file: str | None = Field(
        None,
        min_length=1,
        description="With input_distribution file: an .npz file with arrays x (n, d) and y (n, k), or a .csv file "
        "with named columns (target_columns are the targets, every other column an input); a path relative to "
        "the directory the workflow runs in. Its SHA-256 goes into the store's provenance.",
    )
    target_columns: str | None = Field(
        None, min_length=1, description="With a .csv data_file: the target columns' names, comma-separated."
    )
    dataset: Literal["iris", "wine", "breast_cancer", "digits", "diabetes"] | None = Field(
        None,
        description="With input_distribution sklearn: the data set (classes become one-hot targets, k = number of "
        "classes; diabetes has one real target).",
    )
    scaling: Literal["none", "standardize"] = Field(
        "none",
        description="With a given data set (file, sklearn): none, or standardize (every input column to mean 0, "
        "variance 1).",
    )
    projection: Literal["none", "pca"] = Field(
        "none",
        description="With a given data set: none (input_dim must equal the data's input dimension) or pca (project "
        "the inputs onto their first input_dim principal components, after scaling).",
    )
    subsample: Annotated[int, Field(ge=1, le=10_000_000)] | None = Field(
        None,
        description="With a given data set: train each data seed on this many rows drawn without replacement "
        "(without it every run uses the whole set, and a survey must have one data seed).",
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
    activation: Literal["relu", "leaky_relu", "quadratic"] = Field(
        "relu",
        description="Student activation: relu, leaky_relu (with leak) or quadratic (rho(z) = z^2, smooth; not with "
        "gaussian_population).",
    )
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
    max_steps: int = Field(
        10_000,
        ge=1,
        le=10**10,
        description="Most steps per run: of gradient descent, or accepted steps of the gradient-flow integrator.",
    )
    grad_tol: float = Field(
        1e-8,
        gt=0,
        lt=1,
        description="Stop when the gradient norm falls below grad_tol times the natural gradient scale "
        "s_y**1.5 * s_x**0.5 (s_x = max input norm, s_y = root mean square target norm) and every "
        "neuron's gradient below grad_tol * s_x * s_y times the neuron's norm ||(w_j, a_j)||.",
    )
    dynamics: Literal["gd", "gradient_flow"] = Field(
        "gd",
        description="How the networks train: gd, full-batch gradient descent with step learning_rate for at most "
        "max_steps steps; or gradient_flow, the flow dtheta/dt = -grad L integrated by a batched adaptive "
        "Rosenbrock method (RODAS4, kink-aware) up to flow time max_time (every loss; the quadratic activation "
        "only with interval_population). The flow's checkpoints and steps_taken count flow time in units of "
        "learning_rate (the gradient-descent step count at the same time).",
    )
    max_time: Annotated[float, Field(gt=0, le=1e12)] | None = Field(
        None,
        description="With dynamics gradient_flow: the flow time at which a run stops (default max_steps * "
        "learning_rate, the time gradient descent reaches).",
    )
    ode_rtol: float = Field(
        1e-6, gt=0, lt=1, description="With dynamics gradient_flow: relative local-error tolerance per parameter."
    )
    ode_atol: float = Field(
        1e-12, gt=0, le=1, description="With dynamics gradient_flow: absolute local-error tolerance per parameter."
    )
    dtype: Literal["float64", "float32"] = Field("float64", description="Floating-point type of the training.")
    n_checkpoints: int = Field(
        64, ge=2, le=100_000, description="Number of log-spaced steps at which the loss curve is recorded."
    )


SETTING_NAMES: tuple[str, ...] = tuple(Settings.model_fields)
"""Every setting, in canonical order (the order of grid axes and plan columns)."""

SETTING_GROUPS: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {
        "data": (
            "input_dim",
            "n_samples",
            "input_distribution",
            "interval_low",
            "interval_high",
            "data_file",
            "target_columns",
            "dataset",
            "scaling",
            "projection",
            "subsample",
            "bias",
            "output_dim",
        ),
        "target": ("target", "teacher_width", "teacher_kind", "teacher_activation", "teacher_leak", "label_noise"),
        "student": ("width", "activation", "leak", "output_layer"),
        "init": ("init_distribution", "init_scale", "init_width_exponent", "balanced_init"),
        "training": (
            "learning_rate",
            "max_steps",
            "grad_tol",
            "dynamics",
            "max_time",
            "ode_rtol",
            "ode_atol",
            "dtype",
            "n_checkpoints",
        ),
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


DEFAULTS: Mapping[str, Any] = types.MappingProxyType(
    {name: info.default for name, info in Settings.model_fields.items()}
)


SETTING_KINDS: Mapping[str, str] = types.MappingProxyType(
    {name: _kind(info.annotation) for name, info in Settings.model_fields.items()}
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


class _Partial(Strict):
    """Base of the partial settings models; their placeholder defaults stay out of the schema."""

    model_config = ConfigDict(json_schema_extra=_drop_defaults)


def _partial_settings(name: str, doc: str, *, as_list: bool) -> type[_Partial]:
    """A model with every setting optional: its value (``fixed``) or a list of values (``grid``)."""
    fields: dict[str, Any] = {}
    for setting, info in Settings.model_fields.items():
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
