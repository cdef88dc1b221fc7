"""Dataset store: write in-memory recordings, read them back, derived groups, atomicity."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from musclestate.dataset import open_dataset, write_dataset, write_derived
from musclestate.errors import DatasetError, InputError
from musclestate.records import Recording, RecordingMeta, Signal, Target


def make_recording(participant: str, trial: str, n: int = 12, shape=(16, 20), seed: int = 0):
    rng = np.random.default_rng(seed)
    t = 2.0 + np.arange(n) / 25.0
    daq_t = np.arange(0, 4, 0.01)
    return Recording(
        frames=rng.integers(0, 256, (n, *shape), dtype=np.uint8),
        t_s=t,
        pixel_spacing_mm=(0.1, 0.12),
        meta=RecordingMeta(participant, trial, task="tracking", source=f"{trial}.mp4"),
        signals={"angle": Signal("angle", daq_t, np.sin(daq_t), "deg", "dyn.csv")},
        targets={
            "ankle_angle": Target(np.sin(t), "deg"),
            "ankle_moment": Target(10 * rng.random(n) + seed, "N m"),
        },
    )


@pytest.fixture()
def recs() -> list[Recording]:
    return [
        make_recording("P01", "a", seed=1),
        make_recording("P01", "b", n=7, seed=2),
        make_recording("P02", "a", n=9, seed=3),
    ]


def test_round_trip(tmp_path: Path, recs: list[Recording]) -> None:
    out = write_dataset(tmp_path / "ds", recs)
    ds = open_dataset(out)
    assert [r.id for r in ds.recordings] == ["P01-a", "P01-b", "P02-a"]
    assert ds.participants == ("P01", "P02")
    assert ds.target_units == {"ankle_angle": "deg", "ankle_moment": "N m"}
    for rec, info in zip(recs, ds.recordings, strict=True):
        assert info.n_frames == rec.n_frames and info.frame_shape == (16, 20)
        assert info.pixel_spacing_mm == (0.1, 0.12)
        assert info.meta["task"] == "tracking"
        np.testing.assert_array_equal(ds.frames(info.id), rec.frames)
        np.testing.assert_array_equal(ds.frame_times(info.id), rec.t_s)
        for k, v in ds.targets(info.id).items():
            np.testing.assert_array_equal(v, rec.targets[k].values)
        back = ds.recording(info.id)
        np.testing.assert_array_equal(back.signals["angle"].values, rec.signals["angle"].values)
        assert back.meta == rec.meta
    # random access in any order, repeats, ints, slices
    idx = np.array([5, 0, 5, 11])
    np.testing.assert_array_equal(ds.frames("P01-a", idx), recs[0].frames[idx])
    assert ds.frames("P01-a", 3).shape == (1, 16, 20)
    np.testing.assert_array_equal(ds.frames("P01-a", slice(2, 4)), recs[0].frames[2:4])
    with pytest.raises(DatasetError, match="no recording 'P09-a'"):
        ds.frames("P09-a")


def test_summary_and_manifest_are_readable(tmp_path: Path, recs: list[Recording]) -> None:
    out = write_dataset(tmp_path / "ds", recs)
    s = open_dataset(out).summary()
    assert s["recordings"] == 3 and s["participants"] == 2 and s["frames"] == 12 + 7 + 9
    assert s["frame_shape"] == [16, 20]
    moments = np.concatenate([r.targets["ankle_moment"].values for r in recs])
    assert s["targets"]["ankle_moment"] == {
        "unit": "N m",
        "min": pytest.approx(moments.min()),
        "max": pytest.approx(moments.max()),
    }
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["recordings"][0]["provenance"]["source"] == "a.mp4"
    json.dumps(s)  # one JSON object


def test_frame_shape_none_when_shapes_differ(tmp_path: Path) -> None:
    out = write_dataset(
        tmp_path / "ds", [make_recording("P1", "a"), make_recording("P1", "b", shape=(8, 8))]
    )
    assert open_dataset(out).summary()["frame_shape"] is None


def test_interrupted_write_leaves_nothing(tmp_path: Path, recs: list[Recording]) -> None:
    def failing() -> Iterator[Recording]:
        yield recs[0]
        raise InputError("decoder died", "b.mp4")

    with pytest.raises(InputError, match="decoder died"):
        write_dataset(tmp_path / "ds", failing())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DatasetError, match="not found"):
        open_dataset(tmp_path / "ds")


def test_existing_and_duplicate(tmp_path: Path, recs: list[Recording]) -> None:
    out = write_dataset(tmp_path / "ds", recs[:1])
    with pytest.raises(DatasetError, match="already exists"):
        write_dataset(out, recs)
    write_dataset(out, recs, overwrite=True)
    assert len(open_dataset(out).recordings) == 3
    with pytest.raises(InputError, match="used twice"):
        write_dataset(tmp_path / "dup", [recs[0], recs[0]])
    assert not (tmp_path / "dup").exists()


def test_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(DatasetError, match="not a musclestate dataset"):
        open_dataset(tmp_path / "x")
    (tmp_path / "x" / "manifest.json").write_text("{oops")
    with pytest.raises(DatasetError, match="cannot read dataset manifest"):
        open_dataset(tmp_path / "x")


def test_derived_group(tmp_path: Path, recs: list[Recording]) -> None:
    out = write_dataset(tmp_path / "ds", recs)
    ds = open_dataset(out)
    assert not ds.has_derived("roi")
    with pytest.raises(DatasetError, match="no derived group 'roi'"):
        ds.derived("roi")
    per = {
        r.id: {
            "patches": np.full((r.n_frames, 2, 4, 5), i, np.uint8),
            "found": np.arange(r.n_frames) % 2 == 0,
        }
        for i, r in enumerate(ds.recordings)
    }
    write_derived(out, "roi", per, {"patch_size": [4, 5]})
    ds = open_dataset(out)
    assert ds.has_derived("roi")
    g = ds.derived("roi")
    assert g.attrs == {"patch_size": [4, 5]}
    np.testing.assert_array_equal(g.get("P01-b", "patches"), per["P01-b"]["patches"])
    np.testing.assert_array_equal(g.get("P02-a", "found", [3, 1]), [False, False])
    with pytest.raises(DatasetError, match="available"):
        g.get("P02-a", "nope")
    with pytest.raises(InputError, match="unknown recording"):
        write_derived(out, "roi", {"P77-x": {"a": np.zeros(3)}}, {})


def test_dataset_pickles_for_workers(tmp_path: Path, recs: list[Recording]) -> None:
    ds = open_dataset(write_dataset(tmp_path / "ds", recs))
    ds.frames("P01-a", 0)  # opens the file
    ds2 = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(ds2.frames("P02-a", 4), recs[2].frames[4:5])


def test_metadata_must_be_json(tmp_path: Path) -> None:
    meta = RecordingMeta("P1", "a", extra={"gain": float("nan"), "idx": np.arange(3)})
    rec = Recording(np.zeros((2, 4, 4), np.uint8), np.array([0.0, 0.1]), None, meta)
    info = open_dataset(write_dataset(tmp_path / "ds", [rec])).recordings[0]
    assert info.meta["extra"] == {"gain": None, "idx": [0, 1, 2]}
    bad = rec.replace(meta=RecordingMeta("P1", "a", extra={"x": object()}))
    with pytest.raises(InputError, match="not JSON-serialisable"):
        write_dataset(tmp_path / "ds2", [bad])
    assert not (tmp_path / "ds2").exists()


def test_content_hash_identifies_the_content_not_the_place(
    tmp_path: Path, recs: list[Recording]
) -> None:
    import shutil

    a = open_dataset(write_dataset(tmp_path / "a", recs))
    again = open_dataset(write_dataset(tmp_path / "b", recs))  # written anew, another day
    moved = open_dataset(shutil.copytree(tmp_path / "a", tmp_path / "c"))
    assert a.content_sha256 == again.content_sha256 == moved.content_sha256
    changed = [make_recording("P01", "a", seed=1), make_recording("P01", "b", n=7, seed=2),
               make_recording("P02", "a", n=9, seed=4)]  # fmt: skip
    assert open_dataset(write_dataset(tmp_path / "d", changed)).content_sha256 != a.content_sha256
    assert all(len(r["sha256"]) == 64 for r in a.manifest["recordings"])
