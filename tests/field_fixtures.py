"""Writers of small files of the kinds labs produce (the field cases), for the io tests.

Each writer builds its file from scratch (PyAV, pydicom, Pillow, scipy) and returns what a
correct reader must give back, so that the tests compare against known truth.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import scipy.io as sio
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"  # Ultrasound Multi-frame Image Storage


def texture(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """``(n, h, w)`` uint8 frames: smooth moving stripes plus noise (compresses, not flat)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    out = np.empty((n, h, w), np.uint8)
    for k in range(n):
        base = 128 + 80 * np.sin((x + 2 * k) / 5.0) * np.cos(y / 7.0)
        out[k] = np.clip(base + rng.normal(0, 10, (h, w)), 0, 255).astype(np.uint8)
    # A bright corner marks orientation: top-left of the picture as a player shows it.
    out[:, :4, :6] = 255
    return out


def _yuv(frame: np.ndarray) -> av.VideoFrame:
    h, w = frame.shape
    chroma = np.full((h // 2, w), 128, np.uint8)
    return av.VideoFrame.from_ndarray(np.vstack([frame, chroma]), format="yuv420p")


def write_mp4(
    path: Path,
    stored: np.ndarray,
    fps: int = 25,
    *,
    rotation_ccw: int = 0,
    hflip: bool = False,
    trim_first: int = 0,
) -> Path:
    """Lossless H.264 MP4 of ``stored`` frames (as stored, before any display rotation).

    ``rotation_ccw`` / ``hflip`` write a display matrix (as a phone does). ``trim_first``
    shifts the first frames to negative time stamps, so the muxer writes an edit list that
    hides them: the container lists every frame, players show ``len(stored) - trim_first``
    (what an editor's cut without re-encoding gives).
    """
    n, h, w = stored.shape
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "0", "bf": "0"}
        s.time_base = Fraction(1, fps)
        if rotation_ccw or hflip:
            s.set_display_rotation(rotation_ccw, hflip=hflip)
        for k in range(n):
            vf = _yuv(stored[k])
            vf.pts = k
            for p in s.encode(vf):
                p.pts, p.dts = p.pts - trim_first, p.dts - trim_first
                c.mux(p)
        for p in s.encode(None):
            p.pts, p.dts = p.pts - trim_first, p.dts - trim_first
            c.mux(p)
    return path


def write_avi_with_skips(path: Path, frames: np.ndarray, pts: list[int], fps: int = 25) -> Path:
    """MPEG-4 AVI whose frames sit at frame numbers ``pts`` (gaps: the muxer writes empty
    chunks for the skipped frames, as capture software does for dropped frames)."""
    n, h, w = frames.shape
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.max_b_frames = 0
        s.options = {"qscale": "1"}
        for k, t in zip(range(n), pts, strict=True):
            vf = _yuv(frames[k])
            vf.pts = t
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
    return path


def make_dicom(path: Path, pixels: np.ndarray, photometric: str, bits: int, **tags: Any) -> Path:
    """A small uncompressed ultrasound DICOM with ``pixels`` and extra ``tags``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = US_MULTIFRAME
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = US_MULTIFRAME
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.set_pixel_data(pixels, photometric, bits)
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)
    return path


def us_region(x0: int, y0: int, x1: int, y1: int, mm_per_px: float) -> Dataset:
    """A calibrated 2-D tissue region (Physical Delta in cm, as the standard stores it)."""
    r = Dataset()
    r.RegionSpatialFormat = 1
    r.RegionDataType = 1
    r.RegionFlags = 0
    r.RegionLocationMinX0, r.RegionLocationMinY0 = x0, y0
    r.RegionLocationMaxX1, r.RegionLocationMaxY1 = x1, y1
    r.PhysicalUnitsXDirection = r.PhysicalUnitsYDirection = 3
    r.PhysicalDeltaX = r.PhysicalDeltaY = mm_per_px / 10.0
    return r


def write_dual_view_dicom(path: Path, frames: np.ndarray) -> Path:
    """Two side-by-side views: left 0.3 mm/px (x 0-29), right 0.15 mm/px (x 32-63)."""
    n, h, w = frames.shape
    regions = [us_region(0, 2, 29, h - 1, 0.3), us_region(32, 0, w - 1, h - 1, 0.15)]
    return make_dicom(
        path,
        frames,
        "MONOCHROME2",
        8,
        NumberOfFrames=n,
        FrameTime=40.0,
        SequenceOfUltrasoundRegions=regions,
    )


def write_palette_dicom(path: Path, indices: np.ndarray) -> tuple[Path, np.ndarray]:
    """PALETTE COLOR DICOM whose 16-bit LUT words hold 8-bit values (a grey ramp 0..255).

    Returns the path and the expected grey frames (the LUT applied, 8-bit).
    """
    n = indices.shape[0]
    lut = np.arange(256, dtype=np.uint16)  # entry k -> grey k, in 16-bit words
    ds_path = make_dicom(
        path,
        indices,
        "PALETTE COLOR",
        8,
        NumberOfFrames=n,
        FrameTime=50.0,
        RedPaletteColorLookupTableDescriptor=[256, 0, 16],
        GreenPaletteColorLookupTableDescriptor=[256, 0, 16],
        BluePaletteColorLookupTableDescriptor=[256, 0, 16],
        RedPaletteColorLookupTableData=lut.tobytes(),
        GreenPaletteColorLookupTableData=lut.tobytes(),
        BluePaletteColorLookupTableData=lut.tobytes(),
    )
    return ds_path, indices.astype(np.uint8)


def write_tiff16_folder(folder: Path, frames12: np.ndarray) -> Path:
    """One 16-bit TIFF per frame holding 12-bit values (0..4095)."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(frames12):
        Image.fromarray(f.astype(np.uint16)).save(folder / f"frame_{k:03d}.tif")
    return folder


def write_tiff_stack(path: Path, frames: np.ndarray, fps: float | None = None) -> Path:
    """A multi-page TIFF (8- or 16-bit pages); with ``fps`` an ImageJ description states it."""
    pages = [Image.fromarray(f) for f in frames]
    kw: dict[str, Any] = {}
    if fps is not None:
        kw["description"] = (
            f"ImageJ=1.54f\nimages={len(pages)}\nframes={len(pages)}\n"
            f"finterval={1.0 / fps}\nloop=false\n"
        )
    pages[0].save(path, save_all=True, append_images=pages[1:], **kw)
    return path


def write_decimal_comma_csv(path: Path, t: np.ndarray, angle: np.ndarray) -> Path:
    lines = ["time [s];angle [deg]"]
    lines += [f"{a:.4f};{b:.4f}".replace(".", ",") for a, b in zip(t, angle, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_preamble_csv(path: Path, t: np.ndarray, emg: np.ndarray, units_row: bool) -> Path:
    lines = ["# exported by the amplifier", "# rate: 2000 Hz", ""]
    lines += ["time,emg_mg"]
    if units_row:
        lines += ["ms,mV"]
        t = t * 1000.0
    lines += [f"{a:.6f},{b:.6f}" for a, b in zip(t, emg, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_channels_by_samples_mat(path: Path, t: np.ndarray, emg: np.ndarray) -> Path:
    """A struct ``daq`` with ``time`` (N,) and ``emg`` stored as channels x samples (k, N)."""
    sio.savemat(path, {"daq": {"time": t, "emg": emg, "angle": np.sin(t)}})
    return path
