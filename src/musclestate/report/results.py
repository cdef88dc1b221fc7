"""Read a cross-validation run folder back from disk: metrics, per-frame predictions, config.

The report is built only from these files, so that a run made on a cluster (``musclestate cv
--fold i`` jobs merged by ``musclestate cv collect``) can be reported on another machine.

Layout of a run folder ``RUN`` (written by :func:`musclestate.training.cv.run_cv`):

- ``RUN/metrics.json``: ``{"targets": {NAME: {"unit": ...}}, "folds": K, "models": {MODEL:
  {"per_participant": {PID: {NAME: {"r2", "r", "rmse", "nrmse"}}}, "summary": {NAME: {"r2_mean",
  "r2_sd", "r_mean", "rmse_mean", "nrmse_mean"}}}}}`` with MODEL in ``cnn``, ``mean_predictor``,
  ``feature_baseline`` (optionally a ``"calibration"`` entry);
- ``RUN/predictions/<PID>.csv``: one row per held-out frame (format and reader in
  :mod:`musclestate.training.predictions`);
- ``RUN/config.json``: the resolved configuration, including the dataset path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from musclestate._atomic import read_json
from musclestate.errors import InputError
from musclestate.training.predictions import ParticipantPredictions, read_predictions

#: Model keys of metrics.json in the order the report shows them, with display names.
MODEL_LABELS: Mapping[str, str] = {
    "cnn": "CNN",
    "cnn_image_only": "CNN, images only",
    "feature_baseline": "feature baseline",
    "mean_predictor": "mean predictor",
    "cnn_calibrated": "CNN, calibrated",
    "cnn_image_only_calibrated": "CNN images only, calibrated",
    "feature_baseline_calibrated": "feature baseline, calibrated",
}


@dataclass(frozen=True)
class RunResults:
    """Everything the report needs from a run folder.

    Attributes:
        run_dir: the run folder.
        metrics: parsed ``metrics.json``.
        config: parsed ``config.json`` (empty dict when the run has none).
        targets: target names in metrics order.
        units: target name -> unit.
        predictions: participant id -> :class:`ParticipantPredictions`, sorted by id.
    """

    run_dir: Path
    metrics: Mapping[str, Any]
    config: Mapping[str, Any]
    targets: tuple[str, ...]
    units: Mapping[str, str]
    predictions: Mapping[str, ParticipantPredictions]

    @property
    def models(self) -> list[str]:
        """Model keys present in metrics.json, known ones first in :data:`MODEL_LABELS` order."""
        present = list(self.metrics.get("models", {}))
        return [m for m in MODEL_LABELS if m in present] + [
            m for m in present if m not in MODEL_LABELS
        ]

    @property
    def participants(self) -> list[str]:
        return list(self.predictions)

    def dataset_path(self) -> Path | None:
        """The dataset the run was made on, as recorded in config.json (``None`` if absent).

        Relative paths are taken relative to the run folder's parent (where ``cv`` was run from
        is unknown, so a relative path is tried against the run folder and then as given).
        """
        cfg = self.config
        raw = None
        for key in ("dataset", "dataset_path"):
            if isinstance(cfg.get(key), str):
                raw = cfg[key]
                break
            if isinstance(cfg.get(key), Mapping):  # {"name", "sha256", "location"}
                raw = cfg[key].get("location")
                break
        if raw is None and isinstance(cfg.get("data"), Mapping):
            raw = cfg["data"].get("dataset") or cfg["data"].get("path")
        if not raw:
            return None
        p = Path(raw)
        if p.is_absolute():
            return p
        for base in (self.run_dir, self.run_dir.parent):
            if (base / p).exists():
                return base / p
        return p


def _read_json(path: Path, what: str, hint: str) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{what} not found; {hint}", path)
    return read_json(path, what)


def load_run(run_dir: str | Path) -> RunResults:
    """Load a run folder written by ``musclestate cv`` (see the module docstring for its layout).

    Raises :class:`InputError` naming the missing or malformed file and how to make it.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError("run folder not found; pass the --out folder of `musclestate cv`", run_dir)
    metrics = _read_json(
        run_dir / "metrics.json",
        "metrics.json",
        "run `musclestate cv DATASET --out RUN` (or `musclestate cv collect RUN` after per-fold "
        "jobs) first",
    )
    tinfo = metrics.get("targets")
    if not isinstance(tinfo, dict) or not tinfo:
        raise InputError("metrics.json has no 'targets' object", run_dir / "metrics.json")
    if not isinstance(metrics.get("models"), dict) or "cnn" not in metrics["models"]:
        raise InputError(
            "metrics.json has no 'models.cnn' entry; was the run collected?",
            run_dir / "metrics.json",
        )
    targets = tuple(tinfo)
    units = {t: str((tinfo[t] or {}).get("unit", "")) for t in targets}
    config: dict[str, Any] = {}
    if (run_dir / "config.json").is_file():
        config = _read_json(run_dir / "config.json", "config.json", "")
    pred_dir = run_dir / "predictions"
    files = sorted(pred_dir.glob("*.csv")) if pred_dir.is_dir() else []
    if not files:
        raise InputError(
            "no per-participant predictions (predictions/<PID>.csv); the run is incomplete",
            pred_dir,
        )
    predictions = {f.stem: read_predictions(f, targets) for f in files}
    return RunResults(
        run_dir=run_dir,
        metrics=metrics,
        config=config,
        targets=targets,
        units=units,
        predictions=predictions,
    )


