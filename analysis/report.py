"""The survey report: ``index.html`` (figures beside it), its Markdown twin ``index.md`` and CSV tables.

:func:`build_report` reads a store lazily and writes, in order: the survey's answers (where runs
end, what they visit on the way, escape neurons, which setting matters most; :mod:`analysis.answers`),
the summary table, the key rates over the grid (heatmaps for two axes, small multiples for more),
the reproduction paragraph of a reproduction survey, the settings, the tests across settings, then
per grid axis the endings, end points and visited stationary points (:mod:`analysis.report_axes`),
trajectories (:mod:`analysis.report_trajectories`), methods and provenance. A figure with no events, or
with a single category, is replaced by a sentence. Layout::

    <out_dir>/index.html      the page (relative links to figures/ and tables/)
    <out_dir>/index.md        the same content in Markdown
    <out_dir>/figures/*.png   every figure, also as *.svg
    <out_dir>/tables/*.csv    every table: the numbers as shown, then full-precision *_raw columns
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import xarray as xr

from analysis import figures, readings
from analysis.answers import KEY_EVENTS, KEY_PHRASES, answers
from analysis.compare import comparison_table
from analysis.embeddings import embedding_section, has_embeddings
from analysis.events import SUMMARY_EVENTS, event_table, summary_table
from analysis.formatting import RAW_SUFFIX, format_count, format_number, format_p, format_value, readable
from analysis.heatmaps import heatmap_figure, varying_events
from analysis.render import Report, Section, render_html, render_markdown
from analysis.report_axes import axis_sections
from analysis.report_trajectories import trajectory_sections
from analysis.reproductions import Reproduction, reproduction_for
from analysis.runs import grid_axes, open_survey, survey_attrs
from analysis.stats import INTERVAL_METHOD, TEST_METHOD, TREND_METHOD

__all__ = ["build_report"]

log = logging.getLogger(__name__)

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
    "data_sources",
)
HEADERS = {
    "converged_global": "converged (global min)",
    "converging_to_zero_loss": "→ zero loss",
    "stuck_spurious_local_min": "stuck (spurious local min)",
    "stalled_at_saddle": "stalled at saddle",
    "unresolved": "unresolved",
    "visited_saddle": "left ≥1 saddle",
    "plateau_escape_neuron": "≥1 escape neuron on the way",
    "saddle": "saddle end point",
    "escape_neuron": "≥1 escape neuron at the end",
}


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
    report = Report(f"Survey {name}: {format_count(dataset.sizes['run'])} runs", out)
    axes = grid_axes(dataset)
    comparisons = comparison_table(dataset, axes)
    report.sections.append(Section("Answers", "\n\n".join(answers(dataset, comparisons, axes))))
    report.sections.append(_summary_section(report, dataset, axes))
    report.sections.append(_key_rates_section(report, dataset, axes))
    reproduction = reproduction_for(dataset)
    if reproduction is not None:
        report.sections.append(_reproduction_section(report, reproduction))
    report.sections.append(_settings_section(dataset, axes))
    report.sections.append(_comparison_section(report, comparisons))
    if has_embeddings(dataset):
        report.sections.append(embedding_section(report, dataset))
    each: list[str | None] = [*axes] or [None]
    for axis in each:
        report.sections.extend(axis_sections(report, dataset, axis, comparisons))
    report.sections.extend(trajectory_sections(report, dataset))
    report.sections.append(_methods_section(report))
    report.sections.append(_provenance_section(dataset))
    (out / "index.md").write_text(render_markdown(report), encoding="utf-8")
    (out / "index.html").write_text(render_html(report), encoding="utf-8")
    log.info("wrote %s", out / "index.html")
    return out / "index.html"


def _summary_section(report: Report, dataset: xr.Dataset, axes: Sequence[str]) -> Section:
    """The headline rates of all runs, then of every grid cell, side by side."""
    overall = summary_table(dataset, ())
    by_cell = summary_table(dataset, axes) if axes else overall.iloc[0:0]
    table = pd.concat([overall.assign(**{axis: "all" for axis in axes}), by_cell], ignore_index=True)
    table = table[[*axes, *(column for column in table.columns if column not in axes)]]
    shown = readable(table, SUMMARY_EVENTS, HEADERS)
    report.table("summary", table, "headline rates: all runs, then each cell", shown, SUMMARY_EVENTS)
    report.table("rates_by_cell", event_table(dataset, axes, tuple(KEY_EVENTS)), "key rates in every grid cell")
    reading = (
        "Each entry is a percentage of the runs of its row with its 95% Wilson interval. Unresolved runs end"
        " without a verdict on their limit; 'left ≥1 saddle' and '≥1 escape neuron on the way' count the plateaus"
        " a run left, 'saddle end point' and '≥1 escape neuron at the end' its end point."
    )
    return Section("Summary", reading, tables=[shown], table_ids=["summary"])


def _key_rates_section(report: Report, dataset: xr.Dataset, axes: Sequence[str]) -> Section:
    """The key rates over the grid: heatmaps (two or more axes), lines (one axis) or a sentence."""
    title = "Key rates over the grid"
    if not axes:
        return Section(title, "The survey has no grid axis, so the key rates are those of the summary above.")
    table = event_table(dataset, axes, KEY_EVENTS)
    events = varying_events(table, KEY_EVENTS)
    if not events:
        return Section(title, "Every key rate is 0% or 100% of the runs, so there is no difference to draw.")
    titles = {event: KEY_PHRASES[event] for event in events}
    if len(axes) >= 2:
        figure = heatmap_figure(table, axes, events, titles)
        shape = "heatmaps of " + " x ".join(axes) + ("" if len(axes) == 2 else " (one row per value of the others)")
    else:
        figure = figures.rates_figure(table, axes[0], "key rates", events)
        shape = f"rates against {axes[0]}"
    path = report.figure("key_rates", figure)
    runs = format_count(dataset.sizes["run"])
    caption = (
        f"Key rates, {shape}: the share of runs that " + "; ".join(titles.values()) + f", with 95% Wilson"
        f" intervals; n = {runs} runs, data in tables/rates_by_cell.csv."
    )
    reading = "Events that occur in every run or in none are left out: " + (
        ", ".join(KEY_PHRASES[event] for event in KEY_EVENTS if event not in events) or "none"
    )
    return Section(title, reading + ".", path, alt=f"{shape} of {len(events)} key rates", caption=caption)


def _reproduction_section(report: Report, reproduction: Reproduction) -> Section:
    """What the paper found, and what this survey measured."""
    rates = [column for column in ("rate",) if column in reproduction.table]
    table = report.table("reproduction", reproduction.table, f"comparison with {reproduction.paper}", rates=rates)
    reading = f"{reproduction.paper}. Claim: {reproduction.claim} {reproduction.reading}"
    return Section(f"Reproduction: {reproduction.paper}", reading, tables=[table], table_ids=["reproduction"])


def _settings_section(dataset: xr.Dataset, axes: Sequence[str]) -> Section:
    resolved = survey_attrs(dataset) or {}
    rows = [(axis, ", ".join(format_value(v) for v in (resolved.get("grid") or {}).get(axis, []))) for axis in axes]
    grid = pd.DataFrame(rows, columns=["grid axis", "values"])
    fixed = pd.DataFrame(
        [(key, format_value(value)) for key, value in sorted((resolved.get("fixed") or {}).items())],
        columns=["fixed setting", "value"],
    )
    seeds = resolved.get("seeds") or {}
    description = str(resolved.get("description", "")).strip()
    if description and not description.endswith("."):
        description += "."
    reading = (
        f"{description} The grid has {len(axes)} axes; each cell has {seeds.get('data', '?')}"
        f" data set(s) x {seeds.get('init', '?')} initialisation(s); master seed `{resolved.get('master_seed', '?')}`."
    ).strip()
    return Section("Survey settings", reading, tables=[grid, fixed], table_ids=["grid", "fixed"])


def _comparison_section(report: Report, comparisons: pd.DataFrame) -> Section:
    """Tests across each grid axis: effect size, chi-square, trend."""
    shown = pd.DataFrame(
        {
            "setting": comparisons["setting"],
            "event": comparisons["event"],
            "n": comparisons["n"].map(format_count),
            "Cramér's V": comparisons["cramers_v"].map(format_number),
            "chi-square (dof)": [
                f"{format_number(c)} ({int(d)})" for c, d in zip(comparisons["chi2"], comparisons["dof"], strict=True)
            ],
            "p (chi-square)": comparisons["p_chi2"].map(_p_value),
            "odds ratio [95% CI]": [
                f"{format_number(o)} [{format_number(lo)}, {format_number(hi)}]" if pd.notna(o) else "–"
                for o, lo, hi in zip(
                    comparisons["odds_ratio"], comparisons["or_ci_low"], comparisons["or_ci_high"], strict=True
                )
            ],
            "per": [readings.UNIT.get(scale, "") for scale in comparisons["trend_scale"]],
            "p (trend)": comparisons["p_trend"].map(_p_value),
            "note": comparisons["note"],
        }
    )
    report.table("comparisons", comparisons, "tests across each grid axis, pooled over the others", shown, ())
    tested = comparisons[comparisons["cramers_v"].notna()]
    if len(tested):
        strongest = tested.sort_values("cramers_v", ascending=False).drop_duplicates("setting")
        reading = " ".join(readings.comparison_sentence(row) for _, row in strongest.iterrows())
    else:
        reading = "No rate varies in a way that can be tested (every run gave the same answer, or a single setting)."
    reading += (
        f" Tests: {TEST_METHOD}; trends: {TREND_METHOD}. Each setting is pooled over the other grid axes;"
        " p-values are not corrected for the number of tests."
    )
    return Section("Comparisons across settings", reading, tables=[shown], table_ids=["comparisons"])


def _p_value(p: float) -> str:
    """A p-value cell: ``0.0123``, ``< 1e-16`` or ``–``."""
    return format_p(p).removeprefix("p = ").replace("p <", "<") if pd.notna(p) else "–"


def _methods_section(report: Report) -> Section:
    links = pd.DataFrame(report.csv, columns=["file", "content"])
    reading = (
        f"Rates: count / runs with a 95% {INTERVAL_METHOD} interval (scipy.stats.binomtest(...).proportion_ci). "
        f"Comparisons: {TEST_METHOD}. Trends: {TREND_METHOD}; the regressor is log10 of a setting spanning a factor"
        " 10 or more, log2 of other positive settings, the setting itself otherwise. A plateau is visited when the"
        " run left it; a run's last plateau, lasting until the run stopped, contains the end point and is counted"
        " with the end points. Rates per plateau order are over runs (a run has one plateau of each order); rates"
        " pooled over orders count the plateaus of a run as separate trials. A visited saddle is strict when its"
        " certificate is an escape neuron with zero output weight (theory.md 5.2); plateau points certified by a"
        " second-order witness have no stored strictness (unknown). Saddle mechanisms and strictness of end points"
        " are among saddle end points only. The effective width groups neurons with the same direction and"
        " activation pattern and drops zero and dead ones (theory.md 7). Numbers are shown to three significant"
        f" digits; every CSV file holds the numbers as shown, then the full-precision values in columns ending in"
        f" `{RAW_SUFFIX}`."
    )
    return Section("Methods and tables", reading, tables=[links], table_ids=["tables"])


def _provenance_section(dataset: xr.Dataset) -> Section:
    rows = [(key, f"`{dataset.attrs[key]}`") for key in PROVENANCE_ATTRS if key in dataset.attrs]
    table = pd.DataFrame(rows, columns=["attribute", "value"])
    return Section(
        "Provenance",
        "Store attributes written by `landscape collect`; below them, the resolved survey the runs were made from.",
        tables=[table],
        table_ids=["provenance"],
        preformatted=str(dataset.attrs.get("resolved_survey", "")),
    )
