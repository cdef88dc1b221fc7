"""Cross-validation, fold jobs + collect, and deployable training, on a tiny dataset on disk."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from musclestate.cli import app
from musclestate.dataset import open_dataset
from musclestate.errors import ConfigError, DatasetError
from musclestate.models.bundle import load_bundle
from musclestate.training.config import TrainConfig
from musclestate.training.cv import collect, run_cv, train_bundle

pytestmark = pytest.mark.slow  # trains networks or runs whole workflows

UNITS = {"ankle_angle": "deg", "ankle_moment": "N m", "mg_activation": "%MVC",
         "sol_activation": "%MVC"}  # fmt: skip
# image-only networks unless a test fuses: half the training of a fused run and its comparison
CFG = TrainConfig().replace(image_size=(24, 24), epochs=8, batch_size=16, lr=3e-3, num_threads=1,
                  network_params={"widths": [8, 16, 32]}, fuse_features=False)  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the suite runs two workers on two cores
    yield
    torch.set_num_threads(old)


def write_synthetic_dataset(path: Path, recs: list[dict]) -> Path:
    """A dataset with a ``roi`` group, as import + ``roi apply`` would leave it."""
    from musclestate.dataset import recording_id, write_dataset, write_derived
    from musclestate.records import Recording, RecordingMeta, Target

    write_dataset(
        path,
        (
            Recording(
                frames=r["images"][:, 0],
                t_s=r["t_s"],
                pixel_spacing_mm=(0.2, 0.25),
                meta=RecordingMeta(
                    participant=r["participant"], trial=r["trial"], task=r.get("task", "")
                ),
                targets={n: Target(v, UNITS[n]) for n, v in r["targets"].items()},
            )
            for r in recs
        ),
    )
    per = {
        recording_id(r["participant"], r["trial"]): {
            "patches": r["images"],
            "features": r["features"],
            "found": np.ones(len(r["t_s"]), bool),
        }
        for r in recs
    }
    attrs = {"feature_names": ["f_angle", "f_mg", "f_sol"], "patch_size_px": [24, 24]}
    write_derived(path, "roi", per, attrs)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, synthetic_recordings) -> Path:
    recs = synthetic_recordings(participants=5, recordings=2, frames=120, size=24, seed=1)
    for r in recs:  # one tracking trial and one passive range of motion per person
        r["task"] = "tracking" if r["trial"] == "r0" else "passive_rom"
    return write_synthetic_dataset(tmp_path_factory.mktemp("cv") / "ds", recs)


@pytest.fixture(scope="module")
def run(dataset: Path, tmp_path_factory) -> Path:
    """A 3-fold run made as a cluster would: one `cv --fold I` job per fold, then collect."""
    base = tmp_path_factory.mktemp("run")
    config = base / "train.json"
    config.write_text(json.dumps(CFG.to_dict()))
    out = base / "run"
    runner = CliRunner()
    args = ["cv", str(dataset), "--folds", "3", "--out", str(out), "--config", str(config)]
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i in (0, 2):
            res = runner.invoke(app, [*args, "--fold", str(i)])
            assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["cv", "collect", str(out)])
        assert isinstance(res.exception, DatasetError)
        assert "[1]" in str(res.exception) and "--fold I" in str(res.exception)
        res = runner.invoke(app, [*args, "--fold", "1"])
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["cv", "collect", str(out)])
        assert res.exit_code == 0, res.output
        assert "CNN" in res.output and "metrics:" in res.output
    finally:
        torch.set_num_threads(old)
    return out


def test_metrics_have_the_agreed_shape_and_show_learning(run: Path) -> None:
    m = json.loads((run / "metrics.json").read_text())
    assert m["folds"] == 3
    assert m["targets"] == {n: {"unit": u} for n, u in UNITS.items()}
    assert set(m["models"]) == {"cnn", "mean_predictor", "feature_baseline"}
    people = [f"P{i:02d}" for i in range(1, 6)]
    for model in m["models"].values():
        assert sorted(model["per_participant"]) == people
        for per in model["per_participant"].values():
            assert set(per) == set(UNITS)
            assert all(set(v) == {"r2", "r", "rmse", "nrmse"} for v in per.values())
        for s in model["summary"].values():
            assert {"r2_mean", "r2_sd", "r_mean", "rmse_mean", "nrmse_mean"} <= set(s)
    for name in UNITS:
        cnn = m["models"]["cnn"]["summary"][name]["r2_mean"]
        mean = m["models"]["mean_predictor"]["summary"][name]["r2_mean"]
        assert cnn > 0.3 and cnn > mean + 0.3, (name, cnn, mean)
        c = m["calibration"][name]
        assert 0 < c["within_1sd"] < c["within_2sd"] <= 1
    ds = m["config"]["dataset"]  # by content, with where it lay as information
    assert ds["location"] == str(Path(ds["location"]).resolve()) and len(ds["sha256"]) == 64
    # the headline is the tracking trials; all frames and each trial type stand beside it
    assert m["frames"] == "tracking"
    assert set(m["all_frames"]["models"]) == set(m["models"])
    assert set(m["by_trial_type"]) == {"tracking", "passive_rom"}
    assert m["by_trial_type"]["tracking"]["models"] == m["models"]
    assert m["by_trial_type"]["passive_rom"]["n_frames"] == 5 * 120
    assert m["all_frames"]["calibration"]["ankle_angle"]["n_frames"] == 5 * 240
    assert m["calibration"]["ankle_angle"]["n_frames"] == 5 * 120
    assert json.loads((run / "config.json").read_text())["train"]["optimisation"]["epochs"] == 8


def test_no_participant_leaks_across_a_fold(run: Path) -> None:
    m = json.loads((run / "metrics.json").read_text())
    tested = []
    for info in m["folds_info"]:
        train, val, test = set(info["train"]), set(info["validation"]), set(info["test"])
        assert not (train & val) and not (train & test) and not (val & test)
        assert len(val) == 1 and len(train) >= 1
        tested += info["test"]
        card = json.loads((run / "folds" / f"fold_{info['index']:02d}" / "model" / "card.json")
                          .read_text())  # fmt: skip
        assert set(card["training"]["participants"]) == train
    assert sorted(tested) == [f"P{i:02d}" for i in range(1, 6)]
    assert m["splits"]["participants"] == {p: i for i, f in enumerate(m["splits"]["folds"])
                                           for p in f["test"]}  # fmt: skip


def test_prediction_files(run: Path) -> None:
    with (run / "predictions" / "P03.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 240
    cols = list(rows[0])
    assert cols[:4] == ["recording", "task", "frame", "t_s"]
    assert {r["task"] for r in rows} == {"tracking", "passive_rom"}
    for n in UNITS:
        assert cols.index(f"{n}_sd") == cols.index(n) + 1
        assert cols.index(f"{n}_true") == cols.index(n) + 2
        assert f"{n}_mean_predictor" in cols and f"{n}_feature_baseline" in cols
    assert [int(r["frame"]) for r in rows] == list(range(120)) * 2
    assert all(float(r["ankle_angle_sd"]) > 0 for r in rows)


def test_a_fold_reruns_identically_and_settings_are_kept(
    run: Path, dataset: Path, tmp_path: Path
) -> None:
    out = run_cv(dataset, tmp_path / "again", CFG, folds=3, fold=1)
    assert out == tmp_path / "again" / "folds" / "fold_01"
    for f in (run / "folds" / "fold_01" / "predictions").glob("*.csv"):
        assert (out / "predictions" / f.name).read_text() == f.read_text()  # deterministic
    with pytest.raises(ConfigError, match="other settings"):
        run_cv(dataset, tmp_path / "again", CFG.replace(epochs=3), folds=3, fold=0)
    # how a job executes is not what it computes: other thread settings join the same run
    assert run_cv(dataset, tmp_path / "again", CFG.replace(num_threads=2), folds=3, fold=1,
                  resume=True) == out  # fmt: skip
    # the same content elsewhere is the same dataset
    import shutil

    moved = shutil.copytree(dataset, tmp_path / "moved")
    assert run_cv(moved, tmp_path / "again", CFG, folds=3, fold=1, resume=True) == out
    # a run folder written before the configuration had parts (flat "train") is the same run
    cfg_path = tmp_path / "again" / "config.json"
    old = json.loads(cfg_path.read_text())
    parts = ("data", "model", "optimisation", "execution")
    flat = {k: v for part in parts for k, v in old["train"][part].items()}
    old["train"] = flat | {"seed": old["train"]["seed"]}
    cfg_path.write_text(json.dumps(old))
    assert run_cv(dataset, tmp_path / "again", CFG, folds=3, fold=1, resume=True) == out
    old["train"]["epoch"] = 3
    cfg_path.write_text(json.dumps(old))
    with pytest.raises(ConfigError, match=r"config\.json: unknown training setting.*'epoch'"):
        run_cv(dataset, tmp_path / "again", CFG, folds=3, fold=1, resume=True)
    with pytest.raises(ConfigError, match="out of range"):
        run_cv(dataset, tmp_path / "again", CFG, folds=3, fold=3)


def test_collect_needs_a_run(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"config\.json"):
        collect(tmp_path)


def test_train_bundle_with_cv_metrics(run: Path, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    res = CliRunner().invoke(
        app,
        ["train", str(dataset), "--out", str(out), "--run", str(run), "--config",
         str(run / "config.json")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "model.safetensors"]
    assert not (tmp_path / ".model.work").exists()
    b = load_bundle(out)
    card = b.card
    assert list(card.target_names) == list(UNITS)
    assert card.roi["feature_names"] == ["f_angle", "f_mg", "f_sol"]
    assert card.training.pixel_spacing_mm == (0.2, 0.25)
    assert card.training.dataset_sha256 == open_dataset(dataset).content_sha256
    assert len(card.training.participants) == 4
    assert card.training.validation_participants
    assert card.training.frames_per_participant.keys() == set(card.training.participants)
    assert card.cv_metrics["summary"]["cnn"]["ankle_angle"]["r2_mean"] is not None
    assert card.network.params == {"widths": [8, 16, 32]}
    ds = open_dataset(dataset)
    rid = ds.recordings[0].id
    patches = ds.derived("roi").get(rid, "patches")
    pred = b.predict(patches)
    truth = ds.targets(rid)["ankle_angle"]
    assert np.corrcoef(pred["ankle_angle"][0], truth)[0, 1] > 0.8  # a training participant
    res = CliRunner().invoke(app, ["train", str(dataset), "--out", str(out)])
    assert isinstance(res.exception, FileExistsError)


def test_whole_frame_input_and_temporal_context(dataset: Path, tmp_path: Path) -> None:
    from musclestate.training.data import ExampleSet, load_cohort
    from musclestate.training.module import fit_estimator

    frame_cfg = CFG.replace(input="frame", image_size=(16, 16), context=1, epochs=1)
    cohort = load_cohort(dataset, frame_cfg)
    assert cohort.recordings[0].images.shape == (120, 1, 16, 16)
    assert cohort.recordings[0].task == "tracking"
    assert cohort.has_features and cohort.feature_names == ("f_angle", "f_mg", "f_sol")
    ex = ExampleSet.from_cohort(cohort.subset(["P01", "P02"]), context=1)
    assert ex.inputs(np.arange(3)).shape == (3, 3, 16, 16)
    fit = fit_estimator(ex, ExampleSet.from_cohort(cohort.subset(["P03"]), context=1),
                        frame_cfg, tmp_path / "w")  # fmt: skip
    assert fit.state_dict["stem.0.weight"].shape[1] == 3  # 1 channel x 3 frames
    subset = CFG.replace(targets=("ankle_angle", "mg_activation"))
    assert list(load_cohort(dataset, subset).target_units) == ["ankle_angle", "mg_activation"]


def test_seeds_repeat_training_on_the_same_folds_and_report_the_spread(
    dataset: Path, tmp_path: Path
) -> None:
    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps(CFG.replace(epochs=2).to_dict()))
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app, ["cv", str(dataset), "--folds", "2", "--seeds", "2", "--out", str(out),
              "--config", str(cfg)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "training seeds" in res.output
    s = json.loads((out / "seeds.json").read_text())
    assert s["runs"] == ["seed_00", "seed_01"] and s["seeds"] == [CFG.seed, CFG.seed + 1]
    folds = [json.loads((out / r / "splits.json").read_text())["folds"] for r in s["runs"]]
    assert folds[0] == folds[1]  # the same people in every fold, whatever the training seed
    per_seed = [json.loads((out / r / "metrics.json").read_text()) for r in s["runs"]]
    for model, targets in s["models"].items():
        for name, v in targets.items():
            r2 = [m["models"][model]["summary"][name]["r2_mean"] for m in per_seed]
            assert v["r2"] == pytest.approx(r2)
            assert v["r2_mean"] == pytest.approx(np.mean(r2))
            assert v["r2_min"] <= v["r2_mean"] <= v["r2_max"]
    cnn = [m["models"]["cnn"]["summary"]["ankle_angle"]["r2_mean"] for m in per_seed]
    assert cnn[0] != cnn[1]  # the seeds really trained different networks
    assert collect(out) == out / "seeds.json"
    with pytest.raises(ConfigError, match="at least 1"):
        run_cv(dataset, tmp_path / "x", CFG, folds=2, seeds=0)


def test_calibration_uses_only_the_persons_calibration_trials(run: Path, tmp_path: Path) -> None:
    import shutil

    from musclestate.calibration import fit_correction
    from musclestate.training.predictions import read_predictions

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    m = json.loads(collect(copy, calibrate=True).read_text())
    assert m["calibrated_on"] and "passive_rom" in m["calibrated_on"]
    models = m["models"]
    assert {"cnn_calibrated", "feature_baseline_calibrated"} <= set(models)
    assert "mean_predictor_calibrated" not in models
    assert models["cnn"] == json.loads((run / "metrics.json").read_text())["models"]["cnn"]
    for pid in [f"P{i:02d}" for i in range(1, 6)]:
        p = read_predictions(copy / "predictions" / f"{pid}.csv", list(UNITS))
        cal = p.task == "passive_rom"
        card = json.loads(
            next((copy / "folds").glob(f"*/predictions/{pid}.csv"))
            .parent.parent.joinpath("model", "card.json")
            .read_text()
        )
        sd = {t["name"]: t["sd"] for t in card["targets"]}
        for name in UNITS:
            want = fit_correction(p.mean[name][cal], p.true[name][cal], sd[name])
            got = m["calibration_profiles"]["cnn_calibrated"][pid][name]
            assert got["offset"] == pytest.approx(want.offset)
            assert got["gain"] == pytest.approx(want.gain)
            assert got["n_frames"] == int(cal.sum())
            # the calibrated figures are those of the corrected tracking frames
            track = p.task == "tracking"
            from musclestate.training.metrics import compute_r2

            r2 = compute_r2(p.true[name][track], want.apply(p.mean[name][track]))
            assert models["cnn_calibrated"]["per_participant"][pid][name]["r2"] == pytest.approx(r2)
    # on this data the offset and gain that each person needs are learned from their own trials
    for name in UNITS:
        assert (
            models["cnn_calibrated"]["summary"][name]["r2_mean"]
            > models["mean_predictor"]["summary"][name]["r2_mean"]
        )
    assert "cnn_calibrated" in m["by_trial_type"]["tracking"]["models"]
    assert "cnn_calibrated" not in m["by_trial_type"]["passive_rom"]["models"]
    # other trial types can be the calibration trials, as a lab's protocol names them
    again = json.loads(collect(copy, calibrate=True, calibration_tasks=["tracking"]).read_text())
    assert again["calibrated_on"] == ["tracking"]
    assert "cnn_calibrated" in again["by_trial_type"]["passive_rom"]["models"]
    assert "cnn_calibrated" not in again["models"]  # the headline frames were the calibration
    with pytest.raises(DatasetError, match="no held-out participant has calibration trials"):
        no_cal = tmp_path / "nocal"
        shutil.copytree(run, no_cal)
        for f in no_cal.glob("folds/*/predictions/*.csv"):
            f.write_text(f.read_text().replace("passive_rom", "tracking"))
        collect(no_cal, calibrate=True)


def test_a_fused_estimator_reads_the_measures_and_ships_as_one_model(
    dataset: Path, tmp_path: Path
) -> None:
    from musclestate.dataset import open_dataset
    from musclestate.errors import InputError
    from musclestate.inference.export import OnnxEstimator, export_onnx

    cfg = CFG.replace(fuse_features=True, epochs=4)
    out = train_bundle(dataset, tmp_path / "fused", cfg)
    b = load_bundle(out)
    assert b.feature_inputs == ("f_angle", "f_mg", "f_sol")
    ds = open_dataset(dataset)
    rid = ds.recordings[0].id
    roi = ds.derived("roi")
    patches, feats = roi.get(rid, "patches"), roi.get(rid, "features")
    pred = b.predict(patches, features=feats)
    truth = ds.targets(rid)["mg_activation"]
    assert np.corrcoef(pred["mg_activation"][0], truth)[0, 1] > 0.8
    # the measures change the estimate; an unmeasured value stands at the training mean
    other = b.predict(patches, features=feats + 50.0)
    assert not np.allclose(other["mg_activation"][0], pred["mg_activation"][0])
    gap = feats.copy()
    gap[:, 1] = np.nan
    assert np.isfinite(b.predict(patches, features=gap)["mg_activation"][0]).all()
    with pytest.raises(InputError, match="also reads the architecture measures"):
        b.predict(patches)
    with pytest.raises(InputError, match=r"features must be"):
        b.predict(patches, features=feats[:, :2])
    res = export_onnx(out, tmp_path / "fused.onnx")
    assert res.max_abs_diff <= res.tolerance
    onnx_pred = OnnxEstimator(b, tmp_path / "fused.onnx").predict(patches, features=gap)
    np.testing.assert_allclose(
        onnx_pred["mg_activation"][0],
        b.predict(patches, features=gap)["mg_activation"][0],
        atol=1e-3,
        rtol=1e-3,
    )


def test_cv_of_a_fused_estimator_reports_the_image_only_network_of_the_same_folds(
    dataset: Path, tmp_path: Path
) -> None:
    cfg = CFG.replace(fuse_features=True, epochs=3)
    m = json.loads(run_cv(dataset, tmp_path / "run", cfg, folds=2, calibrate=True).read_text())
    assert {"cnn", "cnn_image_only", "feature_baseline", "mean_predictor"} <= set(m["models"])
    assert {"cnn_calibrated", "cnn_image_only_calibrated"} <= set(m["models"])
    for info in m["folds_info"]:
        fdir = tmp_path / "run" / "folds" / f"fold_{info['index']:02d}"
        card = json.loads((fdir / "model" / "card.json").read_text())
        assert card["input"]["features"] == ["f_angle", "f_mg", "f_sol"]
        assert (fdir / "work_image_only").is_dir()
    for model in ("cnn", "cnn_image_only"):
        s = m["models"][model]["summary"]["ankle_angle"]
        assert s["r2_mean"] > m["models"]["mean_predictor"]["summary"]["ankle_angle"]["r2_mean"]


def test_cv_without_the_image_only_network_trains_one_network_per_fold(
    dataset: Path, tmp_path: Path
) -> None:
    cfg = CFG.replace(fuse_features=True, epochs=2)
    run = tmp_path / "run"
    m = json.loads(run_cv(dataset, run, cfg, folds=2, fold=None, image_only=False).read_text())
    assert {"cnn", "feature_baseline", "mean_predictor"} <= set(m["models"])
    assert "cnn_image_only" not in m["models"]
    assert not any((run / "folds").glob("fold_*/work_image_only"))
    assert json.loads((run / "config.json").read_text())["image_only"] is False
    # the same folder with the image-only network is another run
    with pytest.raises(ConfigError, match="other settings"):
        run_cv(dataset, run, cfg, folds=2, fold=0, image_only=True)
