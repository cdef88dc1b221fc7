"""Ultrasound video files (MP4, AVI, MOV, WMV, MKV) in and out, through PyAV (FFmpeg).

Reading gives a :class:`~musclestate.records.Recording` whose frames are the decoded luma
(``Y'``) plane as ``(T, H, W)`` uint8 and whose frame times come from the container's
presentation time stamps (``pts * time_base``), never from an assumed constant rate: screen
captures and scanner exports often have irregular timing.

Luma: for 8-bit YUV and grey pixel formats the ``Y'`` plane is taken as stored, without a
studio-range to full-range stretch (an ultrasound image is already grey, so ``Y'`` *is* the
image; a stretch would only requantise it, and screen captures such as the Drazan clips hold
levels outside 16..235 with the range left unspecified). A video made from grey images with a
studio-range conversion therefore keeps its 16..235 levels. Other formats (RGB, paletted,
>8-bit) go through FFmpeg's own conversion to ``gray``. :func:`frame_luma` is the rule, for
any code that decodes frames itself (live sources) and must match what training data saw.

Display rotation: a phone film carries a display matrix (side data) that players apply; frames
are returned as players show them (right-angle turns and mirrors, see :class:`DisplayTransform`;
crops are given in the shown frame), and ``meta.extra["video"]`` records the clockwise turn
applied (``rotation_deg``) and any mirroring.

Frame count: the decoded frames and their time stamps are the truth. A container may list more
frames than are shown (an MP4 trimmed through an edit list without re-encoding, an AVI with
empty chunks for skipped frames); the difference is recorded, not refused. A file whose decoded
frames stop before the stream's stated duration is truncated, and that is an error.

Repeated frames: a screen capture that records faster than the scanner produces runs of frames
that differ only by compression noise. :func:`find_repeated_frames` documents the rule used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.errors import MediaError
from musclestate.io._common import (
    Crop,
    check_crop,
    depth_spacing,
    finish_meta,
    make_recording,
    positive_fps,
    user_spacing,
)
from musclestate.io.formats import VIDEO_SUFFIXES
from musclestate.io.repeats import find_repeated_frames, mean_abs_differences
from musclestate.io.video_write import write_video
from musclestate.records import Recording, RecordingMeta

__all__ = [
    "VIDEO_SUFFIXES",
    "VideoInfo",
    "VideoReader",
    "find_repeated_frames",
    "frame_luma",
    "iter_video",
    "mean_abs_differences",
    "probe_video",
    "read_video",
    "write_video",
]

log = logging.getLogger(__name__)

# 8-bit formats whose first plane is luma at full resolution: read it directly (no swscale pass).
_LUMA_FORMATS = frozenset(
    {
        "gray",
        "yuv420p",
        "yuvj420p",
        "yuv422p",
        "yuvj422p",
        "yuv444p",
        "yuvj444p",
        "yuv440p",
        "yuvj440p",
        "yuv411p",
        "yuv410p",
        "nv12",
        "nv21",
    }
)


@dataclass(frozen=True)
class VideoInfo:
    """What a video's first video stream holds, as players show it.

    Attributes:
        path: the file (or device URL).
        width, height: shown frame size in pixels (after the display rotation).
        n_frames: frame count the container lists (0 where it has none); the decoded frames
            may be fewer (edit lists, skipped-frame chunks).
        fps: average frame rate from the container (``nan`` where unknown).
        duration_s: stream duration in seconds (``nan`` where unknown).
        codec: decoder name, e.g. ``"h264"``.
        pixel_format: decoded pixel format, e.g. ``"yuv420p"``.
        rotation_deg: clockwise turn applied to the stored frames for display (0, 90, 180, 270).
        stored_width, stored_height: frame size as stored in the stream.
        mirrored: the display matrix also mirrors the frames (applied).
    """

    path: Path
    width: int
    height: int
    n_frames: int
    fps: float
    duration_s: float
    codec: str
    pixel_format: str
    rotation_deg: int = 0
    stored_width: int = 0
    stored_height: int = 0
    mirrored: bool = False


def frame_luma(frame: Any) -> np.ndarray:
    """The ``(H, W)`` uint8 luma of a decoded PyAV ``VideoFrame`` as stored (a view where possible).

    The view may point into the decoder's buffer: copy it before decoding the next frame.
    """
    if frame.format.name in _LUMA_FORMATS:
        plane = frame.planes[0]
        # The plane's rows are padded to line_size bytes; take the visible width.
        return np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[
            :, : frame.width
        ]
    return frame.to_ndarray(format="gray")


@dataclass(frozen=True)
class DisplayTransform:
    """How players show a stored frame: the display matrix reduced to axis swaps and mirrors.

    The display matrix (FFmpeg ``AV_FRAME_DATA_DISPLAYMATRIX``, ``libavutil/display.h``) maps a
    stored pixel ``(x, y)`` to ``(a x + c y, b x + d y)``; for the right-angle turns and mirrors
    that cameras write, ``a, b, c, d`` are -1, 0 or 1. Shown ``= stored.T`` when ``swap``, then
    reversed along rows / columns where ``flip_rows`` / ``flip_cols``.

    Attributes:
        swap: rows and columns exchange (a 90 or 270 deg turn).
        flip_rows, flip_cols: reverse the (swapped) rows / columns.
        rotation_deg: clockwise turn players report (0, 90, 180, 270).
        mirrored: the matrix mirrors the image (negative determinant).
    """

    swap: bool = False
    flip_rows: bool = False
    flip_cols: bool = False
    rotation_deg: int = 0
    mirrored: bool = False

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The ``(H, W)`` stored image as shown (a view)."""
        if self.swap:
            image = image.T
        if self.flip_rows:
            image = image[::-1]
        if self.flip_cols:
            image = image[:, ::-1]
        return image


