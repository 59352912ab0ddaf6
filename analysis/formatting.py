"""Numbers for reading: three significant digits, rates as percentages with their 95% intervals.

Every number the report shows (HTML, Markdown and the formatted columns of its CSV files) goes
through this module, so the three agree to the character:

* :func:`format_number` -- a measured quantity to three significant digits (``0.0123``, ``4.2e-6``,
  ``12,300``);
* :func:`format_count` -- an exact count (``1,934``), rounded to three significant digits only from
  10,000 on, where the exact value is no longer read;
* :func:`format_rate` -- ``12.5% [9.8, 15.8]``;
* :func:`readable` -- a tidy table of :mod:`analysis.query` as the table a reader sees, and
  :func:`with_raw` -- the same with the full-precision values beside it (columns ending in ``_raw``),
  as the report's CSV files hold it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "CI",
    "RAW_SUFFIX",
    "format_count",
    "format_number",
    "format_p",
    "format_rate",
    "format_value",
    "readable",
    "with_raw",
]

DIGITS = 3
"""Significant digits of every formatted measurement."""

RAW_SUFFIX = "_raw"
"""Suffix of the CSV columns that keep full precision (documented in the report's methods)."""

CI = "[95% CI]"
"""Header suffix of a value shown with its interval."""


def format_number(value: float | np.floating) -> str:
    """A measurement to three significant digits; ``–`` for NaN and ``inf`` for infinity.

    Examples
    --------
    >>> format_number(0.012345), format_number(4.2e-06), format_number(12345.0), format_number(2.0)
    ('0.0123', '4.2e-6', '12,300', '2')
    """
    value = float(value)
    if np.isnan(value):
        return "–"
    if np.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    exponent = int(np.floor(np.log10(abs(value))))
    if exponent >= DIGITS:
        return f"{round(value, DIGITS - 1 - exponent):,.0f}"
    if exponent < -4:
        mantissa, power = f"{value:.{DIGITS - 1}e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(power)}"
    text = f"{value:.{max(DIGITS - 1 - exponent, 0)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_p(p: float) -> str:
    """A p-value: ``p = 0.0123``, or ``p < 1e-16`` below double precision's resolution near 1."""
    return "p < 1e-16" if p < 1e-16 else f"p = {format_number(p)}"


def format_count(value: float | np.number) -> str:
    """A count: exact with thousands separators below 10,000, else three significant digits."""
    if not np.isfinite(value):
        return "–"
    count = int(round(float(value)))
    return f"{count:,}" if abs(count) < 10_000 else format_number(count)


def format_rate(rate: float, low: float, high: float) -> str:
    """``12.5% [9.8, 15.8]``: a rate in percent (one decimal) with its 95% interval; ``n/a`` without trials."""
    if not np.isfinite(rate):
        return "n/a"
    return f"{100 * rate:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def format_value(value: object) -> str:
    """A cell: counts exactly, other numbers to three significant digits, text unchanged."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, int | np.integer):
        return format_count(value)
    if isinstance(value, float | np.floating):
        return format_number(value)
    return str(value)


def _with_interval(table: pd.DataFrame, column: str) -> tuple[str, str] | None:
    """The interval columns of ``column`` (``ci_low``/``ci_high`` for ``rate``), if the table has them."""
    names = ("ci_low", "ci_high") if column == "rate" else (f"{column}_ci_low", f"{column}_ci_high")
    return names if all(name in table.columns for name in names) else None


def readable(
    table: pd.DataFrame, rates: Sequence[str] = ("rate",), names: dict[str, str] | None = None
) -> pd.DataFrame:
    """The table as a reader sees it: every cell a string, each value beside its interval.

    Parameters
    ----------
    table
        A tidy table (:mod:`analysis.query`): a column ``x`` with ``x_ci_low`` and ``x_ci_high``
        (``rate`` with ``ci_low`` and ``ci_high``) becomes one column ``x [95% CI]``.
    rates
        Columns that are proportions: shown as percentages with :func:`format_rate`; other values
        with an interval as ``0.8 [0.2, 1.4]``.
    names
        Headers to rename (before the ``[95% CI]`` suffix is added).

    Returns
    -------
    pandas.DataFrame
        Strings only, in the original column order (interval columns folded into their value).
    """
    names = names or {}
    columns: dict[str, list[str]] = {}
    folded = {name for column in table.columns if (pair := _with_interval(table, column)) for name in pair}
    for column in table.columns:
        if column in folded:
            continue
        pair = _with_interval(table, column)
        header = names.get(column, column)
        if pair is None:
            columns[header] = [format_value(value) for value in table[column]]
            continue
        low, high = table[pair[0]], table[pair[1]]
        if column in rates:
            cells = [format_rate(*values) for values in zip(table[column], low, high, strict=True)]
        else:
            cells = [
                format_number(value) if not np.isfinite(lo) else
                f"{format_number(value)} [{format_number(lo)}, {format_number(hi)}]"
                for value, lo, hi in zip(table[column], low, high, strict=True)
            ]  # fmt: skip
        columns[f"{header} {CI}"] = cells
    return pd.DataFrame(columns, index=range(len(table)))


def with_raw(shown: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """``shown`` (a :func:`readable` table) followed by the numeric columns of ``table`` in full precision.

    The raw columns are named ``<column>_raw``; a CSV reader computes with those and reads the others.
    """
    numeric = [column for column in table.columns if pd.api.types.is_numeric_dtype(table[column])]
    raw = table[numeric].reset_index(drop=True).add_suffix(RAW_SUFFIX)
    return pd.concat([shown.reset_index(drop=True), raw], axis=1)
