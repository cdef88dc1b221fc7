"""Putting ultrasound frames on the lab signals' clock, and sampling signals at frame times.

Three ways to find each frame's time on the data-acquisition (DAQ) clock:

- a constant offset between the video's own time stamps and the DAQ clock
  (:func:`frame_times_from_offset`);
- a trigger channel recorded by the DAQ: one rising edge per frame, or one start pulse at the first
  frame (:func:`frame_times_from_trigger`);
- an explicit frame -> sample index map, as in Drazan et al. (2019), whose ``frameInds`` are
  1-based MATLAB indices (:func:`frame_times_from_index`).

Then :func:`resample_to_frames` gives one value per frame: linear interpolation for slow signals
(angle, moment); for EMG the envelope is computed first at the raw rate, then sampled, because
sampling raw EMG at 20-80 fps would alias it into noise.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from musclestate.errors import ConfigError, SignalError
from musclestate.records import Signal, check_times
from musclestate.signals import emg

log = logging.getLogger(__name__)


def frame_times_from_offset(video_t_s: np.ndarray, offset_s: float) -> np.ndarray:
    """Frame times on the DAQ clock: ``video_t_s + offset_s``.

    Args:
        video_t_s: ``(T,)`` frame times from the video container, seconds.
        offset_s: DAQ time of the video's time zero, seconds.

    Returns:
        ``(T,)`` float64 frame times in seconds on the DAQ clock.
    """
    t = check_times(video_t_s, "video frame times")
    off = float(offset_s)
    if not np.isfinite(off):
        raise ConfigError(f"sync offset must be a finite number of seconds, got {offset_s!r}")
    return t + off


def rising_edges(signal: Signal, threshold: float | None = None) -> np.ndarray:
    """Times (s) where ``signal`` crosses ``threshold`` upwards, interpolated between samples.

    ``threshold=None`` takes the midpoint between the channel's minimum and maximum. A channel
    already above the threshold at its first sample does not count as an edge there. For a
    square pulse the interpolated edge lies halfway between the last low and the first high
    sample, which is unbiased when the true edge may fall anywhere between them (error at most
    half a sample period).
    """
    v = signal.values
    lo, hi = float(v.min()), float(v.max())
    if threshold is None:
        if hi - lo <= 1e-12 * max(1.0, abs(hi)):
            raise SignalError(
                f"trigger channel {signal.name!r} is flat ({lo:g}); no pulses to find",
                signal.source or None,
            )
        thr = 0.5 * (lo + hi)
    else:
        thr = float(threshold)
    i = np.flatnonzero((v[:-1] < thr) & (v[1:] >= thr))
    # Sub-sample edge time by linear interpolation between the samples either side.
    frac = (thr - v[i]) / (v[i + 1] - v[i])
    t = signal.t_s
    return t[i] + frac * (t[i + 1] - t[i])


def frame_times_from_trigger(
    signal: Signal,
    n_frames: int,
    *,
    edges: Literal["frames", "start"] = "frames",
    threshold: float | None = None,
    video_t_s: np.ndarray | None = None,
) -> np.ndarray:
    """Frame times from a trigger channel recorded on the DAQ clock.

    Args:
        signal: the trigger channel.
        n_frames: number of frames in the video.
        edges: ``"frames"``: one rising edge per frame (frame k at edge k; the counts must
            agree); ``"start"``: the first rising edge marks the first frame, and the video's own
            time stamps (``video_t_s``, required) give the rest.
        threshold: edge threshold in the channel's unit; ``None`` = midpoint of min and max.
        video_t_s: ``(n_frames,)`` container time stamps, needed for ``edges="start"``.

    Returns:
        ``(n_frames,)`` float64 frame times in seconds on the DAQ clock.
    """
    src = signal.source or None
    ts = rising_edges(signal, threshold)
    if edges == "frames":
        if ts.size != n_frames:
            raise SignalError(
                f"trigger channel {signal.name!r} has {ts.size} rising edges but the video has "
                f"{n_frames} frames; check the channel, the threshold, or use edges='start'",
                src,
            )
        return check_times(ts, f"trigger {signal.name!r} edge times", src)
    if edges == "start":
        if video_t_s is None:
            raise ConfigError("edges='start' needs the video's frame times (video_t_s)")
        vt = check_times(video_t_s, "video frame times")
        if vt.size != n_frames:
            raise SignalError(f"{vt.size} video time stamps for {n_frames} frames", src)
        if ts.size == 0:
            raise SignalError(f"trigger channel {signal.name!r} has no rising edge", src)
        if ts.size > 1:
            log.info("trigger %r: %d rising edges, using the first as start", signal.name, ts.size)
        return ts[0] + (vt - vt[0])
    raise ConfigError(f"unknown trigger edges {edges!r}; use 'frames' or 'start'")


def frame_times_from_index(
    sample_index: np.ndarray, signal_t_s: np.ndarray, *, base: int = 0
) -> np.ndarray:
    """Frame times from an explicit frame -> sample index map.

    Args:
        sample_index: ``(T,)`` integer index of each frame's sample in ``signal_t_s``.
        signal_t_s: ``(N,)`` sample times of the signals, seconds.
        base: ``0`` for Python indices, ``1`` for MATLAB indices (Drazan et al. 2019 ``frameInds``).

    Returns:
        ``(T,)`` float64: ``signal_t_s[sample_index - base]``.
    """
    if base not in (0, 1):
        raise ConfigError(f"index base must be 0 or 1, got {base!r}")
    t = check_times(signal_t_s, "signal time stamps")
    raw = np.asarray(sample_index)
    if raw.ndim != 1 or raw.size == 0:
        raise SignalError(f"frame -> sample index map must be 1-D and non-empty, got {raw.shape}")
    if not np.issubdtype(raw.dtype, np.integer):
        if not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
            raise SignalError("frame -> sample index map holds non-integer values")
    # Cast before subtracting: MATLAB files often store indices as uint8/uint16.
    idx = raw.astype(np.int64) - base
    out = (idx < 0) | (idx >= t.size)
    if out.any():
        k = int(np.argmax(out))
        raise SignalError(
            f"frame {k} maps to sample {int(raw[k])} ({base}-based) but the signals have "
            f"{t.size} samples; frames outside the signals (is the index base right?)"
        )
    return check_times(t[idx], "frame times from the index map")


def resample_to_frames(
    signal: Signal,
    frame_t_s: np.ndarray,
    kind: Literal["interp", "emg"] = "interp",
    *,
    band: tuple[float, float] = (20.0, 450.0),
    lowpass_hz: float = 6.0,
    order: int = 4,
) -> np.ndarray:
    """One value of ``signal`` per frame.

    Args:
        signal: any lab signal on the DAQ clock.
        frame_t_s: ``(T,)`` frame times on the same clock, seconds.
        kind: ``"interp"``: linear interpolation (angle, moment); ``"emg"``: the EMG envelope
            (:func:`musclestate.signals.emg.envelope` with ``band``, ``lowpass_hz``, ``order``) at
            the raw rate (the signal is taken as uniformly sampled at its median rate), then
            interpolated at the frame times.

    Returns:
        ``(T,)`` float64 in the signal's unit.

    Raises:
        SignalError: when the frames run outside the signal by more than half a sample period
            (signals shorter than the video).
    """
    ft = check_times(frame_t_s, "frame times")
    st = signal.t_s
    if st.size < 2:
        raise SignalError(f"signal {signal.name!r} has {st.size} sample(s)", signal.source or None)
    tol = 0.5 / signal.rate_hz
    if ft[0] < st[0] - tol or ft[-1] > st[-1] + tol:
        raise SignalError(
            f"signal {signal.name!r} covers {st[0]:.6g}-{st[-1]:.6g} s but the frames need "
            f"{ft[0]:.6g}-{ft[-1]:.6g} s: the signals are shorter than the video (check the sync)",
            signal.source or None,
        )
    if kind == "interp":
        v = signal.values
    elif kind == "emg":
        v = emg.envelope(
            signal.values, signal.rate_hz, band=band, lowpass_hz=lowpass_hz, order=order
        )
    else:
        raise ConfigError(f"unknown resampling kind {kind!r}; use 'interp' or 'emg'")
    # Within the half-sample tolerance np.interp holds the edge value.
    return np.interp(ft, st, v)
