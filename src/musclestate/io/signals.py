"""Lab signals (EMG, dynamometer angle and moment, sync triggers) from CSV, MATLAB and C3D files.

:func:`read_signals` returns named, unit-carrying :class:`~musclestate.records.Signal` time
series, whatever the file type:

- **CSV** (``,``, ``;`` or tab separated, one header row): a time column named ``time``,
  ``time_s``, ``t`` or ``t_s`` (any case; or ``time_column=``) plus one column per channel.
  Header cells may carry units as ``name [unit]``, or a second row may hold the units (a row
  with no number in it); a time column in ``ms`` or ``us`` is converted to seconds. Lines
  starting with ``#`` (instrument preambles, comments) and blank lines are skipped; error
  messages give the line number in the file. With ``;`` or tab separators a decimal comma
  (``0,5``) is read as a decimal point, as those locales write it. Without a time column, pass
  ``rate_hz=`` (samples start at 0 s).
- **MATLAB .mat**: v4-v7 through :func:`scipy.io.loadmat`, v7.3 (HDF5) through h5py. Choose the
  struct holding the channels with ``mat_group="a.b.c"`` (e.g. the Drazan et al. 2019
  ``push_data.mat``: ``mat_group="clips.p6_isokinetic030_01.push_01"``). In that struct a time
  field (names as for CSV) gives the clock; every numeric vector of the same length is a channel;
  a matrix gives one channel per row or column, ``name_0 .. name_{k-1}``, oriented by the axis
  whose length matches the time vector (``(N, k)`` samples x channels and ``(k, N)`` channels x
  samples both work; a square one is refused). MATLAB carries no units: give them with
  ``units=``. Vectors of another length (e.g. ``frameInds``, one sample index per video
  frame) are returned only when named in ``channels``, as a Signal over their own element
  number (``t_s = 0, 1, 2, ...``, unit ``"index"``).
- **C3D** analog channels through ezc3d, with labels, units and rate from the ANALOG parameters,
  times counted from the capture start (0 s at frame 1). ezc3d (C++) can loop forever or crash
  on a damaged file, so the header is checked here first and ezc3d runs in a separate
  interpreter with a time limit.

:func:`read_signal_file` also returns what the reader corrected or set aside (decimal comma,
preamble lines, units row, matrix orientation, arrays that are not channels); ``probe`` shows
it and ``import`` keeps it in the recording's provenance. Every failure raises
:class:`~musclestate.errors.SignalError` naming the file.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import struct
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.errors import InputError, SignalError
from musclestate.io.formats import SIGNAL_SUFFIXES
from musclestate.records import Signal, check_times

log = logging.getLogger(__name__)

#: Column/field names taken as the time axis when ``time_column`` is not given (any case).
TIME_NAMES = ("time", "time_s", "t", "t_s")
_DECIMAL_COMMA = re.compile(r"(?<![\d.,])-?\d+,\d+(?:[eE][-+]?\d+)?(?![\d.,])")

_TIME_SCALE = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}
_HEADER_UNIT = re.compile(r"^(?P<name>.*?)\s*\[(?P<unit>[^\[\]]*)\]\s*$")
#: Seconds allowed for ezc3d to read one C3D file before it is judged stuck.
C3D_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SignalFile:
    """The signals of one file and what the reader noted about it.

    Attributes:
        signals: ``{name: Signal}``.
        notes: JSON-ready corrections and set-asides, e.g. ``{"decimal": ",",
            "preamble_lines": 3, "units_row_line": 2, "matrices": {...}, "not_channels": {...}}``
            (empty when the file needed none).
    """

    signals: dict[str, Signal]
    notes: dict[str, Any] = field(default_factory=dict)


def read_signals(
    path: str | Path,
    *,
    channels: Sequence[str] | None = None,
    units: Mapping[str, str] | None = None,
    time_column: str | None = None,
    mat_group: str | None = None,
    rate_hz: float | None = None,
) -> dict[str, Signal]:
    """The signals of :func:`read_signal_file` (same arguments and errors), without the notes."""
    return read_signal_file(
        path,
        channels=channels,
        units=units,
        time_column=time_column,
        mat_group=mat_group,
        rate_hz=rate_hz,
    ).signals


def read_signal_file(
    path: str | Path,
    *,
    channels: Sequence[str] | None = None,
    units: Mapping[str, str] | None = None,
    time_column: str | None = None,
    mat_group: str | None = None,
    rate_hz: float | None = None,
) -> SignalFile:
    """Read the signals in a CSV, MATLAB .mat or C3D file, with the reader's notes.

    Args:
        path: the file; the reader is chosen by suffix (``.csv``/``.txt``/``.tsv``, ``.mat``,
            ``.c3d``).
        channels: names to return, in this order; default all. An unknown name raises a
            :class:`SignalError` listing the available ones.
        units: channel name -> unit, overriding or supplying the file's units (e.g.
            ``{"TOR": "N m", "POS": "deg"}``). Channels without a unit get ``""``.
        time_column: name of the time column/field (seconds unless its header says ``[ms]``).
        mat_group: dotted (or ``/``-separated) path of the struct in a .mat file.
        rate_hz: sampling rate for a CSV or .mat group without a time column.

    Returns:
        :class:`SignalFile`: ``signals`` ``{name: Signal}`` with ``t_s`` in seconds, strictly
        increasing, and finite values; ``notes`` what the reader corrected or set aside.

    Raises:
        SignalError: missing/unreadable file, unknown suffix, no time axis, unknown channel,
            NaN/inf samples (count and first position), non-monotonic or duplicate times.
    """
    path = Path(path)
    if not path.exists():
        raise SignalError("signal file not found; check the path", path)
    if path.is_dir():
        raise SignalError("is a folder, not a signal file", path)
    if rate_hz is not None and not (np.isfinite(rate_hz) and rate_hz > 0):
        raise SignalError(f"rate_hz must be a positive number, got {rate_hz!r}", path)
    suffix = path.suffix.lower()
    notes: dict[str, Any] = {}
    if suffix in (".csv", ".txt", ".tsv"):
        columns, file_units, t_s = _read_csv(path, time_column, rate_hz, notes)
    elif suffix == ".mat":
        from musclestate.io._mat import read_mat

        columns, file_units, t_s = read_mat(path, mat_group, time_column, rate_hz, channels, notes)
    elif suffix == ".c3d":
        if mat_group is not None or time_column is not None:
            raise SignalError("mat_group and time_column do not apply to C3D files", path)
        columns, file_units, t_s = _read_c3d(path)
    else:
        raise SignalError(
            f"unknown signal file type {suffix!r}; expected one of {', '.join(SIGNAL_SUFFIXES)}",
            path,
        )
    return SignalFile(_select(path, columns, file_units, t_s, channels, units), notes)


def _select(
    path: Path,
    columns: dict[str, np.ndarray],
    file_units: dict[str, str],
    t_s: np.ndarray,
    channels: Sequence[str] | None,
    units: Mapping[str, str] | None,
) -> dict[str, Signal]:
    """Pick the requested channels, apply units and build the Signal records."""
    if isinstance(channels, str):
        channels = [channels]
    available = list(columns)
    if not available:
        raise SignalError("holds a time axis but no channels", path)
    wanted = list(available if channels is None else channels)
    unknown = [c for c in wanted if c not in columns]
    if unknown:
        raise SignalError(
            f"unknown channel(s) {', '.join(map(repr, unknown))}; available: "
            f"{', '.join(available)}",
            path,
        )
    units = dict(units or {})
    bad_units = [c for c in units if c not in columns]
    if bad_units:
        raise SignalError(
            f"units given for unknown channel(s) {', '.join(map(repr, bad_units))}; available: "
            f"{', '.join(available)}",
            path,
        )
    out: dict[str, Signal] = {}
    for name in wanted:
        values = columns[name]
        unit = units.get(name, file_units.get(name, ""))
        times = t_s if values.shape == t_s.shape else np.arange(values.size, dtype=np.float64)
        out[name] = Signal(name=name, t_s=times, values=values, unit=unit, source=str(path))
    return out


def time_key(names: Sequence[str], time_column: str | None, path: Path) -> str | None:
    """The time column among ``names``: ``time_column`` if given, else one of TIME_NAMES."""
    if time_column is not None:
        if time_column not in names:
            raise SignalError(
                f"time column {time_column!r} not found; available: {', '.join(names)}", path
            )
        return time_column
    hits = [n for n in names if n.strip().lower() in TIME_NAMES]
    if len(hits) > 1:
        raise SignalError(
            f"several time columns ({', '.join(hits)}); choose one with time_column=", path
        )
    return hits[0] if hits else None


def time_axis(
    t_raw: np.ndarray | None, unit: str, n: int, rate_hz: float | None, what: str, path: Path
) -> np.ndarray:
    """Seconds from a time column (with its unit) or from ``rate_hz``."""
    if t_raw is None:
        if rate_hz is None:
            raise SignalError(
                f"{what} has no time column (named one of {', '.join(TIME_NAMES)}); name it "
                "with time_column= or give the sampling rate with rate_hz=",
                path,
            )
        return np.arange(n, dtype=np.float64) / float(rate_hz)
    scale = _TIME_SCALE.get(unit.strip().lower())
    if scale is None:
        raise SignalError(f"time unit {unit!r} not understood; use s, ms or us in the header", path)
    return check_times(np.asarray(t_raw, dtype=np.float64) * scale, f"{what} time", str(path))


# ---- CSV -------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SignalError(f"cannot read ({exc.strerror})", path) from None
    if b"\x00" in raw[:4096]:
        raise SignalError("is binary, not a text CSV file", path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return raw.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            raise SignalError("is not a text file", path) from None


def _delimiter(header: str) -> str | None:
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else None


def _read_csv(
    path: Path, time_column: str | None, rate_hz: float | None, notes: dict[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, str], np.ndarray]:
    text = _read_text(path)
    # (1-based line number in the file, text) of every line that is not blank or a # comment.
    lines = [
        (i + 1, ln)
        for i, ln in enumerate(text.splitlines())
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    if not lines:
        raise SignalError("is empty; expected a header row and data rows", path)
    header_no, header_line = lines[0]
    if header_no > 1:
        notes["preamble_lines"] = header_no - 1
        notes["header_line"] = header_no
    delim = _delimiter(header_line)
    header = next(csv.reader([header_line], delimiter=delim)) if delim else header_line.split()
    names: list[str] = []
    file_units: dict[str, str] = {}
    for k, cell in enumerate(header):
        m = _HEADER_UNIT.match(cell.strip())
        name = (m.group("name") if m else cell).strip()
        if not name:
            raise SignalError(
                f"header cell {k + 1} is empty (line {header_no}); every column needs a name", path
            )
        if name in file_units:
            raise SignalError(f"column name {name!r} appears twice in the header", path)
        names.append(name)
        file_units[name] = m.group("unit").strip() if m else ""
    body = lines[1:]
    decimal = "."
    if delim != "," and any(_DECIMAL_COMMA.search(ln) for _, ln in body[:200]):
        decimal = ","
        notes["decimal"] = ","
        notes["delimiter"] = "tab" if delim == "\t" else (delim or "whitespace")
    if body:
        units_row = _units_row(body[0][1], delim, decimal, len(names))
        if units_row is not None:
            notes["units_row_line"] = body[0][0]
            for name, unit in zip(names, units_row, strict=True):
                if not file_units[name]:
                    file_units[name] = unit
            body = body[1:]
    data = _parse_rows(body, delim, decimal, names, header_no, path)
    if data.shape[0] == 0:
        raise SignalError("has a header but no data rows", path)
    tkey = time_key(names, time_column, path)
    cols = {n: data[:, j] for j, n in enumerate(names)}
    t_raw = cols.pop(tkey) if tkey is not None else None
    t_unit = file_units.pop(tkey, "") if tkey is not None else ""
    t_s = time_axis(t_raw, t_unit, data.shape[0], rate_hz, "CSV", path)
    return cols, file_units, t_s


def _cells(line: str, delim: str | None) -> list[str]:
    return next(csv.reader([line], delimiter=delim)) if delim else line.split()


def _is_number(cell: str, decimal: str) -> bool:
    try:
        float(cell.replace(",", ".") if decimal == "," else cell)
    except ValueError:
        return False
    return True


def _units_row(line: str, delim: str | None, decimal: str, n_cols: int) -> list[str] | None:
    """The cells of a units row (no cell a number, as many cells as columns), else ``None``."""
    cells = [c.strip() for c in _cells(line, delim)]
    if len(cells) != n_cols or any(_is_number(c, decimal) for c in cells if c):
        return None
    if not any(cells):
        return None
    return [c[1:-1].strip() if c.startswith(("[", "(")) and len(c) > 1 else c for c in cells]


def _header_hint(header_no: int, names: list[str]) -> str:
    return (
        f"; the header was taken from line {header_no} ({', '.join(names)}): if lines before "
        "the header are a preamble, start them with # so they are skipped"
    )


def _parse_rows(
    rows: list[tuple[int, str]],
    delim: str | None,
    decimal: str,
    names: list[str],
    header_no: int,
    path: Path,
) -> np.ndarray:
    """Rows of numbers -> ``(N, n_cols)`` float64; empty cells become NaN (reported later).

    ``rows`` are ``(line number in the file, text)``. Fast path: numpy's C parser. On failure,
    a slow pass finds the offending line and column.
    """
    n_cols = len(names)
    if not rows:
        return np.zeros((0, n_cols))
    texts = [ln.replace(",", ".") if decimal == "," else ln for _, ln in rows]
    try:
        data = np.loadtxt(io.StringIO("\n".join(texts)), delimiter=delim, ndmin=2, dtype=np.float64)
        if data.shape == (len(rows), n_cols):
            return data
    except ValueError:
        pass
    out = np.empty((len(rows), n_cols), dtype=np.float64)
    for i, (line_no, text) in enumerate(rows):
        cells = _cells(text, delim)
        if len(cells) != n_cols:
            hint = ""
            pieces = [c.strip().lstrip("-") for c in cells]
            if delim == "," and len(cells) > n_cols and all(p.isdigit() for p in pieces):
                hint = (
                    "; the numbers look like they use decimal commas, which cannot be told apart "
                    "from ',' separators: export with ';' between fields"
                )
            elif header_no > 1 or len(cells) > n_cols:
                hint = _header_hint(header_no, names)
            raise SignalError(
                f"line {line_no} has {len(cells)} cells but the header names {n_cols} columns"
                + hint,
                path,
            )
        for j, cell in enumerate(cells):
            c = cell.strip()
            try:
                out[i, j] = float(c.replace(",", ".") if decimal == "," else c) if c else np.nan
            except ValueError:
                hint = ""
                if _DECIMAL_COMMA.fullmatch(c):
                    hint = "; a decimal comma inside a ',' separated file: export with ';'"
                elif i == 0:
                    hint = _header_hint(header_no, names)
                raise SignalError(
                    f"line {line_no}, column {j + 1}: {c[:40]!r} is not a number (column "
                    f"{names[j]!r}){hint}",
                    path,
                ) from None
    return out


# ---- C3D -------------------------------------------------------------------------------------


def check_c3d_header(path: Path) -> None:
    """Check a C3D file's header and section sizes against its length, reading no data.

    Catches truncated and non-C3D files before ezc3d, which can loop forever on them.
    Layout from the C3D user guide (c3d.org): word 1 = parameter block and key 0x50; words 2-5
    = points, analog values per frame, first and last frame; words 7-8 = scale (float, < 0 for
    float data); word 9 = first data block. The processor type byte of the parameter section
    (84 Intel, 85 DEC, 86 MIPS) gives the byte order.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(512)
            if len(head) < 512 or head[1] != 0x50 or head[0] < 2:
                raise SignalError("is not a C3D file (no C3D header)", path)
            fh.seek((head[0] - 1) * 512)
            phead = fh.read(4)
    except OSError as exc:
        raise SignalError(f"cannot read ({exc.strerror})", path) from None
    if len(phead) < 4 or phead[3] not in (84, 85, 86):
        raise SignalError("C3D parameter section is missing; the file is truncated", path)
    endian = ">" if phead[3] == 86 else "<"
    n_points, n_analog, first, last = struct.unpack(endian + "4H", head[2:10])
    (scale,) = struct.unpack(endian + "f", head[12:16])
    (data_start,) = struct.unpack(endian + "H", head[16:18])
    param_end = (head[0] - 1) * 512 + max(phead[2], 1) * 512
    if data_start <= head[0] or param_end > size:
        raise SignalError(
            f"C3D parameter section ends at byte {param_end} but the file has {size} bytes; "
            "the file is truncated or corrupt",
            path,
        )
    if last >= first > 0:
        per_value = 4 if scale < 0 else 2
        need = (data_start - 1) * 512 + (last - first + 1) * (4 * n_points + n_analog) * per_value
        if size < need:
            raise SignalError(
                f"C3D header promises {last - first + 1} frames ending at byte {need} but the "
                f"file has {size} bytes; it is truncated",
                path,
            )


