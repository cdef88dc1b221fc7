"""Prediction with a real (tiny, untrained) estimator bundle and the real ROI code.

The aponeurosis network is replaced by a stand-in that marks bright pixels (the synthetic frames
draw the two aponeuroses as bright lines), so geometry, patches, architecture measures, the
bundle, ONNX export and the CLI all run for real on data whose answer is known.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import musclestate.inference.loader as loader
from musclestate.errors import BundleError
from musclestate.inference import ArraySource, PredictorConfig, load_predictor, read_csv
from musclestate.inference.export import (
    TOLERANCE,
    OnnxEstimator,
    OnnxSegmenter,
    export_onnx,
    read_onnx_metadata,
)
from musclestate.inference.roi_stage import phase_shift, shift_geometry

SPACING = (0.3, 0.3)


def band_frames(
    n: int = 40, h: int = 96, w: int = 128, seed: int = 0, dark=(), deep: float = 60.0
) -> np.ndarray:
    """Speckle-like noise with a superficial (row ~20) and deep (row ~``deep``) bright line that
    bob up and down by 3 px over 20 frames; frames in ``dark`` are black (no muscle)."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(20, 120, size=(n, h, w)).astype(np.uint8)
    cols = np.arange(w)
    for t in range(n):
        off = 3 * np.sin(2 * np.pi * t / 20)
        for line in (20 + off + 0.05 * cols, deep + off + 0.1 * cols):
            for dr in (-1, 0, 1):
                frames[t, np.clip(np.rint(line + dr).astype(int), 0, h - 1), cols] = 230
    for t in dark:
        frames[t] = 0
    return frames


