"""DICOM: single/multi-frame, frame timing tags, spacing from tags or the user, colour, errors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import convert_color_space
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from musclestate.errors import MediaError
from musclestate.io import read_recording
from musclestate.io.dicom import read_dicom

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"  # Ultrasound Multi-frame Image Storage


def make_dicom(
    path: Path,
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits: int = 8,
    **tags: Any,
) -> Path:
    """Write a tiny uncompressed DICOM with ``pixels`` ((T,) H, W (, 3)) and extra ``tags``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = US_MULTIFRAME
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = US_MULTIFRAME
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Manufacturer = "Acme"
    ds.ManufacturerModelName = "Echo 1"
    ds.PatientName = "Secret^Person"
    ds.set_pixel_data(pixels, photometric, bits)
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)
    return path


def region(x0: int, y0: int, x1: int, y1: int, dx_cm: float, dy_cm: float, **kw: Any) -> Dataset:
    r = Dataset()
    r.RegionSpatialFormat = kw.get("fmt", 1)
    r.RegionDataType = kw.get("dtype", 1)
    r.RegionLocationMinX0, r.RegionLocationMinY0 = x0, y0
    r.RegionLocationMaxX1, r.RegionLocationMaxY1 = x1, y1
    r.PhysicalUnitsXDirection = kw.get("units", 3)
    r.PhysicalUnitsYDirection = kw.get("units", 3)
    r.PhysicalDeltaX, r.PhysicalDeltaY = dx_cm, dy_cm
    return r


def cine(t: int = 4, h: int = 20, w: int = 30) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (t, h, w), dtype=np.uint8)


def test_multiframe_frame_time_and_pixel_spacing(tmp_path: Path) -> None:
    px = cine()
    path = make_dicom(
        tmp_path / "a.dcm", px, NumberOfFrames=4, FrameTime=40.0, PixelSpacing=[0.2, 0.25]
    )
    rec = read_dicom(path)
    np.testing.assert_array_equal(rec.frames, px)
    np.testing.assert_allclose(rec.t_s, [0, 0.04, 0.08, 0.12])
    assert rec.pixel_spacing_mm == (0.2, 0.25)
    assert rec.meta.spacing_source == "dicom:PixelSpacing"
    assert rec.meta.extra["dicom"]["time_source"] == "dicom:FrameTime"
    assert rec.meta.scanner == "Acme Echo 1" and rec.meta.trial == "a"
    assert "Secret" not in repr(rec.meta)  # no patient data copied
    assert read_recording(path).n_frames == 4


def test_frame_time_vector_and_ultrasound_regions(tmp_path: Path) -> None:
    px = cine()
    regions = [
        region(0, 0, 29, 4, 0.5, 0.5, dtype=2),  # a non-tissue strip (e.g. a trace)
        region(2, 5, 27, 19, 0.01, 0.02),  # the B-mode image: 0.1 mm x 0.2 mm
    ]
    path = make_dicom(
        tmp_path / "b.dcm",
        px,
        NumberOfFrames=4,
        FrameTimeVector=[0, 50, 30, 20],
        SequenceOfUltrasoundRegions=regions,
        PixelSpacing=[9.0, 9.0],
    )
    rec = read_dicom(path)
    np.testing.assert_allclose(rec.t_s, [0, 0.05, 0.08, 0.10])
    assert rec.pixel_spacing_mm == pytest.approx((0.2, 0.1))
    assert rec.meta.spacing_source == "dicom:SequenceOfUltrasoundRegions"
    assert rec.meta.extra["dicom"]["time_source"] == "dicom:FrameTimeVector"
    cropped = read_dicom(path, crop="us_region")
    np.testing.assert_array_equal(cropped.frames, px[:, 5:20, 2:28])
    assert cropped.meta.extra["crop"] == [2, 5, 26, 15]


def test_single_frame_without_spacing_uses_user_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    img = cine(1)[0]
    path = make_dicom(tmp_path / "c.dcm", img)
    with caplog.at_level(logging.WARNING):
        rec = read_dicom(path)
    assert rec.n_frames == 1 and rec.pixel_spacing_mm is None and rec.t_s.tolist() == [0.0]
    assert "no pixel spacing" in caplog.text
    by_depth = read_dicom(path, depth_mm=50.0)
    assert by_depth.pixel_spacing_mm == (2.5, 2.5)  # 50 mm over 20 rows
    assert by_depth.meta.spacing_source == "user:depth_mm"
    by_mm = read_dicom(path, pixel_spacing_mm=0.3, flip_horizontal=True)
    assert by_mm.pixel_spacing_mm == (0.3, 0.3)
    assert by_mm.meta.spacing_source == "user:mm_per_pixel"
    np.testing.assert_array_equal(by_mm.frames[0], img[:, ::-1])


