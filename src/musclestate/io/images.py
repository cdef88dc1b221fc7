"""Still images through Pillow: folders of images (one per frame), single image files, and
multi-page TIFF stacks (one page per frame).

Folders are ordered naturally (``frame2.png`` before ``frame10.png``, case ignored) with natsort.
Colour images become ITU-R BT.601 luma. Images of more than 8 bits are scaled by the bit depth
the data use, judged over the whole recording (:func:`musclestate.io._common.data_bit_depth`):
a 16-bit TIFF holding 12-bit data is scaled by 4095, not 65535. The depth used is recorded in
``meta.extra["bit_depth"]``. Every image must have the size of the first.

Frame times are ``t0_s + k / fps``. A multi-page TIFF is one recording: its rate comes from the
file where ImageJ wrote one (``finterval`` or ``fps`` in the ImageDescription), else ``fps=`` is
required. A single image is one frame at ``t0_s``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.errors import MediaError
from musclestate.io._common import (
    apply_crop_flip,
    check_crop,
    depth_spacing,
    finish_meta,
    make_recording,
    positive_fps,
    scale_to_uint8,
    to_luma,
    user_spacing,
)
from musclestate.io.formats import IMAGE_SUFFIXES
from musclestate.records import Recording, RecordingMeta

__all__ = [
    "IMAGE_SUFFIXES",
    "is_stack",
    "list_images",
    "read_image",
    "read_image_file",
    "read_image_folder",
]

log = logging.getLogger(__name__)

_TIFF_DESCRIPTION = 270  # TIFF tag ImageDescription
_IMAGEJ_KEY = re.compile(r"^(finterval|fps)=([0-9.eE+-]+)\s*$", re.MULTILINE)


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, in natural order (hidden files skipped)."""
    from natsort import natsorted, ns

    folder = Path(folder)
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    return natsorted(files, key=lambda p: p.name, alg=ns.IGNORECASE)


def is_stack(path: str | Path) -> bool:
    """True for an image file of more than one page (a multi-page TIFF: one recording).

    Reads the header only; an unreadable file is not a stack (its reader says what is wrong).
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            return int(getattr(im, "n_frames", 1) or 1) > 1
    except Exception:  # Pillow raises many types on damaged files; reading reports them
        return False


def _page(im: Any, path: Path) -> np.ndarray:
    """The current page of an open Pillow image as ``(H, W)`` grey at its own bit depth."""
    mode = im.mode
    if mode in ("1", "L"):
        arr = np.asarray(im.convert("L"))
    elif mode.startswith("I;16") or mode == "I":
        arr = np.asarray(im)
        if arr.dtype.kind not in "iu":
            raise MediaError(
                f"image mode {mode!r} decoded to {arr.dtype}; save as 8 or 16 bit", path
            )
        if arr.size and int(arr.min()) < 0:
            raise MediaError(
                f"holds negative pixel values (mode {mode!r}); export unsigned 8- or 16-bit images",
                path,
            )
        if arr.size and int(arr.max()) > 65535:
            raise MediaError(
                f"holds values above 65535 (mode {mode!r}); export 8- or 16-bit images", path
            )
        arr = arr.astype(np.uint16)
    elif mode in ("RGB", "RGBA", "P", "PA", "LA", "CMYK", "YCbCr", "LAB", "HSV"):
        arr = to_luma(np.asarray(im.convert("RGB")))
    else:
        raise MediaError(f"image mode {mode!r} is not supported; save as 8 or 16 bit", path)
    if arr.ndim != 2:
        raise MediaError(f"decoded to shape {arr.shape}, expected a 2-D image", path)
    return arr


def _open_pages(path: Path) -> tuple[list[np.ndarray], float | None]:
    """Every page of an image file at its own bit depth, and the frame rate the file states."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            n = int(getattr(im, "n_frames", 1) or 1)
            fps = _imagej_fps(im) if n > 1 else None
            pages = []
            for k in range(n):
                im.seek(k)
                im.load()
                pages.append(_page(im, path))
    except MediaError:
        raise
    except FileNotFoundError:
        raise MediaError("image file not found", path) from None
    except UnidentifiedImageError:
        raise MediaError("is not an image Pillow can read", path) from None
    except Exception as exc:  # Pillow raises OSError/ValueError/DecompressionBombError, ...
        raise MediaError(
            f"cannot decode the image ({type(exc).__name__}: {str(exc)[:120]}); the file is "
            "probably truncated or corrupt",
            path,
        ) from None
    return pages, fps


