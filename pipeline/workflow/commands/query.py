"""``landscape query STORE --by width init_scale [--table rates] [--variable outcome] [--csv FILE]``: a table.

The tables are the functions of the ``analysis`` package that the report shows. Printed, numbers are
formatted as in the report (three significant digits, rates as percentages with 95% intervals);
with ``--csv`` the tidy table is written in full precision.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import xarray as xr

from analysis.compare import comparison_table
from analysis.endings import ending_table
from analysis.events import SUMMARY_EVENTS, event_table, summary_table
from analysis.formatting import readable
from analysis.plateaus import VISITED_PROPERTIES, plateau_table, visited_table
from analysis.query import (
    count_table,
    escape_consistency_table,
    open_survey,
    rate_table,
    saddle_mechanism_table,
    strictness_table,
)
from pipeline.workflow.commands.common import user_errors


@dataclass(frozen=True)
class Table:
    """A table of the command line: what it holds, how it is computed, which columns are rates."""

    help: str
    compute: Callable[[xr.Dataset, list[str], argparse.Namespace], pd.DataFrame]
    rates: tuple[str, ...] = ("rate",)


TABLES: dict[str, Table] = {
    "rates": Table("labels of --variable (a flag variable)", lambda ds, by, args: rate_table(ds, by, args.variable)),
    "events": Table("yes/no events (endings, visited saddles, escape neurons)", lambda ds, by, _: event_table(ds, by)),
    "summary": Table("headline rates side by side", lambda ds, by, _: summary_table(ds, by), SUMMARY_EVENTS),
    "endings": Table("where runs end: resolved and unresolved endings", lambda ds, by, _: ending_table(ds, by)),
    "plateaus": Table(
        "visited plateaus (left by the run) by order: type, strictness, mechanisms, escape neurons, loss, duration",
        lambda ds, by, _: plateau_table(ds, by),
        ("saddle", "strict", "escape_neuron", "grown_were_predicted"),
    ),
    "visited": Table(
        "one --property of the visited plateaus by order", lambda ds, by, args: visited_table(ds, by, args.property)
    ),
    "mechanisms": Table("saddle mechanisms among saddle end points", lambda ds, by, _: saddle_mechanism_table(ds, by)),
    "strictness": Table("strictness of saddle end points", lambda ds, by, _: strictness_table(ds, by)),
    "escape-counts": Table(
        "distribution of n_escape_neurons", lambda ds, by, _: count_table(ds, "n_escape_neurons", by)
    ),
    "plateau-counts": Table("distribution of n_plateaus", lambda ds, by, _: count_table(ds, "n_plateaus", by)),
    "consistency": Table("plateau escape-consistency statistic", lambda ds, by, _: escape_consistency_table(ds, by)),
    "comparisons": Table(
        "tests across each --by setting (default: grid axes)", lambda ds, by, _: comparison_table(ds, by or None), ()
    ),
}


@user_errors
def main(argv: Sequence[str] | None = None) -> int:
    tables = "; ".join(f"{name}: {table.help}" for name, table in TABLES.items())
    parser = argparse.ArgumentParser(prog="landscape query", description=__doc__, epilog=f"tables: {tables}")
    parser.add_argument("store", help="results/<name>/survey.zarr")
    parser.add_argument("--by", nargs="*", default=[], help="settings to group by, e.g. width init_scale")
    parser.add_argument("--table", choices=list(TABLES), default="rates", help="which table (default: rates)")
    parser.add_argument("--variable", default="outcome", help="flag variable of --table rates (default: outcome)")
    parser.add_argument(
        "--property", choices=list(VISITED_PROPERTIES), default="point_type", help="property of --table visited"
    )
    parser.add_argument("--csv", help="write the table (full precision) to this CSV file instead of printing it")
    args = parser.parse_args(argv)
    dataset = open_survey(args.store)
    for name in [*args.by, args.variable]:
        if name not in dataset.variables:
            raise ValueError(
                f"--by/--variable: {name!r} is not in the store; choose from {sorted(map(str, dataset.coords))}"
            )
    chosen = TABLES[args.table]
    table = chosen.compute(dataset, list(args.by), args)
    if args.csv:
        table.to_csv(args.csv, index=False)
        return 0
    with pd.option_context("display.max_rows", None, "display.width", 250, "display.max_columns", None):
        print(readable(table, chosen.rates).to_string(index=False))
    for key, value in table.attrs.items():
        print(f"# {key}: {value}")
    return 0
