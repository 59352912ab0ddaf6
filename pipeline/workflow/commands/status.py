"""``landscape status SURVEY``: which shards of a survey are done, being written, or missing.

A shard is *running* while a hidden ``.shard-K.zarr.tmp-PID`` sibling exists whose process is alive
on this machine; a temporary store left by a killed job (its process is gone) counts as missing and
is listed as interrupted. (On a cluster the writing process may live on another node; it then shows
as interrupted too; `snakemake` decides what to recompute.)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from pipeline.survey.plan import make_plan, n_shards
from pipeline.workflow.commands.common import load_resolved, user_errors

TMP_MARK = ".tmp-"


def shard_path(results: Path, shard: int) -> Path:
    """Path of a shard store (the Snakefile's path grammar)."""
    return results / "shards" / f"shard-{shard:04d}.zarr"


@user_errors
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="landscape status", description=__doc__)
    parser.add_argument("survey", help="surveys/<name>.yaml")
    parser.add_argument("--results", default="results", help="results folder (default: results)")
    args = parser.parse_args(argv)
    survey = load_resolved(args.survey)
    results = Path(args.results) / survey.name
    done, running, missing, interrupted = [], [], [], []
    for shard in range(n_shards(make_plan(survey))):
        path = shard_path(results, shard)
        writers = [_pid(tmp) for tmp in path.parent.glob(f".{path.name}{TMP_MARK}*")]
        if path.exists():
            done.append(shard)
        elif any(_alive(pid) for pid in writers):
            running.append(shard)
        else:
            missing.append(shard)
            if writers:
                interrupted.append(shard)
    total = len(done) + len(running) + len(missing)
    print(f"survey {survey.name}: {total} shards: {len(done)} done, {len(running)} running, {len(missing)} missing")
    for label, shards in (
        ("running", running),
        ("missing", missing),
        ("interrupted (stale temporary store)", interrupted),
    ):
        if shards:
            print(f"  {label}: {', '.join(map(str, shards))}")
    store = results / "survey.zarr"
    print(f"  store: {store} ({'present' if store.exists() else 'not collected yet'})")
    return 0


def _pid(temporary: Path) -> int | None:
    text = temporary.name.rsplit(TMP_MARK, 1)[-1]
    return int(text) if text.isdigit() else None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
