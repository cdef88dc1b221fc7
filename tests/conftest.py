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


def _synthetic_recordings(participants: int, recordings: int, frames: int, size: int, seed: int):
    """Tiny stand-in for ROI patches: (T, 2, size, size) uint8 images whose content follows the
    four targets (MG: stripe angle ~ ankle angle, brightness ~ MG activation; SOL: band
    thickness ~ SOL activation; moment = a mix), with a per-participant gain and angle bias so
    that people differ. Returns a list of dicts (id, participant, trial, t_s, images, targets,
    features with noisy copies of the targets)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    out = []
    for p in range(participants):
        pid = f"P{p + 1:02d}"
        bias, gain = rng.normal(0, 3), rng.uniform(0.8, 1.2)
        for r in range(recordings):

            def smooth(lo: float, hi: float) -> np.ndarray:
                k = np.convolve(rng.normal(size=frames + 40), np.hanning(25), "same")[20:-20]
                return lo + (hi - lo) * (k - k.min()) / (np.ptp(k) + 1e-9)

            ang, mg, sol = smooth(-15, 25), smooth(0, 60), smooth(0, 60)
            mom = 0.8 * mg + 1.2 * sol + 0.6 * ang + rng.normal(0, 1, frames)
            th = np.deg2rad(20 + 0.5 * ang + bias)[:, None, None]
            mg_img = 0.5 + 0.4 * np.sin(8 * np.pi * (xx * np.sin(th) + yy * np.cos(th)))
            mg_img = mg_img * (0.4 + 0.01 * mg[:, None, None]) * gain
            sol_img = np.where(yy[None] < (0.3 + 0.006 * sol)[:, None, None], 0.8, 0.2) * gain
            img = np.stack([mg_img, sol_img], axis=1) + rng.normal(0, 0.08, (frames, 2, size, size))
            noisy = [v + rng.normal(0, s, frames) for v, s in ((ang, 8), (mg, 20), (sol, 20))]
            out.append(
                {
                    "id": f"{pid}_r{r}",
                    "participant": pid,
                    "trial": f"r{r}",
                    "t_s": np.arange(frames) / 25.0,
                    "images": np.clip(img * 255, 0, 255).astype(np.uint8),
                    "targets": {
                        "ankle_angle": ang,
                        "ankle_moment": mom,
                        "mg_activation": mg,
                        "sol_activation": sol,
                    },
                    "features": np.stack(noisy, axis=1).astype(np.float32),
                }
            )
    return out


@pytest.fixture(scope="session")
def synthetic_recordings():
    """Factory ``(participants=6, recordings=2, frames=120, size=32, seed=0) -> list[dict]`` of
    synthetic patch recordings (see ``_synthetic_recordings``), for training tests."""

    def make(participants: int = 6, recordings: int = 2, frames: int = 120, size: int = 32,
             seed: int = 0):  # fmt: skip
        return _synthetic_recordings(participants, recordings, frames, size, seed)

    return make


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


def _synthetic_muscle(
    angle_deg: float, *, h: int = 300, w: int = 400, sup: int = 40, deep: int = 240, seed: int = 0
) -> tuple:
    """Speckled muscle between two bright 8-row bands, with bright fascicle stripes at
    ``angle_deg`` (+ = deeper to the right); returns ``(image uint8, band probability)``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    img = 40 + 15 * rng.standard_normal((h, w))
    # stripes: distance across lines at angle_deg, period 14 px
    t = np.radians(angle_deg)
    across = rows * np.cos(t) - cols * np.sin(t)
    stripes = np.exp(-0.5 * ((across % 14) - 7) ** 2 / 1.5**2)
    inside = (rows > sup + 4) & (rows < deep - 4)
    img += 70 * stripes * inside
    prob = np.zeros((h, w), np.float32)
    for r in (sup, deep):
        band = np.abs(rows - r) <= 4
        img[band] = 220
        prob[band] = 1.0
    return np.clip(img, 0, 255).astype(np.uint8), prob


@pytest.fixture
def synthetic_muscle():
    """:func:`_synthetic_muscle`: ``(angle_deg, *, h, w, sup, deep, seed) -> (image, prob)``."""
    return _synthetic_muscle
