"""Fuzzing the manifest parser and the CLI's error path: any input gives the project's own error
types (one line from the CLI, no traceback), never a crash from deep inside."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musclestate.dataset import read_manifest
from musclestate.dataset.manifest import _RECORDING_KEYS
from musclestate.errors import MusclestateError

pytestmark = pytest.mark.slow  # trains networks or runs whole workflows

KEYS = [*sorted(_RECORDING_KEYS), "method", "channel", "unit", "emg", "mvc", "value", "trial"]

scalars = st.one_of(
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.sampled_from(["", "P01", "angle", "trigger", "index", "offset", "frames", "x.csv", "deg"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=8,
)


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    assert isinstance(v, dict)
    return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    defaults=st.dictionaries(st.sampled_from(KEYS), values, max_size=5),
    recs=st.lists(st.dictionaries(st.sampled_from(KEYS), values, max_size=8), max_size=3),
)
def test_random_manifests_raise_only_project_errors(tmp_path: Path, defaults, recs) -> None:
    lines = ["[defaults]"] + [f"{k} = {toml_value(v)}" for k, v in defaults.items()]
    for r in recs:
        lines += ["[[recording]]"] + [f"{k} = {toml_value(v)}" for k, v in r.items()]
    path = tmp_path / "m.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        read_manifest(path)
    except MusclestateError:
        pass


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=200))
def test_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "m.toml"
    path.write_bytes(data)
    with pytest.raises(MusclestateError):
        read_manifest(path)


@pytest.mark.parametrize(
    "args", [["inspect", "{tmp}/nothing"], ["import", "{tmp}/m.toml", "--out", "{tmp}/ds"]]
)
def test_cli_errors_are_one_line(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "m.toml").write_text('[[recording]]\nparticipant = "P01"\n')
    cmd = [sys.executable, "-m", "musclestate.cli", *(a.format(tmp=tmp_path) for a in args)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.startswith("error:") and str(tmp_path) in res.stderr
