"""The ``landscape`` command line: one subcommand per workflow step, plus status, query and validate.

Each subcommand lives in ``pipeline.workflow.commands.<name>`` with a ``main(argv) -> int`` that tests call
directly; Snakemake rules call the same subcommands.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS = {
    "resolve": "validate a survey and write it resolved",
    "plan": "list the runs of a survey",
    "simulate": "train and classify the runs of one shard",
    "collect": "gather shard stores into the survey store",
    "report": "write the statistical report of a store",
    "status": "which shards are done, running, missing",
    "query": "print a table of rates by settings",
    "validate": "check a survey file or a store",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``landscape <subcommand> ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        width = max(map(len, SUBCOMMANDS))
        lines = "\n".join(f"  {name:<{width}}  {text}" for name, text in SUBCOMMANDS.items())
        print(f"usage: landscape <subcommand> [options]\n\nsubcommands:\n{lines}", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    module = importlib.import_module(f"pipeline.workflow.commands.{argv[0]}")
    return int(module.main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
