"""The ROI step over recordings and datasets, on synthetic frames, the phantom and real images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from musclestate.errors import ConfigError, DatasetError, InputError
from musclestate.roi.architecture import FEATURE_NAMES
from musclestate.roi.patches import PatchConfig
from musclestate.roi.pipeline import ROIConfig, process_frames

H, W = 96, 128


class ThresholdSegmenter:
    """Stands in for the network: bright pixels are aponeurosis."""

    def predict(self, frames: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
        return (np.asarray(frames) > 200).astype(np.float32)


def banded_frames(deep_rows: list[float | None], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = rng.integers(20, 120, (len(deep_rows), H, W)).astype(np.uint8)
    for t, deep in enumerate(deep_rows):
        out[t, 18:21] = 240
        if deep is not None:
            out[t, int(deep) : int(deep) + 3] = 240
    return out


def test_every_kth_frame_is_segmented_and_the_rest_interpolated() -> None:
    deeps = [50.0 + t for t in range(9)]
    calls = []
    res = process_frames(
        banded_frames(deeps), (0.3, 0.3), ThresholdSegmenter(), ROIConfig(every=3),
        progress=lambda e: calls.append((e.stage, e.done, e.total)),
    )  # fmt: skip
    assert res.patches.shape == (9, 2, 64, 128) and res.patches.dtype == np.uint8
    assert res.features.shape == (9, len(FEATURE_NAMES))
    assert res.found.all()
    assert res.interpolated.tolist() == [False, True, True, False, True, True, False, True, False]
    deep = np.array([g.deep_row[64] for g in res.geometries])
    np.testing.assert_allclose(deep, np.array(deeps) + 1, atol=1.0)
    assert calls[-1] == ("roi", 18, 18)
    arrays = res.arrays()
    assert arrays["superficial_row"].shape == (9, W) and arrays["band_halfwidth"].shape == (9, 2)


def test_without_patches_the_geometry_and_measures_are_unchanged() -> None:
    frames = banded_frames([50.0 + t for t in range(6)] + [None])
    args = ((0.3, 0.3), ThresholdSegmenter(), ROIConfig(every=2, max_gap=0))
    full = process_frames(frames, *args)
    bare = process_frames(frames, *args, with_patches=False)
    assert bare.patches.shape == (7, 0, 64, 128) and full.patches.shape == (7, 2, 64, 128)
    assert full.patches[:6].any()  # the full run did cut patches
    np.testing.assert_array_equal(bare.features, full.features)
    assert bare.found.tolist() == full.found.tolist()
    assert full.found[:5].all() and not full.found[-1]  # found and missing frames both covered
    np.testing.assert_array_equal(bare.arrays()["deep_row"], full.arrays()["deep_row"])


def test_missing_muscle_is_flagged_and_only_short_gaps_are_bridged() -> None:
    deeps = [60.0, 60.0, None, 60.0, 60.0]
    res = process_frames(banded_frames(deeps), (0.3, 0.3), ThresholdSegmenter(),
                         ROIConfig(max_gap=0, smooth_window=1))  # fmt: skip
    assert res.found.tolist() == [True, True, False, True, True]
    assert (res.patches[2] == 0).all() and np.isnan(res.features[2]).all()
    bridged = process_frames(banded_frames(deeps), (0.3, 0.3), ThresholdSegmenter(),
                             ROIConfig(max_gap=1, smooth_window=1))  # fmt: skip
    assert bridged.found.all() and bridged.interpolated.tolist() == [
        False,
        False,
        True,
        False,
        False,
    ]


def test_config_validation_and_round_trip() -> None:
    with pytest.raises(ConfigError):
        ROIConfig(every=0)
    with pytest.raises(ConfigError):
        ROIConfig(smooth_window=4)
    with pytest.raises(ConfigError, match="unknown ROI setting"):
        ROIConfig.from_dict({"evry": 2})
    cfg = ROIConfig(every=2, max_gap=3)
    assert ROIConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(InputError, match="pixel spacing"):
        process_frames(banded_frames([60.0]), None, ThresholdSegmenter())


def test_roi_attrs_record_the_settings_and_the_package_version() -> None:
    from musclestate import __version__
    from musclestate.roi.pipeline import roi_attrs, roi_config_from_attrs

    cfg = ROIConfig(every=3, max_gap=2)
    attrs = json.loads(json.dumps(roi_attrs(cfg)))
    assert attrs["musclestate_version"] == __version__
    assert roi_config_from_attrs(attrs) == cfg


@pytest.fixture(scope="module")
def phantom_dataset(phantom_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from musclestate.dataset import import_manifest

    return import_manifest(phantom_cohort, tmp_path_factory.mktemp("roi") / "ds")


def read_truth(path: Path) -> dict[str, np.ndarray]:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


@pytest.mark.slow
def test_apply_roi_on_the_phantom_against_its_truth(
    phantom_cohort: Path, phantom_dataset: Path
) -> None:
    import musclestate
    from musclestate.dataset import open_dataset
    from musclestate.roi import apply_roi

    seen = []
    apply_roi(
        phantom_dataset, ROIConfig(every=2), progress=lambda e: seen.append((e.done, e.total))
    )
    ds = open_dataset(phantom_dataset)
    group = ds.derived("roi")
    assert group.attrs["feature_names"] == list(FEATURE_NAMES)
    assert group.attrs["every"] == 2 and group.attrs["patches"]["height"] == 64
    assert group.attrs["musclestate_version"] == musclestate.__version__
    assert seen[-1][0] == seen[-1][1] == sum(r.n_frames for r in ds.recordings)
    pen_err, thick_err, found = [], [], []
    for info in ds.recordings:
        patches = group.get(info.id, "patches")
        assert patches.shape == (info.n_frames, 2, 64, 128) and patches.dtype == np.uint8
        ok = group.get(info.id, "found")
        found.append(ok.mean())
        f = group.get(info.id, "features")
        truth = read_truth(phantom_cohort.parent / info.participant / info.trial / "truth.csv")
        pen = f[:, FEATURE_NAMES.index("pennation_deg")]
        thick = f[:, FEATURE_NAMES.index("mg_thickness_mm")]
        pen_err += list(np.abs(pen - truth["mg_pennation [deg]"])[ok])
        thick_err += list(np.abs(thick - truth["mg_thickness [mm]"])[ok])
    assert np.mean(found) > 0.95
    assert np.nanmean(thick_err) < 1.0, f"thickness MAE {np.nanmean(thick_err):.2f} mm"
    assert np.nanmean(pen_err) < 6.0, f"pennation MAE {np.nanmean(pen_err):.1f} deg"


@pytest.mark.slow
def test_roi_apply_cli_with_manual_rois(phantom_dataset: Path, tmp_path: Path) -> None:
    from musclestate.cli import app
    from musclestate.dataset import open_dataset

    ds = open_dataset(phantom_dataset)
    manual = {r.id: {"rect": [8, 30, 110, 40]} for r in ds.recordings}
    path = tmp_path / "manual.json"
    path.write_text(json.dumps(manual))
    res = CliRunner().invoke(app, ["roi", "apply", str(phantom_dataset), "--manual", str(path),
                                   "--patch-size", "16", "32"])  # fmt: skip
    assert res.exit_code == 0, res.output
    group = open_dataset(phantom_dataset).derived("roi")
    rid = ds.recordings[0].id
    assert group.get(rid, "found").all()
    assert group.get(rid, "patches").shape[1:] == (2, 16, 32)
    assert group.attrs["manual"][rid]["polygon"][0] == [8.0, 30.0]


@pytest.mark.slow
def test_roi_show_png_on_a_real_image_and_mp4_on_a_video(
    dltrack_dir: Path, phantom_cohort: Path, tmp_path: Path
) -> None:
    from PIL import Image

    from musclestate.cli import app

    png = tmp_path / "o.png"
    image = dltrack_dir / "images" / "img_00050.png"
    res = CliRunner().invoke(
        app, ["roi", "show", str(image), "--out", str(png), "--depth-mm", "60"]
    )
    assert res.exit_code == 0, res.output
    with Image.open(png) as im, Image.open(image) as src:
        assert im.mode == "RGB" and im.size == src.size
    video = next(phantom_cohort.parent.glob("P01/track_01/video.mp4"))
    mp4 = tmp_path / "o.mp4"
    args = ["roi", "show", str(video), "--out", str(mp4), "--max-frames", "6"]
    res = CliRunner().invoke(app, [*args, "--spacing-mm", "0.3", "0.3"])
    assert res.exit_code == 0, res.output
    from musclestate.io.video import read_video

    assert read_video(mp4).frames.shape[0] == 6
    bad = CliRunner().invoke(app, ["roi", "show", str(image), "--out", str(tmp_path / "o.gif")])
    assert bad.exit_code != 0


@pytest.mark.slow
def test_roi_apply_again_reuses_the_stored_settings(phantom_dataset: Path, tmp_path: Path) -> None:
    from musclestate.cli import app
    from musclestate.roi import apply_roi
    from musclestate.roi.pipeline import stored_roi_config

    cfg = ROIConfig(every=4, patches=PatchConfig(16, 32, mode="straightened"))
    apply_roi(phantom_dataset, cfg)
    assert stored_roi_config(phantom_dataset) == cfg
    for every in ("2", "1"):  # any given option, even at its default value
        bad = CliRunner().invoke(
            app, ["roi", "apply", str(phantom_dataset), "--again", "--every", every]
        )
        assert isinstance(bad.exception, ConfigError), bad.output
        assert "no other ROI options" in str(bad.exception)
    res = CliRunner().invoke(app, ["roi", "apply", str(phantom_dataset), "--again"])
    assert res.exit_code == 0, res.output
    assert stored_roi_config(phantom_dataset) == cfg  # not the command line's defaults
    with pytest.raises(DatasetError, match="no derived 'roi' group"):
        stored_roi_config(_copy_without_roi(phantom_dataset, tmp_path / "bare"))


def _copy_without_roi(dataset: Path, out: Path) -> Path:
    import shutil

    shutil.copytree(dataset, out, ignore=shutil.ignore_patterns("derived"))
    return out
