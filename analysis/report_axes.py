"""The report's sections per grid axis: endings, end points, visited stationary points, effective width.

Every figure here is drawn only when it informs: at least two categories that occur (endings, point
types, mechanisms, escape-neuron counts), or at least one visited plateau; otherwise the section
says in one sentence what the figure would have shown. Every caption states its n.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from analysis import figures, readings
from analysis.endings import ending_table
from analysis.formatting import format_count, format_number, format_rate, format_value, readable
from analysis.plateau_figures import escape_by_order_figure, loss_duration_figure, visited_types_figure
from analysis.plateaus import plateau_table, visited_table
from analysis.query import (
    count_summary,
    count_table,
    effective_width_table,
    point_type_table,
    saddle_mechanism_table,
    strictness_table,
)
from analysis.render import Report, Section

__all__ = ["axis_sections", "figure_section"]

PLATEAU_RATES = ("saddle", "strict", "escape_neuron", "grown_were_predicted")
PLATEAU_HEADERS = {
    "plateaus": "visited plateaus",
    "last": "last plateaus (not counted)",
    "saddle": "saddle",
    "strict": "strict (of saddles)",
    "escape_neuron": "≥1 escape neuron",
    "grown_were_predicted": "grown neurons predicted",
    "escape_neurons": "escape neurons per plateau",
    "grew": "neurons grown per plateau",
    "loss_median": "median loss",
    "duration_median": "median duration (steps)",
}


@dataclass(frozen=True)
class Axis:
    """The grid axis of a group of sections (None: all runs), and the names derived from it."""

    name: str | None

    @property
    def by(self) -> list[str]:
        """Settings to group the tables by."""
        return [self.name] if self.name else []

    @property
    def setting(self) -> str:
        """Column the figures and readings group by (``survey`` without an axis)."""
        return self.name or "survey"

    @property
    def where(self) -> str:
        """`` by width`` in titles."""
        return f" by {self.name}" if self.name else ""

    @property
    def suffix(self) -> str:
        """``_by_width`` in file names."""
        return f"_by_{self.name}" if self.name else ""

    def grouped(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` (grouped by the axis), with a constant ``survey`` column when there is no axis."""
        return table if self.name else table.assign(survey="all runs")


def _present(table: pd.DataFrame) -> list[str]:
    """Labels of a tidy table that occur (count > 0), in table order."""
    counts = table.groupby("label", sort=False)["count"].sum()
    return [str(label) for label, count in counts.items() if count > 0]


def figure_section(report: Report, title: str, name: str, draw: Figure, reading: str, caption: str) -> Section:
    """A level-3 section with a figure; alt text is the title and the caption's first sentence."""
    path = report.figure(name, draw)
    alt = f"{title}: {caption.split('; ')[0]}".replace("`", "")
    return Section(title, reading, path, alt=alt, caption=caption, level=3)


def _all_one(table: pd.DataFrame, groups: str | list[str], what: str, label: str) -> str:
    """The sentence replacing a figure whose every bar (one per group) holds one category, ``label``."""
    total = int(table.drop_duplicates(groups)["total"].sum())
    return f"All {format_count(total)} {what} are {label}, so there is nothing to compare in a figure."


def axis_sections(report: Report, dataset: xr.Dataset, axis: str | None, comparisons: pd.DataFrame) -> list[Section]:
    """Endings, end points and visited stationary points against one grid axis (or all runs)."""
    grid_axis = Axis(axis)
    sections = [Section(f"Results{grid_axis.where}")]
    sections.append(_endings(report, dataset, grid_axis, comparisons))
    sections.extend(_end_points(report, dataset, grid_axis))
    sections.extend(_visited(report, dataset, grid_axis))
    sections.extend(_effective_width(report, dataset, grid_axis))
    return sections


