"""The files real labs produce, one test group per kind, on fixtures built here.

Kinds: (1) container frame counts that are not the truth (edit-list trims, skipped-frame AVI
chunks), (2) display rotation, (3) dual-view DICOM regions of different spacing, (4) bit depth
from the data (16-bit TIFF holding 12-bit data, 8-bit palette entries in 16-bit words),
(5) multi-page TIFF stacks, (6) decimal commas, (7) CSV preambles and units rows, (8) MATLAB
channels x samples matrices. Each is checked through the readers, ``probe``, the predict
source and (where it draws frames) ``roi show``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from field_fixtures import (
    make_dicom,
    texture,
    write_avi_with_skips,
    write_channels_by_samples_mat,
    write_decimal_comma_csv,
    write_dual_view_dicom,
    write_mp4,
    write_palette_dicom,
    write_preamble_csv,
    write_tiff16_folder,
    write_tiff_stack,
)
from musclestate.cli import app
from musclestate.errors import MediaError, SignalError
from musclestate.inference.sources import open_source
from musclestate.io import probe, read_recording
from musclestate.io.dicom import RegionChoiceError
from musclestate.io.images import read_image, read_image_file, read_image_folder
from musclestate.io.signals import read_signal_file, read_signals
from musclestate.io.video import read_video


def source_frames(path: Path, **kw) -> tuple[np.ndarray, np.ndarray]:
    with open_source(path, **kw) as src:
        got = list(src)
    return np.stack([g.image for g in got]), np.array([g.t_s for g in got])


# ---- (1) the container's frame count is information, not the truth --------------------------


def test_edit_list_trimmed_mp4_gives_the_shown_frames(tmp_path: Path) -> None:
    stored = texture(30, 48, 64)
    path = write_mp4(tmp_path / "trim.mp4", stored, 25, trim_first=10)
    rec = read_video(path)
    np.testing.assert_array_equal(rec.frames, stored[10:])  # lossless: the 20 shown frames
    np.testing.assert_allclose(rec.t_s, np.arange(20) / 25, atol=1e-9)
    video = rec.meta.extra["video"]
    assert (
        video["container_frames"] == 30
        and "30 frames, 20 were decoded (an edit list" in (video["frame_count_note"])
    )
    info = probe(path)
    assert info["frames"] == 20 and info["corrections"]["container_frames"] == 30
    frames, t_s = source_frames(path)
    np.testing.assert_array_equal(frames, rec.frames)
    assert t_s.tobytes() == rec.t_s.tobytes()


def test_avi_with_skipped_frame_chunks_keeps_its_time_line(tmp_path: Path) -> None:
    pts = [0, 1, 2, 3, 5, 6, 7, 9, 10, 11]
    frames = texture(len(pts), 48, 64, seed=3)
    path = write_avi_with_skips(tmp_path / "skips.avi", frames, pts, 25)
    rec = read_recording(path)
    assert rec.n_frames == 10
    np.testing.assert_allclose(rec.t_s, np.array(pts) / 25, atol=1e-9)  # the gaps stay gaps
    assert rec.meta.extra["video"]["container_frames"] == 12
    # Lossy MPEG-4: each decoded frame is nearest to its own source frame.
    err = np.abs(rec.frames[:, None].astype(int) - frames[None].astype(int)).mean(axis=(2, 3))
    assert (err.argmin(axis=1) == np.arange(10)).all()
    assert probe(path)["corrections"]["container_frames"] == 12


# ---- (2) display rotation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ccw", "hflip", "clockwise"), [(-90, False, 90), (90, False, 270), (180, False, 180)]
)
def test_display_rotation_applied_as_players_show_it(
    tmp_path: Path, ccw: int, hflip: bool, clockwise: int
) -> None:
    stored = texture(5, 48, 64)
    path = write_mp4(tmp_path / "phone.mp4", stored, 30, rotation_ccw=ccw, hflip=hflip)
    shown = np.rot90(stored, ccw // 90, axes=(1, 2))
    rec = read_video(path)
    np.testing.assert_array_equal(rec.frames, shown)
    assert rec.meta.extra["video"]["rotation_deg"] == clockwise
    # Crops are given in the shown frame.
    h, w = shown.shape[1:]
    crop = (2, 4, w - 6, h // 2)
    np.testing.assert_array_equal(
        read_video(path, crop=crop).frames, shown[:, 4 : 4 + h // 2, 2:-4]
    )
    info = probe(path, crop=crop)
    assert (
        info["frame_shape"] == [h // 2, w - 6] and info["corrections"]["rotation_deg"] == clockwise
    )
    frames, _ = source_frames(path, crop=crop)
    np.testing.assert_array_equal(frames, shown[:, 4 : 4 + h // 2, 2:-4])


def test_mirrored_display_matrix_is_applied(tmp_path: Path) -> None:
    stored = texture(3, 48, 64)
    path = write_mp4(tmp_path / "selfie.mp4", stored, 30, hflip=True)
    rec = read_video(path)
    np.testing.assert_array_equal(rec.frames, stored[:, :, ::-1])
    assert rec.meta.extra["video"]["mirrored"] is True


# ---- (3) several calibrated regions ----------------------------------------------------------


def test_dual_view_dicom_asks_for_a_region(tmp_path: Path) -> None:
    frames = texture(4, 40, 64)
    path = write_dual_view_dicom(tmp_path / "dual.dcm", frames)
    with pytest.raises(RegionChoiceError, match=r"dual\.dcm.*0\.3 x 0\.3 mm/px.*0\.15 x 0\.15"):
        read_recording(path)
    left = read_recording(path, crop=(0, 2, 30, 38))
    assert left.pixel_spacing_mm == pytest.approx((0.3, 0.3))
    right = read_recording(path, crop=(32, 0, 32, 40))
    assert right.pixel_spacing_mm == pytest.approx((0.15, 0.15))
    np.testing.assert_array_equal(right.frames, frames[:, :, 32:])
    with pytest.raises(RegionChoiceError, match="does not lie inside one calibrated region"):
        read_recording(path, crop=(20, 0, 20, 40))
    whole = read_recording(path, pixel_spacing_mm=0.2)  # the user's spacing is a choice too
    assert whole.pixel_spacing_mm == (0.2, 0.2)
    info = probe(path)
    assert info["pixel_spacing_mm"] is None and "Give a crop" in info["problem"]
    spacings = [r["spacing_mm"] for r in info["corrections"]["us_regions"]]
    assert spacings == [pytest.approx([0.3, 0.3]), pytest.approx([0.15, 0.15])]
    assert probe(path, crop=(32, 0, 32, 40))["corrections"]["us_region_used"] == [32, 0, 63, 39]
    with pytest.raises(RegionChoiceError):
        open_source(path)  # predict refuses it the same way


# ---- (4) bit depth from the data -------------------------------------------------------------


def test_tiff16_holding_12_bit_data_is_scaled_by_12_bits(tmp_path: Path) -> None:
    frames12 = texture(4, 32, 48).astype(np.uint16) * 16  # 0..4080: 12-bit data
    folder = write_tiff16_folder(tmp_path / "frames", frames12)
    expected = np.rint(frames12 * (255 / 4095)).astype(np.uint8)
    rec = read_image_folder(folder, 10.0)
    np.testing.assert_array_equal(rec.frames, expected)
    assert rec.meta.extra["bit_depth"] == 12
    assert probe(folder, fps=10.0)["corrections"]["bit_depth"] == 12
    # One file, through the single-image reader (roi show), gives the same frame.
    np.testing.assert_array_equal(read_image(folder / "frame_002.tif"), expected[2])
    np.testing.assert_array_equal(read_recording(folder / "frame_002.tif").frames[0], expected[2])
    frames, _ = source_frames(folder, fps=10.0)
    np.testing.assert_array_equal(frames, expected)


def test_full_range_16_bit_is_still_16_bit(tmp_path: Path) -> None:
    a = np.array([[0, 65535], [257 * 100, 257 * 200]], dtype=np.uint16)
    write_tiff16_folder(tmp_path / "f", a[None])
    np.testing.assert_array_equal(
        read_image(tmp_path / "f" / "frame_000.tif"), [[0, 255], [100, 200]]
    )


def test_dicom_palette_with_8_bit_entries_in_16_bit_words(tmp_path: Path) -> None:
    idx = texture(3, 24, 32)
    path, expected = write_palette_dicom(tmp_path / "pal.dcm", idx)
    rec = read_recording(path)
    np.testing.assert_array_equal(rec.frames, expected)  # not scaled by 65535: not black
    assert rec.meta.extra["bit_depth"] == 8
    assert rec.meta.extra["bit_depth_source"] == "data:palette"


@pytest.mark.parametrize(("bits_stored", "expected_bits"), [(16, 12), (12, 12), (14, 14)])
def test_dicom_16_bit_words_use_bits_stored_or_the_data(
    tmp_path: Path, bits_stored: int, expected_bits: int
) -> None:
    """Bits Stored below Bits Allocated is the file's word; 16 of 16 is only the storage."""
    px = texture(2, 16, 24).astype(np.uint16) * 16  # 0..4080: 12-bit data
    path = make_dicom(tmp_path / "g.dcm", px, "MONOCHROME2", 16, NumberOfFrames=2, FrameTime=40.0)
    ds = pydicom.dcmread(path)
    ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    ds.save_as(path)
    rec = read_recording(path)
    assert rec.meta.extra["bit_depth"] == expected_bits
    scale = 255 / (2**expected_bits - 1)
    np.testing.assert_array_equal(rec.frames, np.rint(px * scale).astype(np.uint8))


