"""Estimation: ``train``, ``cv`` (and ``cv collect``), ``report`` and ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from musclestate.cli._common import parse_devices, progress_columns, rank_zero


def _train_config(
    config: Path | None,
    *,
    target: list[str] | None,
    devices: str | None,
    threads: int | None,
    **options: object,
):
    """A TrainConfig from an optional JSON file (a run's config.json "train" or a card's
    "training.config" are accepted too), then the options given on the command line.

    ``options`` are the shared training options of ``train`` and ``cv`` under their
    TrainConfig names; the three whose names or types differ are mapped here.
    """
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
    overrides = {
        **options,
        "targets": tuple(target or ()),
        "devices": parse_devices(devices),
        "num_threads": threads,
    }
    given = {k: v for k, v in overrides.items() if v is not None and v != ()}
    return TrainConfig.from_dict({**base, **given})


def _epoch_progress(con: Console):
    """A rich progress bar with one row per fold, and the ``progress`` function that feeds it."""
    from rich.progress import Progress

    bar = Progress(
        *progress_columns("{task.description:<16}", detail=False),
        console=con,
        disable=not rank_zero(),
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


# Options shared by `train` and `cv`, declared once.

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
_Ensemble = Annotated[
    int | None,
    typer.Option(help="Networks per model (deep ensemble; member m trains on frames offset m)."),
]
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
_Threads = Annotated[int | None, typer.Option("--threads", help="CPU threads for torch.")]
_Resume = Annotated[bool, typer.Option(help="Continue from the last checkpoints.")]


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
    ensemble: _Ensemble = None,
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
    threads: _Threads = None,
    resume: _Resume = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle at --out.")] = False,
) -> None:
    """Train a deployable estimator bundle on every participant of a dataset."""
    from musclestate.training.cv import train_bundle

    cfg = _train_config(
        config, network=network, input=input, image_size=image_size, context=context,
        target=target, frame_stride=frame_stride, ensemble=ensemble, epochs=epochs,
        patience=patience,
        batch_size=batch_size, lr=lr, val_participants=val_participants, seed=seed,
        accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
        threads=threads,
    )  # fmt: skip
    _quiet_lightning()
    con = Console(stderr=True)
    bar, progress = _epoch_progress(con)
    with bar:
        path = train_bundle(
            dataset, out, cfg, run=run, resume=resume, overwrite=overwrite, progress=progress
        )
    if rank_zero():
        Console(soft_wrap=True).print(f"estimator bundle: {path}")


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
    seeds: Annotated[
        int,
        typer.Option(help="Repeat with N training seeds (same folds) and report the spread."),
    ] = 1,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Also report estimates corrected per person from their own calibration trials "
            "(rest, passive range of motion, MVC).",
        ),
    ] = False,
    calibration_task: Annotated[
        list[str] | None,
        typer.Option(
            "--calibration-task",
            help="Trial type (recording task) that counts as a calibration trial (repeatable; "
            "default rest, passive_rom, mvc).",
        ),
    ] = None,
    config: _Config = None,
    network: _Network = None,
    input: _Input = None,
    image_size: _ImageSize = None,
    context: _Context = None,
    target: _Targets = None,
    frame_stride: _Stride = None,
    ensemble: _Ensemble = None,
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
    threads: _Threads = None,
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
        path = collect(collect_run, calibrate=calibrate or None,
                       calibration_tasks=calibration_task or None)  # fmt: skip
        _print_cv_summary(con, json.loads(path.read_text(encoding="utf-8")), path)
        return
    if collect_run is not None:
        raise ConfigError(f"unexpected argument {str(collect_run)!r}; did you mean --out?")
    if out is None:
        raise ConfigError("missing --out RUN (the run folder to write)")
    cfg = _train_config(
        config, network=network, input=input, image_size=image_size, context=context,
        target=target, frame_stride=frame_stride, ensemble=ensemble, epochs=epochs,
        patience=patience,
        batch_size=batch_size, lr=lr, val_participants=val_participants, seed=seed,
        accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
        threads=threads,
    )  # fmt: skip
    _quiet_lightning()
    bar, progress = _epoch_progress(Console(stderr=True))
    with bar:
        path = run_cv(dataset, out, cfg, folds=folds, fold=fold, seeds=seeds,
                      calibrate=calibrate, resume=resume, progress=progress,
                      **({"calibration_tasks": calibration_task} if calibration_task else {}),
                      )  # fmt: skip
    if not rank_zero():
        return
    if fold is not None:
        con.print(f"fold {fold} written to {path}; merge with `musclestate cv collect {out}`")
    else:
        _print_cv_summary(con, json.loads(path.read_text(encoding="utf-8")), path)


def _print_cv_summary(con: Console, metrics: dict, path: Path) -> None:
    from musclestate.report.console import metrics_tables, seeds_table

    for table in [seeds_table(metrics)] if "runs" in metrics else metrics_tables(metrics):
        con.print(table)
    con.print(f"metrics: {path}")


def report_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder written by `musclestate cv`.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write [default: RUN/report.html].")
    ] = None,
    examples: Annotated[int, typer.Option(help="Example frames with their ROI overlay.")] = 4,
) -> None:
    """Write one self-contained HTML report of a cross-validation run."""
    import json

    from musclestate.report import write_report
    from musclestate.report.console import metrics_tables

    path = write_report(run, out, n_examples=examples)
    con = Console(soft_wrap=True)
    for table in metrics_tables(json.loads((run / "metrics.json").read_text(encoding="utf-8"))):
        con.print(table)
    con.print(f"report: {path}", soft_wrap=True)


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

    from rich.progress import Progress

    from musclestate.demo import STAGES, DemoConfig, load_demo_config, run_demo
    from musclestate.report.console import metrics_tables

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
    narrow = ""
    if cfg.anatomy_spread < 1.0:
        narrow = (
            f"note: a narrower cohort than in vivo: people drawn from the central "
            f"{100 * cfg.anatomy_spread:.0f} % of the published between-person ranges "
            f"(anatomy_spread {cfg.anatomy_spread:g}; 1 = published widths)"
        )
        con.print(narrow)
    columns = progress_columns("{task.description:<15}", percent=True)
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
    for table in metrics_tables(result.metrics):
        con.print(table)
    if narrow:
        con.print(narrow)
    con.print(
        f"wall time {result.timings_s['total'] / 60:.1f} min; report: {result.report}",
        soft_wrap=True,
    )
