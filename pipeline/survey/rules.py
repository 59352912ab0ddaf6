"""Cross-setting rules, checked in every grid cell.

:data:`CONDITIONAL_SETTINGS` are settings that apply only in some cells (resolved to None elsewhere);
:data:`CELL_RULES` are the checks that read several settings at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.data.given import DataFileError, given_source, load_given
from pipeline.data.sources import data_source
from pipeline.survey.settings import DEFAULTS


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


def _drawn(v: Mapping[str, Any]) -> bool:
    """Finitely many samples drawn at random (not a population loss, not a given data set)."""
    source = data_source(v["input_distribution"])
    return source.sampled and not source.given


def _given(v: Mapping[str, Any]) -> bool:
    """A given data set (a file or a scikit-learn set): the targets are the data's own."""
    return data_source(v["input_distribution"]).given


def _targets_drawn(v: Mapping[str, Any]) -> bool:
    return not _given(v)


def _teacher(v: Mapping[str, Any]) -> bool:
    return _targets_drawn(v) and v["target"] == "teacher"


def _gaussian_init(v: Mapping[str, Any]) -> bool:
    return v["init_distribution"] == "gaussian"


def _interval(v: Mapping[str, Any]) -> bool:
    return v["input_distribution"] in ("interval", "interval_population")


