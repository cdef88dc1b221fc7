"""Folders of still images (PNG, TIFF, BMP, JPEG), one per frame, read through Pillow.

Files are ordered naturally (``frame2.png`` before ``frame10.png``, case ignored) with natsort;
frame times are ``t0_s + k / fps``. Colour images become ITU-R BT.601 luma, 16-bit images are
scaled to 0..255, and every image must have the size of the first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from musclestate.errors import MediaError
from musclestate.io._common import (
    apply_crop_flip,
    check_crop,
    depth_spacing,
    finish_meta,
    make_recording,
    to_luma,
    to_uint8,
    user_spacing,
)
from musclestate.records import Recording, RecordingMeta

log = logging.getLogger(__name__)

#: Image suffixes read from a folder (any case).
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg")


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


def read_image(path: str | Path) -> np.ndarray:
    """One image file as ``(H, W)`` uint8 grey (luma for colour, scaled for 16-bit).

    Raises :class:`MediaError` for a missing, unreadable, truncated or multi-page file.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) > 1:
                raise MediaError(
                    f"holds {im.n_frames} pages; a folder must hold one image per frame", path
                )
            im.load()
            mode = im.mode
            if mode in ("1", "L"):
                arr = np.asarray(im.convert("L"))
            elif mode.startswith("I;16") or mode == "I":
                arr = to_uint8(np.asarray(im), 16, path)
            elif mode in ("RGB", "RGBA", "P", "PA", "LA", "CMYK", "YCbCr", "LAB", "HSV"):
                arr = to_luma(np.asarray(im.convert("RGB")))
            else:
                raise MediaError(f"image mode {mode!r} is not supported; save as 8-bit", path)
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
    if arr.ndim != 2:
        raise MediaError(f"decoded to shape {arr.shape}, expected a 2-D image", path)
    return arr


def read_image_folder(
    path: str | Path,
    fps: float,
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
        fps: frame rate in frames/s; frame ``k`` is at ``t0_s + k / fps``.
        t0_s: time of the first frame in seconds.
        crop: ``(x, y, w, h)`` in 0-based pixels.
        flip_horizontal: mirror left-right (after cropping).
        pixel_spacing_mm: ``(row_mm, col_mm)`` or one number for square pixels.
        depth_mm: imaging depth spanned by the (cropped) image's rows; gives square pixels.
        meta: recording metadata; ``None`` gives participant ``"unknown"``, trial = folder name.

    Raises:
        MediaError: missing folder, no images, an unreadable image, images of different sizes,
            crop outside the frame, bad fps or spacing.
    """
    path = Path(path)
    if not path.exists():
        raise MediaError("image folder not found; check the path", path)
    if not path.is_dir():
        raise MediaError("is a file; read_image_folder needs a folder of images", path)
    try:
        fps_f = float(fps)
    except (TypeError, ValueError):
        raise MediaError(f"fps must be a number, got {fps!r}", path) from None
    if not (np.isfinite(fps_f) and fps_f > 0):
        raise MediaError(f"fps must be a positive frame rate, got {fps!r}", path)
    if pixel_spacing_mm is not None and depth_mm is not None:
        raise MediaError("give pixel_spacing_mm or depth_mm, not both", path)
    files = list_images(path)
    if not files:
        raise MediaError(f"holds no images ({', '.join(IMAGE_SUFFIXES)}); check the folder", path)
    first = read_image(files[0])
    box = None if crop is None else check_crop(crop, first.shape[1], first.shape[0], files[0])
    h, w = apply_crop_flip(first, box, False).shape
    frames = np.empty((len(files), h, w), dtype=np.uint8)
    for k, f in enumerate(files):
        img = first if k == 0 else read_image(f)
        if img.shape != first.shape:
            raise MediaError(
                f"is {img.shape[1]}x{img.shape[0]} (WxH) but {files[0].name} is "
                f"{first.shape[1]}x{first.shape[0]}; all frames must have one size",
                f,
            )
        frames[k] = apply_crop_flip(img, box, flip_horizontal)
    log.info("%s: %d images of %dx%d", path, len(files), w, h)
    if depth_mm is not None:
        spacing = depth_spacing(depth_mm, h, path)
        source = "user:depth_mm"
    else:
        spacing = user_spacing(pixel_spacing_mm, path)
        source = "user:mm_per_pixel" if spacing is not None else ""
    extra = {
        "files": [f.name for f in files],
        "fps": fps_f,
        "crop": None if box is None else list(box),
        "flip_horizontal": bool(flip_horizontal),
    }
    meta = finish_meta(meta, path, extra, source)
    t_s = float(t0_s) + np.arange(len(files), dtype=np.float64) / fps_f
    return make_recording(frames, t_s, spacing, meta, path)
