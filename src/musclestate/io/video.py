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

Repeated frames: a screen capture that records faster than the scanner produces runs of frames
that differ only by compression noise. :func:`find_repeated_frames` documents the rule used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from musclestate._atomic import atomic_file
from musclestate.errors import InputError, MediaError
from musclestate.io._common import (
    Crop,
    check_crop,
    depth_spacing,
    finish_meta,
    make_recording,
    user_spacing,
)
from musclestate.records import Recording, RecordingMeta

log = logging.getLogger(__name__)

#: Suffixes :func:`musclestate.io.read_recording` sends here.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".avi", ".mov", ".wmv", ".mkv", ".webm", ".mpg", ".mpeg")

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

_WRITE_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}

# Time base used when writing: 90 kHz, the MPEG convention, exact for 25/30/50/60 fps.
_WRITE_TIME_BASE = Fraction(1, 90_000)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video's first video stream (nothing is decoded).

    Attributes:
        path: the file.
        width, height: frame size in pixels.
        n_frames: frame count from the container index (0 where the container has none).
        fps: average frame rate from the container (``nan`` where unknown).
        duration_s: stream duration in seconds (``nan`` where unknown).
        codec: decoder name, e.g. ``"h264"``.
        pixel_format: decoded pixel format, e.g. ``"yuv420p"``.
    """

    path: Path
    width: int
    height: int
    n_frames: int
    fps: float
    duration_s: float
    codec: str
    pixel_format: str


def _import_av() -> Any:
    import av  # heavy: imported on first use only

    return av


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError("file not found; check the path", path)
    if path.is_dir():
        raise MediaError("is a folder, not a video file (read_image_folder reads folders)", path)


def _open(path: Path) -> Any:
    """Open ``path`` with PyAV and return ``(container, video_stream)``; errors -> MediaError."""
    av = _import_av()
    _check_file(path)
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise MediaError(
            f"cannot open as a video ({exc.strerror or type(exc).__name__}); the file is "
            "corrupt, truncated or not a video",
            path,
        ) from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise MediaError(f"cannot open as a video ({exc})", path) from None
    if not container.streams.video:
        container.close()
        raise MediaError("contains no video stream", path)
    return container, container.streams.video[0]


def probe_video(path: str | Path) -> VideoInfo:
    """Read a video's size, frame count, rate and codec from its container, decoding nothing."""
    path = Path(path)
    container, stream = _open(path)
    try:
        cc = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate
        duration = (
            float(stream.duration * stream.time_base)
            if stream.duration is not None and stream.time_base is not None
            else float("nan")
        )
        return VideoInfo(
            path=path,
            width=int(cc.width),
            height=int(cc.height),
            n_frames=int(stream.frames or 0),
            fps=float(rate) if rate else float("nan"),
            duration_s=duration,
            codec=str(cc.name),
            pixel_format=str(cc.format.name) if cc.format is not None else "",
        )
    finally:
        container.close()


def frame_luma(frame: Any) -> np.ndarray:
    """The ``(H, W)`` uint8 luma of a decoded PyAV ``VideoFrame`` (a view where possible).

    The view may point into the decoder's buffer: copy it before decoding the next frame.
    """
    if frame.format.name in _LUMA_FORMATS:
        plane = frame.planes[0]
        # The plane's rows are padded to line_size bytes; take the visible width.
        return np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[
            :, : frame.width
        ]
    return frame.to_ndarray(format="gray")


def iter_video(
    path: str | Path,
    *,
    crop: Sequence[int] | None = None,
    flip_horizontal: bool = False,
) -> Iterator[tuple[float, np.ndarray]]:
    """Decode a video lazily, yielding ``(t_s, frame)`` per frame.

    ``t_s`` is the presentation time stamp in seconds as stored in the container (not shifted
    to start at zero); ``frame`` is a fresh ``(h, w)`` uint8 array (luma, cropped and flipped).
    Decoding uses FFmpeg's frame and slice threads. Errors raise :class:`MediaError` naming
    ``path``; a decoder failure part way through names the frame index.

    Args:
        path: video file.
        crop: ``(x, y, w, h)`` in 0-based pixels of the decoded frame, or ``None``.
        flip_horizontal: mirror left-right (after cropping).
    """
    for t, view in _decode(Path(path), crop, flip_horizontal):
        yield t, np.array(view, dtype=np.uint8, copy=True)


