"""The dataset store: many recordings in one chunked HDF5 file plus a readable JSON manifest.

Layout of a dataset folder::

    DATASET/
      manifest.json        human readable: format version, participants, recordings (frames,
                           shape, spacing, meta, provenance), targets (unit, min, max), derived
      frames.h5            /recordings/<id>/frames   (T, H, W) uint8, chunks (1, H, W), compressed
                           /recordings/<id>/t_s      (T,) float64 frame times on the signals' clock
                           /recordings/<id>/targets/<name>         (T,) float64 (attr unit)
                           /recordings/<id>/signals/<name>/{t_s, values}  raw lab signals (attrs
                           unit, source) kept for provenance and re-processing
      derived/<group>.h5   per-recording arrays written by later stages (e.g. "roi"), see
                           :func:`write_derived`

One chunk per frame makes a random single-frame read touch exactly one chunk, which is what
training needs. A dataset is written into a hidden temporary folder and renamed into place when
complete, so an interrupted import leaves nothing that looks like a dataset.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from musclestate import __version__
from musclestate._atomic import atomic_dir, atomic_file, json_default, read_json, write_text_atomic
from musclestate.errors import DatasetError, InputError
from musclestate.progress import ProgressFn, emit
from musclestate.records import Recording, RecordingMeta, Signal, Target

log = logging.getLogger(__name__)

FORMAT = "musclestate-dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FRAMES = "frames.h5"
DERIVED = "derived"


_COMPRESSION: dict[str, dict[str, Any]] = {
    "gzip": {"compression": "gzip", "compression_opts": 1},
    "lzf": {"compression": "lzf"},
    "none": {},
}


def recording_id(participant: str, trial: str) -> str:
    """The dataset id of a recording: ``"<participant>-<trial>"`` with unsafe characters as ``_``.

    Ids are safe as HDF5 names, JSON keys and file names.
    """
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{participant}-{trial}")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=json_default, allow_nan=False)


def _meta_dict(meta: RecordingMeta) -> dict[str, Any]:
    # Not RecordingMeta.to_dict(): dataclasses.asdict deep-copies ``extra``, a mappingproxy,
    # which cannot be copied.
    d = {f.name: getattr(meta, f.name) for f in dataclasses.fields(meta)}
    try:
        # NaN/inf in free-form metadata become null (JSON has no NaN).
        text = json.dumps(dict(meta.extra), default=json_default)
        d["extra"] = json.loads(text, parse_constant=lambda _: None)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"recording {meta.participant}/{meta.trial}: meta.extra is not JSON-serialisable "
            f"({exc})",
            meta.source or None,
        ) from None
    if d["knee_angle_deg"] is not None and not math.isfinite(d["knee_angle_deg"]):
        d["knee_angle_deg"] = None
    return d


def _finite_range(v: np.ndarray) -> tuple[float, float]:
    return float(np.min(v)), float(np.max(v))


def recording_sha256(rec: Recording) -> str:
    """SHA-256 of a recording's content: frames, frame times and per-frame targets (by name)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(rec.frames).tobytes())
    h.update(np.ascontiguousarray(rec.t_s, dtype=np.float64).tobytes())
    for name in sorted(rec.targets):
        h.update(name.encode())
        h.update(np.ascontiguousarray(rec.targets[name].values, dtype=np.float64).tobytes())
    return h.hexdigest()


