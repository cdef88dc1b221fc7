"""End to end through the lab import path: a phantom cohort's raw files -> manifest import ->
per-frame targets that agree with the phantom's ground truth (truth.csv beside each trial)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from musclestate.dataset import import_manifest, open_dataset


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from musclestate.phantom import simulate_cohort

    root = tmp_path_factory.mktemp("phantom")
    manifest = simulate_cohort(root / "raw", participants=2, seconds=4.0, fps=15.0, size=(64, 64))
    return root / "raw", import_manifest(manifest, root / "ds")


def truth(path: Path) -> dict[str, np.ndarray]:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


@pytest.mark.slow
def test_targets_agree_with_phantom_truth(imported: tuple[Path, Path]) -> None:
    raw, out = imported
    ds = open_dataset(out)
    assert len(ds.participants) == 2
    # every trial is imported; rest and MVC trials serve as calibration recordings
    assert {r.meta["task"] for r in ds.recordings} == {"tracking", "mvc", "passive_rom"}
    tracking = [r for r in ds.recordings if r.meta["task"] == "tracking"]
    assert tracking
    for info in ds.recordings:
        tr = truth(raw / info.participant / info.trial / "truth.csv")
        tg = ds.targets(info.id)
        # trigger edges between DAQ samples (1 kHz): within one sample of the truth; angle and
        # moment differ from the truth only by the phantom DAQ's measurement noise
        np.testing.assert_allclose(ds.frame_times(info.id), tr["time_s"], atol=1e-3)
        np.testing.assert_allclose(tg["ankle_angle"], tr["ankle_angle [deg]"], atol=0.3)
        np.testing.assert_allclose(tg["ankle_moment"], tr["ankle_moment [N m]"], atol=1.5)
    for info in tracking:
        tr = truth(raw / info.participant / info.trial / "truth.csv")
        tg = ds.targets(info.id)
        for m in ("mg", "sol"):
            act = tr[f"{m}_activation [1]"]
            emg = tg[f"{m}_activation"]
            assert np.corrcoef(act, emg)[0, 1] > 0.9
            # %MVC against the phantom's MVC trial at full activation: about 100 x activation
            # (over frames above 10 % activation, where baseline noise and smoothing do not
            # dominate the ratio)
            on = act > 0.1
            assert on.sum() >= 10
            assert 80 < np.median(emg[on] / act[on]) < 125
