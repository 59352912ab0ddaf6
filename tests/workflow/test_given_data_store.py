"""A survey on a data file end to end: the file's hash in the store, and stores on changed data refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.store import open_store, validate
from pipeline.survey import load_survey
from pipeline.survey.plan import make_plan, n_shards
from pipeline.workflow.commands import collect as collect_command
from tests.workflow.helpers import run_survey


def _survey(folder: Path, data_file: Path) -> Path:
    data = {
        "schema_version": 1,
        "description": "a data file, end to end",
        "master_seed": 5,
        "seeds": {"data": 1, "init": 4},
        "fixed": {
            "input_distribution": "file",
            "data_file": str(data_file),
            "target_columns": "y",
            "input_dim": 2,
            "bias": True,
            "init_scale": 0.5,
            "max_steps": 200,
        },
        "grid": {"width": [2, 6]},
        "execution": {"shard_size": 4, "batch_size": 4, "device": "cpu"},
    }
    path = folder / "own.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "points.csv"
    path.write_text("x1,x2,y\n-1,0.5,0.3\n-0.5,-1,-0.2\n0,1,0.8\n0.5,-0.5,0.1\n1,0,0.9\n1.5,1,-0.4\n")
    return path


def test_the_store_records_the_file_and_refuses_a_changed_one(
    tmp_path: Path, data_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    survey = _survey(tmp_path, data_file)
    store = run_survey(survey, tmp_path / "results")
    dataset = open_store(store)
    sources = json.loads(dataset.attrs["data_sources"])
    record = sources[f"file:{data_file}"]
    assert record["sha256"] == hashlib.sha256(data_file.read_bytes()).hexdigest()
    assert (record["n_samples"], record["input_dim"], record["output_dim"]) == (6, 2, 1)
    assert dataset.sizes["run"] == 8 and np.isfinite(dataset["loss_final"].values).all()
    assert validate(store) == []

    data_file.write_text(data_file.read_text().replace("0.9", "0.7"))
    problems = validate(store)
    assert len(problems) == 1 and "the data changed since the store was computed" in problems[0], problems
    shards = sorted(str(path) for path in (tmp_path / "results" / "own" / "shards").glob("*.zarr"))
    assert len(shards) == n_shards(make_plan(load_survey(survey))) == 2
    again = tmp_path / "again.zarr"
    capsys.readouterr()
    assert collect_command.main([str(survey), *shards, "--out", str(again)]) == 2
    assert f"file:{data_file}: the data changed since the store was computed" in capsys.readouterr().err
    assert not again.exists()
