"""One progress event type for every long stage, and the bar that shows it."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from musclestate.progress import ProgressEvent, emit, progress_bar


def test_event_checks_itself_and_names_its_part():
    e = ProgressEvent("train", 3, 30, "epochs", part=1, parts=4)
    assert e.label == "train 2/4"
    assert ProgressEvent("roi", 0, None, "frames").label == "roi"
    assert e.replace(done=4).done == 4 and e.done == 3
    with pytest.raises(ValueError, match="part 4"):
        ProgressEvent("train", 0, 30, "epochs", part=4, parts=4)
    with pytest.raises(ValueError, match=">= 0"):
        ProgressEvent("roi", -1, 10, "frames")


def test_emit_calls_only_a_given_callback():
    seen: list[ProgressEvent] = []
    emit(None, "import", 1, 2, "recordings")
    emit(seen.append, "import", 1, 2, "recordings", "P01-t1")
    assert seen == [ProgressEvent("import", 1, 2, "recordings", "P01-t1")]


def test_bar_has_a_row_per_stage_and_completes_earlier_rows():
    out = io.StringIO()
    con = Console(file=out, width=120, force_terminal=False)
    with progress_bar(con, stages=("simulate", "import")) as progress:
        progress(ProgressEvent("simulate", 5, 10, "frames", "P01"))
        progress(ProgressEvent("import", 1, 4, "recordings", "P01-t1"))
        progress(ProgressEvent("train", 2, 30, "epochs", part=0, parts=2))
    text = out.getvalue()
    assert "simulate" in text and "import" in text and "train 1/2" in text
    # a row whose successor started is shown complete: 5 of 10 frames became 5/5
    assert "5/5" in text and "1/1" in text


def test_training_reports_epochs_as_parts_and_ensemble_members_in_one_row():
    from musclestate.training.module import EpochProgress, _member_progress

    seen: list[ProgressEvent] = []
    cb = EpochProgress(seen.append, total=10, part=2, parts=4)
    cb.on_train_epoch_end(SimpleNamespace(is_global_zero=True, current_epoch=4), None)
    cb.on_train_epoch_end(SimpleNamespace(is_global_zero=False, current_epoch=5), None)
    assert seen == [ProgressEvent("train", 5, 10, "epochs", part=2, parts=4)]
    member = _member_progress(seen.append, 1, 3)
    member(ProgressEvent("train", 5, 10, "epochs"))
    assert (seen[-1].done, seen[-1].total) == (15, 30)
