"""``musclestate roi evaluate``: how well a segmenter finds the aponeuroses on labelled images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from musclestate.progress import ProgressFn


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
        The summary of :func:`musclestate.roi.train.evaluate` (``images``, ``dice_mean``,
        ``dice_sd``, ``iou_mean``, ``line_error_px_mean``, ... and ``per_image`` rows) plus
        ``model`` (its path) and ``split`` (``"all"`` without one).
    """
    from musclestate.roi.segment import SHIPPED_WEIGHTS, card_path, load_segmenter
    from musclestate.roi.train import evaluate, load_split

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
