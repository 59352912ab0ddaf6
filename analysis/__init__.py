"""Analysis of survey stores: queries, statistics with intervals, figures and reports.

Modules, one job each: :mod:`analysis.runs` (open a store, load only per-run columns, find its grid
axes), :mod:`analysis.stats` (Wilson intervals, chi-square with Cramér's V, logistic trends),
:mod:`analysis.query` (tidy tables of counts and rates), :mod:`analysis.compare` (tests across a
setting), :mod:`analysis.figures` (matplotlib figures), :mod:`analysis.readings` (plain-language
sentences) and :mod:`analysis.report` (``build_report``: HTML, Markdown, CSV).

>>> from analysis import open_survey, rate_table
>>> ds = open_survey("results/tiny/survey.zarr")          # doctest: +SKIP
>>> print(rate_table(ds, by=["width"], variable="outcome"))  # doctest: +SKIP
"""

from analysis.compare import compare_setting, comparison_table
from analysis.query import (
    EVENTS,
    count_summary,
    count_table,
    escape_consistency_table,
    event_table,
    outcome_table,
    point_type_table,
    rate_table,
    saddle_mechanism_table,
    strictness_table,
    summary_table,
)
from analysis.runs import grid_axes, open_survey

__all__ = [
    "EVENTS",
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