def _imagej_fps(im: Any) -> float | None:
    """Frame rate from an ImageJ ImageDescription (``finterval`` in s, or ``fps``), if any.

    Read here by hand (a few ``key=value`` lines) because Pillow already holds the tag and
    parses no ImageJ metadata itself.
    """
    tags = getattr(im, "tag_v2", None)
    text = tags.get(_TIFF_DESCRIPTION) if tags is not None else None
    if not isinstance(text, str) or not text.startswith("ImageJ"):
        return None
    found = {k: float(v) for k, v in _IMAGEJ_KEY.findall(text)}
    if found.get("finterval", 0) > 0 and np.isfinite(found["finterval"]):
        return 1.0 / found["finterval"]
    if found.get("fps", 0) > 0 and np.isfinite(found["fps"]):
        return found["fps"]
    return None


def read_image(path: str | Path) -> np.ndarray:
    """One single-page image file as ``(H, W)`` uint8 grey (luma for colour; more than 8 bits
    scaled by the depth the data use).

    Raises :class:`MediaError` for a missing, unreadable, truncated or multi-page file.
    """
    path = Path(path)
    pages, _ = _open_pages(path)
    if len(pages) > 1:
        raise MediaError(
            f"holds {len(pages)} pages; read it as a recording (read_image_file, or give the "
            "file to probe/import) instead of as one image",
            path,
        )
    return scale_to_uint8(pages[0], path)[0]


def _recording(
    pages: list[np.ndarray],
    names: list[Path],
    path: Path,
    fps: float,
    time_source: str,
    t0_s: float,
    crop: Sequence[int] | None,
    flip_horizontal: bool,
    pixel_spacing_mm: Sequence[float] | float | None,
    depth_mm: float | None,
    meta: RecordingMeta | None,
    extra: dict[str, Any],
) -> Recording:
    """Frames at their own depth -> one Recording (bit depth judged over all frames)."""
    first = pages[0]
    for k, img in enumerate(pages):
        if img.shape != first.shape:
            raise MediaError(
                f"is {img.shape[1]}x{img.shape[0]} (WxH) but {names[0].name} is "
                f"{first.shape[1]}x{first.shape[0]}; all frames must have one size",
                names[k],
            )
    box = None if crop is None else check_crop(crop, first.shape[1], first.shape[0], names[0])
    stack = np.stack(pages) if len(pages) > 1 else first[None]
    frames, bits = scale_to_uint8(stack, path)
    frames = np.ascontiguousarray(apply_crop_flip(frames, box, flip_horizontal))
    n, h, w = frames.shape
    log.info("%s: %d frames of %dx%d, %d-bit data", path, n, w, h, bits)
    if pixel_spacing_mm is not None and depth_mm is not None:
        raise MediaError("give pixel_spacing_mm or depth_mm, not both", path)
    if depth_mm is not None:
        spacing = depth_spacing(depth_mm, h, path)
        source = "user:depth_mm"
    else:
        spacing = user_spacing(pixel_spacing_mm, path)
        source = "user:mm_per_pixel" if spacing is not None else ""
    extra = {
        **extra,
        "fps": fps,
        "time_source": time_source,
        "bit_depth": bits,
        "bit_depth_source": "data" if stack.dtype != np.uint8 else "8-bit images",
        "crop": None if box is None else list(box),
        "flip_horizontal": bool(flip_horizontal),
    }
    meta = finish_meta(meta, path, extra, source)
    t_s = float(t0_s) + np.arange(n, dtype=np.float64) / fps
    return make_recording(frames, t_s, spacing, meta, path)


def _no_rate(what: str, path: Path) -> MediaError:
    """The one refusal of frames without a frame rate, for folders and stacks alike."""
    return MediaError(
        f"{what}; give the rate the images were taken at (--fps N on the command line, "
        "fps = N in a manifest, fps= in Python)",
        path,
    )


