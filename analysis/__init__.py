"""Analysis of survey stores: queries, statistics with intervals, figures and reports."""

from analysis.query import open_survey, rate_table

__all__ = ["open_survey", "rate_table"]
