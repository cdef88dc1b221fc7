"""Muscle architecture a lab can publish: aponeuroses, thickness, fascicle angle, pennation.

- :func:`measure_image` -> :class:`ImageArchitecture` (one image, its aponeurosis probability);
- :func:`measure_architecture` / :func:`measure_frames` (``musclestate architecture measure``):
  the per-frame table of a video, DICOM, image or image folder;
- :func:`evaluate_architecture` (``musclestate architecture evaluate``): against human observers.

Names load lazily so that ``import musclestate.architecture`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "ArchitectureConfig": "musclestate.architecture.measure",
    "ImageArchitecture": "musclestate.architecture.measure",
    "measure_image": "musclestate.architecture.measure",
    "evaluate_architecture": "musclestate.architecture.evaluate",
    "measure_architecture": "musclestate.architecture.frames",
    "measure_frames": "musclestate.architecture.frames",
    "FrameSettings": "musclestate.architecture.frames",
    "kalman_smooth": "musclestate.architecture.frames",
    "read_labels": "musclestate.architecture.evaluate",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'musclestate.architecture' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
