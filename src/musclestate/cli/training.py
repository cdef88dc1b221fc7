"""Estimation: ``train``, ``cv`` (and ``cv collect``), ``report`` and ``demo``."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from musclestate.cli._common import mirrors, parse_devices, progress_bar, rank_zero

# The training options of `train` and `cv`, declared once: each is the TrainConfig field of the
# same name (`None` = keep the --config file's value, else TrainConfig's default).
TRAIN_OPTIONS: dict[str, Any] = {
    "network": Annotated[str | None, typer.Option(help="Network name (default compact_resnet).")],
    "input": Annotated[str | None, typer.Option("--input", help="patches (MG+SOL) or frame.")],
    "image_size": Annotated[
        tuple[int, int] | None,
        typer.Option("--image-size", help="Network input H W (default 32 64)."),
    ],
    "context": Annotated[
        int | None, typer.Option(help="Neighbouring frames per side as channels.")
    ],
    "targets": Annotated[
        list[str] | None,
        typer.Option("--target", help="Target to train on (repeat); default all."),
    ],
    "frame_stride": Annotated[
        int | None, typer.Option(help="Train on every k-th frame (test: all).")
    ],
    "ensemble": Annotated[
        int | None,
        typer.Option(
            help="Networks per model (deep ensemble; member m trains on frames offset m)."
        ),
    ],
    "fuse_features": Annotated[
        bool | None,
        typer.Option(
            "--fuse-features/--no-fuse-features",
            help="The network also reads the ROI stage's architecture measures (fused estimator).",
        ),
    ],
    "epochs": Annotated[int | None, typer.Option(help="Maximum epochs (default 30).")],
    "patience": Annotated[int | None, typer.Option(help="Early-stopping patience (default 6).")],
    "batch_size": Annotated[int | None, typer.Option(help="Global batch size (default 64).")],
    "lr": Annotated[float | None, typer.Option(help="AdamW learning rate (default 2e-3).")],
    "val_participants": Annotated[
        int | None,
        typer.Option(help="Validation participants from the training side (default 1)."),
    ],
    "seed": Annotated[
        int | None, typer.Option(help="Seed of splits, weights, order, augmentation.")
    ],
    "accelerator": Annotated[
        str | None, typer.Option(help="Lightning accelerator: auto, cpu, gpu.")
    ],
    "devices": Annotated[str | None, typer.Option(help="Devices per node (a number or 'auto').")],
    "num_nodes": Annotated[int | None, typer.Option(help="Nodes for multi-node DDP.")],
    "strategy": Annotated[str | None, typer.Option(help="Lightning strategy: auto, ddp, ...")],
    "num_threads": Annotated[int | None, typer.Option("--threads", help="CPU threads for torch.")],
}


def with_train_options(command: Callable) -> Callable:
    """Give ``command`` the :data:`TRAIN_OPTIONS` as keyword options, collected in its
    ``**train_options`` (so that ``train`` and ``cv`` declare them in one place)."""
    sig = inspect.signature(command, eval_str=True)
    kept = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ann)
        for name, ann in TRAIN_OPTIONS.items()
    ]
    command.__signature__ = sig.replace(parameters=[*kept, *added])
    command.__annotations__ = {
        **{p.name: p.annotation for p in kept},
        **TRAIN_OPTIONS,
        "return": sig.return_annotation,
    }
    return command


def _train_config(config: Path | None, options: dict[str, Any]):
    """A TrainConfig from an optional JSON file (nested or flat form; a run's config.json
    "train" or a card's "training.config" are accepted too), then the options given on the
    command line (flat setting names, see :data:`~musclestate.training.config.FLAT_SETTINGS`)."""
    from musclestate.training.config import TrainConfig

    base: dict = {}
    if config is not None:
        try:
            base = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            from musclestate.errors import ConfigError

            raise ConfigError(f"{config}: cannot read training configuration ({exc})") from None
        base = base.get("train", base.get("training", {}).get("config", base))
    given = {k: v for k, v in options.items() if v is not None and v != [] and v != ()}
    if "targets" in given:
        given["targets"] = tuple(given["targets"])
    if "devices" in given:
        given["devices"] = parse_devices(given["devices"])
    return TrainConfig.from_dict(base).replace(**given)


def _quiet_lightning() -> None:
    from musclestate.training.module import quiet_lightning

    quiet_lightning()


_Config = Annotated[
    Path | None,
    typer.Option("--config", help="JSON training configuration to start from (e.g. a run's "
                 "config.json); the options below override it."),
]  # fmt: skip
_Resume = Annotated[bool, typer.Option(help="Continue from the last checkpoints.")]


@mirrors("train_bundle")
@with_train_options
def train_cmd(
    dataset_path: Annotated[
        Path, typer.Argument(metavar="DATASET", help="Dataset folder (with `roi apply` done).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Estimator bundle folder to write.")],
    run: Annotated[
        Path | None, typer.Option("--run", help="Collected cv run whose metrics go in the card.")
    ] = None,
    config: _Config = None,
    resume: _Resume = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle at --out.")] = False,
    **train_options: Any,
) -> None:
    """Train a deployable estimator bundle on every participant of a dataset."""
    from musclestate.training.cv import train_bundle

    cfg = _train_config(config, train_options)
    _quiet_lightning()
    with progress_bar(disable=not rank_zero()) as progress:
        path = train_bundle(
            dataset_path, out, cfg, run=run, resume=resume, overwrite=overwrite, progress=progress
        )
    if rank_zero():
        Console(soft_wrap=True).print(f"estimator bundle: {path}")


@mirrors("run_cv")
@with_train_options
def cv_cmd(
    dataset_path: Annotated[
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
    calibration_tasks: Annotated[
        list[str] | None,
        typer.Option(
            "--calibration-task",
            help="Trial type (recording task) that counts as a calibration trial (repeatable; "
            "default rest, passive_rom, mvc).",
        ),
    ] = None,
    image_only: Annotated[
        bool,
        typer.Option(
            "--image-only/--no-image-only",
            help="With a fused estimator, also train the patches-only network of every fold "
            "(cnn_image_only; doubles the training time).",
        ),
    ] = True,
    config: _Config = None,
    resume: _Resume = False,
    **train_options: Any,
) -> None:
    """Participant-wise cross-validation: `musclestate cv DATASET --folds K --out RUN [--fold I]`,
    then (after per-fold jobs) `musclestate cv collect RUN`."""
    from musclestate.errors import ConfigError
    from musclestate.training.cv import collect, run_cv

    con = Console(soft_wrap=True)
    if str(dataset_path) == "collect" and not dataset_path.is_dir():
        if collect_run is None:
            raise ConfigError("usage: musclestate cv collect RUN")
        path = collect(collect_run, calibrate=calibrate or None,
                       calibration_tasks=calibration_tasks or None)  # fmt: skip
        _print_cv_summary(con, json.loads(path.read_text(encoding="utf-8")), path)
        return
    if collect_run is not None:
        raise ConfigError(f"unexpected argument {str(collect_run)!r}; did you mean --out?")
    if out is None:
        raise ConfigError("missing --out RUN (the run folder to write)")
    cfg = _train_config(config, train_options)
    _quiet_lightning()
    with progress_bar(disable=not rank_zero()) as progress:
        path = run_cv(dataset_path, out, cfg, folds=folds, fold=fold, seeds=seeds,
                      calibrate=calibrate, image_only=image_only, resume=resume,
                      progress=progress,
                      **({"calibration_tasks": calibration_tasks} if calibration_tasks else {}),
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


@mirrors("write_report")
def report_cmd(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN", help="Run folder written by `musclestate cv`.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write [default: RUN/report.html].")
    ] = None,
    n_examples: Annotated[
        int, typer.Option("--examples", help="Example frames with their ROI overlay.")
    ] = 4,
) -> None:
    """Write one self-contained HTML report of a cross-validation run."""
    from musclestate.report import write_report
    from musclestate.report.console import metrics_tables

    path = write_report(run_dir, out, n_examples=n_examples)
    con = Console(soft_wrap=True)
    for table in metrics_tables(json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))):
        con.print(table)
    con.print(f"report: {path}", soft_wrap=True)


@mirrors("run_demo")
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
    with progress_bar(con, stages=STAGES) as progress:
        result = run_demo(out, cfg, overwrite=overwrite, progress=progress)
    for table in metrics_tables(result.metrics):
        con.print(table)
    if narrow:
        con.print(narrow)
    con.print(
        f"wall time {result.timings_s['total'] / 60:.1f} min; report: {result.report}",
        soft_wrap=True,
    )
