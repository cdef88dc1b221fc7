"""Offline prediction on files: one input or a whole folder, with every output traced.

:func:`predict` is what ``musclestate predict`` calls. Inside it, :func:`plan_inputs` turns what
the user named (a video, an image folder, a DICOM cine, a dataset, or a folder of such inputs)
into a list of jobs, each with its own output paths; :func:`predict_job` runs one job and writes
the CSV (plus the optional XLSX, PNG plot and overlay video) with a JSON sidecar beside each file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.errors import ConfigError, InputError, MusclestateError
from musclestate.inference import outputs
from musclestate.inference.predictor import Predictor, PredictorConfig, provenance
from musclestate.inference.sources import (
    FrameSource,
    dataset_sources,
    is_dataset,
    open_source,
)
from musclestate.io.formats import (
    DICOM_SUFFIXES,
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    has_dicom_preamble,
)
from musclestate.io.images import is_stack
from musclestate.models.card import BundleCard
from musclestate.progress import ProgressEvent, ProgressFn, emit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One input to predict and where its outputs go.

    Attributes:
        name: short name (file stem or recording id).
        input: the input path (``DATASET#rec_id`` for a dataset recording).
        out_csv: the CSV to write (its sidecar is ``out_csv + ".json"``).
        xlsx, plot, overlay: optional extra outputs (``None`` = not written).
        recording: recording id inside a dataset, else ``None``.
    """

    name: str
    input: Path
    out_csv: Path
    xlsx: Path | None = None
    plot: Path | None = None
    overlay: Path | None = None
    recording: str | None = None


@dataclass(frozen=True)
class SourceOptions:
    """How to read inputs: crop, flip, spacing and frame rate of image folders."""

    crop: tuple[int, int, int, int] | None = None
    flip_horizontal: bool = False
    pixel_spacing_mm: tuple[float, float] | None = None
    fps: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def open(self, job: Job) -> FrameSource:
        if job.recording is not None:
            return dataset_sources(job.input, [job.recording])[0]
        return open_source(
            job.input,
            crop=self.crop,
            flip_horizontal=self.flip_horizontal,
            pixel_spacing_mm=self.pixel_spacing_mm,
            fps=self.fps,
        )


def _is_media(p: Path) -> bool:
    """A video, DICOM file or TIFF stack (single images in a folder are frames of one input)."""
    if not p.is_file():
        return False
    suffix = p.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return is_stack(p)
    return suffix in VIDEO_SUFFIXES + DICOM_SUFFIXES or has_dicom_preamble(p)


def _is_image_folder(p: Path) -> bool:
    """A folder of single images (one per frame); a folder of only TIFF stacks is not."""
    if not p.is_dir():
        return False
    images = [f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    return bool(images) and not all(is_stack(f) for f in images)


def plan_inputs(
    input: str | Path,
    out: str | Path,
    *,
    xlsx: str | Path | None = None,
    plot: str | Path | None = None,
    overlay: str | Path | None = None,
) -> list[Job]:
    """Jobs for ``input``: one for a video/DICOM/image folder, many for a dataset or a folder.

    With one job, ``out`` (and ``xlsx``/``plot``/``overlay``) are file names. With several,
    ``out`` is a folder that receives ``NAME.csv`` per input, and the extra outputs are switched
    on by passing any value (they are written beside it as ``NAME.xlsx``, ``NAME.png``,
    ``NAME.mp4``).
    """
    src = Path(input)
    out = Path(out)
    if not src.exists():
        raise InputError(
            "no such file or folder; give a video, image folder, DICOM file, dataset or a folder "
            "of these",
            src,
        )
    many: list[tuple[str, Path, str | None]] = []
    if is_dataset(src):
        from musclestate.dataset import open_dataset

        many = [(str(r.id), src, str(r.id)) for r in open_dataset(src).recordings]
    elif src.is_dir() and not _is_image_folder(src):
        kids = sorted(p for p in src.iterdir() if _is_media(p) or _is_image_folder(p))
        if not kids:
            raise InputError(
                f"folder holds no videos ({', '.join(VIDEO_SUFFIXES)}), DICOM files, TIFF "
                "stacks or image folders",
                src,
            )
        many = [(p.stem, p, None) for p in kids]
    if not many:
        if out.suffix.lower() != ".csv":
            raise ConfigError(f"--out must name a .csv file for a single input, got {out}")
        return [
            Job(
                src.stem,
                src,
                out,
                None if xlsx is None else Path(xlsx),
                None if plot is None else Path(plot),
                None if overlay is None else Path(overlay),
            )
        ]
    if out.suffix:
        raise ConfigError(
            f"{src} holds {len(many)} inputs: --out must be a folder (no suffix), got {out}"
        )
    names = [n for n, _, _ in many]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"inputs share the names {dupes}; outputs would overwrite each other", src)
    return [
        Job(
            name,
            path,
            out / f"{name}.csv",
            None if xlsx is None else out / f"{name}.xlsx",
            None if plot is None else out / f"{name}.png",
            None if overlay is None else out / f"{name}.mp4",
            rec,
        )
        for name, path, rec in many
    ]


