"""Shared fixtures. Real data comes from ../shared/data; tests that need it fail loudly without it."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, which must exist: tests never skip silently without it."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA}; it must sit beside the project checkout")
    return SHARED_DATA
