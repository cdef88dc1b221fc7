"""The ``musclestate`` command line: one command per API verb, parsing and delegating only.

One module per pipeline stage: :mod:`.data` (import, inspect, probe, simulate), :mod:`.audit`
(the phantom's physiology audit), :mod:`.roi` (the ``roi`` group), :mod:`.architecture` (the
``architecture`` group), :mod:`.training` (train, cv, report, demo) and :mod:`.inference`
(predict, stream, calibrate, export); they are registered on :data:`app` below, in the order
``--help`` lists them.
Each command imports its stage lazily so that ``musclestate --help`` stays fast. Errors of the
project's own types are printed as one line (no traceback) and exit with status 2.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from musclestate import __version__
from musclestate.cli import architecture, audit, data, inference, roi, training
from musclestate.cli._common import print_error
from musclestate.errors import MusclestateError

__all__ = ["app", "main"]

app = typer.Typer(
    name="musclestate",
    help="Estimate muscle state (activation, ankle angle, ankle moment) from B-mode ultrasound.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


app.command("import")(data.import_cmd)
app.command("inspect")(data.inspect_cmd)
app.command("probe")(data.probe_cmd)
app.command("simulate")(data.simulate_cmd)
app.command("audit")(audit.audit_cmd)
app.add_typer(roi.roi_app, name="roi")
app.add_typer(architecture.architecture_app, name="architecture")
app.command("train")(training.train_cmd)
app.command("cv")(training.cv_cmd)
app.command("report")(training.report_cmd)
app.command("demo")(training.demo_cmd)
app.command("predict")(inference.predict_cmd)
app.command("stream")(inference.stream_cmd)
app.command("calibrate")(inference.calibrate_cmd)
app.command("export")(inference.export_cmd)


def main() -> None:
    """Entry point of the ``musclestate`` script."""
    try:
        app()
    except (MusclestateError, FileExistsError) as exc:
        print_error(exc)
        sys.exit(2)
