"""Cross-setting rules: checks that read several settings of one grid cell at once.

Each rule of :data:`CELL_RULES` returns the :data:`Problem` s of a cell whose conditional settings that do not
apply are None (:func:`pipeline.survey.conditional.normalised`); :func:`pipeline.survey.rules.check_settings`
runs it on every combination of the grid values it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.data.given import DataFileError, given_source, load_given
from pipeline.survey.conditional import gaussian_init, given_data, gradient_flow, interval_inputs, teacher_target

__all__ = ["CELL_RULES", "Problem"]

Problem = tuple[str, str]
"""(setting named in the message, text after ``<location>: ``)."""


def _rule_interval(v: Mapping[str, Any]) -> list[Problem]:
    if not interval_inputs(v):
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
    if not (teacher_target(v) and v["teacher_kind"] == "orthonormal"):
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
    if not given_data(v):
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
    if not gaussian_init(v):
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


def _rule_gradient_flow(v: Mapping[str, Any]) -> list[Problem]:
    """The flow integrates the losses that have a flow system (:meth:`pipeline.problems.Problem.flow_system`)."""
    if not gradient_flow(v):
        return []
    if v["activation"] == "quadratic" and v["input_distribution"] != "interval_population":
        return [
            (
                "dynamics",
                "'gradient_flow' is not available with activation 'quadratic' on sampled data yet (the sampled "
                "loss's flow system is for relu and leaky_relu); set dynamics: gd, activation: relu or "
                "input_distribution: interval_population",
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
    (("dynamics", "input_distribution", "activation"), _rule_gradient_flow),
)
"""(settings read, check) pairs; each check runs on every combination of the grid values it reads."""
