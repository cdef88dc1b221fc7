"""Fuzzing the readers: random bytes and truncated real files.

Every reader must either return its normal result or raise one of the project's own errors
(:class:`MusclestateError`) naming the file: never another exception type, never a crash or a
hang. Examples are few and derandomised so the suite stays fast and reproducible; a SIGALRM
guard turns a hang inside Python-visible code into a failure instead of a stuck run.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musclestate.errors import MusclestateError
from musclestate.io.dicom import read_dicom
from musclestate.io.images import read_image, read_image_folder
from musclestate.io.signals import read_signals
from musclestate.io.video import read_video, write_video

FUZZ = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TIME_LIMIT_S = 30


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def _raise(signum: int, frame: Any) -> None:
        raise TimeoutError(f"reader still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check_reader(reader: Callable[[Path], Any], name: str, data: bytes) -> None:
    """Write ``data`` to a file called ``name`` and read it: success or a project error only."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        with time_limit(TIME_LIMIT_S):
            try:
                reader(path)
            except MusclestateError as exc:
                assert name in str(exc), f"error does not name the file: {exc}"


# ---- real and realistic files to truncate (built once per session) -------------------------


def built(name: str, write: Callable[[Path], Any]) -> bytes:
    """Bytes of a file that ``write(path)`` creates in a temporary folder (then removed)."""
    with tempfile.TemporaryDirectory(prefix="musclestate-fuzz-") as tmp:
        path = Path(tmp) / name
        write(path)
        return path.read_bytes()


@cache
def small_mp4() -> bytes:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 32, 48), dtype=np.uint8)
    return built("small.mp4", lambda p: write_video(p, frames, 25.0))


@cache
def small_dicom() -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    rng = np.random.default_rng(0)
    ds.set_pixel_data(rng.integers(0, 256, (3, 16, 16), dtype=np.uint8), "MONOCHROME2", 8)
    ds.FrameTime = 40.0
    ds.PixelSpacing = [0.1, 0.1]
    return built("small.dcm", lambda p: ds.save_as(p, enforce_file_format=True))


@cache
def small_mat73() -> bytes:
    def write(path: Path) -> None:
        with h5py.File(path, "w", userblock_size=512) as fh:
            g = fh.create_group("g")
            g["t"] = (np.arange(30) / 100.0)[None]
            g["x"] = np.sin(np.arange(30))[None]

    return built("v73.mat", write)


@cache
def small_c3d() -> bytes:
    import ezc3d

    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [100]
    c["parameters"]["POINT"]["LABELS"]["value"] = ("m1",)
    c["data"]["points"] = np.ones((4, 1, 5))
    c["parameters"]["ANALOG"]["RATE"]["value"] = [1000]
    c["parameters"]["ANALOG"]["LABELS"]["value"] = ("emg",)
    c["data"]["analogs"] = np.random.default_rng(0).normal(size=(1, 1, 50))
    return built("small.c3d", lambda p: c.write(str(p)))


@cache
def small_csv() -> bytes:
    t = np.arange(40) / 100.0
    rows = "\n".join(f"{a:.3f},{b:.5f}" for a, b in zip(t, np.sin(t), strict=True))
    return f"time [s],angle [deg]\n{rows}\n".encode()


def real_file(shared: Path, rel: str) -> bytes:
    return (shared / rel).read_bytes()


def drazan_mat_head(shared: Path) -> bytes:
    # The first 64 kB of push_data.mat: enough for the header and the start of the struct.
    return (shared / "drazan2019-mg" / "push_data.mat").read_bytes()[: 64 * 1024]


def image_reader(path: Path) -> Any:
    return read_image(path)


def folder_reader(path: Path) -> Any:
    return read_image_folder(path.parent, fps=10.0)


def mat_reader(path: Path) -> Any:
    return read_signals(path, mat_group="clips.p6_isokinetic030_01.push_01")


# ---- random bytes --------------------------------------------------------------------------

READERS: list[tuple[str, Callable[[Path], Any]]] = [
    ("x.mp4", read_video),
    ("x.avi", read_video),
    ("x.csv", read_signals),
    ("x.mat", read_signals),
    ("x.c3d", read_signals),
    ("x.dcm", read_dicom),
    ("x.png", image_reader),
    ("x.jpg", folder_reader),
    ("x.tif", image_reader),
]


@pytest.mark.parametrize(("name", "reader"), READERS, ids=[n for n, _ in READERS])
@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes(name: str, reader: Callable[[Path], Any], data: bytes) -> None:
    check_reader(reader, name, data)


@FUZZ
@given(data=st.binary(min_size=1, max_size=600))
def test_random_bytes_behind_valid_headers(data: bytes) -> None:
    """Garbage after a plausible magic number gets past the cheapest checks."""
    check_reader(read_signals, "h.mat", b"MATLAB 5.0 MAT-file".ljust(124) + b"\x00\x01IM" + data)
    check_reader(read_dicom, "h.dcm", bytes(128) + b"DICM" + data)
    check_reader(image_reader, "h.png", b"\x89PNG\r\n\x1a\n" + data)
    check_reader(read_signals, "h.c3d", b"\x02\x50" + data)
    check_reader(read_signals, "h.csv", b"time,x\n" + data)


# ---- truncated files -----------------------------------------------------------------------


@FUZZ
@given(frac=st.floats(0.0, 1.0, exclude_max=True))
@pytest.mark.slow
def test_truncated_generated_files(frac: float) -> None:
    for name, reader, data in [
        ("t.mp4", read_video, small_mp4()),
        ("t.dcm", read_dicom, small_dicom()),
        ("t.mat", lambda p: read_signals(p, mat_group="g"), small_mat73()),
        ("t.c3d", read_signals, small_c3d()),
        ("t.csv", read_signals, small_csv()),
    ]:
        check_reader(reader, name, data[: int(len(data) * frac)])


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frac=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_real_files(shared_data: Path, frac: float) -> None:
    clip = real_file(shared_data, "drazan2019-mg/clips/p6_isokinetic500_01_push_01.mp4")
    check_reader(read_video, "clip.mp4", clip[: int(len(clip) * frac)])
    mat = drazan_mat_head(shared_data)
    check_reader(mat_reader, "push_data.mat", mat[: int(len(mat) * frac)])
    image = sorted((shared_data / "dltrack-aponeurosis" / "images").glob("*.png"))[0]
    png = image.read_bytes()
    check_reader(image_reader, "img.png", png[: int(len(png) * frac)])


def test_truncated_real_mat_is_an_error(shared_data: Path) -> None:
    """Not a fuzz case but the property it checks, made explicit for the Drazan file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "push_data.mat"
        path.write_bytes(drazan_mat_head(shared_data))
        with pytest.raises(MusclestateError, match=r"push_data\.mat"):
            mat_reader(path)


def test_the_fuzz_targets_are_valid_when_whole() -> None:
    """Whole, the generated files read correctly: truncation is what breaks them."""
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, data in [
            ("a.mp4", small_mp4()),
            ("a.dcm", small_dicom()),
            ("a.mat", small_mat73()),
            ("a.c3d", small_c3d()),
            ("a.csv", small_csv()),
        ]:
            files[name] = Path(tmp) / name
            files[name].write_bytes(data)
        assert read_video(files["a.mp4"]).frames.shape == (6, 32, 48)
        assert read_dicom(files["a.dcm"]).frames.shape == (3, 16, 16)
        assert len(read_signals(files["a.mat"], mat_group="g")["x"]) == 30
        assert len(read_signals(files["a.c3d"])["emg"]) == 50
        assert read_signals(files["a.csv"])["angle"].unit == "deg"
