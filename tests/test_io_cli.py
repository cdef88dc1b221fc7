"""`musclestate probe`: media and signal files summarised as the readers see them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from musclestate.cli import app
from musclestate.errors import MediaError
from musclestate.io import probe
from musclestate.io.video import write_video


def test_probe_video_and_signals(tmp_path: Path) -> None:
    frames = np.repeat(np.random.default_rng(0).integers(0, 256, (4, 16, 24), np.uint8), 2, 0)
    video = write_video(tmp_path / "v.mp4", frames, 20.0)
    runner = CliRunner()
    res = runner.invoke(app, ["probe", str(video), "--crop", "2", "2", "20", "10", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["kind"] == "video" and info["frames"] == 8 and info["frame_shape"] == [10, 20]
    assert info["repeated_frames"] == 4 and info["time_source"] == "container:pts"
    assert abs(info["fps"] - 20.0) < 1e-6
    text = runner.invoke(app, ["probe", str(video)])
    assert text.exit_code == 0 and "8 frames of 24x16 px" in text.output

    csv = tmp_path / "s.csv"
    csv.write_text("time,moment [N m]\n0,1\n0.01,2\n0.02,3\n")
    res = runner.invoke(app, ["probe", str(csv), "--json"])
    assert res.exit_code == 0, res.output
    ch = json.loads(res.output)["channels"]
    assert ch[0]["name"] == "moment" and ch[0]["unit"] == "N m" and ch[0]["samples"] == 3
    assert abs(ch[0]["rate_hz"] - 100.0) < 1e-6


def test_probe_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not found"):
        probe(tmp_path / "nothing.mp4")


def test_probe_of_an_image_folder_without_a_rate_says_how_to_give_one(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / f"f{i}.png")
    res = CliRunner().invoke(app, ["probe", str(folder)])
    assert isinstance(res.exception, MediaError)
    assert "folder of 3 images; give the rate" in str(res.exception)
    res = CliRunner().invoke(app, ["probe", str(folder), "--fps", "20"])
    assert res.exit_code == 0, res.output
    assert "3 frames of 8x8 px" in res.output
