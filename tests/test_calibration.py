"""Per-participant calibration: the offset-and-gain fit, the profile file, and its checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from musclestate.calibration import (
    CalibrationProfile,
    TargetCorrection,
    fit_correction,
    fit_profile,
    load_profile,
)
from musclestate.errors import ConfigError, InputError


def test_a_wide_calibration_recovers_offset_and_gain() -> None:
    rng = np.random.default_rng(0)
    est = rng.uniform(0, 100, 400)
    true = 5.0 + 0.6 * est + rng.normal(0, 1, est.size)
    c = fit_correction(est, true, scale=30.0, shrinkage=0.01)
    assert c.gain == pytest.approx(0.6, abs=0.02)
    assert c.offset == pytest.approx(5.0, abs=1.0)
    assert c.n_frames == 400
    np.testing.assert_allclose(c.apply(est), c.offset + c.gain * est)


def test_a_narrow_calibration_corrects_the_offset_and_leaves_the_gain_near_one() -> None:
    # a passive trial: activation near zero, the estimate wanders by noise only
    rng = np.random.default_rng(1)
    est = 8.0 + rng.normal(0, 1, 300)
    true = rng.normal(0.5, 0.3, 300)
    c = fit_correction(est, true, scale=20.0)
    assert c.gain == pytest.approx(1.0, abs=0.05)
    assert c.apply(np.array([8.0]))[0] == pytest.approx(0.5, abs=0.3)
    free = fit_correction(est, true, scale=20.0, shrinkage=0.0)
    assert free.gain < 0.2  # without the pull, noise sets the gain


def test_nan_frames_are_skipped_and_an_empty_fit_is_refused() -> None:
    est = np.array([1.0, 2.0, np.nan, 4.0])
    true = np.array([2.0, np.nan, 3.0, 8.0])
    assert fit_correction(est, true, scale=1.0).n_frames == 2
    with pytest.raises(InputError, match="no calibration frame"):
        fit_correction(np.array([np.nan]), np.array([1.0]), scale=1.0)
    with pytest.raises(ConfigError, match="scale"):
        fit_correction(est, true, scale=0.0)
    with pytest.raises(ConfigError, match="gain"):
        TargetCorrection(0.0, -1.0, 3)


def test_profile_round_trip_and_checks(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    est = {"ankle_angle": rng.uniform(-20, 20, 50), "mg_activation": rng.uniform(0, 50, 50)}
    true = {"ankle_angle": est["ankle_angle"] + 3.0, "mg_activation": 2.0 * est["mg_activation"]}
    prof = fit_profile("P07", est, true, {"ankle_angle": 10.0, "mg_activation": 20.0},
                       {"ankle_angle": "deg", "mg_activation": "%MVC"}, trials=["P07-rom"],
                       bundle_sha256="ab" * 32, shrinkage=0.0)  # fmt: skip
    out = prof.save(tmp_path / "p07.json")
    back = load_profile(out)
    assert back == prof
    fixed = back.apply(est | {"sol_activation": np.ones(50)})
    np.testing.assert_allclose(fixed["ankle_angle"], true["ankle_angle"], atol=1e-9)
    np.testing.assert_allclose(fixed["mg_activation"], true["mg_activation"], atol=1e-9)
    np.testing.assert_array_equal(fixed["sol_activation"], np.ones(50))  # no correction: as is
    back.check_bundle("ab" * 32, out)
    with pytest.raises(InputError, match="calibrate` again"):
        back.check_bundle("cd" * 32, out)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{", "cannot read"),
        ("[]", "JSON object"),
        ('{"format": "other"}', "not a musclestate calibration profile"),
        ('{"format": "musclestate-calibration", "format_version": 99}', "newer"),
        ('{"format": "musclestate-calibration", "participant": "P1"}', "malformed"),
    ],
)
def test_bad_profiles_are_refused_naming_the_file(tmp_path: Path, content: str, match: str):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError, match=match) as err:
        load_profile(path)
    assert str(path) in str(err.value)
    with pytest.raises(InputError, match="not found"):
        load_profile(tmp_path / "missing.json")
    assert json.loads(CalibrationProfile("P", {}, {}).save(tmp_path / "ok.json").read_text())