def display_transform(frame: Any, path: Path | str) -> DisplayTransform:
    """The :class:`DisplayTransform` of a decoded PyAV frame's display-matrix side data.

    Raises :class:`MediaError` for a matrix that is not a right-angle turn or mirror.
    """
    matrix = None
    for sd in getattr(frame, "side_data", None) or []:
        if "DISPLAYMATRIX" in str(getattr(sd, "type", "")):
            matrix = np.frombuffer(bytes(sd), dtype=np.int32)
            break
    if matrix is None or matrix.size < 5:
        return DisplayTransform()
    # 16.16 fixed point; a, b, c, d as in libavutil/display.h.
    a, b, _, c, d = (float(v) / 65536.0 for v in matrix[:5])
    unit = np.array([a, b, c, d])
    signs = np.sign(np.round(unit, 3))
    if not np.allclose(np.abs(unit), np.abs(signs), atol=1e-3) or abs(a * d - b * c) < 0.5:
        angle = getattr(frame, "rotation", 0)
        raise MediaError(
            f"the display matrix turns frames by {angle} deg, not a right angle; re-encode the "
            "video upright (e.g. ffmpeg -i IN OUT.mp4, which applies the rotation)",
            None if isinstance(path, str) else path,
        )
    sa, sb, sc, sd_ = (int(v) for v in signs)
    swap = sa == 0
    # x' = a x + c y, y' = b x + d y (then shifted to start at 0).
    flip_rows = (sb if swap else sd_) < 0
    flip_cols = (sc if swap else sa) < 0
    angle = int(getattr(frame, "rotation", 0) or 0)  # counter-clockwise, as FFmpeg reports it
    return DisplayTransform(swap, flip_rows, flip_cols, (-angle) % 360, sa * sd_ - sb * sc < 0)


