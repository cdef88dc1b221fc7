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


@pytest.fixture(scope="session")
def phantom_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny phantom cohort (3 participants, 128 x 128 frames at 25 fps: two 2 s tracking
    trials, a 2 s MVC trial with include = false, a 3 s passive range of motion each), simulated
    once per session; returns the path of its import manifest (``manifest.toml``)."""
    from musclestate.phantom import PhantomConfig, ProtocolConfig, simulate_cohort

    cfg = PhantomConfig(
        participants=3,
        seconds=4.0,
        fps=25.0,
        seed=0,
        size=(128, 128),
        protocol=ProtocolConfig(tracking_trials=2, mvc_seconds=2.0, rom_seconds=3.0),
    )
    return simulate_cohort(tmp_path_factory.mktemp("phantom") / "cohort", config=cfg)
