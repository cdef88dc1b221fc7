"""The ``musclestate`` command line: one command per API verb, parsing and delegating only.

Each command imports its stage lazily so that ``musclestate --help`` stays fast. Errors of the
project's own types are printed as one line (no traceback) and exit with status 2.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
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


@contextlib.contextmanager
def _stage_bar(
    con: Console, label: str, *, unit: str, per_minute: bool = False
) -> Iterator[Callable[[int, int | None, str], None]]:
    """A progress bar (count, rate, elapsed, time left, current item) for one long stage.

    Yields the ``progress(done, total, label)`` callback the stage functions take.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        TextColumn("[dim]{task.fields[detail]}"),
    )
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
    from musclestate.dataset import import_manifest, open_dataset

    con = Console(soft_wrap=True)
    with _stage_bar(con, "import", per_minute=True, unit="rec") as progress:
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


@app.command("probe")
def probe_cmd(
    path: Annotated[Path, typer.Argument(help="Video, DICOM, image folder or signal file.")],
    crop: Annotated[
        tuple[int, int, int, int] | None,
        typer.Option("--crop", help="B-mode area X Y W H (0-based pixels)."),
    ] = None,
    fps: Annotated[
        float | None, typer.Option(help="Frame rate of an image folder (frames/s).")
    ] = None,
    mat_group: Annotated[
        str | None, typer.Option(help="Struct in a .mat file, e.g. clips.trial.push_01.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show what a media or signal file holds, as the importer will read it."""
    import json

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
        return
    h, w = info["frame_shape"]
    sp = info["pixel_spacing_mm"]
    spacing = f"{sp[0]:.4g} x {sp[1]:.4g} mm/px ({info['spacing_source']})" if sp else "unknown"
    con.print(
        f"[bold]{path}[/] ({info['kind']}): {info['frames']} frames of {w}x{h} px (WxH), "
        f"{info['fps']:.3g} frames/s over {info['duration_s']:.3f} s ({info['time_source']})\n"
        f"pixel spacing: {spacing}"
        + ("" if info["repeated_frames"] is None else f"; repeated: {info['repeated_frames']}"),
        highlight=False,
        soft_wrap=True,
    )


# ---- phantom: simulate -------------------------------------------------------------------------


@app.command("simulate")
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
    with _stage_bar(con, "simulate", unit="frames") as progress:
        manifest = simulate_cohort(out, config=cfg, progress=progress, overwrite=overwrite)
    con.print(f"phantom cohort: {manifest}  (import: musclestate import {manifest} --out DATASET)")


# ---- roi: roi train / evaluate / show ----------------------------------------------------------

roi_app = typer.Typer(
    help="Find the muscle: aponeurosis segmentation, geometry, MG/SOL patches.",
    no_args_is_help=True,
)
app.add_typer(roi_app, name="roi")


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
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=err,
    )


def _roi_spacing(
    spacing_mm: tuple[float, float] | None, depth_mm: float | None, rows: int
) -> tuple[float, float] | None:
    if spacing_mm is not None:
        return (float(spacing_mm[0]), float(spacing_mm[1]))
    if depth_mm is not None:
        return (depth_mm / rows, depth_mm / rows)
    return None


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
    fps: Annotated[float, typer.Option(help="Frame rate of an image folder.")] = 25.0,
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
    from musclestate.roi.train import IMAGE_SUFFIXES, read_grey

    if out.suffix.lower() not in (".png", ".mp4"):
        raise ConfigError(f"--out must end in .png or .mp4, got {out}")
    t_s = None
    if source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:
        frames = read_grey(source)[None]
        if crop is not None:
            x, y, w, h = crop
            frames = frames[:, y : y + h, x : x + w]
        spacing = _roi_spacing(spacing_mm, depth_mm, frames.shape[1])
    else:
        from musclestate.io import read_recording

        kw: dict = {"crop": crop} if crop is not None else {}
        if source.is_dir():
            kw["fps"] = fps
        rec = read_recording(source, **kw)
        frames, t_s = rec.frames, rec.t_s
        spacing = _roi_spacing(spacing_mm, depth_mm, frames.shape[1]) or rec.pixel_spacing_mm
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
) -> None:
    """Find the muscle in every frame of a dataset; write its derived group 'roi'."""
    import json
    import time

    from musclestate.roi.geometry import GeometryConfig
    from musclestate.roi.patches import ManualROI, PatchConfig
    from musclestate.roi.pipeline import ROIConfig, apply_roi

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


# ---- estimation: train, cv, cv collect, report, demo -------------------------------------------


def _rank_zero() -> bool:
    """False in the extra processes a DDP launcher starts (they must not print or write)."""
    import os

    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def _train_config(config: Path | None, **overrides: object):
    """A TrainConfig from an optional JSON file (a run's config.json "train" or a card's
    "training.config" are accepted too), then the options given on the command line."""
    import json

    from musclestate.training.config import TrainConfig

    base: dict = {}
    if config is not None:
        try:
            base = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            from musclestate.errors import ConfigError

            raise ConfigError(f"{config}: cannot read training configuration ({exc})") from None
        base = base.get("train", base.get("training", {}).get("config", base))
    given = {k: v for k, v in overrides.items() if v is not None and v != ()}
    return TrainConfig.from_dict({**base, **given})


def _epoch_progress(con: Console):
    """A rich progress bar with one row per fold, and the ``progress`` function that feeds it."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=con,
        disable=not _rank_zero(),
    )
    tasks: dict[str, int] = {}

    def progress(description: str, done: int, total: int) -> None:
        if description not in tasks:
            tasks[description] = bar.add_task(description, total=total, rate="")
        task = tasks[description]
        bar.update(task, completed=done, total=total)
        speed = bar.tasks[task].speed
        unit = "epochs" if description != "loading recordings" else "recordings"
        bar.update(task, rate=f"{speed * 60:.1f} {unit}/min" if speed else "")

    return bar, progress


def _quiet_lightning() -> None:
    from musclestate.training.module import quiet_lightning

    quiet_lightning()


_Config = Annotated[
    Path | None,
    typer.Option("--config", help="JSON training configuration to start from (e.g. a run's "
                 "config.json); the options below override it."),
]  # fmt: skip
_Network = Annotated[str | None, typer.Option(help="Network name (default compact_resnet).")]
_Input = Annotated[str | None, typer.Option("--input", help="patches (MG+SOL) or frame.")]
_ImageSize = Annotated[
    tuple[int, int] | None,
    typer.Option("--image-size", help="Network input H W (default 32 64)."),
]
_Context = Annotated[int | None, typer.Option(help="Neighbouring frames per side as channels.")]
_Targets = Annotated[
    list[str] | None, typer.Option("--target", help="Target to train on (repeat); default all.")
]
_Stride = Annotated[int | None, typer.Option(help="Train on every k-th frame (test: all).")]
_Epochs = Annotated[int | None, typer.Option(help="Maximum epochs (default 30).")]
_Patience = Annotated[int | None, typer.Option(help="Early-stopping patience (default 6).")]
_Batch = Annotated[int | None, typer.Option(help="Global batch size (default 64).")]
_Lr = Annotated[float | None, typer.Option(help="AdamW learning rate (default 2e-3).")]
_Val = Annotated[
    int | None, typer.Option(help="Validation participants from the training side (default 1).")
]
_Seed = Annotated[int | None, typer.Option(help="Seed of splits, weights, order, augmentation.")]
_Accel = Annotated[str | None, typer.Option(help="Lightning accelerator: auto, cpu, gpu.")]
_Devices = Annotated[str | None, typer.Option(help="Devices per node (a number or 'auto').")]
_Nodes = Annotated[int | None, typer.Option("--num-nodes", help="Nodes for multi-node DDP.")]
_Strategy = Annotated[str | None, typer.Option(help="Lightning strategy: auto, ddp, ...")]
_Threads_ = Annotated[int | None, typer.Option("--threads", help="CPU threads for torch.")]
_Resume = Annotated[bool, typer.Option(help="Continue from the last checkpoints.")]


def _devices(v: str | None) -> int | str | None:
    return int(v) if v is not None and v.isdigit() else v


@app.command("train")
def train_cmd(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder (with `roi apply` done).")],
    out: Annotated[Path, typer.Option("--out", help="Estimator bundle folder to write.")],
    run: Annotated[
        Path | None, typer.Option("--run", help="Collected cv run whose metrics go in the card.")
    ] = None,
    config: _Config = None,
    network: _Network = None,
    input: _Input = None,
    image_size: _ImageSize = None,
    context: _Context = None,
    target: _Targets = None,
    frame_stride: _Stride = None,
    epochs: _Epochs = None,
    patience: _Patience = None,
    batch_size: _Batch = None,
    lr: _Lr = None,
    val_participants: _Val = None,
    seed: _Seed = None,
    accelerator: _Accel = None,
    devices: _Devices = None,
    num_nodes: _Nodes = None,
    strategy: _Strategy = None,
    threads: _Threads_ = None,
    resume: _Resume = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle at --out.")] = False,
) -> None:
    """Train a deployable estimator bundle on every participant of a dataset."""
    from musclestate.training.cv import train_bundle

    cfg = _train_config(
        config, network=network, input=input, image_size=image_size, context=context,
        targets=tuple(target or ()), frame_stride=frame_stride, epochs=epochs,
        patience=patience, batch_size=batch_size, lr=lr, val_participants=val_participants,
        seed=seed, accelerator=accelerator, devices=_devices(devices), num_nodes=num_nodes,
        strategy=strategy, num_threads=threads,
    )  # fmt: skip
    _quiet_lightning()
    con = Console(stderr=True)
    bar, progress = _epoch_progress(con)
    with bar:
        path = train_bundle(
            dataset, out, cfg, run=run, resume=resume, overwrite=overwrite, progress=progress
        )
    if _rank_zero():
        Console(soft_wrap=True).print(f"estimator bundle: {path}")


@app.command("cv")
def cv_cmd(
    dataset: Annotated[
        Path,
        typer.Argument(
            metavar="DATASET | collect",
            help="Dataset folder; or the word `collect` followed by RUN to merge fold jobs.",
        ),
    ],
    collect_run: Annotated[
        Path | None, typer.Argument(metavar="[RUN]", help="Run folder (after `collect`).")
    ] = None,
    folds: Annotated[int, typer.Option(help="K participant-wise folds (16 over 32 = paper).")] = 5,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder to write.")] = None,
    fold: Annotated[
        int | None, typer.Option(help="Run only this fold (0-based), e.g. a SLURM array task.")
    ] = None,
    config: _Config = None,
    network: _Network = None,
    input: _Input = None,
    image_size: _ImageSize = None,
    context: _Context = None,
    target: _Targets = None,
    frame_stride: _Stride = None,
    epochs: _Epochs = None,
    patience: _Patience = None,
    batch_size: _Batch = None,
    lr: _Lr = None,
    val_participants: _Val = None,
    seed: _Seed = None,
    accelerator: _Accel = None,
    devices: _Devices = None,
    num_nodes: _Nodes = None,
    strategy: _Strategy = None,
    threads: _Threads_ = None,
    resume: _Resume = False,
) -> None:
    """Participant-wise cross-validation: `musclestate cv DATASET --folds K --out RUN [--fold I]`,
    then (after per-fold jobs) `musclestate cv collect RUN`."""
    import json

    from musclestate.errors import ConfigError
    from musclestate.training.cv import collect, run_cv

    con = Console(soft_wrap=True)
    if str(dataset) == "collect" and not dataset.is_dir():
        if collect_run is None:
            raise ConfigError("usage: musclestate cv collect RUN")
        path = collect(collect_run)
        _print_cv_summary(con, json.loads(path.read_text(encoding="utf-8")), path)
        return
    if collect_run is not None:
        raise ConfigError(f"unexpected argument {str(collect_run)!r}; did you mean --out?")
    if out is None:
        raise ConfigError("missing --out RUN (the run folder to write)")
    cfg = _train_config(
        config, network=network, input=input, image_size=image_size, context=context,
        targets=tuple(target or ()), frame_stride=frame_stride, epochs=epochs,
        patience=patience, batch_size=batch_size, lr=lr, val_participants=val_participants,
        seed=seed, accelerator=accelerator, devices=_devices(devices), num_nodes=num_nodes,
        strategy=strategy, num_threads=threads,
    )  # fmt: skip
    _quiet_lightning()
    bar, progress = _epoch_progress(Console(stderr=True))
    with bar:
        path = run_cv(dataset, out, cfg, folds=folds, fold=fold, resume=resume, progress=progress)
    if not _rank_zero():
        return
    if fold is not None:
        con.print(f"fold {fold} written to {path}; merge with `musclestate cv collect {out}`")
    else:
        _print_cv_summary(con, json.loads(path.read_text(encoding="utf-8")), path)


def _print_cv_summary(con: Console, metrics: dict, path: Path) -> None:
    from rich.table import Table

    t = Table(title=f"held-out participants, {metrics['folds']} folds (R^2 mean +- SD)")
    models = list(metrics["models"])
    t.add_column("target")
    for m in models:
        t.add_column(m, justify="right")
    t.add_column("within 1 SD", justify="right")

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    for name, info in metrics["targets"].items():
        row = [f"{name} [{info['unit']}]"]
        for m in models:
            s = metrics["models"][m]["summary"][name]
            row.append(f"{fmt(s['r2_mean'])} +- {fmt(s['r2_sd'])}")
        row.append(fmt(metrics.get("calibration", {}).get(name, {}).get("within_1sd")))
        t.add_row(*row)
    con.print(t)
    con.print(f"metrics: {path}")


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
    con = Console(soft_wrap=True)
    con.print(metrics_table(json.loads((run / "metrics.json").read_text(encoding="utf-8"))))
    con.print(f"report: {path}", soft_wrap=True)


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo-output"),
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="JSON demo configuration (e.g. a previous run's demo_config.json); the options "
            "below override it.",
        ),
    ] = None,
    participants: Annotated[int | None, typer.Option(help="Phantom participants.")] = None,
    seconds: Annotated[float | None, typer.Option(help="Seconds recorded per participant.")] = None,
    fps: Annotated[float | None, typer.Option(help="Simulated frame rate.")] = None,
    folds: Annotated[int | None, typer.Option(help="Cross-validation folds.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum training epochs.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of cohort and training.")] = None,
    anatomy_spread: Annotated[
        float | None,
        typer.Option(help="Between-participant variety in 0..1 (1 = full published ranges)."),
    ] = None,
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

    from musclestate.demo import STAGES, DemoConfig, load_demo_config, run_demo
    from musclestate.report import metrics_table

    cfg = DemoConfig() if config is None else load_demo_config(config)
    given = dict(
        participants=participants,
        seconds=seconds,
        fps=fps,
        folds=folds,
        seed=seed,
        anatomy_spread=anatomy_spread,
    )
    cfg = dataclasses.replace(cfg, **{k: v for k, v in given.items() if v is not None})
    if epochs is not None:
        cfg = dataclasses.replace(cfg, train={**cfg.train, "epochs": epochs})
    con = Console(soft_wrap=True)
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
    con.print(
        f"wall time {result.timings_s['total'] / 60:.1f} min; report: {result.report}",
        soft_wrap=True,
    )


# ---- inference: predict, stream, export --------------------------------------------------------

_Backend = Annotated[
    str | None,
    typer.Option("--backend", help="onnx (ONNX Runtime, default) or torch (the bundle as is)."),
]
_Crop = Annotated[
    tuple[int, int, int, int] | None,
    typer.Option("--crop", help="B-mode image inside the frame: X Y W H (0-based pixels)."),
]
_Flip = Annotated[bool, typer.Option("--flip", help="Mirror frames left-right.")]
_Spacing = Annotated[
    tuple[float, float] | None,
    typer.Option("--spacing", help="Pixel spacing ROW_MM COL_MM where the input does not say."),
]
_RoiEvery = Annotated[
    int | None,
    typer.Option("--roi-every", help="Segment every k-th frame (default 8), track between."),
]
_Threads = Annotated[int | None, typer.Option("--threads", help="CPU threads for inference.")]
_Onnx = Annotated[
    Path | None,
    typer.Option("--onnx", help="Estimator exported by `musclestate export` (backend onnx)."),
]
_Segmenter = Annotated[
    Path | None,
    typer.Option("--segmenter", help="Segmenter weights instead of the bundle's (.safetensors)."),
]


def _predictor_config(
    backend: str | None, batch_size: int, roi_every: int | None, threads: int | None
) -> object:
    from musclestate.inference import PredictorConfig

    given = {"backend": backend, "roi_every": roi_every, "threads": threads}
    return PredictorConfig(batch_size=batch_size, **{k: v for k, v in given.items() if v})


@app.command("predict")
def predict_cmd(
    model: Annotated[
        Path, typer.Argument(help="Estimator bundle folder (card.json, model.safetensors).")
    ],
    input: Annotated[
        Path, typer.Argument(help="Video, image folder, DICOM cine, dataset, or a folder of these.")
    ],
    out: Annotated[Path, typer.Option("--out", help="CSV to write (a folder for many inputs).")],
    overlay: Annotated[
        Path | None, typer.Option("--overlay", help="Overlay video (.mp4): ROI + live traces.")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG plot of the traces.")] = None,
    xlsx: Annotated[Path | None, typer.Option("--xlsx", help="Same table as Excel.")] = None,
    crop: _Crop = None,
    flip: _Flip = False,
    spacing: _Spacing = None,
    fps: Annotated[float | None, typer.Option(help="Frame rate of an image folder.")] = None,
    backend: _Backend = None,
    batch_size: Annotated[int, typer.Option(help="Frames per estimator call.")] = 32,
    roi_every: _RoiEvery = None,
    threads: _Threads = None,
    segmenter: _Segmenter = None,
    onnx: _Onnx = None,
    hash_input: Annotated[
        bool, typer.Option(help="Record the input's SHA-256 in the sidecar.")
    ] = True,
) -> None:
    """Estimate muscle state for every frame of a recording (or of many) and write a table."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from musclestate.inference import load_predictor
    from musclestate.inference.batch import SourceOptions, count_frames, plan_inputs, predict_job

    cfg = _predictor_config(backend, batch_size, roi_every, threads)
    predictor = load_predictor(model, config=cfg, segmenter=segmenter, onnx=onnx)
    opts = SourceOptions(crop=crop, flip_horizontal=flip, pixel_spacing_mm=spacing, fps=fps)
    jobs = plan_inputs(input, out, xlsx=xlsx, plot=plot, overlay=overlay)
    con = Console(stderr=True)
    total = count_frames(jobs, opts)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=con) as bar:
        task = bar.add_task(f"{len(jobs)} input(s)", total=total, rate="")

        def step(n: int) -> None:
            bar.advance(task, n)
            speed = bar.tasks[task].speed
            bar.update(task, rate=f"{speed:.0f} frames/s" if speed else "")

        failed: list[str] = []
        for job in jobs:
            bar.update(task, description=job.name)
            try:
                est = predict_job(predictor, job, opts, progress=step, hash_input=hash_input)
            except MusclestateError as exc:
                if len(jobs) == 1:
                    raise
                failed.append(job.name)  # one unreadable input does not stop the batch
                con.print(f"[bold red]{job.name}: skipped:[/] {exc}", highlight=False)
                continue
            con.print(
                f"{job.name}: {len(est)} frames, muscle found in {int(est.roi_found.sum())}, "
                f"out of training range {int(est.out_of_range.sum())} -> {job.out_csv}"
            )
    if failed:
        err.print(f"[bold red]error:[/] {len(failed)} of {len(jobs)} inputs failed: {failed}")
        raise typer.Exit(2)


