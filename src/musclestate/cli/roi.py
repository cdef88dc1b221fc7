"""``musclestate roi``: train, evaluate, show and apply the aponeurosis segmenter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from musclestate.cli._common import mirrors, progress_bar

roi_app = typer.Typer(
    help="Find the muscle: aponeurosis segmentation, geometry, MG/SOL patches.",
    no_args_is_help=True,
)


@roi_app.command("train")
@mirrors("train_segmenter")
def roi_train(
    images: Annotated[Path, typer.Argument(help="Folder of greyscale images.")],
    masks: Annotated[Path, typer.Argument(help="Folder of same-named masks (>0 = aponeurosis).")],
    out: Annotated[Path, typer.Option("--out", help="Weights to write (.safetensors).")],
    init_from: Annotated[
        str | None, typer.Option("--init-from", help="'shipped' or a .safetensors to fine-tune.")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the training images.")] = 40,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 8,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 2e-3,
    seed: Annotated[int, typer.Option(help="Seed of split, weights and augmentation.")] = 0,
    test_fraction: Annotated[float, typer.Option(help="Share of images held out.")] = 0.15,
    phantom_frames: Annotated[int, typer.Option(help="Phantom frames added to training.")] = 0,
    max_minutes: Annotated[float | None, typer.Option(help="Wall-time limit.")] = None,
    resume: Annotated[
        bool,
        typer.Option(help="Continue an interrupted run of the same --out from its checkpoint."),
    ] = False,
) -> None:
    """Train (or fine-tune) the aponeurosis segmenter; writes weights, card and split JSON."""
    from musclestate.training.segmenter import SegmenterTrainConfig, train_segmenter

    cfg = SegmenterTrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        test_fraction=test_fraction,
        phantom_frames=phantom_frames,
        max_minutes=max_minutes,
    )
    with progress_bar() as progress:
        path = train_segmenter(
            images, masks, out, cfg, init_from=init_from, resume=resume, progress=progress
        )
    typer.echo(f"wrote {path} (card {path.with_suffix('.json').name})")


_RoiModel = Annotated[
    Path | None, typer.Option("--model", help="Segmenter .safetensors [default: shipped].")
]
_RoiSpacing = Annotated[
    tuple[float, float] | None,
    typer.Option("--spacing-mm", help="Pixel spacing ROW_MM COL_MM of the image or video."),
]
_RoiDepth = Annotated[
    float | None,
    typer.Option("--depth-mm", help="Image depth in mm (square pixels) when no spacing is known."),
]


@roi_app.command("evaluate")
@mirrors("evaluate_segmenter")
def roi_evaluate(
    images: Annotated[Path, typer.Argument(help="Folder of greyscale images.")],
    masks: Annotated[Path, typer.Argument(help="Folder of same-named masks.")],
    model: _RoiModel = None,
    split: Annotated[
        str | None,
        typer.Option(help="Evaluate only this part (train/val/test) of the model's saved split."),
    ] = None,
    names: Annotated[
        Path | None, typer.Option(help="Text file of image names to evaluate (one a line).")
    ] = None,
    spacing_mm: _RoiSpacing = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Dice, IoU and aponeurosis line depth errors of a segmenter on labelled images."""
    import json

    from musclestate.roi.evaluate import evaluate_segmenter

    with progress_bar() as progress:
        res = evaluate_segmenter(
            images,
            masks,
            model=model,
            split=split,
            names=names,
            spacing_mm=spacing_mm,
            progress=progress,
        )
    if as_json:
        typer.echo(json.dumps({k: v for k, v in res.items() if k != "per_image"}, indent=2))
        return
    typer.echo(
        f"{res['images']} images ({res['split']}): Dice {res['dice_mean']:.3f} "
        f"(SD {res['dice_sd']:.3f}), IoU {res['iou_mean']:.3f}, line error "
        f"{res['line_error_px_mean']:.2f} px (superficial {res['superficial_error_px_mean']}, "
        f"deep {res['deep_error_px_mean']}), lines missed {res['lines_missed']}"
    )


