"""The per-frame predictions file of a held-out participant: its one writer and its one reader.

``RUN/folds/fold_XX/predictions/<PID>.csv`` and ``RUN/predictions/<PID>.csv`` hold one row per
held-out frame::

    recording, task, frame, t_s,
    NAME, NAME_sd, NAME_true            per target (the shipped estimator, ``cnn``)
    NAME_<model>                        per target and per other model (``mean_predictor``,
                                        ``feature_baseline``, and ``cnn_image_only`` beside a
                                        fused estimator)

``task`` is the trial type of the frame's recording (``tracking``, ``mvc``, ``passive_rom``, or
empty where the import did not say); files written before it existed are read with an empty
task. Metrics are computed from these files alone (``musclestate cv collect``), and so is the
report.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from musclestate._atomic import write_text_atomic
from musclestate.errors import InputError

if TYPE_CHECKING:
    from musclestate.training.data import ExampleSet

#: Models whose predictions sit beside the shipped estimator's, as ``NAME_<model>`` columns.
OTHER_MODELS: tuple[str, ...] = ("mean_predictor", "feature_baseline", "cnn_image_only")


@dataclass(frozen=True)
class ParticipantPredictions:
    """Per-frame predictions for one held-out participant.

    Attributes:
        participant: participant id (the CSV's stem).
        recording: ``(N,)`` recording id of each row (str).
        task: ``(N,)`` trial type of each row's recording (str, ``""`` = not given).
        frame: ``(N,)`` int frame index within its recording.
        t_s: ``(N,)`` float64 frame time in seconds (recording clock).
        mean: target name -> ``(N,)`` float64 predicted value.
        sd: target name -> ``(N,)`` float64 predicted standard deviation (NaN where absent).
        true: target name -> ``(N,)`` float64 measured value.
        baselines: model key (see :data:`OTHER_MODELS`) -> target name -> ``(N,)`` float64
            prediction, for the models whose ``NAME_<model>`` columns exist for every target.
    """

    participant: str
    recording: np.ndarray
    frame: np.ndarray
    t_s: np.ndarray
    mean: Mapping[str, np.ndarray]
    sd: Mapping[str, np.ndarray]
    true: Mapping[str, np.ndarray]
    baselines: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)
    task: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.frame.shape[0])

    def recordings(self) -> list[str]:
        """Recording ids in order of first appearance."""
        seen: dict[str, None] = {}
        for r in self.recording.tolist():
            seen.setdefault(r, None)
        return list(seen)

    def model(self, name: str) -> Mapping[str, np.ndarray]:
        """Target name -> ``(N,)`` predictions of model ``name`` (``"cnn"`` or a baseline key)."""
        if name == "cnn":
            return self.mean
        if name not in self.baselines:
            raise KeyError(f"{self.participant}: no predictions of model {name!r}")
        return self.baselines[name]

    def tasks(self) -> np.ndarray:
        """``(N,)`` trial type of each row (``""`` where the file does not say)."""
        return np.full(self.n_frames, "", dtype=object) if self.task is None else self.task


def write_predictions_csv(
    path: Path,
    examples: ExampleSet,
    rows: np.ndarray,
    cnn: tuple[np.ndarray, np.ndarray],
    baselines: Mapping[str, np.ndarray],
) -> Path:
    """Write one participant's per-frame predictions (columns as in the module docstring).

    Args:
        examples: the test examples; ``rows`` selects this participant's.
        cnn: ``(mean, sd)`` each ``(M, n_targets)`` over all test examples.
        baselines: model name -> ``(M, n_targets)`` predictions.
    """
    names = examples.target_names
    header = ["recording", "task", "frame", "t_s"]
    for n in names:
        header += [n, f"{n}_sd", f"{n}_true"]
    for model in baselines:
        header += [f"{n}_{model}" for n in names]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    mean, sd = cnn
    tasks = examples.task
    for i in rows:
        task = "" if tasks is None else str(tasks[i])
        row: list[Any] = [
            examples.recording[i], task, int(examples.frame[i]), f"{examples.t_s[i]:.6f}"
        ]  # fmt: skip
        for j in range(len(names)):
            row += [f"{mean[i, j]:.6g}", f"{sd[i, j]:.6g}", f"{examples.targets[i, j]:.6g}"]
        for pred in baselines.values():
            row += [f"{pred[i, j]:.6g}" for j in range(len(names))]
        w.writerow(row)
    return write_text_atomic(path, buf.getvalue())


def _float(cell: str) -> float:
    return float(cell) if cell.strip() not in ("", "nan", "NaN") else math.nan


def read_predictions(
    path: str | Path, targets: Sequence[str], *, allow_empty: bool = False
) -> ParticipantPredictions | None:
    """Read one predictions file.

    ``NAME`` and ``NAME_true`` columns are required for every target; a missing ``NAME_sd``
    column gives NaN (a model without spread). Predictions ``NAME_<model>`` (model in
    :data:`OTHER_MODELS`) are read where every target has them.

    Args:
        path: the CSV file.
        targets: target names to read.
        allow_empty: return ``None`` for a file with a header and no rows (a participant in
            whom no frame had a muscle found) instead of raising.

    Raises:
        InputError: unreadable file, missing columns, no rows, non-numeric values; the message
            names the file.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read predictions: {exc}", path) from exc
    if header is None:
        raise InputError("predictions file is empty (no header row)", path)
    col = {name.strip(): i for i, name in enumerate(header)}
    need = ["recording", "frame", "t_s"] + [c for t in targets for c in (t, f"{t}_true")]
    missing = [c for c in need if c not in col]
    if missing:
        raise InputError(
            f"predictions lack column(s) {missing}; found {list(col)}. Expected "
            "recording, task, frame, t_s and NAME, NAME_sd, NAME_true per target",
            path,
        )
    if not rows:
        if allow_empty:
            return None
        raise InputError("predictions file has a header but no rows", path)
    try:
        cols = list(zip(*rows, strict=True))
    except ValueError as exc:
        raise InputError(f"ragged CSV rows: {exc}", path) from exc

    def num(name: str) -> np.ndarray:
        return np.array([_float(c) for c in cols[col[name]]], dtype=np.float64)

    try:
        mean = {t: num(t) for t in targets}
        true = {t: num(f"{t}_true") for t in targets}
        sd = {
            t: num(f"{t}_sd") if f"{t}_sd" in col else np.full(len(rows), np.nan) for t in targets
        }
        baselines = {
            m: {t: num(f"{t}_{m}") for t in targets}
            for m in OTHER_MODELS
            if all(f"{t}_{m}" in col for t in targets)
        }
        frame = np.array([int(float(c)) for c in cols[col["frame"]]], dtype=np.int64)
        t_s = num("t_s")
    except ValueError as exc:
        raise InputError(f"non-numeric value in predictions: {exc}", path) from exc
    task = np.array(cols[col["task"]], dtype=object) if "task" in col else None
    return ParticipantPredictions(
        participant=path.stem,
        recording=np.array(cols[col["recording"]], dtype=str),
        frame=frame,
        t_s=t_s,
        mean=mean,
        sd=sd,
        true=true,
        baselines=baselines,
        task=task,
    )
