"""Shared helpers of the survey tests: a small valid survey, its dotted-path mutations, and parsing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from pipeline.survey import Survey, SurveyError, parse_survey

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
