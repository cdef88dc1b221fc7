"""The ``musclestate`` command line: one command per API verb, parsing and delegating only.

Each command imports its stage lazily so that ``musclestate --help`` stays fast. Errors of the
project's own types are printed as one line (no traceback) and exit with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path  # noqa: F401  (used by the commands below)
from typing import Annotated

import typer
from rich.console import Console

from musclestate import __version__
from musclestate.errors import MusclestateError

app = typer.Typer(
    name="musclestate",
    help="Estimate muscle state (activation, ankle angle, ankle moment) from B-mode ultrasound.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"musclestate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """musclestate command line."""


# ---- io / dataset: import, inspect -------------------------------------------------------------

# ---- phantom: simulate -------------------------------------------------------------------------

# ---- roi: roi train / evaluate / show ----------------------------------------------------------

# ---- estimation: train, cv, cv collect, report, demo -------------------------------------------

# ---- inference: predict, stream, export --------------------------------------------------------


def main() -> None:
    """Entry point of the ``musclestate`` script."""
    try:
        app()
    except MusclestateError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except FileExistsError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
