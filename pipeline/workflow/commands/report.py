"""``landscape report STORE --out DIR``: write the statistical report of a survey store."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from analysis.report import build_report
from pipeline.workflow.commands.common import setup_logging, user_errors


@user_errors
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="landscape report", description=__doc__)
    parser.add_argument("store", help="results/<name>/survey.zarr")
    parser.add_argument("--out", required=True, help="report folder (index.html, index.md, figures, CSV tables)")
    args = parser.parse_args(argv)
    setup_logging()
    path = build_report(args.store, args.out)
    print(f"report: {path}")
    return 0
