"""Live estimation: frame by frame, as the scanner delivers them, with bounded latency.

:func:`run_stream` reads a live source (a capture device, or a file replayed at its real frame
rate) through a :class:`~musclestate.inference.sources.LiveFeed`: a reader thread fills a small
queue, the predictor takes the newest frames one at a time, and when it cannot keep up the oldest
waiting frames are dropped and counted rather than letting latency grow without bound.

Latency of a frame = time from its arrival (the moment the source delivered it) to the moment its
estimate is ready, in milliseconds. A source that ends, fails or stalls ends the stream cleanly:
the rows already written stay on disk and the report says why it stopped.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from musclestate.errors import ConfigError
from musclestate.inference.outputs import Estimates, format_cell
from musclestate.inference.predictor import Predictor
from musclestate.inference.sources import FrameSource, LiveFeed, ReplaySource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamConfig:
    """Settings of a live run.

    Attributes:
        queue_size: frames allowed to wait for the predictor (1-2 keeps latency lowest).
        stall_timeout_s: a source silent this long is treated as ended.
        replay: replay a file source at its real frame rate (False: as fast as it decodes,
            still through the bounded queue).
        replay_speed: replay this many times faster than real time.
        max_frames: stop after this many delivered frames (``None`` = until the source ends).
        max_seconds: stop after this many seconds (``None`` = until the source ends).
        warmup_frames: frames run through the predictor before the source starts (their
            latency is not counted), so one-off start-up costs do not land on the first frames.
    """

    queue_size: int = 2
    stall_timeout_s: float = 2.0
    replay: bool = True
    replay_speed: float = 1.0
    max_frames: int | None = None
    max_seconds: float | None = None
    warmup_frames: int = 3

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ConfigError(f"queue_size must be >= 1, got {self.queue_size}")
        if not self.stall_timeout_s > 0:
            raise ConfigError(f"stall_timeout_s must be > 0, got {self.stall_timeout_s}")
        if not self.replay_speed > 0:
            raise ConfigError(f"replay_speed must be > 0, got {self.replay_speed}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ConfigError(f"max_seconds must be > 0, got {self.max_seconds}")
        if self.warmup_frames < 0:
            raise ConfigError(f"warmup_frames must be >= 0, got {self.warmup_frames}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StreamReport:
    """How a live run went.

    Attributes:
        frames_received: frames the source delivered.
        frames_processed: frames that got an estimate.
        frames_dropped: frames discarded because the predictor was busy.
        end_reason: ``"ended"``, ``"stalled"``, ``"stopped"`` (limit or Ctrl-C) or ``"error: ..."``.
        latency_ms: percentiles ``{"p50", "p90", "p99", "max"}`` over processed frames.
        wall_s: duration of the run in seconds.
        source_fps: nominal frame rate of the source (``nan`` where unknown).
    """

    frames_received: int
    frames_processed: int
    frames_dropped: int
    end_reason: str
    latency_ms: dict[str, float]
    wall_s: float
    source_fps: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RowWriter:
    """Append estimate rows to a CSV as they come, flushing each row.

    Unlike the offline writers this is deliberately not atomic: a live run that is cut short
    keeps every row written so far. Columns are those of
    :meth:`~musclestate.inference.outputs.Estimates.columns` plus ``latency_ms``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: TextIO | None = None
        self._names: list[str] = []
        self.rows = 0

    def write(self, row: Estimates, latency_ms: float) -> None:
        cols = row.columns()
        if self._fh is None:
            self._fh = self.path.open("w", newline="", encoding="utf-8")
            self._names = [*cols, "latency_ms"]
            csv.writer(self._fh).writerow(self._names)
        buf = io.StringIO()
        w = csv.writer(buf)
        for i in range(len(row)):
            w.writerow([format_cell(cols[c][i]) for c in self._names[:-1]] + [f"{latency_ms:.3f}"])
        self._fh.write(buf.getvalue())
        self._fh.flush()
        self.rows += len(row)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def percentiles(latency_ms: np.ndarray) -> dict[str, float]:
    """``{"p50", "p90", "p99", "max"}`` of a latency sample in ms (NaN for an empty sample)."""
    a = np.asarray(latency_ms, dtype=np.float64)
    if a.size == 0:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(a.max())}


