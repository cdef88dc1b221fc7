"""Evaluation metrics as pure functions, per participant, as DESIGN.md section 5 asks.

All functions take 1-D arrays of the true and predicted values of one participant's frames
(frames where either is NaN are ignored) and return a float (``nan`` when undefined, e.g. R^2
when the true values are constant, Pearson r when either side is constant).

- :func:`compute_r2`: coefficient of determination ``1 - SSE / SST``, SST about the
  participant's own mean (so predicting that participant's mean gives 0; the training mean
  usually gives less than 0).
- :func:`compute_pearson_r`: Pearson correlation coefficient.
- :func:`compute_rmse`: root mean squared error, in the target's unit.
- :func:`compute_nrmse`: RMSE divided by the range (max - min) of the true values.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: Fractions of a Gaussian within 1 and 2 SD, the ideal calibration figures.
GAUSS_WITHIN_1SD = 0.6826894921370859
GAUSS_WITHIN_2SD = 0.9544997361036416


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    ok = np.isfinite(t) & np.isfinite(p)
    return t[ok], p[ok]


def compute_r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """``1 - sum((t - p)^2) / sum((t - mean(t))^2)``; ``nan`` for constant or empty ``t``."""
    t, p = _pair(y_true, y_pred)
    if t.size == 0:
        return float("nan")
    sst = float(np.sum((t - t.mean()) ** 2))
    if sst <= 0:
        return float("nan")
    return 1.0 - float(np.sum((t - p) ** 2)) / sst


def compute_pearson_r(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Pearson correlation; ``nan`` when either side is constant or fewer than 2 values."""
    t, p = _pair(y_true, y_pred)
    if t.size < 2:
        return float("nan")
    dt, dp = t - t.mean(), p - p.mean()
    den = float(np.sqrt(np.sum(dt**2) * np.sum(dp**2)))
    if den <= 0:
        return float("nan")
    return float(np.clip(np.sum(dt * dp) / den, -1.0, 1.0))


def compute_rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """``sqrt(mean((t - p)^2))`` in the target's unit; ``nan`` when empty."""
    t, p = _pair(y_true, y_pred)
    if t.size == 0:
        return float("nan")
    return float(np.sqrt(np.mean((t - p) ** 2)))


def compute_nrmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """RMSE / (max(t) - min(t)); ``nan`` for constant or empty ``t``."""
    t, p = _pair(y_true, y_pred)
    if t.size == 0:
        return float("nan")
    rng = float(t.max() - t.min())
    if rng <= 0:
        return float("nan")
    return compute_rmse(t, p) / rng


def participant_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """``{"r2", "r", "rmse", "nrmse"}`` of one participant and one target."""
    return {
        "r2": compute_r2(y_true, y_pred),
        "r": compute_pearson_r(y_true, y_pred),
        "rmse": compute_rmse(y_true, y_pred),
        "nrmse": compute_nrmse(y_true, y_pred),
    }


def summarise(
    per_participant: Mapping[str, Mapping[str, Mapping[str, float]]], targets: list[str]
) -> dict[str, dict[str, float]]:
    """Mean and SD across participants: ``{NAME: {"r2_mean", "r2_sd", "r_mean", "rmse_mean",
    "nrmse_mean", "r2_median", "n_participants"}}`` (NaN entries ignored; SD with ddof=1)."""

    def col(name: str, key: str) -> np.ndarray:
        v = np.array([per_participant[p][name][key] for p in per_participant], dtype=np.float64)
        return v[np.isfinite(v)]

    def mean(v: np.ndarray) -> float:
        return float(v.mean()) if v.size else float("nan")

    out: dict[str, dict[str, float]] = {}
    for name in targets:
        r2 = col(name, "r2")
        out[name] = {
            "r2_mean": mean(r2),
            "r2_sd": float(r2.std(ddof=1)) if r2.size > 1 else float("nan"),
            "r2_median": float(np.median(r2)) if r2.size else float("nan"),
            "r_mean": mean(col(name, "r")),
            "rmse_mean": mean(col(name, "rmse")),
            "nrmse_mean": mean(col(name, "nrmse")),
            "n_participants": len(per_participant),
        }
    return out


def calibration(y_true: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> dict[str, float]:
    """How well a predicted SD matches the actual error (all frames of held-out participants).

    Returns ``within_1sd`` / ``within_2sd`` (fractions of frames with ``|error| <= k sd``; a
    calibrated Gaussian gives 0.683 / 0.954), ``abs_error_sd_r`` (Pearson r of ``|error|`` with
    ``sd``: > 0 means the spread tells good frames from bad ones), ``mean_sd`` and ``rmse``.
    """
    t = np.asarray(y_true, dtype=np.float64)
    m = np.asarray(mean, dtype=np.float64)
    s = np.asarray(sd, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(m) & np.isfinite(s) & (s > 0)
    t, m, s = t[ok], m[ok], s[ok]
    if t.size == 0:
        nan = float("nan")
        return {"within_1sd": nan, "within_2sd": nan, "abs_error_sd_r": nan,
                "mean_sd": nan, "rmse": nan, "n_frames": 0}  # fmt: skip
    err = np.abs(t - m)
    return {
        "within_1sd": float(np.mean(err <= s)),
        "within_2sd": float(np.mean(err <= 2 * s)),
        "expected_within_1sd": GAUSS_WITHIN_1SD,
        "expected_within_2sd": GAUSS_WITHIN_2SD,
        "abs_error_sd_r": compute_pearson_r(err, s),
        "mean_sd": float(s.mean()),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "n_frames": int(t.size),
    }
