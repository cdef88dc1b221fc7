"""Out-of-range architecture measures: their Mahalanobis distance from the training frames.

:class:`FeatureNovelty` is fitted by training (``musclestate.training.cv``) on the training
frames' measures, written to the bundle card as ``training.feature_novelty`` and read back by
:func:`musclestate.inference.loader.training_range` for the ``out_of_range`` flag.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from musclestate.errors import ConfigError

#: Quantile of the (held-out) training distances used as the novelty threshold.
NOVELTY_QUANTILE = 0.995
#: Weight of the diagonal in the shrunk covariance of the architecture measures.
NOVELTY_SHRINKAGE = 0.1
#: Fewest complete training frames per measure for a covariance worth recording.
NOVELTY_MIN_FRAMES_PER_MEASURE = 5
#: Fewest participants for a threshold from held-out participants (else from the training frames).
NOVELTY_MIN_GROUPS = 3


def _shrunk_covariance(x: np.ndarray, shrinkage: float) -> np.ndarray:
    """``(F, F)`` covariance of ``x (N, F)`` shrunk towards its diagonal by ``shrinkage``."""
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    return (1.0 - shrinkage) * cov + shrinkage * np.diag(np.diag(cov))


def _mahalanobis(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``(N,)`` Mahalanobis distances of the rows of ``x (N, F)`` from ``mean`` under ``cov``."""
    diff = x - mean
    return np.sqrt(np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff).clip(min=0.0))