CONDITIONAL_SETTINGS: tuple[Conditional, ...] = (
    Conditional(
        "n_samples",
        ("input_distribution",),
        _drawn,
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
        Conditional(name, ("input_distribution",), _given, "given data (file, sklearn) only", "give a data set")
        for name in ("scaling", "projection", "subsample")
    ),
    *(
        Conditional(
            name,
            ("input_distribution",),
            _targets_drawn,
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
        _interval,
        "input_distribution interval or interval_population only",
        "set input_distribution: interval",
    ),
    Conditional(
        "interval_high",
        ("input_distribution",),
        _interval,
        "input_distribution interval or interval_population only",
        "set input_distribution: interval",
    ),
    Conditional(
        "teacher_width",
        ("input_distribution", "target"),
        _teacher,
        "target teacher only",
        "set target: teacher",
        required=True,
    ),
    *(
        Conditional(name, ("input_distribution", "target"), _teacher, "target teacher only", "set target: teacher")
        for name in ("teacher_kind", "teacher_activation")
    ),
    Conditional(
        "teacher_leak",
        ("input_distribution", "target", "teacher_activation"),
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

CONDITIONAL = {c.setting: c for c in CONDITIONAL_SETTINGS}

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
                f"{v['input_dim']!r} is not allowed with input_distribution {v['input_distribution']!r} "
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


def _rule_population(v: Mapping[str, Any]) -> list[Problem]:
    if v["input_distribution"] != "gaussian_population":
        return []
    problems = []
    context = "with input_distribution 'gaussian_population' (the closed-form population loss"
    if v["target"] != "teacher":
        problems.append(("target", f"{v['target']!r} is not allowed {context} needs a teacher); set target: teacher"))
        return problems
    if v["activation"] == "quadratic":
        problems.append(
            (
                "activation",
                f"'quadratic' is not allowed {context} is implemented for relu and leaky_relu); set activation: relu "
                "or leaky_relu, or input_distribution: gaussian or interval_population",
            )
        )
        return problems
    student = (v["activation"], v["leak"] if v["activation"] == "leaky_relu" else None)
    teacher = (v["teacher_activation"], v["teacher_leak"] if v["teacher_activation"] == "leaky_relu" else None)
    if student != teacher:
        problems.append(
            (
                "teacher_activation",
                f"{teacher!r} differs from the student's activation {student!r}, which is not allowed {context} "
                "uses one activation); give the teacher the student's activation and leak",
            )
        )
    if v["bias"]:
        problems.append(("bias", f"True is not allowed {context} has no bias input); set bias: false"))
    if v["label_noise"] > 0:
        problems.append(
            ("label_noise", f"{v['label_noise']!r} is not allowed {context} is noiseless); set label_noise: 0")
        )
    return problems


def _rule_interval_population(v: Mapping[str, Any]) -> list[Problem]:
    if v["input_distribution"] != "interval_population":
        return []
    context = "with input_distribution 'interval_population' (the exact population loss of an affine target"
    required = (
        ("target", "affine", "set target: affine"),
        ("bias", True, "set bias: true"),
        ("output_layer", "trained", "set output_layer: trained"),
    )
    problems = [
        (name, f"{v[name]!r} is not allowed {context} with a bias and a trained output layer); {fix}")
        for name, value, fix in required
        if v[name] != value
    ]
    if v["label_noise"] > 0:
        problems.append(
            ("label_noise", f"{v['label_noise']!r} is not allowed {context} is noiseless); set label_noise: 0")
        )
    return problems


def _rule_given_data(v: Mapping[str, Any]) -> list[Problem]:
    """A given data set is readable and fits input_dim, output_dim and subsample (read once, cached)."""
    if not _given(v):
        return []
    try:
        given = load_given(v).provenance
    except DataFileError as error:
        return [("data_file" if v["input_distribution"] == "file" else "dataset", str(error))]
    source, (n, d, k) = given_source(v), (given["n_samples"], given["input_dim"], given["output_dim"])
    problems = []
    if v["projection"] == "none" and v["input_dim"] != d:
        problems.append(
            ("input_dim", f"{v['input_dim']!r} differs from the {d} inputs of {source}; set input_dim: {d}, or "
             "projection: pca to project onto input_dim principal components")
        )  # fmt: skip
    if v["projection"] == "pca" and v["input_dim"] > min(n, d):
        problems.append(
            ("input_dim", f"{v['input_dim']!r} principal components of {source} (n = {n}, d = {d}) do not exist; "
             f"set input_dim <= {min(n, d)}")
        )  # fmt: skip
    if v["output_dim"] != k:
        problems.append(
            ("output_dim", f"{v['output_dim']!r} differs from the {k} targets of {source}; set output_dim: {k}")
        )
    if v["subsample"] is not None and v["subsample"] > n:
        problems.append(("subsample", f"{v['subsample']!r} exceeds the {n} rows of {source}; set subsample <= {n}"))
    return problems


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
    (
        (
            "input_distribution",
            "target",
            "activation",
            "leak",
            "teacher_activation",
            "teacher_leak",
            "bias",
            "label_noise",
        ),
        _rule_population,
    ),
    (("input_distribution", "target", "bias", "output_layer", "label_noise"), _rule_interval_population),
    (
        ("input_distribution", "target", "teacher_kind", "teacher_width", "input_dim", "output_dim"),
        _rule_orthonormal_teacher,
    ),
    (
        (
            "input_distribution",
            "data_file",
            "target_columns",
            "dataset",
            "projection",
            "subsample",
            "input_dim",
            "output_dim",
        ),
        _rule_given_data,
    ),
    (("init_distribution", "init_scale", "init_width_exponent"), _rule_init_scale),
    (("balanced_init", "output_layer"), _rule_balanced),
)
"""(settings read, check) pairs; each check runs on every combination of the grid values it reads."""


def combos(names: Sequence[str], base: Mapping[str, Any], grid: Mapping[str, list]) -> Iterator[dict]:
    """Every combination of the values of ``names`` over the grid (fixed and defaults held)."""
    axes = [name for name in dict.fromkeys(names) if name in grid]
    for values in itertools.product(*(grid[axis] for axis in axes)):
        cell = {name: base[name] for name in names}
        cell.update(zip(axes, values, strict=True))
        yield cell


def _cell_context(names: Sequence[str], values: Mapping[str, Any]) -> str:
    """``name value, ...`` of the settings that define a cell, without those at their default (all at it: the last)."""
    shown = [name for name in names if values[name] != DEFAULTS[name]] or list(names[-1:])
    return ", ".join(f"{name} {values[name]!r}" for name in shown)


def check_settings(
    fixed: Mapping[str, Any], grid: Mapping[str, list], applies_elsewhere: frozenset[str] = frozenset()
) -> tuple[list[str], set[str]]:
    """Messages for every broken cross-setting rule, and the conditional settings that apply somewhere.

    ``applies_elsewhere``: conditional settings that apply in another case of the survey, so that a fixed
    value of theirs is not an error here (it resolves to None in these cells).
    """
    base = {**DEFAULTS, **fixed}

    def where(setting: str) -> str:
        if setting in grid:
            return f"grid.{setting}"
        return f"fixed.{setting}" if fixed.get(setting) is not None else setting

    messages: list[str] = []
    applies_somewhere: set[str] = set()
    for cond in CONDITIONAL_SETTINGS:
        for values in combos((cond.setting, *cond.controls), base, grid):
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
        if fixed.get(cond.setting) is not None and cond.setting not in applies_somewhere | applies_elsewhere:
            values = next(combos(cond.controls, base, grid))
            messages.append(
                f"fixed.{cond.setting}: {fixed[cond.setting]!r} is not allowed with "
                f"{_cell_context(cond.controls, values)} ({cond.setting} applies to {cond.scope}); "
                f"remove {cond.setting} or {cond.fix}"
            )
    if messages:  # later rules would repeat these problems
        return list(dict.fromkeys(messages)), applies_somewhere
    for names, check in CELL_RULES:
        for values in combos(names, base, grid):
            for setting, text in check(normalised(values)):
                messages.append(f"{where(setting)}: {text}")
    return list(dict.fromkeys(messages)), applies_somewhere


def normalised(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every conditional setting that does not apply set to None."""
    out = dict(values)
    for name in values:
        cond = CONDITIONAL.get(name)
        if cond is not None and all(c in values for c in cond.controls) and not cond.test(values):
            out[name] = None
    return out