# ---- (5) multi-page TIFF ---------------------------------------------------------------------


def test_tiff_stack_is_a_recording_and_needs_a_rate(tmp_path: Path) -> None:
    frames = texture(8, 32, 48)
    path = write_tiff_stack(tmp_path / "cine.tif", frames)
    with pytest.raises(MediaError, match=r"cine\.tif: is a stack of 8 pages.*--fps") as first:
        read_recording(path)
    rec = read_recording(path, fps=20.0)
    np.testing.assert_array_equal(rec.frames, frames)  # all 8 pages, never page 1 alone
    np.testing.assert_allclose(rec.t_s, np.arange(8) / 20.0)
    with pytest.raises(MediaError) as by_probe:
        probe(path)
    with pytest.raises(MediaError) as by_source:
        open_source(path)
    assert str(by_probe.value) == str(by_source.value) == str(first.value)
    got, t_s = source_frames(path, fps=20.0)
    np.testing.assert_array_equal(got, frames)
    assert t_s.tobytes() == rec.t_s.tobytes()
    with pytest.raises(MediaError, match="8 pages"):
        read_image(path)


def test_tiff_stack_rate_from_imagej_and_16_bit_pages(tmp_path: Path) -> None:
    frames12 = texture(5, 16, 24).astype(np.uint16) * 16
    path = write_tiff_stack(tmp_path / "ij.tif", frames12, fps=12.5)
    rec = read_image_file(path)
    np.testing.assert_allclose(rec.t_s, np.arange(5) / 12.5)
    assert rec.meta.extra["time_source"] == "tiff:ImageJ" and rec.meta.extra["bit_depth"] == 12
    np.testing.assert_array_equal(rec.frames, np.rint(frames12 * (255 / 4095)).astype(np.uint8))


