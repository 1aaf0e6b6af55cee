"""Shared fixtures. Browser/RTC tests skip with a reason when the host lacks what they need, except
under CI=true, where a missing prerequisite is a failure."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
# Votes written by tests (and by apps the tests start) go to a throwaway directory, never ./data.
os.environ.setdefault("SPEECHLM_DATA_DIR", tempfile.mkdtemp(prefix="speechlm-test-data-"))


def require(problem: str | None) -> None:
    """Skip (locally) or fail (CI) when ``problem`` says a prerequisite is missing."""
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"prerequisite missing under CI: {problem}")
    pytest.skip(problem)


@pytest.fixture
def data_dir() -> Path:
    """tests/data."""
    return DATA
