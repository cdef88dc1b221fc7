"""Shared fixtures. Real data lives in ../shared/data beside the project (see its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real data sets; a missing folder is an error, not a skip."""
    if not (SHARED_DATA / "drazan2019-mg").is_dir():
        pytest.fail(f"real data not found at {SHARED_DATA}; the suite expects ../shared/data")
    return SHARED_DATA


@pytest.fixture(scope="session")
def drazan_dir(shared_data: Path) -> Path:
    return shared_data / "drazan2019-mg"


@pytest.fixture(scope="session")
def dltrack_dir(shared_data: Path) -> Path:
    return shared_data / "dltrack-aponeurosis"
