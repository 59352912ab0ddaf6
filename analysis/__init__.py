"""Analysis of survey stores: queries, statistics with intervals, figures and reports.

Modules, one job each: :mod:`analysis.runs` (open a store, load only per-run columns, find its grid
axes), :mod:`analysis.stats` (Wilson intervals, chi-square with Cramér's V, logistic trends),
:mod:`analysis.rates` (rates of indicators per group), :mod:`analysis.query` (tidy tables of counts
and rates of end points), :mod:`analysis.events` (rates of yes/no events per run),
:mod:`analysis.endings` (where runs end, resolved or not), :mod:`analysis.plateaus` (the stationary
points visited on the way, by plateau order), :mod:`analysis.compare` (tests across a setting),
:mod:`analysis.answers` (the survey's questions answered in sentences), :mod:`analysis.formatting`
(numbers for reading), the figures (:mod:`analysis.figures`, :mod:`analysis.heatmaps`,
:mod:`analysis.plateau_figures`), :mod:`analysis.readings` (plain-language sentences), the report
(:mod:`analysis.report`, :mod:`analysis.report_axes`, :mod:`analysis.report_trajectories`,
:mod:`analysis.render`: HTML, Markdown, CSV), the network embeddings (:mod:`analysis.embeddings`) and
the reproductions of published results (:mod:`analysis.reproductions`, :mod:`analysis.genuine`,
:mod:`analysis.genuine_end_points`).

>>> from analysis import open_survey, plateau_table, rate_table
>>> ds = open_survey("results/tiny/survey.zarr")          # doctest: +SKIP
>>> print(rate_table(ds, by=["width"], variable="outcome"))  # doctest: +SKIP
>>> print(plateau_table(ds, by=["init_scale"]))           # doctest: +SKIP
"""

from analysis.answers import answers
from analysis.compare import compare_setting, comparison_table
from analysis.endings import ending_table, run_endings
from analysis.events import EVENTS, event_table, summary_table
from analysis.plateaus import plateau_frame, plateau_table, visited_table
from analysis.query import (
    count_summary,
    count_table,
    escape_consistency_table,
    outcome_table,
    point_type_table,
    rate_table,
    saddle_mechanism_table,
    strictness_table,
)
from analysis.runs import grid_axes, open_survey

__all__ = [
    "EVENTS",
    "answers",
    "ending_table",
    "plateau_frame",
    "plateau_table",
    "run_endings",
    "visited_table",
    "compare_setting",
    "comparison_table",
    "count_summary",
    "count_table",
    "escape_consistency_table",
    "event_table",
    "grid_axes",
    "open_survey",
    "outcome_table",
    "point_type_table",
    "rate_table",
    "saddle_mechanism_table",
    "strictness_table",
    "summary_table",
]
