"""Single- and multi-frame DICOM ultrasound through pydicom.

Frame times, from the first of these that applies:
``fps=`` given by the user (``"user:fps"``); Frame Time Vector (0018,1065), increments in ms
with 0 for the first frame (``"dicom:FrameTimeVector"``); Frame Time (0018,1063), ms per frame
(``"dicom:FrameTime"``); Cine Rate (0018,0040) or Recommended Display Frame Rate (0008,2144), in
frames/s; a single frame is at 0 s. A multi-frame file with none of these needs ``fps=``.

Pixel spacing ``(row_mm, col_mm)``, from the first of these that applies, recorded in
``meta.spacing_source``: the user's ``pixel_spacing_mm`` (``"user:mm_per_pixel"``) or
``depth_mm`` over the image rows (``"user:depth_mm"``); the Sequence of Ultrasound Regions
(0018,6011), Physical Delta X/Y of a 2-D region in cm, times 10
(``"dicom:SequenceOfUltrasoundRegions"``); Pixel Spacing (0028,0030) in mm
(``"dicom:PixelSpacing"``). Ultrasound scanners often fill only the regions. A user value that
disagrees with the file's tags by more than 1 % is logged as a warning.

A frame with several calibrated regions of different spacing (a dual view) has no one spacing:
the crop selects the region whose spacing is used, and without a crop (or a user spacing) the
file is refused with a :class:`RegionChoiceError` that lists the regions (bounds, mm/px).

Colour (RGB, YBR, palette) images become ITU-R BT.601 luma; MONOCHROME1 is inverted so that
bright means echogenic. More than 8 bits are scaled to 0..255 by the depth of the data: Bits
Stored where it is less than Bits Allocated, otherwise the depth the values use (8-bit palette
entries stored in 16-bit words are 8-bit; see :func:`musclestate.io._common.data_bit_depth`);
``meta.extra["bit_depth"]`` records it. No patient data is copied into the metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
    to_uint8,
    user_spacing,
)
from musclestate.records import Recording, RecordingMeta

log = logging.getLogger(__name__)

_CM = 3  # Physical Units code for centimetres (DICOM PS3.3 C.8.5.5.1.15)
_SPATIAL_2D = 1  # Region Spatial Format: 2-D (tissue or flow)
_TISSUE = 1  # Region Data Type: tissue


@dataclass(frozen=True)
class UltrasoundRegion:
    """One item of the Sequence of Ultrasound Regions with a 2-D spatial calibration in cm.

    Attributes:
        bbox: ``(x0, y0, x1, y1)`` inclusive pixel bounds (Region Location Min/Max).
        spacing_mm: ``(row_mm, col_mm)`` from Physical Delta Y / X times 10.
        tissue: Region Data Type is tissue (B-mode), not e.g. colour flow.
    """

    bbox: tuple[int, int, int, int]
    spacing_mm: tuple[float, float]
    tissue: bool

    @property
    def crop(self) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` crop rectangle of the region."""
        x0, y0, x1, y1 = self.bbox
        return x0, y0, x1 - x0 + 1, y1 - y0 + 1

    def contains(self, crop: Sequence[int]) -> bool:
        x, y, w, h = crop
        x0, y0, x1, y1 = self.bbox
        return x >= x0 and y >= y0 and x + w - 1 <= x1 and y + h - 1 <= y1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: bounds, crop rectangle, spacing and whether it is tissue (B-mode)."""
        return {
            "bbox": list(self.bbox),
            "crop": list(self.crop),
            "spacing_mm": list(self.spacing_mm),
            "tissue": self.tissue,
        }

    def describe(self, index: int) -> str:
        x0, y0, x1, y1 = self.bbox
        x, y, w, h = self.crop
        return (
            f"region {index} at x {x0}-{x1}, y {y0}-{y1} (crop {x} {y} {w} {h}): "
            f"{self.spacing_mm[0]:.4g} x {self.spacing_mm[1]:.4g} mm/px"
        )


class RegionChoiceError(MediaError):
    """A DICOM frame holds calibrated regions of different spacing and nothing chose one.

    Attributes:
        regions: the calibrated 2-D regions, in file order.
        n_frames: frames the file holds; frame_shape: ``(rows, columns)`` of the whole frame.
    """

    def __init__(
        self,
        message: str,
        path: Path,
        regions: list[UltrasoundRegion],
        n_frames: int,
        frame_shape: tuple[int, int],
    ) -> None:
        super().__init__(message, path)
        self.regions = regions
        self.n_frames = n_frames
        self.frame_shape = frame_shape


def _region_choice_error(
    why: str, regions: list[UltrasoundRegion], path: Path, ds: Any
) -> RegionChoiceError:
    listing = "; ".join(r.describe(i) for i, r in enumerate(regions))
    return RegionChoiceError(
        f"{why}: {listing}. Give a crop inside one region (--crop X Y W H, crop = [x, y, w, h] "
        "in a manifest) to use its spacing, or give pixel_spacing_mm",
        path,
        regions,
        int(ds.get("NumberOfFrames", 1) or 1),
        (int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)),
    )


def ultrasound_regions(ds: Any) -> list[UltrasoundRegion]:
    """The calibrated 2-D regions of a dataset's Sequence of Ultrasound Regions (may be empty)."""
    out = []
    for item in ds.get("SequenceOfUltrasoundRegions", None) or []:
        try:
            if int(item.get("RegionSpatialFormat", 0)) != _SPATIAL_2D:
                continue
            if int(item.get("PhysicalUnitsXDirection", 0)) != _CM:
                continue
            if int(item.get("PhysicalUnitsYDirection", 0)) != _CM:
                continue
            dx = float(item.PhysicalDeltaX) * 10.0
            dy = float(item.PhysicalDeltaY) * 10.0
            bbox = tuple(
                int(item.get(k, 0))
                for k in (
                    "RegionLocationMinX0",
                    "RegionLocationMinY0",
                    "RegionLocationMaxX1",
                    "RegionLocationMaxY1",
                )
            )
        except (AttributeError, TypeError, ValueError):
            continue
        # Some scanners store negative deltas for the direction; spacing is the magnitude.
        dx, dy = abs(dx), abs(dy)
        if dx > 0 and dy > 0 and np.isfinite(dx) and np.isfinite(dy):
            tissue = int(item.get("RegionDataType", _TISSUE)) == _TISSUE
            out.append(UltrasoundRegion(bbox, (dy, dx), tissue))  # type: ignore[arg-type]
    return out


