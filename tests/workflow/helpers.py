"""Helpers of the workflow tests: small surveys written as files, and the steps run in-process.

The surveys are ``surveys/tiny.yaml`` with fewer gradient steps (the workflow layer does not care
how long a run trains), so that a whole survey simulates in a couple of seconds in-process.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xarray as xr
import yaml

from pipeline.survey import load_survey
from pipeline.survey.plan import make_plan, n_shards
from pipeline.workflow.commands import collect as collect_command
from pipeline.workflow.commands import simulate as simulate_command
from pipeline.workflow.commands.status import shard_path

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "surveys" / "tiny.yaml"
MICRO_STEPS = 300

TIMING_VARIABLES = ("batch_wall_time",)
"""Data variables that measure time, hence differ between two otherwise identical computations."""


def write_survey(folder: Path, name: str, **changes: Mapping[str, Any]) -> Path:
    """``surveys/tiny.yaml`` with ``max_steps`` lowered and sections updated, as ``folder/<name>.yaml``."""
    data = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    data["fixed"]["max_steps"] = MICRO_STEPS
    for section, values in changes.items():
        data.setdefault(section, {}).update(values)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run_survey(survey_path: Path, results: Path, *, extra: tuple[str, ...] = ("--in-process",)) -> Path:
    """Simulate every shard with the ``simulate`` command, then ``collect``; returns the survey store."""
    survey = load_survey(survey_path)
    folder = results / survey.name
    shards = []
    for shard in range(n_shards(make_plan(survey))):
        path = shard_path(folder, shard)
        argv = [str(survey_path), "--shard", str(shard), "--out", str(path), *extra]
        assert simulate_command.main(argv) == 0
        shards.append(str(path))
    store = folder / "survey.zarr"
    assert collect_command.main([str(survey_path), *shards, "--out", str(store)]) == 0
    return store


def comparable(dataset: xr.Dataset, *, drop: tuple[str, ...] = ()) -> xr.Dataset:
    """The dataset without timing variables, the given coordinates, and attributes of the dataset."""
    out = dataset.drop_vars([name for name in (*TIMING_VARIABLES, *drop) if name in dataset.variables]).load()
    out.attrs = {}
    return out
