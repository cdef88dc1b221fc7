"""Where frames come from: recordings on disk, datasets, capture devices, and real-time replay.

Every source yields :class:`Frame` records (0-based index, time stamp in seconds, ``(H, W)`` uint8
image, already cropped and flipped) one at a time, so a long video never has to fit in memory and
the same predictor code serves files and live devices.

- :class:`PyAVSource` reads a video file or a capture device through
  :class:`musclestate.io.video.VideoReader`, the reader ``import`` uses (same luma, rotation,
  crop, flip and time stamps): ``v4l2`` on Linux, ``avfoundation`` on macOS, ``dshow`` on
  Windows, ``lavfi`` for synthetic test patterns.
- :class:`ArraySource` serves frames already in memory (a :class:`~musclestate.records.Recording`
  read by :func:`musclestate.io.read_recording` from an image folder, image file or TIFF stack,
  or DICOM cine, or a dataset recording). No frame is decoded here: :mod:`musclestate.io` owns
  every decode.
- :class:`ReplaySource` replays any source at its real frame rate, as a scanner would deliver it.
- :class:`LiveFeed` puts a bounded queue between a source (read on its own thread) and the
  consumer: when the consumer falls behind, the oldest waiting frame is dropped and counted, so
  latency stays bounded instead of growing; a source that ends or stalls ends the feed cleanly.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musclestate.errors import ConfigError, InputError
from musclestate.io._common import Crop, apply_crop_flip, check_crop
from musclestate.io.formats import media_kind
from musclestate.records import Recording

log = logging.getLogger(__name__)

#: Capture formats accepted in a ``FORMAT:URL`` device spec (FFmpeg input device names).
DEVICE_FORMATS = frozenset({"v4l2", "avfoundation", "dshow", "lavfi", "x11grab", "gdigrab"})


@dataclass(frozen=True)
class Frame:
    """One frame as the predictor sees it.

    Attributes:
        index: 0-based index of the frame in its source (counting frames the source delivered,
            including any later dropped by a :class:`LiveFeed`).
        t_s: time stamp in seconds: container time for files, capture time for devices.
        image: ``(H, W)`` uint8, row 0 at the skin, after crop and flip.
    """

    index: int
    t_s: float
    image: np.ndarray


@dataclass(frozen=True)
class SourceInfo:
    """What a source is, for provenance and for checks against a bundle's training data.

    Attributes:
        name: short name (file stem, device string, recording id).
        location: file path, folder, device URL or ``DATASET#rec_id``.
        fps: nominal frames per second (``nan`` where unknown).
        pixel_spacing_mm: ``(row_mm, col_mm)`` after crop, or ``None`` where unknown.
        crop: ``(x, y, w, h)`` applied to every frame (0-based pixels), or ``None``.
        flip_horizontal: whether frames are mirrored left-right.
        live: True for capture devices (frames cannot be re-read).
        n_frames: number of frames expected in advance (for a video, the container's listing,
            which a trimmed file exceeds: only the decoded frames count), else ``None``.
        frame_shape: ``(H, W)`` of the delivered frames (after crop) where known, else ``None``.
    """

    name: str
    location: str
    fps: float = float("nan")
    pixel_spacing_mm: tuple[float, float] | None = None
    crop: Crop | None = None
    flip_horizontal: bool = False
    live: bool = False
    n_frames: int | None = None
    frame_shape: tuple[int, int] | None = None
    extra: dict = field(default_factory=dict)


class FrameSource:
    """Base class: an iterable of :class:`Frame` with a :class:`SourceInfo`; close when done."""

    info: SourceInfo

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release files or devices (idempotent)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shape_after(shape: Sequence[int], crop: Crop | None) -> tuple[int, int]:
    return (int(shape[0]), int(shape[1])) if crop is None else (crop[3], crop[2])


def _fresh(image: np.ndarray) -> np.ndarray:
    # Always a fresh array: a decoder may reuse the buffer a luma view points into.
    return np.array(image, dtype=np.uint8, order="C", copy=True)


class ArraySource(FrameSource):
    """Frames already in memory: ``frames (T, H, W) uint8`` with ``t_s (T,)`` seconds."""

    def __init__(
        self,
        frames: np.ndarray,
        t_s: np.ndarray,
        *,
        name: str = "frames",
        location: str = "",
        pixel_spacing_mm: tuple[float, float] | None = None,
        crop: Sequence[int] | None = None,
        flip_horizontal: bool = False,
    ) -> None:
        frames = np.asarray(frames)
        if frames.ndim != 3 or frames.dtype != np.uint8:
            raise InputError(
                f"frames must be (T, H, W) uint8, got {frames.shape} {frames.dtype}",
                location or None,
            )
        t = np.asarray(t_s, dtype=np.float64)
        if t.shape != (frames.shape[0],):
            raise InputError(
                f"{frames.shape[0]} frames but {t.shape} frame times", location or None
            )
        self._frames, self._t = frames, t
        where = Path(location) if location else None
        self._crop = (
            None if crop is None else check_crop(crop, frames.shape[2], frames.shape[1], where)
        )
        self._flip = bool(flip_horizontal)
        fps = float(1.0 / np.median(np.diff(t))) if t.size > 1 else float("nan")
        self.info = SourceInfo(
            name=name,
            location=location or name,
            fps=fps,
            pixel_spacing_mm=pixel_spacing_mm,
            crop=self._crop,
            flip_horizontal=self._flip,
            n_frames=int(frames.shape[0]),
            frame_shape=_shape_after(frames.shape[1:], self._crop),
        )

    @classmethod
    def from_recording(
        cls, rec: Recording, *, crop: Sequence[int] | None = None, flip_horizontal: bool = False
    ) -> ArraySource:
        """Wrap a :class:`~musclestate.records.Recording` (crop/flip were applied when read)."""
        return cls(
            rec.frames,
            rec.t_s,
            name=rec.meta.trial,
            location=rec.meta.source or rec.meta.trial,
            pixel_spacing_mm=rec.pixel_spacing_mm,
            crop=crop,
            flip_horizontal=flip_horizontal,
        )

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self._frames.shape[0]):
            image = apply_crop_flip(self._frames[i], self._crop, self._flip)
            yield Frame(i, float(self._t[i]), _fresh(image))


class PyAVSource(FrameSource):
    """A video file or capture device, decoded by :class:`musclestate.io.video.VideoReader`.

    A thin adapter: frames, rotation, crop, flip and times are exactly those that
    :func:`musclestate.io.read_video` gives when a dataset is imported.

    Args:
        url: file path, or device URL (``/dev/video0``, ``0`` for avfoundation, a lavfi graph).
        format: FFmpeg input format for devices (``"v4l2"``, ``"avfoundation"``, ``"dshow"``,
            ``"lavfi"``); ``None`` for files.
        options: FFmpeg input options (e.g. ``{"framerate": "40", "video_size": "640x480"}``).
        crop: ``(x, y, w, h)`` in 0-based pixels of the shown frame.
        flip_horizontal: mirror left-right after cropping.
        pixel_spacing_mm: ``(row_mm, col_mm)`` of the cropped image, where known.
        live: True for devices: time stamps are capture times relative to the first frame.
        fps: frame rate that replaces a file's time stamps (as ``read_video(fps=)``).
    """

    def __init__(
        self,
        url: str | Path,
        *,
        format: str | None = None,
        options: dict[str, str] | None = None,
        crop: Sequence[int] | None = None,
        flip_horizontal: bool = False,
        pixel_spacing_mm: tuple[float, float] | None = None,
        live: bool = False,
        name: str | None = None,
        fps: float | None = None,
    ) -> None:
        from musclestate.io.video import VideoReader

        self._url = str(url)
        self._reader = VideoReader(
            url,
            crop=crop,
            flip_horizontal=flip_horizontal,
            fps=None if live else fps,
            format=format,
            options=options,
            live=live,
        )
        vi = self._reader.info
        shape = (vi.height, vi.width)
        crop_box = self._reader.crop
        self.info = SourceInfo(
            name=name or (Path(self._url).stem if not live else self._url),
            location=self._url if live else str(Path(self._url).resolve()),
            fps=vi.fps if fps is None or live else float(fps),
            pixel_spacing_mm=pixel_spacing_mm,
            crop=crop_box,
            flip_horizontal=bool(flip_horizontal),
            live=live,
            n_frames=vi.n_frames or None,
            frame_shape=_shape_after(shape, crop_box),
            extra={
                "format": format,
                "frame_shape_raw": list(shape),
                "rotation_deg": vi.rotation_deg,
                "container_frames": vi.n_frames or None,
            },
        )

    def __iter__(self) -> Iterator[Frame]:
        for i, (t, view) in enumerate(self._reader):
            yield Frame(i, t, _fresh(view))

    def close(self) -> None:
        self._reader.close()


def parse_device(spec: str) -> tuple[str, str] | None:
    """Split a ``FORMAT:URL`` device spec (``v4l2:/dev/video0``, ``lavfi:testsrc``); else None.

    A bare ``/dev/video*`` path means ``v4l2``.
    """
    m = re.fullmatch(r"([a-z0-9_]+):(.+)", spec)
    if m and m.group(1) in DEVICE_FORMATS:
        return m.group(1), m.group(2)
    if re.fullmatch(r"/dev/video\d+", spec):
        return "v4l2", spec
    return None


def open_source(
    spec: str | Path,
    *,
    crop: Sequence[int] | None = None,
    flip_horizontal: bool = False,
    pixel_spacing_mm: tuple[float, float] | None = None,
    fps: float | None = None,
    device_options: dict[str, str] | None = None,
) -> FrameSource:
    """Open a video file, image folder, DICOM cine or capture device as a :class:`FrameSource`.

    Args:
        spec: a path (video file, image folder, DICOM file) or a device ``FORMAT:URL``.
        crop: ``(x, y, w, h)`` 0-based pixels of the B-mode image inside the frame.
        flip_horizontal: mirror so that the muscle runs the same way as in training.
        pixel_spacing_mm: ``(row_mm, col_mm)`` of the cropped image, where the file does not say.
        fps: frame rate of an image folder or stack; replaces a video's time stamps.
        device_options: FFmpeg options for a device (``framerate``, ``video_size``, ...).

    A dataset is opened with :func:`dataset_sources` instead (one source per recording).
    """
    text = str(spec)
    dev = parse_device(text)
    path = Path(text)
    if dev is not None and not path.is_file():
        fmt, url = dev
        return PyAVSource(
            url,
            format=fmt,
            options=device_options,
            crop=crop,
            flip_horizontal=flip_horizontal,
            pixel_spacing_mm=pixel_spacing_mm,
            live=True,
            name=text,
        )
    if not path.exists():
        raise InputError(
            "no such file or folder; give a video, image folder, DICOM file, dataset, "
            "or a device as FORMAT:URL (e.g. v4l2:/dev/video0)",
            path,
        )
    kind = media_kind(path)
    if kind == "video":
        return PyAVSource(
            path,
            crop=crop,
            flip_horizontal=flip_horizontal,
            pixel_spacing_mm=pixel_spacing_mm,
            fps=fps,
        )
    # Image folders, image files and DICOM cines: read whole by the io stage, which knows
    # their formats, bit depths and spacing tags.
    from musclestate.io import read_recording

    if kind == "images" and fps is None:
        raise ConfigError(
            f"{path} is an image folder: give its frame rate (--fps, or fps=) so frames get times"
        )

    kw: dict = {"crop": crop, "flip_horizontal": flip_horizontal}
    if pixel_spacing_mm is not None:
        kw["pixel_spacing_mm"] = pixel_spacing_mm
    if fps is not None:
        kw["fps"] = fps
    rec = read_recording(path, **kw)
    return ArraySource.from_recording(rec)


def is_dataset(path: str | Path) -> bool:
    """True for a musclestate dataset folder (it holds a ``manifest.json``)."""
    p = Path(path)
    return p.is_dir() and (p / "manifest.json").is_file()


def dataset_sources(path: str | Path, recordings: Sequence[str] | None = None) -> list[FrameSource]:
    """One :class:`ArraySource` per recording of a dataset (frames read lazily per recording)."""
    from musclestate.dataset import open_dataset

    ds = open_dataset(path)
    infos = {r.id: r for r in ds.recordings}
    ids = list(infos) if recordings is None else list(recordings)
    unknown = [r for r in ids if r not in infos]
    if unknown:
        raise InputError(f"recording(s) {unknown} not in dataset; it holds {sorted(infos)}", path)
    return [_DatasetRecordingSource(ds, infos[r], Path(path)) for r in ids]


class _DatasetRecordingSource(FrameSource):
    def __init__(self, ds, info, path: Path) -> None:
        self._ds, self._rid = ds, info.id
        sp = info.pixel_spacing_mm
        t = np.asarray(ds.frame_times(info.id), dtype=np.float64)
        self._t = t
        self.info = SourceInfo(
            name=str(info.id),
            location=f"{path}#{info.id}",
            fps=float(1.0 / np.median(np.diff(t))) if t.size > 1 else float("nan"),
            pixel_spacing_mm=None if sp is None else (float(sp[0]), float(sp[1])),
            n_frames=int(info.n_frames),
            frame_shape=tuple(int(v) for v in info.frame_shape),
            extra={"participant": info.participant, "trial": info.trial},
        )

    def __iter__(self) -> Iterator[Frame]:
        chunk = 256
        for start in range(0, self._t.size, chunk):
            block = self._ds.frames(self._rid, slice(start, start + chunk))
            for j, img in enumerate(block):
                yield Frame(start + j, float(self._t[start + j]), np.ascontiguousarray(img))


class ReplaySource(FrameSource):
    """Replay ``source`` at its real frame rate (``speed`` times faster), as a scanner would.

    Frame ``i`` is released at wall time ``start + (t_s[i] - t_s[0]) / speed``; a consumer that
    reads too slowly sees frames late (use :class:`LiveFeed` to bound that).
    """

    def __init__(self, source: FrameSource, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ConfigError(f"replay speed must be > 0, got {speed}")
        self._src, self._speed = source, float(speed)
        self.info = SourceInfo(**{**source.info.__dict__, "live": True})

    def __iter__(self) -> Iterator[Frame]:
        start: float | None = None
        t_first = 0.0
        for fr in self._src:
            if start is None:
                start, t_first = time.perf_counter(), fr.t_s
            due = start + (fr.t_s - t_first) / self._speed
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield Frame(fr.index, (fr.t_s - t_first) / self._speed, fr.image)

    def close(self) -> None:
        self._src.close()


@dataclass(frozen=True)
class Arrival:
    """A frame handed over by a :class:`LiveFeed`, with its arrival time (perf_counter s)."""

    frame: Frame
    arrived_s: float


class LiveFeed:
    """Read ``source`` on a background thread into a bounded queue; iterate to consume.

    When the queue is full the oldest waiting frame is dropped (and counted in :attr:`dropped`),
    so the consumer always works on recent frames and latency stays bounded. Iteration ends when
    the source ends, fails, or delivers nothing for ``stall_timeout_s`` seconds;
    :attr:`end_reason` says which (``"ended"``, ``"stalled"``, ``"error: ..."``, ``"stopped"``).

    Args:
        source: any frame source (a device, or a :class:`ReplaySource` for a file).
        maxsize: frames that may wait; 1-2 keeps latency lowest.
        stall_timeout_s: a source silent for this long is treated as ended.
    """

    _END = object()

    def __init__(
        self, source: FrameSource, *, maxsize: int = 2, stall_timeout_s: float = 2.0
    ) -> None:
        if maxsize < 1:
            raise ConfigError(f"queue size must be >= 1, got {maxsize}")
        if not stall_timeout_s > 0:
            raise ConfigError(f"stall timeout must be > 0 s, got {stall_timeout_s}")
        self.source = source
        self.maxsize = int(maxsize)
        self.stall_timeout_s = float(stall_timeout_s)
        self.dropped = 0
        self.delivered = 0
        self.received = 0
        self.end_reason: str | None = None
        self.dropped_indices: list[int] = []
        self._q: queue.Queue = queue.Queue(maxsize=self.maxsize)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="musclestate-feed", daemon=True)

    def _put(self, item: object) -> None:
        # Drop-oldest: free a slot when full. Only this thread puts, so one get is enough.
        with self._lock:
            while True:
                try:
                    self._q.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        old = self._q.get_nowait()
                    except queue.Empty:
                        continue
                    if isinstance(old, Arrival):
                        self.dropped += 1
                        self.dropped_indices.append(old.frame.index)

    def _run(self) -> None:
        try:
            for fr in self.source:
                if self._stop.is_set():
                    break
                self.received += 1
                self._put(Arrival(fr, time.perf_counter()))
        except BaseException as exc:  # handed to the consumer, which decides what to do
            self._error = exc
        finally:
            # The end marker waits for room instead of displacing the last frames.
            while True:
                try:
                    self._q.put(self._END, timeout=0.05)
                    break
                except queue.Full:
                    if self._stop.is_set():
                        break

    def __iter__(self) -> Iterator[Arrival]:
        self._thread.start()
        try:
            while True:
                try:
                    item = self._q.get(timeout=self.stall_timeout_s)
                except queue.Empty:
                    self.end_reason = "stalled"
                    log.warning(
                        "source %s delivered no frame for %.1f s; stopping",
                        self.source.info.name,
                        self.stall_timeout_s,
                    )
                    return
                if item is self._END:
                    if self._error is not None:
                        self.end_reason = f"error: {self._error}"
                        log.error("source %s failed: %s", self.source.info.name, self._error)
                    else:
                        self.end_reason = "ended"
                    return
                self.delivered += 1
                yield item
        finally:
            if self.end_reason is None:
                self.end_reason = "stopped"
            self.stop()

    def stop(self) -> None:
        """Ask the reader thread to finish (it may be blocked in the device for a while)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=0.5)