def count_frames(jobs: Sequence[Job], options: SourceOptions) -> int | None:
    """Total frames of all jobs where every source knows its length, else ``None``.

    Inputs that cannot be opened count as 0 here; their jobs fail (and say why) when they run.
    """
    total = 0
    for job in jobs:
        try:
            with options.open(job) as s:
                if s.info.n_frames is None:
                    return None
                total += s.info.n_frames
        except MusclestateError:
            continue  # reported when the job itself runs
    return total


def predict_job(
    predictor: Predictor,
    job: Job,
    options: SourceOptions,
    *,
    progress: ProgressFn | None = None,
    hash_input: bool = True,
) -> outputs.Estimates:
    """Predict one input and write its CSV (+ XLSX, plot, overlay), each with a JSON sidecar."""
    with options.open(job) as source:
        notes = check_against_training(predictor, source, source.info.frame_shape)
        pred = predictor.run(source, keep_outlines=job.overlay is not None, progress=progress)
        prov = provenance(
            predictor,
            source,
            input_sha256=outputs.sha256_file(job.input) if hash_input else None,
        )
        prov["warnings"] = notes
    est = pred.estimates
    if not est.roi_found.all():
        log.warning(
            "%s: no muscle found in %d of %d frames (flagged roi_found = 0, estimates empty)",
            job.name,
            int(np.count_nonzero(~est.roi_found)),
            len(est),
        )
    outputs.write_csv(job.out_csv, est)
    outputs.write_sidecar(job.out_csv, est, prov)
    if job.xlsx is not None:
        outputs.write_xlsx(job.xlsx, est, prov)
        outputs.write_sidecar(job.xlsx, est, prov)
    if job.plot is not None:
        from musclestate.inference.overlay import plot_traces

        plot_traces(job.plot, est, title=job.name)
        outputs.write_sidecar(job.plot, est, prov)
    if job.overlay is not None:
        from musclestate.inference.overlay import write_overlay

        with options.open(job) as again:
            write_overlay(job.overlay, (f.image for f in again), est, pred.outlines)
        outputs.write_sidecar(job.overlay, est, prov)
    return est


@dataclass(frozen=True)
class PredictResult:
    """What :func:`predict` did with one input.

    Attributes:
        name: short name of the input (file stem or recording id).
        input: the input path.
        out_csv: the table written (its sidecar is ``out_csv + ".json"``).
        estimates: the per-frame estimates, or ``None`` when the input failed.
        error: why the input failed (``None`` when it did not).
    """

    name: str
    input: Path
    out_csv: Path
    estimates: outputs.Estimates | None
    error: str | None = None


def predict(
    model: str | Path,
    input: str | Path,
    out: str | Path,
    *,
    overlay: str | Path | None = None,
    plot: str | Path | None = None,
    xlsx: str | Path | None = None,
    crop: tuple[int, int, int, int] | None = None,
    flip: bool = False,
    spacing: tuple[float, float] | None = None,
    fps: float | None = None,
    backend: str | None = None,
    batch_size: int = 32,
    roi_every: int | None = None,
    threads: int | None = None,
    segmenter: str | Path | None = None,
    onnx: str | Path | None = None,
    calibration: str | Path | None = None,
    hash_input: bool = True,
    progress: ProgressFn | None = None,
) -> list[PredictResult]:
    """Estimate every frame of a recording, or of many, and write the tables.

    Args:
        model: estimator bundle folder (``card.json`` + ``model.safetensors``).
        input: a video, image folder, DICOM cine, dataset, or a folder of these.
        out: the CSV to write; a folder (one ``NAME.csv`` per input) for many inputs.
        overlay: overlay video (``.mp4``) of the ROI and the traces (for many inputs: any value
            switches on ``NAME.mp4`` beside each CSV; the same for ``plot`` and ``xlsx``).
        plot: PNG plot of the traces.
        xlsx: the same table as an Excel workbook.
        crop: B-mode image inside the frame, ``(x, y, w, h)`` in 0-based pixels.
        flip: mirror frames left-right.
        spacing: pixel spacing ``(row_mm, col_mm)`` where the input does not say.
        fps: frame rate of an image folder (frames/s).
        backend: ``"onnx"`` or ``"torch"`` (``None``: :class:`PredictorConfig`'s default).
        batch_size: frames per estimator call.
        roi_every: segment every k-th frame and interpolate between (``None``: the default).
        threads: CPU threads for the networks.
        segmenter: segmenter weights (``.safetensors``) instead of the bundle's.
        onnx: an estimator exported by :func:`musclestate.inference.export.export_onnx`.
        calibration: the person's calibration profile (:func:`musclestate.calibrate`), applied
            to every estimate and recorded in the sidecar.
        hash_input: record each input's SHA-256 in the sidecar.
        progress: receives :class:`~musclestate.progress.ProgressEvent` (stage ``"predict"``,
            unit ``"frames"`` over all inputs, message the input's name).

    Returns:
        One :class:`PredictResult` per input, in order. With several inputs, one that cannot be
        read is logged and reported in its result (``error``), and the others still run.

    Raises:
        MusclestateError: the bundle or the only input cannot be used.
    """
    from musclestate.inference import load_predictor

    cfg = PredictorConfig.from_options(
        backend=backend, batch_size=batch_size, roi_every=roi_every, threads=threads
    )
    predictor = load_predictor(
        model, config=cfg, segmenter=segmenter, onnx=onnx, calibration=calibration
    )
    opts = SourceOptions(crop=crop, flip_horizontal=flip, pixel_spacing_mm=spacing, fps=fps)
    jobs = plan_inputs(input, out, xlsx=xlsx, plot=plot, overlay=overlay)
    total = count_frames(jobs, opts)
    results: list[PredictResult] = []
    finished = 0
    for job in jobs:

        def step(e: ProgressEvent, base: int = finished, name: str = job.name) -> None:
            emit(progress, "predict", base + e.done, total or None, "frames", name)

        try:
            est = predict_job(predictor, job, opts, progress=step, hash_input=hash_input)
        except MusclestateError as exc:
            if len(jobs) == 1:
                raise
            log.error("%s: skipped: %s", job.name, exc)  # one bad input does not stop the batch
            results.append(PredictResult(job.name, job.input, job.out_csv, None, str(exc)))
            continue
        finished += len(est)
        results.append(PredictResult(job.name, job.input, job.out_csv, est))
    return results


