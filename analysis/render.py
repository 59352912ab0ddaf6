"""The report's documents: sections in order, rendered as one HTML page and its Markdown twin.

:class:`Report` collects :class:`Section` objects and writes their tables (``tables/<name>.csv``:
the numbers as shown, then the full-precision ``*_raw`` columns) and figures (``figures/<name>.png``
and ``.svg``). :func:`render_html` and :func:`render_markdown` render the same sections, readings and
tables, so the two documents carry the same text and numbers. Readings use two inline marks, in
Markdown syntax: ``**question**`` (bold) and a backquoted identifier (seeds, run numbers, versions),
which the HTML shows as ``<code>``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis import figures
from analysis.formatting import readable, with_raw

__all__ = ["Report", "Section", "render_html", "render_markdown"]


@dataclass
class Section:
    """One part of the report: a heading, a reading, an optional figure with its caption, optional tables.

    ``reading`` may hold several paragraphs separated by blank lines. A figure always has ``alt``
    (what it shows) and ``caption`` (what it shows and its n).
    """

    title: str
    reading: str = ""
    figure: str | None = None
    alt: str = ""
    caption: str = ""
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

    def table(
        self,
        name: str,
        table: pd.DataFrame,
        description: str,
        shown: pd.DataFrame | None = None,
        rates: Sequence[str] = ("rate",),
    ) -> pd.DataFrame:
        """Write ``tables/<name>.csv`` and return the table as the page shows it.

        Parameters
        ----------
        name
            File stem (also the HTML id of the table when it is shown).
        table
            The tidy table of :mod:`analysis.query` (full precision).
        description
            What the table holds (listed in the methods section with its interval and test).
        shown
            The table as shown (strings); default :func:`analysis.formatting.readable` of ``table``.
        rates
            Columns of ``table`` that are proportions (shown as percentages with intervals).
        """
        shown = readable(table, rates) if shown is None else shown
        path = self.out / "tables" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with_raw(shown, table).to_csv(path, index=False)
        methods = "; ".join(f"{key}: {value}" for key, value in table.attrs.items() if key in ("interval", "test"))
        self.csv.append((f"tables/{name}.csv", description + (f" ({methods})" if methods else "")))
        return shown

    def figure(self, name: str, figure: Figure) -> str:
        """Save ``figures/<name>.png`` and ``.svg``; returns the PNG's relative path."""
        figures.save_figure(figure, self.out / "figures" / name)
        return f"figures/{name}.png"


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; max-width: 80ch; }
p.reading { max-width: 80ch; line-height: 1.45; }
section.answers p.reading { max-width: 100ch; margin: 0.4em 0; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.8em; }
"""

INLINE = re.compile(r"\*\*(.+?)\*\*|`([^`]+)`")


def _inline_html(text: str) -> str:
    """Escape ``text`` and turn its ``**bold**`` and backquoted marks into ``<strong>`` and ``<code>``."""
    parts, last = [], 0
    for match in INLINE.finditer(text):
        parts.append(html.escape(text[last : match.start()]))
        bold, code = match.groups()
        parts.append(
            f"<strong>{html.escape(bold)}</strong>" if bold is not None else f"<code>{html.escape(code)}</code>"
        )
        last = match.end()
    parts.append(html.escape(text[last:]))
    return "".join(parts)


def _html_cell(value: object) -> str:
    text = str(value)
    if text.startswith("tables/") and text.endswith(".csv"):
        return f'<a href="{html.escape(text)}">{html.escape(text)}</a>'
    return _inline_html(text)


def _html_table(table: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_html_cell(value)}</td>" for value in row) + "</tr>"
        for row in table.itertuples(index=False)
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _html_figure(section: Section) -> str:
    svg = str(section.figure).removesuffix(".png") + ".svg"
    return (
        f'<figure><img src="{section.figure}" alt="{html.escape(section.alt)}">'
        f'<figcaption>{_inline_html(section.caption)} <a href="{svg}">SVG</a></figcaption></figure>'
    )


def render_html(report: Report) -> str:
    """The report as one HTML page (figures linked relatively: ``figures/*.png``, with SVG links)."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(report.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
    ]
    for section in report.sections:
        slug = re.sub(r"[^a-z0-9]+", "-", section.title.lower()).strip("-")
        parts.append(f'<section class="{slug}">')
        parts.append(f"<h{section.level}>{html.escape(section.title)}</h{section.level}>")
        for paragraph in filter(None, section.reading.split("\n\n")):
            parts.append(f'<p class="reading">{_inline_html(paragraph)}</p>')
        if section.figure:
            parts.append(_html_figure(section))
        for table, table_id in zip(section.tables, section.table_ids, strict=True):
            parts.append(_html_table(table, table_id))
        if section.preformatted:
            parts.append(
                f"<details><summary>Resolved survey</summary><pre>{html.escape(section.preformatted)}</pre></details>"
            )
        parts.append("</section>")
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
    """The Markdown twin of :func:`render_html` (same sections, readings, captions and tables)."""
    parts = [f"# {report.title}"]
    for section in report.sections:
        parts.append(f"{'#' * section.level} {section.title}")
        parts.extend(filter(None, section.reading.split("\n\n")))
        if section.figure:
            svg = str(section.figure).removesuffix(".png") + ".svg"
            parts.append(f"![{section.alt}]({section.figure})\n\n*{section.caption}* [SVG]({svg})")
        parts.extend(_markdown_table(table) for table in section.tables)
        if section.preformatted:
            parts.append(f"Resolved survey:\n\n```yaml\n{section.preformatted.rstrip()}\n```")
    return "\n\n".join(parts) + "\n"
