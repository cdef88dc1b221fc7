"""Video reading and writing: round trips, time stamps, crop/flip, repeated frames, bad input."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import scipy.io as sio
from scipy import ndimage

from musclestate.errors import ConfigError, InputError, MediaError
from musclestate.io import read_recording
from musclestate.io.video import (
    find_repeated_frames,
    iter_video,
    mean_abs_differences,
    probe_video,
    read_video,
    write_video,
)
from musclestate.records import RecordingMeta

DRAZAN_CLIP = "p6_isokinetic030_01_push_01.mp4"


def moving_texture(n: int, h: int = 48, w: int = 64, step: int = 2, seed: int = 0) -> np.ndarray:
    """Smooth speckle-like texture sliding sideways by ``step`` px per frame: (n, h, w) uint8."""
    rng = np.random.default_rng(seed)
    big = ndimage.gaussian_filter(rng.normal(size=(h, w + step * n)), 1.2)
    big = (big - big.min()) / np.ptp(big) * 200 + 20
    return np.stack([big[:, k * step : k * step + w] for k in range(n)]).astype(np.uint8)


@pytest.fixture()
def clip(tmp_path: Path) -> tuple[Path, np.ndarray]:
    frames = moving_texture(12)
    return write_video(tmp_path / "clip.mp4", frames, 25.0), frames


def test_round_trip_frames_times_and_default_meta(clip: tuple[Path, np.ndarray]) -> None:
    path, frames = clip
    rec = read_video(path)
    assert rec.frames.shape == frames.shape and rec.frames.dtype == np.uint8
    err = np.abs(rec.frames.astype(int) - frames.astype(int)).mean()
    assert err < 2.0, err
    np.testing.assert_allclose(rec.t_s, np.arange(12) / 25.0, atol=1e-4)
    assert rec.meta.participant == "unknown" and rec.meta.trial == "clip"
    assert rec.meta.source == str(path)
    assert rec.meta.extra["repeated_frames"] == 0 and rec.meta.extra["dropped_frames"] == 0
    assert rec.pixel_spacing_mm is None


def test_lossless_write_is_exact(tmp_path: Path) -> None:
    frames = moving_texture(5)
    rec = read_video(write_video(tmp_path / "l.mp4", frames, 10.0, crf=0))
    np.testing.assert_array_equal(rec.frames, frames)


def test_write_is_atomic_and_leaves_no_temp(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="even frame size"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 7, 8), np.uint8), 10.0)
    with pytest.raises(InputError, match="suffix"):
        write_video(tmp_path / "x.gif", np.zeros((2, 8, 8), np.uint8), 10.0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("suffix", "fmt", "codec", "pix_fmt", "max_err"),
    [
        (".avi", "avi", "mpeg4", "yuv420p", 4.0),
        (".mov", "mov", "libx264", "yuv420p", 4.0),
        (".wmv", "asf", "wmv2", "yuv420p", 4.0),
        (".mkv", "matroska", "ffv1", "gray", 0.0),
        (".avi", "avi", "rawvideo", "bgr24", 0.0),
    ],
)
def test_containers_and_codecs(
    tmp_path: Path, suffix: str, fmt: str, codec: str, pix_fmt: str, max_err: float
) -> None:
    frames = moving_texture(6)
    path = tmp_path / f"clip{suffix}"
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=20)
        s.width, s.height, s.pix_fmt = 64, 48, pix_fmt
        for f in frames:
            if pix_fmt == "yuv420p":  # grey into the luma plane, neutral chroma
                chroma = np.full((24, 64), 128, np.uint8)
                vf = av.VideoFrame.from_ndarray(np.vstack([f, chroma]), format="yuv420p")
            else:
                vf = av.VideoFrame.from_ndarray(f, format="gray").reformat(format=pix_fmt)
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
    rec = read_video(path)
    assert rec.frames.shape == frames.shape
    np.testing.assert_allclose(rec.t_s, np.arange(6) / 20.0, atol=1e-3)
    err = np.abs(rec.frames.astype(int) - frames.astype(int)).mean()
    assert err <= max_err, err


def test_frame_times_come_from_time_stamps_not_rate(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.uniform(0.01, 0.08, 10))
    path = write_video(tmp_path / "vfr.mp4", moving_texture(10), 25.0, t_s=t)
    rec = read_video(path)
    np.testing.assert_allclose(rec.t_s, t - t[0], atol=2e-5)
    stamps = [ts for ts, _ in iter_video(path)]
    np.testing.assert_allclose(np.diff(stamps), np.diff(t), atol=2e-5)


def test_fps_override_and_depth(clip: tuple[Path, np.ndarray]) -> None:
    path, _ = clip
    rec = read_video(path, fps=10.0, crop=(0, 8, 64, 40), depth_mm=20.0)
    np.testing.assert_allclose(rec.t_s, np.arange(12) / 10.0)
    assert rec.meta.extra["time_source"] == "user:fps"
    assert rec.pixel_spacing_mm == (0.5, 0.5) and rec.meta.spacing_source == "user:depth_mm"
    assert read_video(path).meta.extra["time_source"] == "container:pts"
    with pytest.raises(MediaError, match="positive frame rate"):
        read_video(path, fps=-1)
    with pytest.raises(MediaError, match="not both"):
        read_video(path, depth_mm=20.0, pixel_spacing_mm=0.1)


def test_crop_flip_spacing_and_given_meta(clip: tuple[Path, np.ndarray]) -> None:
    path, _ = clip
    meta = RecordingMeta(participant="P01", trial="t1", source="lab")
    rec = read_video(
        path, crop=(10, 4, 30, 20), flip_horizontal=True, pixel_spacing_mm=0.1, meta=meta
    )
    assert rec.frames.shape == (12, 20, 30)
    full = read_video(path).frames
    np.testing.assert_array_equal(rec.frames, full[:, 4:24, 10:40][:, :, ::-1])
    assert rec.pixel_spacing_mm == (0.1, 0.1)
    assert rec.meta.participant == "P01" and rec.meta.source == "lab"
    assert rec.meta.spacing_source == "user:mm_per_pixel"
    assert rec.meta.extra["crop"] == [10, 4, 30, 20] and rec.meta.extra["flip_horizontal"]


@pytest.mark.parametrize(
    "crop", [(0, 0, 65, 10), (-1, 0, 10, 10), (60, 0, 10, 10), (0, 40, 10, 10), (0, 0, 0, 5)]
)
def test_crop_outside_frame_names_file_crop_and_size(
    clip: tuple[Path, np.ndarray], crop: tuple[int, int, int, int]
) -> None:
    path, _ = clip
    with pytest.raises(MediaError) as ei:
        read_video(path, crop=crop)
    msg = str(ei.value)
    assert "clip.mp4" in msg and "64x48" in msg and f"x={crop[0]}" in msg


def test_repeated_frames_detected_counted_and_dropped(tmp_path: Path) -> None:
    # A 61 fps capture of a ~20 fps scanner: every scanner frame appears three times.
    scanner = moving_texture(8, step=3)
    capture = np.repeat(scanner, 3, axis=0)
    path = write_video(tmp_path / "cap.mp4", capture, 61.0)
    rec = read_video(path)
    expected = [i for i in range(24) if i % 3]
    assert rec.meta.extra["repeated_frames"] == 16
    assert rec.meta.extra["repeated_frame_indices"] == expected
    assert rec.n_frames == 24
    dropped = read_video(path, drop_repeated=True)
    assert dropped.n_frames == 8 and dropped.meta.extra["dropped_frame_indices"] == expected
    np.testing.assert_allclose(dropped.t_s, np.arange(8) * 3 / 61.0, atol=1e-4)


def test_find_repeated_frames_rule() -> None:
    frames = moving_texture(10)
    assert not find_repeated_frames(frames).any()  # smooth motion: every frame is new
    still = np.repeat(frames[:1], 5, axis=0)
    assert find_repeated_frames(still).tolist() == [False, True, True, True, True]
    # Slow then fast motion: slow frames are judged against their own neighbours, not the clip.
    slow = moving_texture(20, step=1)[:10]
    fast = moving_texture(10, step=8, seed=3)
    assert not find_repeated_frames(np.concatenate([slow, fast])).any()
    # Tissue at rest (sensor noise only), then moving: the onset is not a run of repeats.
    rng = np.random.default_rng(2)
    rest = np.repeat(frames[:1], 6, axis=0).astype(np.int16)
    rest += rng.integers(-2, 3, rest.shape, dtype=np.int16)
    onset = np.concatenate([np.clip(rest, 0, 255).astype(np.uint8), moving_texture(8, step=6)])
    assert not find_repeated_frames(onset)[2:].any()
    noisy = np.repeat(frames, 2, axis=0).astype(np.int16)
    noisy[1::2] += np.random.default_rng(0).integers(-1, 2, noisy[1::2].shape, dtype=np.int16)
    rep = find_repeated_frames(np.clip(noisy, 0, 255).astype(np.uint8))
    assert rep.tolist() == [bool(i % 2) for i in range(20)]
    with pytest.raises(InputError):
        find_repeated_frames(frames[0])
    assert mean_abs_differences(still).tolist() == [0.0] * 4


def test_missing_folder_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"nope\.mp4.*not found"):
        read_video(tmp_path / "nope.mp4")
    with pytest.raises(MediaError, match="folder"):
        read_video(tmp_path)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(MediaError, match=r"bad\.mp4"):
        read_video(bad)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.avi"):
        read_video(empty)


def test_zero_frames(tmp_path: Path) -> None:
    path = tmp_path / "zero.avi"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        c.start_encoding()
    with pytest.raises(MediaError, match=r"zero.avi.*zero decodable"):
        read_video(path)


def test_truncated_video_is_an_error_not_a_short_recording(tmp_path: Path) -> None:
    frames = moving_texture(30)
    path = tmp_path / "fs.mp4"
    # moov at the front (faststart): the container opens and lists 30 frames, mdat is cut short.
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="gray").reformat(format="yuv420p")))
        c.mux(s.encode(None))
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(MediaError, match=r"cut.mp4.*(truncated|corrupt)"):
        read_video(cut)


def test_read_recording_dispatch(clip: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, frames = clip
    assert read_recording(path).n_frames == frames.shape[0]
    with pytest.raises(ConfigError, match=r"t0_s do not apply to read_video; it accepts crop"):
        read_recording(path, t0_s=1.0)
    odd = tmp_path / "x.xyz"
    odd.write_bytes(b"1")
    with pytest.raises(MediaError, match="unknown media type"):
        read_recording(odd)


def test_drazan_clip(drazan_dir: Path) -> None:
    """Real screen capture: crop to the B-mode area, time stamps, repeated-frame check.

    The capture runs at 61 fps; the dynamometer's FRAME counter and frameInds in push_data.mat
    show one scanner frame per ~1.6 samples at 100 Hz, i.e. the scanner also ran at ~61 Hz in
    these clips, so (nearly) every captured frame is a new scanner frame.
    """
    path = drazan_dir / "clips" / DRAZAN_CLIP
    info = probe_video(path)
    assert (info.width, info.height) == (1148, 624)
    params = sio.loadmat(drazan_dir / "p6_params.mat", squeeze_me=True, struct_as_record=False)
    x, y, w, h = params["Params"].imCropRect  # 1-based, floats with round-off
    rec = read_video(path, crop=(x - 1, y - 1, w, h))
    assert rec.frame_shape == (574, 720)
    assert rec.n_frames == info.n_frames
    assert abs(rec.fps - 61.0) < 0.5
    pushes = sio.loadmat(drazan_dir / "push_data.mat", squeeze_me=True, struct_as_record=False)
    frame_inds = pushes["clips"].p6_isokinetic030_01.push_01.frameInds
    assert len(frame_inds) == rec.n_frames
    scanner_hz = 100.0 / np.mean(np.diff(frame_inds.astype(float)))
    assert abs(scanner_hz - rec.fps) < 2.0
    assert rec.meta.extra["repeated_frames"] <= 0.05 * rec.n_frames
    with pytest.raises(MediaError, match=r"1148x624"):
        read_video(path, crop=(x, y, w + 500, h))
