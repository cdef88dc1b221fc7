"""TOML import manifest -> dataset: a tiny synthetic lab (video + DAQ CSVs), real Drazan .mat,
and the bad inputs a lab will produce."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from scipy import signal as sps
from typer.testing import CliRunner

from musclestate.cli import app
from musclestate.dataset import import_manifest, open_dataset, read_manifest
from musclestate.errors import ConfigError, InputError, SignalError
from musclestate.io.video import write_video

FPS = 25.0
N_FRAMES = 30
START_S = 0.8  # DAQ time of the first frame
DAQ_HZ = 1000.0
EMG_HZ = 2000.0


def angle(t: np.ndarray) -> np.ndarray:
    return 10 * np.sin(2 * np.pi * 0.5 * t)


def write_csv(path: Path, header: list[str], cols: list[np.ndarray]) -> None:
    rows = np.column_stack(cols)
    lines = [",".join(header)] + [",".join(f"{v:.9g}" for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def emg_csv(path: Path, amp: float, seconds: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(0, seconds, 1 / EMG_HZ)
    sos = sps.butter(4, (30, 400), btype="bandpass", fs=EMG_HZ, output="sos")
    x = sps.sosfiltfilt(sos, rng.standard_normal(t.size))
    write_csv(path, ["time", "emg_mg [mV]"], [t, amp * x / x.std()])


def make_trial(
    folder: Path, trial: str, n_pulses: int = N_FRAMES, daq_s: float = 3.0, repeats=()
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (N_FRAMES, 32, 40), np.uint8)
    for k in repeats:
        frames[k] = frames[k - 1]
    write_video(folder / f"{trial}.mp4", frames, FPS)
    t = np.arange(0, daq_s, 1 / DAQ_HZ)
    trig = np.zeros_like(t)
    for k in range(n_pulses):
        t0 = START_S + k / FPS
        trig[(t >= t0 - 1e-9) & (t < t0 + 0.004)] = 5.0
    write_csv(
        folder / f"{trial}_dyn.csv",
        ["time", "sync [V]", "angle [deg]", "moment [N m]"],
        [t, trig, angle(t), 20 * t],
    )
    emg_csv(folder / f"{trial}_emg.csv", 1.0, daq_s, seed=1)


MANIFEST = """
[defaults]
pixel_spacing_mm = [0.2, 0.25]
sync = {{ method = "trigger", channel = "sync", edges = "frames" }}
task = "tracking"
[defaults.targets]
ankle_angle = {{ channel = "angle", unit = "deg" }}
ankle_moment = {{ channel = "moment", unit = "N m" }}
mg_activation = {{ channel = "emg_mg", emg = true, mvc = {{ trial = "mvc" }} }}

[[recording]]
participant = "P01"
trial = "track_01"
video = "P01/track_01.mp4"
signals = ["P01/track_01_dyn.csv", "P01/track_01_emg.csv"]
knee_angle_deg = 0

[[recording]]
participant = "P01"
trial = "mvc"
include = false
signals = "P01/mvc_emg.csv"

[[recording]]
participant = "P02"
trial = "track_01"
video = "P02/track_01.mp4"
signals = ["P02/track_01_dyn.csv", "P02/track_01_emg.csv"]
sync = {{ method = "offset", offset_s = {offset} }}
crop = [4, 2, 30, 24]
depth_mm = 12.0
targets.mg_activation = {{ channel = "emg_mg", emg = true, mvc = {{ value = 0.5 }} }}
{extra}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lab")
    make_trial(root / "P01", "track_01")
    make_trial(root / "P02", "track_01")
    emg_csv(root / "P01" / "mvc_emg.csv", 2.0, 2.0, seed=2)
    return root


def manifest(lab: Path, name: str, offset: float = START_S, extra: str = "") -> Path:
    p = lab / f"{name}.toml"
    p.write_text(textwrap.dedent(MANIFEST.format(offset=offset, extra=extra)))
    return p


