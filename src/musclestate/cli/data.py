"""Data in: ``import``, ``inspect``, ``probe`` (io and dataset) and ``simulate`` (phantom)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from musclestate.cli._common import stage_bar


def import_cmd(
    manifest: Annotated[Path, typer.Argument(help="TOML import manifest (see docs/manifest.md).")],
    out: Annotated[Path, typer.Option("--out", help="Dataset folder to create.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing dataset at --out.")] = False,
    compression: Annotated[
        str, typer.Option(help="Frame compression: gzip (level 1), lzf or none.")
    ] = "gzip",
) -> None:
    """Import a lab's recordings listed in a TOML manifest into a dataset."""
    from musclestate.dataset import import_manifest, open_dataset

    con = Console(soft_wrap=True)
    with stage_bar(con, "import", per_minute=True, unit="rec") as progress:
        path = import_manifest(
            manifest, out, overwrite=overwrite, progress=progress, compression=compression
        )
    s = open_dataset(path).summary()
    con.print(
        f"dataset {path}: {s['recordings']} recordings, {s['participants']} participants, "
        f"{s['frames']} frames"
    )


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
    con = Console(soft_wrap=True)
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


def probe_cmd(
    path: Annotated[Path, typer.Argument(help="Video, DICOM, image folder or signal file.")],
    crop: Annotated[
        tuple[int, int, int, int] | None,
        typer.Option("--crop", help="B-mode area X Y W H (0-based pixels)."),
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option(
            help="Frame rate of an image folder or TIFF stack (frames/s); replaces a video's "
            "or DICOM's timing."
        ),
    ] = None,
    mat_group: Annotated[
        str | None, typer.Option(help="Struct in a .mat file, e.g. clips.trial.push_01.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show what a media or signal file holds, as the importer will read it."""
    import json

    from rich.markup import escape

    from musclestate.io import probe

    info = probe(path, crop=crop, fps=fps, mat_group=mat_group)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    con = Console(soft_wrap=True)
    if info["kind"] == "signals":
        from rich.table import Table

        t = Table(title=str(path))
        for col in ("name", "unit", "samples", "rate_hz", "t_start_s", "t_end_s"):
            t.add_column(col, justify="left" if col in ("name", "unit") else "right")
        for row in info["channels"]:
            t.add_row(*(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row.values()))
        con.print(t)
        for key, value in info["notes"].items():
            con.print(f"{key}: {value}", highlight=False, markup=False)
        return
    h, w = info["frame_shape"]
    if "problem" in info:
        con.print(
            f"{path} ({info['kind']}): {info['frames']} frames of {w}x{h} px (WxH)\n"
            f"{info['problem']}",
            highlight=False,
            markup=False,
        )
        return
    sp = info["pixel_spacing_mm"]
    spacing = f"{sp[0]:.4g} x {sp[1]:.4g} mm/px ({info['spacing_source']})" if sp else "unknown"
    con.print(
        f"[bold]{escape(str(path))}[/] ({info['kind']}): {info['frames']} frames of {w}x{h} px "
        f"(WxH), {info['fps']:.3g} frames/s over {info['duration_s']:.3f} s "
        f"({info['time_source']})\npixel spacing: {escape(spacing)}"
        + ("" if info["repeated_frames"] is None else f"; repeated: {info['repeated_frames']}"),
        highlight=False,
        soft_wrap=True,
    )
    for key, value in info["corrections"].items():
        con.print(f"{key}: {value}", highlight=False, markup=False)


def simulate_cmd(
    out: Annotated[Path, typer.Argument(help="Folder to write the cohort into (new or empty).")],
    participants: Annotated[int, typer.Option(help="Number of participants.")] = 4,
    seconds: Annotated[float, typer.Option(help="Tracking seconds per participant.")] = 30.0,
    fps: Annotated[float, typer.Option(help="Scanner frame rate (frames/s).")] = 25.0,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same bytes.")] = 0,
    size: Annotated[
        tuple[int, int], typer.Option(help="Frame size in pixels: rows cols (even, >= 64).")
    ] = (256, 256),
    overwrite: Annotated[
        bool, typer.Option(help="Replace a previous phantom cohort in OUT (never other data).")
    ] = False,
    screen: Annotated[
        bool, typer.Option(help="Frame the B-mode image in a scanner-style screen (crop given).")
    ] = False,
) -> None:
    """Simulate a phantom cohort as lab-style recordings (video, DAQ and EMG CSV, truth, masks)."""
    from musclestate.phantom import PhantomConfig, simulate_cohort
    from musclestate.phantom.cohort import check_output

    # Validate before drawing a progress bar: bad arguments fail at once with one line.
    cfg = PhantomConfig(
        participants=participants,
        seconds=seconds,
        fps=fps,
        seed=seed,
        size=tuple(size),
        screen=screen,
    )
    check_output(out, overwrite)
    con = Console(soft_wrap=True)
    with stage_bar(con, "simulate", unit="frames") as progress:
        manifest = simulate_cohort(out, config=cfg, progress=progress, overwrite=overwrite)
    con.print(f"phantom cohort: {manifest}  (import: musclestate import {manifest} --out DATASET)")