@app.command("stream")
def stream_cmd(
    model: Annotated[
        Path, typer.Argument(help="Estimator bundle folder (card.json, model.safetensors).")
    ],
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="Video file (replayed at its frame rate) or device FORMAT:URL, e.g. "
            "v4l2:/dev/video0, avfoundation:0, dshow:video=NAME.",
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="CSV written row by row as estimates come.")
    ] = None,
    crop: _Crop = None,
    flip: _Flip = False,
    spacing: _Spacing = None,
    backend: _Backend = None,
    roi_every: _RoiEvery = None,
    threads: _Threads = None,
    segmenter: _Segmenter = None,
    onnx: _Onnx = None,
    queue: Annotated[int, typer.Option(help="Frames allowed to wait; more are dropped.")] = 2,
    stall_timeout: Annotated[
        float, typer.Option(help="Stop when the source is silent this many seconds.")
    ] = 2.0,
    speed: Annotated[float, typer.Option(help="Replay a file this many times real time.")] = 1.0,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many frames.")] = None,
    seconds: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    device_option: Annotated[
        list[str] | None,
        typer.Option("--device-option", help="FFmpeg device option KEY=VALUE (repeatable)."),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="Do not print each estimate.")] = False,
) -> None:
    """Estimate live, frame by frame, with bounded latency; report latency percentiles."""
    import json

    import numpy as np

    from musclestate._atomic import write_text_atomic
    from musclestate.errors import ConfigError
    from musclestate.inference import Estimates, load_predictor, open_source
    from musclestate.inference.batch import check_against_training
    from musclestate.inference.outputs import sidecar_path
    from musclestate.inference.predictor import provenance
    from musclestate.inference.stream import RowWriter, StreamConfig, run_stream

    options: dict[str, str] = {}
    for item in device_option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--device-option expects KEY=VALUE, got {item!r}")
        options[key] = value
    cfg = _predictor_config(backend, 1, roi_every, threads)
    predictor = load_predictor(model, config=cfg, segmenter=segmenter, onnx=onnx)
    scfg = StreamConfig(
        queue_size=queue,
        stall_timeout_s=stall_timeout,
        replay_speed=speed,
        max_frames=max_frames,
        max_seconds=seconds,
    )
    src = open_source(
        source,
        crop=crop,
        flip_horizontal=flip,
        pixel_spacing_mm=spacing,
        device_options=options or None,
    )
    prov = provenance(predictor, src)
    prov["warnings"] = check_against_training(predictor, src, src.info.frame_shape)
    con = Console(soft_wrap=True)
    if getattr(predictor.estimator, "context", 0):
        err.print(
            "[yellow]warning:[/] this bundle looks at neighbouring frames; live, the frames "
            "after the current one do not exist yet and are replaced by the current one"
        )
    names = predictor.targets

    def show(row: Estimates, latency_ms: float) -> None:
        vals = "  ".join(
            f"{k}={row.mean[k][0]:8.2f}±{row.sd[k][0]:.2f}" if row.roi_found[0] else f"{k}=  --"
            for k in names
        )
        typer.echo(f"{int(row.frame[0]):6d} {row.t_s[0]:8.3f}s  {vals}  [{latency_ms:5.1f} ms]")

    writer = RowWriter(out) if out is not None else None
    report = run_stream(
        predictor, src, config=scfg, on_estimate=None if quiet else show, writer=writer
    )
    lat = report.latency_ms
    con.print(
        f"{report.frames_processed} frames estimated, {report.frames_dropped} dropped "
        f"of {report.frames_received} received; source {report.end_reason}; latency ms "
        f"p50 {lat['p50']:.1f}  p90 {lat['p90']:.1f}  p99 {lat['p99']:.1f}  max {lat['max']:.1f}"
    )
    if report.frames_dropped:
        con.print(
            f"[yellow]dropped {report.frames_dropped} frame(s): this machine could not keep up "
            "(try --roi-every 8, smaller frames via --crop, or a faster machine)[/]"
        )
    if out is not None:
        doc = {**prov, "stream": scfg.to_dict(), "report": report.to_dict()}
        if np.isnan(doc["report"]["source_fps"]):
            doc["report"]["source_fps"] = None
        write_text_atomic(sidecar_path(out), json.dumps(doc, indent=2, default=str))


@app.command("export")
def export_cmd(
    model: Annotated[Path, typer.Argument(help="Estimator bundle (folder).")],
    onnx: Annotated[Path, typer.Option("--onnx", help="ONNX file to write.")],
    opset: Annotated[int, typer.Option(help="ONNX opset version.")] = 17,
) -> None:
    """Export a bundle's estimator to ONNX and check it against PyTorch."""
    from musclestate.inference.export import export_onnx

    result = export_onnx(model, onnx, opset=opset)
    typer.echo(
        f"wrote {result.path}; ONNX Runtime vs PyTorch on {result.n_checked} inputs: max |diff| "
        f"{result.max_abs_diff:.2e} (tolerance {result.tolerance:.0e})"
    )


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
