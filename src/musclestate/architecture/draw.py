"""Pictures of measured architecture: aponeurosis lines and the fascicle over a frame."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from musclestate.architecture.measure import ImageArchitecture, Line
from musclestate.errors import InputError

SUPERFICIAL_RGB = (230, 60, 60)
DEEP_RGB = (255, 160, 0)
FASCICLE_RGB = (40, 220, 255)


def draw_frame(
    image: np.ndarray, measured: ImageArchitecture, *, label: str | None = None
) -> np.ndarray:
    """``(H, W, 3)`` uint8: ``image`` with both aponeurosis lines and the fascicle through the
    muscle's middle (drawn from aponeurosis to aponeurosis), and ``label`` at the top left."""
    from PIL import Image, ImageDraw

    h, w = image.shape
    rgb = Image.fromarray(np.stack([np.asarray(image, np.uint8)] * 3, axis=-1))
    d = ImageDraw.Draw(rgb)
    width = max(2, round(max(h, w) / 180))
    lines = []
    for row, angle, colour in (
        (measured.superficial_row_px, measured.superficial_angle_deg, SUPERFICIAL_RGB),
        (measured.deep_row_px, measured.deep_angle_deg, DEEP_RGB),
    ):
        if np.isfinite(row):
            line = Line(row, angle)
            lines.append(line)
            d.line(list(zip(range(w), line.rows(w), strict=True)), fill=colour, width=width)
    if measured.found and np.isfinite(measured.fascicle_angle_deg):
        sup, deep = lines
        xc, yc = (w - 1) / 2, 0.5 * (sup.row_c + deep.row_c)
        t = math.tan(math.radians(measured.fascicle_angle_deg))
        ends = []
        for line in (sup, deep):
            s = math.tan(math.radians(line.angle_deg))
            x = (line.row_c - s * xc - yc + t * xc) / (t - s)
            ends.append((x, yc + t * (x - xc)))
        d.line(ends, fill=FASCICLE_RGB, width=width + 1)
    if label:
        d.text((6, 6), label, fill=(255, 255, 0))
    return np.asarray(rgb)


def write_overlay(
    path: str | Path,
    frames: np.ndarray,
    t_s: np.ndarray,
    measured: Sequence[ImageArchitecture],
) -> Path:
    """Write the drawn frames as ``.mp4`` (at the frames' mean rate) or the first as ``.png``."""
    from musclestate.roi.pipeline import write_png, write_rgb_video

    path = Path(path)
    drawn = np.stack(
        [
            draw_frame(f, m, label=f"{m.fascicle_angle_deg:+.1f} deg")
            for f, m in zip(frames, measured, strict=True)
        ]
    )
    if path.suffix.lower() == ".png":
        return write_png(path, drawn[0])
    if path.suffix.lower() == ".mp4":
        fps = 1.0 / float(np.mean(np.diff(t_s))) if len(t_s) > 1 else 1.0
        return write_rgb_video(path, drawn, fps)
    raise InputError("overlay must end in .mp4 or .png", path)
