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


def _spacing(
    spacing_mm: tuple[float, float] | None, depth_mm: float | None, rows: int
) -> tuple[float, float] | None:
    if spacing_mm is not None:
        return (float(spacing_mm[0]), float(spacing_mm[1]))
    if depth_mm is not None:
        return (depth_mm / rows, depth_mm / rows)
    return None


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
    fps: float = 25.0,
) -> dict[str, Any]:
    """Draw the aponeuroses and the MG/SOL patch areas found in an image or a video.

    Args:
        source: an image file, a video, a DICOM file or an image folder.
        out: the overlay to write: ``.png`` (one frame, with the probability map) or ``.mp4``.
        model: segmenter weights (``.safetensors``); ``None`` = shipped.
        spacing_mm: pixel spacing ``(row_mm, col_mm)``; else ``depth_mm``, else what the file
            says, else a depth of :data:`DEFAULT_DEPTH_MM` is assumed (and logged).
        depth_mm: image depth in mm (square pixels) when no spacing is known.
        crop: the B-mode area ``(x, y, w, h)`` in 0-based pixels (screen captures).
        frame: the frame drawn into a PNG of a video.
        max_frames: frames of a video to draw into an ``.mp4``.
        every: segment every k-th frame.
        fps: frame rate of an image folder (frames/s).

    Returns:
        The ROI step's summary (frames, found, interpolated, mean measures, issues) plus
        ``issues_first_frame`` and ``out``.

    Raises:
        ConfigError: ``out`` is neither ``.png`` nor ``.mp4``, or ``frame`` is past the end.
    """
    from musclestate.roi.pipeline import (
        ROIConfig,
        overlay,
        process_frames,
        result_summary,
        write_png,
        write_rgb_video,
    )
    from musclestate.roi.segment import load_segmenter
    from musclestate.roi.train import IMAGE_SUFFIXES, read_grey

    source, out = Path(source), Path(out)
    if out.suffix.lower() not in (".png", ".mp4"):
        raise ConfigError(f"--out must end in .png or .mp4, got {out}")
    t_s = None
    if source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:
        frames = read_grey(source)[None]
        if crop is not None:
            x, y, w, h = crop
            frames = frames[:, y : y + h, x : x + w]
        spacing = _spacing(spacing_mm, depth_mm, frames.shape[1])
    else:
        from musclestate.io import read_recording

        kw: dict = {"crop": crop} if crop is not None else {}
        if source.is_dir():
            kw["fps"] = fps
        rec = read_recording(source, **kw)
        frames, t_s = rec.frames, rec.t_s
        spacing = _spacing(spacing_mm, depth_mm, frames.shape[1]) or rec.pixel_spacing_mm
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
