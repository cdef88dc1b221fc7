"""Fuzzing the field-input paths: rotated and trimmed videos, skipped-chunk AVIs, dual-view
DICOM, 16-bit images and TIFF stacks, CSV preambles / units rows / decimal commas, and MATLAB
matrix orientations.

As in test_io_fuzz.py: every reader returns its normal result or raises one of the project's
own errors naming the file, within a time limit. Generated well-formed inputs must also read
back to the values they were built from.
"""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io as sio
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from field_fixtures import (
    texture,
    write_avi_with_skips,
    write_channels_by_samples_mat,
    write_dual_view_dicom,
    write_mp4,
    write_preamble_csv,
    write_tiff16_folder,
    write_tiff_stack,
)
from musclestate.errors import SignalError
from musclestate.io import read_recording
from musclestate.io.images import read_image_file
from musclestate.io.signals import read_signals
from test_io_fuzz import FUZZ, TIME_LIMIT_S, built, check_reader, time_limit


@cache
def field_files() -> dict[str, bytes]:
    """Whole files of each new kind (built once)."""
    frames = texture(12, 32, 48)
    return {
        "rot.mp4": built("rot.mp4", lambda p: write_mp4(p, frames, 25, rotation_ccw=90)),
        "trim.mp4": built("trim.mp4", lambda p: write_mp4(p, frames, 25, trim_first=4)),
        "skip.avi": built(
            "skip.avi", lambda p: write_avi_with_skips(p, frames[:6], [0, 2, 3, 5, 6, 8])
        ),
        "dual.dcm": built("dual.dcm", lambda p: write_dual_view_dicom(p, texture(3, 24, 64))),
        "t16.tif": built(
            "t16.tif",
            lambda p: (
                write_tiff16_folder(p.parent / "f", frames[:1].astype(np.uint16) * 16)
                and (p.parent / "f" / "frame_000.tif").rename(p)
            ),
        ),
        "stack.tif": built("stack.tif", lambda p: write_tiff_stack(p, frames[:5], fps=10.0)),
        "stack16.tif": built(
            "stack16.tif", lambda p: write_tiff_stack(p, frames[:4].astype(np.uint16) * 16)
        ),
        "pre.csv": built(
            "pre.csv",
            lambda p: write_preamble_csv(p, np.arange(30) / 2000, np.zeros(30), units_row=True),
        ),
        "daq.mat": built(
            "daq.mat",
            lambda p: write_channels_by_samples_mat(p, np.arange(40) / 100, np.ones((2, 40))),
        ),
    }


def _reader(name: str) -> Any:
    if name.endswith(".dcm"):
        return lambda p: read_recording(p, crop=(32, 0, 32, 24))
    if name.endswith(".tif"):
        return lambda p: read_image_file(p, fps=10.0)
    if name.endswith(".mat"):
        return lambda p: read_signals(p, mat_group="daq")
    if name.endswith(".csv"):
        return read_signals
    return read_recording


def test_the_field_fuzz_targets_are_valid_when_whole() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in field_files().items():
            path = Path(tmp) / name
            path.write_bytes(data)
            assert _reader(name)(path) is not None, name


@FUZZ
@given(frac=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_field_files(frac: float) -> None:
    for name, data in field_files().items():
        check_reader(_reader(name), name, data[: int(len(data) * frac)])


@FUZZ
@given(data=st.binary(min_size=1, max_size=600))
def test_random_bytes_behind_tiff_and_csv_headers(data: bytes) -> None:
    check_reader(lambda p: read_image_file(p, fps=10.0), "h.tif", b"II*\x00" + data)
    check_reader(read_signals, "h.csv", b"# preamble\n#\ntime;x\ns;mV\n" + data)


# ---- generated, well-formed inputs read back to their values ---------------------------------


@FUZZ
@given(
    preamble=st.integers(0, 4),
    delim=st.sampled_from([",", ";", "\t"]),
    comma=st.booleans(),
    units_row=st.booleans(),
    n=st.integers(1, 30),
    values=st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=30, max_size=30),
)
def test_csv_layouts_read_back(
    preamble: int, delim: str, comma: bool, units_row: bool, n: int, values: list[float]
) -> None:
    decimal = "," if comma and delim != "," else "."
    t = np.arange(n) / 100.0
    v = np.round(np.array(values[:n]), 4)
    lines = [f"# line {k}" for k in range(preamble)] + [delim.join(["time", "x"])]
    if units_row:
        lines.append(delim.join(["s", "mV"]))
    lines += [
        delim.join(f"{a:.4f}".replace(".", decimal) for a in row) for row in zip(t, v, strict=True)
    ]
    with tempfile.TemporaryDirectory() as tmp, time_limit(TIME_LIMIT_S):
        path = Path(tmp) / "gen.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            sig = read_signals(path)["x"]
        except SignalError as exc:
            # Only one reading of a file may fail: a single sample has no rate to check.
            assert "gen.csv" in str(exc)
            return
        np.testing.assert_allclose(sig.values, v, atol=1e-9)
        np.testing.assert_allclose(sig.t_s, t, atol=1e-9)
        assert sig.unit == ("mV" if units_row else "")


