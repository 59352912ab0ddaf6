"""The command line ``python -m pipeline.survey export-schema [--check] | validate FILE...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.survey.loading import SurveyError, load_survey
from pipeline.survey.reference import REFERENCE_PATH, SCHEMA_PATH, export_schema, reference_text, schema_text


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pipeline.survey export-schema [--check]`` or ``validate FILE...``; returns the exit code."""
    from pipeline import survey as package  # the package (imported by now): its docstring describes the command

    parser = argparse.ArgumentParser(prog="python -m pipeline.survey", description=package.__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export-schema", help="write the JSON schema and surveys/README.md")
    export.add_argument("--check", action="store_true", help="fail (exit 1) if the files are stale; write nothing")
    check = commands.add_parser("validate", help="validate survey files and print their size")
    check.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "export-schema":
        if args.check:
            stale = [
                str(p)
                for p, text in ((SCHEMA_PATH, schema_text()), (REFERENCE_PATH, reference_text()))
                if not p.exists() or p.read_text(encoding="utf-8") != text
            ]
            if stale:
                print(f"stale: {', '.join(stale)}; run python -m pipeline.survey export-schema", file=sys.stderr)
                return 1
            return 0
        export_schema()
        print(f"wrote {SCHEMA_PATH} and {REFERENCE_PATH}")
        return 0
    status = 0
    for path in args.files:
        try:
            survey = load_survey(path)
        except SurveyError as error:
            print(error, file=sys.stderr)
            status = 2
            continue
        axes = ", ".join(f"{k} ({len(v)})" for k, v in survey.grid_axes.items()) or "none"
        print(
            f"{path}: ok: {survey.n_runs:,} runs = {survey.n_cells:,} cells x {survey.seeds.data} data seeds "
            f"x {survey.seeds.init} init seeds; grid axes: {axes}"
        )
    return status
