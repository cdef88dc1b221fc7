"""``musclestate calibrate``: fit one person's calibration profile for an estimator bundle.

The person's calibration recordings (rest or passive range of motion and MVC trials, imported
into a dataset with their measured targets) are run through the bundle exactly as ``predict``
runs any recording; per target, the estimates on those frames are regressed onto the measured
values (:func:`musclestate.calibration.fit_profile`). ``predict`` and ``stream`` then apply the
profile with ``--calibration PROFILE``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from musclestate.calibration import CALIBRATION_TASKS, CalibrationProfile, fit_profile
from musclestate.calibration.profile import DEFAULT_SHRINKAGE
from musclestate.errors import InputError
from musclestate.inference.predictor import PredictorConfig

log = logging.getLogger(__name__)


def calibrate(
    model: str | Path,
    dataset: str | Path,
    participant: str,
    out: str | Path,
    *,
    trials: Sequence[str] = (),
    config: PredictorConfig | None = None,
    segmenter: str | Path | None = None,
    shrinkage: float = DEFAULT_SHRINKAGE,
) -> CalibrationProfile:
    """Fit and save ``participant``'s calibration profile for the bundle ``model``.

    Args:
        model: estimator bundle folder.
        dataset: dataset folder holding the person's calibration recordings with their
            measured targets.
        participant: the person's id in the dataset.
        out: profile file to write (JSON, atomically).
        trials: trial names (or recording ids) to calibrate on; default every recording of the
            person whose task is a calibration task (:data:`CALIBRATION_TASKS`).
        config: prediction settings (default: the segmenter on every frame).
        segmenter: segmenter weights instead of the bundle's.
        shrinkage: the gain's pull towards 1 (:func:`musclestate.calibration.fit_correction`).

    Returns:
        The profile written to ``out``.

    Raises:
        InputError: unknown participant or trials, no calibration recording, a target without
            measured values on the calibration frames.
    """
    from musclestate.dataset import open_dataset
    from musclestate.inference.loader import load_predictor

    ds = open_dataset(dataset)
    mine = [r for r in ds.recordings if r.participant == participant]
    if not mine:
        raise InputError(
            f"no participant {participant!r}; it holds {sorted(ds.participants)}", dataset
        )
    if trials:
        chosen = [r for r in mine if r.trial in trials or r.id in trials]
        unknown = sorted(set(trials) - {r.trial for r in chosen} - {r.id for r in chosen})
        if unknown:
            raise InputError(
                f"{participant} has no trial(s) {unknown}; their trials are "
                f"{[r.trial for r in mine]}",
                dataset,
            )
    else:
        chosen = [r for r in mine if r.meta.get("task", "") in CALIBRATION_TASKS]
        if not chosen:
            raise InputError(
                f"{participant} has no calibration recording (task one of "
                f"{list(CALIBRATION_TASKS)}); their trials and tasks are "
                f"{[(r.trial, r.meta.get('task', '')) for r in mine]}; name them with --trial",
                dataset,
            )
    predictor = load_predictor(
        model, config=config or PredictorConfig(roi_every=1), segmenter=segmenter
    )
    names = predictor.targets
    est: dict[str, list[np.ndarray]] = {k: [] for k in names}
    true: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for r in chosen:
        log.info("calibration recording %s (%d frames)", r.id, r.n_frames)
        e = predictor.predict_frames(
            np.asarray(ds.frames(r.id)),
            t_s=np.asarray(ds.frame_times(r.id)),
            pixel_spacing_mm=r.pixel_spacing_mm,
        ).estimates
        measured = ds.targets(r.id)
        for k in names:
            est[k].append(e.mean[k])
            true[k].append(np.asarray(measured.get(k, np.full(r.n_frames, np.nan)), float))
    # the gain's shrinkage scale: each target's SD over the bundle's training frames
    target_sd = predictor.estimator.bundle.card.target_sd
    scales = {k: target_sd[k] for k in names if k in target_sd}
    profile = fit_profile(
        participant,
        {k: np.concatenate(v) for k, v in est.items()},
        {k: np.concatenate(v) for k, v in true.items()},
        scales,
        {k: predictor.estimator.units[k] for k in names},
        trials=[r.id for r in chosen],
        bundle_sha256=predictor.info["sha256"],
        shrinkage=shrinkage,
    )
    profile.save(out)
    log.info("calibration profile of %s written to %s", participant, out)
    return profile
