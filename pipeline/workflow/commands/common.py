"""What every subcommand shares: logging, progress, provenance and the user-error convention."""

from __future__ import annotations

import errno
import functools
import importlib.metadata
import logging
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import tqdm

from pipeline.survey import Survey, SurveyError, load_survey

__all__ = ["Progress", "UserError", "load_resolved", "provenance", "setup_logging", "user_errors"]

LIBRARIES = (
    "numpy",
    "torch",
    "scipy",
    "xarray",
    "zarr",
    "dask",
    "distributed",
    "scikit-learn",
    "pydantic",
    "snakemake",
)


def setup_logging(verbose: bool = False) -> None:
    """Log lines to stderr (Snakemake routes them to the rule's log file)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


class UserError(Exception):
    """An error the user can act on (a held lock, ...): one line on stderr and exit code 2, no traceback."""


WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})
"""Errors of writing results (disk full, quota, permissions, read-only file system): reported in one
line naming the path, exit code 1, no traceback."""


def user_errors(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Turn user errors (bad survey, bad arguments) into a one-line message and exit code 2, and
    errors of writing the results (disk full, unwritable folder) into a one-line message and exit code 1."""

    @functools.wraps(main)
    def wrapped(argv: Sequence[str] | None = None) -> int:
        try:
            return main(argv)
        except (SurveyError, FileNotFoundError, ValueError, UserError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except OSError as error:
            if error.errno not in WRITE_ERRNOS:
                raise
            print(f"error: {_write_error_message(error, argv)}", file=sys.stderr)
            return 1

    return wrapped


def _write_error_message(error: OSError, argv: Sequence[str] | None) -> str:
    """``<reason>: <file> (while writing <--out>); <hint>``: one line naming the path."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    out = next((arguments[i + 1] for i, arg in enumerate(arguments[:-1]) if arg == "--out"), None)
    out = out or next((arg.split("=", 1)[1] for arg in arguments if arg.startswith("--out=")), None)
    where = error.filename if error.filename is not None else out
    reason = error.strerror or str(error)
    message = f"{reason}: {where}" if where is not None else reason
    if out is not None and where != out:
        message += f" (while writing {out})"
    hint = "free some space" if error.errno in (errno.ENOSPC, errno.EDQUOT) else "check permissions"
    return f"{message}; {hint} and run the step again"


RESOLVED_NAME = "survey.resolved.yaml"


def load_resolved(path: str | Path) -> Survey:
    """Load ``surveys/<name>.yaml`` or ``results/<name>/survey.resolved.yaml`` (both validate).

    A resolved survey takes its name from its folder, as in the Snakefile's path grammar.
    """
    path = Path(path)
    if path.name != RESOLVED_NAME:
        return load_survey(path)
    return load_survey(path, name=path.parent.name)


class Progress:
    """A progress bar on a terminal, periodic log lines otherwise."""

    def __init__(self, description: str, *, every_seconds: float = 30.0) -> None:
        self.description = description
        self.every_seconds = every_seconds
        self._bar: tqdm.tqdm | None = None
        self._last = 0.0
        self._log = logging.getLogger("pipeline.progress")

    def __call__(self, done: int, total: int) -> None:
        if sys.stderr.isatty():
            if self._bar is None:
                self._bar = tqdm.tqdm(total=total, desc=self.description, unit="batch")
            self._bar.update(done - self._bar.n)
            if done == total:
                self._bar.close()
            return
        now = time.monotonic()
        if done == total or now - self._last >= self.every_seconds:
            self._last = now
            self._log.info("%s: %d/%d batches", self.description, done, total)


def _git_revision() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


def provenance() -> dict[str, Any]:
    """Package version, git revision, Python and library versions."""
    versions = {}
    for library in LIBRARIES:
        try:
            versions[library] = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            versions[library] = "not installed"
    return {
        "package_version": importlib.metadata.version("relu-landscape-survey"),
        "git_revision": _git_revision(),
        "python_version": platform.python_version(),
        "library_versions": " ".join(f"{name}={version}" for name, version in versions.items()),
    }