def _endings(report: Report, dataset: xr.Dataset, axis: Axis, comparisons: pd.DataFrame) -> Section:
    """Where runs end against the axis: a rate figure of the endings that occur, or a sentence."""
    mine = comparisons[comparisons["setting"] == axis.name] if axis.name else comparisons.iloc[0:0]
    table = axis.grouped(ending_table(dataset, axis.by))
    report.table(f"endings{axis.suffix}", table, f"where runs end{axis.where}: every ending, resolved and unresolved")
    endings = _present(table[~table["label"].isin(["resolved", "unresolved"])])
    title = f"Where runs end{axis.where}"
    if len(endings) < 2:
        return Section(title, _all_one(table, axis.setting, "runs", endings[0]), level=3)
    reading = readings.rates_reading(table, axis.setting, [*endings, "unresolved"], mine)
    runs = format_count(dataset.sizes["run"])
    caption = f"Share of runs with each ending{axis.where}, 95% Wilson intervals; n = {runs} runs"
    draw = figures.rates_figure(table, axis.setting, f"endings{axis.where}", endings)
    return figure_section(report, title, f"endings{axis.suffix}", draw, reading, caption)


def _end_points(report: Report, dataset: xr.Dataset, axis: Axis) -> list[Section]:
    """End-point types, saddle end points and escape neurons at end points against the axis."""
    sections = []
    runs = format_count(dataset.sizes["run"])
    types = axis.grouped(point_type_table(dataset, axis.by))
    report.table(f"end_point_types{axis.suffix}", types, f"stationary-point type of the end point{axis.where}")
    title = f"End-point types{axis.where}"
    present = _present(types)
    if len(present) < 2:
        sections.append(Section(title, _all_one(types, axis.setting, "end points", present[0]), level=3))
    else:
        draw = figures.stacked_figure(types, axis.setting, f"end-point types{axis.where}")
        reading = readings.stacked_reading(types, axis.setting, "end points", "No runs.")
        sections.append(
            figure_section(
                report,
                title,
                f"end_point_types{axis.suffix}",
                draw,
                reading,
                f"Type of the end point{axis.where}; n = {runs} runs",
            )
        )
    sections.append(_end_saddles(report, dataset, axis))
    counts = axis.grouped(count_table(dataset, "n_escape_neurons", axis.by))
    report.table(f"escape_neuron_counts{axis.suffix}", counts, f"number of escape neurons at the end point{axis.where}")
    summary = axis.grouped(count_summary(dataset, "n_escape_neurons", axis.by))
    report.table(
        f"escape_neuron_summary{axis.suffix}", summary, f"mean number of escape neurons at the end point{axis.where}"
    )
    title = f"Escape neurons at end points{axis.where}"
    if len(_present(counts)) < 2:
        total = count_summary(dataset, "n_escape_neurons").iloc[0]
        reading = (
            f"Every end point has {_present(counts)[0]} escape neurons: {format_count(total['at_least_one'])} of"
            f" {runs} runs have at least one ({format_rate(total['rate'], total['ci_low'], total['ci_high'])})."
        )
        sections.append(Section(title, reading, level=3))
    else:
        reading = readings.count_reading(summary, axis.setting, "escape neurons", readings.PHRASES["escape_neuron"])
        draw = figures.count_figure(
            counts, axis.setting, f"escape neurons at the end point{axis.where}", "escape neurons"
        )
        sections.append(
            figure_section(
                report,
                title,
                f"escape_neuron_counts{axis.suffix}",
                draw,
                reading,
                f"Number of escape neurons at the end point{axis.where}; n = {runs} runs",
            )
        )
    return sections


