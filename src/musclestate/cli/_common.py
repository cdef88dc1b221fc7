"""What the command modules share: the error console, the progress bar, the DDP rank, and the
record of which public function each command calls."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from rich.console import Console

from musclestate.progress import progress_bar

err = Console(stderr=True)

__all__ = ["err", "mirrors", "parse_devices", "print_error", "progress_bar", "rank_zero"]

F = TypeVar("F", bound=Callable)


def mirrors(api_name: str) -> Callable[[F], F]:
    """Mark a command as the command-line form of ``musclestate.<api_name>``.

    Every command carries this mark: the command passes its options to that public function
    (same names), and ``tests/test_cli_api.py`` checks that the two agree.
    """

    def mark(fn: F) -> F:
        fn.__musclestate_api__ = api_name  # type: ignore[attr-defined]
        return fn

    return mark


def print_error(message: object) -> None:
    """Print one ``error:`` line on stderr, no traceback."""
    from rich.markup import escape

    # Messages quote TOML and paths ("crop = [x, y, w, h]"): print them as text, not markup.
    err.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False)


def rank_zero() -> bool:
    """False in the extra processes a DDP launcher starts (they must not print or write)."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def parse_devices(value: str | None) -> int | str | None:
    """``--devices``: a count such as ``"2"`` becomes 2; ``"auto"`` or a list stays text."""
    return int(value) if value is not None and value.isdigit() else value