@FUZZ
@given(
    k=st.integers(1, 4),
    n=st.integers(2, 40),
    transpose=st.booleans(),
    t_len=st.integers(2, 40),
)
def test_mat_matrix_orientations(k: int, n: int, transpose: bool, t_len: int) -> None:
    rng = np.random.default_rng(k * 100 + n)
    m = rng.normal(size=(k, n))  # k channels x n samples
    stored = m.T if transpose else m
    if k == 1:  # MATLAB's singleton dimension goes: a plain vector
        expected = {"emg": m[0]} if n == t_len else {}
    elif stored.shape == (t_len, t_len):
        expected = None  # square: refused
    elif stored.shape[0] == t_len:
        expected = {f"emg_{j}": stored[:, j] for j in range(stored.shape[1])}
    elif stored.shape[1] == t_len:
        expected = {f"emg_{j}": stored[j] for j in range(stored.shape[0])}
    else:
        expected = {}
    with tempfile.TemporaryDirectory() as tmp, time_limit(TIME_LIMIT_S):
        path = Path(tmp) / "orient.mat"
        sio.savemat(path, {"g": {"time": np.arange(t_len) / 100.0, "emg": stored}})
        try:
            sig = read_signals(path, mat_group="g")
        except SignalError as exc:
            assert "orient.mat" in str(exc)
            assert expected is None or expected == {}  # square, or no channel at all
            return
    assert expected is not None and set(sig) == set(expected)
    for name, values in expected.items():
        np.testing.assert_allclose(sig[name].values, values)


@FUZZ
@given(
    pages=st.integers(1, 4),
    top=st.integers(0, 65535),
    seed=st.integers(0, 1000),
)
def test_16_bit_stacks_scale_by_the_data(pages: int, top: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, top + 1, (pages, 6, 7)).astype(np.uint16)
    frames[0, 0, 0] = top
    with tempfile.TemporaryDirectory() as tmp, time_limit(TIME_LIMIT_S):
        path = Path(tmp) / "s.tif"
        if pages == 1:
            Image.fromarray(frames[0]).save(path)
        else:
            write_tiff_stack(path, frames)
        rec = read_image_file(path, fps=5.0)
    bits = max(8, top.bit_length())
    bits += bits % 2
    assert rec.n_frames == pages and rec.meta.extra["bit_depth"] == bits
    expected = np.clip(np.rint(frames * (255.0 / (2**bits - 1))), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(rec.frames, expected)
    if top >= 256:
        assert rec.frames.max() >= 63  # never nearly black


@FUZZ
@given(
    quarter=st.integers(-1, 2),
    hflip=st.booleans(),
    trim=st.integers(0, 5),
    crop_seed=st.integers(0, 1000),
)
def test_rotated_and_trimmed_videos_read_as_shown(
    quarter: int, hflip: bool, trim: int, crop_seed: int
) -> None:
    stored = texture(8, 16, 24, seed=crop_seed)
    shown = np.rot90(stored, quarter, axes=(1, 2))
    if hflip:
        shown = shown[:, :, ::-1]
    shown = shown[trim:]
    rng = np.random.default_rng(crop_seed)
    h, w = shown.shape[1:]
    x, y = int(rng.integers(0, w - 1)), int(rng.integers(0, h - 1))
    crop = (x, y, int(rng.integers(1, w - x + 1)), int(rng.integers(1, h - y + 1)))
    with tempfile.TemporaryDirectory() as tmp, time_limit(TIME_LIMIT_S):
        path = write_mp4(
            Path(tmp) / "v.mp4", stored, 25, rotation_ccw=90 * quarter, hflip=hflip, trim_first=trim
        )
        rec = read_recording(path, crop=crop)
    cx, cy, cw, ch = crop
    np.testing.assert_array_equal(rec.frames, shown[:, cy : cy + ch, cx : cx + cw])
    np.testing.assert_allclose(rec.t_s, np.arange(8 - trim) / 25, atol=1e-9)
