"""Participant-wise cross-validation, collection of fold results, and deployable training.

Layout of a run folder ``RUN`` (every file written atomically)::

    RUN/config.json                 dataset, folds, seed, resolved TrainConfig, package version
    RUN/splits.json                 folds keyed by participant (musclestate.dataset.splits format)
    RUN/folds/fold_XX/fold.json     written last: the fold is complete (participants, epochs, ...)
    RUN/folds/fold_XX/model/        the fold's estimator bundle (card.json + model.safetensors)
    RUN/folds/fold_XX/predictions/<PID>.csv
    RUN/folds/fold_XX/work/         Lightning checkpoints (every epoch) and logs/metrics.csv
    RUN/predictions/<PID>.csv       (collect) per held-out frame: recording, frame, t_s, and per
                                    target NAME, NAME_sd, NAME_true, then NAME_mean_predictor and
                                    NAME_feature_baseline
    RUN/metrics.json                (collect) see :func:`collect`

In every fold the test participants take no part in training, normalisation, early stopping,
choice of checkpoint, ridge penalty or SD calibration: those use the training side only, split
into inner-training and validation participants (nested).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musclestate._atomic import atomic_file, write_text_atomic
from musclestate.errors import ConfigError, DatasetError
from musclestate.progress import ProgressFn
from musclestate.training.config import TrainConfig
from musclestate.training.data import Cohort, ExampleSet, load_cohort
from musclestate.training.metrics import calibration, participant_metrics, summarise

log = logging.getLogger(__name__)

MODELS = ("cnn", "mean_predictor", "feature_baseline")


def _fold_dir(run: Path, index: int) -> Path:
    return run / "folds" / f"fold_{index:02d}"


def _write_json(path: Path, obj: Any) -> Path:
    from musclestate.models.bundle import jsonable

    return write_text_atomic(path, json.dumps(jsonable(obj), indent=2, allow_nan=False))


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{what} not found", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {what}: {exc}", path) from None


def write_predictions_csv(
    path: Path,
    examples: ExampleSet,
    rows: np.ndarray,
    cnn: tuple[np.ndarray, np.ndarray],
    baselines: Mapping[str, np.ndarray],
) -> Path:
    """Write one participant's per-frame predictions (columns as in the module docstring).

    Args:
        examples: the test examples; ``rows`` selects this participant's.
        cnn: ``(mean, sd)`` each ``(M, n_targets)`` over all test examples.
        baselines: model name -> ``(M, n_targets)`` predictions.
    """
    names = examples.target_names
    header = ["recording", "frame", "t_s"]
    for n in names:
        header += [n, f"{n}_sd", f"{n}_true"]
    for model in baselines:
        header += [f"{n}_{model}" for n in names]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    mean, sd = cnn
    for i in rows:
        row: list[Any] = [examples.recording[i], int(examples.frame[i]), f"{examples.t_s[i]:.6f}"]
        for j in range(len(names)):
            row += [f"{mean[i, j]:.6g}", f"{sd[i, j]:.6g}", f"{examples.targets[i, j]:.6g}"]
        for pred in baselines.values():
            row += [f"{pred[i, j]:.6g}" for j in range(len(names))]
        w.writerow(row)
    return write_text_atomic(path, buf.getvalue())


def _read_predictions(path: Path, names: Sequence[str]) -> dict[str, np.ndarray] | None:
    """Columns of a predictions CSV as float arrays; ``None`` for a file without rows."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    cols = rows[0].keys()
    out = {}
    for c in cols:
        if c == "recording":
            continue
        out[c] = np.array([float(r[c]) for r in rows])
    missing = [n for n in names if n not in out or f"{n}_true" not in out]
    if missing:
        raise DatasetError(f"predictions lack target(s) {missing}", path)
    return out


