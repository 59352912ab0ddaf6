"""Figures of the stationary points runs visit on the way, by plateau order (1st, 2nd, ...) and setting.

* :func:`visited_types_figure` -- stacked bars of the type of each visited plateau point, one bar
  per plateau order, one panel per setting value (:func:`analysis.plateaus.visited_table`);
* :func:`escape_by_order_figure` -- mean number of escape neurons at the visited plateau point and
  of neurons that grew tenfold afterwards, by order, one line per setting value
  (:func:`analysis.plateaus.plateau_table`);
* :func:`loss_duration_figure` -- median loss and median duration (steps) of the visited plateaus, by
  order, one line per setting value (:func:`analysis.plateaus.plateau_table`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.figures import new_figure
from analysis.formatting import format_count, format_value
from pipeline.stationary import labels

__all__ = ["escape_by_order_figure", "loss_duration_figure", "visited_types_figure"]

TYPE_COLORS = {name: f"C{i}" for i, name in enumerate(labels.POINT_TYPE)}


def visited_types_figure(table: pd.DataFrame, setting: str | None) -> Figure:
    """Stacked bars: the share of each point type among visited plateaus, per order (and setting value).

    Parameters
    ----------
    table
        :func:`analysis.plateaus.visited_table` with ``prop="point_type"``, grouped by ``[setting]``
        (or by nothing when ``setting`` is None) and by order.
    setting
        One panel per value of this setting.
    """
    values = sorted(table[setting].unique()) if setting else [None]
    figure = new_figure(max(4.0, 2.6 * len(values)), 3.6)
    panels = figure.subplots(1, len(values), squeeze=False, sharey=True)[0]
    present = [name for name in labels.POINT_TYPE if table[table["label"] == name]["count"].sum() > 0]
    for panel, value in zip(panels, values, strict=True):
        part = table if setting is None else table[table[setting] == value]
        orders = sorted(part["plateau"].unique())
        bottom = np.zeros(len(orders))
        for name in present:
            rates = part[part["label"] == name].set_index("plateau").reindex(orders)["rate"].fillna(0).to_numpy()
            panel.bar(range(len(orders)), rates, bottom=bottom, color=TYPE_COLORS[name], label=name, width=0.7)
            bottom += rates
        totals = part.drop_duplicates("plateau").set_index("plateau").reindex(orders)["total"]
        panel.set_xticks(range(len(orders)), [f"{order}\n(n={format_count(n)})" for order, n in totals.items()])
        panel.set_xlabel("plateau order")
        panel.set_title(f"{setting} = {format_value(value)}" if setting else "all runs", fontsize="small")
    panels[0].set_ylabel("share of visited plateaus")
    panels[0].set_ylim(0, 1.05)
    panels[-1].legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    return figure


def escape_by_order_figure(table: pd.DataFrame, setting: str | None) -> Figure:
    """Mean escape neurons at, and neurons grown after, the visited plateaus, by order (95% intervals).

    Parameters
    ----------
    table
        :func:`analysis.plateaus.plateau_table` grouped by ``[setting]`` (or nothing); the pooled
        rows (``plateau == "all"``) and orders without visited plateaus are left out.
    setting
        One colour per value of this setting.
    """
    rows = table[(table["plateau"] != "all") & (table["plateaus"] > 0)]
    figure = new_figure(6.4, 3.8)
    axes = figure.add_subplot()
    groups = rows.groupby(setting, sort=True) if setting else [(None, rows)]
    for k, (value, part) in enumerate(groups):
        order = part["plateau"].astype(int).to_numpy()
        label = f"{setting} = {format_value(value)}" if setting else "all runs"
        for column, style, what in (("escape_neurons", "-", "escape neurons"), ("grew", "--", "grew afterwards")):
            mean = part[column].to_numpy(float)
            error = np.vstack([mean - part[f"{column}_ci_low"], part[f"{column}_ci_high"] - mean])
            axes.errorbar(order + 0.05 * k, mean, yerr=np.nan_to_num(np.clip(error, 0, None)), fmt=style, marker="o",
                          color=f"C{k}", capsize=3, label=f"{label}: {what}")  # fmt: skip
    axes.set_xticks(sorted(rows["plateau"].astype(int).unique()))
    axes.set_xlabel("plateau order")
    axes.set_ylabel("neurons per visited plateau (mean, 95% CI)")
    axes.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    return figure


def loss_duration_figure(table: pd.DataFrame, setting: str | None) -> Figure:
    """Median loss (left) and median duration in steps (right) of the visited plateaus, by order (log scales).

    Parameters
    ----------
    table
        :func:`analysis.plateaus.plateau_table` grouped by ``[setting]`` (or nothing); pooled rows and
        orders without visited plateaus are left out.
    setting
        One line per value of this setting.
    """
    rows = table[(table["plateau"] != "all") & (table["plateaus"] > 0)]
    figure = new_figure(9.0, 3.6)
    loss, duration = figure.subplots(1, 2)
    groups = rows.groupby(setting, sort=True) if setting else [(None, rows)]
    for k, (value, part) in enumerate(groups):
        order = part["plateau"].astype(int).to_numpy()
        label = f"{setting} = {format_value(value)}" if setting else "all runs"
        loss.plot(order, part["loss_median"].to_numpy(float), marker="o", color=f"C{k}", label=label)
        duration.plot(order, part["duration_median"].to_numpy(float), marker="o", color=f"C{k}", label=label)
    for axes, ylabel in ((loss, "median loss at the plateau point"), (duration, "median duration (steps)")):
        axes.set_yscale("log")
        axes.set_xticks(sorted(rows["plateau"].astype(int).unique()))
        axes.set_xlabel("plateau order")
        axes.set_ylabel(ylabel)
    duration.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    return figure
