"""Architecture measured by musclestate against human observers (``musclestate architecture
evaluate``).

The labels file has the columns of the TimTrack observer data (van der Zee & Kuo 2022, PLOS ONE
17(3): e0265752): one row per image and observer with ``dataset``, ``subject``, ``image`` (path
under the root), ``observer``, ``fascicle_angle_deg``, ``thickness_px`` and, where the image is a
screen capture, ``roi_x0, roi_x1, roi_y0, roi_y1`` (1-based, inclusive pixel columns and rows of
the B-mode area). Image sets differ in which way the fascicles run, so the MAGNITUDE of the
fascicle angle to the horizontal is compared; thickness is compared in pixels of the image.

For every image the reference is the mean of its observers; the observer figures are each
observer against the mean of the others (the human floor), averaged over observers and images.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.architecture.measure import ArchitectureConfig, ImageArchitecture, measure_image
from musclestate.errors import InputError
from musclestate.progress import ProgressFn, emit

REQUIRED = ("dataset", "subject", "image", "observer", "fascicle_angle_deg", "thickness_px")
ROI = ("roi_x0", "roi_x1", "roi_y0", "roi_y1")


@dataclass(frozen=True)
class LabelledImage:
    """One image of a labels file with its observers' values.

    Attributes:
        dataset, subject: identifiers from the file.
        image: path relative to the root.
        roi: ``(x0, x1, y0, y1)`` 1-based inclusive B-mode area, or None for the whole image.
        fascicle_angle_deg: ``(n_observers,)`` as drawn (sign as in the file).
        thickness_px: ``(n_observers,)``.
    """

    dataset: str
    subject: str
    image: str
    roi: tuple[int, int, int, int] | None
    fascicle_angle_deg: tuple[float, ...]
    thickness_px: tuple[float, ...]


def read_labels(path: str | Path) -> list[LabelledImage]:
    """Read a labels CSV (see the module docstring) grouped by image, in file order.

    Raises:
        InputError: the file is missing, lacks a required column or holds a non-number.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("labels file not found", path)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(
                f"labels file lacks column(s) {', '.join(missing)}; it needs {', '.join(REQUIRED)}",
                path,
            )
        groups: dict[str, list[dict[str, str]]] = {}
        for row in reader:
            groups.setdefault(row["image"], []).append(row)
    out = []
    for name, rows in groups.items():
        try:
            fa = tuple(float(r["fascicle_angle_deg"]) for r in rows)
            th = tuple(float(r["thickness_px"]) for r in rows)
            roi = None
            if all(rows[0].get(k) for k in ROI):
                x0, x1, y0, y1 = (round(float(rows[0][k])) for k in ROI)
                roi = (x0, x1, y0, y1)
        except ValueError as exc:
            raise InputError(f"image {name}: a value is not a number ({exc})", path) from None
        out.append(LabelledImage(rows[0]["dataset"], rows[0]["subject"], name, roi, fa, th))
    if not out:
        raise InputError("labels file holds no rows", path)
    return out


def load_labelled(root: str | Path, item: LabelledImage) -> np.ndarray:
    """The B-mode area of a labelled image as ``(H, W)`` uint8 (read by musclestate.io)."""
    from musclestate.io.images import read_image

    path = Path(root) / item.image
    image = read_image(path)
    if item.roi is not None:
        x0, x1, y0, y1 = item.roi
        if not (1 <= x0 < x1 <= image.shape[1] and 1 <= y0 < y1 <= image.shape[0]):
            raise InputError(f"roi {item.roi} lies outside the image {image.shape}", path)
        image = image[y0 - 1 : y1, x0 - 1 : x1]
    return image


def _observer_mae(values: tuple[float, ...]) -> float:
    """Mean over observers of |observer - mean of the others| (magnitudes)."""
    v = np.abs(np.asarray(values, np.float64))
    if v.size < 2:
        return float("nan")
    return float(np.mean([abs(v[i] - np.delete(v, i).mean()) for i in range(v.size)]))