@roi_app.command("show")
@mirrors("show_roi")
def roi_show(
    source: Annotated[Path, typer.Argument(help="Image file, video, DICOM or image folder.")],
    out: Annotated[Path, typer.Option("--out", help="Overlay to write: .png or .mp4.")],
    model: _RoiModel = None,
    spacing_mm: _RoiSpacing = None,
    depth_mm: _RoiDepth = None,
    crop: Annotated[
        tuple[int, int, int, int] | None,
        typer.Option(help="B-mode area X Y W H in 0-based pixels (screen captures)."),
    ] = None,
    frame: Annotated[int, typer.Option(help="Frame drawn for a PNG of a video.")] = 0,
    max_frames: Annotated[int | None, typer.Option(help="Frames of a video to draw.")] = None,
    every: Annotated[int, typer.Option(help="Segment every k-th frame.")] = 1,
    fps: Annotated[
        float | None,
        typer.Option(
            help="Frame rate of an image folder or TIFF stack (replaces a video's or DICOM's "
            "timing, as everywhere)."
        ),
    ] = None,
) -> None:
    """Draw the aponeuroses and MG/SOL patch areas found in an image or a video."""
    from musclestate.roi.pipeline import dumps
    from musclestate.roi.show import show_roi

    summary = show_roi(
        source,
        out,
        model=model,
        spacing_mm=spacing_mm,
        depth_mm=depth_mm,
        crop=crop,
        frame=frame,
        max_frames=max_frames,
        every=every,
        fps=fps,
    )
    written = summary.pop("out")
    typer.echo(dumps(summary))
    typer.echo(f"wrote {written}")


@roi_app.command("apply")
@mirrors("apply_roi")
def roi_apply(
    ctx: typer.Context,
    dataset_path: Annotated[
        Path, typer.Argument(metavar="DATASET", help="Dataset folder (musclestate import).")
    ],
    model: _RoiModel = None,
    every: Annotated[int, typer.Option(help="Segment every k-th frame, interpolate between.")] = 1,
    sol_depth_mm: Annotated[float, typer.Option(help="SOL depth below the deep apo.")] = 20.0,
    patch_size: Annotated[
        tuple[int, int], typer.Option(help="Patch HEIGHT WIDTH (per region).")
    ] = (64, 128),
    manual: Annotated[
        Path | None,
        typer.Option(help="JSON {recording_id: {rect: [x,y,w,h]} | {polygon: [[x,y],...]}}."),
    ] = None,
    again: Annotated[
        bool,
        typer.Option(
            "--again",
            help="Recompute with the settings stored in the dataset's 'roi' group "
            "(e.g. after a musclestate update); takes no other settings.",
        ),
    ] = False,
) -> None:
    """Find the muscle in every frame of a dataset; write its derived group 'roi'."""
    import time

    from musclestate._atomic import read_json
    from musclestate.roi.geometry import GeometryConfig
    from musclestate.roi.patches import ManualROI, PatchConfig
    from musclestate.roi.pipeline import ROIConfig, apply_roi

    cfg = None
    if again:
        # options the user typed, whatever their values (click's ParameterSource.DEFAULT
        # marks the rest)
        given = [
            name
            for name in ("model", "every", "sol_depth_mm", "patch_size", "manual")
            if ctx.get_parameter_source(name).name != "DEFAULT"
        ]
        if given:
            from musclestate.errors import ConfigError

            raise ConfigError(
                f"--again reuses the stored settings; give no other ROI options (got {given})"
            )
    else:
        manual_rois = {}
        if manual is not None:
            raw = read_json(manual, "manual ROI file")
            manual_rois = {k: ManualROI.from_dict(v) for k, v in raw.items()}
        cfg = ROIConfig(
            model=None if model is None else str(model),
            every=every,
            geometry=GeometryConfig(sol_depth_mm=sol_depth_mm),
            patches=PatchConfig(height=patch_size[0], width=patch_size[1]),
            manual=manual_rois,
        )
    t0 = time.perf_counter()
    with progress_bar() as progress:
        apply_roi(dataset_path, cfg, again=again, progress=progress)
    typer.echo(f"wrote {dataset_path}/derived/roi.h5 in {time.perf_counter() - t0:.1f} s")
