"""Signal readers: CSV, MATLAB v5 and v7.3, C3D; units, time axes and bad input."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io as sio

from musclestate.errors import SignalError
from musclestate.io.signals import check_c3d_header, read_signals, signal_table


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("header", "delim", "scale"),
    [
        ("time,angle [deg],moment [N m]", ",", 1.0),
        ("t_s;angle [deg];moment [N m]", ";", 1.0),
        ("Time [ms]\tangle [deg]\tmoment [N m]", "\t", 1000.0),
        ("T,angle [deg],moment [N m]", ",", 1.0),
    ],
)
def test_csv_time_column_units_and_delimiters(
    tmp_path: Path, header: str, delim: str, scale: float
) -> None:
    t = np.arange(5) * 0.01
    rows = [delim.join(f"{v:.6g}" for v in (ti * scale, 10 * ti, -ti)) for ti in t]
    path = write_csv(tmp_path / "dyn.csv", "\n".join([header, *rows]) + "\n")
    sig = read_signals(path)
    assert list(sig) == ["angle", "moment"]
    assert sig["angle"].unit == "deg" and sig["moment"].unit == "N m"
    np.testing.assert_allclose(sig["angle"].t_s, t, atol=1e-12)
    np.testing.assert_allclose(sig["angle"].values, 10 * t)
    np.testing.assert_allclose(sig["moment"].values, -t)
    assert sig["angle"].source == str(path)


def test_csv_channels_units_time_column_rate(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "emg.csv", "stamp,emg_mg,emg_sol\n0,1,2\n0.5,3,4\n1.0,5,6\n")
    with pytest.raises(SignalError, match=r"emg\.csv.*no time column"):
        read_signals(path)
    sig = read_signals(path, time_column="stamp", channels=["emg_sol"], units={"emg_sol": "mV"})
    assert list(sig) == ["emg_sol"] and sig["emg_sol"].unit == "mV"
    np.testing.assert_allclose(sig["emg_sol"].t_s, [0, 0.5, 1.0])
    by_rate = read_signals(path, rate_hz=2000.0, channels=["stamp", "emg_mg"])
    np.testing.assert_allclose(by_rate["emg_mg"].t_s, [0, 0.0005, 0.001])
    assert by_rate["emg_mg"].unit == ""
    assert signal_table(by_rate)[0]["samples"] == 3


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("time,a\n0,1\n0.1,nan\n0.2,3\n0.3,\n", r"2 NaN/inf sample\(s\), first at index 1"),
        ("time,a\n0,1\n0.2,2\n0.1,3\n", r"non-monotonic time stamps at index 2"),
        ("time,a\n0,1\n0.1,2\n0.1,3\n", r"duplicate time stamps at index 2"),
        ("time,a\n0,1\n0.1,2,3\n", r"line 3 has 3 cells but the header names 2"),
        ("time,a\n0,1\n0.1,abc\n", r"line 3, column 2: 'abc' is not a number"),
        ("time,a\n", r"no data rows"),
        ("", r"is empty"),
        ("time,a,a\n0,1,2\n", r"appears twice"),
        ("time,,a\n0,1,2\n", r"header cell 2 is empty"),
        ("time [min],a\n0,1\n1,2\n", r"time unit 'min'"),
        ("time,t,a\n0,0,1\n", r"several time columns"),
        ("time\n0\n1\n", r"no channels"),
    ],
)
def test_csv_bad_input(tmp_path: Path, text: str, match: str) -> None:
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(SignalError, match=match) as ei:
        read_signals(path)
    assert "bad.csv" in str(ei.value)


def test_unknown_channel_lists_available(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", "time,angle [deg],moment [N m]\n0,1,2\n1,2,3\n")
    with pytest.raises(
        SignalError, match=r"unknown channel\(s\) 'torque'; available: angle, moment"
    ):
        read_signals(path, channels=["torque"])
    with pytest.raises(SignalError, match=r"units given for unknown channel"):
        read_signals(path, units={"torque": "N m"})
    with pytest.raises(SignalError, match="time column 'clock' not found"):
        read_signals(path, time_column="clock")


def test_missing_binary_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(SignalError, match=r"none\.csv.*not found"):
        read_signals(tmp_path / "none.csv")
    with pytest.raises(SignalError, match="folder"):
        read_signals(tmp_path)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\x00\x01\x02" * 50)
    with pytest.raises(SignalError, match="binary"):
        read_signals(binary)
    other = tmp_path / "x.xls"
    other.write_bytes(b"x")
    with pytest.raises(SignalError, match=r"unknown signal file type '\.xls'"):
        read_signals(other)


def test_mat_v5_nested_struct(tmp_path: Path) -> None:
    t = np.arange(50) / 100.0
    push = {
        "time": t,
        "TOR": np.sin(t),
        "POS": np.cos(t)[:, None],  # column vector, as MATLAB often stores it
        "EMG": np.stack([t, 2 * t], axis=1),  # (N, 2) matrix -> EMG_0, EMG_1
        "frameInds": np.array([1, 3, 5, 6], dtype=np.uint8),
        "start": 7,
        "label": "push",
    }
    path = tmp_path / "push.mat"
    sio.savemat(path, {"clips": {"trial_a": {"push_01": push}}})
    sig = read_signals(path, mat_group="clips.trial_a.push_01", units={"TOR": "N m"})
    assert list(sig) == ["TOR", "POS", "EMG_0", "EMG_1"]
    np.testing.assert_allclose(sig["TOR"].values, np.sin(t))
    np.testing.assert_allclose(sig["POS"].t_s, t)
    np.testing.assert_allclose(sig["EMG_1"].values, 2 * t)
    assert sig["TOR"].unit == "N m" and sig["POS"].unit == ""
    idx = read_signals(path, mat_group="clips/trial_a/push_01", channels=["frameInds"])
    assert idx["frameInds"].unit == "index"
    np.testing.assert_array_equal(idx["frameInds"].values, [1, 3, 5, 6])
    with pytest.raises(SignalError, match=r"no field 'trial_b' in clips; available: trial_a"):
        read_signals(path, mat_group="clips.trial_b.push_01")
    with pytest.raises(SignalError, match="choose one with mat_group"):
        read_signals(path, mat_group="clips.trial_a")


def test_mat_v73_hdf5(tmp_path: Path) -> None:
    """A v7.3 file as MATLAB writes it: HDF5 after a 512-byte user block, arrays transposed."""
    path = tmp_path / "v73.mat"
    t = np.arange(20) / 1000.0
    with h5py.File(path, "w", userblock_size=512) as fh:
        g = fh.create_group("rec").create_group("trial1")
        g["t"] = t[None, :]  # MATLAB (N, 1) column vector -> HDF5 shape (1, N)
        g["emg"] = (3 * t)[None, :]
        g["both"] = np.stack([t, -t])  # MATLAB (N, 2) -> HDF5 (2, N)
        g["name"] = np.array([[ord(c)] for c in "abc"], dtype=np.uint16)
        g["name"].attrs["MATLAB_class"] = np.bytes_(b"char")
    with path.open("r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file".ljust(116))
    sig = read_signals(path, mat_group="rec.trial1", units={"emg": "mV"})
    assert set(sig) == {"emg", "both_0", "both_1"}
    np.testing.assert_allclose(sig["emg"].values, 3 * t)
    np.testing.assert_allclose(sig["both_1"].values, -t)
    np.testing.assert_allclose(sig["emg"].t_s, t)
    assert sig["emg"].unit == "mV"
    with pytest.raises(SignalError, match="no field 'x'"):
        read_signals(path, mat_group="rec.x")


def test_corrupt_mat(tmp_path: Path) -> None:
    path = tmp_path / "c.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file".ljust(128) + b"\x01\x02" * 40)
    with pytest.raises(SignalError, match=r"c\.mat"):
        read_signals(path)


def write_c3d(path: Path, analogs: np.ndarray, rate: float, labels: tuple[str, ...]) -> Path:
    import ezc3d

    c = ezc3d.c3d()
    n = analogs.shape[1]
    ratio = 10
    c["parameters"]["POINT"]["RATE"]["value"] = [rate / ratio]
    c["parameters"]["POINT"]["LABELS"]["value"] = ("m1",)
    c["data"]["points"] = np.ones((4, 1, n // ratio))
    c["parameters"]["ANALOG"]["RATE"]["value"] = [rate]
    c["parameters"]["ANALOG"]["LABELS"]["value"] = labels
    c["parameters"]["ANALOG"]["UNITS"]["value"] = ("V", "N")
    c["data"]["analogs"] = analogs[None]
    c.write(str(path))
    return path


def test_c3d_analog_channels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    analogs = rng.normal(size=(2, 200))
    path = write_c3d(tmp_path / "a.c3d", analogs, 1000.0, ("emg_mg", "force"))
    sig = read_signals(path)
    assert list(sig) == ["emg_mg", "force"]
    assert sig["emg_mg"].unit == "V" and sig["force"].unit == "N"
    np.testing.assert_allclose(sig["force"].values, analogs[1], rtol=1e-6)
    np.testing.assert_allclose(sig["emg_mg"].t_s, np.arange(200) / 1000.0, atol=1e-9)
    with pytest.raises(SignalError, match="available: emg_mg, force"):
        read_signals(path, channels=["emg_sol"])
    # Truncated: caught by the header check, before ezc3d (which loops forever on some).
    data = path.read_bytes()
    cut = tmp_path / "cut.c3d"
    cut.write_bytes(data[: len(data) - 700])
    with pytest.raises(SignalError, match=r"cut\.c3d.*truncated"):
        check_c3d_header(cut)
    with pytest.raises(SignalError, match=r"cut\.c3d.*truncated"):
        read_signals(cut)
    junk = tmp_path / "junk.c3d"
    junk.write_bytes(b"\x02\x50" + bytes(600))
    with pytest.raises(SignalError, match=r"junk\.c3d"):
        read_signals(junk)


def test_drazan_push_data(drazan_dir: Path) -> None:
    path = drazan_dir / "push_data.mat"
    group = "clips.p6_isokinetic030_01.push_01"
    sig = read_signals(path, mat_group=group, units={"TOR": "N m", "POS": "deg"})
    assert {"TOR", "POS", "VEL", "TRIGGER"} <= set(sig)
    assert sig["TOR"].unit == "N m" and sig["POS"].unit == "deg"
    raw = sio.loadmat(path, squeeze_me=True, struct_as_record=False)
    push = raw["clips"].p6_isokinetic030_01.push_01
    np.testing.assert_array_equal(sig["TOR"].values, push.TOR)
    np.testing.assert_array_equal(sig["POS"].t_s, push.time)
    assert abs(sig["TOR"].rate_hz - 100.0) < 0.1
    frame_inds = read_signals(path, mat_group=group, channels=["frameInds"])["frameInds"]
    np.testing.assert_array_equal(frame_inds.values, push.frameInds)
    with pytest.raises(SignalError, match=r"available: .*frameInds"):
        read_signals(path, mat_group=group, channels=["ANGLE"])
