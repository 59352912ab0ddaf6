"""Run the batches of a shard in-process or on Dask workers, and gather them into one Dataset.

The only module that talks to ``dask.distributed``. A Dask task is a batch (hundreds of runs), not
a run. Workers are a local cluster sized from the step's threads (default), an existing scheduler,
or SLURM jobs started by dask-jobqueue. Every task sets its torch threads explicitly, so that
``workers x threads_per_worker`` never exceeds the cores it was given.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import xarray as xr

from pipeline.batch import Padding, simulate_batch
from pipeline.end_game import EndGameOptions
from pipeline.store import record_to_dataset

__all__ = ["ExecutionSettings", "fit_to_threads", "run_batches"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Environment variables that cap BLAS/OpenMP threads in worker processes."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecutionSettings:
    """How the batches of a shard are executed.

    Attributes
    ----------
    cluster
        ``none`` (in-process, no Dask), ``local`` (a local Dask cluster), ``scheduler`` (an existing
        scheduler at ``scheduler_address``) or ``slurm`` (dask-jobqueue SLURMCluster).
    workers
        Number of Dask workers (local: processes; slurm: jobs).
    threads_per_worker
        torch threads per worker.
    device
        ``auto``, ``cpu`` or ``cuda``; with ``cuda`` each local worker takes one GPU.
    scheduler_address
        Address of an existing scheduler (``cluster == "scheduler"``).
    """

    cluster: str = "local"
    workers: int = 1
    threads_per_worker: int = 1
    device: str = "cpu"
    scheduler_address: str | None = None


def fit_to_threads(execution: ExecutionSettings, threads: int) -> ExecutionSettings:
    """Shrink a local or in-process execution so that ``workers x threads_per_worker <= threads``.

    ``threads`` are the cores this step was given (Snakemake's ``{threads}``). Workers of an existing
    scheduler or of SLURM jobs run elsewhere and are left as they are.
    """
    if threads < 1:
        raise ValueError(f"--threads must be >= 1; got {threads}")
    if execution.cluster not in ("none", "local"):
        return execution
    per_worker = min(execution.threads_per_worker, threads)
    workers = 1 if execution.cluster == "none" else max(min(execution.workers, threads // per_worker), 1)
    if (workers, per_worker) != (execution.workers, execution.threads_per_worker):
        log.warning(
            "%d workers x %d threads exceed the %d threads given; using %d x %d",
            execution.workers,
            execution.threads_per_worker,
            threads,
            workers,
            per_worker,
        )
    return dataclasses.replace(execution, workers=workers, threads_per_worker=per_worker)


def run_batches(
    batches: Sequence[pd.DataFrame],
    *,
    master_seed: int,
    padding: Padding,
    classify_plateaus: bool,
    execution: ExecutionSettings,
    progress: Callable[[int, int], None] | None = None,
    kink_tolerance_factor: float = 1.0,
    end_game: EndGameOptions | None = None,
    embedding_betas: tuple[float, ...] | None = None,
) -> xr.Dataset:
    """Simulate every batch and concatenate the results along ``run`` in plan order.

    The classification options are those of :func:`pipeline.batch.simulate_batch`.
    """
    task = _BatchTask(
        master_seed,
        padding,
        classify_plateaus,
        execution.device,
        execution.threads_per_worker,
        kink_tolerance_factor,
        end_game or EndGameOptions(),
        embedding_betas,
    )
    if execution.cluster == "none":
        results = []
        for index, rows in enumerate(batches):
            results.append(task(rows))
            if progress:
                progress(index + 1, len(batches))
    else:
        with _client(execution) as client:
            results = _run_on_dask(client, task, batches, progress)
    datasets = [record_to_dataset(rows, record) for rows, record in results]
    return xr.concat(datasets, dim="run", data_vars="all", coords="different", compat="equals").sortby("run")


@dataclass(frozen=True)
class _BatchTask:
    """One Dask task: simulate a batch with explicit thread and device settings; time it."""

    master_seed: int
    padding: Padding
    classify_plateaus: bool
    device: str
    threads: int
    kink_tolerance_factor: float = 1.0
    end_game: EndGameOptions = EndGameOptions()
    embedding_betas: tuple[float, ...] | None = None

    def __call__(self, rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        torch.set_num_threads(self.threads)
        start = time.perf_counter()
        record = simulate_batch(
            rows,
            master_seed=self.master_seed,
            padding=self.padding,
            device=_worker_device(self.device),
            classify_plateaus=self.classify_plateaus,
            kink_tolerance_factor=self.kink_tolerance_factor,
            end_game=self.end_game,
            embedding_betas=self.embedding_betas,
        )
        record["batch_wall_time"] = np.full(len(rows), time.perf_counter() - start)
        return rows, record


def _worker_device(device: str) -> str:
    """With CUDA and several GPUs, the GPU of this Dask worker (workers are named 0, 1, ...)."""
    if device not in ("auto", "cuda") or not torch.cuda.is_available():
        return device
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return "cuda"
    index = int(name) if isinstance(name, int) or str(name).isdigit() else 0
    return f"cuda:{index % torch.cuda.device_count()}"


def _run_on_dask(
    client: object,
    task: _BatchTask,
    batches: Sequence[pd.DataFrame],
    progress: Callable[[int, int], None] | None,
) -> list[tuple[pd.DataFrame, dict[str, np.ndarray]]]:
    from distributed import as_completed

    futures = client.map(task, list(batches), pure=False, retries=3)  # type: ignore[attr-defined]
    done = 0
    for _ in as_completed(futures):
        done += 1
        if progress:
            progress(done, len(futures))
    return client.gather(futures)  # type: ignore[attr-defined]


@contextlib.contextmanager
def _client(execution: ExecutionSettings) -> Iterator[object]:
    """A Dask client for the execution settings; clusters started here are closed on exit."""
    from distributed import Client, LocalCluster

    if execution.cluster == "scheduler":
        with Client(execution.scheduler_address) as client:
            yield client
        return
    if execution.cluster == "slurm":
        import sys

        import dask.config
        from dask_jobqueue import SLURMCluster

        # One SLURM job per worker, each a single worker process holding threads_per_worker cores.
        # Partition, account and the like come from the site's dask-jobqueue configuration
        # (jobqueue.slurm.*); the directives below are appended to the configured ones.
        threads = execution.threads_per_worker
        directives = list(dask.config.get("jobqueue.slurm.job-extra-directives", None) or [])
        if execution.device == "cuda":
            directives.append("--gres=gpu:1")  # the job's one GPU is its worker's cuda:0
        slurm = SLURMCluster(
            cores=threads,
            processes=1,
            memory=f"{2 * threads}GiB",
            walltime="24:00:00",
            job_name="landscape-dask",
            python=sys.executable,  # the same environment (the project is importable there)
            local_directory="${TMPDIR:-/tmp}",  # node-local scratch, expanded in the job script
            job_extra_directives=directives,
            job_script_prologue=[f"export {name}={threads}" for name in THREAD_VARIABLES],
            scheduler_options={"dashboard_address": ":0"},  # no fixed port: shard jobs may share a host
        )
        log.info("dask-jobqueue: %d SLURM job(s), each:\n%s", execution.workers, slurm.job_script())
        slurm.scale(jobs=execution.workers)
        cluster: SLURMCluster | LocalCluster = slurm
    else:
        workers = execution.workers
        if execution.device in ("auto", "cuda") and torch.cuda.is_available():
            workers = torch.cuda.device_count()
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,  # one task at a time per worker; the task itself uses threads_per_worker
            processes=True,
            dashboard_address=":0",  # no fixed port: concurrent shard jobs must not collide on 8787
            env={name: str(execution.threads_per_worker) for name in THREAD_VARIABLES},
        )
    with cluster, Client(cluster) as client:
        yield client