def as_float(v: Any) -> float:
    """A metrics.json number as float; ``null``, missing or non-numeric values give NaN."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def summary_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (target, model) from metrics.json's summaries, for tables.

    Each row: ``target``, ``unit``, ``model`` (key), ``label``, ``r2_mean``, ``r2_sd``,
    ``r_mean``, ``rmse_mean``, ``nrmse_mean`` (NaN where the file lacks a figure).
    """
    rows: list[dict[str, Any]] = []
    models = metrics.get("models", {})
    order = [m for m in MODEL_LABELS if m in models] + [m for m in models if m not in MODEL_LABELS]
    for target, info in metrics.get("targets", {}).items():
        for m in order:
            s = models[m].get("summary", {}).get(target, {})
            rows.append(
                {
                    "target": target,
                    "unit": (info or {}).get("unit", ""),
                    "model": m,
                    "label": MODEL_LABELS.get(m, m),
                    **{
                        k: as_float(s.get(k))
                        for k in ("r2_mean", "r2_sd", "r_mean", "rmse_mean", "nrmse_mean")
                    },
                }
            )
    return rows


def coverage(true: np.ndarray, mean: np.ndarray, sd: np.ndarray, nominal: np.ndarray) -> np.ndarray:
    """Observed coverage of central Gaussian intervals ``mean ± z(p) sd`` for nominal levels ``p``.

    A calibrated spread gives observed == nominal; below the diagonal the spread is too narrow
    (over-confident). Frames with a non-finite or non-positive ``sd`` are ignored.

    Args:
        true, mean, sd: ``(N,)`` arrays in the target's unit.
        nominal: ``(P,)`` levels in (0, 1).

    Returns:
        ``(P,)`` observed fractions (NaN if no frame has a usable sd).
    """
    ok = np.isfinite(true) & np.isfinite(mean) & np.isfinite(sd) & (sd > 0)
    if not ok.any():
        return np.full(np.shape(nominal), np.nan)
    z = np.abs(true[ok] - mean[ok]) / sd[ok]
    gauss = NormalDist()
    half = np.array([gauss.inv_cdf(0.5 + float(p) / 2.0) for p in np.ravel(nominal)])
    return (z[None, :] <= half[:, None]).mean(axis=1)
