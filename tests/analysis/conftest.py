"""Fixtures of the analysis tests: hand-made stores and the tiny survey (helpers: ``tests/analysis/helpers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.workflow.commands import report
from tests.analysis.helpers import REPO, run_in_process, small_record, write_store


@pytest.fixture
def small_store(tmp_path: Path) -> Path:
    """The store of :func:`small_record` (two chunks along ``run``)."""
    rows, record = small_record()
    return write_store(tmp_path / "small.zarr", rows, record, chunk_runs=10)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``surveys/tiny.yaml`` run through the ``landscape`` steps in-process: resolve, plan, simulate, collect."""
    return run_in_process(REPO / "surveys" / "tiny.yaml", tmp_path_factory.mktemp("results") / "tiny")


@pytest.fixture(scope="session")
def tiny_report(tiny_store: Path) -> Path:
    """The report of the tiny survey, built once per session by ``landscape report``; returns ``index.html``."""
    folder = tiny_store.parent / "report"
    assert report.main([str(tiny_store), "--out", str(folder)]) == 0
    return folder / "index.html"
