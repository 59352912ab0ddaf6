"""``landscape query STORE --by width init_scale [--variable outcome] [--csv FILE]``: a table of rates."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pandas as pd

from analysis.query import open_survey, rate_table
from pipeline.commands.common import user_errors


@user_errors
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="landscape query", description=__doc__)
    parser.add_argument("store", help="results/<name>/survey.zarr")
    parser.add_argument("--by", nargs="*", default=[], help="settings to group by, e.g. width init_scale")
    parser.add_argument("--variable", default="outcome", help="flag variable to count (default: outcome)")
    parser.add_argument("--csv", help="write the table to this CSV file instead of printing it")
    args = parser.parse_args(argv)
    dataset = open_survey(args.store)
    for name in [*args.by, args.variable]:
        if name not in dataset.variables:
            raise ValueError(f"--by/--variable: {name!r} is not in the store; choose from {sorted(dataset.coords)}")
    table = rate_table(dataset, args.by, args.variable)
    if args.csv:
        table.to_csv(args.csv, index=False)
    else:
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    return 0
