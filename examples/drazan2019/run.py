"""The whole musclestate workflow on real MG ultrasound (Drazan et al. 2019): import -> ROI ->
cross-validation -> deployable bundle -> figures.

Data: Drazan, Hullfish, Baxter (2019), "An automatic fascicle tracking algorithm quantifying
gastrocnemius architecture during maximal effort contractions", PeerJ Preprints 7:e27475v1;
Zenodo record 2598553 (CC BY 4.0). 25 screen-captured clips of ONE participant (p6).

Evaluation groups. musclestate's cross-validation is participant-wise; with one participant the
held-out unit here is a *push group*: every clip is assigned to the group of its push number
(``push_01``, ``push_02``, ``push_03``; pushes 4-6, which only the isometric and passive trials
have, form ``push_04-06``). Each group spans every contraction type and the whole angle and
moment range, so R^2 within a held-out group is meaningful; no clip is ever split between
training and test, and the held-out group takes no part in training, normalisation, early
stopping or model selection (the run's "participants" are these groups). One participant cannot
show generalisation across people.

Usage::

    python examples/drazan2019/run.py ../shared/data/drazan2019-mg drazan-out

writes ``OUT/dataset`` (imported clips, ROI), ``OUT/roi_overlays/*.png``, ``OUT/cv`` (per-fold
bundles, predictions, ``metrics.json``), ``OUT/bundle`` (trained on all 25 clips),
``OUT/figures/*.png`` (estimates against the dynamometer) and ``OUT/workflow.json`` (the resolved
configuration and timings).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import import_drazan

from musclestate import Recording
from musclestate.errors import ConfigError, InputError, MusclestateError

log = logging.getLogger("drazan2019")

PUSH = re.compile(r"_push_(\d+)$")


def push_group(trial: str) -> str:
    """Evaluation group of a clip's trial name, e.g. ``isokinetic030_01_push_02`` -> ``push_02``.

    Pushes 4-6 exist only in the isometric (4 pushes) and passive (6) trials and are pooled into
    ``push_04-06`` so that every group holds several contraction types.
    """
    m = PUSH.search(trial)
    if m is None:
        raise InputError(f"trial name {trial!r} does not end in _push_NN")
    n = int(m[1])
    return f"push_{n:02d}" if n <= 3 else "push_04-06"


@dataclass(frozen=True)
class WorkflowConfig:
    """Settings of the whole example run (saved as ``OUT/workflow.json``).

    Attributes:
        folds: cross-validation folds over the push groups (4 = leave-one-group-out).
        roi: :class:`musclestate.roi.ROIConfig` settings as a dict (``model`` None = shipped).
        train: :class:`musclestate.training.config.TrainConfig` settings as a dict.
        overlay_frames: ROI overlay PNGs written per overlay clip.
        overlay_clips: clips (trial names) whose frames are drawn.
    """

    folds: int = 4
    # The README's figures were measured with patches straightened between the aponeuroses;
    # with one participant there is no anatomy to normalise across, so that layout is kept here.
    roi: dict[str, Any] = field(
        default_factory=lambda: {
            "every": 4,
            "batch_size": 16,
            "patches": {"mode": "straightened"},
        }
    )
    train: dict[str, Any] = field(
        default_factory=lambda: {
            "targets": ["ankle_angle", "ankle_moment"],
            # The MG/SOL patches are 64 x 128 (rows along depth x columns along the probe);
            # 24 x 48 keeps that aspect (fascicle angles stay undistorted) at half the pixels
            # of the 48 x 48 default.
            "image_size": [24, 48],
            "frame_stride": 4,
            "epochs": 15,
            "patience": 4,
            "num_threads": 2,
            "seed": 0,
        }
    )
    overlay_frames: int = 3
    # the per-person calibration of musclestate (``cv --calibrate``): each held-out group's
    # passive and isometric clips fit its offset and gain; its isokinetic clips are estimated
    calibration_tasks: tuple[str, ...] = ("passive_ROM", "isometric_max")
    overlay_clips: tuple[str, ...] = (
        "isokinetic030_01_push_01",
        "isometric_max_01_push_02",
        "passive_ROM_01_push_03",
    )

    def roi_config(self) -> Any:
        from musclestate.roi import ROIConfig

        return ROIConfig.from_dict(self.roi)

    def train_config(self) -> Any:
        from musclestate.training.config import TrainConfig

        cfg = TrainConfig.from_dict(self.train)
        if self.folds < 3:
            raise ConfigError(f"folds must be >= 3 (test, validation, training), got {self.folds}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["overlay_clips"] = list(self.overlay_clips)
        d["calibration_tasks"] = list(self.calibration_tasks)
        return d


# ---- stage 1: import -----------------------------------------------------------------------------


def grouped_recordings(data_dir: Path, clips: Sequence[str] | None = None) -> Iterator[Recording]:
    """The clips as recordings whose ``participant`` is their push group.

    The real participant id (``p6``) stays in ``meta.extra["participant"]``.
    """
    params = import_drazan.load_params(data_dir)
    pushes = import_drazan.load_pushes(data_dir)
    videos = sorted((data_dir / "clips").glob("*.mp4"))
    if clips is not None:
        videos = [v for v in videos if v.stem in set(clips)]
    if not videos:
        raise InputError("no clips/*.mp4 found", data_dir)
    for v in videos:
        if v.stem not in pushes:
            raise InputError(f"no entry for {v.stem} in push_data.mat", v)
        rec = import_drazan.push_recording(v, pushes[v.stem], params)
        meta = dataclasses.replace(
            rec.meta,
            participant=push_group(rec.meta.trial),
            extra={**rec.meta.extra, "participant": import_drazan.PARTICIPANT},
        )
        yield rec.replace(meta=meta)


def import_stage(
    data_dir: Path, out: Path, *, clips: Sequence[str] | None = None, progress: Any = None
) -> Path:
    """Write ``out`` (a dataset) from the clips; participants are push groups."""
    from musclestate.dataset import write_dataset

    params = import_drazan.load_params(data_dir)
    n = len(clips) if clips is not None else len(list((data_dir / "clips").glob("*.mp4")))
    return write_dataset(
        out,
        grouped_recordings(data_dir, clips),
        overwrite=True,
        progress=progress,
        total=n,
        extra={
            "source": "Drazan, Hullfish, Baxter (2019), PeerJ Preprints 7:e27475v1; "
            "Zenodo 2598553 (CC BY 4.0)",
            "importer": "examples/drazan2019/run.py",
            "participant": import_drazan.PARTICIPANT,
            "participants_are": "push groups (evaluation groups of one participant's clips)",
            "crop_0based_xywh": list(params["crop"]),
        },
    )


# ---- stage 2: ROI ----------------------------------------------------------------------------


def roi_stage(dataset: Path, config: Any, *, progress: Any = None) -> dict[str, Any]:
    """Run the ROI step on every clip; return ``{recording id: fraction of frames found}``."""
    from musclestate.dataset import open_dataset
    from musclestate.roi import apply_roi

    apply_roi(dataset, config, progress=progress)
    ds = open_dataset(dataset)
    group = ds.derived("roi")
    found = {r.id: float(np.mean(group.get(r.id, "found"))) for r in ds.recordings}
    group.close()
    return found


def _stored_geometry(group: Any, rec_id: str, index: int, shape: Any, spacing: Any) -> Any:
    """The :class:`~musclestate.roi.MuscleGeometry` the ROI step stored for one frame."""
    from musclestate.roi import MuscleGeometry

    one = slice(index, index + 1)
    geo = dict(group.attrs.get("geometry") or {})
    return MuscleGeometry(
        shape=tuple(shape),
        pixel_spacing_mm=tuple(spacing),
        superficial_row=np.asarray(group.get(rec_id, "superficial_row", one)[0], np.float64),
        deep_row=np.asarray(group.get(rec_id, "deep_row", one)[0], np.float64),
        superficial_cover=np.asarray(group.get(rec_id, "superficial_cover", one)[0], bool),
        deep_cover=np.asarray(group.get(rec_id, "deep_cover", one)[0], bool),
        sol_depth_mm=float(geo.get("sol_depth_mm", 20.0)),
    )


def roi_overlays(
    dataset: Path, out: Path, trials: Sequence[str], per_clip: int, roi_config: Any
) -> list[Path]:
    """PNG pictures of what the ROI step found on a few frames of some clips.

    Frames are drawn at the clip's most dorsiflexed, most plantarflexed and highest-moment
    frames (the extremes where a wrong ROI shows first), with the segmenter's aponeurosis
    probability in red, the aponeurosis curves and the MG (green) / SOL (magenta) patch areas.
    """
    from musclestate.dataset import open_dataset
    from musclestate.roi import load_segmenter
    from musclestate.roi.pipeline import overlay, write_png

    ds = open_dataset(dataset)
    group = ds.derived("roi")
    seg = load_segmenter(roi_config.model)
    written = []
    by_trial = {r.trial: r for r in ds.recordings}
    for trial in trials:
        info = by_trial.get(trial)
        if info is None:
            log.warning("overlay clip %s is not in the dataset; skipped", trial)
            continue
        tg = ds.targets(info.id)
        picks = [
            int(np.argmin(tg["ankle_angle"])),
            int(np.argmax(tg["ankle_angle"])),
            int(np.argmax(tg["ankle_moment"])),
        ][:per_clip]
        for k in dict.fromkeys(picks):
            frame = np.asarray(ds.frames(info.id, slice(k, k + 1))[0])
            prob = seg.predict(frame)
            found = bool(np.asarray(group.get(info.id, "found", slice(k, k + 1)))[0])
            geom = _stored_geometry(group, info.id, k, frame.shape, info.pixel_spacing_mm)
            rgb = overlay(frame, geom if found else None, prob, roi_config.patches)
            written.append(write_png(out / f"{trial}_frame{k:03d}.png", rgb))
    group.close()
    return written


# ---- stage 3-4: cross-validation, bundle, figures -------------------------------------------


def trace_figures(run: Path, out: Path) -> list[Path]:
    """Held-out estimates against the dynamometer, one PNG per target (panels = push groups)."""
    from musclestate.report import load_run
    from musclestate.report.figures import to_png, trace_figure

    res = load_run(run)
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    written = []
    for name, info in metrics["targets"].items():
        per = metrics["models"]["cnn"]["per_participant"]
        r2 = {g: v[name]["r2"] for g, v in per.items() if v[name]["r2"] is not None}
        preds = [res.predictions[g] for g in sorted(res.predictions)]
        fig = trace_figure(preds, name, info["unit"], r2)
        path = out / f"traces_{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        from musclestate._atomic import atomic_file

        with atomic_file(path, suffix=".png") as tmp:
            Path(tmp).write_bytes(to_png(fig, dpi=90))
        written.append(path)
    return written


def annotate_metrics(run: Path) -> None:
    """Say in ``metrics.json`` what its "participants" are (push groups of one participant)."""
    from musclestate._atomic import write_text_atomic

    path = run / "metrics.json"
    m = json.loads(path.read_text(encoding="utf-8"))
    m["groups"] = {
        "participants_are": "push groups of ONE participant (p6): clips grouped by push number",
        "scheme": "leave-one-push-group-out",
        "groups": {
            "push_01": "first push of every trial (7 clips)",
            "push_02": "second push of every trial (7 clips)",
            "push_03": "third push of every trial (7 clips)",
            "push_04-06": "pushes 4-6 (isometric_max push 4, passive_ROM pushes 4-6; 4 clips)",
        },
        "caution": "one participant: these figures show generalisation across recordings of "
        "the same person, not across people",
        # The fold bundle that never saw a group's clips: use it to predict those clips.
        "model_for_group": {
            g: f"folds/fold_{info['index']:02d}/model"
            for info in m["folds_info"]
            for g in info["test"]
        },
    }
    write_text_atomic(path, json.dumps(m, indent=2, allow_nan=False))


def summary_rows(metrics: dict) -> list[tuple[str, str, float, float, float, float]]:
    """``(model, target, R^2 mean, R^2 SD, r mean, RMSE mean)`` per model and target."""
    rows = []
    for model, info in metrics["models"].items():
        for name, s in info["summary"].items():
            rows.append((model, name, s["r2_mean"], s["r2_sd"], s["r_mean"], s["rmse_mean"]))
    return rows


def has_calibration_trials(dataset: Path, tasks: Sequence[str]) -> bool:
    """Whether every group holds clips of every calibration trial type."""
    from musclestate.dataset import open_dataset

    ds = open_dataset(dataset)
    have: dict[str, set[str]] = {}
    for r in ds.recordings:
        have.setdefault(r.participant, set()).add(str(r.meta.get("task", "")))
    return all(set(tasks) <= kinds for kinds in have.values())


def calibration_rows(metrics: dict) -> list[dict[str, Any]]:
    """Per isokinetic trial type and target: zero-shot and calibrated R^2 and RMSE (mean over
    held-out groups), from metrics.json's ``by_trial_type``; empty without calibration."""
    rows = []
    for task, block in sorted(metrics.get("by_trial_type", {}).items()):
        models = block["models"]
        if "cnn_calibrated" not in models:
            continue
        for target in metrics["targets"]:
            row: dict[str, Any] = {"trials": task, "target": target, "frames": block["n_frames"]}
            for model in ("cnn", "cnn_calibrated", "feature_baseline",
                          "feature_baseline_calibrated"):  # fmt: skip
                if model in models:
                    s = models[model]["summary"][target]
                    row[model] = {"r2_mean": s["r2_mean"], "rmse_mean": s["rmse_mean"]}
            rows.append(row)
    return rows


