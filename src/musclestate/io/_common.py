"""Helpers shared by the media readers: crop rectangles, pixel spacing, luma, metadata."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.errors import InputError, MediaError
from musclestate.records import Recording, RecordingMeta

Crop = tuple[int, int, int, int]

# ITU-R BT.601 luma weights (those of JPEG and DICOM YBR_FULL).
_BT601 = np.array([0.299, 0.587, 0.114])


def check_crop(crop: Sequence[Any], width: int, height: int, path: Path | None) -> Crop:
    """Validate ``(x, y, w, h)`` (0-based pixels) against a ``width`` x ``height`` frame.

    Values within 1e-6 of a whole number are accepted (rectangles saved by MATLAB carry
    round-off, e.g. 719.9999999 for 720). Raises :class:`MediaError` naming the file, the crop
    and the frame size.
    """
    try:
        if len(crop) != 4 or any(abs(float(v) - round(float(v))) > 1e-6 for v in crop):
            raise ValueError
        x, y, w, h = (round(float(v)) for v in crop)
    except (TypeError, ValueError):
        raise MediaError(
            f"crop must be four whole numbers (x, y, w, h) in 0-based pixels, got {crop!r}", path
        ) from None
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise MediaError(
            f"crop (x={x}, y={y}, w={w}, h={h}) lies outside the {width}x{height} (WxH) frame; "
            f"it must satisfy 0 <= x, 0 <= y, x + w <= {width}, y + h <= {height}",
            path,
        )
    return x, y, w, h


def apply_crop_flip(frames: np.ndarray, crop: Crop | None, flip: bool) -> np.ndarray:
    """Crop ``(..., H, W)`` frames to ``crop`` and mirror left-right if ``flip`` (views)."""
    if crop is not None:
        x, y, w, h = crop
        frames = frames[..., y : y + h, x : x + w]
    if flip:
        frames = frames[..., ::-1]
    return frames


def positive_fps(fps: Any, path: Path | None) -> float:
    """``fps`` as a positive finite float; otherwise a :class:`MediaError` naming ``path``."""
    try:
        f = float(fps)
    except (TypeError, ValueError):
        raise MediaError(f"fps must be a number, got {fps!r}", path) from None
    if not (np.isfinite(f) and f > 0):
        raise MediaError(f"fps must be a positive frame rate, got {fps!r}", path)
    return f


def user_spacing(
    value: Sequence[float] | float | None, path: Path | None
) -> tuple[float, float] | None:
    """``(row_mm, col_mm)`` from one number (square pixels) or a pair; ``None`` stays ``None``."""
    if value is None:
        return None
    try:
        if np.isscalar(value):
            vals = [float(value)] * 2  # type: ignore[arg-type]
        else:
            vals = [float(v) for v in value]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise MediaError(
            f"pixel_spacing_mm must be a number or (row_mm, col_mm), got {value!r}", path
        ) from None
    if len(vals) != 2 or not all(np.isfinite(v) and v > 0 for v in vals):
        raise MediaError(
            f"pixel_spacing_mm must be one or two positive numbers, got {value!r}", path
        )
    return vals[0], vals[1]


def depth_spacing(depth_mm: float, rows: int, path: Path | None) -> tuple[float, float]:
    """Square pixels from the imaging depth spanned by ``rows`` image rows."""
    try:
        d = float(depth_mm)
    except (TypeError, ValueError):
        raise MediaError(f"depth_mm must be a number, got {depth_mm!r}", path) from None
    if not (np.isfinite(d) and d > 0):
        raise MediaError(f"depth_mm must be a positive number of mm, got {depth_mm!r}", path)
    return d / rows, d / rows


def to_luma(image: np.ndarray) -> np.ndarray:
    """``(..., H, W, 3)`` RGB -> ``(..., H, W)`` uint8 luma (ITU-R BT.601 weights)."""
    y = np.asarray(image, dtype=np.float32) @ _BT601.astype(np.float32)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def to_uint8(image: np.ndarray, bits_stored: int | None, path: Path | None) -> np.ndarray:
    """Integer grey images of more than 8 bits -> uint8 by scaling the stored range to 0..255."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "b":
        return a.astype(np.uint8) * 255
    if a.dtype.kind not in "iu":
        raise MediaError(f"pixel type {a.dtype} is not supported; export 8-bit images", path)
    bits = int(bits_stored or a.dtype.itemsize * 8)
    lo = -(2 ** (bits - 1)) if a.dtype.kind == "i" else 0
    span = float(2**bits - 1)
    out = (a.astype(np.float64) - lo) * (255.0 / span)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def data_bit_depth(image: np.ndarray) -> int:
    """Bits that unsigned integer pixel data really use: the bit length of the largest value,
    at least 8, rounded up to an even number (10, 12, 14 or 16 bit, as scanners and cameras
    store them).

    A 16-bit container is only the storage type: 12-bit data (0..4095) in 16-bit words are
    12-bit, 8-bit data in 16-bit words are 8-bit. Judge it over a whole recording so that
    every frame is scaled alike.
    """
    a = np.asarray(image)
    top = int(a.max()) if a.size else 0
    bits = max(8, top.bit_length())
    return bits + (bits % 2)


def scale_to_uint8(image: np.ndarray, path: Path | None) -> tuple[np.ndarray, int]:
    """Unsigned integer grey data -> ``(uint8 data, bits used)``, scaled by the bit depth the
    data use (:func:`data_bit_depth`): ``v * 255 / (2**bits - 1)``, rounded."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a, 8
    if a.dtype.kind == "b":
        return a.astype(np.uint8) * 255, 1
    if a.dtype.kind not in "iu" or (a.size and int(a.min()) < 0):
        raise MediaError(
            f"pixel type {a.dtype} with these values is not supported; export unsigned 8- or "
            "16-bit images",
            path,
        )
    bits = data_bit_depth(a)
    return to_uint8(a, bits, path), bits


def finish_meta(
    meta: RecordingMeta | None,
    path: Path,
    extra: Mapping[str, Any],
    spacing_source: str = "",
    **fields: Any,
) -> RecordingMeta:
    """Default or complete a RecordingMeta: participant "unknown", trial = file stem, source."""
    if meta is None:
        trial = path.name if path.is_dir() else (path.stem or path.name)
        meta = RecordingMeta(participant="unknown", trial=trial, **fields)
    changes: dict[str, Any] = {"extra": {**meta.extra, **extra}}
    if not meta.source:
        changes["source"] = str(path)
    if spacing_source and not meta.spacing_source:
        changes["spacing_source"] = spacing_source
    return dataclasses.replace(meta, **changes)


def make_recording(
    frames: np.ndarray,
    t_s: np.ndarray,
    spacing: tuple[float, float] | None,
    meta: RecordingMeta,
    path: Path,
) -> Recording:
    """Build the Recording; its own checks surface as :class:`MediaError` naming ``path``."""
    try:
        return Recording(frames=frames, t_s=t_s, pixel_spacing_mm=spacing, meta=meta)
    except InputError as exc:
        msg = str(exc)
        prefix = f"{path}: "
        raise MediaError(msg[len(prefix) :] if msg.startswith(prefix) else msg, path) from None
