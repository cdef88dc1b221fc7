"""Datasets: many recordings with per-frame targets in one chunked store, and their splits.

- :func:`import_manifest`: a lab's TOML manifest -> dataset folder (``musclestate import``);
- :func:`write_dataset`: any iterable of :class:`~musclestate.records.Recording` -> dataset folder;
- :func:`open_dataset`: read frames, frame times, targets and derived arrays back;
- :func:`write_derived`: later stages (ROI) add per-recording arrays;
- :mod:`musclestate.dataset.splits`: participant-grouped folds only.
"""

from __future__ import annotations

from musclestate.dataset.manifest import ImportManifest, import_manifest, read_manifest
from musclestate.dataset.store import (
    Dataset,
    DerivedGroup,
    RecordingInfo,
    open_dataset,
    recording_id,
    write_dataset,
    write_derived,
)

__all__ = [
    "Dataset",
    "DerivedGroup",
    "ImportManifest",
    "RecordingInfo",
    "import_manifest",
    "open_dataset",
    "read_manifest",
    "recording_id",
    "write_dataset",
    "write_derived",
]
