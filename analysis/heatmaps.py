"""Key rates over the grid: heatmaps for two axes, small multiples of heatmaps for more.

:func:`heatmap_figure` draws a tidy event table grouped by every grid axis
(:func:`analysis.events.event_table`): one panel per event, rows and columns the first two axes,
each cell coloured by its rate and labelled with the rate and its 95% Wilson interval. With more
than two axes there is one row of panels per combination of the other axes (small multiples).
"""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.figures import new_figure
from analysis.formatting import format_count, format_value

__all__ = ["heatmap_figure", "varying_events"]


def varying_events(table: pd.DataFrame, events: Sequence[str]) -> list[str]:
    """The events of a tidy event table that occur in some runs and not in others (worth a picture)."""
    pooled = table.groupby("label")[["count", "total"]].sum()
    return [
        event
        for event in events
        if event in pooled.index and 0 < pooled.loc[event, "count"] < pooled.loc[event, "total"]
    ]


def _cell(row: pd.Series) -> str:
    return f"{100 * row['rate']:.1f}%\n[{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]"


def heatmap_figure(
    table: pd.DataFrame, axes: Sequence[str], events: Sequence[str], titles: Mapping[str, str]
) -> Figure:
    """Rates of ``events`` over the grid of ``axes`` (at least two), one heatmap per event and slice.

    Parameters
    ----------
    table
        Tidy event rates grouped by ``axes`` (columns ``*axes, label, count, total, rate, ci_low, ci_high``).
    axes
        Grid axes: the first gives the rows, the second the columns, the others one row of panels
        per combination of their values.
    events
        Labels to draw, one panel column each.
    titles
        Panel title of each event.
    """
    row_axis, column_axis, *others = axes
    slices = list(itertools.product(*(sorted(table[name].unique()) for name in others))) or [()]
    row_values = sorted(table[row_axis].unique())
    column_values = sorted(table[column_axis].unique())
    figure = new_figure(1.2 + 0.9 * len(column_values) * len(events), 0.8 + 0.75 * len(row_values) * len(slices))
    grid = figure.subplots(len(slices), len(events), squeeze=False)
    for (i, key), (j, event) in itertools.product(enumerate(slices), enumerate(events)):
        axes_ = grid[i, j]
        part = table[table["label"] == event]
        for name, value in zip(others, key, strict=True):
            part = part[part[name] == value]
        indexed = part.set_index([row_axis, column_axis])
        rates = np.full((len(row_values), len(column_values)), np.nan)
        for (r, row_value), (c, column_value) in itertools.product(enumerate(row_values), enumerate(column_values)):
            if (row_value, column_value) in indexed.index:
                row = indexed.loc[(row_value, column_value)]
                rates[r, c] = row["rate"]
                axes_.text(c, r, _cell(row), ha="center", va="center", fontsize="x-small",
                           color="white" if row["rate"] < 0.5 else "black")  # fmt: skip
        axes_.imshow(rates, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        axes_.set_xticks(range(len(column_values)), [format_value(value) for value in column_values])
        axes_.set_yticks(range(len(row_values)), [format_value(value) for value in row_values])
        axes_.set_xlabel(column_axis)
        axes_.set_ylabel(row_axis)
        where = ", ".join(f"{name} = {format_value(value)}" for name, value in zip(others, key, strict=True))
        runs = format_count(int(part["total"].sum()))
        title = textwrap.fill(titles[event], 28)
        axes_.set_title(f"{title}\n({where + ', ' if where else ''}n = {runs})", fontsize="small")
    return figure
