"""Training data plumbing: configuration, examples with context, sampling, augmentation."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from musclestate.errors import ConfigError, DatasetError
from musclestate.training.config import AugmentConfig, TrainConfig
from musclestate.training.data import (
    Cohort,
    EpochBatchSampler,
    ExampleSet,
    FrameDataset,
    RecordingData,
    TargetNorm,
    augment_image,
    choose_targets,
    resize_images,
)


def _cohort(frames: int = 10) -> Cohort:
    recs = []
    for p, pid in enumerate(("A", "B")):
        imgs = np.zeros((frames, 2, 4, 4), np.uint8)
        imgs[:, :, 0, 0] = np.arange(frames)[:, None] + 100 * p  # frame id in pixel (0, 0)
        recs.append(
            RecordingData(
                id=f"{pid}_1", participant=pid, trial="1", t_s=np.arange(frames) / 10.0,
                images=imgs, targets={"ankle_angle": np.arange(frames, dtype=float) + 10 * p},
                features=np.zeros((frames, 2), np.float32),
            )
        )  # fmt: skip
    return Cohort(tuple(recs), {"ankle_angle": "deg"}, ("f1", "f2"))


def test_config_round_trip_and_strictness() -> None:
    cfg = TrainConfig().replace(epochs=3, image_size=(32, 40), targets=("ankle_angle",))
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown training setting"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="compact_resnet"):
        TrainConfig().replace(network="vgg")
    with pytest.raises(ConfigError, match="valid targets"):
        TrainConfig().replace(targets=("knee_angle",))
    with pytest.raises(ConfigError, match="val_participants"):
        TrainConfig().replace(val_participants=0)
    with pytest.raises(ConfigError, match="aux_weight"):
        TrainConfig().replace(aux_weight=-1.0)
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainConfig().replace(ema_decay=1.0)
    assert TrainConfig().replace(context=2).in_channels == 10
    assert TrainConfig().replace(input="frame").in_channels == 1


def test_config_parts_and_the_flat_form() -> None:
    from musclestate.training.config import FLAT_SETTINGS, PARTS

    cfg = TrainConfig().replace(lr=1e-3, num_threads=2, fuse_features=True, frame_stride=3)
    assert (cfg.optimisation.lr, cfg.execution.num_threads) == (1e-3, 2)
    assert cfg.model.fuse_features and cfg.data.frame_stride == 3
    nested = cfg.to_dict()
    assert set(nested) == {*PARTS, "seed"} and nested["optimisation"]["lr"] == 1e-3
    # every setting of every part is reachable by its flat name, and only there
    assert len(FLAT_SETTINGS) == sum(len(dataclasses.fields(c)) for c in PARTS.values())
    # the flat form of configuration files written before the parts: the same configuration
    flat = {k: v for part in PARTS for k, v in nested[part].items()} | {"seed": 0}
    assert TrainConfig.from_dict(flat) == cfg == TrainConfig.from_dict(nested)
    assert TrainConfig.from_dict(json.loads(json.dumps(nested))) == cfg
    # and mixtures (a nested file with flat overrides)
    assert TrainConfig.from_dict({"model": {"ensemble": 2}, "epochs": 4}).model.ensemble == 2
    with pytest.raises(ConfigError, match=r"'lr' given twice"):
        TrainConfig.from_dict({"optimisation": {"lr": 1.0}, "lr": 2.0})
    with pytest.raises(ConfigError, match=r"unknown optimisation setting.*\['threads'\]"):
        TrainConfig.from_dict({"optimisation": {"threads": 2}})
    with pytest.raises(ConfigError, match=r"unknown training setting 'thread'.*num_threads"):
        TrainConfig().replace(thread=2)
    with pytest.raises(ConfigError, match="unknown augment setting"):
        TrainConfig.from_dict({"augment": {"gian": 0.1}})
    with pytest.raises(ConfigError, match=r"set fuse_features false \(--no-fuse-features\)"):
        TrainConfig().replace(aux_weight=1.0)  # fused by default
    assert TrainConfig().replace(fuse_features=False, aux_weight=1.0).optimisation.aux_weight == 1


def test_execution_settings_do_not_change_a_runs_identity() -> None:
    base = TrainConfig().replace(epochs=3)
    other = base.replace(num_threads=2, devices=2, strategy="ddp", accelerator="cpu", num_nodes=2)
    assert other != base and other.identity() == base.identity()
    assert "execution" not in base.identity()
    assert base.replace(lr=1e-2).identity() != base.identity()
    assert base.replace(seed=1).identity() != base.identity()


def test_targets_default_to_those_the_dataset_has() -> None:
    have = {"ankle_moment": "N m", "ankle_angle": "deg", "other": "V"}
    assert list(choose_targets(have, ())) == ["ankle_angle", "ankle_moment"]
    with pytest.raises(DatasetError, match="mg_activation"):
        choose_targets(have, ("mg_activation",))


def test_examples_follow_participants_context_and_stride() -> None:
    c = _cohort()
    ex = ExampleSet.from_cohort(c.subset(["B"]), context=1, stride=3)
    assert list(ex.frame) == [0, 3, 6, 9]
    assert set(ex.participant) == {"B"}
    x = ex.inputs(np.arange(len(ex)))
    assert x.shape == (4, 6, 4, 4)
    # channels: previous, own, next frame (2 channels each); edges replicate
    assert list(x[0, ::2, 0, 0]) == [100, 100, 101]
    assert list(x[3, ::2, 0, 0]) == [108, 109, 109]
    np.testing.assert_array_equal(ex.targets[:, 0], [10, 13, 16, 19])
    with pytest.raises(DatasetError, match="not in"):
        c.subset(["C"])


def test_frames_without_a_muscle_are_left_out() -> None:
    r = _cohort().recordings[0]
    found = np.ones(r.n_frames, bool)
    found[[2, 5]] = False
    c = Cohort((RecordingData(**{**r.__dict__, "found": found}),), {"ankle_angle": "deg"})
    ex = ExampleSet.from_cohort(c)
    assert list(ex.frame) == [0, 1, 3, 4, 6, 7, 8, 9]
    none = Cohort((RecordingData(**{**r.__dict__, "found": ~found[:] & False}),), c.target_units)
    with pytest.raises(DatasetError, match="found no muscle"):
        ExampleSet.from_cohort(none)


def test_target_norm_uses_the_given_frames_only() -> None:
    y = np.array([[1.0, 5.0], [3.0, 5.0], [np.nan, 5.0]])
    n = TargetNorm.fit(y)
    np.testing.assert_allclose(n.mean, [2.0, 5.0])
    np.testing.assert_allclose(n.sd, [1.0, 1.0])  # constant target -> SD 1
    np.testing.assert_allclose(n.invert(n.apply(y[:2])), y[:2])


def test_sampler_is_seeded_per_epoch_and_ddp_slices_global_batches() -> None:
    one = EpochBatchSampler(20, 4, seed=7)
    one.set_epoch(3)
    single = list(one)
    one.set_epoch(3)
    assert list(one) == single  # same epoch, same batches (resume)
    one.set_epoch(4)
    assert list(one) != single
    ranks = []
    for r in range(2):
        s = EpochBatchSampler(20, 4, seed=7, rank=r, world_size=2)
        s.set_epoch(3)
        ranks.append(list(s))
    merged = [a + b for a, b in zip(*ranks, strict=True)]
    assert merged == single
    assert len(single) == 5 and all(e == 3 for b in single for _, e in b)
    with pytest.raises(DatasetError, match="divisible"):
        EpochBatchSampler(20, 5, seed=0, world_size=2)


def test_augmentation_is_deterministic_and_bounded() -> None:
    cfg = AugmentConfig(gain=0.3, gamma=0.5, noise_sd=0.05, shift_px=2)
    x = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32)
    a = augment_image(x, np.random.default_rng([1, 2, 3]), cfg)
    b = augment_image(x, np.random.default_rng([1, 2, 3]), cfg)
    c = augment_image(x, np.random.default_rng([1, 2, 4]), cfg)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == x.shape and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1
    ds = FrameDataset(ExampleSet.from_cohort(_cohort()), TargetNorm.fit(np.ones((1, 1))), cfg, 5)
    x1, y1, m1 = ds[[(0, 1), (3, 1)]]
    x2, _, _ = ds[[(0, 1), (3, 1)]]
    x3, _, _ = ds[[(0, 2), (3, 2)]]
    assert x1.shape == (2, 2, 4, 4) and y1.shape == (2, 1) and m1.all()
    assert (x1 == x2).all() and not (x1 == x3).all()


def test_resize_by_area() -> None:
    img = np.zeros((1, 1, 4, 4), np.uint8)
    img[0, 0, :2, :2] = 200
    out = resize_images(img, (2, 2))
    assert out.tolist() == [[[[200, 0], [0, 0]]]]
    assert resize_images(img, (4, 4)) is img


def test_feature_normalisation_masks_measures_never_defined() -> None:
    f = np.array([[1.0, np.nan, 5.0], [3.0, np.nan, 5.0], [np.nan, np.nan, 5.0]])
    norm = TargetNorm.fit_features(f)
    np.testing.assert_allclose(norm.mean, [2.0, 0.0, 5.0])
    np.testing.assert_allclose(norm.sd, [1.0, 1.0, 1.0])  # SD 0 -> 1, undefined -> 1
    z = norm.apply(f)
    np.testing.assert_allclose(z[:2, 0], [-1.0, 1.0])
    assert np.isnan(z[:, 1]).all()


def _roi_dataset(path, version: str | None):
    """One recording with a ``roi`` group whose attrs record ``version`` (None: not recorded)."""
    from musclestate import __version__
    from musclestate.dataset import recording_id, write_dataset, write_derived
    from musclestate.records import Recording, RecordingMeta, Target
    from musclestate.roi.pipeline import ROIConfig, roi_attrs

    t = 6
    rec = Recording(
        frames=np.zeros((t, 8, 8), np.uint8),
        t_s=np.arange(t) / 10.0,
        pixel_spacing_mm=(0.2, 0.2),
        meta=RecordingMeta(participant="P01", trial="track_01"),
        targets={"ankle_angle": Target(np.linspace(0, 5, t), "deg")},
    )
    write_dataset(path, [rec])
    attrs = roi_attrs(ROIConfig())
    assert attrs["musclestate_version"] == __version__
    if version is None:
        del attrs["musclestate_version"]
    else:
        attrs["musclestate_version"] = version
    per = {
        recording_id("P01", "track_01"): {
            "patches": np.zeros((t, 2, 8, 8), np.uint8),
            "features": np.zeros((t, len(attrs["feature_names"])), np.float32),
            "found": np.ones(t, bool),
        }
    }
    write_derived(path, "roi", per, attrs)
    return path


def test_roi_group_from_another_version_is_loaded_with_a_warning(tmp_path, caplog) -> None:
    from musclestate import __version__
    from musclestate.training.data import load_cohort

    cfg = TrainConfig().replace(image_size=(8, 8))
    caplog.set_level("WARNING", logger="musclestate.training.data")
    load_cohort(_roi_dataset(tmp_path / "same", __version__), cfg)
    assert "computed by musclestate" not in caplog.text
    for name, version, said in (
        ("old", "0.0.1", "0.0.1"),
        ("none", None, "(version not recorded)"),
    ):
        caplog.clear()
        path = _roi_dataset(tmp_path / name, version)
        cohort = load_cohort(path, cfg)
        assert len(cohort.recordings) == 1  # still loaded
        assert f"computed by musclestate {said}" in caplog.text
        assert f"this is {__version__}" in caplog.text
        assert f"musclestate roi apply {path}" in caplog.text


def test_cli_config_files_flat_nested_or_from_a_card(tmp_path) -> None:
    from musclestate.cli.training import _train_config

    want = TrainConfig().replace(epochs=5, lr=1e-3, num_threads=2, devices=2)
    flat = {"epochs": 9, "lr": 1e-3, "num_threads": 2}  # a file written before the parts
    nested = {"optimisation": {"epochs": 9, "lr": 1e-3}, "execution": {"num_threads": 2}}
    card = {"training": {"config": nested}}  # a bundle card's resolved configuration
    for i, content in enumerate((flat, nested, {"train": flat}, card)):
        path = tmp_path / f"c{i}.json"
        path.write_text(json.dumps(content))
        # the command line's options (flat names) override the file
        assert _train_config(path, {"epochs": 5, "devices": "2", "lr": None}) == want
    (tmp_path / "bad.json").write_text(json.dumps({"optimisation": {"epoch": 9}}))
    with pytest.raises(ConfigError, match=r"unknown optimisation setting.*'epoch'.*'epochs'"):
        _train_config(tmp_path / "bad.json", {})
