"""``landscape simulate SURVEY --shard K --out shard.zarr``: train and classify the runs of one shard."""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
from collections.abc import Sequence

from pipeline.batch import Padding, resolve_device
from pipeline.data.sources import given_provenance
from pipeline.stationary.embedding import embedding_layout
from pipeline.store import CODE_ATTRS, write_atomic
from pipeline.survey import Survey
from pipeline.survey.plan import batches, make_plan, run_settings, shard_runs
from pipeline.workflow.commands.common import Progress, load_resolved, provenance, setup_logging, user_errors
from pipeline.workflow.runner import ExecutionSettings, fit_to_threads, run_batches

log = logging.getLogger(__name__)


def padding(survey: Survey) -> Padding:
    """Survey-wide sizes of the store's padded dimensions."""
    cells = survey.cells()
    width = max(cell["width"] for cell in cells)
    return Padding(
        neuron=width,
        input=max(cell["input_dim"] + int(cell["bias"]) for cell in cells),
        output=max(cell["output_dim"] for cell in cells),
        checkpoint=max(cell["n_checkpoints"] for cell in cells) + 1,
        plateau=8,
        embedding=embedding_layout(width, survey.classify.embedding_betas)[0].size if survey.classify.embeddings else 0,
    )


def embedding_betas(survey: Survey) -> tuple[float, ...] | None:
    """The E3 split ratios when the survey embeds its end points (``classify.embeddings``), else None."""
    return tuple(survey.classify.embedding_betas) if survey.classify.embeddings else None


def execution_settings(survey: Survey, threads: int, in_process: bool) -> ExecutionSettings:
    """Execution settings from the survey, sized to the ``threads`` the job was given.

    For the in-process path and a local cluster, ``workers x threads_per_worker <= threads``
    (see :func:`pipeline.workflow.runner.fit_to_threads`).
    """
    execution = survey.execution
    per_worker = execution.threads_per_worker
    workers = execution.workers or max(threads // per_worker, 1)
    settings = ExecutionSettings(
        cluster="none" if in_process else execution.cluster,
        workers=1 if in_process else workers,
        threads_per_worker=per_worker,
        device=execution.device,
        scheduler_address=execution.scheduler_address,
    )
    return fit_to_threads(settings, threads)


def quiet_distributed() -> None:
    """Keep distributed's INFO chatter (scheduler, nanny, worker start/stop) out of the step's log.

    Loggers of this process are set to WARNING; spawned worker processes read the environment.
    """
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.worker", "distributed.core"):
        logging.getLogger(name).setLevel(logging.WARNING)


@user_errors
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="landscape simulate", description=__doc__)
    parser.add_argument("survey", help="a survey or resolved survey file")
    parser.add_argument("--shard", type=int, required=True, help="shard number")
    parser.add_argument("--out", required=True, help="shard store to write (zarr)")
    parser.add_argument("--threads", type=int, default=1, help="cores this step may use")
    parser.add_argument("--in-process", action="store_true", help="run batches in this process (no Dask)")
    args = parser.parse_args(argv)
    setup_logging()
    quiet_distributed()
    survey = load_resolved(args.survey)
    rows = shard_runs(make_plan(survey), args.shard)
    execution = execution_settings(survey, args.threads, args.in_process)
    sources = given_provenance(run_settings(row) for _, row in rows.drop_duplicates("cell").iterrows())
    work = batches(rows, survey.execution.batch_size)
    log.info("shard %d: %d runs in %d batches, %s", args.shard, len(rows), len(work), execution)
    dataset = run_batches(
        work,
        master_seed=survey.master_seed,
        padding=padding(survey),
        classify_plateaus=survey.classify.classify_plateaus,
        kink_tolerance_factor=survey.classify.kink_tolerance_factor,
        end_game=survey.end_game.options(),
        embedding_betas=embedding_betas(survey),
        execution=execution,
        progress=Progress(f"shard {args.shard}"),
    )
    if sources:
        dataset.attrs["data_sources"] = json.dumps(sources, sort_keys=True)
    dataset.attrs.update(
        shard=args.shard,
        computed=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        device=str(resolve_device(survey.execution.device)),
        cluster=execution.cluster,
        workers=execution.workers,
        threads_per_worker=execution.threads_per_worker,
        threads=args.threads,
        **{name: value for name, value in provenance().items() if name in CODE_ATTRS},
    )
    write_atomic(dataset, args.out)
    log.info("wrote %s", args.out)
    return 0