def _decode(
    path: Path, crop: Sequence[int] | None, flip_horizontal: bool
) -> Iterator[tuple[float, np.ndarray]]:
    """Like :func:`iter_video`, but each frame is a view valid only until the next one."""
    av = _import_av()
    container, stream = _open(path)
    stream.thread_type = "AUTO"
    tb = stream.time_base
    box: Crop | None = None
    k = 0
    try:
        decoder = container.decode(stream)
        while True:
            try:
                frame = next(decoder)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                raise MediaError(
                    f"decoding failed at frame {k} ({exc.strerror or type(exc).__name__}); the "
                    "file is probably truncated or corrupt",
                    path,
                ) from None
            pts = frame.pts if frame.pts is not None else frame.dts
            if pts is None or tb is None:
                raise MediaError(
                    f"frame {k} has no time stamp; re-mux the file (e.g. ffmpeg -i IN -c copy "
                    "OUT.mp4) so the container carries presentation time stamps",
                    path,
                )
            y = frame_luma(frame)
            if k == 0 and crop is not None:
                box = check_crop(crop, y.shape[1], y.shape[0], path)
            if box is not None:
                x0, y0, w, h = box
                if y.shape[0] < y0 + h or y.shape[1] < x0 + w:
                    raise MediaError(
                        f"frame {k} is {y.shape[1]}x{y.shape[0]} (WxH), too small for crop {box}",
                        path,
                    )
                y = y[y0 : y0 + h, x0 : x0 + w]
            if flip_horizontal:
                y = y[:, ::-1]
            yield float(pts * tb), y
            k += 1
    finally:
        container.close()


