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


@app.command("import")
def import_cmd(
    manifest: Annotated[Path, typer.Argument(help="TOML import manifest (see docs/manifest.md).")],
    out: Annotated[Path, typer.Option("--out", help="Dataset folder to create.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing dataset at --out.")] = False,
    compression: Annotated[
        str, typer.Option(help="Frame compression: gzip (level 1), lzf or none.")
    ] = "gzip",
) -> None:
    """Import a lab's recordings listed in a TOML manifest into a dataset."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from musclestate.dataset import import_manifest, open_dataset

    con = Console()
    columns = (
        TextColumn("import"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        TextColumn("[dim]{task.fields[detail]}"),
    )
    with Progress(*columns, console=con) as bar:
        task = bar.add_task("import", total=None, rate="", detail="")

        def progress(done: int, total: int | None, label: str) -> None:
            speed = bar.tasks[task].speed
            rate = f"{speed * 60:.1f} rec/min" if speed else ""
            bar.update(task, completed=done, total=total, rate=rate, detail=label[:40])

        path = import_manifest(
            manifest, out, overwrite=overwrite, progress=progress, compression=compression
        )
    s = open_dataset(path).summary()
    con.print(
        f"dataset {path}: {s['recordings']} recordings, {s['participants']} participants, "
        f"{s['frames']} frames"
    )


@app.command("inspect")
def inspect_cmd(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show what a dataset holds: recordings, participants, frames, targets (unit, min, max)."""
    import json

    from rich.table import Table

    from musclestate.dataset import open_dataset

    with open_dataset(dataset) as ds:
        s = ds.summary()
    if as_json:
        typer.echo(json.dumps(s, indent=2))
        return
    con = Console()
    shapes = s["frame_shapes"]
    shape = "x".join(map(str, s["frame_shape"])) if s["frame_shape"] else ", ".join(shapes)
    con.print(
        f"[bold]{s['path']}[/]: {s['recordings']} recordings, {s['participants']} participants, "
        f"{s['frames']} frames of {shape} px"
    )
    t = Table(title="targets")
    for col in ("target", "unit", "min", "max"):
        t.add_column(col, justify="right" if col in ("min", "max") else "left")
    for name, v in s["targets"].items():
        t.add_row(name, v["unit"], f"{v['min']:.4g}", f"{v['max']:.4g}")
    con.print(t)
    r = Table(title="recordings")
    for col in ("id", "participant", "trial", "task", "frames"):
        r.add_column(col, justify="right" if col == "frames" else "left")
    for rid, v in s["per_recording"].items():
        r.add_row(rid, v["participant"], v["trial"], v["task"], str(v["frames"]))
    con.print(r)
    if s["derived"]:
        con.print(f"derived groups: {', '.join(s['derived'])}")


# ---- phantom: simulate -------------------------------------------------------------------------

# ---- roi: roi train / evaluate / show ----------------------------------------------------------

# ---- estimation: train, cv, cv collect, report, demo -------------------------------------------

# (report, demo)


@app.command("report")
def report_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder written by `musclestate cv`.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write [default: RUN/report.html].")
    ] = None,
    examples: Annotated[int, typer.Option(help="Example frames with their ROI overlay.")] = 4,
) -> None:
    """Write one self-contained HTML report of a cross-validation run."""
    import json

    from musclestate.report import metrics_table, write_report

    path = write_report(run, out, n_examples=examples)
    con = Console()
    con.print(metrics_table(json.loads((run / "metrics.json").read_text(encoding="utf-8"))))
    con.print(f"report: {path}")


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo-output"),
    participants: Annotated[int | None, typer.Option(help="Phantom participants.")] = None,
    seconds: Annotated[float | None, typer.Option(help="Seconds recorded per participant.")] = None,
    fps: Annotated[float | None, typer.Option(help="Simulated frame rate.")] = None,
    folds: Annotated[int | None, typer.Option(help="Cross-validation folds.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum training epochs.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of cohort and training.")] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Reuse an --out folder that is not a previous demo output.")
    ] = False,
) -> None:
    """Simulate a phantom cohort, import it, find the muscle, cross-validate, write a report."""
    import dataclasses

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from musclestate.demo import STAGES, DemoConfig, run_demo
    from musclestate.report import metrics_table

    cfg = DemoConfig()
    given = {"participants": participants, "seconds": seconds, "fps": fps, "folds": folds}
    given["seed"] = seed
    cfg = dataclasses.replace(cfg, **{k: v for k, v in given.items() if v is not None})
    if epochs is not None:
        cfg = dataclasses.replace(cfg, train={**cfg.train, "epochs": epochs})
    con = Console()
    con.print(
        f"demo: {cfg.participants} phantom participants x {cfg.seconds:g} s at {cfg.fps:g} fps, "
        f"{cfg.size[0]}x{cfg.size[1]} px, {cfg.folds}-fold participant-wise CV -> {out}"
    )
    columns = (
        TextColumn("{task.description:<15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        TextColumn("[dim]{task.fields[detail]}"),
    )
    with Progress(*columns, console=con) as bar:
        tasks = {s: bar.add_task(s, total=None, start=False, rate="", detail="") for s in STAGES}

        def progress(stage: str, done: int, total: int | None, detail: str) -> None:
            task = tasks[stage]
            if not bar.tasks[task].started:
                bar.start_task(task)
            for s in STAGES[: STAGES.index(stage)]:
                t = bar.tasks[tasks[s]]
                if not t.finished:
                    bar.update(tasks[s], total=t.completed or 1, completed=t.completed or 1)
            speed = bar.tasks[task].speed
            rate = f"{speed:.1f}/s" if speed else ""
            bar.update(task, completed=done, total=total, rate=rate, detail=detail[:40])

        result = run_demo(out, cfg, overwrite=overwrite, progress=progress)
        for s in STAGES:
            t = bar.tasks[tasks[s]]
            bar.update(tasks[s], total=t.completed or 1, completed=t.completed or 1)
    con.print(metrics_table(result.metrics))
    con.print(f"wall time {result.timings_s['total'] / 60:.1f} min; report: {result.report}")


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
