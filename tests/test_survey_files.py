"""Survey files: loading, shipped surveys, resolution, cases, generated files (schema freshness) and CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import survey as survey_module
from pipeline.survey import (
    SETTING_KINDS,
    SETTING_NAMES,
    SurveyError,
    load_survey,
    main,
    parse_survey,
    reference_text,
    schema_text,
)
from tests.survey_helpers import (
    SURVEYS,
    base,
    parse,
    rejected,
    with_,
    without,
)

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
