"""``musclestate roi``: train, evaluate, show and apply the aponeurosis segmenter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from musclestate.cli._common import err, progress_columns

roi_app = typer.Typer(
    help="Find the muscle: aponeurosis segmentation, geometry, MG/SOL patches.",
    no_args_is_help=True,
)


@roi_app.command("train")
def roi_train(
    images: Annotated[Path, typer.Argument(help="Folder of greyscale images.")],
    masks: Annotated[Path, typer.Argument(help="Folder of same-named masks (>0 = aponeurosis).")],
    out: Annotated[Path, typer.Option("--out", help="Weights to write (.safetensors).")],
    init_from: Annotated[
        str | None, typer.Option("--init-from", help="'shipped' or a .safetensors to fine-tune.")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the training images.")] = 40,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 8,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-3,
    seed: Annotated[int, typer.Option(help="Seed of split, weights and augmentation.")] = 0,
    test_fraction: Annotated[float, typer.Option(help="Share of images held out.")] = 0.15,
    phantom_frames: Annotated[int, typer.Option(help="Phantom frames added to training.")] = 0,
    max_minutes: Annotated[float | None, typer.Option(help="Wall-time limit.")] = None,
) -> None:
    """Train (or fine-tune) the aponeurosis segmenter; writes weights, card and split JSON."""
    from musclestate.roi.train import TrainConfig, train_segmenter

    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        test_fraction=test_fraction,
        phantom_frames=phantom_frames,
        max_minutes=max_minutes,
    )
    path = train_segmenter(images, masks, out, cfg, init_from=init_from)
    typer.echo(f"wrote {path} (card {path.with_suffix('.json').name})")


def _roi_progress(description: str) -> object:
    from rich.progress import Progress

    return Progress(*progress_columns(description, detail=False), console=err)


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

    from musclestate.roi.segment import SHIPPED_WEIGHTS, card_path, load_segmenter
    from musclestate.roi.train import evaluate, load_split

    seg = load_segmenter(model)
    selected = None
    if split is not None:
        selected = load_split(card_path(model or SHIPPED_WEIGHTS), split)
    if names is not None:
        listed = [s.strip() for s in names.read_text(encoding="utf-8").splitlines() if s.strip()]
        selected = listed if selected is None else [n for n in selected if n in set(listed)]
    with _roi_progress("evaluate") as bar:
        task = bar.add_task("evaluate", total=None, rate="")

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        res = evaluate(seg, images, masks, selected, pixel_spacing_mm=spacing_mm, progress=step)
    res["model"] = str(model or SHIPPED_WEIGHTS)
    res["split"] = split or "all"
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
    import numpy as np

    from musclestate.errors import ConfigError
    from musclestate.roi.pipeline import (
        ROIConfig,
        dumps,
        overlay,
        process_frames,
        result_summary,
        write_png,
        write_rgb_video,
    )
    from musclestate.roi.segment import load_segmenter

    if out.suffix.lower() not in (".png", ".mp4"):
        raise ConfigError(f"--out must end in .png or .mp4, got {out}")
    from musclestate.io import media_kind, read_recording

    # Every medium is read by musclestate.io, as import and predict read it.
    kind = media_kind(source)
    kw: dict = {"crop": crop} if crop is not None else {}
    if spacing_mm is not None:
        kw["pixel_spacing_mm"] = tuple(spacing_mm)
    elif depth_mm is not None:
        kw["depth_mm"] = depth_mm
    if fps is not None:
        kw["fps"] = fps
    elif kind == "images":
        raise ConfigError(
            f"{source} is an image folder: give its frame rate (--fps) so frames get times"
        )
    rec = read_recording(source, **kw)
    frames, t_s, spacing = rec.frames, rec.t_s, rec.pixel_spacing_mm
    if spacing is None:
        spacing = (50.0 / frames.shape[1],) * 2
        err.print(f"no pixel spacing known: assuming 50 mm depth ({spacing[0]:.3f} mm/px)")
    if out.suffix.lower() == ".png":
        frames = frames[frame : frame + 1]
        if not len(frames):
            raise ConfigError(f"--frame {frame} is beyond the last frame")
    elif max_frames is not None:
        frames = frames[:max_frames]
    cfg = ROIConfig(model=None if model is None else str(model), every=every)
    seg = load_segmenter(model)
    res = process_frames(frames, spacing, seg, cfg)
    if out.suffix.lower() == ".png":
        prob = seg.predict(frames[0])
        write_png(out, overlay(frames[0], res.geometries[0], prob, cfg.patches))
    else:
        pairs = zip(frames, res.geometries, strict=True)
        pics = np.stack([overlay(f, g, None, cfg.patches) for f, g in pairs])
        rate = 25.0 if t_s is None or len(t_s) < 2 else float(1 / np.median(np.diff(t_s)))
        write_rgb_video(out, pics, rate)
    summary = result_summary(res)
    summary["issues_first_frame"] = list(res.geometries[0].issues)
    typer.echo(dumps(summary))
    typer.echo(f"wrote {out}")


@roi_app.command("apply")
def roi_apply(
    ctx: typer.Context,
    dataset: Annotated[Path, typer.Argument(help="Dataset folder (musclestate import).")],
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
    import json
    import time

    from musclestate.roi.geometry import GeometryConfig
    from musclestate.roi.patches import ManualROI, PatchConfig
    from musclestate.roi.pipeline import ROIConfig, apply_roi, stored_roi_config

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
        cfg = stored_roi_config(dataset)
    else:
        manual_rois = {}
        if manual is not None:
            raw = json.loads(manual.read_text(encoding="utf-8"))
            manual_rois = {k: ManualROI.from_dict(v) for k, v in raw.items()}
        cfg = ROIConfig(
            model=None if model is None else str(model),
            every=every,
            geometry=GeometryConfig(sol_depth_mm=sol_depth_mm),
            patches=PatchConfig(height=patch_size[0], width=patch_size[1]),
            manual=manual_rois,
        )
    t0 = time.perf_counter()
    with _roi_progress("roi") as bar:
        task = bar.add_task("roi", total=None, rate="")

        def step(done: int, total: int, label: str) -> None:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:.1f} frames/s {label}")

        apply_roi(dataset, cfg, progress=step)
    typer.echo(f"wrote {dataset}/derived/roi.h5 in {time.perf_counter() - t0:.1f} s")
