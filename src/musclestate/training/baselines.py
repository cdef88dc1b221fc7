"""Reference estimators that the CNN must beat, fitted in the same folds (DESIGN.md section 5).

- :class:`MeanPredictor`: predicts the training participants' mean of every target; needs no
  image at all.
- :class:`RidgeBaseline`: ridge regression on the ROI stage's architecture features
  (thickness, pennation, aponeurosis angle, echo intensity, ...). Features are standardised on
  the participants it is fitted on; the penalty is chosen per target by participant-grouped
  cross-validation on the training side (:meth:`RidgeBaseline.fit_nested`), on a grid that is
  widened where the choice lands on its edge. Closed form (Hoerl & Kennard 1970) in numpy: a few
  features and thousands of frames need nothing more.
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
        from musclestate.models.networks import FEATURE_Z_LIMIT

        z = (np.asarray(x, dtype=np.float64) - mean) / sd
        z = np.where(np.isfinite(z), z, 0.0)  # missing feature (ROI not found) -> mean
        return np.clip(z, -FEATURE_Z_LIMIT, FEATURE_Z_LIMIT)

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
    def fit_nested(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray,
        alphas: Sequence[float],
        *,
        fit_rows: np.ndarray | None = None,
        max_widen: int = 4,
    ) -> RidgeBaseline:
        """Choose each target's penalty by leave-one-participant-out CV, then fit.

        Every participant in ``groups`` is held out once; a penalty's score is the pooled squared
        error of the held-out predictions. Where a target's best penalty is the grid's smallest or
        largest, the grid is widened by a factor of 10 on that side (at most ``max_widen`` times),
        so that the choice is never pinned at an edge that the data did not ask for.

        Args:
            x: ``(M, F)`` features of the training side's frames.
            y: ``(M, n_targets)`` targets (NaN = unknown).
            groups: ``(M,)`` participant of each frame (at least two participants).
            alphas: initial candidate penalties (on standardised features).
            fit_rows: ``(M,)`` bool, the frames the final model is fitted on (default all), e.g.
                the inner-training participants that the CNN of the same fold trains on.
            max_widen: how often the grid may be widened on either side.

        Raises:
            DatasetError: fewer than two participants, or a target without values.
        """
        groups = np.asarray(groups)
        people = np.unique(groups)
        if people.size < 2:
            raise DatasetError(
                f"the ridge penalty needs at least two training participants, got {people.tolist()}"
            )
        n_t = y.shape[1]
        grid = sorted({float(a) for a in alphas})
        scores: dict[float, np.ndarray] = {}

        def score(a: float) -> np.ndarray:
            if a not in scores:
                sse, n = np.zeros(n_t), np.zeros(n_t)
                for p in people:
                    held = groups == p
                    model = cls._fit_fixed(x[~held], y[~held], np.full(n_t, a))
                    err = (model.predict(x[held]) - y[held]) ** 2
                    sse += np.nansum(err, axis=0)
                    n += np.sum(np.isfinite(err), axis=0)
                scores[a] = sse / np.maximum(n, 1)
            return scores[a]

        best = np.empty(n_t)
        for j in range(n_t):
            cand = list(grid)
            for _ in range(max_widen + 1):
                errs = [score(a)[j] for a in cand]
                k = int(np.argmin(errs))
                if 0 < k < len(cand) - 1 or len(cand) == 1:
                    break
                cand = [cand[0] / 10.0, *cand] if k == 0 else [*cand, cand[-1] * 10.0]
            best[j] = cand[int(np.argmin([score(a)[j] for a in cand]))]
        log.debug("ridge penalties chosen by leave-one-participant-out CV: %s", best)
        rows = np.ones(len(groups), bool) if fit_rows is None else np.asarray(fit_rows, bool)
        return cls._fit_fixed(x[rows], y[rows], best)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``(M, F)`` features -> ``(M, n_targets)`` predictions."""
        return self._prep(x, self.x_mean, self.x_sd) @ self.coef + self.intercept
