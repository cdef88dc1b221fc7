"""Example frames for the report: one held-out frame per participant, read from the dataset the run
names in config.json, with what the ROI stage stored for it (derived group ``"roi"``).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.errors import DatasetError
from musclestate.report.figures import RoiExample
from musclestate.report.results import RunResults

log = logging.getLogger(__name__)


def _patch_config(attrs: dict) -> Any:
    """The ROI stage's patch settings from the group's attrs (defaults where not recorded)."""
    from musclestate.roi.patches import PatchConfig

    raw = attrs.get("patches") or attrs.get("patch") or {}
    known = {f.name for f in dataclasses.fields(PatchConfig)}
    return PatchConfig(**{k: v for k, v in dict(raw).items() if k in known})


def _overlay(
    group: Any, rec_id: str, index: int, shape: tuple[int, int], spacing: Any
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Aponeurosis polylines and MG/SOL patch outlines (pixel ``(x, y)``) of one frame.

    The outlines are the exact areas the patches were sampled from
    (:func:`musclestate.roi.patches.sample_grid` on the stored geometry).
    """
    names = set(group.names(rec_id))
    if not {"superficial_row", "deep_row"} <= names:
        return {}, {}
    from musclestate.roi.geometry import MuscleGeometry
    from musclestate.roi.patches import sample_grid

    one = slice(index, index + 1)
    sup = np.asarray(group.get(rec_id, "superficial_row", one)[0], np.float64)
    deep = np.asarray(group.get(rec_id, "deep_row", one)[0], np.float64)
    cols = np.arange(sup.shape[0], dtype=np.float64)
    lines = {}
    for label, row in (("superficial aponeurosis", sup), ("deep aponeurosis", deep)):
        ok = np.isfinite(row)
        if ok.any():
            lines[label] = np.column_stack([cols[ok], row[ok]])
    outlines: dict[str, np.ndarray] = {}
    if not (np.isfinite(sup).all() and np.isfinite(deep).all()) or spacing is None:
        return lines, outlines
    covers = {}
    for name in ("superficial_cover", "deep_cover"):
        covers[name] = (
            np.asarray(group.get(rec_id, name, one)[0], bool)
            if name in names
            else np.ones(sup.shape[0], bool)
        )
    geo_attrs = dict(group.attrs.get("geometry") or {})
    geometry = MuscleGeometry(
        shape=shape,
        pixel_spacing_mm=tuple(spacing),
        superficial_row=sup,
        deep_row=deep,
        sol_depth_mm=float(geo_attrs.get("sol_depth_mm", 20.0)),
        **covers,
    )
    rows, pcols, _ = sample_grid(geometry, _patch_config(group.attrs))
    for c, label in enumerate(("MG patch", "SOL patch")):
        top = np.column_stack([pcols, rows[c, 0]])
        bottom = np.column_stack([pcols[::-1], rows[c, -1, ::-1]])
        outlines[label] = np.vstack([top, bottom])
    return lines, outlines


def _examples(res: RunResults, ds: Any, group: Any, n: int) -> tuple[list[RoiExample], list[str]]:
    known = {info.id: info for info in ds.recordings}
    examples: list[RoiExample] = []
    missing: list[str] = []
    pids = res.participants
    if len(pids) > n:
        # Spread the examples over the cohort rather than taking the first n ids.
        pids = [pids[i] for i in np.linspace(0, len(pids) - 1, n).round().astype(int)]
    for pid in pids[:n]:
        p = res.predictions[pid]
        rec_id = p.recordings()[0]
        if rec_id not in known:
            missing.append(rec_id)
            continue
        info = known[rec_id]
        rows = np.flatnonzero(p.recording == rec_id)
        index = int(p.frame[rows[len(rows) // 2]])
        one = slice(index, index + 1)
        frame = np.asarray(ds.frames(rec_id, one)[0])
        lines: dict = {}
        outlines: dict = {}
        patches = None
        found = True
        if group is not None:
            patches = np.asarray(group.get(rec_id, "patches", one)[0])
            found = bool(np.asarray(group.get(rec_id, "found", one))[0])
            if found:
                lines, outlines = _overlay(group, rec_id, index, frame.shape, info.pixel_spacing_mm)
        examples.append(
            RoiExample(
                title=f"{pid} · {rec_id} · frame {index}",
                frame=frame,
                lines=lines,
                outlines=outlines,
                patches=patches,
                found=found,
            )
        )
    return examples, missing


def load_roi_examples(res: RunResults, n: int) -> tuple[list[RoiExample], str]:
    """Up to ``n`` example frames (the middle held-out frame of one recording per participant).

    Returns the examples and a note for the reader ("" when nothing is missing). Raises
    :class:`DatasetError` when the run names no dataset or the dataset cannot be opened.
    """
    ds_path = res.dataset_path()
    if ds_path is None:
        raise DatasetError(
            "config.json names no dataset, so frames cannot be shown",
            res.run_dir / "config.json",
        )
    if not Path(ds_path).exists():
        raise DatasetError(
            "dataset named in config.json not found; move it back or edit config.json's "
            "dataset path to show example frames",
            ds_path,
        )
    from musclestate.dataset import open_dataset

    with open_dataset(ds_path) as ds:
        has_roi = ds.has_derived("roi")
        group = ds.derived("roi") if has_roi else None
        try:
            examples, missing = _examples(res, ds, group, n)
        finally:
            if group is not None:
                group.close()
    notes = []
    if not has_roi:
        notes.append(f"dataset {ds_path} has no ROI results (derived group 'roi'); frames only")
    if missing:
        notes.append(f"recording(s) {missing} of the predictions are not in dataset {ds_path}")
    if notes:
        log.warning("; ".join(notes))
    return examples, "; ".join(notes)
