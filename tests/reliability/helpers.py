"""Helpers of the reliability tests: faults, interruptions, bad stores, provenance.

The workflow tests' fixtures (the micro survey: ``surveys/tiny.yaml`` with 300 steps, 16 runs in 2
shards, simulated in-process into a store under /dev/shm) are reused; the helpers below run the
``landscape`` command line and Snakemake in subprocesses, as a user would.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.workflow.helpers import REPO, TINY

TIMEOUT = 600
"""Seconds any one subprocess may take before a test gives up on it."""


def environment() -> dict[str, str]:
    """The test's environment with this interpreter's bin folder first (``landscape``, ``snakemake``)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def landscape(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``landscape ARGS...`` in a subprocess (as a user or Snakemake runs it)."""
    command = [sys.executable, "-m", "pipeline.cli", *map(str, args)]
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, env=environment(), check=False, timeout=TIMEOUT
    )


def survey_file(
    folder: Path,
    name: str,
    *,
    fixed: Mapping[str, Any] | None = None,
    grid: Mapping[str, Any] | None = None,
    execution: Mapping[str, Any] | None = None,
    drop_fixed: Sequence[str] = (),
) -> Path:
    """``surveys/tiny.yaml`` with 300 steps and the given changes, as ``folder/<name>.yaml``."""
    data = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    data["fixed"]["max_steps"] = 300
    for key in drop_fixed:
        del data["fixed"][key]
    data["fixed"].update(fixed or {})
    if grid is not None:
        data["grid"] = dict(grid)
    data["execution"].update(execution or {})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def workflow_copy(workdir: Path, survey: Path) -> Path:
    """Snakefile, profiles and surveys/ (with the micro survey) copied into ``workdir``."""
    workdir.mkdir(parents=True)
    shutil.copy(REPO / "Snakefile", workdir / "Snakefile")
    shutil.copytree(REPO / "profiles", workdir / "profiles")
    shutil.copytree(REPO / "surveys", workdir / "surveys")
    shutil.copy(survey, workdir / "surveys" / "micro.yaml")
    return workdir


def snakemake_command(*args: str) -> list[str]:
    """The user's command for the micro survey (targets and options in ``args``)."""
    return [sys.executable, "-m", "snakemake", *args, "--profile", "profiles/default", "--config", "survey=micro"]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        snakemake_command(*args),
        cwd=workdir,
        capture_output=True,
        text=True,
        env=environment(),
        check=False,
        timeout=TIMEOUT,
    )


def incomplete_marker(workdir: Path, output: str) -> Path:
    """Snakemake's marker of a job that started and has not finished (``.snakemake/incomplete``)."""
    return workdir / ".snakemake" / "incomplete" / base64.urlsafe_b64encode(output.encode()).decode()


def job_stats(text: str) -> dict[str, int]:
    """Snakemake's "Job stats" table as {rule: count}; {} when there is none."""
    if "Job stats:" not in text:
        return {}
    table = text.split("Job stats:")[1].split("\n\n")[0]
    counts = {}
    for line in table.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def wait_for(condition: Callable[[], Any], *, timeout: float, process: subprocess.Popen | None = None) -> Any:
    """Poll ``condition`` every 20 ms until it returns something true; fail when ``process`` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended (exit code {process.returncode}) before the awaited state")
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s")


def live_group_members(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are alive (zombies excluded), from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def file_stamps(folder: Path) -> dict[str, int]:
    """{relative path: mtime in ns} of every file under ``folder``: any rewrite changes it."""
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


def cli(capsys: Any, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``landscape ARGS...`` in this process (faster than :func:`landscape`; same code path and exit code).

    An exception escaping the command (a traceback on the command line) fails the test.
    """
    from pipeline.cli import main

    capsys.readouterr()
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["landscape", *map(str, args)], code, out, err)
