"""Fixtures of the workflow tests: the micro survey and its store (helpers: ``tests/workflow/helpers.py``).

The surveys are ``surveys/tiny.yaml`` with fewer gradient steps (the workflow layer does not care
how long a run trains), so that a whole survey simulates in a couple of seconds in-process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.workflow.helpers import run_survey, write_survey


@pytest.fixture(scope="session")
def scratch_root() -> Iterator[Path]:
    """A folder for stores: in memory (/dev/shm) where possible, since zarr stores are many small
    files and deleting them from a slow disk costs seconds."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="landscape-workflow-tests-", dir=base))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def scratch(scratch_root: Path, request: pytest.FixtureRequest) -> Path:
    """A fresh folder for one test, under :func:`scratch_root`."""
    return Path(tempfile.mkdtemp(prefix=request.node.name[:40].replace("/", "_") + "-", dir=scratch_root))


@pytest.fixture(scope="session")
def micro_survey(scratch_root: Path) -> Path:
    """The tiny survey with 300 steps: 16 runs, 2 shards of 8, batches of 4."""
    return write_survey(scratch_root / "surveys", "micro")


@pytest.fixture(scope="session")
def micro_store(micro_survey: Path, scratch_root: Path) -> Path:
    """The micro survey simulated in-process and collected (do not modify it: copy it first)."""
    return run_survey(micro_survey, scratch_root / "results")


@pytest.fixture
def copy_store(micro_store: Path, scratch: Path) -> Callable[[], Path]:
    """A fresh copy of the micro store that a test may damage."""

    def make() -> Path:
        target = scratch / "copy" / "survey.zarr"
        shutil.copytree(micro_store, target)
        return target

    return make
