"""What the command modules share: the error console, a stage progress bar, the DDP rank."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from rich.console import Console

err = Console(stderr=True)


def print_error(message: object) -> None:
    """Print one ``error:`` line on stderr, no traceback."""
    from rich.markup import escape

    # Messages quote TOML and paths ("crop = [x, y, w, h]"): print them as text, not markup.
    err.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False)


def progress_columns(label: str, *, percent: bool = False, detail: bool = True) -> tuple:
    """The columns of every musclestate progress bar: label, bar, count (and percent), rate,
    elapsed, time left (and the current item, dimmed). The rate comes from the task's
    ``rate`` field, the item from its ``detail`` field."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        *([TaskProgressColumn()] if percent else []),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        *([TextColumn("[dim]{task.fields[detail]}")] if detail else []),
    )


@contextlib.contextmanager
def stage_bar(
    con: Console, label: str, *, unit: str, per_minute: bool = False
) -> Iterator[Callable[[int, int | None, str], None]]:
    """A progress bar (count, rate, elapsed, time left, current item) for one long stage.

    Yields the ``progress(done, total, label)`` callback the stage functions take.
    """
    from rich.progress import Progress

    columns = progress_columns(label)
    with Progress(*columns, console=con) as bar:
        task = bar.add_task(label, total=None, rate="", detail="")

        def progress(done: int, total: int | None, item: str) -> None:
            speed = bar.tasks[task].speed
            if speed:
                rate = f"{speed * 60:.1f} {unit}/min" if per_minute else f"{speed:.1f} {unit}/s"
            else:
                rate = ""
            bar.update(task, completed=done, total=total, rate=rate, detail=item[:40])

        yield progress


def rank_zero() -> bool:
    """False in the extra processes a DDP launcher starts (they must not print or write)."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def parse_devices(value: str | None) -> int | str | None:
    """``--devices``: a count such as ``"2"`` becomes 2; ``"auto"`` or a list stays text."""
    return int(value) if value is not None and value.isdigit() else value
