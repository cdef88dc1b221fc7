"""Live streaming: bounded latency, dropped frames counted, clean stop on end or stall."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from musclestate.errors import ConfigError
from musclestate.inference import ArraySource, Predictor, PredictorConfig, read_csv
from musclestate.inference.sources import Frame, FrameSource, SourceInfo, open_source
from musclestate.inference.stream import RowWriter, StreamConfig, percentiles, run_stream
from test_inference_core import FakeEstimator, FakeRoi, _frames


class StepRoi(FakeRoi):
    """FakeRoi with a causal step that can be made slow."""

    context = 0
    chunk = 8

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.delay_s = delay_s

    def step(self, frame: np.ndarray, pixel_spacing_mm=None):
        if self.delay_s:
            time.sleep(self.delay_s)
        return self(frame[None], pixel_spacing_mm)


def _predictor(delay_s: float = 0.0) -> Predictor:
    return Predictor(StepRoi(delay_s), FakeEstimator(), PredictorConfig(batch_size=1))


def test_fast_predictor_keeps_every_frame_with_low_latency(tmp_path: Path) -> None:
    f = _frames(30)
    src = ArraySource(f, np.arange(30) / 100.0)
    seen: list[int] = []
    w = RowWriter(tmp_path / "live.csv")
    rep = run_stream(
        _predictor(),
        src,
        # A queue that can hold the whole clip: no frame may be lost, however loaded the machine.
        config=StreamConfig(warmup_frames=0, queue_size=32),
        on_estimate=lambda row, ms: seen.append(int(row.frame[0])),
        writer=w,
    )
    assert rep.end_reason == "ended" and rep.frames_dropped == 0
    assert seen == list(range(30)) and rep.frames_processed == 30
    assert 0 <= rep.latency_ms["p50"] <= rep.latency_ms["p99"] <= rep.latency_ms["max"]
    assert rep.wall_s >= 29 / 100 * 0.9  # replayed at the real frame rate
    cols = read_csv(tmp_path / "live.csv")
    np.testing.assert_array_equal(cols["frame"], np.arange(30))
    assert np.isnan(cols["ankle_angle"][3]) and (cols["latency_ms"] >= 0).all()


def test_slow_predictor_drops_frames_instead_of_falling_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = ArraySource(_frames(40), np.arange(40) / 200.0)  # 200 fps, 5 ms per frame
    rep = run_stream(
        _predictor(delay_s=0.02), src, config=StreamConfig(queue_size=1, warmup_frames=0)
    )
    assert rep.frames_dropped > 10
    assert rep.frames_processed + rep.frames_dropped == rep.frames_received == 40
    # latency stays near one processing time instead of growing with the backlog
    assert rep.latency_ms["max"] < 200
    assert "dropped" in caplog.text


class _Stalls(FrameSource):
    def __init__(self, release: threading.Event) -> None:
        self.release = release
        self.info = SourceInfo(name="probe", location="probe", fps=50.0, live=True)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(5):
            yield Frame(i, i / 50, _frames(6)[i])
            time.sleep(0.02)
        self.release.wait(5)


def test_stalled_source_stops_cleanly_keeping_rows(tmp_path: Path) -> None:
    release = threading.Event()
    w = RowWriter(tmp_path / "s.csv")
    rep = run_stream(
        _predictor(),
        _Stalls(release),
        config=StreamConfig(stall_timeout_s=0.3, warmup_frames=0),
        writer=w,
    )
    release.set()
    assert rep.end_reason == "stalled" and rep.frames_processed == 5
    assert len(read_csv(tmp_path / "s.csv")["frame"]) == 5


def test_max_frames_stops_and_config_is_checked() -> None:
    rep = run_stream(
        _predictor(),
        ArraySource(_frames(20), np.arange(20) / 400.0),
        config=StreamConfig(max_frames=7, warmup_frames=2),
    )
    assert rep.frames_processed == 7
    with pytest.raises(ConfigError, match="queue_size"):
        StreamConfig(queue_size=0)


def test_percentiles_table() -> None:
    p = percentiles(np.arange(1, 101, dtype=float))
    assert p["p50"] == pytest.approx(50.5) and p["max"] == 100.0
    assert np.isnan(percentiles(np.array([]))["p99"])


def test_stream_cli_replays_a_video_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import musclestate.inference as inf
    from musclestate.cli import app
    from musclestate.io.video import write_video

    clip = write_video(tmp_path / "c.mp4", _frames(12, 32, 48), fps=50.0)
    monkeypatch.setattr(inf, "load_predictor", lambda model, config=None, **kw: _predictor())
    out = tmp_path / "live.csv"
    r = CliRunner().invoke(app, ["stream", "bundle", "--source", str(clip), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "latency ms" in r.output and "p99" in r.output and "ended" in r.output
    assert len(read_csv(out)["frame"]) + int(r.output.split(" dropped")[0].split()[-1]) == 12
    side = json.loads((tmp_path / "live.csv.json").read_text())
    assert side["report"]["end_reason"] == "ended" and side["stream"]["queue_size"] == 2
    assert side["input"]["location"].endswith("c.mp4")


@pytest.mark.slow
def test_real_clip_source_matches_io_reader(drazan_dir: Path) -> None:
    """Frames streamed by PyAVSource are the io reader's frames (same luma rule, times)."""
    from musclestate.io.video import read_video

    clip = drazan_dir / "clips" / "p6_isokinetic030_01_push_01.mp4"
    crop = (214, 44, 720, 574)
    rec = read_video(clip, crop=crop)
    with open_source(clip, crop=crop) as src:
        got = [fr for _, fr in zip(range(25), src, strict=False)]
    np.testing.assert_array_equal(np.stack([g.image for g in got]), rec.frames[:25])
    np.testing.assert_allclose([g.t_s for g in got], rec.t_s[:25], atol=1e-9)


def test_stream_cli_from_a_capture_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PyAV input device (FFmpeg's lavfi test pattern, delivered in real time)."""
    from typer.testing import CliRunner

    import musclestate.inference as inf
    from musclestate.cli import app

    monkeypatch.setattr(inf, "load_predictor", lambda model, config=None, **kw: _predictor())
    dev = "lavfi:testsrc=size=48x32:rate=40,realtime"
    r = CliRunner().invoke(app, ["stream", "b", "--source", dev, "--max-frames", "8", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "8 frames estimated" in r.output and "stopped" in r.output