def test_folder_holding_a_stack_points_at_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    write_tiff_stack(folder / "cine.tif", texture(3, 16, 16))
    with pytest.raises(MediaError, match=r"holds 3 pages.*give the file itself"):
        read_image_folder(folder, 10.0)


def test_roi_show_refuses_a_stack_without_rate_like_the_others(tmp_path: Path) -> None:
    path = write_tiff_stack(tmp_path / "cine.tif", texture(4, 64, 64))
    res = CliRunner().invoke(app, ["roi", "show", str(path), "--out", str(tmp_path / "o.png")])
    assert res.exit_code != 0 and isinstance(res.exception, MediaError)
    assert "stack of 4 pages" in str(res.exception)
    res = CliRunner().invoke(app, ["probe", str(path), "--fps", "20", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["frames"] == 4


def test_unknown_kind_is_refused_the_same_way_everywhere(tmp_path: Path) -> None:
    odd = tmp_path / "clip.xyz"
    odd.write_bytes(b"\x00" * 10)
    messages = set()
    for call in (lambda: probe(odd), lambda: read_recording(odd), lambda: open_source(odd)):
        with pytest.raises(MediaError, match=r"clip\.xyz: unknown media type") as ei:
            call()
        messages.add(str(ei.value))
    assert len(messages) == 1


# ---- (6) decimal commas ----------------------------------------------------------------------


def test_decimal_comma_with_semicolons(tmp_path: Path) -> None:
    t = np.arange(50) / 100.0
    ang = 10 * np.sin(t)
    path = write_decimal_comma_csv(tmp_path / "dyn.csv", t, ang)
    got = read_signal_file(path)
    np.testing.assert_allclose(got.signals["angle"].values, ang, atol=1e-4)
    np.testing.assert_allclose(got.signals["angle"].t_s, t, atol=1e-9)
    assert got.notes["decimal"] == "," and got.notes["delimiter"] == ";"
    assert probe(path)["notes"]["decimal"] == ","


def test_decimal_comma_with_comma_separators_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("time,angle\n0,0,1,5\n0,1,2,5\n", encoding="utf-8")
    with pytest.raises(SignalError, match=r"bad\.csv: line 2 .*decimal commas.*';'"):
        read_signals(path)


# ---- (7) preambles and units rows ------------------------------------------------------------


def test_preamble_lines_are_skipped(tmp_path: Path) -> None:
    t = np.arange(40) / 2000.0
    emg = np.sin(300 * t)
    got = read_signal_file(write_preamble_csv(tmp_path / "emg.csv", t, emg, units_row=False))
    np.testing.assert_allclose(got.signals["emg_mg"].values, emg, atol=1e-6)
    assert got.notes["preamble_lines"] == 3 and got.notes["header_line"] == 4


def test_units_row_gives_units_and_time_scale(tmp_path: Path) -> None:
    t = np.arange(40) / 2000.0
    emg = np.sin(300 * t)
    path = write_preamble_csv(tmp_path / "emg.csv", t, emg, units_row=True)
    got = read_signal_file(path)
    assert got.signals["emg_mg"].unit == "mV" and got.notes["units_row_line"] == 5
    np.testing.assert_allclose(got.signals["emg_mg"].t_s, t, atol=1e-9)  # ms -> s


def test_errors_point_at_the_real_line(tmp_path: Path) -> None:
    t = np.arange(10) / 2000.0
    path = write_preamble_csv(tmp_path / "emg.csv", t, np.zeros(10), units_row=True)
    lines = path.read_text().splitlines()
    lines[8] = "0.5,abc"  # line 9 of the file
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SignalError, match=r"line 9, column 2: 'abc' is not a number"):
        read_signals(path)
    no_hash = tmp_path / "raw.csv"
    no_hash.write_text("Device: amp\nRate: 2000\ntime,emg\n0,1\n", encoding="utf-8")
    with pytest.raises(SignalError, match=r"line 2, .*taken from line 1.*start them with #"):
        read_signals(no_hash)


# ---- (8) MATLAB channels x samples -----------------------------------------------------------


def test_mat_channels_by_samples_matrix(tmp_path: Path) -> None:
    t = np.arange(300) / 1000.0
    emg = np.vstack([np.sin(50 * t), np.cos(50 * t)])  # 2 x 300: channels x samples
    path = write_channels_by_samples_mat(tmp_path / "daq.mat", t, emg)
    got = read_signal_file(path, mat_group="daq")
    np.testing.assert_allclose(got.signals["emg_0"].values, emg[0])
    np.testing.assert_allclose(got.signals["emg_1"].values, emg[1])
    assert "2 channels x 300 samples" in got.notes["matrices"]["emg"]
    # samples x channels reads the same way
    path2 = write_channels_by_samples_mat(tmp_path / "daq2.mat", t, emg.T.copy())
    np.testing.assert_allclose(read_signals(path2, mat_group="daq")["emg_1"].values, emg[1])


def test_mat_matrices_that_fit_no_axis_are_named(tmp_path: Path) -> None:
    import scipy.io as sio

    t = np.arange(50) / 100.0
    sio.savemat(tmp_path / "m.mat", {"g": {"time": t, "calib": np.ones((3, 4)), "x": t * 2}})
    got = read_signal_file(tmp_path / "m.mat", mat_group="g")
    assert list(got.signals) == ["x"] and "calib" in got.notes["not_channels"]
    with pytest.raises(SignalError, match=r"unknown channel.*calib \(3 x 4\) is not on the"):
        read_signals(tmp_path / "m.mat", mat_group="g", channels=["calib_0"])
    sio.savemat(tmp_path / "sq.mat", {"g": {"time": t[:3], "emg": np.eye(3)}})
    with pytest.raises(SignalError, match="square 3 x 3 matrix"):
        read_signals(tmp_path / "sq.mat", mat_group="g")


def test_predict_plans_a_folder_of_stacks_as_one_input_each(tmp_path: Path) -> None:
    from musclestate.inference.batch import plan_inputs

    (tmp_path / "in").mkdir()
    for name in ("a.tif", "b.tif"):
        write_tiff_stack(tmp_path / "in" / name, texture(3, 16, 16))
    jobs = plan_inputs(tmp_path / "in", tmp_path / "out")
    assert [j.name for j in jobs] == ["a", "b"]
    single = tmp_path / "frames"
    write_tiff16_folder(single, texture(2, 16, 16).astype(np.uint16))
    assert len(plan_inputs(single, tmp_path / "o.csv")) == 1  # a folder of frames is one input
