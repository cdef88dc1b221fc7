"""Per-frame estimate tables and the files they are written to: CSV, XLSX and a JSON sidecar.

The table's columns, in order: ``frame`` (0-based index of the frame in the input), ``t_s``, then
for every target NAME of the bundle ``NAME`` and ``NAME_sd`` (predictive standard deviation, same
unit), then the quality flags ``roi_found`` and ``out_of_range`` (0/1), then the architecture
measures. Units of every column are in the sidecar ``OUT.csv.json``, together with what produced
the table (bundle and its SHA-256, package version, input and its SHA-256, crop, spacing,
settings), so that a number in a paper can be traced back and recomputed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musclestate._atomic import atomic_file, write_json_atomic
from musclestate.errors import InputError


@dataclass(frozen=True)
class Estimates:
    """Estimates for ``N`` frames of one input.

    Attributes:
        frame: ``(N,)`` int64, 0-based index of each frame in its input.
        t_s: ``(N,)`` float64 frame times in seconds.
        mean: target name -> ``(N,)`` float64 estimate (unit in ``units``).
        sd: target name -> ``(N,)`` float64 predictive standard deviation (same unit).
        units: target name -> unit (``"deg"``, ``"N m"``, ``"%MVC"``).
        roi_found: ``(N,)`` bool, False where no muscle was found (estimates there are NaN).
        out_of_range: ``(N,)`` bool, True where the input lies outside the training data
            (architecture measures or estimates beyond the training range; see the predictor).
        features: architecture measure name -> ``(N,)`` float64 (NaN where no ROI).
        feature_units: measure name -> unit.
    """

    frame: np.ndarray
    t_s: np.ndarray
    mean: Mapping[str, np.ndarray]
    sd: Mapping[str, np.ndarray]
    units: Mapping[str, str]
    roi_found: np.ndarray
    out_of_range: np.ndarray
    features: Mapping[str, np.ndarray] = field(default_factory=dict)
    feature_units: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = int(np.asarray(self.frame).shape[0])
        arrays = {
            "t_s": self.t_s,
            "roi_found": self.roi_found,
            "out_of_range": self.out_of_range,
            **{f"{k} (mean)": v for k, v in self.mean.items()},
            **{f"{k} (sd)": v for k, v in self.sd.items()},
            **{f"{k} (feature)": v for k, v in self.features.items()},
        }
        for name, a in arrays.items():
            if np.asarray(a).shape != (n,):
                raise InputError(f"estimates: {name} has shape {np.shape(a)}, expected ({n},)")
        if set(self.mean) != set(self.sd) or set(self.mean) - set(self.units):
            raise InputError(
                f"estimates: targets differ between mean {sorted(self.mean)}, "
                f"sd {sorted(self.sd)} and units {sorted(self.units)}"
            )

    def __len__(self) -> int:
        return int(np.asarray(self.frame).shape[0])

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.mean)

    def columns(self) -> dict[str, np.ndarray]:
        """The table as ordered columns (see the module docstring)."""
        cols: dict[str, np.ndarray] = {
            "frame": np.asarray(self.frame, dtype=np.int64),
            "t_s": np.asarray(self.t_s, dtype=np.float64),
        }
        for name in self.mean:
            cols[name] = np.asarray(self.mean[name], dtype=np.float64)
            cols[f"{name}_sd"] = np.asarray(self.sd[name], dtype=np.float64)
        cols["roi_found"] = np.asarray(self.roi_found, dtype=np.int64)
        cols["out_of_range"] = np.asarray(self.out_of_range, dtype=np.int64)
        for name, v in self.features.items():
            cols[name] = np.asarray(v, dtype=np.float64)
        return cols

    def column_units(self) -> dict[str, str]:
        """Unit of every column (``""`` for counts and flags)."""
        u: dict[str, str] = {"frame": "", "t_s": "s"}
        for name in self.mean:
            u[name] = self.units[name]
            u[f"{name}_sd"] = self.units[name]
        u["roi_found"] = ""
        u["out_of_range"] = ""
        for name in self.features:
            u[name] = self.feature_units.get(name, "")
        return u

    @staticmethod
    def concat(parts: Sequence[Estimates]) -> Estimates:
        """Join consecutive runs of frames of one input (at least one part)."""
        if not parts:
            raise InputError("no estimates to join")
        p0 = parts[0]

        def cat(get):
            return np.concatenate([np.asarray(get(p)) for p in parts])

        return Estimates(
            frame=cat(lambda p: p.frame),
            t_s=cat(lambda p: p.t_s),
            mean={k: cat(lambda p, k=k: p.mean[k]) for k in p0.mean},
            sd={k: cat(lambda p, k=k: p.sd[k]) for k in p0.sd},
            units=dict(p0.units),
            roi_found=cat(lambda p: p.roi_found),
            out_of_range=cat(lambda p: p.out_of_range),
            features={k: cat(lambda p, k=k: p.features[k]) for k in p0.features},
            feature_units=dict(p0.feature_units),
        )


def format_cell(v: Any) -> str:
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    f = float(v)
    return "" if math.isnan(f) else repr(round(f, 6))


def write_csv(path: str | Path, est: Estimates) -> Path:
    """Write the table as CSV (comma-separated, header row, empty cell for NaN), atomically."""
    cols = est.columns()
    names = list(cols)
    with atomic_file(path, suffix=".csv") as tmp, tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for i in range(len(est)):
            w.writerow([format_cell(cols[c][i]) for c in names])
    return Path(path)


def read_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Read a table written by :func:`write_csv` back into float64 columns (NaN for empty)."""
    with Path(path).open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise InputError("empty CSV", path)
    header, body = rows[0], rows[1:]
    data = np.array([[float(c) if c != "" else np.nan for c in r] for r in body], dtype=float)
    data = data.reshape(len(body), len(header))
    return {h: data[:, j] for j, h in enumerate(header)}


