"""``landscape collect SURVEY --out survey.zarr SHARD...``: gather shard stores into the survey store."""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Sequence

from pipeline.commands.common import load_resolved, provenance, setup_logging, user_errors
from pipeline.plan import make_plan
from pipeline.store import gather, validate


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
    gather(args.shards, args.out, attrs)
    problems = validate(args.out, make_plan(survey))
    for problem in problems:
        print(f"invalid store: {problem}")
    return 1 if problems else 0
