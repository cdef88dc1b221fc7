"""Surface EMG processing: band-pass, full-wave rectification, low-pass envelope, %MVC.

Follows the SENIAM recommendations (Hermens et al. 2000, "Development of recommendations for SEMG
sensors and sensor placement procedures", J Electromyogr Kinesiol 10:361-374) and the processing
chain of De Luca (1997), "The use of surface electromyography in biomechanics", J Appl Biomech
13:135-163: band-pass about 20-450 Hz to remove movement artefact and high-frequency noise,
full-wave rectify, then low-pass at 3-10 Hz for the linear envelope. All filters here are
Butterworth filters applied forwards and backwards (``scipy.signal.sosfiltfilt``) so the envelope
has no phase lag relative to the ultrasound frames it is aligned with.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import signal as sps

from musclestate.errors import ConfigError, SignalError

log = logging.getLogger(__name__)


def _check_raw(raw: np.ndarray, fs_hz: float) -> np.ndarray:
    x = np.asarray(raw, dtype=np.float64)
    if x.ndim != 1:
        raise SignalError(f"EMG must be 1-D (one channel), got shape {x.shape}")
    if not (np.isfinite(fs_hz) and fs_hz > 0):
        raise ConfigError(f"EMG sampling rate must be a positive number of Hz, got {fs_hz!r}")
    bad = ~np.isfinite(x)
    if bad.any():
        raise SignalError(
            f"EMG has {int(bad.sum())} NaN/inf sample(s), first at index {int(np.argmax(bad))}"
        )
    return x


def _sosfiltfilt(sos: np.ndarray, x: np.ndarray, what: str) -> np.ndarray:
    # sosfiltfilt pads by 3 * (2 * n_sections + 1) samples; shorter input cannot be filtered.
    padlen = 3 * (2 * sos.shape[0] + 1)
    if x.size <= padlen:
        raise SignalError(
            f"EMG too short for the {what} filter: {x.size} samples, need more than {padlen}"
        )
    return sps.sosfiltfilt(sos, x)


def envelope(
    raw: np.ndarray,
    fs_hz: float,
    band: tuple[float, float] = (20.0, 450.0),
    lowpass_hz: float = 6.0,
    order: int = 4,
) -> np.ndarray:
    """Linear envelope of raw surface EMG, zero-phase (SENIAM chain).

    Steps: remove the mean, Butterworth band-pass ``band`` (order ``order`` per edge), full-wave
    rectification, Butterworth low-pass at ``lowpass_hz`` (order ``order``), each applied forwards
    and backwards so the envelope is not delayed. Small negative values that the zero-phase
    low-pass can leave near sharp onsets are clipped to 0.

    Args:
        raw: ``(N,)`` raw EMG in any unit (V, mV, ...), sampled at ``fs_hz``.
        fs_hz: sampling rate in Hz; the band's upper edge must lie below ``fs_hz / 2``.
        band: band-pass edges in Hz, ``(low, high)``.
        lowpass_hz: envelope cut-off in Hz (SENIAM: 3-10 Hz).
        order: Butterworth order.

    Returns:
        ``(N,)`` float64 envelope in the unit of ``raw``. For zero-mean Gaussian EMG of standard
        deviation ``s`` the envelope is about ``s * sqrt(2 / pi)``.
    """
    x = _check_raw(raw, fs_hz)
    lo, hi = (float(b) for b in band)
    nyq = fs_hz / 2.0
    if not (0 < lo < hi < nyq):
        raise ConfigError(
            f"EMG band-pass {band!r} Hz must satisfy 0 < low < high < fs/2 = {nyq:g} Hz; "
            f"record EMG faster or lower the band's upper edge"
        )
    if not (0 < lowpass_hz < nyq):
        raise ConfigError(f"EMG low-pass {lowpass_hz!r} Hz must lie in (0, {nyq:g}) Hz")
    if int(order) < 1:
        raise ConfigError(f"filter order must be >= 1, got {order!r}")
    bp = sps.butter(int(order), (lo, hi), btype="bandpass", fs=fs_hz, output="sos")
    lp = sps.butter(int(order), lowpass_hz, btype="lowpass", fs=fs_hz, output="sos")
    filtered = _sosfiltfilt(bp, x - x.mean(), "band-pass")
    env = _sosfiltfilt(lp, np.abs(filtered), "low-pass")
    return np.maximum(env, 0.0)


def mvc_peak(envelope: np.ndarray, fs_hz: float, window_s: float = 0.5) -> float:
    """Peak of the envelope averaged over a sliding window (the MVC reference).

    The maximum of a ``window_s`` moving average, not the single largest sample, so one spike does
    not set the reference (common practice for MVC normalisation, e.g. Burden 2010, J Electromyogr
    Kinesiol 20:1023-1035).

    Args:
        envelope: ``(N,)`` EMG envelope (see :func:`envelope`) from an MVC trial.
        fs_hz: sampling rate in Hz.
        window_s: averaging window in seconds.

    Returns:
        The peak windowed mean, in the envelope's unit; strictly positive.
    """
    env = _check_raw(envelope, fs_hz)
    if not (np.isfinite(window_s) and window_s > 0):
        raise ConfigError(f"MVC window must be a positive number of seconds, got {window_s!r}")
    n = max(1, round(window_s * fs_hz))
    if env.size < n:
        raise SignalError(
            f"MVC trial too short: {env.size / fs_hz:.3g} s of EMG for a {window_s:g} s window"
        )
    # 'valid' moving average by cumulative sums: no padding, so the edges cannot invent a peak.
    c = np.concatenate(([0.0], np.cumsum(env)))
    valid = (c[n:] - c[:-n]) / n
    peak = float(valid.max())
    if not peak > 0:
        raise SignalError("MVC envelope is zero everywhere; is this the right EMG channel?")
    return peak


def normalise_to_mvc(env: np.ndarray, mvc: float) -> np.ndarray:
    """Express an envelope as a percentage of the MVC reference: ``100 * env / mvc`` (%MVC).

    Args:
        env: envelope, any shape, same unit as ``mvc``.
        mvc: MVC reference (e.g. from :func:`mvc_peak`), strictly positive.
    """
    m = float(mvc)
    if not (np.isfinite(m) and m > 0):
        raise ConfigError(f"MVC reference must be a positive finite number, got {mvc!r}")
    return 100.0 * np.asarray(env, dtype=np.float64) / m