def _pick_region(
    regions: list[UltrasoundRegion], crop: Sequence[int] | None
) -> UltrasoundRegion | None:
    """The region that holds the crop (if given), preferring tissue, then the largest area."""
    cands = [r for r in regions if crop is None or r.contains(crop)]
    if not cands:
        return None

    def area(r: UltrasoundRegion) -> int:
        return r.crop[2] * r.crop[3]

    return max(cands, key=lambda r: (r.tissue, area(r)))


def _read_dataset(path: Path) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not path.exists():
        raise MediaError("DICOM file not found; check the path", path)
    if path.is_dir():
        raise MediaError("is a folder; read_dicom reads one (multi-frame) DICOM file", path)
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        raise MediaError("is not a DICOM file (no DICM preamble or valid header)", path) from None
    except Exception as exc:  # pydicom raises many types on damaged files; wrap them all
        raise MediaError(
            f"cannot parse the DICOM header ({type(exc).__name__}: {str(exc)[:120]}); the file "
            "is probably truncated or corrupt",
            path,
        ) from None


def _pixels(ds: Any, path: Path) -> tuple[np.ndarray, tuple[int, str]]:
    """``(T, H, W)`` uint8 grey frames from the dataset's pixel data, and the bit depth used
    with where it came from."""
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise MediaError("holds no pixel data (not an image)", path)
    try:
        arr = np.asarray(ds.pixel_array)
    except Exception as exc:  # decoder plug-ins raise anything; name the transfer syntax
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        ts_name = getattr(ts, "name", str(ts))
        raise MediaError(
            f"cannot decode pixel data ({type(exc).__name__}: {str(exc)[:160]}); transfer "
            f"syntax {ts_name}. A compressed syntax needs a pydicom pixel plug-in (e.g. "
            "pylibjpeg); a damaged file must be re-exported",
            path,
        ) from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    allocated = int(ds.get("BitsAllocated", 8) or 8)
    bits = int(ds.get("BitsStored", allocated) or allocated)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            rgb = np.asarray(apply_color_lut(arr, ds))
        except Exception as exc:
            raise MediaError(f"cannot apply the palette ({exc})", path) from None
        # Palette entries are often 8-bit values in 16-bit words (PS3.3 C.7.6.3.1.5): the
        # data, not the descriptor, say which.
        rgb8, used = scale_to_uint8(rgb, path)
        arr, depth = to_luma(rgb8), (used, "data:palette")
    elif samples == 3:
        # pydicom returns YBR data converted to RGB; take luma of 8-bit RGB.
        rgb8, used = scale_to_uint8(arr, path)
        arr, depth = to_luma(rgb8), (used, "data")
    elif signed or 8 < bits < allocated:
        arr, depth = to_uint8(arr, bits, path), (bits, "dicom:BitsStored")
    else:
        arr, used = scale_to_uint8(arr, path)
        depth = (used, "data" if allocated > 8 else "dicom:BitsStored")
    if photometric == "MONOCHROME1":
        arr = 255 - arr
    if n_frames == 1 and arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] != n_frames:
        raise MediaError(
            f"pixel data decoded to shape {arr.shape}, expected {n_frames} frame(s) of 2-D images",
            path,
        )
    return arr, depth


