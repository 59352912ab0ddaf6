"""``landscape validate PATH [--survey FILE]``: check a survey file (YAML) or a survey store (zarr)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pipeline.commands.common import load_resolved, user_errors
from pipeline.plan import make_plan
from pipeline.store import validate


@user_errors
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="landscape validate", description=__doc__)
    parser.add_argument("path", help="surveys/<name>.yaml or results/<name>/survey.zarr")
    parser.add_argument("--survey", help="survey the store was planned from (checks that no run is missing)")
    args = parser.parse_args(argv)
    path = Path(args.path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such survey file or store")
    if path.suffix in (".yaml", ".yml"):
        survey = load_resolved(path)
        print(f"{path}: valid survey {survey.name!r} with {survey.n_runs} runs in {survey.n_cells} grid cells")
        return 0
    plan = make_plan(load_resolved(args.survey)) if args.survey else None
    problems = validate(path, plan)
    for problem in problems:
        print(f"{path}: {problem}")
    if not problems:
        print(f"{path}: valid store")
    return 1 if problems else 0
