"""The phantom cohort on disk: layout, consistency, import round trip, determinism, bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from musclestate.errors import ConfigError
from musclestate.phantom import (
    PhantomConfig,
    ProtocolConfig,
    sample_labelled_frames,
    simulate_cohort,
)
from musclestate.phantom import cohort as cohort_mod

TRIAL_FILES = {"video.mp4", "daq.csv", "emg.csv", "truth.csv", "labels.npz"}


def tiny(**kw) -> PhantomConfig:
    base = dict(
        participants=1,
        seconds=0.8,
        fps=10.0,
        seed=3,
        size=(64, 64),
        protocol=ProtocolConfig(tracking_trials=1, mvc_seconds=1.0, rom_seconds=1.0),
    )
    return PhantomConfig(**(base | kw))


def truth(folder: Path) -> dict[str, np.ndarray]:
    with (folder / "truth.csv").open() as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(folder / "truth.csv", delimiter=",", skiprows=1)
    return {h: data[:, i] for i, h in enumerate(header)}


def test_layout_and_manifest(phantom_cohort: Path) -> None:
    from musclestate.dataset.manifest import read_manifest

    root = phantom_cohort.parent
    info = json.loads((root / "cohort.json").read_text())
    assert info["generator"] == "musclestate.phantom"
    assert [p["parameters"]["id"] for p in info["participants"]] == ["P01", "P02", "P03"]
    m = read_manifest(phantom_cohort)
    assert len(m.recordings) == 3 * 4
    by_trial = {(r.participant, r.trial): r for r in m.recordings}
    for pid in ("P01", "P02", "P03"):
        assert by_trial[(pid, "mvc")].include  # a calibration recording too
        for trial in ("track_01", "track_02", "rom"):
            spec = by_trial[(pid, trial)]
            assert spec.include
            assert {t.name for t in spec.targets} == {
                "ankle_angle", "ankle_moment", "mg_activation", "sol_activation"
            }  # fmt: skip
            assert set(p.name for p in (spec.video.parent).iterdir()) == TRIAL_FILES
    assert not list(root.rglob(".*tmp*"))


def test_frames_truth_trigger_and_labels_agree(phantom_cohort: Path) -> None:
    from musclestate.io.signals import read_signals
    from musclestate.io.video import read_video

    folder = phantom_cohort.parent / "P02" / "track_01"
    rec = read_video(folder / "video.mp4")
    tr = truth(folder)
    sig = read_signals(folder / "daq.csv")
    emg = read_signals(folder / "emg.csv")
    assert sig["angle"].unit == "deg" and sig["moment"].unit == "N m" and sig["sync"].unit == "V"
    assert emg["emg_mg"].unit == "mV" and emg["emg_mg"].rate_hz == pytest.approx(2000, rel=1e-3)
    assert sig["sync"].rate_hz == pytest.approx(1000, rel=1e-3)
    high = sig["sync"].values > 2.5
    edges = np.flatnonzero(high[1:] & ~high[:-1]) + 1
    assert rec.n_frames == tr["frame"].size == edges.size == 50
    np.testing.assert_allclose(sig["sync"].t_s[edges], tr["time_s"], atol=1e-6)
    labels = np.load(folder / "labels.npz")["labels"]
    assert labels.shape == (50, 128, 128) and labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4}
    # the frames show the labelled anatomy: aponeuroses bright, MG dark
    f = rec.frames.astype(float)
    apo = f[(labels == 1) | (labels == 2)].mean()
    assert apo > f[labels == 3].mean() + 40


def test_import_round_trip_matches_truth(phantom_cohort: Path, tmp_path: Path) -> None:
    from musclestate.dataset import import_manifest, open_dataset

    ds_path = import_manifest(phantom_cohort, tmp_path / "ds")
    with open_dataset(ds_path) as ds:
        assert len(ds.participants) == 3
        for info in ds.recordings:
            tr = truth(phantom_cohort.parent / info.participant / info.trial)
            tg = ds.targets(info.id)
            assert np.abs(tg["ankle_angle"] - tr["ankle_angle [deg]"]).max() < 0.5
            assert np.abs(tg["ankle_moment"] - tr["ankle_moment [N m]"]).max() < 3.0
            if info.trial.startswith("track"):
                for m in ("mg", "sol"):
                    r = np.corrcoef(tg[f"{m}_activation"], tr[f"{m}_excitation [1]"])[0, 1]
                    assert r > 0.8, (info.id, m, r)
                    assert 10 < tg[f"{m}_activation"].max() < 110  # %MVC of its own MVC trial


def test_same_seed_same_bytes_and_seed_matters(tmp_path: Path) -> None:
    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    a = digest(simulate_cohort(tmp_path / "a", config=tiny()).parent)
    b = digest(simulate_cohort(tmp_path / "b", config=tiny()).parent)
    c = digest(simulate_cohort(tmp_path / "c", config=tiny(seed=4)).parent)
    assert a == b
    assert a["P01/track_01/video.mp4"] != c["P01/track_01/video.mp4"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"participants": -1}, "participants"),
        ({"participants": 0}, "participants"),
        ({"seconds": -2.0}, "seconds"),
        ({"fps": 0.0}, "fps"),
        ({"size": (32, 32)}, "size"),
        ({"size": (129, 128)}, "size"),
        ({"seed": -1}, "seed"),
        ({"seconds": 0.01}, "frames per"),
    ],
)
def test_bad_arguments_fail_before_any_work(tmp_path: Path, kwargs: dict, match: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=match):
        simulate_cohort(out, **kwargs)
    assert not out.exists()


def test_screen_capture_layout_is_cropped_on_import(tmp_path: Path) -> None:
    from musclestate.dataset import import_manifest, open_dataset
    from musclestate.io.video import read_video
    from musclestate.phantom.imaging import screen_layout

    cfg = tiny(size=(128, 192), screen=True)
    m = simulate_cohort(tmp_path / "c", config=cfg)
    x, y, w, h = screen_layout((128, 192))
    raw = read_video(m.parent / "P01" / "track_01" / "video.mp4").frames
    labels = np.load(m.parent / "P01" / "track_01" / "labels.npz")["labels"]
    assert raw.shape[1:] == labels.shape[1:] == (128, 192)
    outside = np.ones((128, 192), bool)
    outside[y : y + h, x : x + w] = False
    assert not labels[:, outside].any()  # anatomy only inside the B-mode area
    far = ndimage.binary_erosion(outside, iterations=8)  # off the codec blocks at the edge
    assert np.percentile(np.ptp(raw[:, far].astype(int), axis=0), 99) <= 6  # a static UI
    with open_dataset(import_manifest(m, tmp_path / "ds")) as ds:
        info = ds.recordings[0]
        assert info.frame_shape == (h, w)
        spacing = json.loads((m.parent / "cohort.json").read_text())["participants"][0]
        assert info.pixel_spacing_mm == pytest.approx(spacing["pixel_spacing_mm"])
    with pytest.raises(ConfigError, match="screen"):
        tiny(size=(64, 64), screen=True)


def test_config_and_arguments_together_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="either config"):
        simulate_cohort(tmp_path / "x", participants=2, config=tiny())
    assert not (tmp_path / "x").exists()


def test_folder_with_other_data_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="other data"):
        simulate_cohort(out, config=tiny())
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_previous_cohort_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "c"
    simulate_cohort(out, config=tiny())
    with pytest.raises(ConfigError, match="overwrite"):
        simulate_cohort(out, config=tiny())
    m = simulate_cohort(out, config=tiny(seed=5), overwrite=True)
    assert json.loads((m.parent / "cohort.json").read_text())["config"]["seed"] == 5


def test_interrupted_run_leaves_no_complete_looking_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = cohort_mod._write_trial

    def failing(folder: Path, *args, **kw) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            (folder / "video.mp4").write_bytes(b"partial")
            raise KeyboardInterrupt
        real(folder, *args, **kw)

    monkeypatch.setattr(cohort_mod, "_write_trial", failing)
    out = tmp_path / "c"
    with pytest.raises(KeyboardInterrupt):
        simulate_cohort(out, config=tiny())
    assert not (out / "manifest.toml").exists()
    assert not (out / "cohort.json").exists()
    trials = [p for p in (out / "P01").iterdir()]
    assert [p.name for p in trials] == ["mvc"]  # only the trial that finished, nothing hidden
    assert {p.name for p in trials[0].iterdir()} == TRIAL_FILES


def test_sample_labelled_frames() -> None:
    frames, labels = sample_labelled_frames(6, size=(96, 128), seed=1)
    assert frames.shape == labels.shape == (6, 96, 128)
    assert frames.dtype == labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4}
    for f, lb in zip(frames, labels, strict=True):
        assert f[(lb == 1) | (lb == 2)].mean() > f[lb == 3].mean() + 30
    again, _ = sample_labelled_frames(6, size=(96, 128), seed=1)
    other, _ = sample_labelled_frames(6, size=(96, 128), seed=2)
    assert np.array_equal(frames, again) and not np.array_equal(frames, other)
    empty, empty_lb = sample_labelled_frames(0, size=(64, 64))
    assert empty.shape == empty_lb.shape == (0, 64, 64)
    with pytest.raises(ConfigError, match="n must be"):
        sample_labelled_frames(-1)
    with pytest.raises(ConfigError, match="size"):
        sample_labelled_frames(2, size=(16, 16))


def test_anatomy_spread_shrinks_the_between_participant_ranges():
    from musclestate.phantom.participants import draw_participant

    def draw(spread: float, i: int):
        return draw_participant(f"P{i}", np.random.default_rng([0, i]), spread)

    full = [draw(1.0, i) for i in range(12)]
    narrow = [draw(0.25, i) for i in range(12)]
    none = [draw(0.0, i) for i in range(12)]
    for field in ("sol_thickness_mm", "mvc_moment_nm", "depth_mm", "fat_mm"):
        r_full = np.ptp([getattr(p, field) for p in full])
        r_narrow = np.ptp([getattr(p, field) for p in narrow])
        assert 0 < r_narrow < 0.5 * r_full, field
        assert np.ptp([getattr(p, field) for p in none]) < 1e-9, field
    with pytest.raises(ConfigError, match="anatomy_spread"):
        PhantomConfig(anatomy_spread=1.5)
