"""EMG envelope, MVC peak and %MVC on synthetic EMG of known envelope."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from musclestate.errors import ConfigError, SignalError
from musclestate.signals import emg

FS = 2000.0


def synthetic_emg(envelope: np.ndarray, seed: int = 0) -> np.ndarray:
    """Unit-variance band-limited (30-400 Hz) Gaussian noise modulated by ``envelope``."""
    rng = np.random.default_rng(seed)
    sos = sps.butter(4, (30, 400), btype="bandpass", fs=FS, output="sos")
    carrier = sps.sosfiltfilt(sos, rng.standard_normal(envelope.size))
    return envelope * carrier / carrier.std()


@pytest.mark.slow
def test_envelope_recovers_known_envelope_without_lag() -> None:
    t = np.arange(0, 10, 1 / FS)
    a = 1.0 + 0.8 * np.sin(2 * np.pi * 0.5 * t)  # known amplitude, peaks at 0.5 s + k * 2 s
    raw = synthetic_emg(a) + 3.0 * np.sin(2 * np.pi * 2 * t)  # plus 2 Hz movement artefact
    env = emg.envelope(raw, FS, lowpass_hz=3.0)
    expected = a * np.sqrt(2 / np.pi)  # mean of |N(0, a^2)|
    core = slice(int(FS), -int(FS))  # away from filter edges
    rel = np.abs(env[core] - expected[core]) / expected[core]
    assert np.median(rel) < 0.08
    assert np.corrcoef(env[core], expected[core])[0, 1] > 0.97
    # zero phase: cross-correlation peaks at lag 0 (within 5 ms)
    e = env[core] - env[core].mean()
    x = expected[core] - expected[core].mean()
    lags = np.arange(-100, 101)
    cc = [np.dot(e[100:-100], np.roll(x, k)[100:-100]) for k in lags]
    assert abs(lags[int(np.argmax(cc))]) <= int(0.005 * FS)


def test_envelope_is_nonnegative_and_rejects_bad_input() -> None:
    raw = synthetic_emg(np.ones(4000))
    assert emg.envelope(raw, FS).min() >= 0
    with pytest.raises(ConfigError, match="fs/2"):
        emg.envelope(raw, 800.0)  # 450 Hz above Nyquist
    bad = raw.copy()
    bad[[10, 20]] = np.nan
    with pytest.raises(SignalError, match=r"2 NaN/inf sample.*index 10"):
        emg.envelope(bad, FS)
    with pytest.raises(SignalError, match="too short"):
        emg.envelope(raw[:20], FS)


@pytest.mark.parametrize(("level", "window_s"), [(2.0, 0.5), (0.3, 1.0)])
def test_mvc_peak_is_windowed_plateau_and_ignores_spike(level: float, window_s: float) -> None:
    env = np.full(int(5 * FS), 0.1)
    env[int(2 * FS) : int(3.5 * FS)] = level  # 1.5 s plateau
    env[100] = 50.0  # one-sample spike must not set the reference
    assert emg.mvc_peak(env, FS, window_s=window_s) == pytest.approx(level)


def test_normalise_to_mvc() -> None:
    np.testing.assert_allclose(
        emg.normalise_to_mvc(np.array([0.0, 0.21, 0.42]), 0.42), [0, 50, 100]
    )
    with pytest.raises(ConfigError, match="positive"):
        emg.normalise_to_mvc(np.ones(3), 0.0)


def test_mvc_trial_too_short() -> None:
    with pytest.raises(SignalError, match="too short"):
        emg.mvc_peak(np.ones(10), FS, window_s=0.5)
