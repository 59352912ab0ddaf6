"""Conditional settings: settings that apply only in some grid cells and resolve to None elsewhere.

Each :class:`Conditional` names the settings that decide where it applies (its ``controls``) and the test on
them; :func:`normalised` sets every setting that does not apply in a cell to None. The cross-setting checks
are in :mod:`pipeline.survey.cell_rules`; :func:`pipeline.survey.rules.check_settings` runs both in every cell.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.data.sources import data_source

__all__ = [
    "CONDITIONAL",
    "CONDITIONAL_SETTINGS",
    "Conditional",
    "drawn_inputs",
    "drawn_targets",
    "gaussian_init",
    "given_data",
    "gradient_flow",
    "interval_inputs",
    "normalised",
    "teacher_target",
]


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


def drawn_inputs(v: Mapping[str, Any]) -> bool:
    """Finitely many samples drawn at random (not a population loss, not a given data set)."""
    source = data_source(v["input_distribution"])
    return source.sampled and not source.given


def given_data(v: Mapping[str, Any]) -> bool:
    """A given data set (a file or a scikit-learn set): the targets are the data's own."""
    return data_source(v["input_distribution"]).given


def drawn_targets(v: Mapping[str, Any]) -> bool:
    """Targets drawn by the survey (a teacher, an affine or a random target), not those of a given data set."""
    return not given_data(v)


def teacher_target(v: Mapping[str, Any]) -> bool:
    """Targets drawn from a teacher network."""
    return drawn_targets(v) and v["target"] == "teacher"


def gaussian_init(v: Mapping[str, Any]) -> bool:
    """Initial weights drawn from a Gaussian of a chosen scale."""
    return v["init_distribution"] == "gaussian"


def gradient_flow(v: Mapping[str, Any]) -> bool:
    """The networks follow the gradient flow (not gradient descent)."""
    return bool(v["dynamics"] == "gradient_flow")


def interval_inputs(v: Mapping[str, Any]) -> bool:
    """Scalar inputs uniform on an interval (sampled, or its population loss)."""
    return v["input_distribution"] in ("interval", "interval_population")


CONDITIONAL_SETTINGS: tuple[Conditional, ...] = (
    Conditional(
        "n_samples",
        ("input_distribution",),
        drawn_inputs,
        "inputs drawn at random only (not population losses or given data, which set their own size)",
        "set another input_distribution",
    ),
    Conditional(
        "data_file",
        ("input_distribution",),
        lambda v: v["input_distribution"] == "file",
        "input_distribution file only",
        "set input_distribution: file",
        required=True,
    ),
    Conditional(
        "target_columns",
        ("input_distribution", "data_file"),
        lambda v: v["input_distribution"] == "file" and str(v["data_file"]).lower().endswith(".csv"),
        "a .csv data_file only",
        "give a .csv data_file",
        required=True,
    ),
    Conditional(
        "dataset",
        ("input_distribution",),
        lambda v: v["input_distribution"] == "sklearn",
        "input_distribution sklearn only",
        "set input_distribution: sklearn",
        required=True,
    ),
    *(
        Conditional(name, ("input_distribution",), given_data, "given data (file, sklearn) only", "give a data set")
        for name in ("scaling", "projection", "subsample")
    ),
    *(
        Conditional(
            name,
            ("input_distribution",),
            drawn_targets,
            "drawn data only (a given data set brings its own targets)",
            "set another input_distribution",
        )
        for name in ("target", "label_noise")
    ),
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
        interval_inputs,
        "input_distribution interval or interval_population only",
        "set input_distribution: interval",
    ),
    Conditional(
        "interval_high",
        ("input_distribution",),
        interval_inputs,
        "input_distribution interval or interval_population only",
        "set input_distribution: interval",
    ),
    Conditional(
        "teacher_width",
        ("input_distribution", "target"),
        teacher_target,
        "target teacher only",
        "set target: teacher",
        required=True,
    ),
    *(
        Conditional(
            name, ("input_distribution", "target"), teacher_target, "target teacher only", "set target: teacher"
        )
        for name in ("teacher_kind", "teacher_activation")
    ),
    Conditional(
        "teacher_leak",
        ("input_distribution", "target", "teacher_activation"),
        lambda v: teacher_target(v) and v["teacher_activation"] == "leaky_relu",
        "a teacher with teacher_activation leaky_relu only",
        "set teacher_activation: leaky_relu",
        required=True,
    ),
    *(
        Conditional(
            name,
            ("dynamics",),
            gradient_flow,
            "dynamics gradient_flow only",
            "set dynamics: gradient_flow",
        )
        for name in ("max_time", "ode_rtol", "ode_atol")
    ),
    Conditional(
        "init_scale",
        ("init_distribution",),
        gaussian_init,
        "init_distribution gaussian only",
        "set init_distribution: gaussian",
    ),
    Conditional(
        "init_width_exponent",
        ("init_distribution",),
        gaussian_init,
        "init_distribution gaussian only",
        "set init_distribution: gaussian",
    ),
)
"""Settings that apply only in some cells (resolved to None elsewhere). Given on the grid where they
do not apply, or fixed where they apply in no cell, they are errors; a required one missing where it
applies is an error."""


CONDITIONAL = {c.setting: c for c in CONDITIONAL_SETTINGS}


def normalised(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every conditional setting that does not apply set to None."""
    out = dict(values)
    for name in values:
        cond = CONDITIONAL.get(name)
        if cond is not None and all(c in values for c in cond.controls) and not cond.test(values):
            out[name] = None
    return out