class VideoReader:
    """An open video file or capture device, decoded frame by frame with one set of rules.

    Frames are the luma plane (:func:`frame_luma`), turned as players show them, then cropped
    and mirrored. Iterating yields ``(t_s, frame)`` with ``frame`` an ``(h, w)`` uint8 view that
    stays valid only until the next frame (copy it to keep it). Times:

    - files: presentation time stamps ``pts * time_base`` minus the first decoded frame's, so
      the first frame is at 0 s (``pts_start_s`` keeps the original start); with ``fps`` given,
      ``k / fps`` instead. Time stamps that do not increase raise :class:`MediaError`.
    - devices (``live=True``): capture times on the wall clock, 0 s at the first frame.

    Args:
        url: a video file, or a device URL (``/dev/video0``, a lavfi graph) with ``format``.
        crop: ``(x, y, w, h)`` in 0-based pixels of the shown (rotated) frame.
        flip_horizontal: mirror left-right after cropping.
        fps: frame rate in frames/s that replaces a file's time stamps.
        format: FFmpeg input format of a device (``"v4l2"``, ``"lavfi"``, ...); ``None`` for files.
        options: FFmpeg input options for a device.
        live: a capture device (times from the wall clock, no frame count).

    Raises:
        MediaError: missing, unreadable or corrupt file, no video stream, no decodable frame,
            crop outside the shown frame, missing or non-increasing time stamps.
    """

    def __init__(
        self,
        url: str | Path,
        *,
        crop: Sequence[int] | None = None,
        flip_horizontal: bool = False,
        fps: float | None = None,
        format: str | None = None,
        options: dict[str, str] | None = None,
        live: bool = False,
    ) -> None:
        import av  # heavy: imported on first use only

        self._av = av
        self.live = bool(live)
        self.path: Path | str = str(url) if live else Path(url)
        where = None if live else self.path
        if not live:
            _check_file(Path(url))
        self.fps_override = None if fps is None else positive_fps(fps, where)
        try:
            self._container = av.open(str(url), mode="r", format=format, options=options or {})
        except av.FFmpegError as exc:
            what = f"device {url!r}" + (f" with format {format!r}" if format else "")
            raise MediaError(
                f"cannot open {'the ' + what if live else 'as a video'} "
                f"({exc.strerror or type(exc).__name__}); "
                + (
                    "check the device name and that FFmpeg can read it"
                    if live
                    else "the file is corrupt, truncated or not a video"
                ),
                where,
            ) from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise MediaError(f"cannot open as a video ({exc})", where) from None
        try:
            self._setup(crop, flip_horizontal)
        except BaseException:
            self._container.close()
            raise

    def _setup(self, crop: Sequence[int] | None, flip_horizontal: bool) -> None:
        where = None if self.live else self.path
        if not self._container.streams.video:
            raise MediaError("contains no video stream", where)
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._stream = stream
        self._frames = self._decode_all()
        self._first = next(self._frames, None)
        if self._first is None:
            raise MediaError("contains zero decodable video frames", where)
        self._display = display_transform(self._first, self.path)
        cc = stream.codec_context
        sh, sw = self._first.height, self._first.width
        h, w = (sw, sh) if self._display.swap else (sh, sw)
        rate = stream.average_rate or stream.guessed_rate
        duration = (
            float(stream.duration * stream.time_base)
            if stream.duration is not None and stream.time_base is not None
            else float("nan")
        )
        self.info = VideoInfo(
            path=Path(self.path) if not self.live else Path(str(self.path)),
            width=int(w),
            height=int(h),
            n_frames=0 if self.live else int(stream.frames or 0),
            fps=float(rate) if rate else float("nan"),
            duration_s=duration,
            codec=str(cc.name),
            pixel_format=str(cc.format.name) if cc.format is not None else "",
            rotation_deg=self._display.rotation_deg,
            stored_width=int(sw),
            stored_height=int(sh),
            mirrored=self._display.mirrored,
        )
        self.crop: Crop | None = None if crop is None else check_crop(crop, w, h, where)
        self.flip_horizontal = bool(flip_horizontal)
        self.pts_start_s = float("nan")
        self.decoded = 0

    def _decode_all(self) -> Iterator[Any]:
        av = self._av
        k = 0
        demux = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demux)
                frames = packet.decode()
            except StopIteration:
                return
            except av.FFmpegError as exc:
                raise MediaError(
                    f"decoding failed at frame {k} ({exc.strerror or type(exc).__name__}); the "
                    "file is probably truncated or corrupt",
                    None if self.live else self.path,
                ) from None
            for frame in frames:
                yield frame
                k += 1

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        where = None if self.live else self.path
        tb = self._stream.time_base
        frame: Any = self._first
        self._first = None
        if frame is None:
            raise MediaError("a video can be iterated once; open it again", where)
        t0 = time.perf_counter()
        last = -np.inf
        k = 0
        try:
            while frame is not None:
                if self.live:
                    t = time.perf_counter() - t0
                else:
                    pts = frame.pts if frame.pts is not None else frame.dts
                    t_pts = None if pts is None or tb is None else float(pts * tb)
                    if k == 0:
                        self.pts_start_s = 0.0 if t_pts is None else t_pts
                    if self.fps_override is not None:
                        t = k / self.fps_override
                    elif t_pts is None:
                        raise MediaError(
                            f"frame {k} has no time stamp; re-mux the file (e.g. ffmpeg -i IN -c "
                            "copy OUT.mp4) so the container carries presentation time stamps",
                            where,
                        )
                    else:
                        t = t_pts - self.pts_start_s
                if t <= last and not self.live:
                    raise MediaError(
                        f"frame time stamps do not increase at frame {k} ({last:.6g} s then "
                        f"{t:.6g} s); re-mux the file with correct time stamps",
                        where,
                    )
                last = t
                yield t, self._shown(frame, k)
                k += 1
                self.decoded = k
                frame = next(self._frames, None)
        finally:
            self.close()

    def _shown(self, frame: Any, k: int) -> np.ndarray:
        """The frame as players show it, cropped and mirrored (a view)."""
        y = self._display.apply(frame_luma(frame))
        if y.shape != (self.info.height, self.info.width):
            raise MediaError(
                f"frame {k} is {y.shape[1]}x{y.shape[0]} (WxH) but frame 0 is "
                f"{self.info.width}x{self.info.height}; re-encode the video at one size",
                None if self.live else self.path,
            )
        if self.crop is not None:
            x0, y0, w, h = self.crop
            y = y[y0 : y0 + h, x0 : x0 + w]
        if self.flip_horizontal:
            y = y[:, ::-1]
        return y

    def close(self) -> None:
        """Release the file or device (idempotent)."""
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError("file not found; check the path", path)
    if path.is_dir():
        raise MediaError("is a folder, not a video file (read_image_folder reads folders)", path)


