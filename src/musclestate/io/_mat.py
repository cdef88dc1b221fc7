"""MATLAB .mat files for :func:`musclestate.io.signals.read_signals`: v4-v7 through scipy.io,
v7.3 (HDF5) through h5py; a struct's vectors and matrices become channels on its time axis."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.errors import SignalError
from musclestate.io.signals import time_axis, time_key

log = logging.getLogger(__name__)


def _is_hdf5(path: Path) -> bool:
    # MATLAB v7.3 files are HDF5 with a 512-byte user block: the signature sits at 0 or 512.
    sig = b"\x89HDF\r\n\x1a\n"
    try:
        with path.open("rb") as fh:
            head = fh.read(520)
    except OSError:
        return False
    return head[:8] == sig or head[512:520] == sig


def read_mat(
    path: Path,
    mat_group: str | None,
    time_column: str | None,
    rate_hz: float | None,
    channels: Sequence[str] | None,
    notes: dict[str, Any],
) -> tuple[dict[str, np.ndarray], dict[str, str], np.ndarray]:
    keys = [k for k in re.split(r"[./]", mat_group) if k] if mat_group else []
    tree = _mat_v73_group(path, keys) if _is_hdf5(path) else _mat_v5_group(path, keys)
    where = f"group {mat_group!r}" if mat_group else "the top level"
    vectors: dict[str, np.ndarray] = {}
    matrices: dict[str, np.ndarray] = {}
    for name, value in tree.items():
        a = _numeric(value)
        if a is None:
            continue
        (vectors if a.ndim == 1 else matrices)[name] = a
    if not vectors and not matrices:
        groups = [k for k, v in tree.items() if isinstance(v, dict)]
        raise SignalError(
            f"{where} holds no numeric vectors"
            + (
                f"; it holds the groups {', '.join(groups)}: choose one with mat_group="
                if groups
                else ""
            ),
            path,
        )
    tkey = time_key(list(vectors), time_column, path)
    if time_column is not None and tkey not in vectors:  # pragma: no cover - _time_key checks
        raise SignalError(f"time field {time_column!r} is not a vector", path)
    t_raw = vectors.pop(tkey) if tkey is not None else None
    if t_raw is not None:
        n = t_raw.size
    elif vectors:
        n = _majority_length(vectors)
    else:  # only matrices: samples run along the longer axis
        n = max(max(m.shape) for m in matrices.values())
    arrays = dict(vectors)
    oriented: dict[str, str] = {}
    not_channels: dict[str, list[int]] = {}
    for name, m in matrices.items():
        rows, cols = m.shape
        if rows == n and cols == n:
            raise SignalError(
                f"{name} in {where} is a square {n} x {n} matrix: its channels cannot be told "
                "from its samples; save it as samples x channels, or as one vector per channel",
                path,
            )
        if rows == n:
            parts, oriented[name] = m.T, f"{cols} channels x {n} samples (one per column)"
        elif cols == n:
            parts, oriented[name] = m, f"{rows} channels x {n} samples (one per row)"
        else:
            not_channels[name] = [rows, cols]
            continue
        for j, part in enumerate(parts):
            arrays[f"{name}_{j}"] = np.ascontiguousarray(part)
    t_s = time_axis(t_raw, "s", n, rate_hz, f"MATLAB {where}", path)
    on_axis = {k: v for k, v in arrays.items() if v.size == n}
    off_axis = {k: v for k, v in arrays.items() if v.size != n}
    requested = set(channels or [])
    for name, value in off_axis.items():
        if name in requested:
            on_axis[name] = value
        else:
            not_channels[name] = [int(value.size)]
            log.info("%s: %s has %d elements, not %d: not a channel", path, name, value.size, n)
    if oriented:
        notes["matrices"] = oriented
    if not_channels:
        notes["not_channels"] = {
            k: f"{' x '.join(map(str, v))} elements, not on the {n}-sample time axis"
            for k, v in not_channels.items()
        }
    units = {k: "index" for k in off_axis if k in requested}
    if channels is not None:
        missing = [c for c in channels if c not in on_axis]
        if missing:
            aside = "".join(
                f"; {k} ({' x '.join(map(str, v))}) is not on the {n}-sample time axis"
                for k, v in not_channels.items()
            )
            raise SignalError(
                f"unknown channel(s) {', '.join(map(repr, missing))} in {where}; available: "
                f"{', '.join(list(on_axis) + sorted(off_axis))}{aside}",
                path,
            )
    return on_axis, units, t_s


def _majority_length(arrays: Mapping[str, np.ndarray]) -> int:
    sizes, counts = np.unique([a.size for a in arrays.values()], return_counts=True)
    return int(sizes[np.argmax(counts)])


def _numeric(value: Any) -> np.ndarray | None:
    """A numeric, non-scalar array as float64 with MATLAB's singleton dimensions removed."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf" or value.size < 2:
        return None
    a = np.squeeze(value)
    if a.ndim > 2:
        return None
    return a.astype(np.float64)


