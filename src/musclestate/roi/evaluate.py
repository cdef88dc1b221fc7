"""How well a segmenter finds the aponeuroses on labelled images (``musclestate roi evaluate``).

``IMAGES`` and ``MASKS`` are folders of same-named greyscale images (PNG, JPEG, TIFF, BMP); a mask
pixel > 0 is aponeurosis. This is the layout of the DL_Track aponeurosis set (Cronin, Finni &
Seynnes 2020, arXiv:2009.04790). Dice and IoU come from MONAI (``compute_dice``,
``compute_iou``); the aponeurosis line depth errors are musclestate's own (:func:`line_errors`).
Segmenter training (:func:`musclestate.training.segmenter.train_segmenter`) scores its test
images with :func:`evaluate`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.errors import InputError
from musclestate.io.formats import IMAGE_SUFFIXES
from musclestate.progress import ProgressFn, emit


def list_pairs(images: str | Path, masks: str | Path) -> list[str]:
    """Sorted file names present in both ``images`` and ``masks`` (same name, image suffix).

    Raises:
        InputError: a folder is missing, holds no images, or an image has no same-named mask.
    """
    images, masks = Path(images), Path(masks)
    for folder in (images, masks):
        if not folder.is_dir():
            raise InputError("not a folder of images", folder)
    names = sorted(p.name for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the folder", images)
    missing = [n for n in names if not (masks / n).is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} image(s) have no same-named mask, e.g. {missing[0]!r}; every image "
            "needs MASKS/<same name>",
            masks,
        )
    return names


def load_split(path: str | Path, part: str) -> list[str]:
    """Names of one ``part`` ("train", "val", "test") of a saved split JSON (or a model card)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read split JSON ({exc})", path) from exc
    data = data.get("split", data)
    if part not in data or not isinstance(data[part], list):
        raise InputError(f"split has no list {part!r}; parts: train, val, test", path)
    return list(data[part])


