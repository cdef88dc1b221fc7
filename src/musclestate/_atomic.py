"""Atomic writes: build the output under a temporary name beside it, rename when complete.

A crash or Ctrl-C in the middle leaves at most a hidden ``.NAME.tmp-*`` entry, never an output that
looks complete. ``os.replace`` is atomic on POSIX and Windows for a file; a directory is moved into
place after any previous one is moved aside.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(dest: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in ``dest``'s folder; on success rename it to ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.tmp-", suffix=suffix, dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; outputs should get the usual permissions (0666 less umask).
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(dest: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``dest``; on success move it to ``dest``.

    With ``overwrite=False`` an existing ``dest`` is an error raised before any work starts.
    """
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest} already exists; choose another output or pass overwrite")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(dest: str | Path, text: str) -> Path:
    """Write ``text`` to ``dest`` atomically (UTF-8) and return the path."""
    with atomic_file(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(dest)


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` for the values musclestate records hold (numpy, paths)."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, Mapping):
        return dict(o)
    if isinstance(o, tuple | set | frozenset):
        return list(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def read_json(
    path: str | Path,
    what: str,
    *,
    error: type[InputError] = InputError,
    missing: str | None = None,
    need_object: bool = True,
) -> Any:
    """Parse a JSON file that musclestate or its user wrote; every failure names the file.

    Args:
        path: the file.
        what: what the file is, for the messages (``"calibration profile"``).
        error: the :class:`InputError` subclass to raise.
        missing: the message for an absent file (default ``"{what} not found"``).
        need_object: refuse anything but a JSON object.

    Raises:
        InputError (or ``error``): absent, unreadable or malformed file, or not an object.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(missing or f"{what} not found", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"cannot read {what}: {exc}", path) from None
    if need_object and not isinstance(data, dict):
        raise error(f"{what} must hold a JSON object, got {type(data).__name__}", path)
    return data


def write_json_atomic(dest: str | Path, obj: Any, **dumps_kw: Any) -> Path:
    """Write ``obj`` as indented JSON to ``dest`` atomically (numpy values and paths allowed)."""
    return write_text_atomic(dest, json.dumps(obj, indent=2, default=json_default, **dumps_kw))
