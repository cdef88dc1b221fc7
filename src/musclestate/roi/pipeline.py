"""The whole ROI step over frames and datasets: segment, fit geometry, smooth, cut patches, measure.

:func:`process_frames` runs on the consecutive frames of one recording; :func:`apply_roi` runs it
over every recording of a dataset and writes the derived group ``"roi"``; :func:`overlay` draws
the result for visual checks (``musclestate roi show``).

Speed: the network runs in batches at its small input size; with ``every = k`` only every k-th
frame is segmented and the aponeurosis curves in between are interpolated in time (consecutive
frames at 25-80 fps differ little).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.errors import ConfigError, DatasetError, InputError
from musclestate.progress import ProgressEvent, ProgressFn, emit
from musclestate.roi.architecture import FEATURE_NAMES, FEATURE_UNITS, feature_vector, measure
from musclestate.roi.geometry import (
    GeometryConfig,
    MuscleGeometry,
    fit_geometry,
    smooth_geometries,
    stack_lines,
)
from musclestate.roi.patches import PATCH_CHANNELS, ManualROI, PatchConfig, extract_patches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ROIConfig:
    """Settings of the ROI step (saved in the ``roi`` group's attrs).

    Attributes:
        model: segmenter weights (``.safetensors``); ``None`` = the shipped model.
        every: segment every k-th frame (and the last), interpolate the curves in between.
        batch_size: frames per network call.
        smooth_window: odd running-median window (frames) over the segmented frames' curves.
        max_gap: longest run of frames without a found muscle that is bridged by interpolation
            (those frames are flagged ``interpolated``); longer gaps stay not found.
        geometry: :class:`GeometryConfig`.
        patches: :class:`PatchConfig`.
        manual: recording id -> :class:`ManualROI` used instead of the network for it.
        default_spacing_mm: pixel spacing used where a recording has none (then thickness is in
            these units; ``None`` = refuse such recordings).
    """

    model: str | None = None
    every: int = 1
    batch_size: int = 32
    smooth_window: int = 5
    max_gap: int = 5
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    patches: PatchConfig = field(default_factory=PatchConfig)
    manual: Mapping[str, ManualROI] = field(default_factory=dict)
    default_spacing_mm: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError(f"every must be >= 1 (1 = segment every frame), got {self.every}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.smooth_window < 1 or self.smooth_window % 2 == 0:
            raise ConfigError(f"smooth_window must be odd and >= 1, got {self.smooth_window}")
        if self.max_gap < 0:
            raise ConfigError(f"max_gap must be >= 0, got {self.max_gap}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "every": self.every,
            "batch_size": self.batch_size,
            "smooth_window": self.smooth_window,
            "max_gap": self.max_gap,
            "geometry": self.geometry.to_dict(),
            "patches": self.patches.to_dict(),
            "manual": {k: v.to_dict() for k, v in self.manual.items()},
            "default_spacing_mm": self.default_spacing_mm,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ROIConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown ROI setting(s) {unknown}; known: {sorted(known)}")
        kw = dict(d)
        if "geometry" in kw:
            kw["geometry"] = GeometryConfig(**kw["geometry"])
        if "patches" in kw:
            kw["patches"] = PatchConfig(**kw["patches"])
        if "manual" in kw:
            kw["manual"] = {k: ManualROI.from_dict(v) for k, v in (kw["manual"] or {}).items()}
        if kw.get("default_spacing_mm") is not None:
            kw["default_spacing_mm"] = tuple(kw["default_spacing_mm"])
        return cls(**kw)


@dataclass(frozen=True)
class ROIResult:
    """The ROI step's output for ``T`` frames of one recording.

    Attributes:
        patches: ``(T, 2, h, w)`` uint8 (channel 0 = MG, 1 = SOL; zeros where not found);
            ``(T, 0, h, w)`` when :func:`process_frames` was asked for no patches.
        features: ``(T, F)`` float32 architecture measures (:data:`FEATURE_NAMES`; NaN where
            not found).
        found: ``(T,)`` bool, both aponeuroses found (or bridged, see ``interpolated``).
        interpolated: ``(T,)`` bool, curves interpolated in time (not segmented, or a bridged gap).
        geometries: per-frame :class:`MuscleGeometry` (after smoothing).
    """

    patches: np.ndarray
    features: np.ndarray
    found: np.ndarray
    interpolated: np.ndarray
    geometries: tuple[MuscleGeometry, ...]

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays stored per recording in the ``roi`` group."""
        return {
            "patches": self.patches,
            "features": self.features,
            "found": self.found,
            "interpolated": self.interpolated,
            **stack_lines(self.geometries),
        }


def _expand(
    seg_idx: np.ndarray, geoms: list[MuscleGeometry], n: int
) -> tuple[list[MuscleGeometry], np.ndarray]:
    """Geometries for all ``n`` frames from those of the segmented frames ``seg_idx``.

    Curves of the frames in between are linear in time between the neighbouring segmented
    frames when both found the muscle; otherwise they stay missing.
    """
    if len(seg_idx) == n:
        return geoms, np.zeros(n, bool)
    out: list[MuscleGeometry] = []
    interp = np.zeros(n, bool)
    pos = np.searchsorted(seg_idx, np.arange(n))
    for t in range(n):
        j = pos[t]
        if j < len(seg_idx) and seg_idx[j] == t:
            out.append(geoms[j])
            continue
        a, b = geoms[j - 1], geoms[j]
        f = (t - seg_idx[j - 1]) / (seg_idx[j] - seg_idx[j - 1])
        lines = {}
        for name in ("superficial", "deep"):
            lines[name] = (1 - f) * a.line(name) + f * b.line(name)  # NaN if either is missing
        nearer = a if f <= 0.5 else b
        issues = () if np.isfinite(lines["superficial"]).all() else ("not segmented",)
        out.append(
            dataclasses.replace(
                nearer,
                superficial_row=lines["superficial"],
                deep_row=lines["deep"],
                issues=(*issues, "interpolated between segmented frames"),
                source="interpolated",
            )
        )
        interp[t] = True
    return out, interp


def geometries_from_probabilities(
    probs: np.ndarray, pixel_spacing_mm: tuple[float, float], config: GeometryConfig
) -> list[MuscleGeometry]:
    """:func:`fit_geometry` for each of ``(N, H, W)`` probability maps."""
    return [fit_geometry(p, pixel_spacing_mm, config) for p in probs]


def process_frames(
    frames: np.ndarray,
    pixel_spacing_mm: tuple[float, float] | None,
    segmenter: Any = None,
    config: ROIConfig | None = None,
    *,
    manual: ManualROI | None = None,
    progress: ProgressFn | None = None,
    with_patches: bool = True,
) -> ROIResult:
    """The ROI step for the consecutive frames of one recording.

    Args:
        frames: ``(T, H, W)`` uint8.
        pixel_spacing_mm: ``(row_mm, col_mm)``; ``None`` uses ``config.default_spacing_mm``.
        segmenter: a :class:`~musclestate.roi.segment.Segmenter` (``None`` loads
            ``config.model``); unused with ``manual``.
        config: :class:`ROIConfig`.
        manual: a hand-drawn MG region used for every frame instead of the network.
        progress: receives :class:`~musclestate.progress.ProgressEvent` (stage ``"roi"``) in
            frame steps: each frame counts twice (segmentation, then patches and measures).
        with_patches: False skips cutting the MG and SOL patches (an estimator that reads whole
            frames needs only the geometry and the measures); ``patches`` then has no channels.
    """
    config = config or ROIConfig()
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise InputError(f"frames must be (T, H, W) uint8, got {frames.shape} {frames.dtype}")
    spacing = pixel_spacing_mm or config.default_spacing_mm
    if spacing is None:
        raise InputError(
            "frames have no pixel spacing; give pixel_spacing_mm or set ROIConfig."
            "default_spacing_mm"
        )
    spacing = (float(spacing[0]), float(spacing[1]))
    n = len(frames)
    if n == 0:
        raise InputError("no frames to process")
    total = 2 * n
    if manual is not None:
        g = manual.geometry(frames.shape[1:], spacing, config.geometry.sol_depth_mm)
        geoms = [g] * n
        interp = np.zeros(n, bool)
    else:
        if segmenter is None:
            from musclestate.roi.segment import load_segmenter

            segmenter = load_segmenter(config.model)
        seg_idx = np.arange(0, n, config.every)
        if seg_idx[-1] != n - 1:
            seg_idx = np.append(seg_idx, n - 1)
        seg_geoms: list[MuscleGeometry] = []
        for i in range(0, len(seg_idx), config.batch_size):
            sel = seg_idx[i : i + config.batch_size]
            probs = segmenter.predict(frames[sel], batch_size=config.batch_size)
            seg_geoms += geometries_from_probabilities(probs, spacing, config.geometry)
            emit(progress, "roi", int(sel[-1]) + 1, total, "frame steps")
        seg_geoms = smooth_geometries(seg_geoms, window=config.smooth_window)
        geoms, interp = _expand(seg_idx, seg_geoms, n)
        if config.max_gap:
            bridged = smooth_geometries(geoms, window=1, max_gap=config.max_gap)
            newly = np.array([a.source != b.source for a, b in zip(geoms, bridged, strict=True)])
            geoms, interp = bridged, interp | newly
    patches = config.patches.zeros(n, cut=with_patches)
    feats = np.full((n, len(FEATURE_NAMES)), np.nan, np.float32)
    found = np.array([g.found for g in geoms])
    for t in range(n):
        if found[t]:
            if with_patches:
                patches[t] = extract_patches(frames[t], geoms[t], config.patches)
            feats[t] = feature_vector(measure(frames[t], geoms[t]))
        if t % 16 == 15 or t == n - 1:
            emit(progress, "roi", n + t + 1, total, "frame steps")
    return ROIResult(patches, feats, found, interp, tuple(geoms))


def roi_config_from_attrs(attrs: Mapping[str, Any]) -> ROIConfig:
    """The :class:`ROIConfig` recorded in a ``roi`` group's attrs (see :func:`roi_attrs`); the
    keys that are not settings (feature names, versions, segmenter provenance) are left out."""
    names = {f.name for f in dataclasses.fields(ROIConfig)}
    return ROIConfig.from_dict({k: v for k, v in attrs.items() if k in names})


def stored_roi_config(dataset: str | Path) -> ROIConfig:
    """The settings a dataset's ``roi`` group was computed with, to compute it again.

    Raises:
        DatasetError: the dataset has no ``roi`` group.
    """
    from musclestate.dataset import open_dataset

    with open_dataset(dataset) as ds:
        if not ds.has_derived("roi"):
            raise DatasetError(
                "has no derived 'roi' group to take settings from; run `musclestate roi apply` "
                "with the settings you want",
                dataset,
            )
        return roi_config_from_attrs(ds.derived("roi").attrs)


def roi_attrs(config: ROIConfig, segmenter: Any = None) -> dict[str, Any]:
    """JSON attrs of the ``roi`` group: settings, feature names and units, model provenance.

    ``musclestate_version`` is the package version that computed the patches and measures;
    training warns when it differs from the running one (see
    :func:`musclestate.training.data.load_cohort`).
    """
    from musclestate import __version__

    model: dict[str, Any] = {"path": config.model or "shipped"}
    if segmenter is not None:
        card = segmenter.card
        model.update(
            {
                "input_size": segmenter.config.input_size,
                "musclestate_version": card.musclestate_version,
                "metrics_test": card.metrics_test,
            }
        )
    return {
        **config.to_dict(),
        "musclestate_version": __version__,
        "segmenter": model,
        "feature_names": list(FEATURE_NAMES),
        "feature_units": dict(FEATURE_UNITS),
        "patch_channels": list(PATCH_CHANNELS),
    }


def apply_roi(
    dataset_path: str | Path,
    config: ROIConfig | None = None,
    *,
    again: bool = False,
    progress: ProgressFn | None = None,
) -> None:
    """Run the ROI step on every recording of a dataset; write the derived group ``"roi"``.

    Per recording: ``patches`` (T, 2, h, w) uint8, ``features`` (T, F) float32 (names in
    ``attrs["feature_names"]``), ``found`` (T,) bool, ``interpolated`` (T,) bool, and the
    geometry ``superficial_row`` / ``deep_row`` (T, W) float32 rows, ``superficial_cover`` /
    ``deep_cover`` (T, W) bool. The attrs hold the resolved :class:`ROIConfig` and the package
    version (:func:`roi_attrs`).

    Args:
        dataset_path: a dataset folder (``musclestate import``).
        config: settings; manual ROIs in ``config.manual`` replace the network per recording.
        again: recompute with the settings the dataset's ``roi`` group was computed with
            (:func:`stored_roi_config`; e.g. after a musclestate update); ``config`` must then
            be ``None``.
        progress: receives :class:`~musclestate.progress.ProgressEvent` (stage ``"roi"``, unit
            ``"frames"`` over the whole dataset, message the recording id).
    """
    from musclestate.dataset import open_dataset, write_derived

    if again:
        if config is not None:
            raise ConfigError("again=True reuses the stored ROI settings; give no config")
        config = stored_roi_config(dataset_path)
    config = config or ROIConfig()
    ds = open_dataset(dataset_path)
    infos = list(ds.recordings)
    unknown = sorted(set(config.manual) - {r.id for r in infos})
    if unknown:
        raise ConfigError(f"manual ROI for unknown recording id(s) {unknown}")
    segmenter = None
    if len(config.manual) < len(infos):
        from musclestate.roi.segment import load_segmenter

        segmenter = load_segmenter(config.model)
    total = sum(r.n_frames for r in infos)
    done = 0
    out: dict[str, dict[str, np.ndarray]] = {}
    for info in infos:
        frames = ds.frames(info.id)

        def step(
            e: ProgressEvent, base: int = done, rid: str = info.id, n: int = info.n_frames
        ) -> None:
            frames_done = base + round(e.done * n / max(e.total or 1, 1))
            emit(progress, "roi", frames_done, total, "frames", rid)

        res = process_frames(
            frames,
            info.pixel_spacing_mm,
            segmenter,
            config,
            manual=config.manual.get(info.id),
            progress=step,
        )
        missing = int((~res.found).sum())
        if missing:
            log.warning("%s: muscle not found in %d of %d frames", info.id, missing, len(frames))
        out[info.id] = res.arrays()
        done += info.n_frames
    write_derived(dataset_path, "roi", out, roi_attrs(config, segmenter))
    log.info("roi: %d recordings, %d frames", len(infos), total)


# ---- overlays ------------------------------------------------------------------------------


def overlay(
    frame: np.ndarray,
    geometry: MuscleGeometry | None,
    prob: np.ndarray | None = None,
    config: PatchConfig | None = None,
) -> np.ndarray:
    """RGB ``(H, W, 3)`` uint8 picture of a frame with what the ROI step found.

    Probability in red tint, superficial aponeurosis yellow, deep cyan, the sampled MG patch
    area green and SOL area magenta; a red frame border where the muscle was not found.
    """
    from musclestate.roi.patches import sample_grid

    rgb = np.repeat(np.asarray(frame, np.float32)[..., None], 3, axis=2)
    h, w = rgb.shape[:2]
    if prob is not None:
        rgb[..., 0] = np.maximum(rgb[..., 0], 255 * prob)
    if geometry is not None:
        cols = np.arange(w)
        for name, colour in (("superficial", (255, 255, 0)), ("deep", (0, 255, 255))):
            row = geometry.line(name)
            if np.isfinite(row).all():
                r = np.clip(np.rint(row).astype(int), 0, h - 1)
                for dr in (-1, 0, 1):
                    rgb[np.clip(r + dr, 0, h - 1), cols] = colour
        if geometry.found:
            rows, pcols, _ = sample_grid(geometry, config or PatchConfig())
            c = np.clip(np.rint(pcols).astype(int), 0, w - 1)
            for ch, colour in ((0, (0, 255, 0)), (1, (255, 0, 255))):
                for edge in (0, -1):
                    r = np.clip(np.rint(rows[ch, edge]).astype(int), 0, h - 1)
                    rgb[r, c] = colour
                for side in (0, -1):
                    rr = np.clip(np.rint(rows[ch, :, side]).astype(int), 0, h - 1)
                    rgb[rr, c[side]] = colour
        if not geometry.found:
            rgb[:3], rgb[-3:], rgb[:, :3], rgb[:, -3:] = 255, 255, 255, 255
            rgb[:3, :, 1:] = rgb[-3:, :, 1:] = rgb[:, :3, 1:] = rgb[:, -3:, 1:] = 0
    return np.clip(rgb, 0, 255).astype(np.uint8)


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image atomically as PNG."""
    from PIL import Image

    from musclestate._atomic import atomic_file

    with atomic_file(path, suffix=".png") as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    return Path(path)


def result_summary(result: ROIResult) -> dict[str, Any]:
    """JSON-ready summary: frames, found count, mean features, issues seen."""
    issues: dict[str, int] = {}
    for g in result.geometries:
        for i in g.issues:
            issues[i] = issues.get(i, 0) + 1
    with np.errstate(all="ignore"):
        means = {
            k: (float(np.nanmean(result.features[:, j])) if result.found.any() else None)
            for j, k in enumerate(FEATURE_NAMES)
        }
    return {
        "frames": len(result.found),
        "found": int(result.found.sum()),
        "interpolated": int(result.interpolated.sum()),
        "features_mean": means,
        "issues": issues,
    }


def dumps(obj: Any) -> str:
    """JSON text with NaN written as null."""

    def clean(o: Any) -> Any:
        if isinstance(o, float) and not np.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        return o

    return json.dumps(clean(obj), indent=2)


def write_rgb_video(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write ``(T, H, W, 3)`` uint8 RGB frames as H.264 MP4 (yuv420p), atomically.

    :func:`musclestate.io.video.write_video` writes grey frames only; overlays need colour.
    """
    import av

    from musclestate._atomic import atomic_file

    f = np.asarray(frames)
    if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8 or not len(f):
        raise InputError(f"frames must be (T, H, W, 3) uint8, got {f.shape} {f.dtype}", path)
    h, w = f.shape[1] // 2 * 2, f.shape[2] // 2 * 2  # yuv420p needs even sizes
    from fractions import Fraction

    with atomic_file(path, suffix=Path(path).suffix) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=Fraction(float(fps)).limit_denominator(10000))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": "20"}
            for rgb in f:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
                out.mux(stream.encode(vf))
            out.mux(stream.encode(None))
    return Path(path)
