"""The survey report: ``index.html`` (figures beside it), its Markdown twin ``index.md`` and CSV tables.

:func:`build_report` reads a store lazily, computes the tables of :mod:`analysis.query` and
:mod:`analysis.compare` grouped by the survey's grid axes (so it works for any survey), draws the
figures of :mod:`analysis.figures`, writes one plain-language reading per figure
(:mod:`analysis.readings`) and renders both documents from one list of sections. Layout::

    <out_dir>/index.html      the page (relative links to figures/ and tables/)
    <out_dir>/index.md        the same content in Markdown
    <out_dir>/figures/*.png   every figure, also as *.svg
    <out_dir>/tables/*.csv    every table of the page, tidy
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from analysis import figures, readings
from analysis.compare import comparison_table
from analysis.query import (
    EVENTS,
    SUMMARY_EVENTS,
    count_summary,
    count_table,
    decode,
    effective_width_table,
    escape_consistency_table,
    event_table,
    point_type_table,
    saddle_mechanism_table,
    strictness_table,
    summary_table,
)
from analysis.reproductions import Reproduction, reproduction_for
from analysis.runs import grid_axes, open_survey, survey_attrs
from analysis.stats import INTERVAL_METHOD, TEST_METHOD, TREND_METHOD
from pipeline.schema import OUTCOME

__all__ = ["build_report"]

log = logging.getLogger(__name__)

OUTCOME_EVENTS = tuple(f"outcome_{name}" if name == "undetermined" else name for name in OUTCOME)
PROVENANCE_ATTRS = (
    "survey",
    "created",
    "package_version",
    "git_revision",
    "schema_version",
    "python_version",
    "library_versions",
    "device",
    "torch_default_threads",
)
HEADERS = {
    "converged_global": "converged (global min)",
    "stuck_spurious_local_min": "stuck (spurious local min)",
    "stalled_at_saddle": "stalled at saddle",
    "not_converged": "not converged",
    "unresolved": "unresolved",
    "visited_saddle": "left ≥1 saddle",
    "plateau_escape_neuron": "≥1 escape neuron on the way",
    "any_local_min": "local min (any)",
    "saddle": "saddle end point",
    "escape_neuron": "≥1 escape neuron at the end",
    "plateau": "≥1 plateau",
}


@dataclass
class Section:
    """One part of the report: a heading, an optional figure, a reading and optional tables."""

    title: str
    reading: str = ""
    figure: str | None = None
    tables: list[pd.DataFrame] = field(default_factory=list)
    table_ids: list[str] = field(default_factory=list)
    level: int = 2
    preformatted: str = ""


@dataclass
class Report:
    """What the report writes: sections in order and the CSV tables with their descriptions."""

    title: str
    out: Path
    sections: list[Section] = field(default_factory=list)
    csv: list[tuple[str, str]] = field(default_factory=list)

    def table(self, name: str, table: pd.DataFrame, description: str) -> pd.DataFrame:
        """Write ``tables/<name>.csv`` and remember its description (with the table's method attrs)."""
        path = self.out / "tables" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
        methods = "; ".join(f"{key}: {value}" for key, value in table.attrs.items() if key in ("interval", "test"))
        self.csv.append((f"tables/{name}.csv", description + (f" ({methods})" if methods else "")))
        return table

    def figure(self, name: str, figure: Figure) -> str:
        """Save ``figures/<name>.png`` and ``.svg``; returns the PNG's relative path."""
        figures.save_figure(figure, self.out / "figures" / name)
        return f"figures/{name}.png"


def build_report(store: str | Path, out_dir: str | Path) -> Path:
    """Write the statistical report of a survey store.

    Parameters
    ----------
    store
        ``results/<name>/survey.zarr``.
    out_dir
        Folder of the report (``results/<name>/report``); created if needed.

    Returns
    -------
    pathlib.Path
        ``<out_dir>/index.html``.
    """
    dataset = open_survey(store)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = str(dataset.attrs.get("survey", Path(store).parent.name))
    report = Report(f"Survey {name}: {dataset.sizes['run']} runs", out)
    axes = grid_axes(dataset)
    report.sections.append(_settings_section(dataset, axes))
    report.sections.append(_summary_section(report, dataset, axes))
    reproduction = reproduction_for(dataset)
    if reproduction is not None:
        report.sections.append(_reproduction_section(report, reproduction))
    comparisons = report.table(
        "comparisons", comparison_table(dataset, axes), "tests across each grid axis, pooled over the others"
    )
    report.sections.append(_comparison_section(comparisons))
    axis_list: list[str | None] = list(axes) or [None]
    for axis in axis_list:
        report.sections.extend(_axis_sections(report, dataset, axis, comparisons))
    report.sections.extend(_trajectory_sections(report, dataset))
    report.sections.append(_methods_section(report))
    report.sections.append(_provenance_section(dataset))
    (out / "index.md").write_text(render_markdown(report), encoding="utf-8")
    (out / "index.html").write_text(render_html(report), encoding="utf-8")
    log.info("wrote %s", out / "index.html")
    return out / "index.html"


# --------------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------------


def _reproduction_section(report: Report, reproduction: Reproduction) -> Section:
    """What the paper found, and what this survey measured."""
    table = report.table("reproduction", reproduction.table, f"comparison with {reproduction.paper}")
    reading = f"{reproduction.paper}. Claim: {reproduction.claim} {reproduction.reading}"
    return Section(f"Reproduction: {reproduction.paper}", reading=reading, tables=[table], table_ids=["reproduction"])


def _settings_section(dataset: xr.Dataset, axes: Sequence[str]) -> Section:
    resolved = survey_attrs(dataset) or {}
    rows = [
        (axis, ", ".join(readings.format_value(v) for v in (resolved.get("grid") or {}).get(axis, []))) for axis in axes
    ]
    grid = pd.DataFrame(rows, columns=["grid axis", "values"])
    fixed = pd.DataFrame(sorted((resolved.get("fixed") or {}).items()), columns=["fixed setting", "value"])
    seeds = resolved.get("seeds") or {}
    description = str(resolved.get("description", "")).strip()
    if description and not description.endswith("."):
        description += "."
    reading = (
        f"{description} The grid has {len(axes)} axes; each cell has {seeds.get('data', '?')}"
        f" data set(s) x {seeds.get('init', '?')} initialisation(s); master seed {resolved.get('master_seed', '?')}."
    ).strip()
    return Section("Survey settings", reading, tables=[grid, fixed.astype(str)], table_ids=["grid", "fixed"])


def _summary_section(report: Report, dataset: xr.Dataset, axes: Sequence[str]) -> Section:
    overall = summary_table(dataset, ())
    by_cell = summary_table(dataset, axes) if axes else overall.iloc[0:0]
    report.table(
        "summary", pd.concat([overall, by_cell], ignore_index=True), "headline rates: all runs, then each cell"
    )
    report.table("rates_by_cell", event_table(dataset, axes, tuple(EVENTS)), "every event's rate in every grid cell")
    display = pd.concat([_display_summary(overall, axes, all_runs=True), _display_summary(by_cell, axes)])
    row = overall.iloc[0]

    def quoted(event: str) -> str:
        rate = readings.format_rate(row[event], row[f"{event}_ci_low"], row[f"{event}_ci_high"])
        return f"{rate} {readings.PHRASES[event]}"

    reading = (
        f"Of all {int(row['runs'])} runs, {quoted('converged_global')}, {quoted('stuck_spurious_local_min')},"
        f" {quoted('stalled_at_saddle')} and {quoted('escape_neuron')}. Each entry is a percentage of the runs of"
        " its row with its 95% Wilson interval."
    )
    return Section("Summary", reading, tables=[display], table_ids=["summary-table"])


def _display_summary(table: pd.DataFrame, axes: Sequence[str], all_runs: bool = False) -> pd.DataFrame:
    rows = []
    for _, row in table.iterrows():
        shown = {axis: "all" if all_runs else readings.format_value(row[axis]) for axis in axes}
        shown["runs"] = str(int(row["runs"]))
        for event in SUMMARY_EVENTS:
            shown[HEADERS[event]] = readings.format_rate(row[event], row[f"{event}_ci_low"], row[f"{event}_ci_high"])
        rows.append(shown)
    return pd.DataFrame(rows)


def _comparison_section(comparisons: pd.DataFrame) -> Section:
    shown = comparisons.copy()
    display = pd.DataFrame(
        {
            "setting": shown["setting"],
            "event": shown["event"],
            "n": shown["n"],
            "Cramér's V": shown["cramers_v"].map(_number),
            "chi-square (dof)": [f"{_number(c)} ({int(d)})" for c, d in zip(shown["chi2"], shown["dof"], strict=True)],
            "p (chi-square)": shown["p_chi2"].map(_number),
            "odds ratio [95% CI]": [
                f"{_number(o)} [{_number(lo)}, {_number(hi)}]" if np.isfinite(o) else "–"
                for o, lo, hi in zip(shown["odds_ratio"], shown["or_ci_low"], shown["or_ci_high"], strict=True)
            ],
            "per": [readings.UNIT.get(scale, "") for scale in shown["trend_scale"]],
            "p (trend)": shown["p_trend"].map(_number),
            "note": shown["note"],
        }
    )
    tested = comparisons[np.isfinite(comparisons["cramers_v"])]
    if len(tested):
        reading = " ".join(
            readings.comparison_sentence(row)
            for _, row in tested.sort_values("cramers_v", ascending=False).drop_duplicates("setting").iterrows()
        )
    else:
        reading = "No rate varies in a way that can be tested (every run gave the same answer, or a single setting)."
    reading += (
        f" Tests: {TEST_METHOD}; trends: {TREND_METHOD}. Each setting is pooled over the other grid axes;"
        " p-values are not corrected for the number of tests."
    )
    return Section("Comparisons across settings", reading, tables=[display], table_ids=["comparisons"])


def _number(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.3g}"


def _by(axis: str | None) -> list[str]:
    return [axis] if axis else []


def _with_axis(table: pd.DataFrame, axis: str | None) -> tuple[pd.DataFrame, str]:
    """A table grouped by ``axis``, or by a constant ``survey`` column when the survey has no grid."""
    if axis:
        return table, axis
    return table.assign(survey="all runs"), "survey"


def _axis_sections(report: Report, dataset: xr.Dataset, axis: str | None, comparisons: pd.DataFrame) -> list[Section]:
    suffix = f"_by_{axis}" if axis else ""
    where = f" by {axis}" if axis else ""
    sections = [Section(f"Results{where}" if axis else "Results", level=2)]
    mine = comparisons[comparisons["setting"] == axis] if axis else comparisons.iloc[0:0]

    events, setting = _with_axis(event_table(dataset, _by(axis), (*OUTCOME_EVENTS, "escape_neuron")), axis)
    report.table(f"outcomes{suffix}", events, f"run outcomes and escape-neuron presence{where}")
    shown = [label for label in (*OUTCOME_EVENTS, "escape_neuron") if events[events["label"] == label]["count"].sum()]
    path = report.figure(f"outcomes{suffix}", figures.rates_figure(events, setting, f"outcomes{where}", shown))
    sections.append(Section(f"Outcomes{where}", readings.rates_reading(events, setting, shown, mine), path, level=3))

    types, setting = _with_axis(point_type_table(dataset, _by(axis)), axis)
    report.table(f"end_point_types{suffix}", types, f"stationary-point type of the end point{where}")
    path = report.figure(f"end_point_types{suffix}", figures.stacked_figure(types, setting, f"end-point types{where}"))
    reading = readings.stacked_reading(types, setting, "end points", "No runs.")
    sections.append(Section(f"Stationary-point types{where}", reading, path, level=3))

    mechanisms, setting = _with_axis(saddle_mechanism_table(dataset, _by(axis), combinations=True), axis)
    report.table(f"saddle_mechanism_combinations{suffix}", mechanisms, f"saddle mechanisms, exclusive{where}")
    per_bit, _ = _with_axis(saddle_mechanism_table(dataset, _by(axis)), axis)
    report.table(f"saddle_mechanisms{suffix}", per_bit, f"saddle mechanisms, each on its own{where}")
    strictness, _ = _with_axis(strictness_table(dataset, _by(axis)), axis)
    report.table(f"saddle_strictness{suffix}", strictness, f"strictness of saddle end points{where}")
    path = report.figure(
        f"saddle_mechanisms{suffix}",
        figures.stacked_figure(mechanisms, setting, f"saddle mechanisms{where}", "fraction of saddle end points"),
    )
    reading = readings.stacked_reading(
        mechanisms, setting, "saddle end points", "No run ended at a saddle, so there are no saddle mechanisms to show."
    )
    if len(strictness):
        reading += " Strictness: " + readings.stacked_reading(strictness, setting, "saddles", "")
    sections.append(Section(f"Saddle mechanisms{where}", reading, path, level=3))

    counts, setting = _with_axis(count_table(dataset, "n_escape_neurons", _by(axis)), axis)
    report.table(f"escape_neuron_counts{suffix}", counts, f"distribution of the number of escape neurons{where}")
    summary, _ = _with_axis(count_summary(dataset, "n_escape_neurons", _by(axis)), axis)
    report.table(f"escape_neuron_summary{suffix}", summary, f"mean number of escape neurons{where}")
    path = report.figure(
        f"escape_neurons{suffix}",
        figures.count_figure(counts, setting, f"escape neurons at the end point{where}", "escape neurons"),
    )
    reading = readings.count_reading(summary, setting, "escape neurons", readings.PHRASES["escape_neuron"])
    sections.append(Section(f"Escape neurons{where}", reading, path, level=3))
    widths, setting = _with_axis(effective_width_table(dataset, _by(axis)), axis)
    if len(widths):
        report.table(f"effective_width{suffix}", widths, f"effective (reduced) width of the end points{where}")
        reading = (
            "Mean width of the narrower network the end point embeds (neurons grouped by direction and pattern): "
            + "; ".join(
                f"{setting} = {getattr(row, setting) if setting in widths else 'all'}: {row.mean:.2f}"
                f" [{row.mean_ci_low:.2f}, {row.mean_ci_high:.2f}] of {row.width_mean:.0f}"
                for row in widths.itertuples()
            )
        )
        sections.append(
            Section(
                f"Effective width{where}",
                reading + ".",
                tables=[widths],
                table_ids=[f"effective_width{suffix}"],
                level=3,
            )
        )

    plateaus, _ = _with_axis(count_table(dataset, "n_plateaus", _by(axis)), axis)
    report.table(f"plateau_counts{suffix}", plateaus, f"distribution of the number of plateaus{where}")
    consistency, _ = _with_axis(escape_consistency_table(dataset, _by(axis)), axis)
    report.table(f"escape_consistency{suffix}", consistency, f"plateau escape-consistency statistic{where}")
    return sections


def _trajectory_sections(report: Report, dataset: xr.Dataset) -> list[Section]:
    sections = [Section("Trajectories", level=2)]
    runs = [int(run) for run in figures.sample_runs(dataset, 6)]
    plateaus = count_summary(dataset, "n_plateaus")
    report.table("plateau_summary", plateaus, "mean number of plateaus per run")
    row = plateaus.iloc[0]
    with_plateau = int((dataset["n_plateaus"].isel(run=list(runs)).values > 0).sum()) if len(runs) else 0
    reading = (
        f"The figure shows {len(runs)} runs sampled across the grid cells, {with_plateau} of them with a detected"
        " plateau (shaded; a plateau is a stretch of steps with a small gradient, near a stationary point)."
        f" In the whole survey {readings.format_rate(row['rate'], row['ci_low'], row['ci_high'])} of runs"
        f" {readings.PHRASES['plateau']}, with {row['mean']:.2f} plateaus per run on average."
    )
    path = report.figure("loss_curves", figures.loss_curves_figure(dataset, runs))
    sections.append(Section("Loss curves and plateaus", reading, path, level=3))

    consistency = report.table(
        "escape_consistency", escape_consistency_table(dataset), "plateau escape-consistency statistic, all runs"
    )
    path = report.figure("amplitudes", figures.amplitude_figure(dataset, runs[:4]))
    reading = (
        "Each panel shows the amplitude ||w_j|| ||a_j|| of every neuron of one sampled run; gray bands are the"
        " detected plateaus. " + readings.consistency_reading(consistency)
    )
    sections.append(Section("Neuron amplitudes around plateaus", reading, path, level=3))

    position = figures.directions_run(dataset)
    if position is None:
        sections.append(
            Section(
                "Neurons and kink lines", "No run has 2-D inputs, so there is no picture of the kink lines.", level=3
            )
        )
        return sections
    try:
        figure = figures.directions_figure(dataset, position)
    except ValueError as error:
        sections.append(Section("Neurons and kink lines", f"Not drawn: {error}.", level=3))
        return sections
    path = report.figure("directions", figure)
    sections.append(Section("Neurons and kink lines", _directions_reading(dataset, position), path, level=3))
    return sections


def _directions_reading(dataset: xr.Dataset, position: int) -> str:
    point = (
        dataset[["end_point_type", "end_differentiable", "n_kink_neurons", "n_escape_neurons", "width"]]
        .isel(run=position)
        .compute()
    )
    kind = str(decode(point["end_point_type"])).replace("_", " ")
    differentiable = bool(point["end_differentiable"].values)
    return (
        f"Run {int(dataset['run'].values[position])} (width {int(point['width'].values)}) ended at a point of type"
        f" '{kind}', where the loss is {'' if differentiable else 'not '}differentiable:"
        f" {int(point['n_kink_neurons'].values)} neuron(s) have data points exactly on their kink line and"
        f" {int(point['n_escape_neurons'].values)} are escape neurons. Left: each neuron's kink line in input space;"
        " a line through a data point is what makes the stationary point non-differentiable. Right: the same neurons"
        " as points (angle, offset of the kink line) and every data point as the curve of the kink lines through it;"
        " a neuron sitting on a curve has that data point on its kink."
    )


def _methods_section(report: Report) -> Section:
    links = pd.DataFrame(report.csv, columns=["file", "content"])
    reading = (
        f"Rates: count / runs with a 95% {INTERVAL_METHOD} interval (scipy.stats.binomtest(...).proportion_ci). "
        f"Comparisons: {TEST_METHOD}. Trends: {TREND_METHOD}; the regressor is log10 of a setting spanning a factor"
        " 10 or more, log2 of other positive settings, the setting itself otherwise. Saddle mechanisms and"
        " strictness are among saddle end points only. The effective width groups neurons with the same"
        " direction and activation pattern and drops zero and dead ones (theory.md 7)."
    )
    return Section("Methods and tables", reading, tables=[links], table_ids=["tables"])


def _provenance_section(dataset: xr.Dataset) -> Section:
    rows = [(key, str(dataset.attrs[key])) for key in PROVENANCE_ATTRS if key in dataset.attrs]
    table = pd.DataFrame(rows, columns=["attribute", "value"])
    return Section(
        "Provenance",
        "Store attributes written by `landscape collect`; below them, the resolved survey the runs were made from.",
        tables=[table],
        table_ids=["provenance"],
        preformatted=str(dataset.attrs.get("resolved_survey", "")),
    )


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
p.reading { max-width: 80ch; line-height: 1.45; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.8em; }
"""


def _html_table(table: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_html_cell(value)}</td>" for value in row) + "</tr>"
        for row in table.itertuples(index=False)
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _html_cell(value: object) -> str:
    text = str(value)
    if text.startswith("tables/") and text.endswith(".csv"):
        return f'<a href="{html.escape(text)}">{html.escape(text)}</a>'
    return html.escape(text)


def render_html(report: Report) -> str:
    """The report as one HTML page (figures linked relatively: ``figures/*.png``, with SVG links)."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(report.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
    ]
    for section in report.sections:
        parts.append(f"<h{section.level}>{html.escape(section.title)}</h{section.level}>")
        if section.figure:
            svg = section.figure.removesuffix(".png") + ".svg"
            parts.append(
                f'<figure><img src="{section.figure}" alt="{html.escape(section.title)}">'
                f'<figcaption><a href="{svg}">SVG</a></figcaption></figure>'
            )
        if section.reading:
            parts.append(f'<p class="reading">{html.escape(section.reading)}</p>')
        for table, table_id in zip(section.tables, section.table_ids, strict=True):
            parts.append(_html_table(table, table_id))
        if section.preformatted:
            parts.append(
                f"<details><summary>Resolved survey</summary><pre>{html.escape(section.preformatted)}</pre></details>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def _markdown_table(table: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        text = str(value).replace("|", "\\|").replace("\n", " ")
        return f"[{text}]({text})" if text.startswith("tables/") and text.endswith(".csv") else text

    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |", "|" + " --- |" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    """The Markdown twin of :func:`render_html` (same sections, tables and readings)."""
    parts = [f"# {report.title}"]
    for section in report.sections:
        parts.append(f"{'#' * section.level} {section.title}")
        if section.figure:
            parts.append(f"![{section.title}]({section.figure})")
        if section.reading:
            parts.append(section.reading)
        parts.extend(_markdown_table(table) for table in section.tables)
        if section.preformatted:
            parts.append(f"Resolved survey:\n\n```yaml\n{section.preformatted.rstrip()}\n```")
    return "\n\n".join(parts) + "\n"