def _split(
    cohort: Cohort, train: Sequence[str], config: TrainConfig, seed: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from musclestate.dataset.splits import inner_validation

    if len(train) < config.val_participants + 1:
        raise ConfigError(
            f"{len(train)} training participant(s) cannot spare {config.val_participants} for "
            "validation; use fewer folds or a larger cohort"
        )
    return inner_validation(train, n=config.val_participants, seed=seed)


def _fold_card_training(
    cohort: Cohort, inner: Sequence[str], val: Sequence[str], train_ex: ExampleSet, fit: Any
) -> dict[str, Any]:
    recs = [r for r in cohort.recordings if r.participant in set(inner)]
    spacings = [r.pixel_spacing_mm for r in recs if r.pixel_spacing_mm is not None]
    ranges = {
        n: [float(np.nanmin(train_ex.targets[:, j])), float(np.nanmax(train_ex.targets[:, j]))]
        for j, n in enumerate(train_ex.target_names)
    }
    f_ranges, novelty = {}, None
    if train_ex.features is not None:
        with warnings.catch_warnings():  # an all-NaN feature column gives NaN, said as null
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanmin(train_ex.features, axis=0), np.nanmax(train_ex.features, axis=0)
        f_ranges = {n: [lo[j], hi[j]] for j, n in enumerate(cohort.feature_names)}
        from musclestate.inference.novelty import FeatureNovelty

        novelty = FeatureNovelty.fit(
            train_ex.features, cohort.feature_names, groups=train_ex.participant
        )
    return {
        "dataset": cohort.source,
        "pixel_spacing_mm": np.median(spacings, axis=0).tolist() if spacings else None,
        "target_range": ranges,
        "feature_range": f_ranges,
        "feature_novelty": None if novelty is None else novelty.to_dict(),
        "participants": list(inner),
        "validation_participants": list(val),
        "n_recordings": len(recs),
        "n_frames": len(train_ex),
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "val_mse_normalised": fit.val_mse,
    }


def _bundle_card(
    cohort: Cohort, config: TrainConfig, fit: Any, training: dict, cv_metrics: dict | None = None
) -> dict[str, Any]:
    from musclestate.models.bundle import make_card

    return make_card(
        network=config.network,
        network_params=config.network_params,
        in_channels=config.in_channels,
        input_kind=config.input,
        context=config.context,
        image_size=config.image_size,
        targets=dict(cohort.target_units),
        mean=fit.norm.mean,
        sd=fit.norm.sd,
        sd_scale=fit.sd_scale,
        roi=cohort.roi_attrs,
        training=training | {"config": config.to_dict()},
        cv_metrics=cv_metrics,
        members=config.ensemble,
    )


def run_fold(
    cohort: Cohort,
    index: int,
    train: Sequence[str],
    test: Sequence[str],
    config: TrainConfig,
    run: str | Path,
    *,
    resume: bool = False,
    progress: ProgressFn | None = None,
    folds: int = 1,
) -> Path | None:
    """Train and evaluate one fold; write ``RUN/folds/fold_XX`` and return it.

    ``progress`` events of its training are part ``index`` of ``folds``.

    Returns ``None`` in the non-zero processes of a DDP run (only rank 0 writes results).
    """
    from musclestate.models.bundle import save_bundle
    from musclestate.training.baselines import MeanPredictor, RidgeBaseline
    from musclestate.training.module import fit_estimator, predict_examples

    t0 = time.perf_counter()
    fdir = _fold_dir(Path(run), index)
    if set(train) & set(test):
        raise ConfigError(f"fold {index}: {sorted(set(train) & set(test))} on both sides")
    inner, val = _split(cohort, train, config, seed=config.seed + index)
    # every training frame (fit_estimator strides them per ensemble member)
    tr = ExampleSet.from_cohort(cohort.subset(inner), config.context)
    va = ExampleSet.from_cohort(cohort.subset(val), config.context, config.frame_stride)
    te = ExampleSet.from_cohort(cohort.subset(test), config.context)  # every frame
    log.info(
        "fold %d: %d train / %d validation / %d test frames (%s | %s | %s)",
        index, len(tr), len(va), len(te), ",".join(inner), ",".join(val), ",".join(test),
    )  # fmt: skip
    fit = fit_estimator(
        tr,
        va,
        config,
        fdir / "work",
        resume=resume,
        progress=progress,
        part=index,
        parts=max(folds, index + 1),
    )
    if not fit.is_global_zero:
        return None
    from musclestate.models.networks import build_network

    net = build_network(config.network, config.in_channels, len(cohort.target_units),
                        config.network_params, members=config.ensemble)  # fmt: skip
    net.load_state_dict(fit.state_dict)
    cnn = predict_examples(net, te, fit.norm, fit.sd_scale, config)
    mean_model = MeanPredictor.fit(np.concatenate([tr.targets, va.targets]))
    baselines = {"mean_predictor": mean_model.predict(len(te))}
    ridge_alphas = None
    if tr.features is not None and va.features is not None and te.features is not None:
        ridge = RidgeBaseline.fit(tr.features, tr.targets, va.features, va.targets,
                                  config.ridge_alphas)  # fmt: skip
        baselines["feature_baseline"] = ridge.predict(te.features)
        ridge_alphas = dict(zip(cohort.target_units, ridge.alphas.tolist(), strict=True))
    else:
        log.warning("fold %d: the dataset has no ROI features; no feature baseline", index)
    for pid in test:
        rows = np.flatnonzero(te.participant == pid)
        write_predictions_csv(fdir / "predictions" / f"{pid}.csv", te, rows, cnn, baselines)
    training = _fold_card_training(cohort, inner, val, tr, fit)
    save_bundle(fdir / "model", fit.state_dict, _bundle_card(cohort, config, fit, training),
                overwrite=True)  # fmt: skip
    _write_json(
        fdir / "fold.json",
        {
            "index": index,
            "train": list(inner),
            "validation": list(val),
            "test": list(test),
            "n_frames": {
                "train": fit.members[0][3],  # seen by each network (member 0)
                "train_available": len(tr),
                "validation": len(va),
                "test": len(te),
            },
            "best_epoch": fit.best_epoch,
            "epochs_run": fit.epochs_run,
            "members": [
                {"best_epoch": b, "epochs_run": e, "val_mse_normalised": v, "n_frames": n}
                for b, e, v, n in fit.members
            ],
            "val_mse_normalised": fit.val_mse,
            "sd_scale": dict(zip(cohort.target_units, fit.sd_scale.tolist(), strict=True)),
            "ridge_alphas": ridge_alphas,
            "seconds": time.perf_counter() - t0,
        },
    )
    return fdir


def _run_config(dataset_path: Path, config: TrainConfig, k: int, cohort: Cohort) -> dict:
    from musclestate import __version__

    return {
        "dataset": str(dataset_path.resolve()),
        "folds": k,
        "seed": config.seed,
        "targets": dict(cohort.target_units),
        "train": config.to_dict(),
        "package_version": __version__,
    }


def run_cv(
    dataset_path: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    folds: int = 5,
    fold: int | None = None,
    resume: bool = False,
    progress: ProgressFn | None = None,
) -> Path:
    """Participant-wise K-fold cross-validation of the CNN and both baselines.

    Args:
        dataset_path: dataset folder (with the ``roi`` group for patch input).
        out: run folder (created; several ``fold`` jobs may share it).
        config: training configuration (default :class:`TrainConfig`).
        folds: K; each participant is tested in exactly one fold (K=16 over 32 participants is
            the protocol of Cunningham & Loram 2019).
        fold: run only this fold (0-based), e.g. one SLURM array task; merge with
            :func:`collect`. ``None`` runs every fold and then collects.
        resume: keep finished folds and continue an interrupted fold from its last checkpoint.
        progress: receives :class:`~musclestate.progress.ProgressEvent`: stage ``"load"``
            per recording read, then ``"train"`` per epoch with ``part`` = the fold.

    Returns:
        ``RUN/metrics.json`` when all folds ran, else the fold's folder.

    Raises:
        ConfigError: bad K or fold index, or ``out`` made with other settings.
    """
    from musclestate.dataset.splits import participant_folds, save_folds

    config = config or TrainConfig()
    dataset_path, run = Path(dataset_path), Path(out)
    cohort = load_cohort(dataset_path, config, progress=progress)
    splits = participant_folds(cohort.participants, folds, seed=config.seed)
    if fold is not None and not 0 <= fold < folds:
        raise ConfigError(f"--fold {fold} is out of range for {folds} folds (0..{folds - 1})")
    run_cfg = _run_config(dataset_path, config, folds, cohort)
    cfg_path = run / "config.json"
    if cfg_path.exists():
        old = _read_json(cfg_path, "run configuration")
        keep = ("dataset", "folds", "seed", "targets", "train")
        if {k: old.get(k) for k in keep} != json.loads(json.dumps({k: run_cfg[k] for k in keep})):
            raise ConfigError(
                f"{run} holds a run with other settings (see its config.json); choose another "
                "--out, or repeat the same settings to add folds or resume"
            )
    else:
        _write_json(cfg_path, run_cfg)
    save_folds(run / "splits.json", splits, seed=config.seed)
    todo = splits if fold is None else [splits[fold]]
    for f in todo:
        fdir = _fold_dir(run, f.index)
        if resume and (fdir / "fold.json").exists():
            log.info("fold %d already complete: kept", f.index)
            continue
        if not resume and (fdir / "fold.json").exists():
            (fdir / "fold.json").unlink()
        run_fold(cohort, f.index, f.train, f.test, config, run, resume=resume, progress=progress,
                 folds=folds)  # fmt: skip
    if fold is not None:
        return _fold_dir(run, fold)
    if not _is_global_zero():
        return run / "metrics.json"
    return collect(run)


def _is_global_zero() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def collect(run: str | Path) -> Path:
    """Merge the folds of ``run`` into ``RUN/metrics.json`` and ``RUN/predictions/<PID>.csv``.

    metrics.json::

        {"targets": {NAME: {"unit": U}}, "folds": K,
         "models": {"cnn" | "mean_predictor" | "feature_baseline":
                    {"per_participant": {PID: {NAME: {"r2", "r", "rmse", "nrmse"}}},
                     "summary": {NAME: {"r2_mean", "r2_sd", "r_mean", "rmse_mean",
                                        "nrmse_mean", "r2_median", "n_participants"}}}},
         "calibration": {NAME: {"within_1sd", "within_2sd", "expected_within_1sd",
                                "expected_within_2sd", "abs_error_sd_r", "mean_sd", "rmse",
                                "n_frames"}},
         "folds_info": [...fold.json...], "config": {...}, "splits": {...}}

    Undefined values (e.g. Pearson r of the constant mean predictor) are ``null``.

    Raises:
        DatasetError: a fold is missing or incomplete (the message names the ``--fold`` jobs
            still to run).
    """
    run = Path(run)
    cfg = _read_json(run / "config.json", "run configuration (is this a `musclestate cv` run?)")
    splits = _read_json(run / "splits.json", "splits")
    k = int(cfg["folds"])
    units: dict[str, str] = dict(cfg["targets"])
    names = list(units)
    missing = [i for i in range(k) if not (_fold_dir(run, i) / "fold.json").exists()]
    if missing:
        raise DatasetError(
            f"fold(s) {missing} of {k} are not finished; run `musclestate cv DATASET --folds {k} "
            f"--out {run} --fold I` for each (add --resume to continue one), then collect again",
            run,
        )
    infos = [_read_json(_fold_dir(run, i) / "fold.json", "fold result") for i in range(k)]
    per: dict[str, dict[str, dict]] = {m: {} for m in MODELS}
    pooled: dict[str, list[np.ndarray]] = {n: [] for n in names}
    pooled_sd: dict[str, list[np.ndarray]] = {n: [] for n in names}
    pooled_true: dict[str, list[np.ndarray]] = {n: [] for n in names}
    has_baseline = True
    notes: list[str] = []
    for info in infos:
        fdir = _fold_dir(run, int(info["index"]))
        for pid in info["test"]:
            src = fdir / "predictions" / f"{pid}.csv"
            cols = _read_predictions(src, names)
            if cols is None:
                notes.append(f"{pid}: no frame with a muscle found; left out of the metrics")
                log.warning(notes[-1])
                continue
            with atomic_file(run / "predictions" / f"{pid}.csv") as tmp:
                shutil.copyfile(src, tmp)
            for model in MODELS:
                suffix = "" if model == "cnn" else f"_{model}"
                if model == "feature_baseline" and f"{names[0]}{suffix}" not in cols:
                    has_baseline = False
                    continue
                per[model][pid] = {
                    n: participant_metrics(cols[f"{n}_true"], cols[f"{n}{suffix}"]) for n in names
                }
            for n in names:
                pooled[n].append(cols[n])
                pooled_sd[n].append(cols[f"{n}_sd"])
                pooled_true[n].append(cols[f"{n}_true"])
    models: dict[str, Any] = {}
    for model in MODELS:
        if model == "feature_baseline" and not has_baseline:
            continue
        pp = dict(sorted(per[model].items()))
        models[model] = {"per_participant": pp, "summary": summarise(pp, names)}
    calib = {
        n: calibration(
            np.concatenate(pooled_true[n]), np.concatenate(pooled[n]), np.concatenate(pooled_sd[n])
        )
        for n in names
    }
    metrics = {
        "targets": {n: {"unit": u} for n, u in units.items()},
        "folds": k,
        "models": models,
        "calibration": calib,
        "notes": notes
        + ([] if has_baseline else ["no ROI features in the dataset: no feature baseline"]),
        "folds_info": infos,
        "config": cfg,
        "splits": splits,
    }
    path = _write_json(run / "metrics.json", metrics)
    log.info("collected %d folds of %s", k, run)
    return path


def train_bundle(
    dataset_path: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    run: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> Path:
    """Train a deployable estimator on every participant of a dataset and save it as a bundle.

    ``config.val_participants`` participants are still held out of the weights, for early
    stopping and SD calibration. With ``run`` (a collected ``musclestate cv`` run folder) the
    card carries its metrics. Checkpoints live in a hidden ``.OUT.work`` folder beside ``out``
    until the bundle is written; ``resume`` continues from there.

    Returns:
        ``out``, a folder with ``card.json`` and ``model.safetensors``.
    """
    from musclestate.models.bundle import save_bundle
    from musclestate.training.module import fit_estimator

    config = config or TrainConfig()
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; choose another --out or pass --overwrite")
    cv_metrics = None
    if run is not None:
        m = _read_json(Path(run) / "metrics.json", "cv metrics (run `musclestate cv` first)")
        cv_metrics = {
            "run": str(Path(run).resolve()),
            "folds": m.get("folds"),
            "summary": {k: v["summary"] for k, v in m.get("models", {}).items()},
            "calibration": m.get("calibration"),
        }
    cohort = load_cohort(dataset_path, config, progress=progress)
    inner, val = _split(cohort, cohort.participants, config, seed=config.seed)
    tr = ExampleSet.from_cohort(cohort.subset(inner), config.context)  # strided per member
    va = ExampleSet.from_cohort(cohort.subset(val), config.context, config.frame_stride)
    work = out.parent / f".{out.name}.work"
    fit = fit_estimator(tr, va, config, work, resume=resume, progress=progress)
    if not fit.is_global_zero:
        return out
    training = _fold_card_training(cohort, inner, val, tr, fit)
    training["frames_per_participant"] = {p: int(np.sum(tr.participant == p)) for p in inner}
    save_bundle(out, fit.state_dict, _bundle_card(cohort, config, fit, training, cv_metrics),
                overwrite=overwrite)  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    log.info("estimator bundle written to %s", out)
    return out
