"""``musclestate architecture``: muscle architecture measured and checked against observers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from musclestate.cli._common import mirrors, progress_bar

architecture_app = typer.Typer(
    help="Muscle architecture: aponeuroses, thickness, fascicle angle, pennation.",
    no_args_is_help=True,
)


@architecture_app.command("evaluate")
@mirrors("evaluate_architecture")
def architecture_evaluate(
    root: Annotated[Path, typer.Argument(help="Folder the labels' image paths start from.")],
    labels: Annotated[Path, typer.Argument(help="Labels CSV (one row per image and observer).")],
    model: Annotated[
        Path | None, typer.Option(help="Aponeurosis segmenter (.safetensors); default shipped.")
    ] = None,
    datasets: Annotated[
        list[str] | None, typer.Option("--dataset", help="Only this dataset id (repeatable).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Also write the full result (per image) as JSON here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fascicle angle and thickness against the mean of human observers, per dataset."""
    import json

    from musclestate._atomic import json_default
    from musclestate.architecture.evaluate import evaluate_architecture

    with progress_bar() as progress:
        res = evaluate_architecture(
            root,
            labels,
            model=model,
            datasets=tuple(datasets) if datasets else None,
            out=out,
            progress=progress,
        )
    summary = {"datasets": res["datasets"], "overall": res["overall"]}
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=json_default))
        return
    for name, s in [*summary["datasets"].items(), ("overall", summary["overall"])]:
        typer.echo(
            f"{name}: found {s['found']}/{s['images']}, fascicle angle MAE "
            f"{s['fascicle_angle_mae_deg']:.2f} deg (observers "
            f"{s['observer_fascicle_angle_mae_deg']:.2f}), thickness MAE "
            f"{s['thickness_mae_px']:.1f} px (observers {s['observer_thickness_mae_px']:.1f})"
        )


@architecture_app.command("measure")
@mirrors("measure_architecture")
def architecture_measure(
    source: Annotated[Path, typer.Argument(help="Video, DICOM, image file or image folder.")],
    out: Annotated[Path, typer.Option("--out", help="Table to write: .csv or .xlsx.")],
    overlay: Annotated[
        Path | None, typer.Option("--overlay", help="Also draw the measures: .mp4 or .png.")
    ] = None,
    crop: Annotated[
        tuple[int, int, int, int] | None,
        typer.Option("--crop", help="B-mode image inside the frame: X Y W H (0-based pixels)."),
    ] = None,
    pixel_spacing_mm: Annotated[
        tuple[float, float] | None,
        typer.Option("--spacing", help="Pixel spacing ROW_MM COL_MM where the input does not say."),
    ] = None,
    fps: Annotated[float | None, typer.Option(help="Frame rate of an image folder.")] = None,
    smooth: Annotated[
        bool, typer.Option("--smooth", help="Kalman-smooth every series over time.")
    ] = False,
    model: Annotated[
        Path | None, typer.Option(help="Aponeurosis segmenter (.safetensors); default shipped.")
    ] = None,
) -> None:
    """Fascicle angle, pennation, thickness, fascicle length (MG) and SOL per frame."""
    from musclestate.architecture.frames import measure_architecture

    with progress_bar() as progress:
        path = measure_architecture(
            source,
            out,
            model=model,
            crop=crop,
            pixel_spacing_mm=pixel_spacing_mm,
            fps=fps,
            smooth=smooth,
            overlay=overlay,
            progress=progress,
        )
    typer.echo(f"wrote {path} (units and provenance in {path.name}.json)")
