"""Architecture per frame of a video, DICOM, image or image folder (``musclestate architecture
measure``): the table a lab publishes.

Every frame is measured on its own (:func:`musclestate.architecture.measure.measure_image`), so
nothing drifts; an optional constant-velocity Kalman filter then smooths each series over time
(UltraTimTrack, TimTrack's successor, combines per-frame estimates with optical-flow motion in a
Kalman filter; this filter uses a constant-velocity motion model instead), weighting each frame
by its quality.

Columns (physical units where the pixel spacing is known, else pixels and ``px``):

- ``mg_fascicle_angle_deg``: MG fascicle angle to the image horizontal (+ = deeper to the right);
- ``mg_fascicle_to_superficial_deg``, ``mg_fascicle_to_deep_deg``: acute angles between the
  fascicle and each aponeurosis; ``mg_pennation_deg`` is the one to the deep aponeurosis;
- ``superficial_angle_deg``, ``deep_angle_deg``: aponeurosis angles to the horizontal;
- ``mg_thickness_mm``: between the aponeuroses' inner edges, read at the column ``thickness_at``
  (default: the left edge of the image, as the TimTrack observers read it);
- ``mg_fascicle_length_mm``: along the fascicle through the muscle's middle at the centre column,
  from aponeurosis to aponeurosis (the lines extended straight where the fascicle leaves the
  image; ``mg_fascicle_length_extrapolated`` is then 1);
- ``sol_thickness_mm``, ``sol_fascicle_angle_deg``: the soleus between the deep aponeurosis and
  the next band below it (NaN where none is found);
- ``quality_ok``: 1 where both aponeuroses were found by the network and the fascicle
  orientation stands out (peak score >= ``min_fascicle_score``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.architecture.measure import (
    ArchitectureConfig,
    ImageArchitecture,
    Line,
    fascicle_orientation_deg,
    inner_thickness_px,
    measure_image,
)
from musclestate.errors import InputError
from musclestate.progress import ProgressFn, emit

COLUMNS = (
    "mg_fascicle_angle_deg",
    "mg_fascicle_to_superficial_deg",
    "mg_fascicle_to_deep_deg",
    "mg_pennation_deg",
    "superficial_angle_deg",
    "deep_angle_deg",
    "mg_thickness_mm",
    "mg_fascicle_length_mm",
    "mg_fascicle_length_extrapolated",
    "sol_thickness_mm",
    "sol_fascicle_angle_deg",
    "quality_ok",
)
#: the columns the temporal smoother filters: every measured value, not the flags
SMOOTHED = tuple(c for c in COLUMNS if c not in ("mg_fascicle_length_extrapolated", "quality_ok"))


@dataclass(frozen=True)
class FrameSettings:
    """Settings of :func:`measure_frames`.

    Attributes:
        config: per-image settings (:class:`ArchitectureConfig`).
        min_fascicle_score: least fascicle peak score for ``quality_ok``.
        smooth: run the Kalman filter over time.
        process_sd_per_s: standard deviation of the change of each series' rate per second, as a
            fraction of the series' own spread (the filter's process noise; larger = follows
            faster changes).
        batch_size: frames per segmenter call.
    """

    config: ArchitectureConfig = field(default_factory=ArchitectureConfig)
    min_fascicle_score: float = 1.5
    smooth: bool = False
    process_sd_per_s: float = 20.0
    batch_size: int = 16


def _acute(a: float, b: float) -> float:
    d = abs(a - b) % 180.0
    return float(min(d, 180.0 - d))


def _physical(angle_px_deg: float, spacing: tuple[float, float]) -> float:
    """Angle in pixels -> physical angle for ``(row_mm, col_mm)`` spacing."""
    return float(
        math.degrees(math.atan(math.tan(math.radians(angle_px_deg)) * spacing[0] / spacing[1]))
    )


def _intersect(
    px: float, py: float, angle_deg: float, line: Line, width: int
) -> tuple[float, float]:
    """Where the line through ``(px, py)`` at ``angle_deg`` meets ``line`` (column, row)."""
    t = math.tan(math.radians(angle_deg))
    s = math.tan(math.radians(line.angle_deg))
    xc = (width - 1) / 2
    # row = py + t (x - px) = line.row_c + s (x - xc)
    if abs(t - s) < 1e-9:
        return float("nan"), float("nan")
    x = (line.row_c - s * xc - py + t * px) / (t - s)
    return float(x), float(py + t * (x - px))


def frame_row(
    image: np.ndarray,
    measured: ImageArchitecture,
    spacing_mm: tuple[float, float] | None,
    settings: FrameSettings,
) -> dict[str, float]:
    """The table's columns for one frame (see the module docstring)."""
    out = dict.fromkeys(COLUMNS, float("nan"))
    out["quality_ok"] = 0.0
    out["mg_fascicle_length_extrapolated"] = 0.0
    if not measured.found:
        return out
    sp = spacing_mm or (1.0, 1.0)
    w = image.shape[1]
    sup = Line(measured.superficial_row_px, measured.superficial_angle_deg)
    deep = Line(measured.deep_row_px, measured.deep_angle_deg)
    fasc = measured.fascicle_angle_deg
    phys = {k: _physical(v, sp) for k, v in (("sup", sup.angle_deg), ("deep", deep.angle_deg))}
    out["superficial_angle_deg"] = phys["sup"]
    out["deep_angle_deg"] = phys["deep"]
    out["mg_thickness_mm"] = measured.thickness_px * sp[0]
    if np.isfinite(fasc):
        f = _physical(fasc, sp)
        out["mg_fascicle_angle_deg"] = f
        out["mg_fascicle_to_superficial_deg"] = _acute(f, phys["sup"])
        out["mg_fascicle_to_deep_deg"] = _acute(f, phys["deep"])
        out["mg_pennation_deg"] = out["mg_fascicle_to_deep_deg"]
        xc = (w - 1) / 2
        yc = 0.5 * (sup.row_c + deep.row_c)
        x1, y1 = _intersect(xc, yc, fasc, sup, w)
        x2, y2 = _intersect(xc, yc, fasc, deep, w)
        out["mg_fascicle_length_mm"] = math.hypot((x1 - x2) * sp[1], (y1 - y2) * sp[0])
        out["mg_fascicle_length_extrapolated"] = float(not (0 <= x1 < w and 0 <= x2 < w))
        ok = measured.deep_source == "network" and measured.fascicle_score >= (
            settings.min_fascicle_score
        )
        out["quality_ok"] = float(ok)
    sol = _soleus(image, deep, settings.config)
    if sol is not None:
        out["sol_thickness_mm"] = sol[0] * sp[0]
        if np.isfinite(sol[1]):
            out["sol_fascicle_angle_deg"] = _physical(sol[1], sp)
    return out


