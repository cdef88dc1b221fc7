"""The demo: the whole pipeline on a small synthetic cohort, end to end, on a laptop CPU.

1. simulate a phantom cohort as lab-style raw recordings (video + DAQ signal files + a sync
   trigger, described by an import manifest): :func:`musclestate.phantom.simulate_cohort`;
2. import it into a dataset, exactly as real data is imported:
   :func:`musclestate.dataset.import_manifest`;
3. find the muscle in every frame (MG and SOL patches, architecture features):
   :func:`musclestate.roi.apply_roi`;
4. participant-wise cross-validation of the CNN against the mean predictor and the feature
   baseline: :func:`musclestate.training.cv.run_cv`;
5. the HTML report: :func:`musclestate.report.write_report`.

Output folder layout (``OUT``): ``demo_config.json`` (the resolved configuration of every
stage), ``cohort/`` (raw recordings and ``manifest.toml``), ``dataset/``, ``run/`` (metrics.json,
predictions/, config.json, report.html) and ``timings.json`` (wall time of each stage).

The default sizes are chosen so that the demo finishes in under 15 minutes on 2 CPU cores while
the CNN still learns; its measured figures and wall time are in docs/results.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from musclestate._atomic import read_json, write_text_atomic
from musclestate.errors import ConfigError, InputError
from musclestate.progress import ProgressEvent, ProgressFn, emit

log = logging.getLogger(__name__)

#: The demo's stages in order: the ``stage`` of the progress events it sends.
STAGES: tuple[str, ...] = ("simulate", "import", "roi", "cross-validate", "report")

CONFIG_FILE = "demo_config.json"

# Cost is per frame (simulation, ROI, training) while generalisation to new people grows with the
# number of people, so the demo spreads its frames over many short-recorded participants at a low
# frame rate (neighbouring frames add little), and segments every second frame (the aponeurosis
# curves are interpolated and smoothed in between).
#: ROI overrides of the default demo.
DEMO_ROI: Mapping[str, Any] = MappingProxyType({"every": 2})
#: Training overrides of the default demo: the ROI stage's 64 x 128 patches at full resolution
#: (halving them blurs the fascicles), three validation participants per fold so early stopping
#: depends less on one person, every second frame of a recording per epoch (neighbouring frames
#: at 10 fps add little) and at most 25 epochs, to stay within 15 minutes. The estimator is the
#: fused one (images and architecture measures), the default of ``musclestate train``. The
#: variants tried against these settings, on which cohorts, and why they are not used, are in
#: docs/results.md.
DEMO_TRAIN: Mapping[str, Any] = MappingProxyType(
    {
        "epochs": 25,
        "patience": 8,
        "val_participants": 3,
        "image_size": (64, 128),
        "frame_stride": 2,
    }
)


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo cohort and run; everything not set here keeps its stage's default.

    Attributes:
        participants: phantom participants (each one a different simulated person).
        seconds: seconds of tracking recording per participant (split over
            ``tracking_trials``).
        fps: frame rate of the simulated scanner (frames per second).
        size: ``(rows, cols)`` of the simulated B-mode frames in pixels (even, >= 64).
        tracking_trials: tracking trials per participant.
        mvc_seconds: length of each participant's MVC trial (used only for %MVC normalisation).
        rom_seconds: length of each participant's passive range-of-motion trial.
        folds: participant-wise cross-validation folds (2..participants).
        seed: seed of the cohort and of training.
        anatomy_spread: between-participant variety of the cohort in [0, 1] (see
            :class:`musclestate.phantom.PhantomConfig`). The demo draws its people from the
            central 30 % of the published ranges: with the few people a 15-minute CPU run can
            train on, the full variety (1.0) leaves every estimator, features and CNN alike,
            dominated by person-specific offsets. ``musclestate demo`` says so in its output
            whenever this is below 1.
        image_only: also train the patches-only network in every fold beside the fused
            estimator (``cnn_image_only`` in metrics.json; doubles the training time).
        roi: overrides of :class:`musclestate.roi.ROIConfig` (field -> value).
        train: overrides of :class:`musclestate.training.config.TrainConfig` (flat setting
            name -> value, or its nested parts; see ``TrainConfig.from_dict``).
    """

    participants: int = 20
    seconds: float = 16.0
    fps: float = 10.0
    size: tuple[int, int] = (192, 192)
    tracking_trials: int = 2
    mvc_seconds: float = 2.0
    rom_seconds: float = 4.0
    folds: int = 4
    seed: int = 0
    anatomy_spread: float = 0.3
    image_only: bool = False
    roi: Mapping[str, Any] = field(default_factory=lambda: dict(DEMO_ROI))
    train: Mapping[str, Any] = field(default_factory=lambda: dict(DEMO_TRAIN))

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(int(s) for s in self.size))
        object.__setattr__(self, "roi", dict(self.roi))
        object.__setattr__(self, "train", dict(self.train))
        if self.participants < 3:
            raise ConfigError(
                f"demo participants must be >= 3 (training, validation and test people), "
                f"got {self.participants}"
            )
        if not 2 <= self.folds <= self.participants:
            raise ConfigError(
                f"demo folds must be in 2..participants ({self.participants}), got {self.folds}"
            )
        n_train = self.participants - -(-self.participants // self.folds)
        n_val = self.train_config().data.val_participants
        if n_train < n_val + 1:
            raise ConfigError(
                f"{self.participants} participants in {self.folds} folds leave {n_train} "
                f"training participant(s) in the largest fold, fewer than {n_val + 1} "
                "(validation needs its own); use more participants or more folds"
            )
        # Build every stage's configuration now, so that a bad value fails before any work.
        self.phantom_config()
        self.roi_config()
        self.train_config()

    def phantom_config(self) -> Any:
        """The resolved :class:`musclestate.phantom.PhantomConfig` of the demo cohort."""
        from musclestate.phantom import PhantomConfig, ProtocolConfig

        return PhantomConfig(
            participants=self.participants,
            seconds=self.seconds,
            fps=self.fps,
            seed=self.seed,
            size=self.size,
            anatomy_spread=self.anatomy_spread,
            protocol=ProtocolConfig(
                tracking_trials=self.tracking_trials,
                mvc_seconds=self.mvc_seconds,
                rom_seconds=self.rom_seconds,
            ),
        )

    def roi_config(self) -> Any:
        """The resolved :class:`musclestate.roi.ROIConfig` of the demo."""
        from musclestate.roi.pipeline import ROIConfig

        return ROIConfig.from_dict(self.roi)

    def train_config(self) -> Any:
        """The resolved :class:`~musclestate.training.config.TrainConfig` of the demo."""
        from musclestate.training.config import TrainConfig

        return TrainConfig.from_dict({"seed": self.seed, **self.train})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the demo's sizes and every stage's configuration resolved in full."""
        d = dataclasses.asdict(self)
        d["size"] = list(self.size)
        d["roi"] = dict(self.roi)
        d["train"] = dict(self.train)
        d["resolved"] = {
            "phantom": self.phantom_config().to_dict(),
            "roi": self.roi_config().to_dict(),
            "train": self.train_config().to_dict(),
        }
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DemoConfig:
        """Inverse of :meth:`to_dict` (``resolved`` is ignored: it follows from the rest);
        unknown keys raise :class:`ConfigError`."""
        d = {k: v for k, v in d.items() if k != "resolved"}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown demo setting(s) {unknown}; valid are {sorted(names)}")
        return cls(**d)


def load_demo_config(path: str | Path) -> DemoConfig:
    """Read a demo configuration JSON file (e.g. a previous demo's ``demo_config.json``)."""
    d = read_json(path, "demo configuration", missing="demo configuration file not found")
    try:
        return DemoConfig.from_dict(d)
    except TypeError as exc:
        raise ConfigError(f"{path}: invalid demo configuration: {exc}") from None


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its outputs, its metrics and how long each stage took.

    Attributes:
        out: the demo's output folder.
        manifest: the phantom cohort's import manifest (``OUT/cohort/manifest.toml``).
        dataset: the imported dataset (``OUT/dataset``).
        run: the cross-validation run folder (``OUT/run``).
        report: the HTML report.
        metrics: parsed ``run/metrics.json``.
        timings_s: stage -> wall time in seconds (and ``"total"``).
        config: the configuration the demo ran with.
    """

    out: Path
    manifest: Path
    dataset: Path
    run: Path
    report: Path
    metrics: Mapping[str, Any]
    timings_s: Mapping[str, float]
    config: DemoConfig


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Create ``out``; replace a previous demo output there, refuse anything else."""
    if out.exists() and not out.is_dir():
        raise InputError("demo output must be a folder, not a file; choose another --out", out)
    if out.is_dir() and any(out.iterdir()):
        previous_demo = (out / CONFIG_FILE).is_file()
        if not (overwrite or previous_demo):
            raise InputError(
                "folder exists and is not a previous demo output; choose another --out or "
                "pass --overwrite",
                out,
            )
        log.info("replacing the previous demo output in %s", out)
        for name in ("cohort", "dataset", "run", CONFIG_FILE, "timings.json"):
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def run_demo(
    out: str | Path = "demo-output",
    config: DemoConfig | None = None,
    *,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> DemoResult:
    """Simulate, import, find the ROI, cross-validate and report, all in ``out``.

    Args:
        out: output folder; a previous demo output there is replaced, any other non-empty
            folder is refused unless ``overwrite``.
        config: sizes of the cohort and the run (default :class:`DemoConfig`).
        overwrite: replace the demo's sub-folders even in a folder that is not a demo output.
        progress: receives :class:`~musclestate.progress.ProgressEvent` as the stages advance:
            ``stage`` is one of :data:`STAGES` (each starts with ``done`` 0); the
            cross-validation counts epochs over all folds, each fold as its maximum number of
            epochs (early stopping jumps ahead).

    Returns:
        :class:`DemoResult` with the paths, metrics and stage timings.
    """
    from musclestate.dataset import import_manifest
    from musclestate.phantom import simulate_cohort
    from musclestate.report import write_report
    from musclestate.roi import apply_roi
    from musclestate.training.cv import run_cv

    cfg = config or DemoConfig()
    out = Path(out)
    _prepare_out(out, overwrite)
    write_text_atomic(out / CONFIG_FILE, json.dumps(cfg.to_dict(), indent=2) + "\n")
    train = cfg.train_config()

    def tell(stage: str) -> ProgressFn:
        def cb(e: ProgressEvent) -> None:
            emit(progress, stage, e.done, e.total, e.unit, e.message)

        return cb

    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    def timed(stage: str, fn: Callable[[], Any]) -> Any:
        log.info("demo: %s", stage)
        emit(progress, stage, 0, None, "")
        t0 = time.perf_counter()
        result = fn()
        timings[stage] = time.perf_counter() - t0
        log.info("demo: %s done in %.1f s", stage, timings[stage])
        return result

    manifest = timed(
        "simulate",
        lambda: simulate_cohort(
            out / "cohort", config=cfg.phantom_config(), progress=tell("simulate")
        ),
    )
    dataset = timed(
        "import",
        lambda: import_manifest(manifest, out / "dataset", progress=tell("import")),
    )
    timed("roi", lambda: apply_roi(dataset, cfg.roi_config(), progress=tell("roi")))

    def cv_progress(e: ProgressEvent) -> None:
        # One bar over all folds: fold `part` of `parts` counts as its maximum number of epochs.
        if e.stage != "train" or e.total is None:
            emit(progress, "cross-validate", 0, None, e.unit, f"{e.stage} {e.done}/{e.total}")
            return
        done = e.part * e.total + e.done
        message = f"fold {e.part + 1}/{e.parts}, epoch {e.done}/{e.total}"
        emit(progress, "cross-validate", done, e.parts * e.total, "epochs", message)

    timed(
        "cross-validate",
        lambda: run_cv(
            dataset,
            out / "run",
            train,
            folds=cfg.folds,
            calibrate=True,
            image_only=cfg.image_only,
            progress=cv_progress,
        ),
    )
    report_path = timed("report", lambda: write_report(out / "run"))
    timings["total"] = time.perf_counter() - t_all
    write_text_atomic(
        out / "timings.json", json.dumps({k: round(v, 2) for k, v in timings.items()}, indent=2)
    )
    metrics = read_json(out / "run" / "metrics.json", "cross-validation metrics")
    return DemoResult(
        out=out,
        manifest=Path(manifest),
        dataset=Path(dataset),
        run=out / "run",
        report=Path(report_path),
        metrics=metrics,
        timings_s=timings,
        config=cfg,
    )