def _frame_times(ds: Any, n: int, fps: float | None, path: Path) -> tuple[np.ndarray, str]:
    if fps is not None:
        return np.arange(n) / positive_fps(fps, path), "user:fps"
    vec = ds.get("FrameTimeVector", None)
    if vec is not None and n > 1:
        inc = np.atleast_1d(np.asarray(vec, dtype=np.float64))
        if inc.size != n:
            raise MediaError(
                f"Frame Time Vector has {inc.size} entries for {n} frames; pass fps= to ignore it",
                path,
            )
        if not np.isfinite(inc).all() or (inc[1:] <= 0).any():
            raise MediaError(
                "Frame Time Vector holds non-positive or non-finite increments; pass fps=", path
            )
        inc[0] = 0.0  # the first frame's increment is 0 by definition
        return np.cumsum(inc) / 1000.0, "dicom:FrameTimeVector"
    for key, to_s, source in (
        ("FrameTime", lambda v: v / 1000.0, "dicom:FrameTime"),
        ("CineRate", lambda v: 1.0 / v, "dicom:CineRate"),
        ("RecommendedDisplayFrameRate", lambda v: 1.0 / v, "dicom:RecommendedDisplayFrameRate"),
    ):
        value = ds.get(key, None)
        if value is None or value == "":
            continue
        try:
            dt = to_s(float(value))
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if np.isfinite(dt) and dt > 0:
            return np.arange(n) * dt, source
    if n == 1:
        return np.zeros(1), "single_frame"
    raise MediaError(
        f"{n} frames but no frame timing (Frame Time, Frame Time Vector, Cine Rate); "
        "pass fps= with the scanner's frame rate",
        path,
    )


