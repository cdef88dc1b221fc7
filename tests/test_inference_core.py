"""Inference machinery on tiny fakes: sources, live feed, predictor batching, output files."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import av
import numpy as np
import pytest

from musclestate.errors import ConfigError, InputError
from musclestate.inference.outputs import (
    Estimates,
    read_csv,
    sha256_file,
    sidecar_path,
    write_csv,
    write_sidecar,
    write_xlsx,
)
from musclestate.inference.predictor import (
    Predictor,
    PredictorConfig,
    RoiOutput,
    TrainingRange,
)
from musclestate.inference.sources import (
    ArraySource,
    Frame,
    FrameSource,
    LiveFeed,
    PyAVSource,
    ReplaySource,
    SourceInfo,
    open_source,
    parse_device,
)


def _frames(n: int = 12, h: int = 32, w: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=(h, w), dtype=np.uint8)
    f = np.stack([np.roll(base, i, axis=1) for i in range(n)])
    f[3] = 0  # a frame with no muscle
    return f


def _write_mp4(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.options = {"crf": "0"}
        chroma = np.full((frames.shape[1] // 2, frames.shape[2]), 128, np.uint8)
        for img in frames:  # luma stored as given, as scanner exports do
            vf = av.VideoFrame.from_ndarray(np.vstack([img, chroma]), format="yuv420p")
            for pkt in s.encode(vf):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


class FakeRoi:
    """Patches = the frame's top and bottom halves at 8 x 8; no muscle where the frame is dark."""

    feature_names = ("mean_echo",)
    feature_units: ClassVar[dict[str, str]] = {"mean_echo": "a.u."}

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, frames: np.ndarray, pixel_spacing_mm=None) -> RoiOutput:
        self.calls += 1
        n, h, w = frames.shape
        halves = np.stack([frames[:, : h // 2], frames[:, h // 2 : 2 * (h // 2)]], axis=1)
        patches = halves[:, :, :: max(1, h // 16), :: max(1, w // 8)].astype(np.float32)
        found = frames.reshape(n, -1).mean(1) > 10
        feats = frames.reshape(n, -1).mean(1, keepdims=True).astype(np.float64)
        return RoiOutput(patches, found, feats, [[np.array([[0, 0], [w - 1, h - 1]])]] * n)

    def reset(self) -> None:
        pass


class FakeEstimator:
    targets = ("ankle_angle", "mg_activation")
    units: ClassVar[dict[str, str]] = {"ankle_angle": "deg", "mg_activation": "%MVC"}

    def predict(self, patches: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        m = patches.reshape(len(patches), -1).mean(1).astype(np.float64)
        return {
            "ankle_angle": (m / 10.0, np.full(len(m), 0.5)),
            "mg_activation": (patches[:, 0].mean((1, 2)) / 2.55, np.full(len(m), 2.0)),
        }


def test_array_source_crop_and_flip() -> None:
    f = _frames()
    src = ArraySource(f, np.arange(12) / 25.0, crop=(4, 2, 10, 20), flip_horizontal=True)
    out = list(src)
    assert len(out) == 12 and out[5].index == 5 and out[5].t_s == pytest.approx(0.2)
    np.testing.assert_array_equal(out[5].image, f[5, 2:22, 4:14][:, ::-1])
    assert src.info.fps == pytest.approx(25.0)
    with pytest.raises(InputError, match="outside the 48x32"):
        ArraySource(f, np.arange(12.0), crop=(40, 0, 10, 10))


def test_video_source_reads_frames_times_and_crop(tmp_path: Path) -> None:
    f = _frames(10, 32, 48)
    p = _write_mp4(tmp_path / "clip.mp4", f, fps=25)
    with open_source(p, crop=(8, 0, 32, 32)) as src:
        assert isinstance(src, PyAVSource) and src.info.fps == pytest.approx(25)
        got = list(src)
    assert [g.index for g in got] == list(range(10))
    np.testing.assert_allclose([g.t_s for g in got], np.arange(10) / 25, atol=1e-6)
    assert got[0].image.shape == (32, 32)
    np.testing.assert_array_equal(got[6].image, f[6, :, 8:40])  # lossless, luma as stored
    with pytest.raises(InputError, match="lies outside the 48x32"):
        open_source(p, crop=(0, 0, 64, 32))


def test_open_source_errors_name_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        open_source(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(InputError, match=r"bad\.mp4: cannot open as a video"):
        open_source(bad)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("v4l2:/dev/video0", ("v4l2", "/dev/video0")),
        ("/dev/video2", ("v4l2", "/dev/video2")),
        ("lavfi:testsrc=size=8x8", ("lavfi", "testsrc=size=8x8")),
        ("clip.mp4", None),
        ("C:/videos/clip.mp4", None),
    ],
)
def test_parse_device(spec: str, expected: tuple[str, str] | None) -> None:
    assert parse_device(spec) == expected


def test_device_source_through_pyav_lavfi() -> None:
    src = open_source("lavfi:testsrc=size=64x48:rate=40", crop=(0, 0, 32, 24))
    assert src.info.live
    frames = []
    for fr in src:
        frames.append(fr)
        if len(frames) == 5:
            break
    src.close()
    assert [f.image.shape for f in frames] == [(24, 32)] * 5
    assert all(b.t_s > a.t_s for a, b in itertools.pairwise(frames))


def test_replay_runs_at_real_frame_rate() -> None:
    src = ReplaySource(ArraySource(_frames(6), np.arange(6) / 50.0))
    t0 = time.perf_counter()
    n = sum(1 for _ in src)
    elapsed = time.perf_counter() - t0
    assert n == 6 and elapsed >= 5 / 50 * 0.9


def test_live_feed_drops_oldest_when_consumer_is_slow() -> None:
    src = ReplaySource(ArraySource(_frames(30), np.arange(30) / 200.0))
    feed = LiveFeed(src, maxsize=2, stall_timeout_s=1.0)
    seen = []
    for a in feed:
        seen.append(a.frame.index)
        time.sleep(0.02)  # 4x slower than the 200 fps source
    assert feed.end_reason == "ended"
    assert feed.dropped > 0 and feed.dropped + len(seen) == 30
    assert seen == sorted(seen) and seen[-1] == 29  # newest frames survive, end marker kept
    assert set(feed.dropped_indices).isdisjoint(seen)


def test_live_feed_fast_consumer_drops_nothing() -> None:
    feed = LiveFeed(ReplaySource(ArraySource(_frames(20), np.arange(20) / 100.0)), maxsize=2)
    assert [a.frame.index for a in feed] == list(range(20))
    assert feed.dropped == 0 and feed.end_reason == "ended"


class _StallingSource(FrameSource):
    def __init__(self, n_before: int, release: threading.Event) -> None:
        self.n, self.release = n_before, release
        self.info = SourceInfo(name="stall", location="stall", live=True)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.n):
            yield Frame(i, i * 0.01, np.zeros((4, 4), np.uint8))
        self.release.wait(5.0)


class _FailingSource(_StallingSource):
    def __iter__(self) -> Iterator[Frame]:
        yield Frame(0, 0.0, np.zeros((4, 4), np.uint8))
        raise OSError("device unplugged")


def test_live_feed_stops_cleanly_on_stall_and_on_error() -> None:
    release = threading.Event()
    feed = LiveFeed(_StallingSource(3, release), maxsize=4, stall_timeout_s=0.2)
    got = [a.frame.index for a in feed]
    release.set()
    assert got == [0, 1, 2] and feed.end_reason == "stalled"
    feed = LiveFeed(_FailingSource(0, release), stall_timeout_s=1.0)
    got = [a.frame.index for a in feed]
    assert got == [0] and feed.end_reason.startswith("error") and "unplugged" in feed.end_reason


def test_predictor_flags_missing_muscle_and_is_batch_invariant() -> None:
    f = _frames(12)
    t = np.arange(12) / 25.0
    runs = {}
    for bs in (1, 5, 32):
        roi = FakeRoi()
        pred = Predictor(roi, FakeEstimator(), PredictorConfig(batch_size=bs))
        runs[bs] = pred.run(ArraySource(f, t), keep_outlines=True)
        assert roi.calls == -(-12 // bs)
    est = runs[1].estimates
    assert est.roi_found.tolist() == [i != 3 for i in range(12)]
    assert np.isnan(est.mean["ankle_angle"][3]) and np.isnan(est.sd["mg_activation"][3])
    expected = FakeEstimator().predict(FakeRoi()(f).patches)["ankle_angle"][0]
    np.testing.assert_allclose(
        est.mean["ankle_angle"][~np.isnan(est.mean["ankle_angle"])], np.delete(expected, 3)
    )
    for bs in (5, 32):
        for k in est.targets:
            np.testing.assert_array_equal(runs[bs].estimates.mean[k], est.mean[k])
    assert len(runs[5].outlines) == 12
    np.testing.assert_array_equal(est.frame, np.arange(12))
    np.testing.assert_allclose(est.t_s, t)


def test_out_of_range_flag_uses_training_range_with_margin() -> None:
    f = _frames(12)
    tr = TrainingRange(targets={"ankle_angle": (0.0, 11.0)}, features={"mean_echo": (0.0, 1e3)})
    pred = Predictor(
        FakeRoi(), FakeEstimator(), PredictorConfig(range_margin=0.0), training_range=tr
    )
    est = pred.predict_frames(f).estimates
    angle = est.mean["ankle_angle"]
    np.testing.assert_array_equal(est.out_of_range, np.nan_to_num(angle) > 11.0)
    assert est.out_of_range.any() and not est.out_of_range.all()
    wide = Predictor(
        FakeRoi(), FakeEstimator(), PredictorConfig(range_margin=5.0), training_range=tr
    )
    assert not wide.predict_frames(f).estimates.out_of_range.any()


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="backend"):
        PredictorConfig(backend="tensorflow")
    with pytest.raises(ConfigError, match="roi_every"):
        PredictorConfig(roi_every=0)


def test_csv_xlsx_and_sidecar_round_trip(tmp_path: Path) -> None:
    pred = Predictor(FakeRoi(), FakeEstimator())
    est = pred.predict_frames(_frames(12), t_s=np.arange(12) / 25.0).estimates
    out = write_csv(tmp_path / "res.csv", est)
    cols = read_csv(out)
    assert list(cols)[:6] == [
        "frame",
        "t_s",
        "ankle_angle",
        "ankle_angle_sd",
        "mg_activation",
        "mg_activation_sd",
    ]
    assert {"roi_found", "out_of_range", "mean_echo"} <= set(cols)
    np.testing.assert_allclose(cols["ankle_angle"], est.mean["ankle_angle"], rtol=1e-5)
    assert np.isnan(cols["ankle_angle"][3]) and cols["roi_found"][3] == 0
    prov = {"bundle": {"path": "b", "sha256": "x"}, "settings": {"batch_size": 32}}
    side = write_sidecar(out, est, prov)
    assert side == sidecar_path(out) and side.name == "res.csv.json"
    doc = json.loads(side.read_text())
    assert doc["columns"]["ankle_angle"] == "deg" and doc["columns"]["t_s"] == "s"
    assert doc["frames_with_roi"] == 11 and doc["bundle"]["sha256"] == "x"
    from openpyxl import load_workbook

    wb = load_workbook(write_xlsx(tmp_path / "res.xlsx", est, prov))
    rows = list(wb["estimates"].values)
    assert rows[0][:3] == ("frame", "t_s", "ankle_angle") and rows[1][2] == "deg"
    assert rows[2 + 5][2] == pytest.approx(est.mean["ankle_angle"][5])
    assert rows[2 + 3][2] is None
    assert not list(tmp_path.glob(".*tmp*"))
    assert sha256_file(out) == sha256_file(out) and len(sha256_file(tmp_path)) == 64


def test_estimates_reject_inconsistent_columns() -> None:
    with pytest.raises(InputError, match="shape"):
        Estimates(
            np.arange(3),
            np.arange(3.0),
            {"a": np.zeros(2)},
            {"a": np.zeros(3)},
            {"a": "deg"},
            np.ones(3, bool),
            np.zeros(3, bool),
        )


def test_image_folder_source_needs_fps_and_reads_frames(tmp_path: Path) -> None:
    from PIL import Image

    f = _frames(5)
    for i, img in enumerate(f):
        Image.fromarray(img).save(tmp_path / f"im_{i:03d}.png")
    with pytest.raises(ConfigError, match="--fps"):
        open_source(tmp_path)
    src = open_source(tmp_path, fps=20.0, flip_horizontal=True, pixel_spacing_mm=(0.1, 0.2))
    got = list(src)
    assert len(got) == 5 and src.info.pixel_spacing_mm == (0.1, 0.2)
    np.testing.assert_array_equal(got[2].image, f[2][:, ::-1])
    np.testing.assert_allclose([g.t_s for g in got], np.arange(5) / 20.0)
