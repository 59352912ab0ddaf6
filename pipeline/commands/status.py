"""``landscape status SURVEY``: which shards of a survey are done, being written, or missing."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pipeline.commands.common import load_resolved, user_errors
from pipeline.plan import make_plan, n_shards


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
    done, running, missing = [], [], []
    for shard in range(n_shards(make_plan(survey))):
        path = shard_path(results, shard)
        if path.exists():
            done.append(shard)
        elif any(path.parent.glob(f".{path.name}.tmp-*")):
            running.append(shard)
        else:
            missing.append(shard)
    total = len(done) + len(running) + len(missing)
    print(f"survey {survey.name}: {total} shards: {len(done)} done, {len(running)} running, {len(missing)} missing")
    for label, shards in (("running", running), ("missing", missing)):
        if shards:
            print(f"  {label}: {', '.join(map(str, shards))}")
    store = results / "survey.zarr"
    print(f"  store: {store} ({'present' if store.exists() else 'not collected yet'})")
    return 0
