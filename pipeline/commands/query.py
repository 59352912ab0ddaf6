"""``landscape query STORE --by width init_scale [--table rates] [--variable outcome] [--csv FILE]``: a table."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import pandas as pd
import xarray as xr

from analysis.compare import comparison_table
from analysis.query import (
    count_table,
    escape_consistency_table,
    event_table,
    open_survey,
    rate_table,
    saddle_mechanism_table,
    strictness_table,
    summary_table,
)
from pipeline.commands.common import user_errors

TABLES: dict[str, tuple[str, Callable[[xr.Dataset, list[str], str], pd.DataFrame]]] = {
    "rates": ("labels of --variable (a flag variable)", lambda ds, by, var: rate_table(ds, by, var)),
    "events": (
        "yes/no events (local minimum, escape neuron, plateau, outcomes)",
        lambda ds, by, _: event_table(ds, by),
    ),
    "summary": ("headline rates side by side", lambda ds, by, _: summary_table(ds, by)),
    "mechanisms": ("saddle mechanisms among saddles", lambda ds, by, _: saddle_mechanism_table(ds, by)),
    "strictness": ("strictness of saddles", lambda ds, by, _: strictness_table(ds, by)),
    "escape-counts": ("distribution of n_escape_neurons", lambda ds, by, _: count_table(ds, "n_escape_neurons", by)),
    "plateaus": ("distribution of n_plateaus", lambda ds, by, _: count_table(ds, "n_plateaus", by)),
    "consistency": ("plateau escape-consistency statistic", lambda ds, by, _: escape_consistency_table(ds, by)),
    "comparisons": (
        "tests across each --by setting (default: grid axes)",
        lambda ds, by, _: comparison_table(ds, by or None),
    ),
}


@user_errors
def main(argv: Sequence[str] | None = None) -> int:
    tables = "; ".join(f"{name}: {text}" for name, (text, _) in TABLES.items())
    parser = argparse.ArgumentParser(prog="landscape query", description=__doc__, epilog=f"tables: {tables}")
    parser.add_argument("store", help="results/<name>/survey.zarr")
    parser.add_argument("--by", nargs="*", default=[], help="settings to group by, e.g. width init_scale")
    parser.add_argument("--table", choices=list(TABLES), default="rates", help="which table (default: rates)")
    parser.add_argument("--variable", default="outcome", help="flag variable of --table rates (default: outcome)")
    parser.add_argument("--csv", help="write the table to this CSV file instead of printing it")
    args = parser.parse_args(argv)
    dataset = open_survey(args.store)
    for name in [*args.by, args.variable]:
        if name not in dataset.variables:
            raise ValueError(
                f"--by/--variable: {name!r} is not in the store; choose from {sorted(map(str, dataset.coords))}"
            )
    table = TABLES[args.table][1](dataset, list(args.by), args.variable)
    if args.csv:
        table.to_csv(args.csv, index=False)
    else:
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(table.to_string(index=False, float_format=lambda value: f"{value:.4g}"))
        for key, value in table.attrs.items():
            print(f"# {key}: {value}")
    return 0
