"""Repeated frames: screen captures that record faster than the scanner repeat its frames."""

from __future__ import annotations

import numpy as np

from musclestate.errors import InputError


def find_repeated_frames(
    frames: np.ndarray, *, rel_threshold: float = 0.2, window: int = 4
) -> np.ndarray:
    """Flag frames that repeat the previous frame up to compression noise.

    Rule: let ``d[k]`` be the mean absolute grey-level difference between frames ``k`` and
    ``k - 1``. Frame ``k`` is a repeat when ``d[k] == 0``, or when ``d[k]`` is below
    ``rel_threshold`` times the typical change around it, taken as the smaller of the largest
    change among the ``window`` differences before it and the largest among the ``window``
    after it (only one side exists at the ends of a clip). A repeat is a dip with real changes
    on both sides: a screen capture at 61 fps of a 21 fps scanner gives runs of two repeats
    between changes, so each dip has a real change within ``window`` on either side. Smooth
    motion gives neighbouring changes of similar size; tissue that starts or stops moving
    gives small changes on one side only; neither is flagged. A clip that never changes is
    flagged only where frames are identical. The reference is local, not clip-wide, so slow
    and fast parts of a clip are each judged on their own scale. ``window`` must exceed the
    longest run of repeats expected (capture rate / scanner rate).

    On the 25 Drazan et al. (2019) clips, whose scanner ran at the capture rate (61 Hz by the
    dynamometer's frame counter), this flags 1 of 4,000+ frames (see benchmarks/readers.py).

    Args:
        frames: ``(T, H, W)`` uint8.
        rel_threshold: fraction of the local typical change below which a frame is a repeat.
        window: differences looked at on each side.

    Returns:
        ``(T,)`` bool, True where a frame repeats the previous one (frame 0 is never a repeat).
    """
    f = np.asarray(frames)
    if f.ndim != 3:
        raise InputError(f"frames must be (T, H, W), got shape {f.shape}")
    if not 0 < rel_threshold < 1:
        raise InputError(f"rel_threshold must lie in (0, 1), got {rel_threshold}")
    if window < 1:
        raise InputError(f"window must be >= 1, got {window}")
    t = f.shape[0]
    out = np.zeros(t, dtype=bool)
    if t < 2:
        return out
    d = mean_abs_differences(f)
    # Largest change among the `window` differences before / after each one (-inf: none).
    padded = np.pad(d, window, mode="constant", constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(padded, 2 * window + 1)
    before = win[:, :window].max(axis=1)
    after = win[:, window + 1 :].max(axis=1)
    ref = np.minimum(
        np.where(np.isinf(before), after, before), np.where(np.isinf(after), before, after)
    )
    out[1:] = (d == 0) | (d < rel_threshold * ref)
    return out


def mean_abs_differences(frames: np.ndarray) -> np.ndarray:
    """``(T - 1,)`` float64: mean absolute difference between consecutive ``(T, H, W)`` frames.

    Computed pair by pair in uint8 as ``max(a, b) - min(a, b)`` into reused buffers: exact, and
    without the large int16 temporaries of ``abs(diff(frames))`` (several times faster).
    """
    f = np.asarray(frames)
    t = f.shape[0]
    d = np.empty(max(t - 1, 0), dtype=np.float64)
    if t < 2:
        return d
    hi = np.empty(f.shape[1:], dtype=f.dtype)
    lo = np.empty(f.shape[1:], dtype=f.dtype)
    n = hi.size
    for k in range(1, t):
        np.maximum(f[k], f[k - 1], out=hi)
        np.minimum(f[k], f[k - 1], out=lo)
        np.subtract(hi, lo, out=hi)
        d[k - 1] = float(hi.sum(dtype=np.uint64)) / n
    return d
