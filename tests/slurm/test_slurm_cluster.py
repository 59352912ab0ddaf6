"""Real SLURM cluster tests (no mocks): the tiny survey through SLURM, twice, against the local run.

Needs a running SLURM cluster that this process can submit to (CI starts a single-node one with
``.ci/slurm-up`` before ``pytest -m slurm``); without one every test here is skipped.

* ``snakemake --executor slurm`` with ``profiles/slurm`` (job status from ``squeue``: the cluster
  has no accounting), in a temporary copy of the Snakefile, surveys and profiles;
* the dask-jobqueue path: ``landscape simulate`` (not in-process) of a tiny variant with
  ``execution: {cluster: slurm, workers: 2}``, whose Dask workers are SLURM jobs, then ``landscape
  collect``.

Both stores must equal the local in-process result (``landscape simulate --in-process``): data
variables, coordinates and their attributes identical, timing variables and time attrs excluded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr
import yaml

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SURVEY = "tiny"
TIMING_VARIABLES = ("batch_wall_time",)
TIME_ATTRS = ("computed", "created")
# Dataset attrs that record how the shards were executed (Dask or in-process, workers, threads; the
# per-shard records also hold times), not results; the dask-jobqueue variant also differs in its
# survey file (name and execution settings).
EXECUTION_ATTRS = ("cluster", "workers", "threads", "threads_per_worker", "shards")
SURVEY_FILE_ATTRS = ("survey", "resolved_survey", "resolved_survey_json")


def _sinfo() -> str | None:
    """``sinfo``'s answer when a node can take jobs, else None."""
    if shutil.which("sinfo") is None:
        return None
    try:
        answer = subprocess.run(
            ["sinfo", "-h", "-o", "%P %t %c"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    states = ("idle", "mix", "alloc")
    usable = [line for line in answer.splitlines() if len(line.split()) == 3 and line.split()[1].startswith(states)]
    return "\n".join(usable) or None


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster() -> str:
    """Skip (at setup, so that deselected runs never ask) where no SLURM cluster can take jobs."""
    answer = _sinfo()
    if answer is None:
        pytest.skip("no SLURM cluster answers `sinfo` with a usable node (start one with `bash .ci/slurm-up`)")
    return answer


def _env() -> dict[str, str]:
    """This environment with the venv's executables first (SLURM jobs inherit it: sbatch --export=ALL)."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _node_cpus() -> int:
    """CPUs of the smallest node of the default partition."""
    out = subprocess.run(["sinfo", "-h", "-o", "%P %c"], capture_output=True, text=True, check=True).stdout
    default = [line.split() for line in out.splitlines() if line.split()[0].endswith("*")] or [out.split()]
    return int(default[0][1].rstrip("+"))


def _run(command: list[str], cwd: Path, timeout: float, log: Path) -> subprocess.CompletedProcess[str]:
    """Run a command, write its output to ``log``, fail with the output's tail and the logs on error."""
    start = time.monotonic()
    try:
        result = subprocess.run(
            command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as error:
        output = (error.stdout or b"").decode() if isinstance(error.stdout, bytes) else (error.stdout or "")
        log.write_text(output)
        _cancel_own_jobs()
        pytest.fail(f"{' '.join(command)} timed out after {timeout:.0f} s\n{output[-4000:]}\n{_squeue()}")
    log.write_text(result.stdout + result.stderr)
    elapsed = time.monotonic() - start
    print(f"{' '.join(command[:3])}...: {elapsed:.1f} s, rc {result.returncode}")
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} failed with exit code {result.returncode}\n"
            f"{(result.stdout + result.stderr)[-6000:]}\n{_rule_logs(cwd)}\n{_squeue()}"
        )
    return result


def _rule_logs(root: Path) -> str:
    """The tails of the workflow's and SLURM's log files under ``root``, for failure messages."""
    parts = []
    for path in sorted([*root.glob("logs/**/*.log"), *root.glob(".snakemake/slurm_logs/**/*.log")]):
        parts.append(f"--- {path.relative_to(root)}\n{path.read_text(errors='replace')[-1500:]}")
    return "\n".join(parts)


def _squeue(*args: str) -> str:
    return subprocess.run(["squeue", *args], capture_output=True, text=True, check=False).stdout


def _cancel_own_jobs() -> None:
    """Cancel the Dask worker jobs of this user that a failed test may have left behind."""
    command = ["scancel", "--user", str(os.getuid()), "--name", "landscape-dask"]
    subprocess.run(command, check=False, capture_output=True)


def _comparable(store: Path, drop_attrs: tuple[str, ...]) -> xr.Dataset:
    """A store loaded into memory without timing variables and the given dataset attrs."""
    with xr.open_zarr(store, consolidated=True) as dataset:
        dataset = dataset.drop_vars([name for name in TIMING_VARIABLES if name in dataset.variables]).load()
    dataset.attrs = {key: value for key, value in dataset.attrs.items() if key not in drop_attrs}
    return dataset


def _shards(plan: Path) -> list[int]:
    return sorted(int(shard) for shard in pd.read_csv(plan, usecols=["shard"])["shard"].unique())


def _run_steps(directory: Path, survey_file: Path, threads: int, *, in_process: bool, timeout: float) -> Path:
    """resolve, plan, simulate every shard and collect with the ``landscape`` command line."""
    landscape = str(BIN / "landscape")
    results = directory / "results" / survey_file.stem  # the Snakefile's path grammar: the name is the folder's
    results.mkdir(parents=True)
    resolved, plan = results / "survey.resolved.yaml", results / "plan.csv"
    _run([landscape, "resolve", str(survey_file), "--out", str(resolved)], directory, 120, directory / "resolve.log")
    _run([landscape, "plan", str(resolved), "--out", str(plan)], directory, 120, directory / "plan.log")
    shards = []
    for shard in _shards(plan):
        out = results / "shards" / f"shard-{shard:04d}.zarr"
        command = [landscape, "simulate", str(resolved), "--shard", str(shard), "--threads", str(threads)]
        command += ["--out", str(out), *(["--in-process"] if in_process else [])]
        _run(command, directory, timeout, directory / f"simulate-{shard:04d}.log")
        shards.append(str(out))
    store = results / "survey.zarr"
    _run([landscape, "collect", str(resolved), *shards, "--out", str(store)], directory, 300, directory / "collect.log")
    return store


@pytest.fixture(scope="module")
def local_store(slurm_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny survey computed locally with the in-process path (no Dask, no SLURM)."""
    directory = tmp_path_factory.mktemp("local")
    return _run_steps(directory, REPO / "surveys" / f"{SURVEY}.yaml", 2, in_process=True, timeout=600)


def test_snakemake_slurm_executor_matches_local(local_store: Path, tmp_path: Path) -> None:
    for name in ("Snakefile", "surveys", "profiles"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, tmp_path / name)
    threads = min(4, _node_cpus())  # profiles/slurm asks 4 cores per shard; a smaller node gets all it has
    command = [
        sys.executable, "-m", "snakemake",
        "--profile", "profiles/slurm",
        "--config", f"survey={SURVEY}",
        "--set-threads", f"simulate={threads}",
        "--slurm-init-seconds-before-status-checks", "2",  # status polls start sooner than the default 40 s
        "--verbose",
    ]  # fmt: skip
    result = _run(command, tmp_path, 900, tmp_path / "snakemake.log")
    output = result.stdout + result.stderr

    submitted = output.count("has been submitted with SLURM jobid")
    assert submitted == 6, f"expected resolve, plan, 2 simulate, collect, report as SLURM jobs; got {submitted}"
    assert "command=squeue" in output, "job status should come from squeue (the cluster has no accounting)"
    assert "command=sacct" not in output

    store = tmp_path / "results" / SURVEY / "survey.zarr"
    assert (tmp_path / "results" / SURVEY / "report" / "index.html").is_file()
    drop = TIME_ATTRS + EXECUTION_ATTRS
    xr.testing.assert_identical(_comparable(store, drop), _comparable(local_store, drop))


def test_dask_jobqueue_slurm_workers_match_local(local_store: Path, tmp_path: Path) -> None:
    spec = yaml.safe_load((REPO / "surveys" / f"{SURVEY}.yaml").read_text())
    spec["execution"].update(cluster="slurm", workers=2)
    survey_file = tmp_path / f"{SURVEY}-slurm.yaml"
    survey_file.write_text(yaml.safe_dump(spec, sort_keys=False))

    seen: set[str] = set()
    stop = False

    def watch() -> None:  # the worker jobs, as squeue reports them while the shards run
        while not stop:
            for line in _squeue("-h", "--name", "landscape-dask", "-o", "%i %T").splitlines():
                job, state = line.split()
                if state == "RUNNING":
                    seen.add(job)
            time.sleep(1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        store = _run_steps(tmp_path, survey_file, 1, in_process=False, timeout=600)
    except BaseException:
        _cancel_own_jobs()
        raise
    finally:
        stop = True
        watcher.join()

    logs = "\n".join(path.read_text() for path in sorted(tmp_path.glob("simulate-*.log")))
    assert logs.count("dask-jobqueue: 2 SLURM job(s)") == 2, logs[-3000:]
    assert len(seen) >= 4, f"expected 2 worker jobs per shard (2 shards) running in SLURM; squeue saw {sorted(seen)}"

    for _ in range(60):  # the cluster cancels its jobs on close
        if not _squeue("-h", "--name", "landscape-dask").strip():
            break
        time.sleep(1)
    else:
        left = _squeue()
        _cancel_own_jobs()
        pytest.fail(f"worker jobs left in the queue after the shards finished:\n{left}")

    drop = TIME_ATTRS + EXECUTION_ATTRS + SURVEY_FILE_ATTRS
    xr.testing.assert_identical(_comparable(store, drop), _comparable(local_store, drop))
