"""Frame times from offset, trigger and index map; resampling signals onto frame times."""

from __future__ import annotations

import numpy as np
import pytest

from musclestate.errors import ConfigError, SignalError
from musclestate.records import Signal
from musclestate.signals import sync

DAQ_HZ = 1000.0


def pulse_train(frame_t: np.ndarray, duration_s: float, width_s: float = 0.004) -> Signal:
    """A 0/5 V DAQ channel with one pulse starting at each of ``frame_t``."""
    t = np.arange(0, duration_s, 1 / DAQ_HZ)
    v = np.zeros_like(t)
    for ft in frame_t:
        v[(t >= ft) & (t < ft + width_s)] = 5.0
    return Signal("sync", t, v, "V", "daq.csv")


def test_offset() -> None:
    np.testing.assert_allclose(
        sync.frame_times_from_offset(np.array([0, 0.04, 0.08]), 1.5), [1.5, 1.54, 1.58]
    )
    with pytest.raises(SignalError, match="duplicate"):
        sync.frame_times_from_offset(np.array([0, 0.04, 0.04]), 0)


def test_trigger_frames_recovers_frame_times() -> None:
    frame_t = 0.5123 + np.arange(40) / 25.0  # 25 fps, first frame between DAQ samples
    trig = pulse_train(frame_t, 3.0)
    got = sync.frame_times_from_trigger(trig, 40, edges="frames")
    # edges sit on the first sample at/after the pulse start: within one DAQ sample
    assert np.all(np.abs(got - frame_t) <= 1 / DAQ_HZ)


def test_trigger_start_uses_video_clock() -> None:
    video_t = np.arange(30) / 30.0
    trig = pulse_train(np.array([1.25]), 3.0)
    got = sync.frame_times_from_trigger(trig, 30, edges="start", video_t_s=video_t)
    np.testing.assert_allclose(got, 1.25 + video_t, atol=1 / DAQ_HZ)
    with pytest.raises(ConfigError, match="video_t_s"):
        sync.frame_times_from_trigger(trig, 30, edges="start")


def test_trigger_count_mismatch_and_flat_channel() -> None:
    trig = pulse_train(np.arange(10) / 25.0 + 0.1, 1.0)
    with pytest.raises(SignalError, match="10 rising edges but the video has 12 frames"):
        sync.frame_times_from_trigger(trig, 12)
    flat = Signal("sync", np.arange(100) / DAQ_HZ, np.zeros(100), "V", "daq.csv")
    with pytest.raises(SignalError, match="flat"):
        sync.frame_times_from_trigger(flat, 3)


def test_index_map_one_based_uint8() -> None:
    t = 5.13 + np.arange(20) * 0.01
    idx = np.array([1, 3, 5, 6, 8], dtype=np.uint8)  # MATLAB indices stored as uint8
    np.testing.assert_array_equal(sync.frame_times_from_index(idx, t, base=1), t[[0, 2, 4, 5, 7]])
    np.testing.assert_array_equal(sync.frame_times_from_index(idx, t), t[[1, 3, 5, 6, 8]])
    with pytest.raises(SignalError, match="frames outside the signals"):
        sync.frame_times_from_index(np.array([1, 21]), t, base=1)
    with pytest.raises(SignalError, match="duplicate"):
        sync.frame_times_from_index(np.array([1, 1, 2]), t)
    with pytest.raises(SignalError, match="non-integer"):
        sync.frame_times_from_index(np.array([1.5, 2.0]), t)


def test_resample_interp_exact_at_samples_and_linear_between() -> None:
    t = np.arange(0, 2, 0.01)
    angle = Signal("angle", t, 10 * t, "deg")
    ft = np.array([0.0, 0.015, 0.5, 1.99])
    np.testing.assert_allclose(sync.resample_to_frames(angle, ft), 10 * ft, atol=1e-12)


def test_resample_emg_envelope_then_sample() -> None:
    rng = np.random.default_rng(1)
    fs = 2000.0
    t = np.arange(0, 6, 1 / fs)
    amp = np.where((t > 2) & (t < 4), 1.0, 0.1)
    raw = Signal("emg_mg", t, amp * rng.standard_normal(t.size), "mV")
    ft = np.arange(0.5, 5.5, 1 / 25)
    got = sync.resample_to_frames(raw, ft, kind="emg")
    on = (ft > 2.5) & (ft < 3.5)
    off = (ft < 1.5) | (ft > 4.5)
    assert got.shape == ft.shape
    assert got[on].mean() > 5 * got[off].mean()


def test_signal_shorter_than_video_is_an_error() -> None:
    t = np.arange(0, 1, 0.01)
    sig = Signal("moment", t, np.ones_like(t), "N m", "dyn.csv")
    with pytest.raises(SignalError, match=r"dyn.csv.*shorter than the video"):
        sync.resample_to_frames(sig, np.arange(0, 2, 0.04))
    with pytest.raises(ConfigError, match="unknown resampling kind"):
        sync.resample_to_frames(sig, np.arange(0, 0.5, 0.04), kind="cubic")