def _mat_v5_group(path: Path, keys: list[str]) -> dict[str, Any]:
    import scipy.io

    try:
        data = scipy.io.loadmat(path, simplify_cells=True)
    except NotImplementedError:
        raise SignalError("is a MATLAB v7.3 file without an HDF5 signature", path) from None
    except MemoryError:
        raise SignalError("claims sizes too large to load; the file is corrupt", path) from None
    except Exception as exc:  # scipy.io raises many types on damaged files; wrap them all
        raise SignalError(
            f"cannot read as a MATLAB file ({type(exc).__name__}: {str(exc)[:120]}); the file "
            "is corrupt, truncated or not a .mat file",
            path,
        ) from None
    node: Any = {k: v for k, v in data.items() if not k.startswith("__")}
    for depth, key in enumerate(keys):
        if isinstance(node, list | np.ndarray) and key.isdigit():
            seq = list(node)
            if int(key) >= len(seq):
                raise SignalError(f"index {key} out of range ({len(seq)} elements)", path)
            node = seq[int(key)]
            continue
        if not isinstance(node, dict) or key not in node:
            here = ".".join(keys[:depth]) or "top level"
            options = ", ".join(node) if isinstance(node, dict) else "(not a struct)"
            raise SignalError(f"no field {key!r} in {here}; available: {options}", path)
        node = node[key]
    if not isinstance(node, dict):
        raise SignalError(f"{'.'.join(keys) or 'top level'} is not a struct of channels", path)
    return node


def _mat_v73_group(path: Path, keys: list[str]) -> dict[str, Any]:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            node: Any = fh
            for depth, key in enumerate(keys):
                if not isinstance(node, h5py.Group) or key not in node:
                    here = "/".join(keys[:depth]) or "top level"
                    options = ", ".join(node) if isinstance(node, h5py.Group) else "(a dataset)"
                    raise SignalError(f"no field {key!r} in {here}; available: {options}", path)
                node = node[key]
            if not isinstance(node, h5py.Group):
                raise SignalError(f"{'/'.join(keys)} is not a struct of channels", path)
            out: dict[str, Any] = {}
            for name, item in node.items():
                if name.startswith("#"):
                    continue  # MATLAB's #refs# group
                if isinstance(item, h5py.Group):
                    out[name] = {}
                elif item.dtype.kind in "biuf" and item.attrs.get("MATLAB_class") != b"char":
                    # MATLAB writes column-major: the HDF5 shape is the transpose.
                    out[name] = np.asarray(item[()]).T
            return out
    except SignalError:
        raise
    except Exception as exc:  # h5py raises OSError/KeyError/ValueError on damaged files
        raise SignalError(
            f"cannot read as a MATLAB v7.3 (HDF5) file ({type(exc).__name__}: "
            f"{str(exc)[:120]}); the file is corrupt or truncated",
            path,
        ) from None