def _soleus(
    image: np.ndarray, deep: Line, config: ArchitectureConfig
) -> tuple[float, float] | None:
    """SOL thickness (px) and fascicle angle (px degrees) below the deep aponeurosis, or None."""
    from scipy import ndimage

    from musclestate.architecture.measure import _downscale, line_below

    h = image.shape[0]
    f = max(1.0, h / 256.0)
    small = _downscale(image, f)
    ridge = np.maximum(-ndimage.gaussian_filter(small, 2.0, order=(2, 0)), 0.0)
    ridge /= float(np.percentile(ridge, 99)) + 1e-6
    lower = line_below(np.clip(ridge, 0.0, 1.0), deep, h, f, config)
    if lower is None:
        return None
    thickness = inner_thickness_px(
        image, deep, lower, config.edge_window, at=config.thickness_at, span=config.thickness_span
    )
    angle, _ = fascicle_orientation_deg(image, deep, lower, config)
    return thickness, angle


def kalman_smooth(
    t_s: np.ndarray, values: np.ndarray, weights: np.ndarray, process_sd_per_s: float
) -> np.ndarray:
    """Constant-velocity Kalman filter and Rauch-Tung-Striebel smoother over one series.

    State ``(value, rate)``; each frame's measurement has variance ``var / weight`` (``var`` the
    series' robust spread squared; weight 0 or NaN value = no measurement). The process noise
    is white acceleration with spectral density ``(process_sd_per_s * spread)^2`` (Bar-Shalom,
    Li & Kirubarajan 2001, ch. 6). Hand-written: 2 x 2 matrices, no library needed.

    Returns:
        ``(T,)`` smoothed values (NaN only where no frame was measured at all).
    """
    t = np.asarray(t_s, np.float64)
    z = np.asarray(values, np.float64)
    wts = np.where(np.isfinite(z), np.asarray(weights, np.float64), 0.0)
    n = z.size
    good = wts > 0
    if good.sum() < 2:
        return z.copy()
    spread = 1.4826 * float(np.median(np.abs(z[good] - np.median(z[good])))) or 1.0
    r0 = spread**2
    q = (process_sd_per_s * spread) ** 2
    xs = np.zeros((n, 2))
    ps = np.zeros((n, 2, 2))
    xp = np.zeros((n, 2))
    pp = np.zeros((n, 2, 2))
    x = np.array([z[good][0], 0.0])
    p = np.diag([r0, r0])
    fs = []
    for i in range(n):
        dt = t[i] - t[i - 1] if i else 0.0
        fm = np.array([[1.0, dt], [0.0, 1.0]])
        qm = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        x = fm @ x
        p = fm @ p @ fm.T + qm
        xp[i], pp[i] = x, p
        fs.append(fm)
        if wts[i] > 0:
            s = p[0, 0] + r0 / wts[i]
            k = p[:, 0] / s
            x = x + k * (z[i] - x[0])
            p = p - np.outer(k, p[0, :])
        xs[i], ps[i] = x, p
    for i in range(n - 2, -1, -1):
        fm = fs[i + 1]
        c = ps[i] @ fm.T @ np.linalg.inv(pp[i + 1])
        xs[i] = xs[i] + c @ (xs[i + 1] - xp[i + 1])
        ps[i] = ps[i] + c @ (ps[i + 1] - pp[i + 1]) @ c.T
    return xs[:, 0]