def _end_saddles(report: Report, dataset: xr.Dataset, axis: Axis) -> Section:
    """Mechanisms and strictness of saddle end points against the axis."""
    mechanisms = axis.grouped(saddle_mechanism_table(dataset, axis.by, combinations=True))
    report.table(
        f"saddle_mechanisms{axis.suffix}", mechanisms, f"mechanisms of saddle end points, exclusive{axis.where}"
    )
    strictness = axis.grouped(strictness_table(dataset, axis.by))
    report.table(f"saddle_strictness{axis.suffix}", strictness, f"strictness of saddle end points{axis.where}")
    title = f"Saddle end points{axis.where}"
    present = _present(mechanisms)
    saddles = int(mechanisms.drop_duplicates(axis.setting)["total"].sum()) if len(mechanisms) else 0
    strict = " Strictness: " + readings.stacked_reading(strictness, axis.setting, "saddles", "") if saddles else ""
    if not saddles:
        return Section(title, "No run ended at a saddle, so there are no saddle mechanisms to show.", level=3)
    if len(present) < 2:
        return Section(title, _all_one(mechanisms, axis.setting, "saddle end points", present[0]) + strict, level=3)
    reading = readings.stacked_reading(mechanisms, axis.setting, "saddle end points", "") + strict
    draw = figures.stacked_figure(
        mechanisms, axis.setting, f"saddle mechanisms{axis.where}", "fraction of saddle end points"
    )
    caption = f"Mechanisms of the saddle end points{axis.where}; n = {format_count(saddles)} saddle end points"
    return figure_section(report, title, f"saddle_mechanisms{axis.suffix}", draw, reading, caption)


def _visited(report: Report, dataset: xr.Dataset, axis: Axis) -> list[Section]:
    """Visited stationary points by plateau order: types, mechanisms, escape neurons, loss, duration."""
    summary = plateau_table(dataset, axis.by)
    shown = readable(summary, PLATEAU_RATES, PLATEAU_HEADERS)
    report.table(f"plateaus{axis.suffix}", summary, f"visited plateaus by order{axis.where}", shown, PLATEAU_RATES)
    pooled = summary[summary["plateau"] == "all"]
    visited = int(pooled["plateaus"].sum())
    title = f"Stationary points visited on the way{axis.where}"
    if not visited:
        reading = "No run left a plateau, so no stationary point was visited on the way."
        return [Section(title, reading, tables=[shown], table_ids=[f"plateaus{axis.suffix}"], level=3)]
    types = visited_table(dataset, axis.by, "point_type")
    report.table(f"visited_types{axis.suffix}", types, f"types of the visited plateau points by order{axis.where}")
    reading = (
        "One row per plateau order (1st, 2nd, ...) and, last, all orders pooled; a plateau counts when the run left"
        " it. Rates are percentages with 95% Wilson intervals, means with 95% normal intervals."
    )
    n = f"n = {format_count(visited)} visited plateaus in {format_count(int(pooled['runs'].sum()))} runs"
    sections = []
    present = _present(types)
    if not present:
        reading = (
            f"{n.capitalize()}; their points were not classified (the survey sets"
            " `classify.classify_plateaus: false`). " + reading
        )
        sections.append(Section(title, reading, tables=[shown], table_ids=[f"plateaus{axis.suffix}"], level=3))
    elif len(present) < 2:
        reading = _all_one(types, [*axis.by, "plateau"], "visited plateau points", present[0]) + " " + reading
        sections.append(Section(title, reading, tables=[shown], table_ids=[f"plateaus{axis.suffix}"], level=3))
    else:
        draw = visited_types_figure(types, axis.name)
        section = figure_section(
            report,
            title,
            f"visited_types{axis.suffix}",
            draw,
            reading,
            f"Type of the visited plateau points by plateau order{axis.where}; {n}",
        )
        section.tables, section.table_ids = [shown], [f"plateaus{axis.suffix}"]
        sections.append(section)
    sections.append(_visited_saddles(report, dataset, axis))
    caption = f"Median loss and duration of the visited plateaus by plateau order{axis.where}; {n}"
    reading = _loss_reading(pooled, axis)
    draw = loss_duration_figure(summary, axis.name)
    sections.append(figure_section(report, f"Loss and duration of the visited plateaus{axis.where}",
                                    f"plateau_loss{axis.suffix}", draw, reading, caption))  # fmt: skip
    draw = escape_by_order_figure(summary, axis.name)
    reading = _escape_reading(summary[summary["plateau"] == "all"], axis)
    sections.append(
        figure_section(
            report,
            f"Escape neurons on the way{axis.where}",
            f"escape_by_order{axis.suffix}",
            draw,
            reading,
            f"Escape neurons at, and neurons grown after, visited plateaus; {n}",
        )
    )
    return sections


