import numpy as np
import pytest

from musclestate.errors import InputError, SignalError
from musclestate.records import Recording, RecordingMeta, Signal, Target


def _meta(**kw):
    return RecordingMeta(participant="p1", trial="t1", **kw)


def test_recording_roundtrip_fields_are_readonly():
    rec = Recording(
        frames=np.zeros((3, 4, 5), np.uint8),
        t_s=np.array([0.0, 0.05, 0.1]),
        pixel_spacing_mm=(0.1, 0.2),
        meta=_meta(),
        targets={"ankle_angle": Target(np.array([1.0, 2.0, 3.0]), "deg")},
    )
    assert rec.n_frames == 3 and rec.frame_shape == (4, 5)
    assert rec.fps == pytest.approx(20.0)
    with pytest.raises(ValueError):
        rec.frames[0, 0, 0] = 1


@pytest.mark.parametrize(
    ("t", "msg"),
    [
        ([0.0, 0.1, 0.1], "duplicate"),
        ([0.0, 0.2, 0.1], "non-monotonic"),
        ([0.0, np.nan, 0.2], "NaN/inf"),
    ],
)
def test_signal_rejects_bad_time(t, msg):
    with pytest.raises(SignalError, match=msg):
        Signal("TOR", np.array(t), np.zeros(3), "N m", source="x.csv")


def test_signal_reports_nan_samples_with_position():
    v = np.array([0.0, 1.0, np.nan, np.inf])
    with pytest.raises(SignalError, match=r"2 NaN/inf sample\(s\), first at index 2") as exc:
        Signal("emg", np.arange(4.0), v, "V", source="lab.csv")
    assert "lab.csv" in str(exc.value)


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"frames": np.zeros((0, 4, 4), np.uint8), "t_s": np.zeros(0)}, "zero frames"),
        ({"frames": np.zeros((2, 4, 4), np.float32), "t_s": np.arange(2.0)}, "uint8"),
        ({"frames": np.zeros((2, 4, 4), np.uint8), "t_s": np.arange(3.0)}, "2 frames but 3"),
    ],
)
def test_recording_rejects_bad_frames(kwargs, msg):
    with pytest.raises(InputError, match=msg):
        Recording(pixel_spacing_mm=None, meta=_meta(), **kwargs)


def test_recording_rejects_bad_spacing_and_target_length():
    f = np.zeros((2, 4, 4), np.uint8)
    with pytest.raises(InputError, match="pixel_spacing_mm"):
        Recording(frames=f, t_s=np.arange(2.0), pixel_spacing_mm=(0.0, 1.0), meta=_meta())
    with pytest.raises(InputError, match="3 values for 2 frames"):
        Recording(
            frames=f,
            t_s=np.arange(2.0),
            pixel_spacing_mm=None,
            meta=_meta(),
            targets={"ankle_moment": Target(np.zeros(3), "N m")},
        )


def test_meta_to_dict_is_plain_and_json_ready():
    import json

    meta = RecordingMeta(participant="p1", trial="t1", knee_angle_deg=0.0, extra={"crop": [1, 2]})
    d = meta.to_dict()
    assert d["participant"] == "p1" and d["extra"] == {"crop": [1, 2]}
    assert json.loads(json.dumps(d)) == d
