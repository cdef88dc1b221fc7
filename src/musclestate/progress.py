"""Progress of long stages: one event type for every stage, one callback shape.

Every long-running public function (simulate, import, ROI, training, cross-validation,
prediction, segmenter evaluation, the demo) takes ``progress``: a callable that receives a
:class:`ProgressEvent` as the work advances. :func:`progress_bar` turns the events into rich
progress bars (what the command line shows); a notebook or a GUI can draw its own. Library code
never prints progress itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    """How far one stage (or one part of a stage) has come.

    Attributes:
        stage: what runs: ``"simulate"``, ``"import"``, ``"roi"``, ``"load"`` (reading a
            dataset for training), ``"train"``, ``"evaluate"``, ``"predict"``, or one of the
            demo's :data:`musclestate.demo.STAGES`.
        done: units finished so far (within this part).
        total: units in all (within this part); ``None`` while unknown.
        unit: what is counted: ``"frames"``, ``"recordings"``, ``"epochs"``, ``"images"``.
        message: the item being worked on (a recording id, a file name), or ``""``.
        part: 0-based index of this part when a stage repeats a sub-task (fold ``part`` of
            ``parts`` folds); 0 otherwise.
        parts: number of parts of the stage (1 when it has none).
    """

    stage: str
    done: int
    total: int | None
    unit: str
    message: str = ""
    part: int = 0
    parts: int = 1

    def __post_init__(self) -> None:
        if self.done < 0 or (self.total is not None and self.total < 0):
            raise ValueError(f"progress counts must be >= 0, got {self.done}/{self.total}")
        if not 0 <= self.part < max(self.parts, 1):
            raise ValueError(f"progress part {self.part} is outside 0..{self.parts - 1}")

    @property
    def label(self) -> str:
        """``stage``, or ``"stage k/K"`` for part k (1-based) of K."""
        return self.stage if self.parts == 1 else f"{self.stage} {self.part + 1}/{self.parts}"

    def replace(self, **changes: object) -> ProgressEvent:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


#: The one callback shape of every long stage.
ProgressFn = Callable[[ProgressEvent], None]


def emit(progress: ProgressFn | None, *args: object, **kwargs: object) -> None:
    """Call ``progress(ProgressEvent(*args, **kwargs))`` when ``progress`` is given."""
    if progress is not None:
        progress(ProgressEvent(*args, **kwargs))


def _rate(speed: float | None, unit: str) -> str:
    if not speed:
        return ""
    if unit == "epochs":
        return f"{speed * 60:.1f} {unit}/min"
    return f"{speed:.1f} {unit}/s" if unit else f"{speed:.1f}/s"


@contextlib.contextmanager
def progress_bar(
    console: Any = None, *, stages: Sequence[str] = (), disable: bool = False
) -> Iterator[ProgressFn]:
    """A rich progress display for the events of any stage: one row per stage (or part).

    What the command line shows; usable from scripts too. ``console``: a ``rich.console.Console``
    (default: stderr). Yields the ``progress`` callback the public functions take. Each
    :class:`~musclestate.progress.ProgressEvent` updates the row of its ``label`` (created on
    first use, or named in advance by ``stages``) with count, rate in the event's unit, elapsed
    time, time left and the current item. A row whose successor has started is shown complete
    (early stopping ends a fold before its maximum epochs), and so is every row at the end.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description:<15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        TextColumn("[dim]{task.fields[detail]}"),
    )
    with Progress(*columns, console=console or Console(stderr=True), disable=disable) as bar:
        rows: dict[str, int] = {
            s: bar.add_task(s, total=None, start=False, rate="", detail="") for s in stages
        }
        order = list(stages)

        def finish(task: int) -> None:
            t = bar.tasks[task]
            if t.started and not t.finished:
                bar.update(task, total=t.completed or 1, completed=t.completed or 1)

        def progress(e: ProgressEvent) -> None:
            if e.label not in rows:
                rows[e.label] = bar.add_task(e.label, total=None, start=False, rate="", detail="")
                order.append(e.label)
            task = rows[e.label]
            if not bar.tasks[task].started:
                bar.start_task(task)
                for earlier in order[: order.index(e.label)]:
                    finish(rows[earlier])
            bar.update(task, completed=e.done, total=e.total, detail=e.message[:40])
            bar.update(task, rate=_rate(bar.tasks[task].speed, e.unit))

        yield progress
        for label in order:
            finish(rows[label])
