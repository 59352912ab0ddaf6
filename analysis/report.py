"""The survey report (placeholder until the analysis issue lands): a summary table as HTML and Markdown."""

from __future__ import annotations

import html
from pathlib import Path

from analysis.query import open_survey, rate_table

__all__ = ["build_report"]


def build_report(store: str | Path, out_dir: str | Path) -> Path:
    """Write ``index.html``, ``index.md`` and ``outcome.csv`` for a store; returns the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = open_survey(store)
    table = rate_table(dataset, ["width"], "outcome")
    table.to_csv(out / "outcome.csv", index=False)
    title = f"Survey {dataset.attrs.get('survey', '')}: {dataset.sizes['run']} runs"
    (out / "index.md").write_text(f"# {title}\n\n{table.to_markdown(index=False) if False else table.to_string()}\n")
    (out / "index.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{table.to_html(index=False, float_format='{:.3f}'.format)}</body></html>"
    )
    return out / "index.html"