def find_repeated_frames(
    frames: np.ndarray, *, rel_threshold: float = 0.2, window: int = 4
) -> np.ndarray:
    """Flag frames that repeat the previous frame up to compression noise.

    Rule: let ``d[k]`` be the mean absolute grey-level difference between frames ``k`` and
    ``k - 1``. Frame ``k`` is a repeat when ``d[k] == 0``, or when ``d[k]`` is below
    ``rel_threshold`` times the typical change around it, taken as the smaller of the largest
    change among the ``window`` differences before it and the largest among the ``window``
    after it (only one side exists at the ends of a clip). A repeat is a dip with real changes
    on both sides: a screen capture at 61 fps of a 21 fps scanner gives runs of two repeats
    between changes, so each dip has a real change within ``window`` on either side. Smooth
    motion gives neighbouring changes of similar size; tissue that starts or stops moving
    gives small changes on one side only; neither is flagged. A clip that never changes is
    flagged only where frames are identical. The reference is local, not clip-wide, so slow
    and fast parts of a clip are each judged on their own scale. ``window`` must exceed the
    longest run of repeats expected (capture rate / scanner rate).

    On the 25 Drazan et al. (2019) clips, whose scanner ran at the capture rate (61 Hz by the
    dynamometer's frame counter), this flags 1 of 4,000+ frames (see benchmarks/readers.py).

    Args:
        frames: ``(T, H, W)`` uint8.
        rel_threshold: fraction of the local typical change below which a frame is a repeat.
        window: differences looked at on each side.

    Returns:
        ``(T,)`` bool, True where a frame repeats the previous one (frame 0 is never a repeat).
    """
    f = np.asarray(frames)
    if f.ndim != 3:
        raise InputError(f"frames must be (T, H, W), got shape {f.shape}")
    if not 0 < rel_threshold < 1:
        raise InputError(f"rel_threshold must lie in (0, 1), got {rel_threshold}")
    if window < 1:
        raise InputError(f"window must be >= 1, got {window}")
    t = f.shape[0]
    out = np.zeros(t, dtype=bool)
    if t < 2:
        return out
    d = mean_abs_differences(f)
    # Largest change among the `window` differences before / after each one (-inf: none).
    padded = np.pad(d, window, mode="constant", constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(padded, 2 * window + 1)
    before = win[:, :window].max(axis=1)
    after = win[:, window + 1 :].max(axis=1)
    ref = np.minimum(
        np.where(np.isinf(before), after, before), np.where(np.isinf(after), before, after)
    )
    out[1:] = (d == 0) | (d < rel_threshold * ref)
    return out


def mean_abs_differences(frames: np.ndarray) -> np.ndarray:
    """``(T - 1,)`` float64: mean absolute difference between consecutive ``(T, H, W)`` frames.

    Computed pair by pair in uint8 as ``max(a, b) - min(a, b)`` into reused buffers: exact, and
    without the large int16 temporaries of ``abs(diff(frames))`` (several times faster).
    """
    f = np.asarray(frames)
    t = f.shape[0]
    d = np.empty(max(t - 1, 0), dtype=np.float64)
    if t < 2:
        return d
    hi = np.empty(f.shape[1:], dtype=f.dtype)
    lo = np.empty(f.shape[1:], dtype=f.dtype)
    n = hi.size
    for k in range(1, t):
        np.maximum(f[k], f[k - 1], out=hi)
        np.minimum(f[k], f[k - 1], out=lo)
        np.subtract(hi, lo, out=hi)
        d[k - 1] = float(hi.sum(dtype=np.uint64)) / n
    return d


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

    Frame times are the container's presentation time stamps in seconds, shifted so that the
    first decoded frame is at 0 s (the original start is kept in ``meta.extra["pts_start_s"]``).
    Only an explicit ``fps`` replaces them with ``k / fps``, for files whose time stamps are
    known to be wrong (``meta.extra["time_source"]`` says which was used).
    Repeated frames (see :func:`find_repeated_frames`) are always counted; with
    ``drop_repeated`` they are removed, keeping the first frame of each run with its own time.

    ``meta.extra`` gains: ``repeated_frames`` (count), ``repeated_frame_indices`` (indices in
    decoded order), ``dropped_frames`` (count), ``dropped_frame_indices``, ``decoded_frames``,
    ``pts_start_s``, ``time_source``, ``crop``, ``flip_horizontal`` and ``video`` (codec, size,
    container fps).

    Args:
        path: MP4/AVI/MOV/WMV/MKV file.
        crop: ``(x, y, w, h)`` in 0-based pixels (e.g. the B-mode area of a screen capture).
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
    if fps is not None:
        try:
            fps = float(fps)
        except (TypeError, ValueError):
            raise MediaError(f"fps must be a number, got {fps!r}", path) from None
        if not (np.isfinite(fps) and fps > 0):
            raise MediaError(f"fps must be a positive frame rate, got {fps!r}", path)
    info = probe_video(path)
    times: list[float] = []
    stack = np.empty((0, 0, 0), dtype=np.uint8)
    for k, (t, view) in enumerate(_decode(path, crop, flip_horizontal)):
        if k == 0:  # one buffer sized from the container's frame count, grown if it is wrong
            stack = np.empty((max(info.n_frames, 1), *view.shape), dtype=np.uint8)
        elif k == stack.shape[0]:
            stack = np.concatenate([stack, np.empty_like(stack)])
        if view.shape != stack.shape[1:]:
            raise MediaError(
                f"frame {k} is {view.shape[1]}x{view.shape[0]} (WxH) but frame 0 is "
                f"{stack.shape[2]}x{stack.shape[1]}; re-encode the video at one size",
                path,
            )
        stack[k] = view
        times.append(t)
    if not times:
        raise MediaError("contains zero decodable video frames", path)
    stack = stack[: len(times)]
    if info.n_frames and len(times) < info.n_frames:
        raise MediaError(
            f"decoded only {len(times)} of the {info.n_frames} frames the container lists; "
            "the file is probably truncated",
            path,
        )
    t_s = np.asarray(times, dtype=np.float64)
    if fps is not None:
        t_s = t_s[0] + np.arange(t_s.size) / float(fps)
    d = np.diff(t_s)
    if (d <= 0).any():
        i = int(np.argmax(d <= 0))
        raise MediaError(
            f"frame time stamps do not increase at frame {i + 1} ({t_s[i]:.6g} s then "
            f"{t_s[i + 1]:.6g} s); re-mux the file with correct time stamps",
            path,
        )
    repeated = find_repeated_frames(stack)
    rep_idx = np.flatnonzero(repeated)
    dropped: np.ndarray = rep_idx if drop_repeated else np.zeros(0, dtype=np.int64)
    if drop_repeated and rep_idx.size:
        keep = ~repeated
        stack = stack[keep]
        t_kept = t_s[keep]
    else:
        t_kept = t_s
    log.info(
        "%s: %d frames, %d repeated%s",
        path.name,
        t_s.size,
        rep_idx.size,
        " (dropped)" if drop_repeated else "",
    )
    extra = {
        "repeated_frames": int(rep_idx.size),
        "repeated_frame_indices": [int(i) for i in rep_idx],
        "dropped_frames": int(dropped.size),
        "dropped_frame_indices": [int(i) for i in dropped],
        "decoded_frames": int(t_s.size),
        "pts_start_s": float(t_s[0]),
        "time_source": "container:pts" if fps is None else "user:fps",
        "crop": None if crop is None else [round(float(v)) for v in crop],
        "flip_horizontal": bool(flip_horizontal),
        "video": {
            "codec": info.codec,
            "width": info.width,
            "height": info.height,
            "container_fps": info.fps,
        },
    }
    if depth_mm is not None:
        spacing, source = depth_spacing(depth_mm, stack.shape[1], path), "user:depth_mm"
    else:
        spacing = user_spacing(pixel_spacing_mm, path)
        source = "user:mm_per_pixel" if spacing is not None else ""
    meta = finish_meta(meta, path, extra, source)
    return make_recording(stack, t_kept - t_s[0], spacing, meta, path)


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    *,
    crf: int = 18,
    t_s: Sequence[float] | np.ndarray | None = None,
) -> Path:
    """Write ``(T, H, W)`` uint8 grey frames as H.264 (yuv420p) video, atomically.

    The grey values go straight into the luma plane (chroma neutral, full-range flag set), so
    :func:`read_video` returns them unchanged up to compression noise (at ``crf=18`` a mean
    absolute error of about one grey level on fine speckle; ``crf=0`` is lossless).

    Args:
        path: output file, ``.mp4`` (also ``.m4v``, ``.mov``, ``.mkv``).
        frames: ``(T, H, W)`` uint8; H and W must be even (a yuv420p requirement).
        fps: nominal frame rate in frames/s (written as the stream rate).
        crf: x264 constant rate factor, 0 (lossless) to 51; 18 is visually lossless.
        t_s: optional ``(T,)`` strictly increasing frame times in s for variable-rate video;
            default ``arange(T) / fps``. Stored at 1/90000 s resolution.

    Returns:
        ``path`` once the file is complete (written under a temporary name, then renamed).
    """
    av = _import_av()
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"cannot write video with suffix {path.suffix!r}; use one of "
            f"{', '.join(sorted(_WRITE_FORMATS))}",
            path,
        )
    f = np.asarray(frames)
    if f.ndim != 3 or f.dtype != np.uint8 or f.shape[0] == 0:
        raise InputError(
            f"frames must be a non-empty (T, H, W) uint8 array, got {f.dtype} {f.shape}", path
        )
    n, h, w = f.shape
    if h % 2 or w % 2:
        raise InputError(
            f"H.264 yuv420p needs an even frame size, got {w}x{h} (WxH); crop or pad by one pixel",
            path,
        )
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps!r}", path)
    if not 0 <= int(crf) <= 51:
        raise InputError(f"crf must lie in 0..51, got {crf}", path)
    times = np.arange(n) / float(fps) if t_s is None else np.asarray(t_s, dtype=np.float64)
    if times.shape != (n,) or not np.isfinite(times).all() or (np.diff(times) <= 0).any():
        raise InputError(f"t_s must be {n} finite, strictly increasing times in s", path)
    pts = np.round((times - times[0]) / float(_WRITE_TIME_BASE)).astype(np.int64)
    if (np.diff(pts) <= 0).any():
        raise InputError("frame times closer than 1/90000 s cannot be stored", path)

    chroma = np.full((h // 2, w), 128, dtype=np.uint8)  # U and V planes, neutral grey
    with atomic_file(path, suffix=path.suffix) as tmp:
        try:
            with av.open(str(tmp), mode="w", format=fmt) as out:
                stream = out.add_stream(
                    "libx264", rate=Fraction(float(fps)).limit_denominator(100_000)
                )
                stream.width, stream.height = w, h
                stream.pix_fmt = "yuv420p"
                stream.time_base = _WRITE_TIME_BASE
                stream.codec_context.time_base = _WRITE_TIME_BASE
                stream.codec_context.color_range = 2  # AVCOL_RANGE_JPEG: luma 0..255
                stream.options = {"crf": str(int(crf)), "preset": "medium"}
                for k in range(n):
                    # yuv420p as one (3H/2, W) array: Y, then U and V stacked at half height.
                    vf = av.VideoFrame.from_ndarray(np.vstack([f[k], chroma]), format="yuv420p")
                    vf.color_range = 2
                    vf.pts = int(pts[k])
                    vf.time_base = _WRITE_TIME_BASE
                    out.mux(stream.encode(vf))
                out.mux(stream.encode(None))
        except av.FFmpegError as exc:
            raise MediaError(f"writing the video failed ({exc})", path) from None
    log.info("wrote %s: %d frames %dx%d", path, n, w, h)
    return path
