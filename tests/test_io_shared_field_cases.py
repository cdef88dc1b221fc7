"""The field cases in ../shared/field-cases behave as their README says, through ``probe``,
``import`` (where the case has a manifest) and ``roi show``.

The files are read in place (never copied); the project's own fixtures of each kind are in
test_io_field_inputs.py. Skipped where the folder is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from musclestate.cli import app
from musclestate.dataset import open_dataset
from musclestate.errors import MediaError

CASES = Path(__file__).resolve().parents[1].parent / "shared" / "field-cases"
pytestmark = pytest.mark.skipif(not CASES.is_dir(), reason=f"no field cases at {CASES}")


def probe(*args: str) -> dict:
    res = CliRunner().invoke(app, ["probe", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def roi_show(tmp_path: Path, *args: str) -> None:
    res = CliRunner().invoke(app, ["roi", "show", *args, "--out", str(tmp_path / "o.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o.png").is_file()


def test_01_edit_list_trim(tmp_path: Path) -> None:
    path = str(CASES / "01-mp4-editlist-trim" / "trimmed.mp4")
    info = probe(path)
    assert info["frames"] == 20 and info["corrections"]["container_frames"] == 30
    assert info["duration_s"] == pytest.approx(19 / 25)
    roi_show(tmp_path, path)


def test_04_rotation(tmp_path: Path) -> None:
    path = str(CASES / "04-mp4-rotation-metadata" / "portrait.mp4")
    info = probe(path)
    assert info["frame_shape"] == [128, 96]  # 96x128 (WxH), as players show it
    assert info["corrections"]["rotation_deg"] in (90, 270)
    roi_show(tmp_path, path)


def test_07_dual_view_regions(tmp_path: Path) -> None:
    path = str(CASES / "07-dicom-two-us-regions" / "dual_view.dcm")
    info = probe(path)
    assert info["pixel_spacing_mm"] is None and "Give a crop" in info["problem"]
    assert [r["spacing_mm"][0] for r in info["corrections"]["us_regions"]] == [0.4, 0.2]
    left = probe(path, "--crop", "0", "10", "63", "71")
    right = probe(path, "--crop", "65", "0", "63", "96")
    assert left["pixel_spacing_mm"] == [0.4, 0.4] and right["pixel_spacing_mm"] == [0.2, 0.2]
    res = CliRunner().invoke(app, ["roi", "show", path, "--out", str(tmp_path / "o.png")])
    assert isinstance(res.exception, MediaError) and "0.4 x 0.4 mm/px" in str(res.exception)
    roi_show(tmp_path, path, "--crop", "65", "0", "63", "96")


def test_09_tiff16_12_bit(tmp_path: Path) -> None:
    folder = CASES / "09-tiff16-12bit-folder" / "frames"
    info = probe(str(folder), "--fps", "10")
    assert info["corrections"]["bit_depth"] == 12
    roi_show(tmp_path, str(folder), "--fps", "10")
    roi_show(tmp_path, str(folder / "frame_000.tif"))


def test_10_multipage_stack(tmp_path: Path) -> None:
    path = CASES / "10-tiff-multipage-stack" / "cine_stack.tif"
    res = CliRunner().invoke(app, ["probe", str(path)])
    assert isinstance(res.exception, MediaError) and "stack of 8 pages" in str(res.exception)
    info = probe(str(path), "--fps", "20")
    assert info["frames"] == 8 and info["fps"] == pytest.approx(20)
    roi_show(tmp_path, str(path), "--fps", "20")
    res = CliRunner().invoke(app, ["probe", str(path.parent / "folder"), "--fps", "20"])
    assert isinstance(res.exception, MediaError) and "give the file itself" in str(res.exception)


def test_11_decimal_comma(tmp_path: Path) -> None:
    case = CASES / "11-csv-decimal-comma"
    info = probe(str(case / "daq.csv"))
    assert info["notes"]["decimal"] == "," and [c["name"] for c in info["channels"]] == [
        "angle",
        "moment",
    ]
    res = CliRunner().invoke(
        app, ["import", str(case / "manifest.toml"), "--out", str(tmp_path / "d")]
    )
    assert res.exit_code == 0, res.output
    ds = open_dataset(tmp_path / "d")
    prov = ds.recordings[0].meta["extra"]["provenance"]
    assert next(iter(prov["signal_notes"].values()))["decimal"] == ","


def test_13_preamble_and_units_row() -> None:
    case = CASES / "13-csv-preamble-units-row"
    pre = probe(str(case / "emg_preamble.csv"))
    assert pre["notes"]["preamble_lines"] >= 3 and len(pre["channels"]) == 2
    units = probe(str(case / "emg_unitsrow.csv"))
    assert [c["unit"] for c in units["channels"]] == ["mV", "mV"]


def test_15_mat_channels_by_samples(tmp_path: Path) -> None:
    case = CASES / "15-mat-channels-by-samples"
    info = probe(str(case / "daq.mat"), "--mat-group", "daq")
    assert {"emg_0", "emg_1"} <= {c["name"] for c in info["channels"]}
    res = CliRunner().invoke(
        app, ["import", str(case / "manifest.toml"), "--out", str(tmp_path / "d")]
    )
    assert res.exit_code == 0, res.output
