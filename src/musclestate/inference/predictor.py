"""Frames in, muscle state out: the per-frame pipeline behind ``predict`` and ``stream``.

frame ``(H, W)`` uint8 -> ROI (segment, fit geometry, cut MG/SOL patches, measure architecture)
-> estimator (PyTorch bundle or its ONNX export) -> per-frame estimate, SD, quality flags.

:class:`Predictor` is the Python API a lab's acquisition software can call::

    from musclestate.inference import load_predictor
    pred = load_predictor("bundle_dir")              # ONNX Runtime; backend="torch" also works
    for frame in frames:                             # (H, W) uint8, cropped B-mode
        row = pred.step(frame, t_s=..., pixel_spacing_mm=(0.2, 0.2))   # one-frame Estimates
        print(row.mean["ankle_angle"][0], row.sd["ankle_angle"][0])

Offline, :meth:`Predictor.run` batches a whole :class:`~musclestate.inference.sources.FrameSource`.
The ROI stage and the estimator are plain objects with small interfaces (:class:`RoiStage`,
:class:`Estimator`), so either can be replaced (tests use tiny fakes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from musclestate.calibration import CalibrationProfile
from musclestate.errors import ConfigError
from musclestate.inference.novelty import FeatureNovelty
from musclestate.inference.outputs import Estimates
from musclestate.inference.sources import Frame, FrameSource

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")


@dataclass(frozen=True)
class RoiOutput:
    """What the ROI stage gives for ``N`` frames.

    Attributes:
        patches: ``(N, C, h, w)`` float32 estimator input (C = 2: MG, SOL).
        found: ``(N,)`` bool, False where no muscle was found (patches there are unusable).
        features: ``(N, F)`` float64 architecture measures (NaN where unmeasurable).
        outlines: per frame, a list of ``(K, 2)`` float arrays of ``(x, y)`` pixel coordinates to
            draw on an overlay (aponeuroses, ROI boxes); empty where nothing was found.
        usable: ``(N,)`` bool, frames whose ``patches`` the estimator can take; ``None`` = the
            frames where the muscle was found (an estimator on whole frames takes every one).
    """

    patches: np.ndarray
    found: np.ndarray
    features: np.ndarray
    outlines: Sequence[Sequence[np.ndarray]] = ()
    usable: np.ndarray | None = None


class RoiStage(Protocol):
    """Finds the muscle and cuts the estimator's input patches.

    Offline, ``__call__`` gets consecutive frames of one input; a stage whose result depends on
    neighbouring frames (temporal smoothing) sets ``context`` > 0 and the predictor passes that
    many extra frames on each side of every ``chunk``. Live, ``step`` gets one frame at a time
    and may only look back.
    """

    feature_names: tuple[str, ...]
    feature_units: Mapping[str, str]
    context: int
    chunk: int

    def __call__(
        self, frames: np.ndarray, pixel_spacing_mm: tuple[float, float] | None
    ) -> RoiOutput:
        """``frames (N, H, W) uint8`` (consecutive frames of one input) -> :class:`RoiOutput`."""
        ...

    def step(self, frame: np.ndarray, pixel_spacing_mm: tuple[float, float] | None) -> RoiOutput:
        """One live frame ``(H, W) uint8`` -> one-frame :class:`RoiOutput` (causal)."""
        ...

    def reset(self) -> None:
        """Forget any tracking state (call between inputs)."""
        ...


class Estimator(Protocol):
    """Maps patches (and, for a fused network, the frames' architecture measures named by
    ``feature_inputs``) to per-target mean and SD in physical units."""

    targets: tuple[str, ...]
    units: Mapping[str, str]
    feature_inputs: tuple[str, ...]

    def predict(
        self, patches: np.ndarray, features: np.ndarray | None = None
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``patches (N, C, h, w) float32``, ``features (N, F)`` -> ``{target: (mean, sd)}``."""
        ...