def read_image_folder(
    path: str | Path,
    fps: float | None = None,
    *,
    t0_s: float = 0.0,
    crop: Sequence[int] | None = None,
    flip_horizontal: bool = False,
    pixel_spacing_mm: Sequence[float] | float | None = None,
    depth_mm: float | None = None,
    meta: RecordingMeta | None = None,
) -> Recording:
    """Read a folder of images, one per frame, into a :class:`Recording`.

    Args:
        path: folder holding PNG/TIFF/BMP/JPEG files (sub-folders are ignored).
        fps: frame rate in frames/s; frame ``k`` is at ``t0_s + k / fps``. Required: a folder
            says nothing of its rate, so ``None`` is refused with the way out.
        t0_s: time of the first frame in seconds.
        crop: ``(x, y, w, h)`` in 0-based pixels.
        flip_horizontal: mirror left-right (after cropping).
        pixel_spacing_mm: ``(row_mm, col_mm)`` or one number for square pixels.
        depth_mm: imaging depth spanned by the (cropped) image's rows; gives square pixels.
        meta: recording metadata; ``None`` gives participant ``"unknown"``, trial = folder name.

    Raises:
        MediaError: missing folder, no images, an unreadable or multi-page image, images of
            different sizes, crop outside the frame, bad fps or spacing.
    """
    path = Path(path)
    if not path.exists():
        raise MediaError("image folder not found; check the path", path)
    if not path.is_dir():
        raise MediaError("is a file; read_image_folder needs a folder of images", path)
    files = list_images(path)
    if not files:
        raise MediaError(f"holds no images ({', '.join(IMAGE_SUFFIXES)}); check the folder", path)
    if fps is None:
        raise _no_rate(f"is a folder of {len(files)} images", path)
    fps_f = positive_fps(fps, path)
    pages = []
    for f in files:
        got, _ = _open_pages(f)
        if len(got) > 1:
            raise MediaError(
                f"holds {len(got)} pages, but a folder must hold one image per frame; give the "
                f"file itself ({f}) to read its {len(got)} pages as one recording",
                f,
            )
        pages.append(got[0])
    extra = {"files": [f.name for f in files]}
    return _recording(
        pages,
        files,
        path,
        fps_f,
        "user:fps",
        t0_s,
        crop,
        flip_horizontal,
        pixel_spacing_mm,
        depth_mm,
        meta,
        extra,
    )


def read_image_file(
    path: str | Path,
    fps: float | None = None,
    *,
    t0_s: float = 0.0,
    crop: Sequence[int] | None = None,
    flip_horizontal: bool = False,
    pixel_spacing_mm: Sequence[float] | float | None = None,
    depth_mm: float | None = None,
    meta: RecordingMeta | None = None,
) -> Recording:
    """Read one image file: a single image (one frame) or a multi-page TIFF (one page a frame).

    Args:
        path: PNG/TIFF/BMP/JPEG file.
        fps: frame rate in frames/s; overrides the rate an ImageJ TIFF states. A stack without
            a stated rate needs it; a single image does not.
        t0_s: time of the first frame in seconds.
        crop, flip_horizontal, pixel_spacing_mm, depth_mm, meta: as for
            :func:`read_image_folder`.

    Raises:
        MediaError: missing, unreadable or corrupt file; a stack without a frame rate and no
            ``fps``; pages of different sizes; crop outside the frame.
    """
    path = Path(path)
    if not path.exists():
        raise MediaError("image file not found; check the path", path)
    if path.is_dir():
        raise MediaError("is a folder; read_image_folder reads folders of images", path)
    pages, file_fps = _open_pages(path)
    n = len(pages)
    if fps is not None:
        fps_f, source = positive_fps(fps, path), "user:fps"
    elif file_fps is not None:
        fps_f, source = file_fps, "tiff:ImageJ"
    elif n == 1:
        fps_f, source = 1.0, "single_frame"
    else:
        raise _no_rate(f"is a stack of {n} pages with no frame rate in the file", path)
    extra = {"pages": n}
    return _recording(
        pages,
        [path] * n,
        path,
        fps_f,
        source,
        t0_s,
        crop,
        flip_horizontal,
        pixel_spacing_mm,
        depth_mm,
        meta,
        extra,
    )