def image_errors(item: LabelledImage, measured: ImageArchitecture) -> dict[str, Any]:
    """Per-image record: measured values, the observers' mean and the errors."""
    ref_angle = float(np.mean(np.abs(item.fascicle_angle_deg)))
    ref_thick = float(np.mean(item.thickness_px))
    angle = abs(measured.fascicle_angle_deg)
    return {
        "dataset": item.dataset,
        "subject": item.subject,
        "image": item.image,
        "found": bool(measured.found and np.isfinite(angle)),
        "fascicle_angle_deg": angle,
        "thickness_px": measured.thickness_px,
        "observer_fascicle_angle_deg": ref_angle,
        "observer_thickness_px": ref_thick,
        "fascicle_angle_error_deg": angle - ref_angle,
        "thickness_error_px": measured.thickness_px - ref_thick,
        "observer_fascicle_angle_mae_deg": _observer_mae(item.fascicle_angle_deg),
        "observer_thickness_mae_px": _observer_mae(item.thickness_px),
        "measured": measured.to_dict(),
    }


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"images", "found", "fascicle_angle_mae_deg", "thickness_mae_px",
    "observer_fascicle_angle_mae_deg", "observer_thickness_mae_px"}`` over ``records``; the MAEs
    over the images where the muscle was found (NaN when none was)."""

    def mae(key: str) -> float:
        v = np.array([r[key] for r in records if r["found"]], np.float64)
        v = v[np.isfinite(v)]
        return float(np.mean(np.abs(v))) if v.size else float("nan")

    def mean(key: str) -> float:
        v = np.array([r[key] for r in records], np.float64)
        v = v[np.isfinite(v)]
        return float(np.mean(v)) if v.size else float("nan")

    return {
        "images": len(records),
        "found": int(sum(r["found"] for r in records)),
        "fascicle_angle_mae_deg": mae("fascicle_angle_error_deg"),
        "thickness_mae_px": mae("thickness_error_px"),
        "observer_fascicle_angle_mae_deg": mean("observer_fascicle_angle_mae_deg"),
        "observer_thickness_mae_px": mean("observer_thickness_mae_px"),
    }


def summary_by_dataset(records: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"datasets": {id: summary}, "overall": summary}`` (see :func:`summarise`)."""
    ids = sorted({r["dataset"] for r in records}, key=lambda s: (len(s), s))
    return {
        "datasets": {i: summarise([r for r in records if r["dataset"] == i]) for i in ids},
        "overall": summarise(records),
    }


def measure_labelled(
    root: str | Path,
    labels: list[LabelledImage],
    *,
    model: str | Path | None = None,
    config: ArchitectureConfig | None = None,
    progress: ProgressFn | None = None,
) -> list[dict[str, Any]]:
    """Measure every labelled image; one :func:`image_errors` record per image."""
    from musclestate.roi.segment import load_segmenter

    segmenter = load_segmenter(model)
    config = config or ArchitectureConfig()
    records = []
    for i, item in enumerate(labels):
        image = load_labelled(root, item)
        prob = segmenter.predict(image)
        records.append(image_errors(item, measure_image(image, prob, config)))
        emit(progress, "architecture", i + 1, len(labels), "images", str(item.image))
    return records


def evaluate_architecture(
    root: str | Path,
    labels: str | Path,
    *,
    model: str | Path | None = None,
    config: ArchitectureConfig | None = None,
    datasets: tuple[str, ...] | None = None,
    out: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Compare musclestate's fascicle angle and thickness with human observers.

    Args:
        root: folder the ``image`` paths of the labels file are relative to.
        labels: labels CSV (see the module docstring).
        model: aponeurosis segmenter weights (``None`` = the shipped model).
        config: :class:`ArchitectureConfig` (``None`` = defaults).
        datasets: only these dataset ids (``None`` = all).
        out: also write the whole result (per image) here as JSON, atomically.
        progress: receives :class:`~musclestate.progress.ProgressEvent` (stage
            ``"architecture"``, unit ``"images"``) after each image.

    Returns:
        ``{"datasets": {id: {"images", "found", "fascicle_angle_mae_deg", "thickness_mae_px",
        "observer_fascicle_angle_mae_deg", "observer_thickness_mae_px"}}, "overall": {...},
        "images": [per-image records], "config": {...}}``; the MAEs are against the mean of the
        observers over images where the muscle was found, angles as magnitudes in degrees,
        thickness in pixels.

    Raises:
        InputError: unreadable labels, unknown dataset id, missing image.
    """
    items = read_labels(labels)
    if datasets is not None:
        known = {i.dataset for i in items}
        unknown = sorted(set(datasets) - known)
        if unknown:
            raise InputError(
                f"dataset(s) {', '.join(unknown)} not in the labels file (it has "
                f"{', '.join(sorted(known))})",
                labels,
            )
        items = [i for i in items if i.dataset in datasets]
    config = config or ArchitectureConfig()
    records = measure_labelled(root, items, model=model, config=config, progress=progress)
    result = {
        **summary_by_dataset(records),
        "images": records,
        "config": config.to_dict(),
        "model": str(model) if model is not None else "shipped",
    }
    if out is not None:
        from musclestate._atomic import write_json_atomic

        write_json_atomic(out, result)
    return result


__all__ = [
    "LabelledImage",
    "evaluate_architecture",
    "image_errors",
    "read_labels",
    "summarise",
    "summary_by_dataset",
]