@dataclass(frozen=True)
class PredictorConfig:
    """Settings of a prediction run (saved in every output's sidecar).

    Attributes:
        backend: ``"onnx"`` (ONNX Runtime on the bundle's networks, exported at load time) or
            ``"torch"`` (the bundle itself); they agree within
            :data:`musclestate.inference.export.TOLERANCE`.
        batch_size: frames per estimator call offline (live runs use 1).
        roi_every: run the segmenter on every k-th frame; offline the aponeurosis curves in
            between are interpolated in time, live they are tracked (1 = every frame, as the
            ROI step of training does by default).
        roi_scale: segmenter input size relative to the segmenter's own (0.5 = 128 px instead
            of 256 px; ``benchmarks/inference.py`` prints what this changes in the geometry).
            The default keeps the full size: at 128 px the shipped model found the muscle in
            only 247 of 400 frames of a real clip, against 400 of 400 at 256 px.
        range_margin: fraction of the training range allowed beyond it before a frame is flagged
            ``out_of_range`` (targets; architecture measures only for bundles whose card lacks
            ``training.feature_novelty``, see
            :class:`~musclestate.inference.novelty.FeatureNovelty`).
        threads: CPU threads for the networks (``None`` = library default); with the ONNX
            backend PyTorch only resizes images and is set to one thread.
        live_async: live runs segment key frames on a worker thread while the frames in between
            are tracked, so no frame waits for the segmentation network.

    The defaults are the fastest settings whose geometry stays close to a full run (see the
    benchmark); ``PredictorConfig(roi_every=1, roi_scale=1.0)`` reproduces the training ROI.
    """

    backend: str = "onnx"
    batch_size: int = 32
    roi_every: int = 8
    roi_scale: float = 1.0
    range_margin: float = 0.1
    threads: int | None = None
    live_async: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend {self.backend!r} unknown; choose one of {BACKENDS}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if self.roi_every < 1:
            raise ConfigError(
                f"roi_every must be >= 1 (1 = segment every frame), got {self.roi_every}"
            )
        if not 0.1 <= self.roi_scale <= 1.0:
            raise ConfigError(f"roi_scale must lie in [0.1, 1], got {self.roi_scale}")
        if self.range_margin < 0:
            raise ConfigError(f"range_margin must be >= 0, got {self.range_margin}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingRange:
    """The span of the training data, for the ``out_of_range`` flag.

    Attributes:
        targets: target name -> (min, max) seen in training, physical units.
        features: architecture measure name -> (min, max) seen in training (the rule for cards
            without ``training.feature_novelty``).
        novelty: Mahalanobis novelty of the architecture measures jointly (see
            :class:`~musclestate.inference.novelty.FeatureNovelty`), or ``None``.
    """

    targets: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    features: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    novelty: FeatureNovelty | None = None

    def flag(
        self,
        mean: Mapping[str, np.ndarray],
        features: Mapping[str, np.ndarray],
        margin: float,
    ) -> np.ndarray:
        """``(N,)`` bool: True where any estimate or measure lies beyond its range +- margin, or
        where the measures together are novel (``margin`` does not apply to the novelty)."""
        n = len(next(iter(mean.values()))) if mean else len(next(iter(features.values()), []))
        out = np.zeros(n, dtype=bool)
        for table, ranges in ((mean, self.targets), (features, self.features)):
            for name, (lo, hi) in ranges.items():
                if name not in table:
                    continue
                pad = margin * (hi - lo)
                v = np.asarray(table[name], dtype=np.float64)
                with np.errstate(invalid="ignore"):
                    out |= (v < lo - pad) | (v > hi + pad)
        if self.novelty is not None and features:
            out |= self.novelty.flag(features)
        return out


@dataclass(frozen=True)
class Prediction:
    """Estimates for one input plus what an overlay needs (outlines per frame)."""

    estimates: Estimates
    outlines: Sequence[Sequence[np.ndarray]] = ()


class Predictor:
    """Runs ROI + estimator on frames; holds tracking state between :meth:`step` calls.

    Args:
        roi: the ROI stage (see :class:`RoiStage`).
        estimator: the estimator (see :class:`Estimator`).
        config: run settings.
        training_range: spans of the training data for the ``out_of_range`` flag.
        info: provenance (bundle path and hash, card, backend) for sidecars.
        calibration: a person's profile (:mod:`musclestate.calibration`): each target's
            estimate becomes ``offset + gain * estimate`` and its SD ``gain * SD``; the
            ``out_of_range`` flag still judges the uncorrected estimate against training.
    """

    def __init__(
        self,
        roi: RoiStage,
        estimator: Estimator,
        config: PredictorConfig | None = None,
        *,
        training_range: TrainingRange | None = None,
        info: Mapping[str, Any] | None = None,
        calibration: CalibrationProfile | None = None,
    ) -> None:
        self.roi = roi
        self.estimator = estimator
        self.calibration = calibration
        self.config = config or PredictorConfig()
        self.training_range = training_range or TrainingRange()
        self.info = dict(info or {})
        self.last_outlines: Sequence[np.ndarray] = []

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.estimator.targets)

    def reset(self) -> None:
        """Start a new input: forget the ROI tracking state."""
        self.roi.reset()

    def _feature_inputs(self, feats: np.ndarray) -> np.ndarray | None:
        """The columns of the ROI stage's measures that a fused estimator reads, in its order."""
        names = tuple(getattr(self.estimator, "feature_inputs", ()) or ())
        if not names:
            return None
        have = list(self.roi.feature_names)
        missing = [x for x in names if x not in have]
        if missing:
            raise ConfigError(
                f"the estimator reads the architecture measures {missing}, which this ROI stage "
                f"does not measure (it gives {have}); use the ROI settings the bundle was "
                "trained with"
            )
        return feats[:, [have.index(x) for x in names]]

    def _predict(
        self, patches: np.ndarray, features: np.ndarray | None
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if features is None:
            return self.estimator.predict(patches)
        return self.estimator.predict(patches, features=features)

    def estimate(self, roi: RoiOutput, index: np.ndarray, t_s: np.ndarray) -> Estimates:
        """Estimates from a ROI result: the estimator runs on frames where the muscle was found."""
        n = len(index)
        found = np.asarray(roi.found, dtype=bool)
        mean = {k: np.full(n, np.nan) for k in self.targets}
        sd = {k: np.full(n, np.nan) for k in self.targets}
        sel = np.flatnonzero(found if roi.usable is None else np.asarray(roi.usable, dtype=bool))
        feats = np.asarray(roi.features, dtype=np.float64).reshape(n, -1)
        fin = self._feature_inputs(feats)
        if getattr(self.estimator, "context", 0) > 0 and sel.size:
            # temporal context: neighbours must be the true neighbouring frames, so the whole
            # stretch goes in one call (frames without a muscle carry zero patches, as stored)
            out = self._predict(np.ascontiguousarray(roi.patches), fin)
            for k in self.targets:
                mean[k][sel] = out[k][0][sel]
                sd[k][sel] = out[k][1][sel]
            sel = sel[:0]
        bs = self.config.batch_size
        for s in range(0, sel.size, bs):
            rows = sel[s : s + bs]
            out = self._predict(
                np.ascontiguousarray(roi.patches[rows]), None if fin is None else fin[rows]
            )
            for k in self.targets:
                m, sdev = out[k]
                mean[k][rows] = m
                sd[k][rows] = sdev
        features = {name: feats[:, j] for j, name in enumerate(self.roi.feature_names)}
        oor = self.training_range.flag(mean, features, self.config.range_margin) & found
        if self.calibration is not None:
            for k, c in self.calibration.corrections.items():
                if k in mean:
                    mean[k] = c.apply(mean[k])
                    sd[k] = c.gain * sd[k]
        return Estimates(
            frame=np.asarray(index, dtype=np.int64),
            t_s=np.asarray(t_s, dtype=np.float64),
            mean=mean,
            sd=sd,
            units={k: self.estimator.units[k] for k in self.targets},
            roi_found=found,
            out_of_range=oor,
            features=features,
            feature_units=dict(self.roi.feature_units),
        )

    def predict_frames(
        self,
        frames: np.ndarray,
        *,
        t_s: np.ndarray | None = None,
        index: np.ndarray | None = None,
        pixel_spacing_mm: tuple[float, float] | None = None,
    ) -> Prediction:
        """Estimate ``frames (N, H, W) uint8``, consecutive frames of one input, in one go.

        ``t_s`` and ``index`` default to ``arange(N)``; frames without a muscle get NaN
        estimates and ``roi_found = False``.
        """
        frames = np.asarray(frames)
        if frames.ndim == 2:
            frames = frames[None]
        if frames.ndim != 3 or frames.dtype != np.uint8:
            raise ConfigError(f"frames must be (N, H, W) uint8, got {frames.shape} {frames.dtype}")
        n = frames.shape[0]
        idx = np.arange(n) if index is None else np.asarray(index, dtype=np.int64)
        t = idx.astype(np.float64) if t_s is None else np.asarray(t_s, dtype=np.float64)
        roi = self.roi(frames, pixel_spacing_mm)
        return Prediction(self.estimate(roi, idx, t), roi.outlines)

    def step(
        self,
        frame: np.ndarray,
        *,
        t_s: float = 0.0,
        index: int = 0,
        pixel_spacing_mm: tuple[float, float] | None = None,
    ) -> Estimates:
        """Estimate one live frame ``(H, W) uint8`` causally; tracking carries to the next call."""
        frame = np.asarray(frame)
        if frame.ndim != 2 or frame.dtype != np.uint8:
            raise ConfigError(f"a live frame must be (H, W) uint8, got {frame.shape} {frame.dtype}")
        roi = self.roi.step(frame, pixel_spacing_mm)
        self.last_outlines = roi.outlines[0] if roi.outlines else []
        return self.estimate(roi, np.array([index]), np.array([t_s]))

    def run(
        self,
        source: FrameSource,
        *,
        keep_outlines: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> Prediction:
        """Estimate every frame of ``source`` offline.

        Frames are read in chunks of ``roi.chunk`` with ``roi.context`` frames of overlap on
        each side, so a stage with temporal smoothing gives what it gives on the whole input;
        ``progress(n)`` is called with the number of frames finished after each chunk.
        """
        self.reset()
        spacing = source.info.pixel_spacing_mm
        ctx = max(int(getattr(self.roi, "context", 0)), int(getattr(self.estimator, "context", 0)))
        chunk = int(getattr(self.roi, "chunk", 0) or self.config.batch_size)
        parts: list[Estimates] = []
        outlines: list[Sequence[np.ndarray]] = []
        buf: list[Frame] = []  # frames from stream position `base` on
        base = 0
        done = 0  # frames finished (stream positions < done)

        def process(hi: int) -> None:
            nonlocal base, done
            keep_hi = min(done + chunk, hi)
            lo = max(0, done - ctx)
            block = buf[lo - base : hi - base]
            p = self.predict_frames(
                np.stack([f.image for f in block]),
                t_s=np.array([f.t_s for f in block]),
                index=np.array([f.index for f in block]),
                pixel_spacing_mm=spacing,
            )
            a, b = done - lo, keep_hi - lo
            parts.append(_slice(p.estimates, a, b))
            if keep_outlines:
                outlines.extend(list(p.outlines)[a:b] if p.outlines else [[]] * (b - a))
            if progress is not None:
                progress(keep_hi - done)
            done = keep_hi
            cut = max(0, done - ctx) - base
            del buf[:cut]
            base += cut

        for fr in source:
            buf.append(fr)
            if base + len(buf) >= done + chunk + ctx:
                process(base + len(buf))
        end = base + len(buf)
        while done < end:
            process(end)
        if not parts:
            from musclestate.errors import MediaError

            raise MediaError("the input delivered no frames", source.info.location)
        return Prediction(Estimates.concat(parts), outlines)


def _slice(est: Estimates, a: int, b: int) -> Estimates:
    sl = slice(a, b)
    return Estimates(
        frame=est.frame[sl],
        t_s=est.t_s[sl],
        mean={k: v[sl] for k, v in est.mean.items()},
        sd={k: v[sl] for k, v in est.sd.items()},
        units=est.units,
        roi_found=est.roi_found[sl],
        out_of_range=est.out_of_range[sl],
        features={k: v[sl] for k, v in est.features.items()},
        feature_units=est.feature_units,
    )


def provenance(
    predictor: Predictor, source: FrameSource, *, input_sha256: str | None = None
) -> dict[str, Any]:
    """What produced a result, for its JSON sidecar."""
    from musclestate import __version__

    si = source.info
    return {
        "musclestate_version": __version__,
        "bundle": predictor.info,
        "input": {
            "location": si.location,
            "sha256": input_sha256,
            "crop_xywh": si.crop,
            "flip_horizontal": si.flip_horizontal,
            "pixel_spacing_mm": si.pixel_spacing_mm,
            "fps": None if not np.isfinite(si.fps) else si.fps,
            **{k: v for k, v in si.extra.items() if k != "format" or v},
        },
        "settings": predictor.config.to_dict(),
    }