def _loss_reading(pooled: pd.DataFrame, axis: Axis) -> str:
    """Median loss and duration of the visited plateaus per setting value."""
    sentences = []
    for _, row in pooled[pooled["plateaus"] > 0].iterrows():
        where = f"At {axis.name} {format_value(row[axis.name])}" if axis.name else "Over all runs"
        sentences.append(
            f"{where}, the median visited plateau sits at loss {format_number(row['loss_median'])} and lasts"
            f" {format_number(row['duration_median'])} steps ({format_count(row['plateaus'])} plateaus)."
        )
    return " ".join(sentences)


def _escape_reading(pooled: pd.DataFrame, axis: Axis) -> str:
    """Escape neurons per visited plateau, neurons grown afterwards and the share predicted, per setting value."""
    sentences = []
    for _, row in pooled[pooled["plateaus"] > 0].iterrows():
        where = f"At {axis.name} {format_value(row[axis.name])}" if axis.name else "Over all runs"
        predicted = format_rate(row["grown_were_predicted"], row["grown_were_predicted_ci_low"],
                                row["grown_were_predicted_ci_high"])  # fmt: skip
        sentences.append(
            f"{where}, a visited plateau has {format_number(row['escape_neurons'])} escape neurons on average and"
            f" {format_number(row['grew'])} neurons grow tenfold before the next plateau; {predicted} of those had"
            " been predicted escape neurons."
        )
    return " ".join(sentences)


def _visited_saddles(report: Report, dataset: xr.Dataset, axis: Axis) -> Section:
    """Mechanisms and strictness of the saddles visited on the way, pooled over plateau orders."""
    mechanisms = axis.grouped(visited_table(dataset, axis.by, "mechanisms", by_order=False))
    report.table(f"visited_mechanisms{axis.suffix}", mechanisms, f"mechanisms of the visited saddles{axis.where}")
    strictness = axis.grouped(visited_table(dataset, axis.by, "strictness", by_order=False))
    report.table(f"visited_strictness{axis.suffix}", strictness, f"strictness of the visited saddles{axis.where}")
    title = f"Saddles visited on the way{axis.where}"
    if mechanisms.empty:
        return Section(title, "No visited plateau point is a saddle.", level=3)
    strict = " Strictness: " + readings.stacked_reading(strictness, axis.setting, "visited saddles", "")
    present = _present(mechanisms)
    if len(present) < 2:
        return Section(title, _all_one(mechanisms, axis.setting, "visited saddles", present[0]) + strict, level=3)
    reading = readings.stacked_reading(mechanisms, axis.setting, "visited saddles", "") + strict
    saddles = format_count(int(mechanisms.drop_duplicates(axis.setting)["total"].sum()))
    draw = figures.stacked_figure(
        mechanisms, axis.setting, f"mechanisms of visited saddles{axis.where}", "fraction of visited saddles"
    )
    caption = f"Mechanisms of the saddles visited on the way{axis.where}; n = {saddles} visited saddles"
    return figure_section(report, title, f"visited_mechanisms{axis.suffix}", draw, reading, caption)


def _effective_width(report: Report, dataset: xr.Dataset, axis: Axis) -> list[Section]:
    """The mean effective width of the end points against the axis (absent for population-loss runs)."""
    widths = axis.grouped(effective_width_table(dataset, axis.by))
    if widths.empty:
        return []
    shown = report.table(
        f"effective_width{axis.suffix}", widths, f"effective (reduced) width of the end points{axis.where}"
    )
    reading = (
        "Mean width of the narrower network the end point embeds (neurons grouped by direction and pattern), with"
        " its 95% interval, beside the mean student width."
    )
    return [
        Section(
            f"Effective width{axis.where}",
            reading,
            tables=[shown],
            table_ids=[f"effective_width{axis.suffix}"],
            level=3,
        )
    ]