def test_user_spacing_overrides_tags_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = make_dicom(tmp_path / "d.dcm", cine(1)[0], PixelSpacing=[0.2, 0.2])
    with caplog.at_level(logging.WARNING):
        rec = read_dicom(path, pixel_spacing_mm=0.1)
    assert rec.pixel_spacing_mm == (0.1, 0.1) and "differs" in caplog.text
    assert rec.meta.extra["dicom"]["tag_spacing_mm"] == [0.2, 0.2]


@pytest.mark.parametrize("photometric", ["RGB", "YBR_FULL"])
def test_colour_ultrasound_becomes_grey(tmp_path: Path, photometric: str) -> None:
    rgb = np.zeros((2, 6, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 150, 50
    data = rgb if photometric == "RGB" else convert_color_space(rgb, "RGB", "YBR_FULL")
    path = make_dicom(tmp_path / "e.dcm", data, photometric, NumberOfFrames=2, CineRate=25)
    rec = read_dicom(path)
    assert rec.frames.shape == (2, 6, 8)
    assert abs(float(rec.frames.mean()) - (0.299 * 100 + 0.587 * 150 + 0.114 * 50)) <= 1.0
    np.testing.assert_allclose(rec.t_s, [0, 0.04])


def test_monochrome1_and_12_bit(tmp_path: Path) -> None:
    px = np.array([[[0, 4095], [2048, 1024]]], dtype=np.uint16)
    path = make_dicom(tmp_path / "f.dcm", px[0], "MONOCHROME1", bits=12)
    rec = read_dicom(path)
    np.testing.assert_array_equal(rec.frames[0], 255 - np.array([[0, 255], [128, 64]]))


def test_bad_dicom(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not found"):
        read_dicom(tmp_path / "none.dcm")
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\x00" * 10 + b"hello" * 30)
    with pytest.raises(MediaError, match=r"junk\.dcm.*not a DICOM"):
        read_dicom(junk)
    path = make_dicom(tmp_path / "g.dcm", cine(), NumberOfFrames=4)
    with pytest.raises(MediaError, match=r"g\.dcm.*no frame timing.*fps="):
        read_dicom(path)
    assert read_dicom(path, fps=10).meta.extra["dicom"]["time_source"] == "user:fps"
    with pytest.raises(MediaError, match=r"30x20"):
        read_dicom(path, fps=10, crop=(0, 0, 31, 5))
    with pytest.raises(MediaError, match="us_region"):
        read_dicom(path, fps=10, crop="us_region")
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - 500])
    with pytest.raises(MediaError, match=r"cut\.dcm"):
        read_dicom(cut, fps=10)
    bad_vec = make_dicom(tmp_path / "h.dcm", cine(), NumberOfFrames=4, FrameTimeVector=[0, 1])
    with pytest.raises(MediaError, match="2 entries for 4 frames"):
        read_dicom(bad_vec)


def test_jpeg_baseline_multiframe(tmp_path: Path) -> None:
    """The common ultrasound export: JPEG Baseline, YBR_FULL_422, one JPEG per frame."""
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    rgb = np.zeros((3, 32, 48, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 150, 50
    encoded = []
    for f in rgb:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=95)
        encoded.append(buf.getvalue())
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.file_meta.MediaStorageSOPClassUID = US_MULTIFRAME
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = US_MULTIFRAME
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 32, 48, 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PlanarConfiguration = 0
    ds.NumberOfFrames = 3
    ds.FrameTime = 33.3
    ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"
    path = tmp_path / "jpeg.dcm"
    ds.save_as(path, enforce_file_format=True)
    rec = read_dicom(path, depth_mm=32.0)
    assert rec.frames.shape == (3, 32, 48)
    assert abs(float(rec.frames.mean()) - (0.299 * 100 + 0.587 * 150 + 0.114 * 50)) < 2.0
    np.testing.assert_allclose(rec.t_s, [0, 0.0333, 0.0666])
    assert rec.pixel_spacing_mm == (1.0, 1.0)