def probe_video(path: str | Path) -> VideoInfo:
    """A video's shown size, listed frame count, rate, codec and rotation (decodes one frame)."""
    with VideoReader(path) as reader:
        return reader.info


def iter_video(
    path: str | Path,
    *,
    crop: Sequence[int] | None = None,
    flip_horizontal: bool = False,
    fps: float | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Decode a video lazily, yielding ``(t_s, frame)`` per frame, as :func:`read_video` reads it.

    ``t_s`` is in seconds from the first decoded frame (or ``k / fps``); ``frame`` is a fresh
    ``(h, w)`` uint8 array, shown as players show it, cropped and flipped. See
    :class:`VideoReader` for the rules and errors.
    """
    reader = VideoReader(path, crop=crop, flip_horizontal=flip_horizontal, fps=fps)
    for t, view in reader:
        yield t, np.array(view, dtype=np.uint8, copy=True)


def count_note(info: VideoInfo, t_s: np.ndarray, path: Path) -> str | None:
    """Compare the decoded frames with the container's listing.

    Returns ``None`` when they agree, else a note for the metadata. Raises :class:`MediaError`
    when the decoded frames stop well before the stream's stated duration (a truncated file):
    trimmed and skipped frames leave the time line covered, a cut file does not.
    """
    n = int(t_s.size)
    if not info.n_frames or n == info.n_frames:
        return None
    step = float(np.median(np.diff(t_s))) if n > 1 else 1.0 / info.fps if info.fps > 0 else 0.0
    covered = float(t_s[-1] - t_s[0]) + step
    if n < info.n_frames and np.isfinite(info.duration_s) and step > 0:
        if covered < info.duration_s - 1.5 * step:
            raise MediaError(
                f"decoded {n} of the {info.n_frames} frames the container lists, covering "
                f"{covered:.3f} s of its {info.duration_s:.3f} s; the file is probably truncated",
                path,
            )
    why = " (an edit list or skipped-frame chunks)" if n < info.n_frames else ""
    return (
        f"the container lists {info.n_frames} frames, {n} were decoded{why}; the decoded "
        "frames and their time stamps are used"
    )


def read_video(
    path: str | Path,
    *,
    crop: Sequence[int] | None = None,
    flip_horizontal: bool = False,
    drop_repeated: bool = False,
    pixel_spacing_mm: Sequence[float] | float | None = None,
    depth_mm: float | None = None,
    fps: float | None = None,
    meta: RecordingMeta | None = None,
) -> Recording:
    """Read a video file into a :class:`Recording` (frames only; no signals or targets).

    Frames and times are those of :class:`VideoReader`: shown as players show them (display
    rotation applied), first frame at 0 s (the original start is kept in
    ``meta.extra["pts_start_s"]``). Only an explicit ``fps`` replaces the time stamps with
    ``k / fps``, for files whose time stamps are known to be wrong
    (``meta.extra["time_source"]`` says which was used). Repeated frames (see
    :func:`find_repeated_frames`) are always counted; with ``drop_repeated`` they are removed,
    keeping the first frame of each run with its own time.

    ``meta.extra`` gains: ``repeated_frames`` (count), ``repeated_frame_indices`` (indices in
    decoded order), ``dropped_frames`` (count), ``dropped_frame_indices``, ``decoded_frames``,
    ``pts_start_s``, ``time_source``, ``crop``, ``flip_horizontal`` and ``video`` (codec, shown
    and stored size, ``rotation_deg``, container fps, ``container_frames`` and, where they
    differ from the decoded frames, ``frame_count_note``).

    Args:
        path: MP4/AVI/MOV/WMV/MKV file.
        crop: ``(x, y, w, h)`` in 0-based pixels of the shown frame (e.g. the B-mode area).
        flip_horizontal: mirror left-right, for tools that expect fascicles the other way.
        drop_repeated: remove repeated frames.
        pixel_spacing_mm: ``(row_mm, col_mm)``, or one number for square pixels; ``None`` if
            unknown (video containers carry no spacing).
        depth_mm: imaging depth spanned by the (cropped) frame's rows; gives square pixels.
        fps: frame rate in frames/s that overrides the container's time stamps.
        meta: recording metadata; ``None`` gives participant ``"unknown"`` and trial = file stem.

    Raises:
        MediaError: missing, unreadable, truncated or corrupt file, zero frames, crop outside
            the frame, missing or non-increasing time stamps.
    """
    path = Path(path)
    if pixel_spacing_mm is not None and depth_mm is not None:
        raise MediaError("give pixel_spacing_mm or depth_mm, not both", path)
    reader = VideoReader(path, crop=crop, flip_horizontal=flip_horizontal, fps=fps)
    info = reader.info
    times: list[float] = []
    stack = np.empty((0, 0, 0), dtype=np.uint8)
    for k, (t, view) in enumerate(reader):
        if k == 0:  # one buffer sized from the container's frame count, grown if it is wrong
            stack = np.empty((max(info.n_frames, 1), *view.shape), dtype=np.uint8)
        elif k == stack.shape[0]:
            stack = np.concatenate([stack, np.empty_like(stack)])
        stack[k] = view
        times.append(t)
    stack = stack[: len(times)]
    t_s = np.asarray(times, dtype=np.float64)
    note = count_note(info, t_s, path)
    if note:
        log.info("%s: %s", path, note)
    repeated = find_repeated_frames(stack)
    rep_idx = np.flatnonzero(repeated)
    dropped: np.ndarray = rep_idx if drop_repeated else np.zeros(0, dtype=np.int64)
    t_kept = t_s
    if drop_repeated and rep_idx.size:
        keep = ~repeated
        stack = stack[keep]
        t_kept = t_s[keep]
    log.info(
        "%s: %d frames, %d repeated%s",
        path.name,
        t_s.size,
        rep_idx.size,
        " (dropped)" if drop_repeated else "",
    )
    video = {
        "codec": info.codec,
        "width": info.width,
        "height": info.height,
        "stored_width": info.stored_width,
        "stored_height": info.stored_height,
        "rotation_deg": info.rotation_deg,
        "mirrored": info.mirrored,
        "container_fps": info.fps,
        "container_frames": info.n_frames,
    }
    if note:
        video["frame_count_note"] = note
    extra = {
        "repeated_frames": int(rep_idx.size),
        "repeated_frame_indices": [int(i) for i in rep_idx],
        "dropped_frames": int(dropped.size),
        "dropped_frame_indices": [int(i) for i in dropped],
        "decoded_frames": int(t_s.size),
        "pts_start_s": reader.pts_start_s,
        "time_source": "container:pts" if fps is None else "user:fps",
        "crop": None if reader.crop is None else list(reader.crop),
        "flip_horizontal": bool(flip_horizontal),
        "video": video,
    }
    if depth_mm is not None:
        spacing, source = depth_spacing(depth_mm, stack.shape[1], path), "user:depth_mm"
    else:
        spacing = user_spacing(pixel_spacing_mm, path)
        source = "user:mm_per_pixel" if spacing is not None else ""
    meta = finish_meta(meta, path, extra, source)
    return make_recording(stack, t_kept, spacing, meta, path)