def _write_recording(h5: h5py.File, rid: str, rec: Recording, compression: str) -> dict[str, Any]:
    g = h5.create_group(f"recordings/{rid}")
    t, h, w = rec.frames.shape
    g.create_dataset(
        "frames", data=rec.frames, chunks=(1, h, w), shuffle=False, **_COMPRESSION[compression]
    )
    g.create_dataset("t_s", data=rec.t_s)
    tg = g.create_group("targets")
    targets: dict[str, Any] = {}
    for name, target in rec.targets.items():
        d = tg.create_dataset(name, data=target.values)
        d.attrs["unit"] = target.unit
        lo, hi = _finite_range(target.values)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputError(f"recording {rid!r}: target {name!r} holds NaN/inf values")
        targets[name] = {"unit": target.unit, "min": lo, "max": hi}
    sg = g.create_group("signals")
    signals: dict[str, Any] = {}
    for name, sig in rec.signals.items():
        s = sg.create_group(name)
        s.create_dataset("t_s", data=sig.t_s, **_COMPRESSION["gzip"])
        s.create_dataset("values", data=sig.values, **_COMPRESSION["gzip"])
        s.attrs["unit"] = sig.unit
        s.attrs["source"] = sig.source
        signals[name] = {
            "unit": sig.unit,
            "rate_hz": sig.rate_hz if sig.t_s.size > 1 else None,
            "samples": len(sig),
            "source": sig.source,
        }
    meta = _meta_dict(rec.meta)
    return {
        "id": rid,
        "sha256": recording_sha256(rec),
        "participant": rec.meta.participant,
        "trial": rec.meta.trial,
        "n_frames": int(t),
        "frame_shape": [int(h), int(w)],
        "pixel_spacing_mm": None if rec.pixel_spacing_mm is None else list(rec.pixel_spacing_mm),
        "fps": rec.fps if t > 1 else None,
        "t_start_s": float(rec.t_s[0]),
        "t_end_s": float(rec.t_s[-1]),
        "meta": meta,
        "targets": targets,
        "signals": signals,
        "provenance": {
            "source": rec.meta.source,
            "spacing_source": rec.meta.spacing_source,
            **dict(meta["extra"].get("provenance", {})),
        },
    }