def run_stream(
    predictor: Predictor,
    source: FrameSource,
    *,
    config: StreamConfig | None = None,
    on_estimate: Callable[[Estimates, float], None] | None = None,
    writer: RowWriter | None = None,
) -> StreamReport:
    """Estimate a live source frame by frame with bounded latency.

    Args:
        predictor: the loaded predictor (its tracking state is reset first).
        source: a live device, or a file (replayed at real rate when ``config.replay``).
        config: queue, stall and replay settings.
        on_estimate: called with each one-row :class:`Estimates` and its latency in ms.
        writer: rows are appended to it as they come (kept when the run is cut short).

    Returns:
        A :class:`StreamReport`; Ctrl-C ends the run with ``end_reason = "stopped"``.
    """
    cfg = config or StreamConfig()
    if not source.info.live and cfg.replay:
        source = ReplaySource(source, speed=cfg.replay_speed)
    predictor.reset()
    spacing = source.info.pixel_spacing_mm
    feed = LiveFeed(source, maxsize=cfg.queue_size, stall_timeout_s=cfg.stall_timeout_s)
    lat: list[float] = []
    t_start = time.perf_counter()
    warm = cfg.warmup_frames
    interrupted = False
    try:
        for arrival in feed:
            fr = arrival.frame
            while warm > 0:  # first frame's shape known only now; warm up before timing
                predictor.step(fr.image, t_s=fr.t_s, index=fr.index, pixel_spacing_mm=spacing)
                warm -= 1
                if warm == 0:
                    predictor.reset()
            row = predictor.step(fr.image, t_s=fr.t_s, index=fr.index, pixel_spacing_mm=spacing)
            latency = (time.perf_counter() - arrival.arrived_s) * 1e3
            lat.append(latency)
            if writer is not None:
                writer.write(row, latency)
            if on_estimate is not None:
                on_estimate(row, latency)
            if cfg.max_frames is not None and len(lat) >= cfg.max_frames:
                break
            if cfg.max_seconds is not None and time.perf_counter() - t_start >= cfg.max_seconds:
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        feed.stop()
        source.close()
        close = getattr(predictor.roi, "close", None)
        if close is not None:
            close()
        if writer is not None:
            writer.close()
    if interrupted:
        feed.end_reason = "stopped"
    report = StreamReport(
        frames_received=feed.received,
        frames_processed=len(lat),
        frames_dropped=feed.dropped,
        end_reason=feed.end_reason or "stopped",
        latency_ms=percentiles(np.asarray(lat)),
        wall_s=time.perf_counter() - t_start,
        source_fps=float(source.info.fps),
    )
    if report.frames_dropped:
        log.warning(
            "dropped %d of %d frames: the predictor could not keep up with the source",
            report.frames_dropped,
            report.frames_received,
        )
    return report


def stream(
    model: str | Path,
    source: str,
    *,
    out: str | Path | None = None,
    crop: tuple[int, int, int, int] | None = None,
    flip: bool = False,
    spacing: tuple[float, float] | None = None,
    backend: str | None = None,
    roi_every: int | None = None,
    threads: int | None = None,
    segmenter: str | Path | None = None,
    onnx: str | Path | None = None,
    calibration: str | Path | None = None,
    queue: int = 2,
    stall_timeout: float = 2.0,
    speed: float = 1.0,
    max_frames: int | None = None,
    seconds: float | None = None,
    device_options: dict[str, str] | None = None,
    on_estimate: Callable[[Estimates, float], None] | None = None,
) -> StreamReport:
    """Estimate live, frame by frame, with bounded latency (``musclestate stream``).

    Args:
        model: estimator bundle folder.
        source: a video file (replayed at its frame rate) or a capture device ``FORMAT:URL``,
            e.g. ``v4l2:/dev/video0``, ``avfoundation:0``, ``dshow:video=NAME``.
        out: CSV written row by row as estimates come (columns of
            :meth:`~musclestate.inference.outputs.Estimates.columns` plus ``latency_ms``); at
            the end its sidecar ``OUT.json`` gets the provenance, the stream settings and the
            report.
        crop: B-mode image inside the frame, ``(x, y, w, h)`` in 0-based pixels.
        flip: mirror frames left-right.
        spacing: pixel spacing ``(row_mm, col_mm)`` where the source does not say.
        backend: ``"onnx"`` or ``"torch"`` (``None``: the default of
            :class:`~musclestate.inference.predictor.PredictorConfig`).
        roi_every: segment every k-th frame, track the aponeuroses in between.
        threads: CPU threads for the networks.
        segmenter: segmenter weights instead of the bundle's.
        onnx: an estimator exported by :func:`musclestate.inference.export.export_onnx`.
        calibration: the person's calibration profile (:func:`musclestate.calibrate`).
        queue: frames allowed to wait for the predictor; more are dropped.
        stall_timeout: stop when the source is silent this many seconds.
        speed: replay a file this many times real time.
        max_frames: stop after this many frames.
        seconds: stop after this many seconds.
        device_options: FFmpeg options of a capture device.
        on_estimate: called with each one-row estimate and its latency in ms.

    Returns:
        The :class:`StreamReport` (frames received, processed, dropped; latency percentiles).
    """
    from musclestate._atomic import write_json_atomic
    from musclestate.inference import load_predictor
    from musclestate.inference.batch import check_against_training
    from musclestate.inference.outputs import sidecar_path
    from musclestate.inference.predictor import PredictorConfig, provenance
    from musclestate.inference.sources import open_source

    cfg = PredictorConfig.from_options(
        backend=backend, batch_size=1, roi_every=roi_every, threads=threads
    )
    predictor = load_predictor(
        model, config=cfg, segmenter=segmenter, onnx=onnx, calibration=calibration
    )
    scfg = StreamConfig(
        queue_size=queue,
        stall_timeout_s=stall_timeout,
        replay_speed=speed,
        max_frames=max_frames,
        max_seconds=seconds,
    )
    src = open_source(
        source,
        crop=crop,
        flip_horizontal=flip,
        pixel_spacing_mm=spacing,
        device_options=dict(device_options) if device_options else None,
    )
    prov = provenance(predictor, src)
    prov["warnings"] = check_against_training(predictor, src, src.info.frame_shape)
    if getattr(predictor.estimator, "context", 0):
        log.warning(
            "this bundle looks at neighbouring frames; live, the frames after the current one "
            "do not exist yet and are replaced by the current one"
        )
    writer = RowWriter(out) if out is not None else None
    result = run_stream(predictor, src, config=scfg, on_estimate=on_estimate, writer=writer)
    if out is not None:
        done = result.to_dict()
        if np.isnan(done["source_fps"]):
            done["source_fps"] = None
        write_json_atomic(sidecar_path(out), {**prov, "stream": scfg.to_dict(), "report": done})
    return result