def test_import_synthetic_lab(lab: Path, tmp_path: Path) -> None:
    out = import_manifest(manifest(lab, "good"), tmp_path / "ds")
    ds = open_dataset(out)
    assert [r.id for r in ds.recordings] == ["P01-track_01", "P02-track_01"]  # mvc not included
    assert ds.target_units == {
        "ankle_angle": "deg",
        "ankle_moment": "N m",
        "mg_activation": "%MVC",
    }
    frame_t = START_S + np.arange(N_FRAMES) / FPS
    for r in ds.recordings:
        tg = ds.targets(r.id)
        # trigger edges are found to within one DAQ sample; offset sync is exact
        np.testing.assert_allclose(ds.frame_times(r.id), frame_t, atol=1 / DAQ_HZ)
        np.testing.assert_allclose(tg["ankle_angle"], angle(frame_t), atol=0.05)
        np.testing.assert_allclose(tg["ankle_moment"], 20 * frame_t, atol=0.03)
    # P01: amplitude-1 EMG over an MVC trial of amplitude 2 -> about 50 %MVC
    assert 44 < np.median(ds.targets("P01-track_01")["mg_activation"]) < 56
    # P02: MVC given as a value: envelope of unit-variance EMG is sqrt(2/pi) = 0.80 -> 160 %MVC
    assert 145 < np.median(ds.targets("P02-track_01")["mg_activation"]) < 175
    p1, p2 = ds.recordings
    assert p1.pixel_spacing_mm == (0.2, 0.25) and p1.meta["knee_angle_deg"] == 0
    assert p2.frame_shape == (24, 30) and p2.pixel_spacing_mm == (0.5, 0.5)
    assert p2.meta["spacing_source"] == "user:depth_mm"
    prov = p1.meta["extra"]["provenance"]
    assert prov["sync"]["method"] == "trigger" and prov["targets"]["mg_activation"]["mvc"] > 0
    assert json.loads((out / "manifest.json").read_text())["import"]["manifest_text"]


def test_cli_import_and_inspect(lab: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["import", str(manifest(lab, "cli")), "--out", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["inspect", str(tmp_path / "ds"), "--json"])
    s = json.loads(res.output)
    assert (s["recordings"], s["participants"], s["frames"]) == (2, 2, 2 * N_FRAMES)
    assert s["frame_shape"] is None  # P02 is cropped
    assert set(s["targets"]) == {"ankle_angle", "ankle_moment", "mg_activation"}
    res = runner.invoke(app, ["inspect", str(tmp_path / "ds")])
    assert res.exit_code == 0 and "mg_activation" in res.output and "%MVC" in res.output


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("knee_angle_deg = 0", 'colour = "red"', r"unknown recording key\(s\) \['colour'\]"),
        ("P02/track_01_dyn.csv", "P02/nope.csv", "nope.csv' not found"),
        ("crop = [4, 2, 30, 24]", "crop = [1, 2, 3]", r"crop must be \[x, y, w, h\]"),
        ('unit = "deg"', 'unit = "rad"', "scale"),
        ('method = "offset"', 'method = "magic"', "unknown sync method"),
        ("depth_mm = 12.0", "depth_mm = 12.0\npixel_spacing_mm = 0.1", "not both"),
        ("mvc = { value = 0.5 }", "mvc = { value = -1 }", "mvc.value must be > 0"),
    ],
)
def test_manifest_validation(lab: Path, old: str, new: str, match: str) -> None:
    text = manifest(lab, "x").read_text()
    assert old in text
    (lab / "bad.toml").write_text(text.replace(old, new))
    with pytest.raises(ConfigError, match=match):
        read_manifest(lab / "bad.toml")


def test_mvc_trial_must_exist(lab: Path) -> None:
    text = (
        manifest(lab, "x").read_text().replace('trial = "mvc"\ninclude', 'trial = "max"\ninclude')
    )
    (lab / "nomvc.toml").write_text(text)
    with pytest.raises(ConfigError, match="no recording with that trial"):
        read_manifest(lab / "nomvc.toml")


@pytest.mark.parametrize(
    ("extra", "offset", "error", "match"),
    [
        (
            'targets.ankle_angle = { channel = "angel", unit = "deg" }',
            START_S,
            SignalError,
            r"unknown channel 'angel'; available channels: \['angle', 'emg_mg', 'moment', 'sync'\]",
        ),
        ("", 2.5, SignalError, "shorter than the video"),
    ],
)
def test_import_errors_leave_nothing(lab: Path, tmp_path: Path, extra, offset, error, match):
    with pytest.raises(error, match=match):
        import_manifest(manifest(lab, "bad", offset=offset, extra=extra), tmp_path / "ds")
    assert not any(tmp_path.iterdir())


