"""Pictures of a prediction: a PNG of the traces and an overlay video with live traces.

The overlay video shows, per frame, the B-mode image with the ROI outlines drawn on it and,
below it, every target's trace up to that frame (mean +- SD band); frames without a muscle are
shaded in the traces. Both files are written atomically.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from musclestate._atomic import atomic_file
from musclestate.errors import ConfigError
from musclestate.inference.outputs import Estimates

_COLOURS = ("#e6550d", "#3182bd", "#31a354", "#756bb1", "#d6616b", "#636363")
_OUTLINE_RGB = ((255, 80, 40), (60, 200, 255), (255, 220, 0), (120, 255, 120))


def _trace_figure(est: Estimates, width_px: int, row_px: int = 70, dpi: int = 100) -> tuple:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    names = list(est.targets)
    n = max(1, len(names))
    fig = Figure(figsize=(width_px / dpi, n * row_px / dpi), dpi=dpi)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    t = np.asarray(est.t_s)
    gaps = ~np.asarray(est.roi_found)
    for ax, name, colour in zip(axes, names, _COLOURS * 4, strict=False):
        m, s = np.asarray(est.mean[name]), np.asarray(est.sd[name])
        ax.fill_between(t, m - s, m + s, color=colour, alpha=0.25, linewidth=0)
        ax.plot(t, m, color=colour, linewidth=1.0)
        if gaps.any():
            ax.fill_between(
                t,
                0,
                1,
                where=gaps,
                transform=ax.get_xaxis_transform(),
                color="0.6",
                alpha=0.3,
                linewidth=0,
                step="mid",
            )
        ax.set_ylabel(
            f"{name}\n[{est.units[name]}]", fontsize=6, rotation=0, ha="right", va="center"
        )
        ax.tick_params(labelsize=6)
        ax.margins(x=0)
    axes[-1].set_xlabel("time [s]", fontsize=6)
    return fig, axes


def plot_traces(path: str | Path, est: Estimates, *, title: str = "") -> Path:
    """Save a PNG with one panel per target: mean +- SD over time, no-muscle frames shaded."""
    fig, _ = _trace_figure(est, width_px=900, row_px=150)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)


def _render_panel(est: Estimates, width_px: int) -> tuple[np.ndarray, np.ndarray]:
    """``(h, width_px, 3)`` uint8 trace panel and the panel column of every frame time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig, axes = _trace_figure(est, width_px)
    fig.subplots_adjust(
        left=0.2, right=0.98, top=0.97, bottom=0.25 if len(axes) == 1 else 0.12, hspace=0.15
    )
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    panel = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    t = np.asarray(est.t_s, dtype=np.float64)
    x = axes[-1].transData.transform(np.column_stack([t, np.zeros_like(t)]))[:, 0]
    x0 = axes[-1].transData.transform((t[0], 0))[0]
    cols = np.clip(np.round(x).astype(int), 0, panel.shape[1] - 1)
    return panel, np.maximum(cols, round(x0))


def _even(n: int) -> int:
    return n + (n % 2)


def write_overlay(
    path: str | Path,
    frames: Iterable[np.ndarray],
    est: Estimates,
    outlines: Sequence[Sequence[np.ndarray]] = (),
    *,
    fps: float | None = None,
    crf: int = 20,
) -> Path:
    """Write an H.264 MP4: each frame with its ROI outlines, above the traces so far.

    Args:
        path: output ``.mp4``.
        frames: the input frames ``(H, W)`` uint8, in the order of ``est`` (same count).
        est: the estimates of those frames.
        outlines: per frame, ``(K, 2)`` ``(x, y)`` polylines to draw (may be empty).
        fps: output frame rate; default: the median rate of ``est.t_s``.
        crf: H.264 quality (lower = better, 18-23 typical).
    """
    import av
    from PIL import Image, ImageDraw

    n = len(est)
    if fps is None:
        fps = float(1.0 / np.median(np.diff(est.t_s))) if n > 1 else 25.0
    if not np.isfinite(fps) or fps <= 0:
        raise ConfigError(f"overlay frame rate must be positive, got {fps}")
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ConfigError("overlay: no frames to draw")
    h, w = first.shape
    width = _even(max(w, 320))
    panel, cols = _render_panel(est, width)
    height = _even(h + panel.shape[0])
    rate = Fraction(fps).limit_denominator(1000)
    path = Path(path)
    with atomic_file(path, suffix=".mp4") as tmp:
        with av.open(str(tmp), "w", format="mp4") as c:
            stream = c.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": str(crf), "preset": "veryfast"}
            k = 0
            img = first
            while img is not None and k < n:
                canvas = np.zeros((height, width, 3), np.uint8)
                canvas[:h, :w] = img[..., None]
                pil = Image.fromarray(canvas)
                draw = ImageDraw.Draw(pil)
                for j, line in enumerate(outlines[k] if k < len(outlines) else ()):
                    pts = [tuple(map(float, p)) for p in np.asarray(line)]
                    if len(pts) >= 2:
                        draw.line(pts, fill=_OUTLINE_RGB[j % len(_OUTLINE_RGB)], width=2)
                if not est.roi_found[k]:
                    draw.text((6, 6), "no muscle found", fill=(255, 60, 60))
                canvas = np.asarray(pil).copy()
                strip = panel.copy()
                c0 = cols[k] + 1
                strip[:, c0:] = (strip[:, c0:] * 0.25 + 191).astype(np.uint8)  # not yet seen
                strip[:, cols[k]] = (200, 0, 0)
                canvas[h : h + strip.shape[0], : strip.shape[1]] = strip
                vf = av.VideoFrame.from_ndarray(canvas, format="rgb24")
                for pkt in stream.encode(vf):
                    c.mux(pkt)
                k += 1
                img = next(it, None)
            for pkt in stream.encode():
                c.mux(pkt)
    return path
