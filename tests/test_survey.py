"""Survey files: validation (every error names its field, including property tests) and survey names."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import survey as survey_module
from pipeline.survey import (
    MAX_RUNS,
    NAME_PATTERN,
    SETTING_KINDS,
    SETTING_NAMES,
    SurveyError,
)
from tests.survey_helpers import (
    SOURCE,
    base,
    parse,
    rejected,
    with_,
    without,
)


def test_base_is_valid() -> None:
    survey = parse(base())
    assert survey.name == "t"
    assert survey.n_cells == 4
    assert survey.n_runs == 24
    assert list(survey.grid_axes) == ["width", "init_scale"]


# --- rejected surveys: (mutation, text the message must hold) -------------------------------------

BAD = [
    pytest.param(with_("widht", 3), ["widht: unknown key", "allowed keys"], id="unknown-top-level"),
    pytest.param(with_("fixed.widht", 3), ["fixed.widht: unknown key (did you mean 'width'?)"], id="unknown-setting"),
    pytest.param(with_("seeds.datas", 3), ["seeds.datas: unknown key", "data, init"], id="unknown-seeds-key"),
    pytest.param(with_("width", 3), ["width: unknown key (settings go under fixed: or grid:"], id="setting-at-top"),
    pytest.param(with_("fixed.input_dim", "3"), ["fixed.input_dim: '3' (str)", "expected an integer"], id="str-int"),
    pytest.param(with_("fixed.input_dim", 3.0), ["fixed.input_dim: 3.0 (float)", "integer"], id="float-int"),
    pytest.param(with_("fixed.bias", "yes please"), ["fixed.bias", "true or false"], id="str-bool"),
    pytest.param(with_("fixed.learning_rate", "fast"), ["fixed.learning_rate: 'fast'", "a number"], id="str-float"),
    pytest.param(with_("grid.width", 4), ["grid.width: 4 (int)", "a list of values"], id="grid-not-list"),
    pytest.param(with_("fixed", [1, 2]), ["fixed: [1, 2] (list)", "mapping"], id="fixed-not-mapping"),
    pytest.param(
        with_("fixed.activation", "tanh"),
        ["fixed.activation: 'tanh'", "'relu', 'leaky_relu' or 'quadratic'"],
        id="bad-choice",
    ),
    pytest.param(with_("fixed.input_dim", 0), ["fixed.input_dim: 0 is out of range; it must be >= 1"], id="zero"),
    pytest.param(
        with_("grid.width", [2, -4]), ["grid.width[1]: -4 is out of range; it must be >= 1"], id="negative-grid-value"
    ),
    pytest.param(with_("fixed.learning_rate", 0.0), ["fixed.learning_rate: 0.0", "> 0"], id="zero-lr"),
    pytest.param(with_("seeds.init", 0), ["seeds.init: 0", ">= 1"], id="zero-seeds"),
    pytest.param(with_("execution.shard_size", 0), ["execution.shard_size: 0", ">= 1"], id="zero-shard-size"),
    pytest.param(with_("fixed.label_noise", -0.1), ["fixed.label_noise: -0.1", ">= 0"], id="negative-noise"),
    pytest.param(with_("master_seed", -1), ["master_seed: -1", ">= 0"], id="negative-master-seed"),
    pytest.param(with_("fixed.learning_rate", math.nan), ["fixed.learning_rate: nan", "finite"], id="nan"),
    pytest.param(with_("fixed.label_noise", math.inf), ["fixed.label_noise: inf", "finite"], id="inf"),
    pytest.param(with_("grid.init_scale", [1.0, math.nan]), ["grid.init_scale[1]: nan", "finite"], id="nan-grid"),
    pytest.param(with_("grid.init_scale", []), ["grid.init_scale: empty list"], id="empty-grid"),
    pytest.param(with_("grid.width", [2, 4, 2]), ["grid.width: 2 appears twice"], id="duplicate-grid-values"),
    pytest.param(with_("grid.init_scale", [1, 1.0]), ["grid.init_scale: 1.0 appears twice"], id="duplicate-1-1.0"),
    pytest.param(with_("fixed.width", 4), ["grid.width: width is also under fixed"], id="fixed-and-grid"),
    pytest.param(
        with_("grid.leak", [0.1], with_("grid.activation", ["relu", "leaky_relu"])),
        [
            "grid.leak: 0.1 is not allowed with activation 'relu' (leak applies to leaky_relu only); "
            "remove leak or set activation: leaky_relu"
        ],
        id="leak-with-relu-in-a-cell",
    ),
    pytest.param(
        with_("fixed.leak", 0.1), ["fixed.leak: 0.1 is not allowed with activation 'relu'"], id="fixed-leak-with-relu"
    ),
    pytest.param(
        with_("fixed.activation", "leaky_relu"),
        ["leak: missing; it is required with activation 'leaky_relu'"],
        id="leaky-without-leak",
    ),
    pytest.param(
        with_("fixed.leak", 1.0, with_("fixed.activation", "leaky_relu")),
        ["fixed.leak: 1.0 is out of range; it must be < 1"],
        id="leak-one",
    ),
    pytest.param(
        with_("fixed.teacher_kind", "orthonormal", with_("fixed.teacher_width", 5)),
        ["fixed.teacher_width: 5 is too wide for an orthonormal teacher with input_dim 3"],
        id="orthonormal-too-wide",
    ),
    pytest.param(
        with_("grid.input_dim", [1, 3], without("fixed.input_dim", with_("fixed.teacher_kind", "orthonormal"))),
        ["fixed.teacher_width: 2 is too wide for an orthonormal teacher with input_dim 1"],
        id="orthonormal-too-wide-in-a-cell",
    ),
    pytest.param(
        with_("fixed.output_dim", 2, with_("fixed.teacher_kind", "orthonormal")),
        ["fixed.output_dim: 2 is not allowed with an orthonormal teacher"],
        id="orthonormal-output-dim",
    ),
    pytest.param(
        without("fixed.teacher_width"),
        ["teacher_width: missing; it is required with target 'teacher'"],
        id="teacher-without-width",
    ),
    pytest.param(
        with_("fixed.target", "affine"),
        ["fixed.teacher_width: 2 is not allowed with target 'affine'"],
        id="teacher-width-with-affine",
    ),
    pytest.param(
        with_(
            "grid.teacher_width",
            [1, 2],
            with_("grid.target", ["teacher", "random"], without("fixed.teacher_width", without("fixed.target"))),
        ),
        ["grid.teacher_width: 1 is not allowed with target 'random'"],
        id="grid-teacher-width-random",
    ),
    pytest.param(
        with_("fixed.input_distribution", "interval"),
        ["fixed.input_dim: 3 is not allowed with input_distribution 'interval'"],
        id="interval-needs-scalar-input",
    ),
    pytest.param(
        with_("fixed.interval_low", 2.0, with_("fixed.input_dim", 1, with_("fixed.input_distribution", "interval"))),
        ["fixed.interval_low: 2.0 is not below interval_high 1.0"],
        id="interval-low-above-high",
    ),
    pytest.param(
        with_("fixed.interval_low", -2.0),
        ["fixed.interval_low: -2.0 is not allowed with input_distribution 'gaussian'"],
        id="interval-without-interval",
    ),
    pytest.param(
        with_("fixed.input_distribution", "orthogonal"),
        ["fixed.n_samples: 8 is not allowed with input_distribution 'orthogonal'"],
        id="orthogonal-too-many-samples",
    ),
    pytest.param(without("grid.init_scale"), ["init_scale: missing"], id="no-init-scale"),
    pytest.param(
        with_("fixed.init_width_exponent", -1.0),
        ["fixed.init_width_exponent: -1.0 is not allowed together with init_scale"],
        id="scale-and-exponent",
    ),
    pytest.param(
        with_("fixed.init_distribution", "xavier"),
        ["grid.init_scale: 1e-06 is not allowed with init_distribution 'xavier'"],
        id="xavier-scale",
    ),
    pytest.param(
        with_("grid.balanced_init", [False, True], with_("fixed.output_layer", "fixed")),
        ["grid.balanced_init: True is not allowed with output_layer 'fixed'"],
        id="balanced-fixed-output",
    ),
    pytest.param(with_("fixed.teacher_activation", "leaky_relu"), ["teacher_leak: missing"], id="teacher-leak"),
    pytest.param(
        with_("fixed.max_time", 10.0),
        ["fixed.max_time: 10.0 is not allowed with dynamics 'gd'"],
        id="max-time-without-flow",
    ),
    pytest.param(
        with_("grid.ode_rtol", [1e-6, 1e-8], with_("fixed.dynamics", "gd")),
        ["grid.ode_rtol", "dynamics gradient_flow only"],
        id="ode-rtol-without-flow",
    ),
    pytest.param(
        with_("fixed.activation", "quadratic", with_("fixed.dynamics", "gradient_flow")),
        ["dynamics: 'gradient_flow' is not available with activation 'quadratic'"],
        id="flow-quadratic",
    ),
    pytest.param(
        with_("seeds", {"data": 1000, "init": 1000}, with_("grid.label_noise", [i / 10 for i in range(20)])),
        ["grid: 80,000,000 runs", f"exceed the cap of {MAX_RUNS:,} runs"],
        id="run-cap",
    ),
    pytest.param(with_("schema_version", 2), ["schema_version: 2 is not allowed; allowed: 1"], id="schema-version"),
    pytest.param(without("schema_version"), ["schema_version: missing"], id="no-schema-version"),
    pytest.param(with_("description", "two\nlines"), ["description: 'two\\nlines' does not match"], id="two-lines"),
    pytest.param(
        with_("execution.cluster", "scheduler"),
        ["execution.scheduler_address: missing"],
        id="scheduler-without-address",
    ),
    pytest.param(
        with_("execution.scheduler_address", "tcp://h:8786"),
        ["execution.scheduler_address: 'tcp://h:8786' is not allowed with cluster 'local'"],
        id="address-without-scheduler",
    ),
    pytest.param(
        with_("execution.device", "tpu"), ["execution.device: 'tpu'", "'auto', 'cpu' or 'cuda'"], id="bad-device"
    ),
    pytest.param(with_("classify.embedding_betas", []), ["classify.embedding_betas:"], id="no-betas"),
    pytest.param(
        with_("classify.embedding_betas", [0.5, 0.5]), ["classify.embedding_betas: [0.5, 0.5]"], id="beta-twice"
    ),
    pytest.param(
        with_("classify.embeddings", True, with_("fixed.output_layer", "fixed")),
        ["classify.embeddings: needs sampled inputs and a trained output layer"],
        id="embeddings-fixed-output",
    ),
    pytest.param(
        with_(
            "classify.embeddings",
            True,
            with_("fixed.input_distribution", "gaussian_population", without("fixed.n_samples")),
        ),
        ["classify.embeddings: needs sampled inputs", "'gaussian_population'"],
        id="embeddings-population",
    ),
    pytest.param(
        with_(
            "classify.embeddings",
            True,
            with_("fixed.activation", "quadratic", with_("fixed.target", "affine", without("fixed.teacher_width"))),
        ),
        ["classify.embeddings: the embedding theorems", "activation 'quadratic'"],
        id="embeddings-quadratic",
    ),
    pytest.param(with_("name", "other"), ["name: not allowed in the file"], id="name-in-file"),
    pytest.param(None, ["the survey is empty"], id="empty"),
    pytest.param([1, 2], ["the survey is a list, not a mapping"], id="list"),
]


@pytest.mark.parametrize(("data", "expected"), BAD)
def test_rejected_with_a_message_naming_the_field(data: Any, expected: list[str]) -> None:
    message = rejected(data)
    for text in expected:
        assert text in message, message


def test_every_problem_is_reported() -> None:
    data = with_("fixed.widht", 3, with_("fixed.learning_rate", math.nan, with_("grid.width", [])))
    message = rejected(data)
    assert len(message.splitlines()) == 3
    for field in ("fixed.widht", "fixed.learning_rate", "grid.width"):
        assert field in message


@pytest.mark.parametrize("name", ["Bad", "../x", "a/b", "", ".hidden", "x.y", "x y", "-x", "_x", "a" * 65, ".."])
def test_bad_survey_name(name: str) -> None:
    message = rejected(base(), name=name)
    assert "name: " in message and "not a valid survey name" in message or "characters" in message


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=70))
def test_property_names_are_safe_path_components_or_rejected(name: str) -> None:
    try:
        survey = parse(base(), name=name)
    except SurveyError as error:
        assert f"{SOURCE}: name: " in str(error)
    else:
        assert re.fullmatch(NAME_PATTERN, survey.name) and ".." not in name and "/" not in name
        assert (Path("results") / name).resolve().parent == Path("results").resolve()


@pytest.mark.parametrize("name", ["tiny", "default", "a", "paper-2026_v2", "0x"])
def test_good_survey_name(name: str) -> None:
    assert parse(base(), name=name).name == name


# --- property: malformed surveys are rejected with the field named --------------------------------

_INT_SETTINGS = [n for n in SETTING_NAMES if SETTING_KINDS[n] == "int" and n not in ("teacher_width", "subsample")]
_FLOAT_SETTINGS = ["learning_rate", "grad_tol", "label_noise", "init_scale"]


@st.composite
def malformed(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """(a survey with exactly one kind of defect, a field path its error message must name)."""
    data = base()
    data["grid"] = {"width": [2, 4]}
    data["fixed"]["init_scale"] = 1.0
    del data["fixed"]["n_samples"]
    kind = draw(
        st.sampled_from(
            [
                "unknown",
                "type",
                "nonpositive",
                "nonfinite",
                "empty",
                "duplicate",
                "both",
                "leak",
                "cap",
                "teacher_output",
                "section_type",
            ]
        )
    )
    section = draw(st.sampled_from(["fixed", "grid"]))
    if kind == "unknown":
        where = draw(st.sampled_from(["", "fixed.", "grid.", "seeds.", "execution.", "classify."]))
        key = draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
        if key in {
            *SETTING_NAMES,
            "schema_version",
            "description",
            "master_seed",
            "seeds",
            "fixed",
            "grid",
            "classify",
            "execution",
            "data",
            "init",
            "name",
            *survey_module.Execution.model_fields,
            *survey_module.Classify.model_fields,
        }:
            key += "_x"
        return with_(where + key, 1, data), where + key
    if kind == "type":
        name = draw(st.sampled_from(_INT_SETTINGS))
        value = draw(st.one_of(st.text(max_size=5), st.just(2.5), st.just([1]), st.just({"a": 1}), st.none()))
        data["grid"].pop(name, None)
        data["fixed"].pop(name, None)
        if section == "grid":
            return with_(f"grid.{name}", [value], data), f"grid.{name}[0]"
        return with_(f"fixed.{name}", value, data), f"fixed.{name}"
    if kind == "nonpositive":
        name = draw(st.sampled_from(["input_dim", "n_samples", "width", "max_steps", "output_dim"]))
        value = draw(st.integers(max_value=0))
        data["grid"].pop(name, None)
        data["fixed"].pop(name, None)
        return with_(f"fixed.{name}", value, data), f"fixed.{name}"
    if kind == "nonfinite":
        name = draw(st.sampled_from(_FLOAT_SETTINGS))
        value = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        data["fixed"].pop(name, None)
        if section == "grid":
            return with_(f"grid.{name}", [0.5, value], data), f"grid.{name}[1]"
        return with_(f"fixed.{name}", value, data), f"fixed.{name}"
    if kind == "empty":
        return with_("grid.n_samples", [], data), "grid.n_samples"
    if kind == "duplicate":
        value = draw(st.integers(1, 100))
        return with_("grid.n_samples", [value, value + 1, value], data), "grid.n_samples"
    if kind == "both":
        return with_("fixed.width", 3, data), "grid.width"
    if kind == "leak":
        value = draw(st.floats(0, 0.99))
        data["grid"]["activation"] = ["leaky_relu", "relu"]
        return with_("grid.leak", [value], data), "grid.leak"
    if kind == "cap":
        n = draw(st.integers(11, 1000))
        data["seeds"] = {"data": 1000, "init": 1000}
        return with_("grid.n_samples", list(range(1, n + 1)), data), "grid: "
    if kind == "teacher_output":
        data["fixed"]["teacher_kind"] = "orthonormal"
        return with_("fixed.output_dim", draw(st.integers(2, 50)), data), "fixed.output_dim"
    value = draw(st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2)))
    target = draw(st.sampled_from(["seeds", "fixed", "grid", "classify", "execution"]))
    return with_(target, value, data), target


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(malformed())
def test_property_malformed_surveys_are_rejected_naming_the_field(case: tuple[dict[str, Any], str]) -> None:
    data, field = case
    message = rejected(data)
    assert f"{SOURCE}: {field}" in message, (field, message)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=True), st.text(max_size=6))
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(
    path=st.sampled_from(["fixed", "grid", "seeds", "execution", "classify", "master_seed", "description"]),
    key=st.sampled_from([*SETTING_NAMES, "data", "init", "shard_size", "cluster", "zz"]),
    value=_values,
)
def test_property_arbitrary_values_give_a_survey_or_a_survey_error(path: str, key: str, value: Any) -> None:
    data = base()
    target = data.setdefault(path, {}) if path in ("fixed", "grid", "seeds", "execution", "classify") else None
    if isinstance(target, dict):
        target[key] = value
    else:
        data[path] = value
    try:
        survey = parse(data)
    except SurveyError as error:
        assert str(error).startswith(f"{SOURCE}: ")
    else:
        assert survey.n_runs == len(survey.cells()) * survey.runs_per_cell
