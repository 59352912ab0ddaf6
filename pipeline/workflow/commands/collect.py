"""``landscape collect SURVEY --out survey.zarr SHARD...``: gather shard stores into the survey store."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipeline.store import gather, validate
from pipeline.store.derived import add_derived_variables
from pipeline.survey.plan import make_plan
from pipeline.workflow.commands.common import UserError, load_resolved, provenance, setup_logging, user_errors


@user_errors
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="landscape collect", description=__doc__)
    parser.add_argument("survey", help="the resolved survey file")
    parser.add_argument("shards", nargs="+", help="shard stores")
    parser.add_argument("--out", required=True, help="survey store to write (zarr)")
    args = parser.parse_args(argv)
    setup_logging()
    survey = load_resolved(args.survey)
    attrs = {
        "survey": survey.name,
        "resolved_survey": survey.resolved_yaml(),
        "resolved_survey_json": json.dumps(survey.resolved_dict(), sort_keys=True),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **provenance(),
    }
    plan = make_plan(survey)
    with collect_lock(args.out):
        gather(args.shards, args.out, attrs, plan, derive=add_derived_variables)
    problems = validate(args.out, plan)
    for problem in problems:
        print(f"invalid store: {problem}")
    return 1 if problems else 0


class StoreLocked(UserError):
    """Another ``landscape collect`` is writing the same survey store."""


def lock_path(out: str | Path) -> Path:
    """The lock file of a survey store: a hidden sibling, ``.survey.zarr.lock``."""
    out = Path(out)
    return out.with_name(f".{out.name}.lock")


@contextlib.contextmanager
def collect_lock(out: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``out`` while it is written; refuse at once if another process holds it.

    ``fcntl.flock`` on a hidden sibling file: the kernel releases it when its holder exits, even on
    SIGKILL, so a killed collect never leaves a stale lock. The file records the holder's pid and is
    removed on release.
    """
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLocked(
                f"another collect is writing {out} (lock {path} held by pid {holder}); wait for it to finish"
            ) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:  # the previous holder removed it after we opened it
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)
