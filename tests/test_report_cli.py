"""`musclestate report` and the terminal metrics table."""

from __future__ import annotations

import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from musclestate.cli import app
from musclestate.report import metrics_table
from test_report_html import UNITS, make_fake_run


@pytest.mark.slow
def test_report_command_writes_html_and_prints_the_summary(tmp_path):
    run = make_fake_run(tmp_path / "run", participants=2, frames=20)
    out = tmp_path / "nested" / "report.html"
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(out), "--examples", "0"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.read_text().startswith("<!DOCTYPE html>")
    assert str(out) in result.output
    metrics = json.loads((run / "metrics.json").read_text())
    cnn_r2 = metrics["models"]["cnn"]["summary"]["ankle_moment"]["r2_mean"]
    assert f"{cnn_r2:.3f}" in result.output


def test_report_command_on_a_missing_run_fails_with_a_message(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code != 0
    assert "run folder not found" in str(result.exception)


def test_metrics_table_has_a_row_per_target_and_model(tmp_path):
    run = make_fake_run(tmp_path / "run", participants=2, frames=20)
    metrics = json.loads((run / "metrics.json").read_text())
    con = Console(record=True, width=120)
    con.print(metrics_table(metrics))
    text = con.export_text()
    for name, unit in UNITS.items():
        assert f"{name} ({unit})" in text
    assert text.count("CNN") == len(UNITS)
    assert text.count("mean predictor") == len(UNITS)
    assert text.count("feature baseline") == len(UNITS)
    for summ in metrics["models"]["feature_baseline"]["summary"].values():
        assert f"{summ['r2_mean']:.3f} ± {summ['r2_sd']:.3f}" in text
