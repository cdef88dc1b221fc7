"""The one list of file kinds musclestate reads, and the one refusal for anything else.

Every command (``probe``, ``import``, ``roi show``, ``predict``, ``stream``) asks
:func:`media_kind` what a path is, so a file is either read by the same reader everywhere or
refused everywhere with the same message (:func:`unsupported`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from musclestate.errors import MediaError

#: Video containers decoded with PyAV (any case).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".avi", ".mov", ".wmv", ".mkv", ".webm", ".mpg", ".mpeg")
#: DICOM files (a file of any suffix with the ``DICM`` preamble at byte 128 is DICOM too).
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
#: Still images: one per frame in a folder, or one file (multi-page TIFF: one page per frame).
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg")
#: Lab signal files (read by :func:`musclestate.io.signals.read_signals`).
SIGNAL_SUFFIXES = (".csv", ".txt", ".tsv", ".mat", ".c3d")

MediaKind = Literal["video", "dicom", "images", "image", "signals"]


def has_dicom_preamble(path: Path) -> bool:
    """True when ``path`` carries the DICOM preamble ``DICM`` at byte 128."""
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def media_kind(path: str | Path) -> MediaKind:
    """What ``path`` is: ``"images"`` (a folder), ``"dicom"``, ``"video"``, ``"image"`` (one
    image file, single- or multi-page) or ``"signals"``.

    Raises:
        MediaError: the path does not exist, or its kind is none of these (:func:`unsupported`).
    """
    path = Path(path)
    if not path.exists():
        raise MediaError("file or folder not found; check the path", path)
    if path.is_dir():
        return "images"
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES or has_dicom_preamble(path):
        return "dicom"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in SIGNAL_SUFFIXES:
        return "signals"
    raise unsupported(path, f"the suffix {suffix!r}" if suffix else "no suffix")


def unsupported(path: Path, found: str) -> MediaError:
    """The refusal every command gives for a file no reader takes: names what was found and
    the kinds that are read."""
    kinds = (
        f"videos ({', '.join(VIDEO_SUFFIXES)}), DICOM ({', '.join(DICOM_SUFFIXES)}), image files "
        f"and folders of images ({', '.join(IMAGE_SUFFIXES)}; a multi-page TIFF is one "
        f"recording) and signal files ({', '.join(SIGNAL_SUFFIXES)})"
    )
    return MediaError(
        f"unknown media type ({found}): musclestate reads {kinds}; convert it to one of these "
        "(e.g. ffmpeg -i IN OUT.mp4)",
        path,
    )
