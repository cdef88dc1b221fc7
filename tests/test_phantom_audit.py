"""The phantom's physiology, one table-driven test per audit row (issue 13).

A 10-participant cohort at the default settings (physiology, protocol and between-person ranges;
only the frames are small, 64 x 64, which no cue depends on) must show every cue of muscle state
inside its published range; the audit must name the cues the issue lists, print them as JSON, and
catch a cohort whose ground truth leaves a range.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from musclestate.cli import app
from musclestate.errors import InputError
from musclestate.phantom import PhantomConfig, audit_cohort, simulate_cohort
from musclestate.phantom.audit import CUE_NAMES, read_truth

pytestmark = pytest.mark.slow  # simulates a ten-person cohort once per module

ISSUE_NAMES = (
    "mg_fascicle_shortening_rest_to_mvc_pct",
    "mg_pennation_rise_rest_to_mvc_deg",
    "mg_pennation_mvc_deg",
    "mg_thickness_change_rest_to_mvc_pct",
    "sol_thickness_change_rest_to_mvc_mm",
    "deep_apo_angle_change_rest_to_mvc_deg",
    "mg_curvature_rest_per_m",
    "mg_curvature_mvc_per_m",
    "mg_fascicle_shortening_passive_pct",
    "mg_pennation_rise_passive_deg",
    "mg_sol_activation_r_within_person",
    "mvc_moment_vs_triceps_size_r",
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit") / "cohort"
    simulate_cohort(out, config=PhantomConfig(participants=10, size=(64, 64), seed=0))
    return out


@pytest.fixture(scope="module")
def audit(cohort: Path, shared_data: Path):
    return audit_cohort(cohort, real_data=shared_data)


def test_audit_names_every_cue_of_the_issue() -> None:
    assert set(ISSUE_NAMES) <= set(CUE_NAMES)


@pytest.mark.parametrize("name", CUE_NAMES)
def test_cue_inside_its_published_range(audit, name: str) -> None:
    r = audit[name]
    assert np.isfinite(r.value), name
    assert r.low <= r.value <= r.high, f"{name} = {r.value:.3f} outside {r.low}..{r.high}"


def test_json_has_the_cues_with_value_unit_range_and_source(cohort: Path) -> None:
    res = CliRunner().invoke(app, ["audit", str(cohort), "--json"])
    assert res.exit_code == 0, res.output
    cues = json.loads(res.output)["cues"]
    assert set(ISSUE_NAMES) <= set(cues)
    for name, c in cues.items():
        assert isinstance(c["value"], float), name
        assert isinstance(c["unit"], str) and isinstance(c["source"], str) and c["source"]
        assert c["low"] < c["high"], name


def test_human_table_names_the_cues_and_the_verdict(cohort: Path) -> None:
    res = CliRunner().invoke(app, ["audit", str(cohort)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "mg_curvature_mvc_per_m" in res.output
    assert "every cue inside its range" in res.output


def test_real_participant_values_from_the_labels(audit) -> None:
    # Observers' labels of the real drazan2019-mg participant (timtrack-architecture dataset 3).
    pen_rest = audit["mg_pennation_rest_deg"].real
    pen_mvc = audit["mg_pennation_mvc_deg"].real
    assert pen_rest is not None and pen_mvc is not None
    assert 15.0 < pen_rest < 30.0 and 40.0 < pen_mvc < 55.0
    assert audit["mg_thickness_change_rest_to_mvc_pct"].real < -3.0
    assert abs(audit["deep_apo_angle_change_rest_to_mvc_deg"].real) < 0.5


def test_audit_catches_a_cohort_outside_the_ranges(cohort: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(cohort, bad, ignore=shutil.ignore_patterns("*.mp4", "*.npz"))
    # The issue-3 phantom's cues: a deep aponeurosis turned by 1.5 deg at MVC, and fascicles
    # bowed at 6 1/m at rest and 23 1/m at MVC.
    for path in [*bad.glob("P*/mvc/truth.csv"), *bad.glob("P*/rom/truth.csv")]:
        truth = read_truth(path)
        header = list(truth)
        act = truth["mg_activation [1]"]
        act = (act - act.min()) / max(np.ptp(act), 1e-9)
        truth["deep_apo_slope [1]"] = np.tan(
            np.arctan(truth["deep_apo_slope [1]"]) - np.radians(1.5) * act
        )
        truth["mg_curvature [1/m]"] = 6.0 + 17.0 * act
        with path.open("w") as f:
            f.write(",".join(header) + "\n")
            np.savetxt(f, np.column_stack([truth[h] for h in header]), fmt="%.6g", delimiter=",")
    a = audit_cohort(bad)
    outside = {r.cue.name for r in a.results if not r.inside}
    assert outside == {
        "deep_apo_angle_change_rest_to_mvc_deg",
        "mg_curvature_rest_per_m",
        "mg_curvature_mvc_per_m",
    }
    assert not a.passed


def test_audit_refuses_a_folder_that_is_not_a_cohort(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"cohort\.json"):
        audit_cohort(tmp_path)
