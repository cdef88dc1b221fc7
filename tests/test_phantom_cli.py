"""``musclestate simulate``: delegates to simulate_cohort, one-line errors for bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from musclestate.cli import main


def run(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["musclestate", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return int(exc.value.code or 0)


@pytest.mark.slow
def test_simulate_writes_an_importable_cohort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from musclestate.dataset.manifest import read_manifest

    out = tmp_path / "c"
    rc = run(monkeypatch, "simulate", str(out), "--participants", "1", "--seconds", "0.4",
             "--fps", "10", "--size", "64", "96", "--seed", "2")  # fmt: skip
    assert rc == 0
    m = read_manifest(out / "manifest.toml")
    assert {s.trial for s in m.recordings} == {"mvc", "track_01", "track_02", "rom"}
    assert "manifest.toml" in capsys.readouterr().out
    assert run(monkeypatch, "simulate", str(out), "--participants", "1") == 2
    assert "overwrite" in capsys.readouterr().err


def test_simulate_bad_size_is_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(monkeypatch, "simulate", str(tmp_path / "x"), "--size", "20", "20") == 2
    err = capsys.readouterr().err
    assert "size must be" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()
