"""Estimation in use: predict on recordings, stream live, export to ONNX.

The API a lab's acquisition software calls::

    from musclestate.inference import load_predictor
    predictor = load_predictor("bundle_dir")    # ONNX Runtime; PredictorConfig(backend="torch")
    est = predictor.step(frame, t_s=t, pixel_spacing_mm=(0.2, 0.2))   # (H, W) uint8 -> one row
    est.mean["ankle_angle"][0], est.sd["ankle_angle"][0], est.roi_found[0]

Offline: ``predictor.run(open_source("clip.mp4")).estimates``; live with bounded latency:
:func:`run_stream`; ONNX: :func:`export_onnx`.
"""

from __future__ import annotations

from musclestate.inference.loader import load_predictor
from musclestate.inference.outputs import Estimates, read_csv, write_csv, write_sidecar, write_xlsx
from musclestate.inference.predictor import Predictor, PredictorConfig
from musclestate.inference.sources import (
    ArraySource,
    Frame,
    FrameSource,
    LiveFeed,
    ReplaySource,
    dataset_sources,
    open_source,
)
from musclestate.inference.stream import StreamConfig, StreamReport, run_stream


def export_onnx(*args, **kwargs):
    """See :func:`musclestate.inference.export.export_onnx` (imported lazily: loads torch)."""
    from musclestate.inference.export import export_onnx as _export

    return _export(*args, **kwargs)


__all__ = [
    "ArraySource",
    "Estimates",
    "Frame",
    "FrameSource",
    "LiveFeed",
    "Predictor",
    "PredictorConfig",
    "ReplaySource",
    "StreamConfig",
    "StreamReport",
    "dataset_sources",
    "export_onnx",
    "load_predictor",
    "open_source",
    "read_csv",
    "run_stream",
    "write_csv",
    "write_sidecar",
    "write_xlsx",
]