def read_dicom(
    path: str | Path,
    *,
    pixel_spacing_mm: Sequence[float] | float | None = None,
    depth_mm: float | None = None,
    fps: float | None = None,
    crop: Sequence[int] | Literal["us_region"] | None = None,
    flip_horizontal: bool = False,
    meta: RecordingMeta | None = None,
) -> Recording:
    """Read a single- or multi-frame DICOM ultrasound file into a :class:`Recording`.

    Args:
        path: the DICOM file.
        pixel_spacing_mm: ``(row_mm, col_mm)`` or one number; overrides the file's tags.
        depth_mm: imaging depth spanned by the (cropped) image rows; overrides the tags.
        fps: frame rate in frames/s; overrides the file's timing tags.
        crop: ``(x, y, w, h)`` in 0-based pixels, or ``"us_region"`` for the bounding box of
            the calibrated B-mode region in the Sequence of Ultrasound Regions. With several
            regions of different spacing, the region holding the crop gives the spacing.
        flip_horizontal: mirror left-right (after cropping).
        meta: recording metadata; ``None`` gives participant ``"unknown"``, trial = file stem.

    Raises:
        MediaError: missing, non-DICOM, truncated or undecodable file; no pixel data; a
            multi-frame file without timing and no ``fps``; a crop outside the image.
        RegionChoiceError: regions of different spacing and neither a crop inside one of them
            nor a user spacing (the message lists the regions).
    """
    path = Path(path)
    if pixel_spacing_mm is not None and depth_mm is not None:
        raise MediaError("give pixel_spacing_mm or depth_mm, not both", path)
    ds = _read_dataset(path)
    try:
        regions = ultrasound_regions(ds)
    except Exception as exc:  # pydicom parses values lazily: a damaged sequence fails here
        raise MediaError(
            f"cannot parse the Sequence of Ultrasound Regions ({type(exc).__name__}: "
            f"{str(exc)[:120]}); the file is probably truncated or corrupt",
            path,
        ) from None
    user_given = pixel_spacing_mm is not None or depth_mm is not None
    distinct = {r.spacing_mm for r in regions if r.tissue} or {r.spacing_mm for r in regions}
    several = len(distinct) > 1
    if isinstance(crop, str):
        if crop != "us_region":
            raise MediaError(f"crop must be (x, y, w, h) or 'us_region', got {crop!r}", path)
        if several:
            raise _region_choice_error(
                "crop='us_region' but the file holds calibrated regions of different spacing",
                regions,
                path,
                ds,
            )
    elif crop is None and several and not user_given:
        raise _region_choice_error(
            "holds calibrated ultrasound regions of different pixel spacing, so no one spacing "
            "fits the whole frame",
            regions,
            path,
            ds,
        )
    frames, (bit_depth, bit_source) = _pixels(ds, path)
    n, height, width = frames.shape
    if isinstance(crop, str):
        chosen = _pick_region(regions, None)
        if chosen is None:
            raise MediaError(
                "crop='us_region' but the file has no calibrated 2-D Sequence of Ultrasound "
                "Regions; give the crop as (x, y, w, h)",
                path,
            )
        box = check_crop(chosen.crop, width, height, path)
    else:
        box = None if crop is None else check_crop(crop, width, height, path)
        chosen = _pick_region(regions, box)
        if box is not None and chosen is None and several and not user_given:
            raise _region_choice_error(
                f"crop {' '.join(map(str, box))} does not lie inside one calibrated region, and "
                "the regions' spacings differ",
                regions,
                path,
                ds,
            )
    frames = np.ascontiguousarray(apply_crop_flip(frames, box, flip_horizontal))
    t_s, time_source = _frame_times(ds, n, fps, path)

    tag_spacing: tuple[float, float] | None = None
    tag_source = ""
    if chosen is not None:
        tag_spacing, tag_source = chosen.spacing_mm, "dicom:SequenceOfUltrasoundRegions"
    elif "PixelSpacing" in ds:
        try:
            ps = [float(v) for v in ds.PixelSpacing]
            if len(ps) == 2 and all(np.isfinite(v) and v > 0 for v in ps):
                tag_spacing, tag_source = (ps[0], ps[1]), "dicom:PixelSpacing"
        except (TypeError, ValueError):
            log.warning("%s: unreadable Pixel Spacing %r ignored", path, ds.PixelSpacing)
    if depth_mm is not None:
        spacing, source = depth_spacing(depth_mm, frames.shape[1], path), "user:depth_mm"
    elif pixel_spacing_mm is not None:
        spacing, source = user_spacing(pixel_spacing_mm, path), "user:mm_per_pixel"
    else:
        spacing, source = tag_spacing, tag_source
    if source.startswith("user:") and tag_spacing is not None and spacing is not None:
        if not np.allclose(spacing, tag_spacing, rtol=0.01):
            log.warning(
                "%s: user spacing %s mm differs from the file's %s %s mm; using the user's",
                path,
                spacing,
                tag_source,
                tag_spacing,
            )
    if spacing is None:
        log.warning("%s: no pixel spacing in the file or given; distances stay in pixels", path)

    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    extra = {
        "dicom": {
            "sop_class": str(ds.get("SOPClassUID", "")),
            "transfer_syntax": str(ts or ""),
            "photometric": str(ds.get("PhotometricInterpretation", "")),
            "frames": int(n),
            "size": [int(width), int(height)],
            "time_source": time_source,
            "tag_spacing_mm": None if tag_spacing is None else list(tag_spacing),
            "tag_spacing_source": tag_source,
            "us_region": None if chosen is None else list(chosen.bbox),
            "us_regions": [r.to_dict() for r in regions],
        },
        "bit_depth": bit_depth,
        "bit_depth_source": bit_source,
        "crop": None if box is None else list(box),
        "flip_horizontal": bool(flip_horizontal),
    }
    scanner = " ".join(
        str(ds.get(k, "")).strip() for k in ("Manufacturer", "ManufacturerModelName")
    ).strip()
    meta = finish_meta(meta, path, extra, source, scanner=scanner)
    return make_recording(frames, np.asarray(t_s, dtype=np.float64), spacing, meta, path)
