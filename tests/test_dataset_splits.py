"""Participant-grouped splits: disjoint, seeded, complete, saved keyed by participant."""

from __future__ import annotations

from pathlib import Path

import pytest

from musclestate.dataset import splits
from musclestate.errors import ConfigError, InputError

PARTICIPANTS = [f"P{i:02d}" for i in range(1, 12)]


@pytest.mark.parametrize("k", [2, 3, 5, 11])
def test_folds_are_participant_disjoint_and_cover_everyone(k: int) -> None:
    # one entry per recording: repeats must not create duplicates
    folds = splits.participant_folds(PARTICIPANTS * 3, k, seed=7)
    assert len(folds) == k
    tested = [p for f in folds for p in f.test]
    assert sorted(tested) == PARTICIPANTS  # everyone tested exactly once
    for f in folds:
        assert not set(f.train) & set(f.test)
        assert sorted(f.train + f.test) == PARTICIPANTS
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= 1


def test_seeded() -> None:
    a = splits.participant_folds(PARTICIPANTS, 4, seed=1)
    assert a == splits.participant_folds(PARTICIPANTS, 4, seed=1)
    assert a != splits.participant_folds(PARTICIPANTS, 4, seed=2)


def test_bad_k() -> None:
    with pytest.raises(ConfigError, match="2 <= k <= 11"):
        splits.participant_folds(PARTICIPANTS, 12, seed=0)
    with pytest.raises(ConfigError, match="both the train and test"):
        splits.Fold(0, ("P1", "P2"), ("P2",))


def test_inner_validation() -> None:
    train, val = splits.inner_validation(PARTICIPANTS[:8], 0.25, seed=3)
    assert len(val) == 2 and not set(train) & set(val)
    assert sorted(train + val) == PARTICIPANTS[:8]
    assert splits.inner_validation(PARTICIPANTS[:8], n=1, seed=3)[1][0] in PARTICIPANTS[:8]
    with pytest.raises(ConfigError, match="at least 2"):
        splits.inner_validation(["P01"], 0.5)


def test_json_round_trip_keyed_by_participant(tmp_path: Path) -> None:
    folds = splits.participant_folds(PARTICIPANTS, 3, seed=0)
    path = splits.save_folds(tmp_path / "splits.json", folds, seed=0)
    doc = splits.folds_to_json(folds, seed=0)
    assert set(doc["participants"]) == set(PARTICIPANTS)
    assert splits.load_folds(path) == folds
    path.write_text(path.read_text().replace('"P01": ', '"P01": 9, "x": '))
    with pytest.raises(InputError):
        splits.load_folds(path)
