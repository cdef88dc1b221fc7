"""Fitting, applying, saving and loading one person's calibration profile.

The correction of target ``j`` is affine, ``y = a + b * p`` (``p`` the estimate), fitted by
least squares on the calibration frames with a ridge penalty that pulls the gain towards 1::

    minimise  sum_i (y_i - a - b p_i)^2 + n * lam * (b - 1)^2,   lam = shrinkage * scale^2

    b = (S_py + n lam) / (S_pp + n lam),   a = mean(y) - b mean(p)

with ``S_py``, ``S_pp`` the centred cross- and auto-products and ``scale`` the target's spread
in the population the estimator was trained on. Why more than a free offset and gain: a
passive trial holds activation near zero, so on its frames the estimate hardly varies and a
free gain would be set by noise; the penalty leaves the gain at 1 unless the calibration frames
span enough of the target's range to say otherwise (then ``S_pp >> n lam`` and the fit is plain
least squares). The gain is kept non-negative.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musclestate._atomic import read_json, write_text_atomic
from musclestate.errors import ConfigError, InputError

#: Trial types (recording ``task``) that serve as calibration trials by default.
CALIBRATION_TASKS: tuple[str, ...] = ("rest", "passive_rom", "mvc")

#: Default strength of the pull of the gain towards 1 (fraction of the target's variance).
DEFAULT_SHRINKAGE = 0.1

FORMAT = "musclestate-calibration"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TargetCorrection:
    """``corrected = offset + gain * estimate`` for one target, in the target's unit.

    Attributes:
        offset: additive term (target unit).
        gain: multiplicative term (>= 0).
        n_frames: calibration frames it was fitted on.
    """

    offset: float
    gain: float
    n_frames: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.offset) and math.isfinite(self.gain) and self.gain >= 0):
            raise ConfigError(
                f"a correction needs a finite offset and a finite gain >= 0, got offset "
                f"{self.offset} and gain {self.gain}"
            )

    def apply(self, estimate: np.ndarray) -> np.ndarray:
        """Corrected values, same shape as ``estimate``."""
        return self.offset + self.gain * np.asarray(estimate, dtype=np.float64)


def fit_correction(
    estimate: np.ndarray,
    true: np.ndarray,
    scale: float,
    shrinkage: float = DEFAULT_SHRINKAGE,
) -> TargetCorrection:
    """Fit one target's offset and gain on calibration frames (formula in the module docstring).

    Args:
        estimate: ``(N,)`` the estimator's output on the calibration frames.
        true: ``(N,)`` the measured target on the same frames (NaN frames are skipped).
        scale: the target's spread in the training population (e.g. its SD), target unit.
        shrinkage: strength of the pull of the gain towards 1, as a fraction of ``scale^2``.

    Raises:
        InputError: no frame with both an estimate and a measured value.
        ConfigError: ``scale`` not positive or ``shrinkage`` negative.
    """
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigError(f"the target's scale must be a positive number, got {scale}")
    if not (math.isfinite(shrinkage) and shrinkage >= 0):
        raise ConfigError(f"shrinkage must be >= 0, got {shrinkage}")
    p = np.asarray(estimate, dtype=np.float64).ravel()
    y = np.asarray(true, dtype=np.float64).ravel()
    ok = np.isfinite(p) & np.isfinite(y)
    n = int(ok.sum())
    if n == 0:
        raise InputError("no calibration frame has both an estimate and a measured value")
    p, y = p[ok], y[ok]
    pc, yc = p - p.mean(), y - y.mean()
    lam = n * shrinkage * scale**2
    s_pp = float(pc @ pc)
    gain = (float(pc @ yc) + lam) / (s_pp + lam) if s_pp + lam > 0 else 1.0
    gain = max(gain, 0.0)
    return TargetCorrection(float(y.mean() - gain * p.mean()), float(gain), n)


@dataclass(frozen=True)
class CalibrationProfile:
    """One person's per-target corrections of one estimator.

    Attributes:
        participant: the person's id.
        corrections: target name -> :class:`TargetCorrection`.
        units: target name -> unit.
        trials: the calibration recordings it was fitted on (ids or file names).
        bundle_sha256: SHA-256 of the estimator bundle folder (as prediction sidecars record
            it), or ``None`` (a profile made in cross-validation, for a fold's estimator).
        shrinkage: the gain's pull towards 1 used in the fit.
    """

    participant: str
    corrections: Mapping[str, TargetCorrection]
    units: Mapping[str, str]
    trials: tuple[str, ...] = ()
    bundle_sha256: str | None = None
    shrinkage: float = DEFAULT_SHRINKAGE
    extra: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, estimates: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Corrected copies of ``estimates`` (target name -> array); targets without a
        correction pass unchanged."""
        return {
            k: self.corrections[k].apply(v) if k in self.corrections else np.asarray(v)
            for k, v in estimates.items()
        }

    def check_bundle(self, sha256: str, where: str | Path) -> None:
        """Raise :class:`InputError` if the profile was made for another estimator."""
        if self.bundle_sha256 is not None and self.bundle_sha256 != sha256:
            raise InputError(
                f"this calibration profile of {self.participant!r} was made for the estimator "
                f"{self.bundle_sha256[:12]}..., not {sha256[:12]}...; run "
                "`musclestate calibrate` again with this estimator",
                where,
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "participant": self.participant,
            "bundle_sha256": self.bundle_sha256,
            "shrinkage": self.shrinkage,
            "trials": list(self.trials),
            "targets": {
                k: {
                    "unit": self.units.get(k, ""),
                    "offset": c.offset,
                    "gain": c.gain,
                    "n_frames": c.n_frames,
                }
                for k, c in self.corrections.items()
            },
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str | Path = "<profile>") -> CalibrationProfile:
        """Inverse of :meth:`to_dict`; raises :class:`InputError` naming ``where``."""
        if d.get("format") != FORMAT:
            raise InputError(f"not a musclestate calibration profile (format {d.get('format')!r})",
                             where)  # fmt: skip
        if int(d.get("format_version", 0)) > FORMAT_VERSION:
            raise InputError(
                f"calibration format version {d.get('format_version')} is newer than this "
                f"musclestate reads ({FORMAT_VERSION}); upgrade musclestate",
                where,
            )
        try:
            targets = dict(d["targets"])
            return cls(
                participant=str(d["participant"]),
                corrections={
                    k: TargetCorrection(float(v["offset"]), float(v["gain"]), int(v["n_frames"]))
                    for k, v in targets.items()
                },
                units={k: str(v.get("unit", "")) for k, v in targets.items()},
                trials=tuple(str(t) for t in d.get("trials", ())),
                bundle_sha256=d.get("bundle_sha256"),
                shrinkage=float(d.get("shrinkage", DEFAULT_SHRINKAGE)),
                extra=dict(d.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed calibration profile: {exc}", where) from None

    def save(self, path: str | Path) -> Path:
        """Write the profile as JSON, atomically."""
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=2, allow_nan=False))


def load_profile(path: str | Path) -> CalibrationProfile:
    """Read a profile written by :meth:`CalibrationProfile.save`.

    Raises:
        InputError: missing, unreadable or malformed file (the message names it).
    """
    d = read_json(path, "calibration profile")
    return CalibrationProfile.from_dict(d, path)


def fit_profile(
    participant: str,
    estimates: Mapping[str, np.ndarray],
    true: Mapping[str, np.ndarray],
    scales: Mapping[str, float],
    units: Mapping[str, str],
    *,
    trials: Sequence[str] = (),
    bundle_sha256: str | None = None,
    shrinkage: float = DEFAULT_SHRINKAGE,
) -> CalibrationProfile:
    """Fit every target's correction on one person's calibration frames.

    Args:
        estimates, true: target name -> ``(N,)`` estimate and measured value per calibration
            frame (targets missing from ``true`` are left uncorrected).
        scales: target name -> the target's spread in the training population.
        units: target name -> unit.

    Raises:
        InputError: a target has no usable calibration frame (as :func:`fit_correction`).
    """
    corrections = {}
    for name, est in estimates.items():
        if name not in true:
            continue
        try:
            corrections[name] = fit_correction(est, true[name], float(scales[name]), shrinkage)
        except InputError as exc:
            raise InputError(f"{participant}, target {name!r}: {exc}") from None
    return CalibrationProfile(
        participant=participant,
        corrections=corrections,
        units=dict(units),
        trials=tuple(trials),
        bundle_sha256=bundle_sha256,
        shrinkage=shrinkage,
    )
