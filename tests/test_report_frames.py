"""Example frames of the report: read from the run's dataset with the ROI stage's geometry."""

from __future__ import annotations

import re

import numpy as np
import pytest

from musclestate.dataset import recording_id, write_dataset, write_derived
from musclestate.records import Recording, RecordingMeta, Target
from musclestate.report import load_run, write_report
from musclestate.report.roi_examples import load_roi_examples
from test_report_html import make_fake_run

H, W, T = 96, 120, 12
SUP, DEEP = 20.0, 55.0


def _dataset(path, participants=("P01", "P02", "P03")):
    rng = np.random.default_rng(0)
    recs = []
    for pid in participants:
        frames = rng.integers(0, 60, (T, H, W), dtype=np.uint8)
        frames[:, int(SUP) - 1 : int(SUP) + 2] = 230
        frames[:, int(DEEP) - 1 : int(DEEP) + 2] = 230
        recs.append(
            Recording(
                frames=frames,
                t_s=np.arange(T) / 10.0,
                pixel_spacing_mm=(0.4, 0.4),
                meta=RecordingMeta(participant=pid, trial="track_01"),
                targets={"ankle_angle": Target(np.linspace(0, 10, T), "deg")},
            )
        )
    write_dataset(path, recs)
    per = {}
    for r in recs:
        rid = recording_id(r.meta.participant, r.meta.trial)
        per[rid] = {
            "superficial_row": np.full((T, W), SUP, np.float32),
            "deep_row": np.full((T, W), DEEP, np.float32),
            "superficial_cover": np.ones((T, W), bool),
            "deep_cover": np.ones((T, W), bool),
            "patches": rng.integers(0, 255, (T, 2, 16, 32), dtype=np.uint8),
            "found": np.ones(T, bool),
        }
    write_derived(
        path,
        "roi",
        per,
        {
            "patches": {"height": 16, "width": 32, "margin_mm": 1.0, "mode": "straightened"},
            "geometry": {"sol_depth_mm": 8},
        },
    )
    return {pid: [recording_id(pid, "track_01")] for pid in participants}


def test_examples_carry_geometry_and_patch_outlines_from_the_roi_group(tmp_path):
    recs = _dataset(tmp_path / "ds")
    run = make_fake_run(
        tmp_path / "run", participants=3, frames=T, dataset=str(tmp_path / "ds"), recordings=recs
    )
    examples, note = load_roi_examples(load_run(run), 2)
    assert note == ""
    # Two examples spread over the cohort: first and last participant.
    assert [e.title.split(" ")[0] for e in examples] == ["P01", "P03"]
    for e in examples:
        assert e.frame.shape == (H, W) and e.patches.shape == (2, 16, 32) and e.found
        sup = e.lines["superficial aponeurosis"]
        assert np.allclose(sup[:, 1], SUP) and sup.shape == (W, 2)
        mg, sol = e.outlines["MG patch"], e.outlines["SOL patch"]
        # MG lies between the aponeuroses (1 mm margin = 2.5 rows); SOL spans 8 mm below deep.
        assert np.isclose(mg[:, 1].min(), SUP + 2.5) and np.isclose(mg[:, 1].max(), DEEP - 2.5)
        assert np.isclose(sol[:, 1].min(), DEEP + 2.5) and np.isclose(sol[:, 1].max(), DEEP + 20)


@pytest.mark.slow
def test_report_embeds_the_example_frames(tmp_path):
    recs = _dataset(tmp_path / "ds", participants=("P01", "P02"))
    run = make_fake_run(
        tmp_path / "run", participants=2, frames=T, dataset="../ds", recordings=recs
    )
    html = write_report(run).read_text(encoding="utf-8")
    frames_section = html[html.index("id=frames") : html.index("id=config")]
    assert "note" not in frames_section
    assert len(re.findall(r'src="data:image/png;base64,', frames_section)) == 1


@pytest.mark.slow
def test_report_says_when_the_dataset_has_no_roi(tmp_path):
    recs = _dataset(tmp_path / "ds", participants=("P01", "P02"))
    (tmp_path / "ds" / "derived" / "roi.h5").unlink()
    run = make_fake_run(
        tmp_path / "run", participants=2, frames=T, dataset=str(tmp_path / "ds"), recordings=recs
    )
    html = write_report(run).read_text(encoding="utf-8")
    frames_section = html[html.index("id=frames") : html.index("id=config")]
    assert "has no ROI results" in frames_section
    assert len(re.findall(r'src="data:image/png;base64,', frames_section)) == 1
