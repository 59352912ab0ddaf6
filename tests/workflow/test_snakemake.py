"""The Snakemake workflow end to end on a copy of the repository's Snakefile, surveys and profiles."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

from pipeline.store import validate
from pipeline.survey import load_survey
from pipeline.survey.plan import make_plan
from tests.reliability.helpers import job_stats
from tests.workflow.helpers import REPO, comparable, run_survey, write_survey

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "snakemake", *args, "--profile", "profiles/default", "--config", "survey=micro"]
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env, check=False, timeout=900)


@pytest.fixture(scope="module")
def workflow_copy(scratch_root: Path) -> Path:
    """Snakefile, profiles and surveys/ (with the micro survey) copied into a fresh folder, then run."""
    workdir = scratch_root / "workflow"
    workdir.mkdir()
    shutil.copy(REPO / "Snakefile", workdir / "Snakefile")
    shutil.copytree(REPO / "profiles", workdir / "profiles")
    shutil.copytree(REPO / "surveys", workdir / "surveys")
    write_survey(workdir / "surveys", "micro")
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_workflow_store_validates_and_equals_in_process(workflow_copy: Path, scratch: Path) -> None:
    store = workflow_copy / "results" / "micro" / "survey.zarr"
    survey = workflow_copy / "results" / "micro" / "survey.resolved.yaml"
    assert validate(store, make_plan(load_survey(survey, name="micro"))) == []
    direct = run_survey(workflow_copy / "surveys" / "micro.yaml", scratch)
    a, b = xr.open_zarr(store, chunks=None), xr.open_zarr(direct, chunks=None)
    xr.testing.assert_identical(comparable(a), comparable(b))
    assert (workflow_copy / "results" / "micro" / "report" / "index.html").exists()
    for rule in ("resolve", "plan", "collect", "report"):
        assert list((workflow_copy / "logs" / rule).rglob("*.log")), rule
        assert list((workflow_copy / "benchmarks-out" / rule).rglob("*.tsv")), rule
    log = (workflow_copy / "logs" / "simulate" / "micro" / "shard-0000.log").read_text()
    assert "distributed.scheduler" not in log and "INFO distributed" not in log, log[:2000]


def test_rerun_does_nothing(workflow_copy: Path) -> None:
    result = snakemake(workflow_copy)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_an_interrupted_survey_recomputes_only_the_missing_shard(workflow_copy: Path) -> None:
    """As after a killed run: one shard store and the survey store are missing.

    (With the survey store present, a deleted shard is an intermediate file Snakemake need not
    rebuild: it reports "Nothing to be done"; see test_a_deleted_shard_alone_is_not_rebuilt.)
    """
    results = workflow_copy / "results" / "micro"
    kept = results / "shards" / "shard-0000.zarr"
    before = (kept / "zarr.json").stat().st_mtime_ns
    shutil.rmtree(results / "shards" / "shard-0001.zarr")
    shutil.rmtree(results / "survey.zarr")
    dry = snakemake(workflow_copy, "-n")
    jobs = job_stats(dry.stdout + dry.stderr)
    assert jobs == {"all": 1, "simulate": 1, "collect": 1, "report": 1, "total": 4}, jobs
    assert "shards/shard-0001.zarr" in dry.stdout + dry.stderr
    result = snakemake(workflow_copy)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (kept / "zarr.json").stat().st_mtime_ns == before
    assert validate(results / "survey.zarr") == []


def test_a_deleted_shard_alone_is_not_rebuilt(workflow_copy: Path) -> None:
    shards = workflow_copy / "results" / "micro" / "shards"
    shutil.rmtree(shards / "shard-0001.zarr")
    dry = snakemake(workflow_copy, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    # asking for the shard rebuilds it alone
    result = snakemake(workflow_copy, "results/micro/shards/shard-0001.zarr")
    assert result.returncode == 0, result.stderr[-4000:]
    assert job_stats(result.stdout + result.stderr) == {"simulate": 1, "total": 1}


def test_changing_the_survey_plans_every_dependent_job(workflow_copy: Path) -> None:
    """Snakemake 9 compares checksums of small inputs: a mere touch changes nothing, an edit reruns all."""
    survey = workflow_copy / "surveys" / "micro.yaml"
    before = job_stats(_dry_run(workflow_copy))
    survey.touch()
    after = _dry_run(workflow_copy)
    assert job_stats(after) == before
    survey.write_text(survey.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    jobs = job_stats(_dry_run(workflow_copy))
    assert jobs == {"all": 1, "resolve": 1, "plan": 1, "simulate": 2, "collect": 1, "report": 1, "total": 7}, jobs


def _dry_run(workdir: Path) -> str:
    dry = snakemake(workdir, "-n")
    assert dry.returncode == 0, dry.stderr[-4000:]
    return dry.stdout + dry.stderr


def test_lint_has_no_errors(workflow_copy: Path) -> None:
    result = snakemake(workflow_copy, "--lint")
    print(result.stdout, result.stderr)  # warnings are reported (pytest -s shows them)
    assert "Traceback" not in result.stderr
