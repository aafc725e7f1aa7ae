"""Shared fixtures: seeded panels and the kernel engine as a parameter."""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("EXCESSMORT_PROGRESS", "0")
# the holiday cache of the tests' own (excessmort.weeks._holiday_cache), not the user's
os.environ.setdefault("EXCESSMORT_CACHE_DIR", tempfile.mkdtemp(prefix="excessmort-cache-"))


@pytest.fixture(params=["numba", "numpy"])
def engine(request: pytest.FixtureRequest) -> str:
    """Both kernel engines."""
    return str(request.param)


@pytest.fixture(scope="session")
def shared():
    """Path of ../shared (real data and R references); CI has it beside the clone."""
    from _sim import SHARED

    assert SHARED.is_dir(), (
        f"{SHARED} is missing: the tests read real data and R references from it"
    )
    return SHARED