def calibration_table(rows: list[dict[str, Any]]) -> Any:
    """The rows of :func:`calibration_rows` as a rich table."""
    from rich.table import Table

    def fmt(v: dict | None) -> str:
        if not v or v["r2_mean"] is None:
            return "-"
        return f"{v['r2_mean']:.2f} / {v['rmse_mean']:.1f}"

    t = Table(title="held-out groups, R^2 / RMSE: zero-shot and calibrated on the group's "
              "passive and isometric clips", title_justify="left")  # fmt: skip
    for col in ("trials", "target", "CNN", "CNN calibrated", "ridge", "ridge calibrated"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["trials"],
            r["target"],
            fmt(r.get("cnn")),
            fmt(r.get("cnn_calibrated")),
            fmt(r.get("feature_baseline")),
            fmt(r.get("feature_baseline_calibrated")),
        )
    return t


# ---- command line ----------------------------------------------------------------------------


STAGES = ("import", "roi", "cv", "bundle", "figures")


def run_workflow(
    data_dir: Path,
    out: Path,
    config: WorkflowConfig,
    *,
    stages: Sequence[str] = STAGES,
    clips: Sequence[str] | None = None,
    console: Any = None,
) -> dict[str, Any]:
    """Run the chosen stages into ``out``; return the timings and results summary."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    con = console or Console(stderr=True)
    bad = sorted(set(stages) - set(STAGES))
    if bad:
        raise ConfigError(f"unknown stage(s) {bad}; stages are {', '.join(STAGES)}")
    out.mkdir(parents=True, exist_ok=True)
    roi_cfg = config.roi_config()
    train_cfg = config.train_config()
    dataset = out / "dataset"
    summary: dict[str, Any] = {"config": config.to_dict(), "seconds": {}}
    from musclestate._atomic import write_text_atomic

    previous = out / "workflow.json"
    if previous.exists() and set(stages) != set(STAGES):
        # A partial rerun keeps the earlier stages' timings and ROI summary.
        old = json.loads(previous.read_text(encoding="utf-8"))
        summary["seconds"] = {k: v for k, v in old.get("seconds", {}).items() if k not in stages}
        if "roi" not in stages and "roi_found_fraction" in old:
            summary["roi_found_fraction"] = old["roi_found_fraction"]

    write_text_atomic(out / "workflow.json", json.dumps(summary, indent=2))

    def bar(unit: str) -> Progress:
        return Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(f"{{task.fields[rate]}} {unit}"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=con,
        )

    def feeder(b: Progress, label: str) -> Callable[[int, int | None, str], None]:
        task = b.add_task(label, total=None, rate="")

        def step(done: int, total: int | None, detail: str) -> None:
            b.update(task, completed=done, total=total, description=f"{label} {detail}"[:28])
            speed = b.tasks[task].speed
            b.update(task, rate=f"{speed:.1f}/s" if speed else "")

        return step

    def timed(stage: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        result = fn()
        summary["seconds"][stage] = round(time.perf_counter() - t0, 1)
        con.print(f"[bold]{stage}[/]: {summary['seconds'][stage]:.0f} s")
        write_text_atomic(out / "workflow.json", json.dumps(summary, indent=2))
        return result

    if "import" in stages:
        with bar("clips") as b:
            step = feeder(b, "import")
            timed("import", lambda: import_stage(data_dir, dataset, clips=clips, progress=step))
    if "roi" in stages:
        with bar("frames") as b:
            step = feeder(b, "roi")
            found = timed("roi", lambda: roi_stage(dataset, roi_cfg, progress=step))
        summary["roi_found_fraction"] = found
        low = {k: v for k, v in found.items() if v < 0.9}
        if low:
            con.print(f"[yellow]muscle found in < 90 % of frames of: {low}")
        pngs = roi_overlays(
            dataset, out / "roi_overlays", config.overlay_clips, config.overlay_frames, roi_cfg
        )
        con.print(f"ROI overlays: {len(pngs)} PNGs in {out / 'roi_overlays'} (look at them)")
    if "cv" in stages:
        from musclestate.training.cv import run_cv

        with bar("epochs") as b:
            tasks: dict[str, int] = {}

            def epoch(description: str, done: int, total: int) -> None:
                if description not in tasks:
                    tasks[description] = b.add_task(description, total=total, rate="")
                b.update(tasks[description], completed=done, total=total)

            calibrate = has_calibration_trials(dataset, config.calibration_tasks)
            if not calibrate:
                con.print(
                    f"[yellow]no group has all of {list(config.calibration_tasks)}: "
                    "calibrated figures skipped"
                )
            timed(
                "cv",
                lambda: run_cv(
                    dataset,
                    out / "cv",
                    train_cfg,
                    folds=config.folds,
                    calibrate=calibrate,
                    calibration_tasks=config.calibration_tasks,
                    progress=epoch,
                ),
            )
        annotate_metrics(out / "cv")
    if "bundle" in stages:
        import shutil

        from musclestate.training.cv import train_bundle

        with bar("epochs") as b:
            tasks2: dict[str, int] = {}

            def epoch2(description: str, done: int, total: int) -> None:
                if description not in tasks2:
                    tasks2[description] = b.add_task(description, total=total, rate="")
                b.update(tasks2[description], completed=done, total=total)

            run = out / "cv" if (out / "cv" / "metrics.json").exists() else None
            if (out / "bundle").exists():
                shutil.rmtree(out / "bundle")
            timed(
                "bundle",
                lambda: train_bundle(dataset, out / "bundle", train_cfg, run=run, progress=epoch2),
            )
    if "figures" in stages:
        from musclestate.report import write_report

        figs = timed("figures", lambda: trace_figures(out / "cv", out / "figures"))
        report = write_report(out / "cv")
        con.print(f"figures: {', '.join(str(f) for f in figs)}; report: {report}")
    if (out / "cv" / "metrics.json").exists():
        m = json.loads((out / "cv" / "metrics.json").read_text(encoding="utf-8"))
        summary["cv"] = [
            dict(
                zip(("model", "target", "r2_mean", "r2_sd", "r_mean", "rmse_mean"), r, strict=True)
            )
            for r in summary_rows(m)
        ]
        summary["calibration"] = calibration_rows(m)
        if summary["calibration"]:
            con.print(calibration_table(summary["calibration"]))
    write_text_atomic(out / "workflow.json", json.dumps(summary, indent=2))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=Path, help="a folder laid out like drazan2019-mg")
    ap.add_argument("out", type=Path, help="output folder")
    ap.add_argument(
        "--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}"
    )
    ap.add_argument("--roi-model", help="segmenter .safetensors (default: the shipped one)")
    ap.add_argument("--config", type=Path, help="JSON WorkflowConfig (e.g. a workflow.json)")
    ap.add_argument("--clips", nargs="*", help="only these clip stems (default: all)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import lightning  # noqa: F401  (it sets its loggers to INFO on import: quiet them after)

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from rich.console import Console
    from rich.table import Table

    try:
        cfg = WorkflowConfig()
        if a.config is not None:
            d = json.loads(a.config.read_text(encoding="utf-8"))
            d = d.get("config", d)
            d["overlay_clips"] = tuple(d.get("overlay_clips", cfg.overlay_clips))
            cfg = WorkflowConfig(**d)
        if a.roi_model:
            cfg = dataclasses.replace(
                cfg, roi={**cfg.roi, "model": str(Path(a.roi_model).resolve())}
            )
        summary = run_workflow(
            a.data_dir, a.out, cfg, stages=[s for s in a.stages.split(",") if s], clips=a.clips
        )
    except (MusclestateError, TypeError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "cv" in summary:
        t = Table(title="held-out push groups of one participant (mean +- SD over groups)")
        for c in ("model", "target", "R^2", "r", "RMSE"):
            t.add_column(c)
        for row in summary["cv"]:
            t.add_row(
                row["model"],
                row["target"],
                f"{row['r2_mean']:.2f} +- {row['r2_sd']:.2f}",
                f"{row['r_mean']:.2f}" if row["r_mean"] is not None else "-",
                f"{row['rmse_mean']:.2f}",
            )
        Console().print(t)
    print(f"done: {a.out} (configuration and timings in {a.out / 'workflow.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
