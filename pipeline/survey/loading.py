"""Loading survey files (safe YAML) and turning validation errors into human messages."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.survey.settings import SETTING_NAMES, FixedSettings, GridSettings
from pipeline.survey.spec import NAME_PATTERN, Classify, Execution, Seeds, Survey, SurveySpec

_MAX_ERRORS = 12


class SurveyError(ValueError):
    """A survey file that cannot be run; the message is for humans, one problem per line."""


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