def measure_frames(
    frames: np.ndarray,
    t_s: np.ndarray,
    pixel_spacing_mm: tuple[float, float] | None = None,
    *,
    model: str | Path | None = None,
    settings: FrameSettings | None = None,
    progress: ProgressFn | None = None,
) -> tuple[dict[str, np.ndarray], list[ImageArchitecture]]:
    """Architecture of every frame.

    Args:
        frames: ``(T, H, W)`` uint8 B-mode frames (the B-mode area only).
        t_s: ``(T,)`` frame times in seconds.
        pixel_spacing_mm: ``(row_mm, col_mm)``; None = lengths in pixels.
        model: aponeurosis segmenter weights (None = shipped).
        settings: :class:`FrameSettings`.
        progress: receives :class:`~musclestate.progress.ProgressEvent` (stage
            ``"architecture"``, unit ``"frames"``) after each frame.

    Returns:
        ``(columns, measured)``: column name -> ``(T,)`` float64 (see :data:`COLUMNS`), and the
        per-frame :class:`ImageArchitecture` (pixels, before smoothing).

    Raises:
        InputError: frames are not ``(T, H, W)`` uint8 or ``t_s`` does not match.
    """
    from musclestate.roi.segment import load_segmenter

    settings = settings or FrameSettings()
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise InputError(f"frames must be (T, H, W) uint8, got {frames.shape} {frames.dtype}")
    t_s = np.asarray(t_s, np.float64)
    if t_s.shape != (frames.shape[0],):
        raise InputError(f"t_s has shape {t_s.shape}, expected ({frames.shape[0]},)")
    seg = load_segmenter(model)
    rows, measured = [], []
    n = len(frames)
    for i in range(0, n, settings.batch_size):
        probs = seg.predict(frames[i : i + settings.batch_size])
        for j, prob in enumerate(probs):
            image = frames[i + j]
            m = measure_image(image, prob, settings.config)
            measured.append(m)
            rows.append(frame_row(image, m, pixel_spacing_mm, settings))
            emit(progress, "architecture", i + j + 1, n, "frames")
    cols = {c: np.array([r[c] for r in rows], np.float64) for c in COLUMNS}
    if settings.smooth and n > 2:
        weight = np.where(cols["quality_ok"] > 0, 1.0, 0.25)
        for c in SMOOTHED:
            cols[c] = kalman_smooth(t_s, cols[c], weight, settings.process_sd_per_s)
    return cols, measured


