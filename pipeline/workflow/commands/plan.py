"""``landscape plan SURVEY --out plan.csv``: one row per run (settings, seeds, seed keys, shard)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pipeline.survey.plan import make_plan, n_shards
from pipeline.workflow.commands.common import load_resolved, user_errors


@user_errors
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="landscape plan", description=__doc__)
    parser.add_argument("survey", help="a survey or resolved survey file")
    parser.add_argument("--out", required=True, help="CSV file to write")
    args = parser.parse_args(argv)
    plan = make_plan(load_resolved(args.survey))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plan.to_csv(out, index=False)
    print(f"{len(plan)} runs in {n_shards(plan)} shards")
    return 0
