"""Find the muscle: aponeurosis segmentation, geometry, MG/SOL patches, architecture measures.

- :func:`load_segmenter` -> :class:`Segmenter` (``predict(frames) -> probabilities``);
- :func:`fit_geometry` -> :class:`MuscleGeometry` (aponeurosis curves, MG and SOL regions);
- :func:`extract_patches` (MG/SOL patches, :class:`PatchConfig`), :class:`ManualROI` fallback;
- :func:`measure` (thickness, aponeurosis angles, fascicle orientation, pennation, echo);
- :func:`process_frames` / :func:`apply_roi` (a recording / a whole dataset, :class:`ROIConfig`);
- :func:`show_roi` (``musclestate roi show``);
- :func:`evaluate_segmenter` (``musclestate roi evaluate``; training of the segmenter is
  :func:`musclestate.training.segmenter.train_segmenter`, ``musclestate roi train``).

Names load lazily so that ``import musclestate.roi`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "Segmenter": "musclestate.roi.segment",
    "load_segmenter": "musclestate.roi.segment",
    "GeometryConfig": "musclestate.roi.geometry",
    "MuscleGeometry": "musclestate.roi.geometry",
    "fit_geometry": "musclestate.roi.geometry",
    "smooth_geometries": "musclestate.roi.geometry",
    "PatchConfig": "musclestate.roi.patches",
    "ManualROI": "musclestate.roi.patches",
    "extract_patches": "musclestate.roi.patches",
    "FEATURE_NAMES": "musclestate.roi.architecture",
    "measure": "musclestate.roi.architecture",
    "ROIConfig": "musclestate.roi.pipeline",
    "ROIResult": "musclestate.roi.pipeline",
    "process_frames": "musclestate.roi.pipeline",
    "apply_roi": "musclestate.roi.pipeline",
    "overlay": "musclestate.roi.pipeline",
    "evaluate": "musclestate.roi.evaluate",
    "evaluate_segmenter": "musclestate.roi.evaluate",
    "show_roi": "musclestate.roi.show",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'musclestate.roi' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
