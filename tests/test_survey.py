"""Survey files: validation (every error names its field), resolution, generated files, CLI."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import survey as survey_module
from pipeline.survey import (
    MAX_RUNS,
    NAME_PATTERN,
    SETTING_KINDS,
    SETTING_NAMES,
    Survey,
    SurveyError,
    load_survey,
    main,
    parse_survey,
    reference_text,
    schema_text,
)

SURVEYS = Path(__file__).resolve().parent.parent / "surveys"
SOURCE = "surveys/t.yaml"


def base() -> dict[str, Any]:
    """A small valid survey, as read from YAML."""
    return {
        "schema_version": 1,
        "description": "test survey",
        "master_seed": 7,
        "seeds": {"data": 2, "init": 3},
        "fixed": {"input_dim": 3, "n_samples": 8, "target": "teacher", "teacher_width": 2, "max_steps": 100},
        "grid": {"width": [2, 4], "init_scale": [1.0e-6, 1.0]},
    }


def parse(data: dict[str, Any], name: str = "t") -> Survey:
    return parse_survey(data, name, source=SOURCE)


def rejected(data: Any, name: str = "t") -> str:
    with pytest.raises(SurveyError) as info:
        parse(data, name)
    message = str(info.value)
    assert "Traceback" not in message
    assert all(line.startswith(f"{SOURCE}: ") for line in message.splitlines()), message
    return message


def with_(path: str, value: Any, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """``data`` (default :func:`base`) with the dotted ``path`` set to ``value``."""
    data = copy.deepcopy(base() if data is None else data)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return data


def without(path: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    data = copy.deepcopy(base() if data is None else data)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    del node[last]
    return data


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
        with_("fixed.activation", "tanh"), ["fixed.activation: 'tanh'", "'relu' or 'leaky_relu'"], id="bad-choice"
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


# --- loading from files ------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_reads_1e_minus_6_as_a_float(tmp_path: Path) -> None:
    text = yaml.safe_dump(without("grid.init_scale")) + "\n" + "fixed2: null\n"
    text = text.replace("fixed2: null\n", "")
    text += "grid:\n  width: [2, 4]\n  init_scale: [1e-6, 1E-3, 1.0]\n"
    text = text.replace("grid:\n  width:\n  - 2\n  - 4\n", "")
    survey = load_survey(write(tmp_path, text))
    assert survey.grid_axes["init_scale"] == [1e-6, 1e-3, 1.0]


def test_load_rejects_duplicate_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "schema_version: 1\ngrid:\n  width: [1, 2]\n  width: [3]\n")
    with pytest.raises(SurveyError, match=r"t\.yaml: invalid YAML at line 4.*duplicate key 'width'"):
        load_survey(path)


def test_load_is_safe(tmp_path: Path) -> None:
    path = write(tmp_path, "schema_version: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(SurveyError, match="invalid YAML"):
        load_survey(path)


def test_load_reports_syntax_errors_with_a_line(tmp_path: Path) -> None:
    with pytest.raises(SurveyError, match="invalid YAML at line 3"):
        load_survey(write(tmp_path, "schema_version: 1\ngrid: [width: 1\n"))


def test_load_missing_file_and_bad_suffix(tmp_path: Path) -> None:
    with pytest.raises(SurveyError, match="cannot read"):
        load_survey(tmp_path / "absent.yaml")
    with pytest.raises(SurveyError, match=r"must end in \.yaml"):
        load_survey(write(tmp_path, "schema_version: 1\n", "t.json"))


def test_load_names_the_survey_after_the_file_stem(tmp_path: Path) -> None:
    assert load_survey(write(tmp_path, yaml.safe_dump(base()), "my-survey_1.yaml")).name == "my-survey_1"
    with pytest.raises(SurveyError, match="'My.Survey' is not a valid survey name"):
        load_survey(write(tmp_path, yaml.safe_dump(base()), "My.Survey.yaml"))


@pytest.mark.parametrize("path", sorted(SURVEYS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_surveys_are_valid(path: Path) -> None:
    survey = load_survey(path)
    assert survey.name == path.stem
    assert survey.description


def test_shipped_survey_sizes() -> None:
    tiny, default, cluster = (load_survey(SURVEYS / f"{name}.yaml") for name in ("tiny", "default", "cluster"))
    assert tiny.n_runs <= 32
    assert 1000 <= default.n_runs <= 3000
    assert cluster.n_runs >= 50 * default.n_runs


# --- resolution --------------------------------------------------------------------------------


def test_cells_are_the_grid_product_in_canonical_order() -> None:
    survey = parse(with_("grid", {"init_scale": [1.0, 0.5], "width": [3, 1, 2]}))
    cells = survey.cells()
    assert [(c["width"], c["init_scale"]) for c in cells] == [
        (3, 1.0),
        (3, 0.5),
        (1, 1.0),
        (1, 0.5),
        (2, 1.0),
        (2, 0.5),
    ]
    assert all(set(cell) == set(SETTING_NAMES) for cell in cells)


def test_cells_fill_defaults_and_null_inapplicable_settings() -> None:
    data = with_("grid.activation", ["relu", "leaky_relu"], with_("fixed.leak", 0.1))
    cells = parse(data).cells()
    by_activation = {c["activation"]: c for c in cells}
    assert by_activation["relu"]["leak"] is None
    assert by_activation["leaky_relu"]["leak"] == 0.1
    cell = cells[0]
    assert cell["interval_low"] is None and cell["interval_high"] is None
    assert cell["learning_rate"] == 0.05 and cell["dtype"] == "float64"
    assert cell["teacher_kind"] == "gaussian" and cell["teacher_leak"] is None


def test_cell_values_have_the_setting_types() -> None:
    survey = parse(with_("grid.learning_rate", [1, 2]))
    for cell in survey.cells():
        for name, value in cell.items():
            if value is not None:
                assert type(value).__name__ == SETTING_KINDS[name], (name, value)


def test_resolved_dict_round_trips_and_is_deterministic() -> None:
    data = with_("grid.target", ["teacher", "random"], without("fixed.target"))
    survey = parse(data)
    resolved = survey.resolved_dict()
    again = parse(yaml.safe_load(survey.resolved_yaml()))
    assert again.resolved_dict() == resolved
    assert again.cells() == survey.cells()
    assert survey.resolved_yaml() == parse(copy.deepcopy(data)).resolved_yaml()
    assert set(resolved["fixed"]) | set(resolved["grid"]) <= set(SETTING_NAMES)
    assert "leak" not in resolved["fixed"] and "interval_low" not in resolved["fixed"]


@pytest.mark.parametrize("path", sorted(SURVEYS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_surveys_resolve_and_reload(path: Path) -> None:
    survey = load_survey(path)
    again = parse_survey(yaml.safe_load(survey.resolved_yaml()), survey.name)
    assert again.resolved_dict() == survey.resolved_dict()


def test_fixed_explicit_null_is_absent() -> None:
    assert parse(with_("fixed.leak", None)).cells() == parse(base()).cells()


def test_survey_is_frozen() -> None:
    survey = parse(base())
    with pytest.raises(Exception, match="frozen"):
        survey.master_seed = 3  # type: ignore[misc]


# --- generated files and command line ----------------------------------------------------------


def test_committed_schema_is_fresh() -> None:
    committed = survey_module.SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == schema_text(), "run: python -m pipeline.survey export-schema"


def test_committed_reference_is_fresh() -> None:
    committed = survey_module.REFERENCE_PATH.read_text(encoding="utf-8")
    assert committed == reference_text(), "run: python -m pipeline.survey export-schema"


def test_schema_forbids_unknown_keys_everywhere() -> None:
    schema = json.loads(schema_text())
    objects = [schema, *schema["$defs"].values()]
    assert all(obj.get("additionalProperties") is False for obj in objects if obj.get("type") == "object")
    assert set(schema["$defs"]["GridSettings"]["properties"]) == set(SETTING_NAMES)
    width = schema["$defs"]["GridSettings"]["properties"]["width"]
    assert width["minItems"] == 1 and width["uniqueItems"] is True and width["items"]["minimum"] == 1


def test_cli_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SURVEYS / "tiny.yaml")]) == 0
    assert "16 runs" in capsys.readouterr().out
    bad = write(tmp_path, yaml.safe_dump(with_("fixed.widht", 3)))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "fixed.widht: unknown key" in err and "Traceback" not in err


def test_cli_export_schema_check() -> None:
    assert main(["export-schema", "--check"]) == 0


# --- property: malformed surveys are rejected with the field named --------------------------------

_INT_SETTINGS = [n for n in SETTING_NAMES if SETTING_KINDS[n] == "int" and n != "teacher_width"]
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


# ----------------------------------------------------------------------------------------------------------------
# cases: settings varied together


def with_cases(cases: list[dict[str, Any]], **grid: list[Any]) -> dict[str, Any]:
    data = base()
    data["cases"] = cases
    data["grid"] = grid
    data["fixed"]["init_scale"] = 1.0
    for case in cases:
        for name in case:
            data["fixed"].pop(name, None)
    return data


def test_cases_are_crossed_with_the_grid_case_by_case() -> None:
    survey = parse(with_cases([{"input_dim": 3, "n_samples": 5}, {"input_dim": 4, "n_samples": 9}], width=[2, 3]))
    cells = [(cell["input_dim"], cell["n_samples"], cell["width"]) for cell in survey.cells()]
    assert cells == [(3, 5, 2), (3, 5, 3), (4, 9, 2), (4, 9, 3)]
    assert survey.n_cells == 4
    assert survey.varied_settings == ["input_dim", "n_samples", "width"]
    again = parse(yaml.safe_load(survey.resolved_yaml()))
    assert again.cells() == survey.cells()


@pytest.mark.parametrize(
    ("cases", "expected"),
    [
        ([{"input_dim": 3}, {"n_samples": 4}], "cases[1]: sets ['n_samples']"),
        ([{"input_dim": 3}, {"input_dim": 3}], "two cases are identical"),
        ([{"width": 3}], "cases: width is also under grid"),
        ([{"input_dim": 3}, {}], "cases[1]: empty"),
    ],
)
def test_bad_cases_are_rejected_naming_the_problem(cases: list[dict[str, Any]], expected: str) -> None:
    assert expected in rejected(with_cases(cases, width=[2, 3]))


def test_cell_rules_are_checked_in_every_case() -> None:
    data = with_cases(
        [{"input_dim": 1, "input_distribution": "interval"}, {"input_dim": 2, "input_distribution": "interval"}]
    )
    assert "input_dim: 2 is not allowed with input_distribution 'interval'" in rejected(data)
