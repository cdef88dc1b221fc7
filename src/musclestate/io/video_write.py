"""Writing grey frames as H.264 video through PyAV (the phantom and the overlays use it)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from musclestate._atomic import atomic_file
from musclestate.errors import InputError, MediaError

log = logging.getLogger(__name__)

_WRITE_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}

# Time base used when writing: 90 kHz, the MPEG convention, exact for 25/30/50/60 fps.
_WRITE_TIME_BASE = Fraction(1, 90_000)


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
    import av  # heavy: imported on first use only

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
