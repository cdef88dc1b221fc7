"""The demo: configuration, output folder rules, and one tiny end-to-end run of the real path."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from musclestate.cli import app
from musclestate.demo import CONFIG_FILE, STAGES, DemoConfig, load_demo_config, run_demo
from musclestate.errors import ConfigError, InputError

#: The smallest demo that still runs every stage for real: 4 phantom participants, 2 folds
#: (each fold: 1 training, 1 validation and 2 test participants).
TINY = {
    "participants": 4,
    "seconds": 3.0,
    "fps": 10.0,
    "size": [96, 96],
    "tracking_trials": 1,
    "mvc_seconds": 1.0,
    "rom_seconds": 1.0,
    "folds": 2,
    "seed": 0,
    "roi": {"every": 2},
    "train": {"epochs": 2, "patience": 1, "image_size": [16, 16], "batch_size": 16},
}


def test_demo_config_round_trips_and_resolves_every_stage():
    cfg = DemoConfig.from_dict(TINY)
    d = cfg.to_dict()
    assert DemoConfig.from_dict(json.loads(json.dumps(d))) == cfg
    resolved = d["resolved"]
    assert resolved["phantom"]["participants"] == 4 and resolved["phantom"]["size"] == [96, 96]
    assert resolved["phantom"]["protocol"]["tracking_trials"] == 1
    assert resolved["train"]["optimisation"]["epochs"] == 2 and resolved["train"]["seed"] == 0
    # Defaults of the stages are filled in, not left implicit.
    assert "lr" in resolved["train"]["optimisation"] and "patches" in resolved["roi"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"participants": 2}, "participants must be >= 3"),
        ({"folds": 5}, "folds must be in 2..participants"),
        ({"participants": 3}, "fewer than 2"),
        ({"size": [95, 96]}, "size"),
        ({"fps": 0.0}, "fps"),
        ({"train": {"epochz": 3}}, "unknown training setting"),
        ({"roi": {"evry": 2}}, "unknown ROI setting"),
        ({"colour": "blue"}, "unknown demo setting"),
    ],
)
def test_demo_config_rejects_bad_values_before_any_work(change, message):
    with pytest.raises(ConfigError, match=message):
        DemoConfig.from_dict({**TINY, **change})


def test_load_demo_config_names_the_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_demo_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match="JSON object"):
        load_demo_config(bad)


def test_demo_refuses_a_folder_that_is_not_a_demo_output(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a previous demo output"):
        run_demo(tmp_path, DemoConfig.from_dict(TINY))
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.slow
def test_tiny_demo_runs_every_stage_end_to_end_through_the_command_line(tmp_path):
    cfg_file = tmp_path / "tiny.json"
    cfg_file.write_text(json.dumps(TINY))
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--config", str(cfg_file)])
    assert result.exit_code == 0, result.output + repr(result.exception)

    # The resolved configuration of every stage is saved next to the results.
    saved = json.loads((out / CONFIG_FILE).read_text())
    assert saved == json.loads(json.dumps(DemoConfig.from_dict(TINY).to_dict()))
    run_cfg = json.loads((out / "run" / "config.json").read_text())
    assert run_cfg["train"] == saved["resolved"]["train"]
    assert run_cfg["dataset"]["location"] == str((out / "dataset").resolve())

    # Cross-validation covered every participant once, for every target and model.
    metrics = json.loads((out / "run" / "metrics.json").read_text())
    targets = {"ankle_angle", "ankle_moment", "mg_activation", "sol_activation"}
    assert set(metrics["targets"]) == targets and metrics["folds"] == 2
    zero_shot = {"cnn", "mean_predictor", "feature_baseline"}
    calibrated = {"cnn_calibrated", "feature_baseline_calibrated"}
    assert set(metrics["models"]) == zero_shot | calibrated
    assert metrics["frames"] == "tracking" and "mvc" in metrics["calibrated_on"]
    for model in metrics["models"].values():
        assert set(model["per_participant"]) == {"P01", "P02", "P03", "P04"}
        for per in model["per_participant"].values():
            assert set(per) == targets
            assert all(isinstance(per[t]["rmse"], float) for t in targets)
    assert sorted(p.name for p in (out / "run" / "predictions").iterdir()) == [
        "P01.csv",
        "P02.csv",
        "P03.csv",
        "P04.csv",
    ]

    # The report shows the example frames from the imported dataset's ROI group.
    html = (out / "run" / "report.html").read_text()
    frames = html[html.index("id=frames") : html.index("id=config")]
    assert "class=note" not in frames and "data:image/png;base64," in frames

    # Every stage ran and was timed; the terminal shows progress, the table and the report.
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings) == {*STAGES, "total"} and all(v > 0 for v in timings.values())
    for stage in STAGES:
        assert stage in result.output
    cnn = metrics["models"]["cnn"]["summary"]["ankle_angle"]
    assert f"{cnn['r2_mean']:.3f} ± {cnn['r2_sd']:.3f}" in re.sub(r"\s+", " ", result.output)
    assert "report.html" in result.output
    assert "zero-shot" in result.output and "calibrated on each held-out" in result.output
