"""``landscape resolve SURVEY --out FILE``: validate a survey and write it with every default filled in."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pipeline.workflow.commands.common import load_resolved, user_errors


@user_errors
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="landscape resolve", description=__doc__)
    parser.add_argument("survey", help="surveys/<name>.yaml")
    parser.add_argument("--out", required=True, help="where to write the resolved survey (YAML)")
    args = parser.parse_args(argv)
    survey = load_resolved(args.survey)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(survey.resolved_yaml(), encoding="utf-8")
    return 0
