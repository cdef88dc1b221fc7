"""examples/drazan2019/run.py: push groups, leave-one-group-out folds and the stages wired up.

The full 25-clip workflow takes 20-35 minutes on the shared two cores (the example's README
gives the command); here three short clips (one push each of the 500 deg/s trial) go through
every stage with tiny settings, to check that the stages hand each other the right files and
that held-out groups stay out of training.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from musclestate.dataset import open_dataset
from musclestate.dataset.splits import participant_folds

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "drazan2019"
CLIPS = (
    "p6_isokinetic500_01_push_01",
    "p6_isokinetic500_01_push_02",
    "p6_isokinetic500_01_push_03",
)


@pytest.fixture(scope="module")
def run_py():
    spec = importlib.util.spec_from_file_location("drazan_run", EXAMPLE / "run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["drazan_run"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    ("trial", "group"),
    [
        ("isokinetic030_01_push_01", "push_01"),
        ("isokinetic500_02_push_03", "push_03"),
        ("isometric_max_01_push_04", "push_04-06"),
        ("passive_ROM_01_push_06", "push_04-06"),
    ],
)
def test_push_group(run_py, trial: str, group: str) -> None:
    assert run_py.push_group(trial) == group


def test_push_group_rejects_other_names(run_py) -> None:
    with pytest.raises(Exception, match="_push_NN"):
        run_py.push_group("isokinetic030_01")


def test_every_clip_has_a_group_spanning_contraction_types(run_py, drazan_dir: Path) -> None:
    stems = sorted(p.stem.removeprefix("p6_") for p in (drazan_dir / "clips").glob("*.mp4"))
    assert len(stems) == 25
    groups: dict[str, set[str]] = {}
    for s in stems:
        groups.setdefault(run_py.push_group(s), set()).add(s.split("_0")[0])
    assert sorted(groups) == ["push_01", "push_02", "push_03", "push_04-06"]
    # Every held-out group holds at least two contraction types, so its R^2 is not computed
    # on one kind of movement only.
    assert all(len(kinds) >= 2 for kinds in groups.values())


def test_leave_one_group_out_folds() -> None:
    groups = ("push_01", "push_02", "push_03", "push_04-06")
    folds = participant_folds(groups, 4, seed=0)
    assert sorted(g for f in folds for g in f.test) == sorted(groups)
    for f in folds:
        assert len(f.test) == 1
        assert not set(f.test) & set(f.train)
        assert set(f.test) | set(f.train) == set(groups)


@pytest.fixture(scope="module")
def workflow(run_py, drazan_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("drazan_run")
    cfg = run_py.WorkflowConfig(
        folds=3,
        roi={"every": 8, "batch_size": 8},
        train={
            "targets": ["ankle_angle", "ankle_moment"],
            "image_size": [16, 16],
            "frame_stride": 3,
            "epochs": 1,
            "patience": 1,
            "batch_size": 8,
            "num_threads": 1,
            "network_params": {"widths": [8, 16]},
            "seed": 0,
        },
        overlay_frames=2,
        overlay_clips=("isokinetic500_01_push_02",),
    )
    summary = run_py.run_workflow(drazan_dir, out, cfg, clips=CLIPS)
    return out, summary


def test_import_groups_clips_and_keeps_targets(workflow, run_py, drazan_dir: Path) -> None:
    out, _ = workflow
    ds = open_dataset(out / "dataset")
    assert ds.participants == ("push_01", "push_02", "push_03")
    pushes = run_py.import_drazan.load_pushes(drazan_dir)
    for info in ds.recordings:
        assert info.meta["extra"]["participant"] == "p6"
        assert info.participant == run_py.push_group(info.trial)
        push = pushes[f"p6_{info.trial}"]
        idx = np.atleast_1d(push.frameInds).astype(int) - 1
        np.testing.assert_allclose(ds.targets(info.id)["ankle_angle"], push.POS[idx])
        np.testing.assert_allclose(ds.targets(info.id)["ankle_moment"], push.TOR[idx])


def test_roi_stage_finds_the_muscle_and_draws_overlays(workflow) -> None:
    out, summary = workflow
    found = summary["roi_found_fraction"]
    assert len(found) == 3
    assert min(found.values()) > 0.9, found
    pngs = sorted((out / "roi_overlays").glob("*.png"))
    assert 1 <= len(pngs) <= 2
    from PIL import Image

    assert Image.open(pngs[0]).size == (720, 574)


def test_cv_holds_each_group_out_of_training(workflow) -> None:
    out, _ = workflow
    metrics = json.loads((out / "cv" / "metrics.json").read_text())
    assert metrics["groups"]["scheme"] == "leave-one-push-group-out"
    assert set(metrics["models"]["cnn"]["per_participant"]) == {"push_01", "push_02", "push_03"}
    for info in metrics["folds_info"]:
        seen = set(info["train"]) | set(info["validation"])
        assert not seen & set(info["test"])
        assert len(info["test"]) == 1
    for m in ("cnn", "mean_predictor", "feature_baseline"):
        s = metrics["models"][m]["summary"]["ankle_angle"]
        assert s["n_participants"] == 3
        assert np.isfinite(s["rmse_mean"])


def test_bundle_and_figures(workflow) -> None:
    out, summary = workflow
    card = json.loads((out / "bundle" / "card.json").read_text())
    assert {t["name"] for t in card["targets"]} == {"ankle_angle", "ankle_moment"}
    assert (out / "bundle" / "model.safetensors").stat().st_size > 0
    for name in ("ankle_angle", "ankle_moment"):
        assert (out / "figures" / f"traces_{name}.png").stat().st_size > 10_000
    assert {r["target"] for r in summary["cv"]} == {"ankle_angle", "ankle_moment"}
    saved = json.loads((out / "workflow.json").read_text())
    assert saved["config"]["folds"] == 3
    assert set(saved["seconds"]) == {"import", "roi", "cv", "bundle", "figures"}
    # these isokinetic clips alone hold no calibration trials: no calibrated figures, said so
    assert saved["calibration"] == [] and saved["config"]["calibration_tasks"]