def test_trigger_count_mismatch(tmp_path: Path) -> None:
    make_trial(tmp_path / "P01", "t", n_pulses=N_FRAMES - 2)
    with pytest.raises(SignalError, match="28 rising edges but the video has 30 frames"):
        import_manifest(_single(tmp_path), tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_not_toml(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text("[[recording]\nx=")
    with pytest.raises(InputError, match="not valid TOML"):
        read_manifest(tmp_path / "m.toml")
    with pytest.raises(InputError, match="manifest not found"):
        read_manifest(tmp_path / "missing.toml")


@pytest.mark.slow
def test_drazan_clip_through_manifest(drazan_dir: Path, tmp_path: Path) -> None:
    """Index sync from a .mat frameInds (1-based), crop, units: same values as the .mat."""
    clip = "p6_isokinetic500_01_push_01"
    (tmp_path / "m.toml").write_text(
        textwrap.dedent(
            f"""
            [[recording]]
            participant = "p6"
            trial = "{clip}"
            video = "{drazan_dir}/clips/{clip}.mp4"
            signals = "{drazan_dir}/push_data.mat"
            mat_group = "clips.p6_isokinetic500_01.push_01"
            signal_units = {{ POS = "deg", TOR = "N m" }}
            crop = [214, 44, 720, 574]
            pixel_spacing_mm = 0.0883
            sync = {{ method = "index", channel = "frameInds", base = 1, clock = "POS" }}
            [recording.targets]
            ankle_angle = {{ channel = "POS", unit = "deg" }}
            ankle_moment = {{ channel = "TOR", unit = "N m" }}
            """
        )
    )
    ds = open_dataset(import_manifest(tmp_path / "m.toml", tmp_path / "ds"))
    push = scipy.io.loadmat(drazan_dir / "push_data.mat", squeeze_me=True, struct_as_record=False)[
        "clips"
    ].p6_isokinetic500_01.push_01
    inds = np.asarray(push.frameInds, dtype=np.int64) - 1
    rid = ds.recordings[0].id
    assert ds.recordings[0].frame_shape == (574, 720)
    np.testing.assert_array_equal(ds.targets(rid)["ankle_angle"], push.POS[inds])
    np.testing.assert_array_equal(ds.targets(rid)["ankle_moment"], push.TOR[inds])


def _single(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "m.toml").write_text(
        textwrap.dedent(
            """
            [[recording]]
            participant = "P01"
            trial = "t"
            video = "P01/t.mp4"
            signals = "P01/t_dyn.csv"
            sync = { method = "trigger", channel = "sync" }
            targets.ankle_angle = { channel = "angle" }
            """
        )
        + extra
    )
    return tmp_path / "m.toml"


def test_drop_repeated_frames_keeps_their_trigger_times(tmp_path: Path) -> None:
    make_trial(tmp_path / "P01", "t", repeats=(5, 6, 20))
    ds = open_dataset(
        import_manifest(_single(tmp_path, "drop_repeated_frames = true\n"), tmp_path / "ds")
    )
    info = ds.recordings[0]
    assert info.meta["extra"]["dropped_frame_indices"] == [5, 6, 20]
    keep = np.delete(np.arange(N_FRAMES), [5, 6, 20])
    frame_t = START_S + keep / FPS
    assert info.n_frames == keep.size
    np.testing.assert_allclose(ds.frame_times(info.id), frame_t, atol=1 / DAQ_HZ)
    np.testing.assert_allclose(ds.targets(info.id)["ankle_angle"], angle(frame_t), atol=0.05)


def test_nan_in_signal_file_is_reported(tmp_path: Path) -> None:
    make_trial(tmp_path / "P01", "t")
    csv = tmp_path / "P01" / "t_dyn.csv"
    lines = csv.read_text().splitlines()
    lines[101] = lines[101].rsplit(",", 1)[0] + ",nan"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(SignalError, match=r"t_dyn.csv.*NaN"):
        import_manifest(_single(tmp_path), tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_index_sync_from_csv_file(tmp_path: Path) -> None:
    make_trial(tmp_path / "P01", "t")
    samples = np.round((START_S + np.arange(N_FRAMES) / FPS) * DAQ_HZ).astype(int)
    write_csv(tmp_path / "P01" / "frames.csv", ["frame", "sample"], [np.arange(N_FRAMES), samples])
    m = (
        _single(tmp_path)
        .read_text()
        .replace(
            'sync = { method = "trigger", channel = "sync" }',
            'sync = { method = "index", file = "P01/frames.csv", column = "sample", '
            'clock = "angle" }',
        )
    )
    (tmp_path / "m.toml").write_text(m)
    ds = open_dataset(import_manifest(tmp_path / "m.toml", tmp_path / "ds"))
    rid = ds.recordings[0].id
    np.testing.assert_allclose(ds.frame_times(rid), samples / DAQ_HZ, atol=1e-9)
    np.testing.assert_allclose(ds.targets(rid)["ankle_angle"], angle(samples / DAQ_HZ), atol=1e-6)