def _read_c3d(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str], np.ndarray]:
    check_c3d_header(path)
    with tempfile.TemporaryDirectory(prefix="musclestate-c3d-") as tmp:
        out = Path(tmp) / "analogs.npz"
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "musclestate.io._c3d", str(path), str(out)],
                capture_output=True,
                timeout=C3D_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SignalError(
                f"ezc3d did not finish reading within {C3D_TIMEOUT_S:.0f} s; the file is "
                "probably corrupt",
                path,
            ) from None
        if proc.returncode != 0 or not out.exists():
            why = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            last = why[-1] if why else f"exit status {proc.returncode}"
            raise SignalError(f"cannot read as C3D ({last[:200]})", path)
        with np.load(out, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            analogs = np.asarray(z["analogs"], dtype=np.float64)
    labels: list[str] = meta["labels"]
    rate = float(meta["rate_hz"])
    if analogs.shape[0] == 0 or analogs.shape[1] == 0:
        raise SignalError("C3D file holds no analog channels", path)
    if not np.isfinite(rate) or rate <= 0:
        raise SignalError(f"C3D analog rate {rate!r} is not a positive number", path)
    if len(set(labels)) != len(labels) or len(labels) != analogs.shape[0]:
        labels = [f"{lab}_{k}" if labels.count(lab) > 1 else lab for k, lab in enumerate(labels)]
        labels += [f"analog_{k}" for k in range(len(labels), analogs.shape[0])]
    unit_list: list[str] = meta["units"] + [""] * analogs.shape[0]
    t_s = float(meta["t0_s"]) + np.arange(analogs.shape[1], dtype=np.float64) / rate
    cols = {lab: analogs[k] for k, lab in enumerate(labels)}
    units = {lab: unit_list[k] for k, lab in enumerate(labels)}
    return cols, units, t_s


def signal_table(signals: Mapping[str, Signal]) -> list[dict[str, Any]]:
    """One row per signal (name, unit, samples, rate, start, end): for logs and ``inspect``."""
    if not isinstance(signals, Mapping):
        raise InputError("expected a mapping of name -> Signal")
    return [
        {
            "name": s.name,
            "unit": s.unit,
            "samples": len(s),
            "rate_hz": s.rate_hz,
            "t_start_s": float(s.t_s[0]) if len(s) else float("nan"),
            "t_end_s": float(s.t_s[-1]) if len(s) else float("nan"),
        }
        for s in signals.values()
    ]
