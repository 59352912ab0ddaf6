"""The command line: status, query, validate, thread sizing, and the user-error convention."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline import cli
from pipeline.store import temporary_path
from pipeline.survey import load_survey
from pipeline.workflow.commands import query, status, validate
from pipeline.workflow.commands.simulate import execution_settings
from pipeline.workflow.runner import ExecutionSettings, fit_to_threads
from tests.workflow.helpers import write_survey

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_status_done_running_missing(micro_survey: Path, micro_store: Path, scratch: Path, capsys) -> None:
    shards = scratch / "micro" / "shards"
    shards.mkdir(parents=True)
    assert status.main([str(micro_survey), "--results", str(scratch)]) == 0
    assert "2 shards: 0 done, 0 running, 2 missing" in capsys.readouterr().out
    shutil.copytree(micro_store.parent / "shards" / "shard-0000.zarr", shards / "shard-0000.zarr")
    temporary_path(shards / "shard-0001.zarr").mkdir()  # a shard being written by a live process (this one)
    assert status.main([str(micro_survey), "--results", str(scratch)]) == 0
    out = capsys.readouterr().out
    assert "2 shards: 1 done, 1 running, 0 missing" in out and "running: 1" in out and "not collected yet" in out
    shutil.rmtree(temporary_path(shards / "shard-0001.zarr"))
    temporary_path(shards / "shard-0001.zarr", pid=_dead_pid()).mkdir()  # left by a killed job
    assert status.main([str(micro_survey), "--results", str(scratch)]) == 0
    out = capsys.readouterr().out
    assert "1 done, 0 running, 1 missing" in out and "interrupted (stale temporary store): 1" in out


def test_query_prints_and_writes_csv(micro_store: Path, scratch: Path, capsys) -> None:
    assert query.main([str(micro_store), "--by", "width"]) == 0
    printed = capsys.readouterr().out
    assert "width" in printed and len(printed.strip().splitlines()) >= 3
    out = scratch / "rates.csv"
    assert query.main([str(micro_store), "--by", "width", "init_scale", "--csv", str(out)]) == 0
    table = pd.read_csv(out)
    assert {"width", "init_scale"} <= set(table.columns)
    assert set(table["width"]) == {2, 4}


def test_query_unknown_setting_is_a_user_error(micro_store: Path, capsys) -> None:
    assert query.main([str(micro_store), "--by", "colour"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "'colour'" in err and len(err.strip().splitlines()) == 1


def test_validate_survey_and_store(micro_survey: Path, micro_store: Path, copy_store, capsys) -> None:
    assert validate.main([str(micro_survey)]) == 0
    assert "valid survey 'micro' with 16 runs in 4 grid cells" in capsys.readouterr().out
    assert validate.main([str(micro_store), "--survey", str(micro_survey)]) == 0
    assert "valid store" in capsys.readouterr().out
    damaged = copy_store()
    shutil.rmtree(damaged / "steps_taken" / "c")
    assert validate.main([str(damaged)]) == 1
    assert "array 'steps_taken' has 0 of 2 chunks on disk" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "surveys/no-such-survey.yaml"],
        ["plan", "does/not/exist.yaml", "--out", "plan.csv"],
        ["simulate", "{bad}", "--shard", "0", "--out", "x.zarr"],
        ["simulate", "{micro}", "--shard", "7", "--out", "x.zarr"],
        ["status", "{bad}"],
        ["validate", "no-such-store.zarr"],
    ],
)
def test_user_errors_exit_2_with_one_line(argv, micro_survey: Path, scratch: Path, capsys) -> None:
    bad = write_survey(scratch, "bad", fixed={"activation": "relu", "leak": 0.1, "colour": "blue"})
    argv = [arg.format(bad=bad, micro=micro_survey) for arg in argv]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


@pytest.mark.slow
def test_console_script_prints_no_traceback(scratch: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        ["landscape", "validate", str(scratch / "missing.yaml")], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_threads_are_never_oversubscribed(micro_survey: Path) -> None:
    survey = load_survey(micro_survey)
    assert execution_settings(survey, 2, in_process=False) == ExecutionSettings(cluster="local", workers=2)
    assert execution_settings(survey, 1, in_process=False).workers == 1
    assert execution_settings(survey, 8, in_process=True).workers == 1
    many = ExecutionSettings(cluster="local", workers=4, threads_per_worker=3)
    fitted = fit_to_threads(many, 8)
    assert (fitted.workers, fitted.threads_per_worker) == (2, 3)
    fitted = fit_to_threads(many, 2)
    assert fitted.workers * fitted.threads_per_worker <= 2
    remote = ExecutionSettings(cluster="scheduler", workers=64, scheduler_address="tcp://x:1")
    assert fit_to_threads(remote, 2) == remote  # remote workers do not share this job's cores
    with pytest.raises(ValueError, match="--threads"):
        fit_to_threads(many, 0)
