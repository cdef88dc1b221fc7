"""Participant-wise cross-validation, collection of fold results, and deployable training.

Layout of a run folder ``RUN`` (every file written atomically)::

    RUN/config.json                 dataset, folds, seed, resolved TrainConfig, package version
    RUN/splits.json                 folds keyed by participant (musclestate.dataset.splits format)
    RUN/folds/fold_XX/fold.json     written last: the fold is complete (participants, epochs, ...)
    RUN/folds/fold_XX/model/        the fold's estimator bundle (card.json + model.safetensors)
    RUN/folds/fold_XX/predictions/<PID>.csv
    RUN/folds/fold_XX/work/         Lightning checkpoints (every epoch) and logs/metrics.csv
    RUN/predictions/<PID>.csv       (collect) per held-out frame: recording, task, frame, t_s,
                                    and per target NAME, NAME_sd, NAME_true, then
                                    NAME_mean_predictor and NAME_feature_baseline
                                    (musclestate.training.predictions)
    RUN/metrics.json                (collect) see :func:`collect`

In every fold the test participants take no part in training, normalisation, early stopping,
choice of checkpoint, ridge penalty or SD calibration: those use the training side only, split
into inner-training and validation participants (nested).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musclestate._atomic import atomic_file, read_json, write_text_atomic
from musclestate.calibration import CALIBRATION_TASKS
from musclestate.errors import ConfigError, DatasetError
from musclestate.models.card import jsonable, read_card
from musclestate.progress import ProgressFn
from musclestate.training.config import TrainConfig
from musclestate.training.data import Cohort, ExampleSet, load_cohort
from musclestate.training.metrics import calibration, participant_metrics, summarise
from musclestate.training.predictions import (
    OTHER_MODELS,
    ParticipantPredictions,
    read_predictions,
    write_predictions_csv,
)

log = logging.getLogger(__name__)

MODELS = ("cnn", *OTHER_MODELS)

#: The trial type of the headline metrics: the paper's protocol of independent angle and
#: activation variation (DESIGN.md section 5). Other trial types are reported beside it.
HEADLINE_TASK = "tracking"


def _fold_dir(run: Path, index: int) -> Path:
    return run / "folds" / f"fold_{index:02d}"


def _write_json(path: Path, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(jsonable(obj), indent=2, allow_nan=False))


def _read_json(path: Path, what: str) -> Any:
    return read_json(path, what, error=DatasetError, need_object=False)


def _split(
    cohort: Cohort, train: Sequence[str], config: TrainConfig, seed: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from musclestate.dataset.splits import inner_validation

    if len(train) < config.data.val_participants + 1:
        raise ConfigError(
            f"{len(train)} training participant(s) cannot spare {config.data.val_participants} for "
            "validation; use fewer folds or a larger cohort"
        )
    return inner_validation(train, n=config.data.val_participants, seed=seed)


def _fold_card_training(
    cohort: Cohort,
    inner: Sequence[str],
    val: Sequence[str],
    train_ex: ExampleSet,
    fit: Any,
    config: TrainConfig,
) -> Any:
    """The card's :class:`~musclestate.models.card.TrainingRecord` of a trained estimator."""
    from musclestate.models.card import TrainingRecord

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
    return TrainingRecord.from_dict(
        jsonable(
            {
                "dataset": cohort.source,
                "dataset_sha256": cohort.dataset_sha256 or None,
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
        )
        | {"config": config.to_dict()}
    )


def _bundle_card(
    cohort: Cohort, config: TrainConfig, fit: Any, training: Any, cv_metrics: dict | None = None
) -> Any:
    from musclestate.models.bundle import make_card

    return make_card(
        network=config.model.network,
        network_params=config.model.network_params,
        in_channels=config.in_channels,
        input_kind=config.data.input,
        context=config.data.context,
        image_size=config.data.image_size,
        targets=dict(cohort.target_units),
        mean=fit.norm.mean,
        sd=fit.norm.sd,
        sd_scale=fit.sd_scale,
        roi=cohort.roi_attrs,
        training=training,
        cv_metrics=cv_metrics,
        members=config.model.ensemble,
        feature_inputs=cohort.feature_names if config.model.fuse_features else (),
    )


def _predict_fold(
    fit: Any, examples: ExampleSet, cohort: Cohort, config: TrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD ``(M, n_targets)`` of a fold's trained network on ``examples``."""
    from musclestate.models.networks import build_network
    from musclestate.training.module import predict_examples

    net = build_network(config.model.network, config.in_channels, len(cohort.target_units),
                        config.model.network_params, members=config.model.ensemble,
                        n_features=len(cohort.feature_names) if config.model.fuse_features else 0,
                        )  # fmt: skip
    net.load_state_dict(fit.state_dict)
    return predict_examples(net, examples, fit.norm, fit.sd_scale, config)


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
    part: int | None = None,
    parts: int | None = None,
    message: str = "",
    split_seed: int | None = None,
    image_only: bool = True,
) -> Path | None:
    """Train and evaluate one fold; write ``RUN/folds/fold_XX`` and return it.

    ``progress`` events of its training are part ``part`` (default: the fold's index) of
    ``parts``, with ``message``. ``split_seed`` (default ``config.seed``) draws the fold's
    validation participants, so that runs with other training seeds keep the same people on
    each side. ``image_only`` trains, beside a fused network, the patches-only network of the
    same fold (``cnn_image_only``).
    Returns ``None`` in the non-zero processes of a DDP run (only rank 0 writes results).
    """
    from musclestate.models.bundle import save_bundle
    from musclestate.training.baselines import MeanPredictor, RidgeBaseline
    from musclestate.training.module import fit_estimator

    t0 = time.perf_counter()
    fdir = _fold_dir(Path(run), index)
    if set(train) & set(test):
        raise ConfigError(f"fold {index}: {sorted(set(train) & set(test))} on both sides")
    split_seed = config.seed if split_seed is None else split_seed
    inner, val = _split(cohort, train, config, seed=split_seed + index)
    # every training frame (fit_estimator strides them per ensemble member)
    tr = ExampleSet.from_cohort(cohort.subset(inner), config.data.context)
    va = ExampleSet.from_cohort(cohort.subset(val), config.data.context, config.data.frame_stride)
    te = ExampleSet.from_cohort(cohort.subset(test), config.data.context)  # every frame
    log.info(
        "fold %d: %d train / %d validation / %d test frames (%s | %s | %s)",
        index, len(tr), len(va), len(te), ",".join(inner), ",".join(val), ",".join(test),
    )  # fmt: skip
    part = index if part is None else part
    progress_part = {"part": part, "parts": max(parts or 1, part + 1), "message": message}
    fit = fit_estimator(
        tr, va, config, fdir / "work", resume=resume, progress=progress, **progress_part
    )
    if not fit.is_global_zero:
        return None
    cnn = _predict_fold(fit, te, cohort, config)
    # like for like: every model is fitted on the inner-training people that the CNN trains on
    mean_model = MeanPredictor.fit(tr.targets)
    baselines = {"mean_predictor": mean_model.predict(len(te))}
    ridge_alphas = None
    if tr.features is not None and va.features is not None and te.features is not None:
        # penalty by leave-one-participant-out over the training side (inner + validation)
        ridge = RidgeBaseline.fit_nested(
            np.concatenate([tr.features, va.features]),
            np.concatenate([tr.targets, va.targets]),
            np.concatenate([tr.participant, va.participant]),
            config.optimisation.ridge_alphas,
            fit_rows=np.arange(len(tr) + len(va)) < len(tr),
        )
        baselines["feature_baseline"] = ridge.predict(te.features)
        ridge_alphas = dict(zip(cohort.target_units, ridge.alphas.tolist(), strict=True))
    else:
        log.warning("fold %d: the dataset has no ROI features; no feature baseline", index)
    if config.model.fuse_features and image_only:
        # the patches-only network of the same fold: same people, seed and selection
        plain = config.replace(fuse_features=False)
        fit_plain = fit_estimator(
            tr, va, plain, fdir / "work_image_only", resume=resume, progress=progress,
            stage="train (image only)", **progress_part,
        )  # fmt: skip
        baselines["cnn_image_only"] = _predict_fold(fit_plain, te, cohort, plain)[0]
    for pid in test:
        rows = np.flatnonzero(te.participant == pid)
        write_predictions_csv(fdir / "predictions" / f"{pid}.csv", te, rows, cnn, baselines)
    training = _fold_card_training(cohort, inner, val, tr, fit, config)
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


def _run_config(
    dataset_path: Path, config: TrainConfig, k: int, cohort: Cohort, split_seed: int
) -> dict:
    from musclestate import __version__
    from musclestate.dataset import open_dataset

    return {
        "dataset": {
            "name": dataset_path.resolve().name,
            "sha256": open_dataset(dataset_path).content_sha256,
            "location": str(dataset_path.resolve()),
        },
        "folds": k,
        "seed": split_seed,
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
    seeds: int = 1,
    calibrate: bool = False,
    calibration_tasks: Sequence[str] = CALIBRATION_TASKS,
    image_only: bool = True,
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
        seeds: repeat the whole cross-validation with training seeds ``config.seed``,
            ``config.seed + 1``, ... (the folds and validation people stay those of
            ``config.seed``), each in ``RUN/seed_SS``; :func:`collect` then also writes
            ``RUN/seeds.json`` with the spread over seeds.
        calibrate: also report each held-out person's estimates corrected by a profile fitted
            on that person's own calibration trials (``cnn_calibrated``,
            ``feature_baseline_calibrated``; see :mod:`musclestate.calibration`).
        calibration_tasks: the trial types (recording ``task``) that count as calibration
            trials (default rest, passive range of motion and MVC).
        image_only: with a fused estimator (``fuse_features``), also train the patches-only
            network in every fold (``cnn_image_only``: same people, seed and selection), which
            doubles the training time; ``False`` leaves it out.
        resume: keep finished folds and continue an interrupted fold from its last checkpoint.
        progress: receives :class:`~musclestate.progress.ProgressEvent`: stage ``"load"``
            per recording read, then ``"train"`` per epoch with ``part`` = the fold (seed s,
            fold k of K: part ``s * K + k``).

    Returns:
        ``RUN/metrics.json`` when all folds ran (``RUN/seeds.json`` with ``seeds > 1``), else
        the fold's folder (``RUN`` with ``seeds > 1``).

    Raises:
        ConfigError: bad K, fold index or number of seeds, or ``out`` made with other settings.
    """
    config = config or TrainConfig()
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    dataset_path, run = Path(dataset_path), Path(out)
    cohort = load_cohort(dataset_path, config, progress=progress)
    if seeds == 1:
        return _run_cv_loaded(cohort, dataset_path, run, config, folds, fold, resume, progress,
                              split_seed=config.seed, calibrate=calibrate,
                              calibration_tasks=calibration_tasks,
                              image_only=image_only)  # fmt: skip
    for s in range(seeds):
        _run_cv_loaded(cohort, dataset_path, run / f"seed_{s:02d}",
                       config.replace(seed=config.seed + s), folds, fold, resume, progress,
                       split_seed=config.seed, calibrate=calibrate,
                       calibration_tasks=calibration_tasks, image_only=image_only,
                       seed_index=s, n_seeds=seeds)  # fmt: skip
    if fold is not None or not _is_global_zero():
        return run
    return collect(run, calibrate=calibrate, calibration_tasks=calibration_tasks)


def _run_cv_loaded(
    cohort: Cohort,
    dataset_path: Path,
    run: Path,
    config: TrainConfig,
    folds: int,
    fold: int | None,
    resume: bool,
    progress: ProgressFn | None,
    *,
    split_seed: int,
    calibrate: bool = False,
    calibration_tasks: Sequence[str] = CALIBRATION_TASKS,
    image_only: bool = True,
    seed_index: int = 0,
    n_seeds: int = 1,
) -> Path:
    from musclestate.dataset.splits import participant_folds, save_folds

    splits = participant_folds(cohort.participants, folds, seed=split_seed)
    if fold is not None and not 0 <= fold < folds:
        raise ConfigError(f"--fold {fold} is out of range for {folds} folds (0..{folds - 1})")
    run_cfg = _run_config(dataset_path, config, folds, cohort, split_seed) | {
        "calibrate": calibrate,
        "calibration_tasks": list(calibration_tasks),
        "image_only": bool(image_only and config.model.fuse_features),
    }
    cfg_path = run / "config.json"
    if cfg_path.exists():
        old = _read_json(cfg_path, "run configuration")
        if _run_identity(old, cfg_path) != _run_identity(run_cfg, cfg_path):
            raise ConfigError(
                f"{run} holds a run with other settings (see its config.json); choose another "
                "--out, or repeat the same settings to add folds or resume"
            )
    else:
        _write_json(cfg_path, run_cfg)
    save_folds(run / "splits.json", splits, seed=split_seed)
    todo = splits if fold is None else [splits[fold]]
    for f in todo:
        fdir = _fold_dir(run, f.index)
        if resume and (fdir / "fold.json").exists():
            log.info("fold %d already complete: kept", f.index)
            continue
        if not resume and (fdir / "fold.json").exists():
            (fdir / "fold.json").unlink()
        run_fold(cohort, f.index, f.train, f.test, config, run, resume=resume, progress=progress,
                 part=seed_index * folds + f.index, parts=n_seeds * folds,
                 message=f"seed {seed_index + 1}/{n_seeds}, fold {f.index + 1}/{folds}"
                 if n_seeds > 1 else "",
                 split_seed=split_seed, image_only=image_only)  # fmt: skip
    if fold is not None:
        return _fold_dir(run, fold)
    if not _is_global_zero():
        return run / "metrics.json"
    return collect(run, calibrate=calibrate, calibration_tasks=calibration_tasks)


def _run_identity(cfg: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """What makes two run configurations the same run: the dataset's content (not where it
    lies), folds, split seed, targets and the training settings except the execution part
    (:meth:`TrainConfig.identity`; a fold job may run on other devices or threads)."""
    ds = cfg.get("dataset")
    try:
        train_cfg = TrainConfig.from_dict(cfg.get("train") or {})
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    train = train_cfg.identity()
    return {
        # runs written before the choice existed trained the image-only network with every
        # fused one
        "image_only": cfg.get("image_only", train_cfg.model.fuse_features),
        "dataset": ds.get("sha256") if isinstance(ds, Mapping) else ds,
        "folds": cfg.get("folds"),
        "seed": cfg.get("seed"),
        "targets": cfg.get("targets"),
        "train": train,
    }


def seed_runs(run: str | Path) -> list[Path]:
    """The per-seed run folders ``RUN/seed_SS`` of a ``--seeds`` run, in order (empty if none)."""
    return sorted(p.parent for p in Path(run).glob("seed_*/config.json"))


def collect_seeds(
    run: str | Path,
    *,
    calibrate: bool | None = None,
    calibration_tasks: Sequence[str] | None = None,
) -> Path:
    """Collect every seed of a ``--seeds`` run and write ``RUN/seeds.json``: the spread over seeds.

    seeds.json::

        {"seeds": [S0, S1, ...], "runs": ["seed_00", ...], "frames": "tracking" | "all",
         "models": {MODEL: {NAME: {"r2_mean", "r2_sd", "r2_min", "r2_max", "r2": [...],
                                   "r_mean", "rmse_mean"}}},
         "all_frames": {"models": {...same...}}}

    ``r2`` lists each seed's headline R² (mean over held-out participants); ``r2_mean`` and
    ``r2_sd`` (ddof=1) are over seeds; ``r_mean`` and ``rmse_mean`` average the seeds' means.

    Raises:
        DatasetError: no seed runs in ``run``, or one is incomplete.
    """
    run = Path(run)
    runs = seed_runs(run)
    if not runs:
        raise DatasetError("holds no seed_SS runs (is this a `musclestate cv --seeds N` run?)", run)
    metrics = [
        json.loads(
            collect(r, calibrate=calibrate, calibration_tasks=calibration_tasks).read_text(
                encoding="utf-8"
            )
        )
        for r in runs
    ]

    def spread(blocks: list[Mapping[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for model in blocks[0]:
            if not all(model in b for b in blocks):
                continue
            out[model] = {}
            for name in blocks[0][model]["summary"]:
                summ = [b[model]["summary"][name] for b in blocks]
                r2 = np.array([_num(x.get("r2_mean")) for x in summ])
                out[model][name] = {
                    "r2_mean": float(np.nanmean(r2)),
                    "r2_sd": float(np.nanstd(r2, ddof=1)) if r2.size > 1 else float("nan"),
                    "r2_min": float(np.nanmin(r2)),
                    "r2_max": float(np.nanmax(r2)),
                    "r2": r2.tolist(),
                    "r_mean": float(np.nanmean([_num(x.get("r_mean")) for x in summ])),
                    "rmse_mean": float(np.nanmean([_num(x.get("rmse_mean")) for x in summ])),
                }
        return out

    result = {
        "seeds": [int(m["config"]["train"]["seed"]) for m in metrics],
        "runs": [r.name for r in runs],
        "folds": metrics[0]["folds"],
        "targets": metrics[0]["targets"],
        "frames": metrics[0].get("frames", "all"),
        "models": spread([m["models"] for m in metrics]),
        "all_frames": {"models": spread([m["all_frames"]["models"] for m in metrics])},
    }
    path = _write_json(run / "seeds.json", result)
    log.info("collected %d seeds of %s", len(runs), run)
    return path


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _is_global_zero() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _model_blocks(
    preds: Mapping[str, ParticipantPredictions],
    rows: Mapping[str, np.ndarray],
    names: Sequence[str],
    models: Sequence[str],
) -> dict[str, Any]:
    """``{MODEL: {"per_participant", "summary"}}`` over the frames ``rows[pid]`` of each person.

    People with none of those frames are left out.
    """
    out: dict[str, Any] = {}
    for model in models:
        pp = {}
        for pid, p in sorted(preds.items()):
            sel = rows[pid]
            if not sel.any():
                continue
            pred = p.model(model)
            pp[pid] = {n: participant_metrics(p.true[n][sel], pred[n][sel]) for n in names}
        out[model] = {"per_participant": pp, "summary": summarise(pp, list(names))}
    return out


def _calibration(
    preds: Mapping[str, ParticipantPredictions],
    rows: Mapping[str, np.ndarray],
    names: Sequence[str],
) -> dict[str, Any]:
    """Pooled calibration of the predicted SD over the frames ``rows[pid]`` of each person."""
    return {
        n: calibration(
            np.concatenate([p.true[n][rows[pid]] for pid, p in preds.items()]),
            np.concatenate([p.mean[n][rows[pid]] for pid, p in preds.items()]),
            np.concatenate([p.sd[n][rows[pid]] for pid, p in preds.items()]),
        )
        for n in names
    }


def _calibrated_predictions(
    run: Path,
    infos: Sequence[Mapping[str, Any]],
    preds: Mapping[str, ParticipantPredictions],
    names: Sequence[str],
    units: Mapping[str, str],
    models: Sequence[str],
    tasks: Sequence[str],
) -> tuple[dict[str, dict[str, ParticipantPredictions]], dict[str, Any]]:
    """Per model: each held-out person's predictions corrected by a profile fitted on that
    person's calibration frames only (trial types ``tasks``); and the profiles' contents.

    The target scale of the gain's shrinkage is the SD of the fold's training targets (its
    estimator card), so no held-out value sets it.
    """
    from musclestate.calibration import fit_profile

    scales: dict[str, dict[str, float]] = {}
    for info in infos:
        sd = read_card(_fold_dir(run, int(info["index"])) / "model").target_sd
        for pid in info["test"]:
            scales[pid] = sd
    out: dict[str, dict[str, ParticipantPredictions]] = {}
    profiles: dict[str, Any] = {}
    for model in models:
        if model == "mean_predictor":
            continue  # a constant cannot be given a gain; its offset alone is no estimator
        key = f"{model}_calibrated"
        for pid, p in sorted(preds.items()):
            cal = np.isin(p.tasks().astype(str), list(tasks))
            if not cal.any():
                continue
            est = p.model(model)
            prof = fit_profile(
                pid,
                {n: est[n][cal] for n in names},
                {n: p.true[n][cal] for n in names},
                scales[pid],
                units,
                trials=sorted(set(p.recording[cal].tolist())),
            )
            fixed = prof.apply({n: est[n] for n in names})
            out.setdefault(key, {})[pid] = ParticipantPredictions(
                participant=pid, recording=p.recording, frame=p.frame, t_s=p.t_s,
                mean=fixed, sd=p.sd, true=p.true, task=p.task,
            )  # fmt: skip
            profiles.setdefault(key, {})[pid] = prof.to_dict()["targets"]
    return out, profiles


def collect(
    run: str | Path,
    *,
    calibrate: bool | None = None,
    calibration_tasks: Sequence[str] | None = None,
) -> Path:
    """Merge the folds of ``run`` into ``RUN/metrics.json`` and ``RUN/predictions/<PID>.csv``.

    For a ``--seeds`` run (``RUN/seed_SS`` folders), collect each seed and return
    :func:`collect_seeds`' ``RUN/seeds.json``.

    The headline is the tracking trials (:data:`HEADLINE_TASK`), the paper's protocol; where no
    recording is marked as a tracking trial, it is every frame (``"frames": "all"``). Beside it
    stand the same metrics over all frames and per trial type. metrics.json::

        {"targets": {NAME: {"unit": U}}, "folds": K,
         "frames": "tracking" | "all",
         "models": {"cnn" | "mean_predictor" | "feature_baseline":
                    {"per_participant": {PID: {NAME: {"r2", "r", "rmse", "nrmse"}}},
                     "summary": {NAME: {"r2_mean", "r2_sd", "r_mean", "rmse_mean",
                                        "nrmse_mean", "r2_median", "n_participants"}}}},
         "calibration": {NAME: {"within_1sd", "within_2sd", "expected_within_1sd",
                                "expected_within_2sd", "abs_error_sd_r", "mean_sd", "rmse",
                                "n_frames"}},
         "all_frames": {"models": {...as above...}, "calibration": {...}},
         "by_trial_type": {TASK: {"models": {...}, "n_frames": N}},
         "folds_info": [...fold.json...], "config": {...}, "splits": {...}}

    ``models`` and ``calibration`` at the top are the headline's. Undefined values (e.g.
    Pearson r of the constant mean predictor) are ``null``.

    Raises:
        DatasetError: a fold is missing or incomplete (the message names the ``--fold`` jobs
            still to run).
    """
    run = Path(run)
    if not (run / "config.json").exists() and seed_runs(run):
        return collect_seeds(run, calibrate=calibrate, calibration_tasks=calibration_tasks)
    cfg = _read_json(run / "config.json", "run configuration (is this a `musclestate cv` run?)")
    if calibrate is None:
        calibrate = bool(cfg.get("calibrate", False))
    cal_tasks = tuple(calibration_tasks or cfg.get("calibration_tasks") or CALIBRATION_TASKS)
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
    preds: dict[str, ParticipantPredictions] = {}
    notes: list[str] = []
    for info in infos:
        fdir = _fold_dir(run, int(info["index"]))
        for pid in info["test"]:
            src = fdir / "predictions" / f"{pid}.csv"
            p = read_predictions(src, names, allow_empty=True)
            if p is None:
                notes.append(f"{pid}: no frame with a muscle found; left out of the metrics")
                log.warning(notes[-1])
                continue
            with atomic_file(run / "predictions" / f"{pid}.csv") as tmp:
                shutil.copyfile(src, tmp)
            preds[pid] = p
    models = ["cnn", *(m for m in OTHER_MODELS if all(m in p.baselines for p in preds.values()))]
    if "feature_baseline" not in models:
        notes.append("no ROI features in the dataset: no feature baseline")
    tasks = {pid: p.tasks() for pid, p in preds.items()}
    every = {pid: np.ones(p.n_frames, bool) for pid, p in preds.items()}
    if any((t == HEADLINE_TASK).any() for t in tasks.values()):
        frames = HEADLINE_TASK
        headline = {pid: t == HEADLINE_TASK for pid, t in tasks.items()}
        for pid in sorted(pid for pid, sel in headline.items() if not sel.any()):
            notes.append(f"{pid}: no {HEADLINE_TASK} frames; left out of the headline")
    else:
        frames, headline = "all", every
        notes.append(
            f"no recording is marked as a {HEADLINE_TASK!r} trial: the headline is every frame"
        )
    by_task: dict[str, Any] = {}
    for task in sorted({str(x) for t in tasks.values() for x in t} - {""}):
        sel = {pid: t == task for pid, t in tasks.items()}
        by_task[task] = {
            "models": _model_blocks(preds, sel, names, models),
            "n_frames": int(sum(int(v.sum()) for v in sel.values())),
        }
    head_models = _model_blocks(preds, headline, names, models)
    profiles: dict[str, Any] = {}
    if calibrate:
        calibrated, profiles = _calibrated_predictions(
            run, infos, preds, names, units, models, cal_tasks
        )
        cal_models = [f"{m}_calibrated" for m in models if f"{m}_calibrated" in calibrated]
        if not cal_models:
            raise DatasetError(
                "calibration asked for, but no held-out participant has calibration trials "
                f"(recordings whose task is one of {list(cal_tasks)}); import them with "
                "their task, or run without --calibrate",
                run,
            )
        not_cal = {pid: ~np.isin(t.astype(str), list(cal_tasks)) for pid, t in tasks.items()}
        # the same people and frames for the zero-shot and calibrated figures: those with
        # calibration trials, their frames outside the calibration trials
        cal_people = set(calibrated[cal_models[0]])
        blocks = [(head_models, headline)] + [
            (by_task[t]["models"], {pid: tasks[pid] == t for pid in tasks})
            for t in by_task
            if t not in cal_tasks
        ]
        for target_models, rows in blocks:
            sel = {pid: rows[pid] & not_cal[pid] for pid in cal_people}
            if not any(v.any() for v in sel.values()):
                continue  # e.g. a headline made of calibration trials only
            for cm in cal_models:
                # the corrected values ride in the `mean` of each person's predictions
                target_models[cm] = _model_blocks(calibrated[cm], sel, names, ["cnn"])["cnn"]
        if frames == "all":
            notes.append("calibrated figures leave out the calibration trials' frames")
        missing_cal = sorted(set(preds) - cal_people)
        if missing_cal:
            notes.append(f"no calibration trials, so no calibrated figures, for {missing_cal}")
    metrics = {
        "targets": {n: {"unit": u} for n, u in units.items()},
        "folds": k,
        "frames": frames,
        "calibrated_on": list(cal_tasks) if calibrate else None,
        "models": head_models,
        "calibration": _calibration(preds, headline, names),
        "all_frames": {
            "models": _model_blocks(preds, every, names, models),
            "calibration": _calibration(preds, every, names),
        },
        "by_trial_type": by_task,
        "calibration_profiles": profiles,
        "notes": notes,
        "folds_info": infos,
        "config": cfg,
        "splits": splits,
    }
    path = _write_json(run / "metrics.json", metrics)
    log.info("collected %d folds of %s (headline: %s frames)", k, run, frames)
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

    ``config.data.val_participants`` participants are still held out of the weights, for early
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
    tr = ExampleSet.from_cohort(cohort.subset(inner), config.data.context)  # strided per member
    va = ExampleSet.from_cohort(cohort.subset(val), config.data.context, config.data.frame_stride)
    work = out.parent / f".{out.name}.work"
    fit = fit_estimator(tr, va, config, work, resume=resume, progress=progress)
    if not fit.is_global_zero:
        return out
    training = dataclasses.replace(
        _fold_card_training(cohort, inner, val, tr, fit, config),
        frames_per_participant={p: int(np.sum(tr.participant == p)) for p in inner},
    )
    save_bundle(out, fit.state_dict, _bundle_card(cohort, config, fit, training, cv_metrics),
                overwrite=overwrite)  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    log.info("estimator bundle written to %s", out)
    return out
