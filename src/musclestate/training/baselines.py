"""Reference estimators that the CNN must beat, fitted in the same folds (DESIGN.md section 5).

- :class:`MeanPredictor`: predicts the training participants' mean of every target; needs no
  image at all.
- :class:`RidgeBaseline`: ridge regression on the ROI stage's architecture features
  (thickness, pennation, aponeurosis angle, echo intensity, ...). Features and targets are
  standardised on the training participants only; the penalty is chosen per target on the inner
  validation participants, then the model is refitted on all training participants. Closed form
  (Hoerl & Kennard 1970) in numpy: a few features and thousands of frames need nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from musclestate.errors import DatasetError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeanPredictor:
    """``(n_targets,)`` training mean, in the targets' units."""

    mean: np.ndarray

    @classmethod
    def fit(cls, targets: np.ndarray) -> MeanPredictor:
        """Fit on ``(M, n_targets)`` training targets (NaN ignored)."""
        return cls(np.nanmean(targets, axis=0))

    def predict(self, n: int) -> np.ndarray:
        """``(n, n_targets)`` copies of the mean."""
        return np.broadcast_to(self.mean, (n, self.mean.size)).copy()


def _ridge_solve(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Coefficients ``(F,)`` minimising ``|y - x b|^2 + alpha |b|^2`` (x, y centred)."""
    f = x.shape[1]
    return np.linalg.solve(x.T @ x + alpha * np.eye(f), x.T @ y)


@dataclass(frozen=True)
class RidgeBaseline:
    """Standardised-feature ridge regression, one penalty per target.

    Attributes:
        x_mean, x_sd: ``(F,)`` feature standardisation (training participants).
        coef: ``(F, n_targets)`` coefficients on standardised features.
        intercept: ``(n_targets,)``.
        alphas: ``(n_targets,)`` chosen penalties.
    """

    x_mean: np.ndarray
    x_sd: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    alphas: np.ndarray

    @staticmethod
    def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = np.nanmean(x, axis=0)
        sd = np.nanstd(x, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        sd = np.where(np.isfinite(sd) & (sd > 1e-12), sd, 1.0)
        return mean, sd

    @staticmethod
    def _prep(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - mean) / sd
        return np.where(np.isfinite(z), z, 0.0)  # missing feature (ROI not found) -> mean

    @classmethod
    def _fit_fixed(cls, x: np.ndarray, y: np.ndarray, alphas: np.ndarray) -> RidgeBaseline:
        x_mean, x_sd = cls._standardise(x)
        z = cls._prep(x, x_mean, x_sd)
        coef = np.zeros((x.shape[1], y.shape[1]))
        intercept = np.zeros(y.shape[1])
        for j in range(y.shape[1]):
            ok = np.isfinite(y[:, j])
            if not ok.any():
                raise DatasetError(f"target column {j} has no values on training participants")
            zj, yj = z[ok], y[ok, j]
            zc = zj - zj.mean(axis=0)
            coef[:, j] = _ridge_solve(zc, yj - yj.mean(), float(alphas[j]))
            intercept[j] = yj.mean() - zj.mean(axis=0) @ coef[:, j]
        return cls(x_mean, x_sd, coef, intercept, np.asarray(alphas, dtype=np.float64))

    @classmethod
    def fit(
        cls,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
        alphas: Sequence[float],
    ) -> RidgeBaseline:
        """Choose each target's penalty on validation, then refit on train + validation.

        Args:
            x_train, x_val: ``(M, F)`` features of the inner-training / validation participants.
            y_train, y_val: ``(M, n_targets)`` targets (NaN = unknown).
            alphas: candidate penalties (on standardised features).
        """
        n_t = y_train.shape[1]
        grid = np.asarray(alphas, dtype=np.float64)
        best = np.full(n_t, grid[0])
        best_err = np.full(n_t, np.inf)
        for a in grid:
            model = cls._fit_fixed(x_train, y_train, np.full(n_t, a))
            err = np.nanmean((model.predict(x_val) - y_val) ** 2, axis=0)
            better = err < best_err
            best[better], best_err[better] = a, err[better]
        log.debug("ridge penalties chosen on validation: %s", best)
        return cls._fit_fixed(
            np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val]), best
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``(M, F)`` features -> ``(M, n_targets)`` predictions."""
        return self._prep(x, self.x_mean, self.x_sd) @ self.coef + self.intercept