def write_xlsx(path: str | Path, est: Estimates, provenance: Mapping[str, Any]) -> Path:
    """Write the same table to an Excel workbook (sheet ``estimates``; ``units`` and ``about``).

    The first sheet holds the table with units in the second header row; NaN cells stay empty.
    """
    from openpyxl import Workbook  # local: only this writer needs it

    wb = Workbook()
    ws = wb.active
    ws.title = "estimates"
    cols = est.columns()
    units = est.column_units()
    names = list(cols)
    ws.append(names)
    ws.append([units[n] for n in names])
    for i in range(len(est)):
        row = []
        for n in names:
            v = cols[n][i]
            if np.issubdtype(cols[n].dtype, np.integer):
                row.append(int(v))
            else:
                row.append(None if np.isnan(v) else float(v))
        ws.append(row)
    ws.freeze_panes = "A3"
    about = wb.create_sheet("about")
    for key, value in _flatten(provenance):
        about.append([key, value if isinstance(value, (int, float, str)) else json.dumps(value)])
    with atomic_file(path, suffix=".xlsx") as tmp:
        wb.save(tmp)
    return Path(path)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.extend(_flatten(v, key + "."))
        elif v is None:
            out.append((key, ""))
        else:
            out.append((key, v))
    return out


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file (hex); of a folder, over its files' relative names and contents."""
    p = Path(path)
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode())
        with f.open("rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def sidecar_path(path: str | Path) -> Path:
    """``OUT.csv`` -> ``OUT.csv.json``."""
    p = Path(path)
    return p.with_name(p.name + ".json")


def write_sidecar(path: str | Path, est: Estimates, provenance: Mapping[str, Any]) -> Path:
    """Write ``PATH.json`` beside an output: column units, frame count and ``provenance``."""
    doc = {
        "columns": est.column_units(),
        "n_frames": len(est),
        "frames_with_roi": int(np.count_nonzero(est.roi_found)),
        "frames_out_of_range": int(np.count_nonzero(est.out_of_range)),
        **provenance,
    }
    return write_json_atomic(sidecar_path(path), doc)
