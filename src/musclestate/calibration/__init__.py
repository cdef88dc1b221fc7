"""Per-participant calibration: a person's own calibration trials correct an estimator's output.

Labs record rest or passive range-of-motion trials and maximal voluntary contractions (MVC) for
every participant, with the dynamometer and EMG measuring the true states. Within a person an
estimator trained on other people usually tracks each state well; what it gets wrong is that
person's offset and gain. A :class:`CalibrationProfile` holds, per target, the affine
correction ``y = offset + gain * estimate`` fitted on that person's calibration trials only
(:func:`fit_correction`), and is applied to their other recordings by ``predict`` and
``stream``. Test trials never take part in the fit.
"""

from musclestate.calibration.profile import (
    CALIBRATION_TASKS,
    CalibrationProfile,
    TargetCorrection,
    fit_correction,
    fit_profile,
    load_profile,
)

__all__ = [
    "CALIBRATION_TASKS",
    "CalibrationProfile",
    "TargetCorrection",
    "fit_correction",
    "fit_profile",
    "load_profile",
]
