"""The ROI step at inference time, offline (whole recordings, as in training) and live (causal).

Offline, :class:`BundleRoi` runs :func:`musclestate.roi.pipeline.process_frames` - the very code
that cut the training patches - on overlapping chunks of a recording, so long videos need not fit
in memory and the result equals a whole-recording run (the overlap covers the temporal smoothing
and the interpolation between segmented frames).

Live, future frames do not exist yet: :meth:`BundleRoi.step` segments every k-th frame
(``every``), and in between tracks the muscle by the image shift since the last segmented frame
(phase correlation of the two frames), moving the aponeurosis curves with it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from musclestate.errors import InputError
from musclestate.inference.predictor import RoiOutput
from musclestate.models.card import BundleCard

log = logging.getLogger(__name__)

_OUTLINE_POINTS = 24


def outlines_of(geometry: Any) -> list[np.ndarray]:
    """``(K, 2)`` float32 ``(x, y)`` polylines of a geometry: the two aponeuroses, SOL bottom."""
    if geometry is None or not geometry.found:
        return []
    x0, x1 = geometry.span()
    cols = np.linspace(x0, x1 - 1, _OUTLINE_POINTS)
    grid = np.arange(geometry.shape[1])
    lines = (geometry.superficial_row, geometry.deep_row, geometry.sol_bottom_row())
    return [np.column_stack([cols, np.interp(cols, grid, row)]).astype(np.float32) for row in lines]


def _spectrum(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img, np.float32)
    win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1])).astype(np.float32)
    return np.fft.rfft2((a - a.mean()) * win)


def _peak_shift(fa: np.ndarray, fb: np.ndarray, shape: tuple[int, int]) -> tuple[float, float]:
    cross = fb * np.conj(fa)
    cross /= np.maximum(np.abs(cross), 1e-6)
    corr = np.fft.irfft2(cross, s=shape)
    py, px = np.unravel_index(int(np.argmax(corr)), corr.shape)

    def refine(c_m: float, c_0: float, c_p: float) -> float:
        d = c_m - 2 * c_0 + c_p
        return 0.0 if d == 0 else 0.5 * (c_m - c_p) / d

    h, w = corr.shape
    dy = py + refine(corr[(py - 1) % h, px], corr[py, px], corr[(py + 1) % h, px])
    dx = px + refine(corr[py, (px - 1) % w], corr[py, px], corr[py, (px + 1) % w])
    return float(dy - h if dy > h / 2 else dy), float(dx - w if dx > w / 2 else dx)


def phase_shift(ref: np.ndarray, img: np.ndarray, max_shift: float) -> tuple[float, float]:
    """Translation ``(dy, dx)`` in pixels that moves ``ref`` onto ``img`` (phase correlation).

    Normalised cross-power spectrum (Kuglin & Hines 1975), peak refined by a parabola through its
    neighbours. Written here because neither scipy nor any installed library offers it (it is
    ``skimage.registration.phase_cross_correlation``, not a dependency). Shifts beyond
    ``max_shift`` pixels are treated as failure and return ``(0, 0)``.
    """
    dy, dx = _peak_shift(_spectrum(ref), _spectrum(img), np.shape(ref))
    if abs(dy) > max_shift or abs(dx) > max_shift:
        return 0.0, 0.0
    return dy, dx


class ShiftTracker:
    """Image shift of live frames against a key frame, on a small copy (long side <= ``size``).

    The key frame's spectrum is kept, so each frame costs one forward and one inverse FFT of a
    ~``size`` x ``size`` image whatever the frame size. Shifts are returned in frame pixels.
    """

    def __init__(self, size: int = 128) -> None:
        self.size = int(size)
        self._ref: np.ndarray | None = None
        self._k = 1

    def _small(self, frame: np.ndarray) -> np.ndarray:
        k = self._k
        h, w = (frame.shape[0] // k) * k, (frame.shape[1] // k) * k
        f = np.asarray(frame[:h, :w], np.float32)
        return f.reshape(h // k, k, w // k, k).mean(axis=(1, 3)) if k > 1 else f

    def set_reference(self, frame: np.ndarray) -> None:
        self._k = max(1, -(-max(frame.shape) // self.size))
        small = self._small(frame)
        self._shape = small.shape
        self._ref = _spectrum(small)

    def shift(self, frame: np.ndarray) -> tuple[float, float]:
        """``(dy, dx)`` from the key frame to ``frame`` in pixels; (0, 0) if implausible."""
        if self._ref is None:
            return 0.0, 0.0
        dy, dx = _peak_shift(self._ref, _spectrum(self._small(frame)), self._shape)
        if max(abs(dy), abs(dx)) > min(self._shape) / 8:
            return 0.0, 0.0
        return dy * self._k, dx * self._k


def shift_geometry(geometry: Any, dy: float, dx: float) -> Any:
    """The geometry moved by ``dy`` rows and ``dx`` columns (curves resampled, clipped)."""
    if not geometry.found or (dy == 0 and dx == 0):
        return geometry
    h, w = geometry.shape
    cols = np.arange(w, dtype=np.float64)

    def move(row: np.ndarray) -> np.ndarray:
        # np.interp extends the end values; the fitted curves are near-linear at the ends anyway
        return np.clip(np.interp(cols - dx, cols, row) + dy, 0, h - 1)

    def move_cover(cover: np.ndarray) -> np.ndarray:
        idx = np.rint(cols - dx).astype(int)
        ok = (idx >= 0) & (idx < w)
        out = np.zeros(w, bool)
        out[ok] = cover[idx[ok]]
        return out

    return dataclasses.replace(
        geometry,
        superficial_row=move(geometry.superficial_row),
        deep_row=move(geometry.deep_row),
        superficial_cover=move_cover(geometry.superficial_cover),
        deep_cover=move_cover(geometry.deep_cover),
        source="tracked",
    )


class BundleRoi:
    """ROI stage with the settings a bundle was trained with (see the module docstring).

    Args:
        segmenter: a :class:`~musclestate.roi.segment.Segmenter` (or anything with its
            ``predict(frames, batch_size=...)``, e.g. the ONNX Runtime one).
        config: the :class:`~musclestate.roi.pipeline.ROIConfig` of the bundle's training data.
        every: segment every k-th frame (``None`` = as in training).
        default_spacing_mm: spacing for inputs that have none (``None`` = the config's).
        chunk: frames per offline ROI call (memory vs. overhead).
        live_async: live key frames are segmented on a worker thread (see :meth:`step`).
        with_patches: False skips cutting the patches (for :class:`WholeFrameRoi`, whose
            estimator reads the frame); outputs then carry patches without channels.
    """

    def __init__(
        self,
        segmenter: Any,
        config: Any,
        *,
        every: int | None = None,
        default_spacing_mm: tuple[float, float] | None = None,
        chunk: int = 256,
        live_async: bool = True,
        with_patches: bool = True,
    ) -> None:
        from musclestate.roi.architecture import FEATURE_NAMES, FEATURE_UNITS

        if every is not None:
            config = dataclasses.replace(config, every=int(every))
        if default_spacing_mm is not None:
            config = dataclasses.replace(config, default_spacing_mm=tuple(default_spacing_mm))
        self.segmenter = segmenter
        self.config = config
        self.live_async = bool(live_async)
        self.with_patches = bool(with_patches)
        self._pool: Any = None
        k = config.every
        self.chunk = max(k, int(chunk) // k * k)  # segmented frames stay on the k-grid
        self.feature_names: tuple[str, ...] = tuple(FEATURE_NAMES)
        self.feature_units: Mapping[str, str] = dict(FEATURE_UNITS)
        # frames each side that change a chunk's result: the smoothing window over segmented
        # frames, the interpolation to the next segmented frame and the gap bridging
        pad = k * (config.smooth_window // 2 + 1) + config.max_gap + k
        self.context = int(-(-pad // k) * k)
        self.reset()

    def reset(self) -> None:
        self._drop_pending()
        self._pending: Any = None
        self._tracker = ShiftTracker()
        self._tracked_key: np.ndarray | None = None
        self._key_frame: np.ndarray | None = None
        self._key_geom: Any = None
        self._since_key = 0
        self._recent: list[Any] = []

    def _spacing(self, pixel_spacing_mm: tuple[float, float] | None) -> tuple[float, float]:
        sp = pixel_spacing_mm or self.config.default_spacing_mm
        if sp is None:
            raise InputError(
                "the input has no pixel spacing and the bundle's ROI settings give no default; "
                "pass --spacing ROW_MM COL_MM"
            )
        return (float(sp[0]), float(sp[1]))

    def _output(self, frames: np.ndarray, res: Any, sl: slice = slice(None)) -> RoiOutput:
        geoms = res.geometries[sl]
        return RoiOutput(
            patches=res.patches[sl],
            found=np.asarray(res.found[sl], bool),
            features=np.asarray(res.features[sl], np.float64),
            outlines=[
                outlines_of(g) if f else [] for g, f in zip(geoms, res.found[sl], strict=True)
            ],
        )

    def __call__(
        self, frames: np.ndarray, pixel_spacing_mm: tuple[float, float] | None
    ) -> RoiOutput:
        """ROI of ``frames (N, H, W)`` as one stretch (the caller adds :attr:`context`)."""
        from musclestate.roi.pipeline import process_frames

        res = process_frames(
            frames,
            self._spacing(pixel_spacing_mm),
            self.segmenter,
            self.config,
            with_patches=self.with_patches,
        )
        return self._output(frames, res)

    def _segment_key(self, frame: np.ndarray, sp: tuple[float, float]) -> Any:
        """Segment one frame, fit its geometry, smooth causally over recent key frames."""
        from musclestate.roi.geometry import fit_geometry

        cfg = self.config
        prob = self.segmenter.predict(frame[None], batch_size=1)[0]
        geom = fit_geometry(prob, sp, cfg.geometry)
        # causal smoothing: running median over the latest segmented frames
        self._recent = [*self._recent, geom][-(cfg.smooth_window // 2 + 1) :]
        if geom.found and len(self._recent) > 1 and all(g.found for g in self._recent):
            lines = {
                n: np.median(np.stack([g.line(n) for g in self._recent]), axis=0)
                for n in ("superficial", "deep")
            }
            geom = dataclasses.replace(
                geom, superficial_row=lines["superficial"], deep_row=lines["deep"]
            )
        return geom

    def _drop_pending(self) -> None:
        """Forget a key frame still being segmented (waits for it: it shares tracking state)."""
        from concurrent.futures import wait

        fut = getattr(self, "_pending", None)
        if fut is not None and not fut.cancel():
            wait([fut])
        self._pending = None

    def _poll_worker(self) -> None:
        fut = self._pending
        if fut is not None and fut.done():
            self._pending = None
            frame, geom = fut.result()
            self._key_frame, self._key_geom = frame, geom

    def step(self, frame: np.ndarray, pixel_spacing_mm: tuple[float, float] | None) -> RoiOutput:
        """Causal ROI of one live frame ``(H, W)`` uint8 (keeps tracking state).

        Every ``every``-th frame is segmented. With ``live_async`` the segmentation runs on a
        worker thread and the frames meanwhile are tracked from the latest finished key frame, so
        no single frame waits for the network; otherwise the key frame waits for it.
        """
        from musclestate.roi.architecture import feature_vector, measure
        from musclestate.roi.patches import extract_patches

        sp = self._spacing(pixel_spacing_mm)
        cfg = self.config
        frame = np.asarray(frame)
        stale = self._key_frame is None or self._key_frame.shape != frame.shape
        due = self._since_key >= cfg.every - 1
        if self.live_async and not stale:
            self._poll_worker()
            if due and self._pending is None:
                if self._pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="musclestate-roi")
                copy = frame.copy()
                self._pending = self._pool.submit(lambda: (copy, self._segment_key(copy, sp)))
                self._since_key = 0
            else:
                self._since_key += 1
        elif stale or due:
            self._drop_pending()
            self._key_frame, self._key_geom = frame, self._segment_key(frame, sp)
            self._since_key = 0
        else:
            self._since_key += 1
        if self._tracked_key is not self._key_frame:
            self._tracker.set_reference(self._key_frame)
            self._tracked_key = self._key_frame
        if self._key_frame is frame:
            geom = self._key_geom
        else:
            geom = shift_geometry(self._key_geom, *self._tracker.shift(frame))
        found = bool(geom.found)
        patches = cfg.patches.zeros(1, cut=self.with_patches)
        feats = np.full((1, len(self.feature_names)), np.nan)
        if found:
            if self.with_patches:
                patches[0] = extract_patches(frame, geom, cfg.patches)
            feats[0] = feature_vector(measure(frame, geom))
        return RoiOutput(patches, np.array([found]), feats, [outlines_of(geom) if found else []])

    def close(self) -> None:
        """Stop the live worker thread (idempotent)."""
        self._drop_pending()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class WholeFrameRoi:
    """ROI stage for bundles trained on whole frames (``input = "frame"``).

    The estimator gets each frame itself, ``(N, 1, H, W)`` (the bundle resizes it by area
    averaging, as training did), on every frame. The muscle is still found by ``inner`` (the
    bundle's ROI settings), for the architecture measures, the novelty flag and the overlay; a
    bundle whose card has no ROI settings runs without (``inner = None``: no measures, no
    outlines, ``roi_found`` True).
    """

    def __init__(self, inner: BundleRoi | None) -> None:
        self.inner = inner
        self.feature_names: tuple[str, ...] = () if inner is None else inner.feature_names
        self.feature_units: Mapping[str, str] = {} if inner is None else inner.feature_units
        self.context = 0 if inner is None else inner.context
        self.chunk = 256 if inner is None else inner.chunk
        self.config = None if inner is None else inner.config

    def _with_frames(self, frames: np.ndarray, out: RoiOutput | None) -> RoiOutput:
        n = frames.shape[0]
        every = np.ones(n, bool)
        if out is None:
            return RoiOutput(
                frames[:, None], every, np.zeros((n, 0)), [[] for _ in range(n)], every
            )
        return dataclasses.replace(out, patches=frames[:, None], usable=every)

    def __call__(
        self, frames: np.ndarray, pixel_spacing_mm: tuple[float, float] | None
    ) -> RoiOutput:
        """``frames (N, H, W) uint8`` -> the frames as estimator input, plus the ROI's output."""
        inner = None if self.inner is None else self.inner(frames, pixel_spacing_mm)
        return self._with_frames(frames, inner)

    def step(self, frame: np.ndarray, pixel_spacing_mm: tuple[float, float] | None) -> RoiOutput:
        """One live frame ``(H, W) uint8``."""
        inner = None if self.inner is None else self.inner.step(frame, pixel_spacing_mm)
        return self._with_frames(frame[None], inner)

    def reset(self) -> None:
        if self.inner is not None:
            self.inner.reset()

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def roi_config_from_card(card: BundleCard) -> Any:
    """The :class:`~musclestate.roi.pipeline.ROIConfig` a bundle's training patches were cut with.

    The card's ``roi`` entry holds the dataset's ROI attrs; keys that are not settings (feature
    names, segmenter provenance) are left out.
    """
    from musclestate.roi.pipeline import roi_config_from_attrs

    roi = dict(card.roi)
    if not roi:
        raise InputError(
            "the bundle's card has no ROI settings (card.roi); it was not trained on ROI "
            "patches, so musclestate cannot cut its input from frames"
        )
    return roi_config_from_attrs(roi)


def chunk_bounds(n: int, chunk: int, context: int) -> Sequence[tuple[int, int, int, int]]:
    """``(lo, hi, keep_lo, keep_hi)`` per chunk: process ``[lo, hi)``, keep ``[keep_lo, keep_hi)``.

    Chunks start at multiples of ``chunk`` and are read with ``context`` extra frames each side.
    """
    out = []
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        out.append((max(0, s - context), min(n, e + context), s, e))
    return out