class BandSegmenter:
    """Stand-in for the U-Net: pixels brighter than 200 are aponeurosis."""

    def __init__(self) -> None:
        from musclestate.roi.segment import NetworkConfig, SegmenterCard

        self.config = NetworkConfig(input_size=64, channels=(4, 8), strides=(2,))
        self.card = SegmenterCard(network=self.config)
        self.calls = 0

    def predict(self, frames: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
        self.calls += 1
        return (np.asarray(frames) > 200).astype(np.float32)


def make_bundle(
    out: Path,
    context: int = 0,
    training: dict | None = None,
    roi_model: str | None = "stub",
    members: int = 1,
    input_kind: str = "patches",
    fused: bool = False,
) -> Path:
    from musclestate.models.bundle import make_card, save_bundle
    from musclestate.models.card import TrainingRecord
    from musclestate.models.networks import build_network
    from musclestate.roi.patches import PatchConfig
    from musclestate.roi.pipeline import ROIConfig, roi_attrs

    torch.manual_seed(0)
    c = (2 if input_kind == "patches" else 1) * (2 * context + 1)
    roi = (
        roi_attrs(ROIConfig(model=roi_model, patches=PatchConfig(16, 32)))
        if roi_model != "none"
        else {}
    )
    names = tuple(roi.get("feature_names", ())) if fused else ()
    net = build_network("compact_resnet", c, 2, {"widths": [8, 16]}, members=members,
                        n_features=len(names))  # fmt: skip
    if fused:
        with torch.no_grad():
            net.feature_head.weight.normal_(0, 0.5)
        net.set_feature_norm(np.full(len(names), 10.0), np.full(len(names), 5.0))
    card = make_card(
        feature_inputs=names,
        members=members,
        network="compact_resnet",
        network_params={"widths": [8, 16]},
        in_channels=c,
        input_kind=input_kind,
        context=context,
        image_size=(16, 32),
        targets={"ankle_angle": "deg", "mg_activation": "%MVC"},
        mean=np.array([5.0, 20.0]),
        sd=np.array([10.0, 15.0]),
        sd_scale=np.array([1.0, 1.0]),
        roi=roi,
        training=TrainingRecord.from_dict({"participants": ["P01"], **(training or {})}),
    )
    return save_bundle(out, net.state_dict(), card)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle") / "b")


@pytest.fixture
def stub_segmenter(monkeypatch: pytest.MonkeyPatch) -> BandSegmenter:
    seg = BandSegmenter()
    monkeypatch.setattr(loader, "_segmenter", lambda path, model: seg)
    return seg


def test_bad_bundles_are_refused(tmp_path: Path, bundle: Path) -> None:
    with pytest.raises(BundleError, match="bundle folder"):
        load_predictor(tmp_path / "nothing.safetensors")
    (tmp_path / "b2").mkdir()
    for name in ("card.json", "model.safetensors"):
        (tmp_path / "b2" / name).write_bytes((bundle / name).read_bytes())
    card = json.loads((bundle / "card.json").read_text())
    (tmp_path / "b2" / "card.json").write_text(json.dumps(card | {"format_version": 99}))
    with pytest.raises(BundleError, match="format_version 99"):
        load_predictor(tmp_path / "b2")


@pytest.mark.parametrize("with_roi", [True, False])
@pytest.mark.slow
def test_whole_frame_bundles_estimate_every_frame_from_the_frame(
    tmp_path: Path, stub_segmenter: BandSegmenter, with_roi: bool
) -> None:
    from musclestate.models.bundle import load_bundle

    b = make_bundle(tmp_path / "fr", input_kind="frame", roi_model="stub" if with_roi else "none")
    f = band_frames(30, dark=range(10, 18))
    src = ArraySource(f, np.arange(30) / 25.0, pixel_spacing_mm=SPACING)
    for backend in ("torch", "onnx"):
        pred = load_predictor(b, config=PredictorConfig(roi_every=1, backend=backend))
        est = pred.run(src).estimates
        ref = load_bundle(b).predict(f[:, None])  # the frame itself, resized inside
        for k in ("ankle_angle", "mg_activation"):
            np.testing.assert_allclose(est.mean[k], ref[k][0], atol=TOLERANCE[0], rtol=1e-3)
        # the muscle is still looked for (measures, novelty, overlay) but does not gate
        assert est.roi_found.tolist() == ([not 10 <= i < 18 for i in range(30)] if with_roi
                                          else [True] * 30)  # fmt: skip
        assert ("mg_thickness_mm" in est.features) == with_roi
        assert pred.info["input"] == "frame" and (pred.info["roi"] is None) != with_roi
        if with_roi:  # the frame is the input: the ROI stage cuts no patches
            assert pred.roi.inner.with_patches is False
        live = pred.step(f[3], pixel_spacing_mm=SPACING)
        assert np.isfinite(live.mean["ankle_angle"]).all()


@pytest.mark.slow
def test_offline_run_flags_missing_muscle_and_measures_geometry(
    bundle: Path, stub_segmenter: BandSegmenter
) -> None:
    pred = load_predictor(bundle, config=PredictorConfig(roi_every=1))
    f = band_frames(60, dark=range(30, 38))  # 8 dark frames: longer than the bridged gap (5)
    est = pred.run(ArraySource(f, np.arange(60) / 25.0, pixel_spacing_mm=SPACING)).estimates
    assert est.roi_found.tolist() == [not 30 <= i < 38 for i in range(60)]
    assert np.isnan(est.mean["ankle_angle"][~est.roi_found]).all()
    assert np.isfinite(est.mean["ankle_angle"][est.roi_found]).all()
    assert (est.sd["mg_activation"][est.roi_found] > 0).all()
    # MG thickness: the lines lie 40 to 46 rows apart (0.3 mm/row) and move together
    th = est.features["mg_thickness_mm"][est.roi_found]
    assert np.all((th > 0.3 * 40 * 0.98) & (th < 0.3 * 46.4)) and th.std() < 0.1
    assert est.units == {"ankle_angle": "deg", "mg_activation": "%MVC"}
    assert (
        pred.info["sha256"] and pred.info["out_of_range_rule"] == "targets: training mean +- 3 SD"
    )


@pytest.mark.slow
def test_chunked_run_equals_one_pass_over_the_recording(
    bundle: Path, stub_segmenter: BandSegmenter
) -> None:
    pred = load_predictor(bundle, config=PredictorConfig(roi_every=2, batch_size=7))
    pred.roi.chunk = 16  # several chunks with overlap
    f = band_frames(75, dark=range(40, 42))
    chunked = pred.run(ArraySource(f, np.arange(75) / 25.0, pixel_spacing_mm=SPACING)).estimates
    whole = pred.predict_frames(f, pixel_spacing_mm=SPACING, t_s=np.arange(75) / 25.0).estimates
    np.testing.assert_array_equal(chunked.frame, np.arange(75))
    np.testing.assert_array_equal(chunked.roi_found, whole.roi_found)
    for k in whole.targets:
        np.testing.assert_allclose(chunked.mean[k], whole.mean[k], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        chunked.features["mg_thickness_mm"], whole.features["mg_thickness_mm"], atol=1e-5
    )


def test_live_step_tracks_between_segmented_frames(
    bundle: Path, stub_segmenter: BandSegmenter
) -> None:
    pred = load_predictor(bundle, config=PredictorConfig(roi_every=4, live_async=False))
    f = band_frames(12)
    rows = [pred.step(f[i], t_s=i / 25, index=i, pixel_spacing_mm=SPACING) for i in range(12)]
    assert stub_segmenter.calls == 3  # frames 0, 4, 8
    assert all(r.roi_found[0] for r in rows)
    th = np.array([r.features["mg_thickness_mm"][0] for r in rows])
    assert np.all(np.abs(th - th[0]) < 0.5)
    assert len(pred.last_outlines) == 3


def test_live_async_segments_in_the_background(bundle: Path, stub_segmenter: BandSegmenter) -> None:
    pred = load_predictor(bundle, config=PredictorConfig(roi_every=3))
    f = band_frames(30)
    rows = []
    for i in range(30):
        rows.append(pred.step(f[i], t_s=i / 25, index=i, pixel_spacing_mm=SPACING))
        time.sleep(0.002)
    pred.roi.close()
    assert all(r.roi_found[0] for r in rows)
    assert 3 <= stub_segmenter.calls <= 11  # the first frame, then about every third
    # tracking follows the 3 px bobbing of the bands: thickness stays put, outlines move
    th = np.array([r.features["mg_thickness_mm"][0] for r in rows])
    assert np.all(np.abs(th - th[0]) < 0.6)


@pytest.mark.parametrize(("dy", "dx"), [(0, 0), (3, 0), (-2, 5), (4, -3)])
def test_phase_shift_recovers_translation(dy: int, dx: int) -> None:
    rng = np.random.default_rng(1)
    big = rng.integers(0, 255, size=(80, 96)).astype(np.float32)
    from scipy.ndimage import gaussian_filter

    big = gaussian_filter(big, 1.5)
    ref = big[10:58, 10:74]
    img = big[10 - dy : 58 - dy, 10 - dx : 74 - dx]
    got = phase_shift(ref, img, max_shift=10)
    assert got == pytest.approx((dy, dx), abs=0.35)


@pytest.mark.parametrize(("dy", "dx"), [(0, 0), (6, 0), (-4, 10)])
def test_shift_tracker_on_large_frames(dy: int, dx: int) -> None:
    from scipy.ndimage import gaussian_filter

    from musclestate.inference.roi_stage import ShiftTracker

    rng = np.random.default_rng(2)
    big = gaussian_filter(rng.integers(0, 255, size=(330, 420)).astype(np.float32), 3.0)
    ref, img = big[20:308, 20:380], big[20 - dy : 308 - dy, 20 - dx : 380 - dx]
    tr = ShiftTracker(size=128)
    tr.set_reference(ref)
    assert tr.shift(img) == pytest.approx((dy, dx), abs=1.5)  # 3 px blocks: within a block


def test_shift_geometry_moves_both_aponeuroses(bundle: Path, stub_segmenter: BandSegmenter) -> None:
    from musclestate.roi.geometry import fit_geometry

    g = fit_geometry(stub_segmenter.predict(band_frames(1))[0], SPACING)
    moved = shift_geometry(g, 2.0, 0.0)
    np.testing.assert_allclose(moved.superficial_row, np.clip(g.superficial_row + 2, 0, 95))
    assert moved.source == "tracked" and moved.found


@pytest.mark.slow
def test_ensemble_bundle_loads_exports_and_spreads(tmp_path: Path) -> None:
    from musclestate.models.bundle import load_bundle

    single, ens = make_bundle(tmp_path / "one"), make_bundle(tmp_path / "ens", members=3)
    b = load_bundle(ens)
    assert b.card.network.members == 3
    res = export_onnx(ens, tmp_path / "ens.onnx")
    assert res.max_abs_diff <= TOLERANCE[0]
    patches = np.random.default_rng(6).integers(0, 256, size=(5, 2, 16, 32), dtype=np.uint8)
    ref = b.predict(patches)
    got = OnnxEstimator(b, res.path).predict(patches)
    for k in b.target_names:
        np.testing.assert_allclose(got[k][0], ref[k][0], atol=TOLERANCE[0], rtol=TOLERANCE[1])
    # three differently initialised members disagree, so the spread exceeds the first alone's
    first = load_bundle(single).predict(patches)  # same seed: the first member's weights
    assert np.all(ref["ankle_angle"][1] > first["ankle_angle"][1])


def test_onnx_export_agrees_with_pytorch(tmp_path: Path, bundle: Path) -> None:
    from musclestate.models.bundle import load_bundle

    res = export_onnx(bundle, tmp_path / "est.onnx")
    assert res.path.is_file() and res.max_abs_diff <= TOLERANCE[0]
    meta = read_onnx_metadata(res.path)
    assert json.loads(meta["card"])["targets"][0]["name"] == "ankle_angle"
    b = load_bundle(bundle)
    rng = np.random.default_rng(5)
    patches = rng.integers(0, 256, size=(9, 2, 20, 40), dtype=np.uint8)  # resized inside
    ref = b.predict(patches)
    got = OnnxEstimator(b, res.path).predict(patches)
    for k in b.target_names:
        for a, c in zip(ref[k], got[k], strict=True):
            np.testing.assert_allclose(c, a, atol=TOLERANCE[0], rtol=TOLERANCE[1])
    other = make_bundle(tmp_path / "other")
    (other / "card.json").write_text((other / "card.json").read_text().replace("P01", "P02"))
    with pytest.raises(BundleError, match="another bundle"):
        OnnxEstimator(load_bundle(other), res.path)
    (tmp_path / "plain.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(BundleError, match="musclestate export"):
        read_onnx_metadata(tmp_path / "plain.onnx")


@pytest.mark.slow
def test_onnx_segmenter_matches_torch_segmenter() -> None:
    from musclestate.roi.segment import NetworkConfig, Segmenter, build_network

    torch.manual_seed(0)
    cfg = NetworkConfig(input_size=64, channels=(4, 8, 16), strides=(2, 2))
    seg = Segmenter(build_network(cfg), cfg)
    frames = band_frames(3, 50, 70)
    np.testing.assert_allclose(OnnxSegmenter(seg).predict(frames), seg.predict(frames), atol=1e-4)


def test_onnx_backend_gives_the_torch_estimates(
    bundle: Path, stub_segmenter: BandSegmenter
) -> None:
    f = band_frames(20)
    src = ArraySource(f, np.arange(20) / 25.0, pixel_spacing_mm=SPACING)
    a = load_predictor(bundle, config=PredictorConfig(backend="torch")).run(src).estimates
    b = load_predictor(bundle, config=PredictorConfig(backend="onnx")).run(src).estimates
    for k in a.targets:
        np.testing.assert_allclose(b.mean[k], a.mean[k], atol=TOLERANCE[0], rtol=TOLERANCE[1])


def test_a_fused_bundle_reads_the_roi_measures_offline_live_and_under_onnx(
    tmp_path: Path, stub_segmenter: BandSegmenter
) -> None:
    from musclestate.models.bundle import load_bundle

    fused = make_bundle(tmp_path / "fused", fused=True)
    names = load_bundle(fused).feature_inputs
    assert names and "mg_thickness_mm" in names
    f = band_frames(20)
    src = ArraySource(f, np.arange(20) / 25.0, pixel_spacing_mm=SPACING)
    cfg = PredictorConfig(roi_every=1)
    torch_cfg = dataclasses.replace(cfg, backend="torch")
    a = load_predictor(fused, config=torch_cfg).run(src).estimates
    b = load_predictor(fused, config=cfg).run(src).estimates
    found = a.roi_found
    assert found.all()
    for k in a.targets:
        np.testing.assert_allclose(b.mean[k], a.mean[k], atol=TOLERANCE[0], rtol=TOLERANCE[1])
    # the same network without its feature path gives other estimates: the measures are read
    plain = make_bundle(tmp_path / "plain")
    c = load_predictor(plain, config=torch_cfg).run(src).estimates
    assert not np.allclose(a.mean["ankle_angle"], c.mean["ankle_angle"])
    # live, frame by frame, the measures of each frame go in with its patches
    live = load_predictor(fused, config=dataclasses.replace(torch_cfg, live_async=False))
    steps = [live.step(f[i], t_s=i / 25, index=i, pixel_spacing_mm=SPACING) for i in range(5)]
    assert all(np.isfinite(s.mean["ankle_angle"]).all() for s in steps)


@pytest.mark.slow
def test_predict_cli_writes_table_sidecar_xlsx_plot_overlay(
    tmp_path: Path, bundle: Path, stub_segmenter: BandSegmenter
) -> None:
    from musclestate.cli import app
    from musclestate.io.video import read_video, write_video

    frames = np.pad(band_frames(30, dark=range(10, 17)), ((0, 0), (8, 0), (4, 0)))
    clip = write_video(tmp_path / "clip.mp4", frames, fps=25.0)
    out = tmp_path / "res" / "clip.csv"
    args = [
        "predict", str(bundle), str(clip), "--out", str(out), "--crop", "4", "8", "128", "96",
        "--spacing", "0.3", "0.3", "--roi-every", "1",
        "--xlsx", str(tmp_path / "res" / "clip.xlsx"), "--plot", str(tmp_path / "res" / "clip.png"),
        "--overlay", str(tmp_path / "res" / "o.mp4"),
    ]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    cols = read_csv(out)
    assert list(cols)[:6] == ["frame", "t_s", "ankle_angle", "ankle_angle_sd",
                              "mg_activation", "mg_activation_sd"]  # fmt: skip
    np.testing.assert_array_equal(cols["frame"], np.arange(30))
    np.testing.assert_allclose(cols["t_s"], np.arange(30) / 25.0, atol=1e-3)
    assert cols["roi_found"].tolist() == [0.0 if 10 <= i < 17 else 1.0 for i in range(30)]
    assert {"out_of_range", "mg_thickness_mm", "pennation_deg"} <= set(cols)
    side = json.loads((tmp_path / "res" / "clip.csv.json").read_text())
    assert side["columns"]["ankle_angle_sd"] == "deg"
    assert side["bundle"]["sha256"] and len(side["input"]["sha256"]) == 64
    assert side["input"]["crop_xywh"] == [4, 8, 128, 96]
    assert side["input"]["pixel_spacing_mm"] == [0.3, 0.3]
    assert side["settings"]["backend"] == "onnx" and side["musclestate_version"]
    for name in ("clip.xlsx", "clip.png", "o.mp4", "o.mp4.json", "clip.png.json"):
        assert (tmp_path / "res" / name).is_file(), name
    assert read_video(tmp_path / "res" / "o.mp4").n_frames == 30
    assert not list((tmp_path / "res").glob(".*tmp*"))


@pytest.mark.slow
def test_predict_cli_batches_a_folder_and_rejects_bad_bundle(
    tmp_path: Path, bundle: Path, stub_segmenter: BandSegmenter
) -> None:
    from musclestate.cli import app
    from musclestate.io.video import write_video

    folder = tmp_path / "clips"
    for i in range(2):
        write_video(folder / f"c{i}.mp4", band_frames(8, seed=i), fps=25.0)
    r = CliRunner().invoke(
        app,
        [
            "predict",
            str(bundle),
            str(folder),
            "--out",
            str(tmp_path / "out"),
            "--spacing",
            "0.3",
            "0.3",
        ],
    )
    assert r.exit_code == 0, r.output
    for i in range(2):
        assert len(read_csv(tmp_path / "out" / f"c{i}.csv")["frame"]) == 8
    (folder / "broken.mp4").write_bytes(b"not a video")
    r = CliRunner().invoke(
        app,
        [
            "predict",
            str(bundle),
            str(folder),
            "--out",
            str(tmp_path / "out2"),
            "--spacing",
            "0.3",
            "0.3",
        ],
    )
    assert r.exit_code == 2 and "1 of 3 inputs failed" in r.output
    assert len(list((tmp_path / "out2").glob("*.csv"))) == 2
    r = CliRunner().invoke(
        app, ["predict", str(folder / "c0.mp4"), str(folder), "--out", str(tmp_path / "x")]
    )
    assert r.exit_code != 0 and isinstance(r.exception, BundleError)


def test_input_unlike_training_data_warns_with_figures_and_still_runs(
    tmp_path: Path, stub_segmenter: BandSegmenter, caplog: pytest.LogCaptureFixture
) -> None:
    from musclestate.inference.batch import Job, SourceOptions, predict_job

    train = {
        "pixel_spacing_mm": [0.2, 0.2],
        "frame_shape": [100, 128],
        "target_range": {"ankle_angle": [-100.0, 100.0], "mg_activation": [-1e3, 1e3]},
        "feature_range": {"mg_thickness_mm": [1.0, 5.0], "mg_echo": [None, None]},
    }
    b = make_bundle(tmp_path / "b", training=train)
    pred = load_predictor(b, config=PredictorConfig(roi_every=1))
    clip = tmp_path / "c.mp4"
    from musclestate.io.video import write_video

    write_video(clip, band_frames(6), fps=25.0)
    job = Job("c", clip, tmp_path / "c.csv")
    est = predict_job(pred, job, SourceOptions(pixel_spacing_mm=SPACING))
    assert est.roi_found.all()
    # MG thickness (about 13 mm) lies outside the training range 1..5 mm: every frame flagged
    assert est.out_of_range.all()
    assert pred.info["out_of_range_rule"] == (
        "architecture measures: training min..max; targets: training min..max"
    )
    assert "0.300 x 0.300 mm/px differs from the training data (0.200 x 0.200 mm/px)" in caplog.text
    assert "96 x 128 px, the training data 100 x 128 px" in caplog.text
    side = json.loads((tmp_path / "c.csv.json").read_text())
    assert len(side["warnings"]) == 2


@pytest.mark.slow
def test_card_with_feature_novelty_flags_a_thicker_muscle_only(
    tmp_path: Path, bundle: Path, stub_segmenter: BandSegmenter
) -> None:
    from musclestate.inference.novelty import FeatureNovelty

    def measures(pred, frames: np.ndarray) -> dict[str, np.ndarray]:
        src = ArraySource(frames, np.arange(len(frames)) / 25.0, pixel_spacing_mm=SPACING)
        return pred.run(src).estimates.features

    # the rule fitted on the measures of 4 "participants" (clips), as training writes it
    plain = load_predictor(bundle, config=PredictorConfig(roi_every=1, backend="torch"))
    clips = [measures(plain, band_frames(40, seed=s)) for s in range(4)]
    names = tuple(clips[0])
    x = np.concatenate([np.stack([c[k] for k in names], axis=1) for c in clips])
    nov = FeatureNovelty.fit(x, names, groups=np.repeat(np.arange(4), 40))
    assert nov is not None and nov.names == names
    train = {
        "target_range": {"ankle_angle": [-1e3, 1e3], "mg_activation": [-1e3, 1e3]},
        "feature_range": {"mg_thickness_mm": [1.0, 5.0]},  # ignored: the novelty entry rules
        "feature_novelty": nov.to_dict(),
    }
    pred = load_predictor(
        make_bundle(tmp_path / "b", training=train),
        config=PredictorConfig(roi_every=1, backend="torch"),
    )
    assert pred.info["out_of_range_rule"].startswith(
        f"architecture measures: Mahalanobis distance of {len(nov.names)} measures from the "
        "training frames > "
    )
    src = ArraySource(band_frames(40, seed=5), np.arange(40) / 25.0, pixel_spacing_mm=SPACING)
    assert pred.run(src).estimates.out_of_range.mean() <= 0.05
    thick = band_frames(40, seed=6, deep=75.0)  # MG about 1.35 x as thick
    src = ArraySource(thick, np.arange(40) / 25.0, pixel_spacing_mm=SPACING)
    assert pred.run(src).estimates.out_of_range.all()


@pytest.mark.slow
def test_predict_on_a_dataset_writes_one_table_per_recording(
    tmp_path: Path, bundle: Path, stub_segmenter: BandSegmenter
) -> None:
    from musclestate.cli import app
    from musclestate.dataset import write_dataset
    from musclestate.records import Recording, RecordingMeta

    recs = [
        Recording(
            band_frames(10, seed=i),
            np.arange(10) / 25.0,
            SPACING,
            RecordingMeta(participant=f"P0{i}", trial="t1"),
        )
        for i in (1, 2)
    ]
    ds = write_dataset(tmp_path / "ds", recs)
    r = CliRunner().invoke(app, ["predict", str(bundle), str(ds), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    tables = sorted((tmp_path / "o").glob("*.csv"))
    assert len(tables) == 2
    for t in tables:
        cols = read_csv(t)
        assert len(cols["frame"]) == 10 and cols["roi_found"].all()
        assert json.loads(t.with_name(t.name + ".json").read_text())["input"]["location"]


@pytest.mark.slow
def test_calibrate_fits_a_persons_profile_and_predict_applies_it(
    tmp_path: Path, bundle: Path, stub_segmenter: BandSegmenter
) -> None:
    from musclestate.calibration import load_profile
    from musclestate.cli import app
    from musclestate.dataset import write_dataset
    from musclestate.errors import InputError
    from musclestate.inference.calibrate import calibrate
    from musclestate.records import Recording, RecordingMeta, Target

    cfg = PredictorConfig(roi_every=1, backend="torch")
    plain = load_predictor(bundle, config=cfg)
    frames = {t: band_frames(30, seed=s) for t, s in (("rom", 1), ("track", 2))}
    est = {
        t: plain.predict_frames(f, pixel_spacing_mm=SPACING).estimates for t, f in frames.items()
    }
    # this person's true states: an offset and a gain away from what the estimator says
    true = {
        t: {"ankle_angle": 4.0 + 1.5 * e.mean["ankle_angle"],
            "mg_activation": -2.0 + 0.5 * e.mean["mg_activation"]}
        for t, e in est.items()
    }  # fmt: skip
    units = {"ankle_angle": "deg", "mg_activation": "%MVC"}
    recs = [
        Recording(frames[t], np.arange(30) / 25.0, SPACING,
                  RecordingMeta(participant="P01", trial=t, task=task),
                  targets={k: Target(v, units[k]) for k, v in true[t].items()})
        for t, task in (("rom", "passive_rom"), ("track", "tracking"))
    ]  # fmt: skip
    ds = write_dataset(tmp_path / "ds", recs)
    prof = calibrate(bundle, ds, "P01", tmp_path / "p01.json", config=cfg, shrinkage=0.0)
    assert prof.trials == ("P01-rom",)  # the tracking trial takes no part
    assert prof.corrections["ankle_angle"].gain == pytest.approx(1.5, rel=1e-3)
    assert prof.corrections["ankle_angle"].offset == pytest.approx(4.0, abs=1e-2)
    assert load_profile(tmp_path / "p01.json") == prof
    # applied to the other recording, the corrected estimates are the person's true states
    fixed = load_predictor(bundle, config=cfg, calibration=tmp_path / "p01.json")
    got = fixed.predict_frames(frames["track"], pixel_spacing_mm=SPACING).estimates
    np.testing.assert_allclose(got.mean["ankle_angle"], true["track"]["ankle_angle"], atol=1e-3)
    np.testing.assert_allclose(got.sd["ankle_angle"], 1.5 * est["track"].sd["ankle_angle"],
                               rtol=1e-4)  # fmt: skip
    assert fixed.info["calibration"]["participant"] == "P01"
    # the command line: calibrate, then predict with the profile
    out = tmp_path / "cli.json"
    r = CliRunner().invoke(app, ["calibrate", str(bundle), str(ds), "--participant", "P01",
                                 "--out", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "calibration profile of P01" in r.output
    r = CliRunner().invoke(app, ["predict", str(bundle), str(ds), "--out", str(tmp_path / "o"),
                                 "--calibration", str(out), "--backend", "torch"])  # fmt: skip
    assert r.exit_code == 0, r.output
    side = json.loads(next((tmp_path / "o").glob("*.json")).read_text())
    assert side["bundle"]["calibration"]["participant"] == "P01"
    with pytest.raises(InputError, match="no calibration recording"):
        calibrate(bundle, write_dataset(tmp_path / "ds2", recs[1:]), "P01", tmp_path / "x.json")
    with pytest.raises(InputError, match="no participant"):
        calibrate(bundle, ds, "P09", tmp_path / "x.json")
    other = make_bundle(tmp_path / "other", training={"participants": ["P02"]})
    with pytest.raises(InputError, match="calibrate` again"):
        load_predictor(other, config=cfg, calibration=out)


@pytest.mark.slow
def test_export_cli_then_predict_with_the_exported_file(
    tmp_path: Path, bundle: Path, stub_segmenter: BandSegmenter
) -> None:
    from musclestate.cli import app
    from musclestate.io.video import write_video

    onnx = tmp_path / "est.onnx"
    r = CliRunner().invoke(app, ["export", str(bundle), "--onnx", str(onnx)])
    assert r.exit_code == 0, r.output
    assert "max |diff|" in r.output and onnx.is_file()
    clip = write_video(tmp_path / "c.mp4", band_frames(6), fps=25.0)
    args = ["predict", str(bundle), str(clip), "--out", str(tmp_path / "c.csv"),
            "--spacing", "0.3", "0.3", "--onnx", str(onnx)]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    side = json.loads((tmp_path / "c.csv.json").read_text())
    assert side["bundle"]["onnx"] == str(onnx) and side["settings"]["backend"] == "onnx"
    assert read_csv(tmp_path / "c.csv")["roi_found"].all()


@pytest.mark.slow
def test_real_clip_with_the_shipped_segmenter(drazan_dir: Path, tmp_path: Path) -> None:
    """Real B-mode frames (Drazan et al. 2019, CC BY 4.0) through the shipped segmenter: the
    muscle is found and the MG thickness lies in the in-vivo range (15-25 mm)."""
    from itertools import islice

    from musclestate.inference import open_source

    clip = drazan_dir / "clips" / "p6_isokinetic030_01_push_01.mp4"
    with open_source(clip, crop=(214, 44, 720, 574)) as video:
        got = list(islice(video, 24))
    b = make_bundle(tmp_path / "b", roi_model=None)  # None: the shipped segmenter
    pred = load_predictor(b, config=PredictorConfig(roi_every=4))
    src = ArraySource(
        np.stack([f.image for f in got]),
        np.array([f.t_s for f in got]),
        pixel_spacing_mm=(0.0883, 0.0883),  # Params.px2mmX/Y of the data set
    )
    est = pred.run(src).estimates
    assert est.roi_found.mean() >= 0.9
    th = est.features["mg_thickness_mm"][est.roi_found]
    assert np.all((th > 15) & (th < 25)), th
