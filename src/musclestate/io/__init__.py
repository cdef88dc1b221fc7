"""Readers and writers: ultrasound media in, :class:`~musclestate.records.Recording` out.

- :mod:`musclestate.io.video`: MP4/AVI/MOV/WMV via PyAV (``read_video``, ``write_video``,
  ``find_repeated_frames``);
- :mod:`musclestate.io.images`: folders of PNG/TIFF/BMP/JPEG (``read_image_folder``);
- :mod:`musclestate.io.dicom`: single- and multi-frame DICOM (``read_dicom``);
- :mod:`musclestate.io.signals`: lab signals from CSV, MATLAB .mat and C3D (``read_signals``).

:func:`read_recording` picks the reader from the path. Submodules import their heavy library
(PyAV, pydicom, h5py, ezc3d) only when first used.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from musclestate.errors import ConfigError, MediaError
from musclestate.records import Recording

__all__ = ["probe", "read_recording"]

_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")


def read_recording(path: str | Path, **kw: Any) -> Recording:
    """Read a video file, DICOM file or image folder, choosing the reader from the path.

    A folder goes to :func:`~musclestate.io.images.read_image_folder` (needs ``fps=``), a
    ``.dcm`` file (or any file starting with the DICOM preamble ``DICM`` at byte 128) to
    :func:`~musclestate.io.dicom.read_dicom`, a video suffix to
    :func:`~musclestate.io.video.read_video`. Keyword arguments go to that reader.

    Raises:
        MediaError: missing path or a suffix no reader knows (the message lists the known ones).
    """
    from musclestate.io import video

    path = Path(path)
    if not path.exists():
        raise MediaError("file or folder not found; check the path", path)
    if path.is_dir():
        from musclestate.io import images

        return _call(images.read_image_folder, path, kw)
    suffix = path.suffix.lower()
    if suffix in _DICOM_SUFFIXES or _has_dicom_preamble(path):
        from musclestate.io import dicom

        return _call(dicom.read_dicom, path, kw)
    if suffix in video.VIDEO_SUFFIXES:
        return _call(video.read_video, path, kw)
    raise MediaError(
        f"unknown media type {suffix!r}; expected a folder of images, DICOM "
        f"({', '.join(_DICOM_SUFFIXES)}) or video ({', '.join(video.VIDEO_SUFFIXES)})",
        path,
    )


def probe(
    path: str | Path,
    *,
    crop: Sequence[int] | None = None,
    fps: float | None = None,
    mat_group: str | None = None,
) -> dict[str, Any]:
    """Summarise a media or signal file as the readers see it (JSON-serialisable).

    Signal files (``.csv``, ``.tsv``, ``.mat``, ``.c3d``) give ``{"kind": "signals",
    "channels": [...]}`` with each channel's unit, samples, rate and time span. Media give the
    frame count and size (after ``crop``), frame rate and span from the frame times, where the
    times and the spacing came from, repeated frames, and the reader's own metadata. ``fps``
    applies to image folders and DICOM files without timing; videos keep their time stamps.
    """
    from musclestate.io.signals import read_signals, signal_table

    path = Path(path)
    if path.is_file() and path.suffix.lower() in (".csv", ".tsv", ".mat", ".c3d"):
        sigs = read_signals(path, mat_group=mat_group)
        return {"kind": "signals", "path": str(path), "channels": signal_table(sigs)}
    kw: dict[str, Any] = {}
    if crop is not None:
        kw["crop"] = tuple(crop)
    kind = "video"
    if path.is_dir():
        kind = "images"
    elif path.suffix.lower() in _DICOM_SUFFIXES or _has_dicom_preamble(path):
        kind = "dicom"
    if fps is not None and kind != "video":
        kw["fps"] = fps
    rec = read_recording(path, **kw)
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
        "details": {k: v for k, v in extra.items() if not k.endswith("_indices") and k != "files"},
    }


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


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"