def column_units(pixel_spacing_mm: tuple[float, float] | None) -> dict[str, str]:
    """Unit of every column: ``mm`` lengths become ``px`` without a pixel spacing."""
    length = "mm" if pixel_spacing_mm is not None else "px"
    return {
        c: "deg" if c.endswith("_deg") else (length if c.endswith("_mm") else "") for c in COLUMNS
    }


def measure_architecture(
    source: str | Path,
    out: str | Path,
    *,
    model: str | Path | None = None,
    crop: tuple[int, int, int, int] | None = None,
    pixel_spacing_mm: tuple[float, float] | None = None,
    fps: float | None = None,
    smooth: bool = False,
    overlay: str | Path | None = None,
    settings: FrameSettings | None = None,
    progress: ProgressFn | None = None,
) -> Path:
    """Measure architecture per frame of ``source`` and write the table (``musclestate
    architecture measure``).

    Args:
        source: video, DICOM, image file or image folder (read by :func:`musclestate.io`).
        out: ``.csv`` or ``.xlsx`` table; a JSON sidecar ``OUT.json`` beside it holds units
            and provenance, as for ``predict``.
        model: aponeurosis segmenter (None = shipped).
        crop: B-mode area ``(x, y, w, h)`` in 0-based pixels (screen captures).
        pixel_spacing_mm: ``(row_mm, col_mm)``; overrides the file's; None = the file's or px.
        fps: frame rate of an image folder.
        smooth: Kalman-smooth every series over time.
        overlay: also write the measured lines over the frames (``.mp4`` or ``.png``).
        settings: :class:`FrameSettings` (``smooth`` overrides its field).
        progress: receives :class:`~musclestate.progress.ProgressEvent` (stage
            ``"architecture"``, unit ``"frames"``) per frame.

    Returns:
        The table's path.

    Raises:
        InputError: unknown output suffix; MediaError from the readers.
    """
    import dataclasses

    from musclestate import __version__
    from musclestate.inference.outputs import (
        Estimates,
        sha256_file,
        write_csv,
        write_sidecar,
        write_xlsx,
    )
    from musclestate.io import read_recording
    from musclestate.io.images import IMAGE_SUFFIXES, read_image

    out = Path(out)
    if out.suffix.lower() not in (".csv", ".xlsx"):
        raise InputError("architecture table must end in .csv or .xlsx", out)
    settings = dataclasses.replace(settings or FrameSettings(), smooth=smooth)
    source = Path(source)
    if source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:
        image = read_image(source)
        if crop is not None:
            x, y, cw, ch = crop
            image = image[y : y + ch, x : x + cw]
        frames, t_s, spacing = image[None], np.zeros(1), pixel_spacing_mm
    else:
        kw: dict[str, Any] = {"crop": crop, "pixel_spacing_mm": pixel_spacing_mm}
        if fps is not None:
            kw["fps"] = fps
        rec = read_recording(source, **kw)
        frames, t_s, spacing = rec.frames, rec.t_s, rec.pixel_spacing_mm
    cols, measured = measure_frames(
        frames, t_s, spacing, model=model, settings=settings, progress=progress
    )
    est = Estimates(
        frame=np.arange(len(frames)),
        t_s=np.asarray(t_s, np.float64),
        mean={},
        sd={},
        units={},
        roi_found=np.isfinite(cols["mg_thickness_mm"]),
        out_of_range=np.zeros(len(frames), bool),
        features=cols,
        feature_units=column_units(spacing),
    )
    provenance = {
        "musclestate_version": __version__,
        "input": str(source),
        "input_sha256": sha256_file(source),
        "crop": list(crop) if crop else None,
        "pixel_spacing_mm": list(spacing) if spacing else None,
        "model": str(model) if model else "shipped",
        "settings": {
            **dataclasses.asdict(settings),
            "config": settings.config.to_dict(),
        },
        "angles": "degrees, + = deeper to the right of the image",
    }
    if out.suffix.lower() == ".csv":
        write_csv(out, est)
    else:
        write_xlsx(out, est, provenance)
    write_sidecar(out, est, provenance)
    if overlay is not None:
        from musclestate.architecture.draw import write_overlay

        write_overlay(overlay, frames, t_s, measured)
    return out