def dice_iou(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Dice and IoU of two boolean masks of one shape, by MONAI's ``compute_dice`` and
    ``compute_iou``.

    Empty masks, explicitly (MONAI's ``ignore_empty=False``): an empty truth scores 1 when the
    prediction is empty too and 0 when it is not; an empty prediction of a non-empty truth
    scores 0.
    """
    import torch
    from monai.metrics import compute_dice, compute_iou

    if pred.shape != truth.shape:
        raise InputError(f"prediction shape {pred.shape} differs from mask shape {truth.shape}")
    p = torch.from_numpy(np.asarray(pred, bool))[None, None].double()
    t = torch.from_numpy(np.asarray(truth, bool))[None, None].double()
    dice = compute_dice(p, t, include_background=True, ignore_empty=False)
    iou = compute_iou(p, t, include_background=True, ignore_empty=False)
    return float(dice), float(iou)


def line_errors(pred_prob: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Mean absolute depth error (rows) of the superficial and deep aponeurosis lines.

    Both lines come from :func:`musclestate.roi.geometry.fit_geometry` on the prediction and on
    the true mask, compared over the columns covered by the true band. NaN where either is missing.
    Written here because it measures this task's own output (the aponeurosis curves the ROI stage
    uses); no metrics library has it.
    """
    from musclestate.roi.geometry import fit_geometry

    gp = fit_geometry(pred_prob, (1.0, 1.0))
    gt = fit_geometry(truth.astype(np.float32), (1.0, 1.0))
    out = {}
    for name in ("superficial", "deep"):
        lp, lt = gp.line(name), gt.line(name)
        cover = gt.coverage(name)
        ok = cover & np.isfinite(lp) & np.isfinite(lt)
        out[name] = float(np.mean(np.abs(lp[ok] - lt[ok]))) if ok.any() else float("nan")
    return out


def evaluate(
    segmenter: Any,
    images: str | Path,
    masks: str | Path,
    names: Sequence[str] | None = None,
    *,
    pixel_spacing_mm: tuple[float, float] | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Score ``segmenter`` on same-named image/mask files, at each image's own resolution.

    The prediction is the segmenter's probability > 0.5; Dice and IoU per image follow
    :func:`dice_iou` (its empty-mask rule), line errors :func:`line_errors`. ``progress``
    receives a :class:`~musclestate.progress.ProgressEvent` (stage ``"evaluate"``, unit
    ``"images"``) after each image.

    Returns:
        ``images`` (count), ``dice_mean``, ``dice_sd``, ``iou_mean``, ``line_error_px_mean``
        (mean over images of the mean of both lines), ``superficial_error_px_mean``,
        ``deep_error_px_mean``, ``lines_missed`` (true lines not found in the prediction),
        ``line_error_mm_mean`` when ``pixel_spacing_mm`` is given, and ``per_image`` rows.

    Raises:
        InputError: listed names not in the folders, no images, or an unreadable image.
    """
    from musclestate.io.images import read_image

    images, masks = Path(images), Path(masks)
    all_names = list_pairs(images, masks)
    if names is None:
        names = all_names
    unknown = sorted(set(names) - set(all_names))
    if unknown:
        raise InputError(f"{len(unknown)} listed image(s) not found, e.g. {unknown[0]!r}", images)
    rows = []
    for i, name in enumerate(names):
        img = read_image(images / name)
        truth = read_image(masks / name) > 0
        if truth.shape != img.shape:
            raise InputError(
                f"mask shape {truth.shape} differs from image shape {img.shape}", masks / name
            )
        prob = segmenter.predict(img)
        d, j = dice_iou(prob > 0.5, truth)
        le = line_errors(prob, truth)
        rows.append({"name": name, "dice": d, "iou": j, **{f"{k}_px": v for k, v in le.items()}})
        emit(progress, "evaluate", i + 1, len(names), "images", name)
    if not rows:
        raise InputError("no images to evaluate", images)
    dice = np.array([r["dice"] for r in rows])
    sup = np.array([r["superficial_px"] for r in rows])
    deep = np.array([r["deep_px"] for r in rows])
    both = np.concatenate([sup, deep])
    per_image_line = np.nanmean(np.stack([sup, deep]), axis=0) if len(both) else both
    res: dict[str, Any] = {
        "images": len(rows),
        "dice_mean": float(dice.mean()),
        "dice_sd": float(dice.std()),
        "iou_mean": float(np.mean([r["iou"] for r in rows])),
        "line_error_px_mean": float(np.nanmean(per_image_line))
        if np.isfinite(per_image_line).any()
        else float("nan"),
        "superficial_error_px_mean": float(np.nanmean(sup)) if np.isfinite(sup).any() else None,
        "deep_error_px_mean": float(np.nanmean(deep)) if np.isfinite(deep).any() else None,
        "lines_missed": int(np.isnan(both).sum()),
    }
    if pixel_spacing_mm is not None:
        res["line_error_mm_mean"] = res["line_error_px_mean"] * float(pixel_spacing_mm[0])
    res["per_image"] = rows
    return res


def evaluate_segmenter(
    images: str | Path,
    masks: str | Path,
    *,
    model: str | Path | None = None,
    split: str | None = None,
    names: str | Path | Sequence[str] | None = None,
    spacing_mm: tuple[float, float] | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Dice, IoU and aponeurosis line depth errors of a segmenter on labelled images.

    Args:
        images: folder of greyscale images.
        masks: folder of same-named masks (> 0 = aponeurosis).
        model: segmenter weights (``.safetensors`` with its JSON card); ``None`` = shipped.
        split: evaluate only this part (``"train"``, ``"val"``, ``"test"``) of the split saved
            in the model's card.
        names: image names to evaluate: a sequence, or a text file with one name a line
            (combined with ``split``: the names in both).
        spacing_mm: pixel spacing ``(row_mm, col_mm)``; adds the line error in mm.
        progress: receives :class:`~musclestate.progress.ProgressEvent` (stage
            ``"evaluate"``, unit ``"images"``).

    Returns:
        The summary of :func:`evaluate` (``images``, ``dice_mean``, ``dice_sd``, ``iou_mean``,
        ``line_error_px_mean``, ... and ``per_image`` rows) plus ``model`` (its path) and
        ``split`` (``"all"`` without one).

    Raises:
        BundleError: the model or its card cannot be read. InputError: bad folders or names.
    """
    from musclestate.roi.segment import SHIPPED_WEIGHTS, card_path, load_segmenter

    seg = load_segmenter(model)
    selected = None
    if split is not None:
        selected = load_split(card_path(model or SHIPPED_WEIGHTS), split)
    if names is not None:
        if isinstance(names, str | Path):
            text = Path(names).read_text(encoding="utf-8")
            listed = [s.strip() for s in text.splitlines() if s.strip()]
        else:
            listed = list(names)
        selected = listed if selected is None else [n for n in selected if n in set(listed)]
    res = evaluate(seg, images, masks, selected, pixel_spacing_mm=spacing_mm, progress=progress)
    res["model"] = str(model or SHIPPED_WEIGHTS)
    res["split"] = split or "all"
    return res