def _summarise_targets(recs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in recs:
        for name, t in r["targets"].items():
            cur = out.get(name)
            if cur is None:
                out[name] = dict(t)
                continue
            if cur["unit"] != t["unit"]:
                raise InputError(
                    f"target {name!r} is in {cur['unit']!r} in one recording and {t['unit']!r} "
                    f"in {r['id']!r}; a dataset keeps one unit per target"
                )
            cur["min"] = min(cur["min"], t["min"])
            cur["max"] = max(cur["max"], t["max"])
    return out


def write_dataset(
    out: str | Path,
    recordings: Iterable[Recording],
    *,
    overwrite: bool = False,
    compression: str = "gzip",
    progress: ProgressFn | None = None,
    total: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write recordings (streamed one at a time) as a dataset folder, atomically.

    Args:
        out: dataset folder to create.
        recordings: any iterable of :class:`~musclestate.records.Recording`; a generator keeps
            only one recording in memory at a time. ``(participant, trial)`` must be unique.
        overwrite: replace an existing ``out`` (only once the new dataset is complete).
        compression: frame chunk compression, ``"gzip"`` (level 1), ``"lzf"`` or ``"none"``.
        progress: receives a :class:`~musclestate.progress.ProgressEvent` (stage
            ``"import"``, unit ``"recordings"``, message the recording id) after each recording.
        total: number of recordings, passed to ``progress`` only.
        extra: JSON-serialisable information stored under ``"import"`` in the manifest.

    Returns:
        The dataset folder.
    """
    out = Path(out)
    if compression not in _COMPRESSION:
        raise InputError(f"unknown compression {compression!r}; use one of {sorted(_COMPRESSION)}")
    if out.exists() and not overwrite:
        raise DatasetError(f"{out} already exists; choose another output or pass overwrite")
    entries: list[dict[str, Any]] = []
    seen: dict[str, tuple[str, str]] = {}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        try:
            h5 = h5py.File(tmp / FRAMES, "w")
        except OSError as exc:
            raise DatasetError(f"cannot create {out / FRAMES}: {exc}") from None
        with h5:
            h5.attrs["format"] = FORMAT
            h5.attrs["format_version"] = FORMAT_VERSION
            for rec in recordings:
                if not isinstance(rec, Recording):
                    raise InputError(f"write_dataset expects Recording objects, got {type(rec)}")
                key = (rec.meta.participant, rec.meta.trial)
                rid = recording_id(*key)
                if rid in seen:
                    raise InputError(
                        f"recording id {rid!r} used twice: participant/trial {seen[rid]} and "
                        f"{key}; give each recording a unique trial name"
                    )
                seen[rid] = key
                entries.append(_write_recording(h5, rid, rec, compression))
                log.info("wrote %s: %d frames %s", rid, rec.n_frames, rec.frame_shape)
                emit(progress, "import", len(entries), total, "recordings", rid)
        if not entries:
            raise InputError("no recordings to write; a dataset needs at least one")
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "musclestate_version": __version__,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "frames_file": FRAMES,
            "frame_chunks": "(1, H, W) per recording",
            "compression": compression,
            "participants": sorted({e["participant"] for e in entries}),
            "targets": _summarise_targets(entries),
            "recordings": entries,
            "derived": {},
            "import": dict(extra or {}),
        }
        (tmp / MANIFEST).write_text(_dumps(manifest), encoding="utf-8")
    log.info("dataset %s: %d recordings", out, len(entries))
    return out


@dataclass(frozen=True)
class RecordingInfo:
    """What the manifest says about one recording (no frames loaded).

    Attributes:
        id: dataset id (see :func:`recording_id`).
        participant, trial: as in :class:`~musclestate.records.RecordingMeta`.
        n_frames: number of frames T.
        frame_shape: ``(H, W)``.
        pixel_spacing_mm: ``(row_mm, col_mm)`` or ``None``.
        meta: :meth:`RecordingMeta.to_dict` of the recording.
        targets: names of the per-frame targets.
        fps: median frame rate.
    """

    id: str
    participant: str
    trial: str
    n_frames: int
    frame_shape: tuple[int, int]
    pixel_spacing_mm: tuple[float, float] | None
    meta: dict[str, Any] = field(hash=False, compare=False)
    targets: tuple[str, ...] = ()
    fps: float | None = None


class DerivedGroup:
    """Read access to ``DATASET/derived/<group>.h5`` (arrays per recording, plus attrs)."""

    def __init__(self, path: Path, attrs: Mapping[str, Any]) -> None:
        self.path = path
        self.attrs: dict[str, Any] = dict(attrs)
        self._h5: h5py.File | None = None
        self._pid = -1

    def _file(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():
            try:
                self._h5 = h5py.File(self.path, "r")
            except OSError as exc:
                raise DatasetError(f"cannot read derived group: {exc}", self.path) from None
            self._pid = os.getpid()
        return self._h5

    def names(self, rec_id: str) -> tuple[str, ...]:
        """Array names stored for ``rec_id``."""
        f = self._file()
        if rec_id not in f:
            raise DatasetError(f"no derived data for recording {rec_id!r}", self.path)
        return tuple(f[rec_id].keys())

    def get(self, rec_id: str, name: str, index: Any = slice(None)) -> np.ndarray:
        """Array ``name`` of recording ``rec_id``, indexed along its first axis."""
        f = self._file()
        if rec_id not in f:
            raise DatasetError(
                f"no derived data for recording {rec_id!r}; it has {sorted(f.keys())[:10]}...",
                self.path,
            )
        g = f[rec_id]
        if name not in g:
            raise DatasetError(
                f"recording {rec_id!r} has no derived array {name!r}; available: {sorted(g)}",
                self.path,
            )
        return _take(g[name], index)

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "attrs": self.attrs, "_h5": None, "_pid": -1}


def _take(ds: h5py.Dataset, index: Any) -> np.ndarray:
    """``ds[index]`` along axis 0 for an int, slice or integer array (any order, repeats)."""
    if isinstance(index, slice):
        return ds[index]
    if isinstance(index, int | np.integer):
        i = int(index)
        n = ds.shape[0]
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} frames")
        return ds[i % n]
    idx = np.asarray(index)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    idx = idx.astype(np.int64).ravel()
    n = ds.shape[0]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"index out of range for {n} frames")
    idx = idx % n if idx.size else idx
    # h5py fancy indexing wants increasing unique indices: read those, then reorder.
    uniq, inv = np.unique(idx, return_inverse=True)
    return ds[uniq][inv] if uniq.size else ds[0:0]


class Dataset:
    """An open dataset folder (see :func:`open_dataset`). Reading only; frames stay on disk.

    The HDF5 file is opened lazily and re-opened in a new process, so a ``Dataset`` can be handed
    to DataLoader workers.
    """

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self._manifest = manifest
        self.recordings: tuple[RecordingInfo, ...] = tuple(
            RecordingInfo(
                id=r["id"],
                participant=r["participant"],
                trial=r["trial"],
                n_frames=int(r["n_frames"]),
                frame_shape=(int(r["frame_shape"][0]), int(r["frame_shape"][1])),
                pixel_spacing_mm=None
                if r["pixel_spacing_mm"] is None
                else (float(r["pixel_spacing_mm"][0]), float(r["pixel_spacing_mm"][1])),
                meta=dict(r["meta"]),
                targets=tuple(r["targets"]),
                fps=r.get("fps"),
            )
            for r in manifest["recordings"]
        )
        self._by_id = {r.id: r for r in self.recordings}
        self.participants: tuple[str, ...] = tuple(manifest["participants"])
        self.target_units: dict[str, str] = {k: v["unit"] for k, v in manifest["targets"].items()}
        self._h5: h5py.File | None = None
        self._pid = -1
        self._frame_ds: dict[str, h5py.Dataset] = {}

    # -- plumbing ---------------------------------------------------------------------------
    def _file(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():
            self._frame_ds = {}
            try:
                self._h5 = h5py.File(self.path / FRAMES, "r")
            except OSError as exc:
                raise DatasetError(f"cannot read frames: {exc}", self.path / FRAMES) from None
            self._pid = os.getpid()
        return self._h5

    def _group(self, rec_id: str) -> h5py.Group:
        self.info(rec_id)
        return self._file()[f"recordings/{rec_id}"]

    def _frames_ds(self, rec_id: str) -> h5py.Dataset:
        # Cached per process: opening the HDF5 object costs as much as reading a small frame.
        f = self._file()
        ds = self._frame_ds.get(rec_id)
        if ds is None:
            self.info(rec_id)
            ds = self._frame_ds[rec_id] = f[f"recordings/{rec_id}/frames"]
        return ds

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_h5"] = None
        state["_pid"] = -1
        state["_frame_ds"] = {}
        return state

    def close(self) -> None:
        """Close the HDF5 file (it reopens on the next read)."""
        if self._h5 is not None:
            self._frame_ds = {}
            self._h5.close()
            self._h5 = None

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Dataset({str(self.path)!r}, recordings={len(self.recordings)}, "
            f"participants={len(self.participants)})"
        )

    # -- reading ----------------------------------------------------------------------------
    @property
    def content_sha256(self) -> str:
        """SHA-256 that identifies the dataset's content, wherever it lies.

        Over each recording's id and content hash (written at import); for datasets written
        before recordings carried one, over their manifest entries instead.
        """
        h = hashlib.sha256()
        for r in sorted(self._manifest["recordings"], key=lambda r: r["id"]):
            h.update(r["id"].encode())
            h.update((r.get("sha256") or _dumps(r)).encode())
        return h.hexdigest()

    @property
    def manifest(self) -> dict[str, Any]:
        """The parsed manifest.json (a copy)."""
        return json.loads(_dumps(self._manifest))

    def info(self, rec_id: str) -> RecordingInfo:
        """Manifest entry of one recording."""
        try:
            return self._by_id[rec_id]
        except KeyError:
            ids = ", ".join(list(self._by_id)[:8])
            raise DatasetError(
                f"no recording {rec_id!r} in this dataset; ids look like: {ids}", self.path
            ) from None

    def recordings_of(self, participant: str) -> tuple[RecordingInfo, ...]:
        """The recordings of one participant."""
        return tuple(r for r in self.recordings if r.participant == participant)

    def frames(self, rec_id: str, index: Any = slice(None)) -> np.ndarray:
        """Frames of one recording as ``(n, H, W)`` uint8.

        ``index`` is a slice, an int (giving ``n = 1``) or an integer array (any order).
        """
        out = _take(self._frames_ds(rec_id), index)
        return out[None] if out.ndim == 2 else out

    def frame_times(self, rec_id: str) -> np.ndarray:
        """``(T,)`` float64 frame times (s) on the signals' clock."""
        return self._group(rec_id)["t_s"][()]

    def targets(self, rec_id: str) -> dict[str, np.ndarray]:
        """Per-frame targets ``{name: (T,) float64}`` (units in :attr:`target_units`)."""
        g = self._group(rec_id)["targets"]
        return {name: g[name][()] for name in g}

    def signals(self, rec_id: str) -> dict[str, Signal]:
        """The raw lab signals stored with a recording."""
        g = self._group(rec_id)["signals"]
        return {
            name: Signal(
                name,
                g[name]["t_s"][()],
                g[name]["values"][()],
                str(g[name].attrs["unit"]),
                str(g[name].attrs["source"]),
            )
            for name in g
        }

    def recording(self, rec_id: str) -> Recording:
        """Everything about one recording, frames loaded, as a :class:`Recording`."""
        info = self.info(rec_id)
        m = dict(info.meta)
        units = self._manifest_entry(rec_id)["targets"]
        return Recording(
            frames=self.frames(rec_id),
            t_s=self.frame_times(rec_id),
            pixel_spacing_mm=info.pixel_spacing_mm,
            meta=RecordingMeta(**m),
            signals=self.signals(rec_id),
            targets={k: Target(v, units[k]["unit"]) for k, v in self.targets(rec_id).items()},
        )

    def _manifest_entry(self, rec_id: str) -> dict[str, Any]:
        self.info(rec_id)
        return next(r for r in self._manifest["recordings"] if r["id"] == rec_id)

    def summary(self) -> dict[str, Any]:
        """What ``musclestate inspect --json`` prints: counts, frame shape, targets, derived."""
        shapes = {r.frame_shape for r in self.recordings}
        per_p: dict[str, dict[str, int]] = {}
        for r in self.recordings:
            d = per_p.setdefault(r.participant, {"recordings": 0, "frames": 0})
            d["recordings"] += 1
            d["frames"] += r.n_frames
        return {
            "path": str(self.path),
            "format_version": self._manifest["format_version"],
            "recordings": len(self.recordings),
            "participants": len(self.participants),
            "frames": sum(r.n_frames for r in self.recordings),
            "frame_shape": list(shapes.pop()) if len(shapes) == 1 else None,
            "frame_shapes": sorted(
                {f"{h}x{w}" for h, w in {r.frame_shape for r in self.recordings}}
            ),
            "targets": {k: dict(v) for k, v in self._manifest["targets"].items()},
            "participant_ids": list(self.participants),
            "per_participant": per_p,
            "per_recording": {
                r.id: {
                    "participant": r.participant,
                    "trial": r.trial,
                    "frames": r.n_frames,
                    "task": r.meta.get("task", ""),
                }
                for r in self.recordings
            },
            "derived": sorted(self._manifest.get("derived", {})),
        }

    # -- derived groups ---------------------------------------------------------------------
    def has_derived(self, group: str) -> bool:
        """Whether ``derived/<group>.h5`` has been written (and recorded in the manifest)."""
        return (
            group in self._manifest.get("derived", {})
            and (self.path / DERIVED / f"{group}.h5").is_file()
        )

    def derived(self, group: str) -> DerivedGroup:
        """Open a derived group written by :func:`write_derived`."""
        if not self.has_derived(group):
            have = sorted(self._manifest.get("derived", {}))
            raise DatasetError(
                f"no derived group {group!r} (have: {have or 'none'}); run the stage that "
                f"writes it first (e.g. `musclestate roi apply` for 'roi')",
                self.path,
            )
        entry = self._manifest["derived"][group]
        return DerivedGroup(self.path / DERIVED / f"{group}.h5", entry.get("attrs", {}))


def _read_manifest(path: Path) -> dict[str, Any]:
    mf = path / MANIFEST
    if not path.is_dir():
        raise DatasetError("dataset folder not found", path)
    if not mf.is_file():
        raise DatasetError(
            f"no {MANIFEST}: not a musclestate dataset (or an import that did not finish)", path
        )
    manifest = read_json(mf, "dataset manifest", error=DatasetError)
    if manifest.get("format") != FORMAT:
        raise DatasetError(f"not a {FORMAT} manifest", mf)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DatasetError(
            f"dataset format version {manifest.get('format_version')!r}; this musclestate "
            f"reads version {FORMAT_VERSION}",
            mf,
        )
    return manifest


def open_dataset(path: str | Path) -> Dataset:
    """Open a dataset folder written by :func:`write_dataset` or ``musclestate import``."""
    path = Path(path)
    manifest = _read_manifest(path)
    if not (path / FRAMES).is_file():
        raise DatasetError(f"{FRAMES} is missing", path)
    return Dataset(path, manifest)


def write_derived(
    dataset_path: str | Path,
    group: str,
    per_recording: Mapping[str, Mapping[str, np.ndarray]],
    attrs: Mapping[str, Any],
) -> None:
    """Write ``DATASET/derived/<group>.h5`` atomically and record it in ``manifest.json``.

    Args:
        dataset_path: an existing dataset folder.
        group: name of the group, e.g. ``"roi"`` (letters, digits, ``_``, ``-``).
        per_recording: ``{rec_id: {name: array}}``; arrays whose first axis has one entry per
            frame and two or more axes are chunked one frame at a time for random access.
        attrs: JSON-serialisable settings of the stage (stored in the manifest and the file).

    A second call with the same group replaces it.
    """
    path = Path(dataset_path)
    manifest = _read_manifest(path)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", group):
        raise InputError(f"derived group name {group!r} must use letters, digits, _ or -")
    try:
        attrs_json = _dumps(dict(attrs))
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"derived group {group!r}: attrs must be JSON-serialisable: {exc}"
        ) from None
    n_frames = {r["id"]: int(r["n_frames"]) for r in manifest["recordings"]}
    unknown = sorted(set(per_recording) - set(n_frames))
    if unknown:
        raise InputError(f"derived group {group!r}: unknown recording id(s) {unknown[:5]}")
    dest = path / DERIVED / f"{group}.h5"
    with atomic_file(dest, suffix=".h5") as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["attrs_json"] = attrs_json
        for rid, arrays in per_recording.items():
            g = h5.create_group(rid)
            for name, arr in arrays.items():
                a = np.asarray(arr)
                chunks = None
                if a.ndim >= 2 and a.shape[0] == n_frames[rid] and a.size:
                    chunks = (1, *a.shape[1:])
                g.create_dataset(name, data=a, chunks=chunks)
    manifest.setdefault("derived", {})[group] = {
        "file": f"{DERIVED}/{group}.h5",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "recordings": sorted(per_recording),
        "attrs": json.loads(attrs_json),
    }
    write_text_atomic(path / MANIFEST, _dumps(manifest))
    log.info("derived group %r written for %d recordings", group, len(per_recording))
