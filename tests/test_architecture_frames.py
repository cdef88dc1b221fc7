"""Per-frame architecture table (``musclestate architecture measure``) and its smoother."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from musclestate.architecture.frames import (
    COLUMNS,
    FrameSettings,
    frame_row,
    kalman_smooth,
)
from musclestate.architecture.measure import measure_image


def test_frame_row_geometry_in_mm(synthetic_muscle) -> None:
    """Fascicle at -20 deg between flat aponeuroses 200 rows apart, 0.1 mm pixels: pennation
    20 deg, thickness ~19.1 mm, fascicle length = distance between lines / sin(20 deg)."""
    img, prob = synthetic_muscle(-20.0, w=600)
    m = measure_image(img, prob)
    row = frame_row(img, m, (0.1, 0.1), FrameSettings())
    assert set(row) == set(COLUMNS)
    assert row["mg_pennation_deg"] == pytest.approx(20.0, abs=1.0)
    assert row["mg_fascicle_to_superficial_deg"] == pytest.approx(20.0, abs=1.0)
    assert row["mg_thickness_mm"] == pytest.approx(19.1, abs=0.4)
    expected = 20.0 / np.sin(np.radians(abs(m.fascicle_angle_deg)))
    assert row["mg_fascicle_length_mm"] == pytest.approx(expected, rel=0.02)
    # 58 mm of fascicle spans 55 mm of width: inside a 60 mm wide image
    assert row["mg_fascicle_length_extrapolated"] == 0.0


def test_fascicle_leaving_the_image_is_flagged(synthetic_muscle) -> None:
    img, prob = synthetic_muscle(-14.0, w=300)
    row = frame_row(img, measure_image(img, prob), None, FrameSettings())
    assert row["mg_fascicle_length_extrapolated"] == 1.0


def test_kalman_smoother_reduces_noise_and_keeps_a_ramp() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(200) / 50.0
    truth = 20 + 5 * t  # deg, rising over 4 s
    z = truth + rng.normal(0, 1.0, t.size)
    z[50] = np.nan  # a missed frame
    s = kalman_smooth(t, z, np.ones_like(t), process_sd_per_s=2.0)
    ok = np.isfinite(z)
    assert np.sqrt(np.mean((s - truth) ** 2)) < 0.6 * np.sqrt(np.mean((z[ok] - truth[ok]) ** 2))
    assert abs(np.mean(s - truth)) < 0.2  # no lag bias: anchored to every frame
    assert np.isfinite(s[50])


def test_measure_cli_on_image_folder(tmp_path: Path, synthetic_muscle) -> None:
    from PIL import Image

    from musclestate.cli import app

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, angle in enumerate((-18.0, -20.0, -22.0)):
        Image.fromarray(synthetic_muscle(angle, seed=i)[0]).save(folder / f"f{i:02d}.png")
    out = tmp_path / "table.csv"
    res = CliRunner().invoke(
        app,
        [
            "architecture",
            "measure",
            str(folder),
            "--out",
            str(out),
            "--fps",
            "10",
            "--overlay",
            str(tmp_path / "o.png"),
        ],
    )
    assert res.exit_code == 0, res.output
    header = out.read_text().splitlines()[0].split(",")
    assert header[:2] == ["frame", "t_s"] and set(COLUMNS) <= set(header)
    side = json.loads((tmp_path / "table.csv.json").read_text())
    assert side["columns"]["mg_thickness_mm"] == "px"  # no spacing known
    assert side["n_frames"] == 3
    assert (tmp_path / "o.png").is_file()