def training_input(card: BundleCard) -> dict[str, Any] | None:
    """Pixel spacing and frame size of the bundle's training data, where they can be known.

    Taken from the card's ``training`` entry (``pixel_spacing_mm``, ``frame_shape``); what it
    lacks is read from the training dataset's manifest when that dataset is still on disk
    (medians over the training participants' recordings). ``None`` when nothing is known.
    """
    tr = card.training
    out = {
        "pixel_spacing_mm": None if tr.pixel_spacing_mm is None else list(tr.pixel_spacing_mm),
        "frame_shape": None if tr.frame_shape is None else list(tr.frame_shape),
    }
    ds_path = tr.dataset
    if None in out.values() and ds_path and is_dataset(ds_path):
        from musclestate.dataset import open_dataset

        recs = list(open_dataset(ds_path).recordings)
        people = set(tr.participants) | set(tr.validation_participants)
        recs = [r for r in recs if r.participant in people] or recs
        sps = np.array([r.pixel_spacing_mm for r in recs if r.pixel_spacing_mm is not None])
        if out["pixel_spacing_mm"] is None and sps.size:
            out["pixel_spacing_mm"] = [float(v) for v in np.median(sps, 0)]
        if out["frame_shape"] is None and recs:
            out["frame_shape"] = [int(v) for v in np.median([r.frame_shape for r in recs], 0)]
    return None if all(v is None for v in out.values()) else out


def check_against_training(
    predictor: Predictor, source: FrameSource, shape: tuple[int, int] | None = None
) -> list[str]:
    """Warn (and return the warnings) where the input differs from the training data.

    Compares pixel spacing and frame size (pixels and millimetres) with
    ``predictor.info["training_input"]`` (see :func:`training_input`). The run goes on: the ROI
    step works in millimetres and cuts fixed-size patches, so a different spacing or size still
    gives patches of the same anatomy, only sampled more or less finely.
    """
    train = predictor.info.get("training_input") or {}
    name = source.info.name
    notes: list[str] = []
    sp, tsp = source.info.pixel_spacing_mm, train.get("pixel_spacing_mm")
    if tsp is not None:
        if sp is None:
            notes.append(
                f"{name}: pixel spacing unknown; the training data had {tsp[0]:.3f} x "
                f"{tsp[1]:.3f} mm/px (give --spacing ROW_MM COL_MM if this input differs)"
            )
        elif any(abs(a - b) > 0.1 * b for a, b in zip(sp, tsp, strict=True)):
            notes.append(
                f"{name}: pixel spacing {sp[0]:.3f} x {sp[1]:.3f} mm/px differs from the training "
                f"data ({tsp[0]:.3f} x {tsp[1]:.3f} mm/px) by more than 10 %; patches are cut in "
                "mm, so estimates are still computed, but check them"
            )
    tshape = train.get("frame_shape")
    if shape is not None and tshape is not None and tuple(shape) != tuple(tshape):
        msg = (
            f"{name}: frames are {shape[0]} x {shape[1]} px, the training data "
            f"{tshape[0]} x {tshape[1]} px"
        )
        if sp is not None and tsp is not None:
            msg += (
                f" ({shape[0] * sp[0]:.1f} x {shape[1] * sp[1]:.1f} mm vs "
                f"{tshape[0] * tsp[0]:.1f} x {tshape[1] * tsp[1]:.1f} mm)"
            )
        notes.append(msg + "; the ROI step adapts, estimates are still computed")
    for n in notes:
        log.warning(n)
    return notes
