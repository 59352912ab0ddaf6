"""``landscape validate PATH [--survey FILE] [--quick | --rehash]``: check a survey file (YAML) or a store (zarr).

For a store: the schema, the provenance, every chunk against the store's manifest (content hashes
written by ``collect`` and ``simulate``), the physical invariants and, with ``--survey``, the plan.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pipeline.store import rehash, validate
from pipeline.survey.plan import make_plan
from pipeline.workflow.commands.common import load_resolved, user_errors


@user_errors
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="landscape validate", description=__doc__)
    parser.add_argument("path", help="surveys/<name>.yaml or results/<name>/survey.zarr")
    parser.add_argument("--survey", help="survey the store was planned from (checks that no run is missing)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help="metadata only: attributes, schema, chunk sizes (reads no data chunk)"
    )
    mode.add_argument(
        "--rehash",
        action="store_true",
        help="read the whole store and, if nothing is wrong, write its manifest (for stores written before checksums)",
    )
    args = parser.parse_args(argv)
    path = Path(args.path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such survey file or store")
    if path.suffix in (".yaml", ".yml"):
        survey = load_resolved(path)
        print(f"{path}: valid survey {survey.name!r} with {survey.n_runs} runs in {survey.n_cells} grid cells")
        return 0
    plan = make_plan(load_resolved(args.survey)) if args.survey else None
    problems = rehash(path, plan) if args.rehash else validate(path, plan, quick=args.quick)
    for problem in problems:
        print(f"{path}: {problem}")
    if not problems:
        print(f"{path}: {_verdict(args.rehash, args.quick)}")
    return 1 if problems else 0


def _verdict(rehashed: bool, quick: bool) -> str:
    if rehashed:
        return "valid store; manifest written"
    return "valid metadata (--quick: chunk contents and invariants not checked)" if quick else "valid store"
