"""Records that flow through the pipeline: frozen dataclasses that check themselves.

Conventions used everywhere in musclestate:

- frames are ``(T, H, W)`` ``uint8`` greyscale, row 0 at the skin (top of the image);
- times are seconds (``t_s``), strictly increasing;
- ``pixel_spacing_mm`` is ``(row_mm, col_mm)``: depth per row, lateral distance per column;
- ankle angle in degrees, positive = plantarflexion (the dynamometer convention of the real data in
  ``shared/data/drazan2019-mg``; a lab with the opposite sign flips it at import);
- ankle moment in N m, plantarflexion positive; activations in %MVC.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from musclestate.errors import InputError, SignalError

#: The estimation targets musclestate knows, with their units. A dataset may carry a subset.
TARGET_UNITS: Mapping[str, str] = MappingProxyType(
    {
        "ankle_angle": "deg",
        "ankle_moment": "N m",
        "mg_activation": "%MVC",
        "sol_activation": "%MVC",
    }
)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def check_times(t_s: np.ndarray, what: str, source: str | None = None) -> np.ndarray:
    """Return ``t_s`` as float64 after checking it is 1-D, finite and strictly increasing.

    Raises :class:`SignalError` naming the first offending index.
    """
    t = np.asarray(t_s, dtype=np.float64)
    if t.ndim != 1:
        raise SignalError(f"{what}: time stamps must be 1-D, got shape {t.shape}", source)
    bad = ~np.isfinite(t)
    if bad.any():
        raise SignalError(
            f"{what}: {int(bad.sum())} time stamp(s) are NaN/inf, first at index "
            f"{int(np.argmax(bad))}",
            source,
        )
    if t.size > 1:
        d = np.diff(t)
        if (d <= 0).any():
            i = int(np.argmax(d <= 0))
            kind = "duplicate" if d[i] == 0 else "non-monotonic"
            raise SignalError(
                f"{what}: {kind} time stamps at index {i + 1} "
                f"({t[i]:.6g} s then {t[i + 1]:.6g} s); time must strictly increase",
                source,
            )
    return t


@dataclass(frozen=True)
class Signal:
    """One named, unit-carrying time series from a lab device.

    Attributes:
        name: channel name as in the source file (e.g. ``"TOR"``, ``"emg_mg"``).
        t_s: ``(N,)`` float64 sample times in seconds, strictly increasing.
        values: ``(N,)`` float64 samples.
        unit: physical unit, e.g. ``"N m"``, ``"deg"``, ``"V"``, ``"mV"``, ``"%MVC"``.
        source: file the signal was read from (for error messages and provenance).
    """

    name: str
    t_s: np.ndarray
    values: np.ndarray
    unit: str
    source: str = ""

    def __post_init__(self) -> None:
        src = self.source or None
        t = check_times(self.t_s, f"signal {self.name!r}", src)
        v = np.asarray(self.values, dtype=np.float64)
        if v.shape != t.shape:
            raise SignalError(
                f"signal {self.name!r}: {v.shape[0] if v.ndim else 0} samples but "
                f"{t.shape[0]} time stamps",
                src,
            )
        bad = ~np.isfinite(v)
        if bad.any():
            idx = np.flatnonzero(bad)
            raise SignalError(
                f"signal {self.name!r}: {idx.size} NaN/inf sample(s), first at index {idx[0]} "
                f"(t = {t[idx[0]]:.6g} s); clean or interpolate them before import",
                src,
            )
        object.__setattr__(self, "t_s", _readonly(t))
        object.__setattr__(self, "values", _readonly(v))

    @property
    def rate_hz(self) -> float:
        """Median sampling rate in Hz (``nan`` for fewer than two samples)."""
        if self.t_s.size < 2:
            return float("nan")
        return float(1.0 / np.median(np.diff(self.t_s)))

    def __len__(self) -> int:
        return int(self.t_s.size)


@dataclass(frozen=True)
class Target:
    """One per-frame target: values sampled at a recording's frame times.

    Attributes:
        values: ``(T,)`` float64, one per frame.
        unit: unit of the values (see :data:`TARGET_UNITS`).
    """

    values: np.ndarray
    unit: str

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=np.float64)
        if v.ndim != 1:
            raise InputError(f"target values must be 1-D (one per frame), got shape {v.shape}")
        object.__setattr__(self, "values", _readonly(v))


@dataclass(frozen=True)
class RecordingMeta:
    """What a recording is: who, which muscle, which trial, which scanner, where it came from.

    ``spacing_source`` says where ``pixel_spacing_mm`` came from (``"dicom:PixelSpacing"``,
    ``"dicom:SequenceOfUltrasoundRegions"``, ``"user:mm_per_pixel"``, ``"user:depth_mm"``, ...).
    ``extra`` holds anything else worth keeping (JSON-serialisable values only).
    """

    participant: str
    trial: str
    muscle: str = "gastrocnemius_medialis"
    side: str = "unknown"
    knee_angle_deg: float | None = None
    scanner: str = ""
    task: str = ""
    source: str = ""
    spacing_source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not str(self.participant).strip():
            raise InputError("participant id must be a non-empty string")
        if not str(self.trial).strip():
            raise InputError(f"participant {self.participant!r}: trial id must be non-empty")
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON manifests and sidecars (``extra`` as a plain dict)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["extra"] = dict(self.extra)
        return d


@dataclass(frozen=True)
class Recording:
    """One ultrasound video with its frame times, spacing, lab signals and per-frame targets.

    Attributes:
        frames: ``(T, H, W)`` uint8, row 0 at the skin.
        t_s: ``(T,)`` float64 frame times in seconds on the signals' clock, strictly increasing.
        pixel_spacing_mm: ``(row_mm, col_mm)``; ``None`` where unknown (then distances are in px).
        meta: who/what/where, see :class:`RecordingMeta`.
        signals: raw lab signals by name (any rate), as read from disk.
        targets: per-frame targets by name (``TARGET_UNITS`` names), each ``(T,)`` long.
    """

    frames: np.ndarray
    t_s: np.ndarray
    pixel_spacing_mm: tuple[float, float] | None
    meta: RecordingMeta
    signals: Mapping[str, Signal] = field(default_factory=dict)
    targets: Mapping[str, Target] = field(default_factory=dict)

    def __post_init__(self) -> None:
        src = self.meta.source or None
        f = np.asarray(self.frames)
        if f.ndim != 3:
            raise InputError(f"frames must be (T, H, W), got shape {f.shape}", src)
        if f.dtype != np.uint8:
            raise InputError(f"frames must be uint8, got {f.dtype}", src)
        if f.shape[0] == 0:
            raise InputError("recording has zero frames", src)
        t = check_times(self.t_s, "frame times", src)
        if t.shape[0] != f.shape[0]:
            raise InputError(f"{f.shape[0]} frames but {t.shape[0]} frame times", src)
        if self.pixel_spacing_mm is not None:
            sp = tuple(float(s) for s in self.pixel_spacing_mm)
            if len(sp) != 2 or not all(np.isfinite(s) and s > 0 for s in sp):
                raise InputError(
                    f"pixel_spacing_mm must be two positive numbers (row_mm, col_mm), "
                    f"got {self.pixel_spacing_mm!r}",
                    src,
                )
            object.__setattr__(self, "pixel_spacing_mm", sp)
        for name, tg in self.targets.items():
            if tg.values.shape[0] != f.shape[0]:
                raise InputError(
                    f"target {name!r} has {tg.values.shape[0]} values for {f.shape[0]} frames", src
                )
        object.__setattr__(self, "frames", _readonly(f))
        object.__setattr__(self, "t_s", _readonly(t))
        object.__setattr__(self, "signals", MappingProxyType(dict(self.signals)))
        object.__setattr__(self, "targets", MappingProxyType(dict(self.targets)))

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int]:
        return (int(self.frames.shape[1]), int(self.frames.shape[2]))

    @property
    def fps(self) -> float:
        """Median frame rate in frames per second."""
        if self.t_s.size < 2:
            return float("nan")
        return float(1.0 / np.median(np.diff(self.t_s)))

    def replace(self, **changes: Any) -> Recording:
        """A copy with some fields changed (records are frozen)."""
        return dataclasses.replace(self, **changes)
