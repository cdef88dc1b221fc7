"""``musclestate roi show``: draw what the ROI step finds in one image or a video."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.errors import ConfigError

log = logging.getLogger(__name__)

#: Image depth assumed when neither the file nor the caller gives a pixel spacing (mm).
DEFAULT_DEPTH_MM = 50.0


def show_roi(
    source: str | Path,
    out: str | Path,
    *,
    model: str | Path | None = None,
    spacing_mm: tuple[float, float] | None = None,
    depth_mm: float | None = None,
    crop: tuple[int, int, int, int] | None = None,
    frame: int = 0,
    max_frames: int | None = None,
    every: int = 1,
    fps: float | None = None,
) -> dict[str, Any]:
    """Draw the aponeuroses and the MG/SOL patch areas found in an image or a video.

    Args:
        source: an image file (or TIFF stack), a video, a DICOM file or an image folder, read
            by :mod:`musclestate.io` exactly as ``import`` and ``predict`` read it.
        out: the overlay to write: ``.png`` (one frame, with the probability map) or ``.mp4``.
        model: segmenter weights (``.safetensors``); ``None`` = shipped.
        spacing_mm: pixel spacing ``(row_mm, col_mm)``; else ``depth_mm``, else what the file
            says, else a depth of :data:`DEFAULT_DEPTH_MM` is assumed (and logged).
        depth_mm: image depth in mm (square pixels) when no spacing is known.
        crop: the B-mode area ``(x, y, w, h)`` in 0-based pixels (screen captures).
        frame: the frame drawn into a PNG of a video.
        max_frames: frames of a video to draw into an ``.mp4``.
        every: segment every k-th frame.
        fps: frame rate of an image folder or TIFF stack (frames/s); for a video or DICOM it
            replaces the file's timing, as everywhere.

    Returns:
        The ROI step's summary (frames, found, interpolated, mean measures, issues) plus
        ``issues_first_frame`` and ``out``.

    Raises:
        ConfigError: ``out`` is neither ``.png`` nor ``.mp4``, an image folder without ``fps``,
            or ``frame`` is past the end.
    """
    from musclestate.io import media_kind, read_recording
    from musclestate.roi.pipeline import (
        ROIConfig,
        overlay,
        process_frames,
        result_summary,
        write_png,
        write_rgb_video,
    )
    from musclestate.roi.segment import load_segmenter

    source, out = Path(source), Path(out)
    if out.suffix.lower() not in (".png", ".mp4"):
        raise ConfigError(f"--out must end in .png or .mp4, got {out}")
    # Every medium is read by musclestate.io, as import and predict read it.
    kind = media_kind(source)
    kw: dict = {"crop": crop} if crop is not None else {}
    if spacing_mm is not None:
        kw["pixel_spacing_mm"] = tuple(spacing_mm)
    elif depth_mm is not None:
        kw["depth_mm"] = depth_mm
    if fps is not None:
        kw["fps"] = fps
    elif kind == "images":
        raise ConfigError(
            f"{source} is an image folder: give its frame rate (--fps) so frames get times"
        )
    rec = read_recording(source, **kw)
    frames, t_s, spacing = rec.frames, rec.t_s, rec.pixel_spacing_mm
    if spacing is None:
        spacing = (DEFAULT_DEPTH_MM / frames.shape[1],) * 2
        log.warning(
            "no pixel spacing known: assuming %g mm depth (%.3f mm/px)",
            DEFAULT_DEPTH_MM,
            spacing[0],
        )
    if out.suffix.lower() == ".png":
        frames = frames[frame : frame + 1]
        if not len(frames):
            raise ConfigError(f"--frame {frame} is beyond the last frame")
    elif max_frames is not None:
        frames = frames[:max_frames]
    cfg = ROIConfig(model=None if model is None else str(model), every=every)
    seg = load_segmenter(model)
    res = process_frames(frames, spacing, seg, cfg)
    if out.suffix.lower() == ".png":
        prob = seg.predict(frames[0])
        write_png(out, overlay(frames[0], res.geometries[0], prob, cfg.patches))
    else:
        pairs = zip(frames, res.geometries, strict=True)
        pics = np.stack([overlay(f, g, None, cfg.patches) for f, g in pairs])
        rate = 25.0 if t_s is None or len(t_s) < 2 else float(1 / np.median(np.diff(t_s)))
        write_rgb_video(out, pics, rate)
    summary = result_summary(res)
    summary["issues_first_frame"] = list(res.geometries[0].issues)
    summary["out"] = str(out)
    return summary