@dataclass(frozen=True, eq=False)
class FeatureNovelty:
    """How unlike the training frames a frame's architecture measures are, as one distance.

    The Mahalanobis (1936) distance of a frame's measures ``x (F,)`` from the training frames'
    mean ``mu``, ``d(x) = sqrt((x - mu)^T S^-1 (x - mu))``; a frame is flagged when ``d``
    exceeds ``threshold``, the ``quantile`` quantile of the distances of held-out training
    participants' frames (see :meth:`fit`), so about ``1 - quantile`` of the frames of a new
    participant like the training ones are flagged; a frame missing any measure is not flagged
    on its measures. The same score on a network's features is the out-of-distribution detector
    of Lee et al. (2018). Unlike a min..max box per measure, one noisy measure (a single-frame
    fascicle angle) flags a frame only when it is far off in units of its own spread, and a
    combination never seen in training (pennation no longer equal to fascicle angle minus deep
    angle, a thick muscle at a flat pennation) is flagged although each measure alone lies in
    range.

    ``S`` is the training covariance shrunk towards its diagonal,
    ``(1 - shrinkage) * cov + shrinkage * diag(cov)`` (Ledoit & Wolf 2004, with a fixed
    weight, :data:`NOVELTY_SHRINKAGE`): training frames come from few recordings and follow
    each other closely, so the sample covariance overstates correlations that only separate
    a handful of recordings (echo against thickness at 0.93 in the 2 push groups of the Drazan
    clips), and without shrinkage a new recording off that line is flagged whole. Shrinkage
    also keeps ``S`` invertible for exactly dependent measures (pennation).

    Mahalanobis PC (1936) On the generalised distance in statistics. Proc. Natl. Inst. Sci.
    India 2:49-55. Lee K, Lee K, Lee H, Shin J (2018) A simple unified framework for
    detecting out-of-distribution samples and adversarial attacks. NeurIPS 31. Ledoit O, Wolf M
    (2004) A well-conditioned estimator for large-dimensional covariance matrices. J.
    Multivar. Anal. 88:365-411.

    Attributes:
        names: measure names, the order of ``mean`` and ``covariance``.
        mean: ``(F,)`` training mean, units of the measures.
        covariance: ``(F, F)`` shrunk training covariance (the ``S`` above).
        threshold: distance (dimensionless) above which a frame is flagged.
        quantile: the quantile of the distances that ``threshold`` is.
        shrinkage: the weight of the diagonal in ``covariance``.
        calibration: whose distances ``threshold`` is the quantile of (see :meth:`fit`),
            ``"the training frames"`` or ``"K held-out participants"``.
        n_frames: complete training frames the entry was fitted on.
    """

    names: tuple[str, ...]
    mean: np.ndarray
    covariance: np.ndarray
    threshold: float
    quantile: float = NOVELTY_QUANTILE
    shrinkage: float = NOVELTY_SHRINKAGE
    calibration: str = "the training frames"
    n_frames: int = 0
    _precision: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        f = len(self.names)
        mean = np.asarray(self.mean, dtype=np.float64)
        cov = np.asarray(self.covariance, dtype=np.float64)
        if mean.shape != (f,) or cov.shape != (f, f):
            raise ConfigError(
                f"feature novelty for {f} measures needs a mean ({f},) and covariance "
                f"({f}, {f}), got {mean.shape} and {cov.shape}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(cov).all() and self.threshold > 0):
            raise ConfigError("feature novelty needs a finite mean, covariance and threshold > 0")
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "covariance", cov)
        try:
            object.__setattr__(self, "_precision", np.linalg.inv(cov))
        except np.linalg.LinAlgError:
            raise ConfigError("feature novelty covariance is singular") from None

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        names: Sequence[str],
        *,
        groups: np.ndarray | None = None,
        quantile: float = NOVELTY_QUANTILE,
        shrinkage: float = NOVELTY_SHRINKAGE,
    ) -> FeatureNovelty | None:
        """Fit on the training frames' measures ``features (N, F)`` (NaN where unmeasured).

        Measures with no spread in training (all NaN or constant) are left out, as are frames
        missing any of the others. With ``groups (N,)`` (participant ids) of at least
        :data:`NOVELTY_MIN_GROUPS` groups, the threshold is the quantile of each group's
        distances from the mean and covariance of the other groups, so that about
        ``1 - quantile`` of the frames of a *new* participant like the training ones are
        flagged; the training frames' own distances are smaller, most of all with few
        participants, so a threshold calibrated on them flags too many frames of new people.
        Without groups, or with fewer, it is the quantile of the training frames' own distances.

        Returns:
            The fitted rule, or ``None`` when fewer than :data:`NOVELTY_MIN_FRAMES_PER_MEASURE`
            complete frames per measure remain.
        """
        if not 0.5 < quantile < 1.0:
            raise ConfigError(f"novelty quantile must lie in (0.5, 1), got {quantile}")
        if not 0.0 < shrinkage <= 1.0:
            raise ConfigError(f"novelty shrinkage must lie in (0, 1], got {shrinkage}")
        x = np.array(features, dtype=np.float64)  # a copy: NaN is written into it
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ConfigError(f"features must be (N, {len(names)}), got {x.shape}")
        g = np.zeros(len(x)) if groups is None else np.asarray(groups)
        if g.shape != (len(x),):
            raise ConfigError(f"groups must be ({len(x)},), got {g.shape}")
        x[~np.isfinite(x)] = np.nan
        with warnings.catch_warnings():  # an all-NaN column gives NaN, left out below
            warnings.simplefilter("ignore", RuntimeWarning)
            spread = np.nanstd(x, axis=0)
        keep = [j for j in range(x.shape[1]) if spread[j] > 0]
        if not keep:
            return None
        complete = np.isfinite(x[:, keep]).all(axis=1)
        x, g = x[complete][:, keep], g[complete]
        if len(x) < NOVELTY_MIN_FRAMES_PER_MEASURE * len(keep):
            return None
        mean, cov = x.mean(axis=0), _shrunk_covariance(x, shrinkage)
        held_out = []
        if len(np.unique(g)) >= NOVELTY_MIN_GROUPS:
            for grp in np.unique(g):
                rest = x[g != grp]
                c = _shrunk_covariance(rest, shrinkage)
                if np.all(np.diag(c) > 0):
                    held_out.append(_mahalanobis(x[g == grp], rest.mean(axis=0), c))
        d = np.concatenate(held_out) if held_out else _mahalanobis(x, mean, cov)
        return cls(
            names=tuple(names[j] for j in keep),
            mean=mean,
            covariance=cov,
            threshold=float(np.quantile(d, quantile)),
            quantile=float(quantile),
            shrinkage=float(shrinkage),
            calibration=f"{len(held_out)} held-out participants"
            if held_out
            else "the training frames",
            n_frames=len(x),
        )

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> FeatureNovelty:
        """From a card's ``training.feature_novelty``; :class:`ConfigError` if malformed."""
        try:
            return cls(
                names=tuple(str(n) for n in entry["names"]),
                mean=np.asarray(entry["mean"], dtype=np.float64),
                covariance=np.asarray(entry["covariance"], dtype=np.float64),
                threshold=float(entry["threshold"]),
                quantile=float(entry["quantile"]),
                shrinkage=float(entry.get("shrinkage") or 0.0),
                calibration=str(entry.get("calibration") or "the training frames"),
                n_frames=int(entry.get("n_frames") or 0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed feature novelty entry ({exc!r})") from None

    def to_dict(self) -> dict[str, Any]:
        """The card entry (``training.feature_novelty``), JSON types only."""
        return {
            "rule": "Mahalanobis distance from the training mean > threshold",
            "names": list(self.names),
            "mean": self.mean.tolist(),
            "covariance": self.covariance.tolist(),
            "threshold": self.threshold,
            "quantile": self.quantile,
            "shrinkage": self.shrinkage,
            "calibration": self.calibration,
            "n_frames": self.n_frames,
        }

    def distance(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """``(N,)`` Mahalanobis distance over the measures each frame has.

        A frame missing some of :attr:`names` (NaN: a fascicle length at too low a pennation, a
        region not measured) is judged on the others, under their marginal covariance (the
        sub-block of the fitted one), against the same threshold; fewer measures give smaller
        distances, so this errs towards not flagging. NaN for frames with none of them, and for
        every frame when a measure is absent altogether (a ROI stage that does not give it).
        """
        n = len(next(iter(features.values()), []))
        if not all(k in features for k in self.names):
            return np.full(n, np.nan)
        x = np.stack([np.asarray(features[k], np.float64) for k in self.names], axis=1)
        diff = x.reshape(n, len(self.names)) - self.mean
        present = np.isfinite(diff)
        out = np.full(n, np.nan)
        cov = None
        for pattern in np.unique(present, axis=0):
            if not pattern.any():
                continue
            rows = np.all(present == pattern, axis=1)
            if pattern.all():
                precision = self._precision
            else:
                cov = np.linalg.inv(self._precision) if cov is None else cov
                precision = np.linalg.inv(cov[np.ix_(pattern, pattern)])
            d = diff[np.ix_(rows, pattern)]
            out[rows] = np.sqrt(np.clip(np.einsum("ni,ij,nj->n", d, precision, d), 0.0, None))
        return out

    def flag(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """``(N,)`` bool: True where :meth:`distance` exceeds the threshold (False where NaN)."""
        with np.errstate(invalid="ignore"):
            return self.distance(features) > self.threshold
