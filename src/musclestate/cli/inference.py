"""Inference: ``predict`` (files), ``stream`` (live) and ``export`` (ONNX)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from musclestate.cli._common import err, progress_columns
from musclestate.errors import MusclestateError

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
_Calibration = Annotated[
    Path | None,
    typer.Option(
        "--calibration", help="The person's calibration profile (`musclestate calibrate`)."
    ),
]


def _predictor_config(
    backend: str | None, batch_size: int, roi_every: int | None, threads: int | None
) -> object:
    from musclestate.inference import PredictorConfig

    given = {"backend": backend, "roi_every": roi_every, "threads": threads}
    return PredictorConfig(batch_size=batch_size, **{k: v for k, v in given.items() if v})


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
    fps: Annotated[
        float | None,
        typer.Option(
            help="Frame rate of an image folder or TIFF stack; for a video or DICOM it "
            "replaces the file's timing, as fps in an import manifest does."
        ),
    ] = None,
    backend: _Backend = None,
    batch_size: Annotated[int, typer.Option(help="Frames per estimator call.")] = 32,
    roi_every: _RoiEvery = None,
    threads: _Threads = None,
    segmenter: _Segmenter = None,
    onnx: _Onnx = None,
    calibration: _Calibration = None,
    hash_input: Annotated[
        bool, typer.Option(help="Record the input's SHA-256 in the sidecar.")
    ] = True,
) -> None:
    """Estimate muscle state for every frame of a recording (or of many) and write a table."""
    from rich.progress import Progress

    from musclestate.inference import load_predictor
    from musclestate.inference.batch import SourceOptions, count_frames, plan_inputs, predict_job

    cfg = _predictor_config(backend, batch_size, roi_every, threads)
    predictor = load_predictor(
        model, config=cfg, segmenter=segmenter, onnx=onnx, calibration=calibration
    )
    opts = SourceOptions(crop=crop, flip_horizontal=flip, pixel_spacing_mm=spacing, fps=fps)
    jobs = plan_inputs(input, out, xlsx=xlsx, plot=plot, overlay=overlay)
    con = Console(stderr=True)
    total = count_frames(jobs, opts)
    with Progress(*progress_columns("{task.description}", detail=False), console=con) as bar:
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
    calibration: _Calibration = None,
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
    predictor = load_predictor(
        model, config=cfg, segmenter=segmenter, onnx=onnx, calibration=calibration
    )
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


def calibrate_cmd(
    model: Annotated[
        Path, typer.Argument(help="Estimator bundle folder (card.json, model.safetensors).")
    ],
    dataset: Annotated[
        Path, typer.Argument(help="Dataset holding the person's calibration recordings.")
    ],
    participant: Annotated[str, typer.Option("--participant", help="The person's id.")],
    out: Annotated[Path, typer.Option("--out", help="Profile to write (JSON).")],
    trial: Annotated[
        list[str] | None,
        typer.Option(
            "--trial",
            help="Calibration trial (repeatable); default: the person's rest, passive range "
            "of motion and MVC recordings.",
        ),
    ] = None,
    segmenter: _Segmenter = None,
    threads: _Threads = None,
) -> None:
    """Fit a person's calibration profile (offset and gain per target) from their own
    calibration trials; use it with `predict --calibration` and `stream --calibration`."""
    from musclestate.inference import PredictorConfig
    from musclestate.inference.calibrate import calibrate

    cfg = PredictorConfig(roi_every=1, **({"threads": threads} if threads else {}))
    prof = calibrate(model, dataset, participant, out, trials=tuple(trial or ()), config=cfg,
                     segmenter=segmenter)  # fmt: skip
    con = Console(soft_wrap=True)
    for k, c in prof.corrections.items():
        con.print(f"{k}: {c.offset:+.3g} {prof.units.get(k, '')} + {c.gain:.3f} x estimate "
                  f"({c.n_frames} frames)")  # fmt: skip
    con.print(f"calibration profile of {participant}: {out}")


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
