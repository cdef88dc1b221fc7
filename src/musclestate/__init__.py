"""musclestate: muscle activation, ankle angle and ankle moment from B-mode ultrasound.

The public API is the names below (``_API``); every command of the ``musclestate`` command line
is a call of one of them with the same options. Heavy modules (torch, PyAV) load only when used.

After Cunningham & Loram (2019), "Estimation of absolute states of human skeletal muscle via
standard B-mode ultrasound imaging and deep convolutional neural networks", arXiv:1907.01649.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it; resolved lazily on first attribute access (PEP 562).
_API: dict[str, str] = {
    "Recording": "musclestate.records",
    "RecordingMeta": "musclestate.records",
    "Signal": "musclestate.records",
    "Target": "musclestate.records",
    "TARGET_UNITS": "musclestate.records",
    "MusclestateError": "musclestate.errors",
    "ProgressEvent": "musclestate.progress",
    "probe": "musclestate.io",
    "read_recording": "musclestate.io",
    "read_signals": "musclestate.io.signals",
    "write_video": "musclestate.io.video",
    "import_manifest": "musclestate.dataset",
    "write_dataset": "musclestate.dataset",
    "open_dataset": "musclestate.dataset",
    "load_predictor": "musclestate.inference",
    "predict": "musclestate.inference.batch",
    "stream": "musclestate.inference.stream",
    "export_onnx": "musclestate.inference.export",
    "calibrate": "musclestate.inference.calibrate",
    "load_profile": "musclestate.calibration",
    "simulate_cohort": "musclestate.phantom",
    "sample_labelled_frames": "musclestate.phantom",
    "audit_cohort": "musclestate.phantom",
    "TrainConfig": "musclestate.training.config",
    "run_cv": "musclestate.training.cv",
    "collect": "musclestate.training.cv",
    "train_bundle": "musclestate.training.cv",
    "load_bundle": "musclestate.models.bundle",
    "load_segmenter": "musclestate.roi.segment",
    "apply_roi": "musclestate.roi.pipeline",
    "show_roi": "musclestate.roi.show",
    "evaluate_segmenter": "musclestate.roi.evaluate",
    "train_segmenter": "musclestate.training.segmenter",
    "SegmenterTrainConfig": "musclestate.training.segmenter",
    "ROIConfig": "musclestate.roi.pipeline",
    "evaluate_architecture": "musclestate.architecture.evaluate",
    "measure_image": "musclestate.architecture.measure",
    "measure_architecture": "musclestate.architecture.frames",
    "write_report": "musclestate.report",
    "run_demo": "musclestate.demo",
    "DemoConfig": "musclestate.demo",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'musclestate' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
