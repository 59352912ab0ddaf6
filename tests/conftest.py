"""Fixtures shared by every test folder; assertion rewriting for the helper modules they import."""

from __future__ import annotations

import pytest
import torch

# the helper modules assert on their own (oracles, survey checks); pytest rewrites their asserts as a test's
pytest.register_assert_rewrite("tests.oracle_points", "tests.survey_helpers")


@pytest.fixture
def one_torch_thread():
    """Tiny batches: one torch thread (the two processes of a test run share two cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
