"""Readers and writers: ultrasound media in, :class:`~musclestate.records.Recording` out.

This package is the one place that decodes media: every command and the live sources read
through it. One reader per kind:

- :mod:`musclestate.io.video`: MP4/AVI/MOV/WMV via PyAV (``read_video``, ``VideoReader`` for
  frame-by-frame reading of files and capture devices, ``write_video``);
- :mod:`musclestate.io.images`: folders of PNG/TIFF/BMP/JPEG (``read_image_folder``) and single
  image files or multi-page TIFF stacks (``read_image_file``);
- :mod:`musclestate.io.dicom`: single- and multi-frame DICOM (``read_dicom``);
- :mod:`musclestate.io.signals`: lab signals from CSV, MATLAB .mat and C3D (``read_signals``).

:mod:`musclestate.io.formats` holds the one list of suffixes; :func:`read_recording` picks the
reader from the path. Submodules import their heavy library (PyAV, pydicom, h5py, ezc3d) only
when first used.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from musclestate.errors import ConfigError
from musclestate.io.formats import media_kind, unsupported
from musclestate.records import Recording

__all__ = ["media_kind", "probe", "read_recording"]


def read_recording(path: str | Path, **kw: Any) -> Recording:
    """Read a video file, DICOM file, image file or image folder, choosing the reader from the path.

    A folder goes to :func:`~musclestate.io.images.read_image_folder` (needs ``fps=``), a
    DICOM file (by suffix or by the ``DICM`` preamble) to :func:`~musclestate.io.dicom.read_dicom`,
    a video to :func:`~musclestate.io.video.read_video`, an image file (single image or
    multi-page TIFF stack) to :func:`~musclestate.io.images.read_image_file`. Keyword arguments
    go to that reader.

    Raises:
        MediaError: missing path, a signal file, or a kind no reader takes (the same message
            from every command: :func:`musclestate.io.formats.unsupported`).
        ConfigError: an option the chosen reader does not take.
    """
    path = Path(path)
    kind = media_kind(path)
    if kind == "images":
        from musclestate.io import images

        return _call(images.read_image_folder, path, kw)
    if kind == "dicom":
        from musclestate.io import dicom

        return _call(dicom.read_dicom, path, kw)
    if kind == "video":
        from musclestate.io import video

        return _call(video.read_video, path, kw)
    if kind == "image":
        from musclestate.io import images

        return _call(images.read_image_file, path, kw)
    raise unsupported(path, "a signal file as frames (give it as signals in a manifest)")


def probe(
    path: str | Path,
    *,
    crop: Sequence[int] | None = None,
    fps: float | None = None,
    mat_group: str | None = None,
) -> dict[str, Any]:
    """Summarise a media or signal file as the readers see it (JSON-serialisable).

    Signal files give ``{"kind": "signals", "channels": [...], "notes": {...}}`` with each
    channel's unit, samples, rate and time span, and what the reader corrected (decimal comma,
    preamble lines skipped, units row, matrix orientation). Media give the frame count and size
    (after ``crop``), frame rate and span from the frame times, where the times and the spacing
    came from, repeated frames, the corrections applied (``"corrections"``: display rotation,
    bit depth, container frame count, ultrasound regions) and the reader's own metadata.
    ``fps`` gives image folders and image stacks their rate and replaces the timing of videos
    and DICOM files, as it does in every command and in an import manifest. A DICOM frame with
    regions of different spacing and no crop gives ``pixel_spacing_mm: None``, the regions and
    the ``problem``, rather than an error.
    """
    from musclestate.io.signals import read_signal_file, signal_table

    path = Path(path)
    kind = media_kind(path)
    if kind == "signals":
        got = read_signal_file(path, mat_group=mat_group)
        return {
            "kind": "signals",
            "path": str(path),
            "channels": signal_table(got.signals),
            "notes": dict(got.notes),
        }
    kw: dict[str, Any] = {}
    if crop is not None:
        kw["crop"] = tuple(crop)
    if fps is not None:
        kw["fps"] = fps
    from musclestate.io.dicom import RegionChoiceError

    try:
        rec = read_recording(path, **kw)
    except RegionChoiceError as exc:
        return {
            "kind": kind,
            "path": str(path),
            "frames": exc.n_frames,
            "frame_shape": list(exc.frame_shape),
            "pixel_spacing_mm": None,
            "spacing_source": "",
            "corrections": {"us_regions": [r.to_dict() for r in exc.regions]},
            "problem": str(exc),
        }
    extra = dict(rec.meta.extra)
    return {
        "kind": kind,
        "path": str(path),
        "frames": rec.n_frames,
        "frame_shape": list(rec.frame_shape),
        "fps": rec.fps,
        "duration_s": float(rec.t_s[-1] - rec.t_s[0]),
        "time_source": extra.get("time_source")
        or extra.get("dicom", {}).get("time_source", "user:fps"),
        "pixel_spacing_mm": None if rec.pixel_spacing_mm is None else list(rec.pixel_spacing_mm),
        "spacing_source": rec.meta.spacing_source,
        "scanner": rec.meta.scanner,
        "repeated_frames": extra.get("repeated_frames"),
        "corrections": corrections(extra),
        "details": {k: v for k, v in extra.items() if not k.endswith("_indices") and k != "files"},
    }


def corrections(extra: Mapping[str, Any]) -> dict[str, Any]:
    """What a reader corrected or chose, from a recording's ``meta.extra``: display rotation,
    bit depth, container frame count, ultrasound regions (only the entries that apply)."""
    out: dict[str, Any] = {}
    video = extra.get("video") or {}
    if video.get("rotation_deg"):
        out["rotation_deg"] = video["rotation_deg"]
    if video.get("frame_count_note"):
        out["container_frames"] = video.get("container_frames")
        out["frame_count_note"] = video["frame_count_note"]
    if "bit_depth" in extra:
        out["bit_depth"] = extra["bit_depth"]
        out["bit_depth_source"] = extra.get("bit_depth_source", "")
    dicom = extra.get("dicom") or {}
    if len(dicom.get("us_regions") or []) > 1:
        out["us_regions"] = dicom["us_regions"]
        out["us_region_used"] = dicom.get("us_region")
    if "pages" in extra:
        out["pages"] = extra["pages"]
    return out


def _call(reader: Callable[..., Recording], path: Path, kw: dict[str, Any]) -> Recording:
    """Call ``reader`` once the options are known to apply (else a ConfigError lists them)."""
    params = inspect.signature(reader).parameters
    unknown = sorted(k for k in kw if k not in params or k == "path")
    if unknown:
        accepted = ", ".join(k for k in params if k != "path")
        raise ConfigError(
            f"{path}: option(s) {', '.join(unknown)} do not apply to {reader.__name__}; "
            f"it accepts {accepted}"
        )
    return reader(path, **kw)
