"""The report of the tiny survey (built in-process by the landscape steps), and the command lines."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from analysis import figures
from analysis.runs import open_survey
from pipeline.commands import query as query_command
from pipeline.commands import report as report_command


def test_report_files(tiny_report: Path) -> None:
    folder = tiny_report.parent
    page = tiny_report.read_text(encoding="utf-8")
    markdown = (folder / "index.md").read_text(encoding="utf-8")
    assert 'id="summary-table"' in page and 'id="comparisons"' in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) >= 8
    for image in images:
        assert (folder / image).stat().st_size > 0
        assert (folder / image).with_suffix(".svg").stat().st_size > 0
        assert f"]({image})" in markdown
    links = re.findall(r'href="(tables/[^"]+\.csv)"', page)
    assert len(links) == len(list((folder / "tables").glob("*.csv"))) > 10
    for link in links:
        table = pd.read_csv(folder / link)
        assert len(table.columns) > 1
        assert len(table) or "saddle" in link  # the tiny survey has no saddle end points
    assert (folder / "tables" / "summary.csv").exists() and (folder / "tables" / "comparisons.csv").exists()


def test_readings_quote_rates_with_intervals(tiny_report: Path) -> None:
    page = tiny_report.read_text(encoding="utf-8")
    assert re.search(r"At width 2 \(8 runs\), \d+\.\d% \[\d+\.\d, \d+\.\d\]", page)
    assert "Wilson" in page and "Cram" in page
    assert "effective (reduced) width" in page  # says why it is absent
    assert "master seed 20261122" in page  # settings and provenance
    assert "package_version" in page


def test_summary_csv_matches_the_store(tiny_report: Path, tiny_store: Path) -> None:
    summary = pd.read_csv(tiny_report.parent / "tables" / "summary.csv")
    dataset = open_survey(tiny_store)
    assert summary.loc[0, "runs"] == dataset.sizes["run"]
    outcome = dataset["outcome"].values
    assert summary.loc[0, "unresolved"] == pytest.approx(((outcome == 3) | (outcome == 5)).mean())


def test_directions_figure_regenerates_the_data(tiny_store: Path) -> None:
    dataset = open_survey(tiny_store)
    position = figures.directions_run(dataset)
    assert position is not None
    x = figures._inputs_of_run(dataset, position)
    assert x.shape == (8, 3) and (x[:, -1] == 1).all()  # 8 points in 2-d plus the bias column


def test_report_command_errors(tmp_path: Path) -> None:
    # the tiny_report fixture builds the report through this command; here: a missing store
    assert report_command.main([str(tmp_path / "missing.zarr"), "--out", str(tmp_path / "r")]) == 2


def test_query_command_tables(small_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert query_command.main([str(small_store), "--by", "width"]) == 0
    assert "stuck_spurious_local_min" in capsys.readouterr().out
    for table in query_command.TABLES:
        out = tmp_path / f"{table}.csv"
        assert query_command.main([str(small_store), "--by", "width", "--table", table, "--csv", str(out)]) == 0
        assert not pd.read_csv(out).empty
    assert query_command.main([str(small_store), "--by", "nope"]) == 2
