"""Fixtures of the reliability tests: the workflow tests' micro survey and store (helpers: ``helpers.py``)."""

from tests.workflow.conftest import (  # noqa: F401  (fixtures, re-exported for this folder)
    copy_store,
    micro_store,
    micro_survey,
    scratch,
    scratch_root,
)
