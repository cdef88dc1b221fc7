"""The TOML import manifest: a lab's recordings, signals, sync and targets, without Python.

See ``docs/manifest.md`` for the format with a full example. In short::

    [defaults]                      # any recording key may be set here
    pixel_spacing_mm = [0.2, 0.2]
    sync = { method = "trigger", channel = "sync", edges = "frames" }
    [defaults.targets]
    ankle_angle = { channel = "angle", unit = "deg" }
    mg_activation = { channel = "emg_mg", emg = true, mvc = { trial = "mvc" } }
    [[recording]]
    participant = "P01"
    trial = "track_01"
    video = "P01/track_01.mp4"
    signals = ["P01/track_01_dyn.csv", "P01/track_01_emg.csv"]

:func:`read_manifest` parses and validates the whole file (unknown keys are errors, every file must
exist) before :func:`import_manifest` decodes anything, so a typo fails in a second, not after an
hour of decoding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.dataset.store import Progress, recording_id, write_dataset
from musclestate.errors import ConfigError, DatasetError, InputError, SignalError
from musclestate.records import TARGET_UNITS, Recording, RecordingMeta, Signal, Target
from musclestate.signals import emg, sync

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MvcSpec:
    """Where the MVC reference of an EMG target comes from: a value, or a trial's peak envelope."""

    trial: str | None = None
    value: float | None = None
    window_s: float = 0.5


@dataclass(frozen=True)
class TargetSpec:
    """One per-frame target: which channel, which unit, how to process it.

    ``value = channel * scale + offset`` for ordinary channels (``scale = -1`` flips a sign
    convention); for ``emg = true`` the envelope (``band``, ``lowpass_hz``, ``order``) divided by
    the MVC reference, in %MVC.
    """

    name: str
    channel: str
    unit: str
    emg: bool = False
    mvc: MvcSpec | None = None
    scale: float = 1.0
    offset: float = 0.0
    band: tuple[float, float] = (20.0, 450.0)
    lowpass_hz: float = 6.0
    order: int = 4


@dataclass(frozen=True)
class SyncSpec:
    """How frames are put on the signals' clock (see :mod:`musclestate.signals.sync`).

    ``method``: ``"offset"`` (``offset_s``), ``"trigger"`` (``channel``, ``edges``,
    ``threshold``) or ``"index"`` (frame -> sample index from ``channel`` or from ``file`` /
    ``column``, ``base`` 0 or 1, indices into the samples of channel ``clock``; default: the first
    target's channel).
    """

    method: str
    channel: str | None = None
    edges: str = "frames"
    threshold: float | None = None
    offset_s: float = 0.0
    base: int = 0
    file: Path | None = None
    column: str | None = None
    clock: str | None = None


@dataclass(frozen=True)
class RecordingSpec:
    """One ``[[recording]]`` entry after merging ``[defaults]``; paths are absolute."""

    participant: str
    trial: str
    video: Path | None
    signals: tuple[Path, ...]
    sync: SyncSpec | None
    targets: tuple[TargetSpec, ...]
    include: bool = True
    task: str = ""
    muscle: str = "gastrocnemius_medialis"
    side: str = "unknown"
    scanner: str = ""
    knee_angle_deg: float | None = None
    crop: tuple[int, int, int, int] | None = None
    flip_horizontal: bool = False
    drop_repeated_frames: bool = False
    pixel_spacing_mm: tuple[float, float] | None = None
    depth_mm: float | None = None
    fps: float | None = None
    time_column: str | None = None
    mat_group: str | None = None
    signal_units: Mapping[str, str] = field(default_factory=dict)
    signal_rate_hz: float | None = None
    index: int = 0  # position in the file, for messages

    @property
    def id(self) -> str:
        return recording_id(self.participant, self.trial)


@dataclass(frozen=True)
class ImportManifest:
    """A parsed, validated import manifest."""

    path: Path
    recordings: tuple[RecordingSpec, ...]
    text: str = field(repr=False, default="")

    @property
    def included(self) -> tuple[RecordingSpec, ...]:
        return tuple(r for r in self.recordings if r.include)


_RECORDING_KEYS = {f.name for f in dataclasses.fields(RecordingSpec)} - {"index"}
_TARGET_KEYS = {"channel", "unit", "emg", "mvc", "scale", "offset", "band", "lowpass_hz", "order"}
_SYNC_KEYS = {
    "offset": {"method", "offset_s"},
    "trigger": {"method", "channel", "edges", "threshold"},
    "index": {"method", "channel", "file", "column", "base", "clock"},
}


class _Ctx:
    """Builds error messages that name the manifest and the entry at fault."""

    def __init__(self, path: Path, where: str) -> None:
        self.path, self.where = path, where

    def err(self, msg: str) -> ConfigError:
        return ConfigError(f"{self.path}: {self.where}: {msg}")


def _unknown(ctx: _Ctx, got: Mapping[str, Any], allowed: set[str], what: str) -> None:
    extra = sorted(set(got) - allowed)
    if extra:
        raise ctx.err(f"unknown {what} key(s) {extra}; valid keys: {sorted(allowed)}")


def _num(ctx: _Ctx, v: Any, key: str, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ctx.err(f"{key} must be a finite number, got {v!r}")
    if positive and v <= 0:
        raise ctx.err(f"{key} must be > 0, got {v!r}")
    return float(v)


def _str(ctx: _Ctx, v: Any, key: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ctx.err(f"{key} must be a non-empty string, got {v!r}")
    return v


def _bool(ctx: _Ctx, v: Any, key: str) -> bool:
    if not isinstance(v, bool):
        raise ctx.err(f"{key} must be true or false, got {v!r}")
    return v


def _file(ctx: _Ctx, base: Path, v: Any, key: str) -> Path:
    p = (base / _str(ctx, v, key)).resolve()
    if not p.exists():
        raise ctx.err(f"{key} {v!r} not found (looked for {p}); paths are relative to the manifest")
    return p


def _parse_target(ctx: _Ctx, name: str, t: Any) -> TargetSpec:
    c = _Ctx(ctx.path, f"{ctx.where}: target {name!r}")
    if not isinstance(t, Mapping):
        raise c.err("must be a table like { channel = 'angle', unit = 'deg' }")
    _unknown(c, t, _TARGET_KEYS, "target")
    if "channel" not in t:
        raise c.err("needs channel = '<signal channel name>'")
    is_emg = _bool(c, t.get("emg", False), "emg")
    mvc = None
    if "mvc" in t:
        m = t["mvc"]
        if not isinstance(m, Mapping):
            raise c.err("mvc must be { trial = 'mvc' } or { value = 0.42 }")
        _unknown(c, m, {"trial", "value", "window_s"}, "mvc")
        if ("trial" in m) == ("value" in m):
            raise c.err("mvc needs exactly one of trial = '...' or value = ...")
        mvc = MvcSpec(
            trial=_str(c, m["trial"], "mvc.trial") if "trial" in m else None,
            value=_num(c, m["value"], "mvc.value", positive=True) if "value" in m else None,
            window_s=_num(c, m.get("window_s", 0.5), "mvc.window_s", positive=True),
        )
        if not is_emg:
            raise c.err("mvc only applies to EMG targets (add emg = true)")
    if is_emg:
        unit = "%MVC"
        if mvc is None:
            raise c.err("EMG target needs mvc = { trial = '...' } or mvc = { value = ... }")
        if "unit" in t and t["unit"] != "%MVC":
            raise c.err(f"an EMG target is in %MVC, not {t['unit']!r}")
    else:
        unit = _str(c, t.get("unit", TARGET_UNITS.get(name, "")), "unit")
    known = TARGET_UNITS.get(name)
    if known is not None and unit != known:
        raise c.err(
            f"{name} is always in {known!r}, got unit {unit!r}; convert with scale = ... "
            f"(e.g. 57.29578 for rad -> deg) and declare unit = {known!r}"
        )
    band = t.get("band", (20.0, 450.0))
    if not (isinstance(band, list | tuple) and len(band) == 2):
        raise c.err(f"band must be [low_hz, high_hz], got {band!r}")
    order = t.get("order", 4)
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise c.err(f"order must be a positive integer, got {order!r}")
    return TargetSpec(
        name=name,
        channel=_str(c, t["channel"], "channel"),
        unit=unit,
        emg=is_emg,
        mvc=mvc,
        scale=_num(c, t.get("scale", 1.0), "scale"),
        offset=_num(c, t.get("offset", 0.0), "offset"),
        band=(_num(c, band[0], "band", True), _num(c, band[1], "band", True)),
        lowpass_hz=_num(c, t.get("lowpass_hz", 6.0), "lowpass_hz", positive=True),
        order=order,
    )


def _parse_sync(ctx: _Ctx, base: Path, s: Any) -> SyncSpec:
    if not isinstance(s, Mapping) or "method" not in s:
        raise ctx.err("sync must be a table with method = 'offset' | 'trigger' | 'index'")
    method = s["method"]
    if method not in _SYNC_KEYS:
        raise ctx.err(f"unknown sync method {method!r}; use one of {sorted(_SYNC_KEYS)}")
    _unknown(ctx, s, _SYNC_KEYS[method], f"sync ({method})")
    kw: dict[str, Any] = {"method": method}
    if method == "offset":
        kw["offset_s"] = _num(ctx, s.get("offset_s", 0.0), "sync.offset_s")
    elif method == "trigger":
        kw["channel"] = _str(ctx, s.get("channel"), "sync.channel")
        if s.get("edges", "frames") not in ("frames", "start"):
            raise ctx.err(f"sync.edges must be 'frames' or 'start', got {s.get('edges')!r}")
        kw["edges"] = s.get("edges", "frames")
        if "threshold" in s:
            kw["threshold"] = _num(ctx, s["threshold"], "sync.threshold")
    else:
        if ("channel" in s) == ("file" in s):
            raise ctx.err("index sync needs exactly one of channel = '...' or file = '...'")
        if "channel" in s:
            kw["channel"] = _str(ctx, s["channel"], "sync.channel")
        else:
            kw["file"] = _file(ctx, base, s["file"], "sync.file")
            if "column" in s:
                kw["column"] = _str(ctx, s["column"], "sync.column")
        if s.get("base", 0) not in (0, 1) or isinstance(s.get("base", 0), bool):
            raise ctx.err(f"sync.base must be 0 or 1, got {s.get('base')!r}")
        kw["base"] = s.get("base", 0)
        if "clock" in s:
            kw["clock"] = _str(ctx, s["clock"], "sync.clock")
    return SyncSpec(**kw)


def _parse_recording(path: Path, i: int, d: Mapping[str, Any]) -> RecordingSpec:
    base = path.parent
    label = f"[[recording]] #{i + 1}"
    if "trial" in d and "participant" in d:
        label += f" ({d['participant']}/{d['trial']})"
    ctx = _Ctx(path, label)
    _unknown(ctx, d, _RECORDING_KEYS, "recording")
    for key in ("participant", "trial"):
        if key not in d:
            raise ctx.err(f"missing {key} = '...'")
    include = _bool(ctx, d.get("include", True), "include")
    video = _file(ctx, base, d["video"], "video") if "video" in d else None
    if include and video is None:
        raise ctx.err("missing video = '...' (only include = false entries may omit it)")
    sig = d.get("signals", [])
    sig_list = [sig] if isinstance(sig, str) else sig
    if not isinstance(sig_list, list):
        raise ctx.err("signals must be a file name or a list of file names")
    signals = tuple(_file(ctx, base, s, "signals") for s in sig_list)
    targets_raw = d.get("targets", {})
    if not isinstance(targets_raw, Mapping):
        raise ctx.err("targets must be a table of name = { channel = ..., unit = ... }")
    targets = tuple(_parse_target(ctx, n, t) for n, t in targets_raw.items())
    if include and targets and not signals:
        raise ctx.err("targets need signals = ['...'] to take them from")
    sync_spec = _parse_sync(ctx, base, d["sync"]) if "sync" in d else None
    if include and targets and sync_spec is None:
        raise ctx.err("targets need sync = { method = ... } to align signals with frames")
    crop = d.get("crop")
    if crop is not None:
        if not (
            isinstance(crop, list)
            and len(crop) == 4
            and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in crop)
            and crop[2] > 0
            and crop[3] > 0
        ):
            raise ctx.err(f"crop must be [x, y, w, h] in 0-based pixels, w, h > 0; got {crop!r}")
        crop = tuple(crop)
    spacing = d.get("pixel_spacing_mm")
    if spacing is not None:
        if isinstance(spacing, int | float) and not isinstance(spacing, bool):
            spacing = [spacing, spacing]
        if not (isinstance(spacing, list) and len(spacing) == 2):
            raise ctx.err(f"pixel_spacing_mm must be [row_mm, col_mm] or one number: {spacing!r}")
        spacing = tuple(_num(ctx, s, "pixel_spacing_mm", positive=True) for s in spacing)
    if spacing is not None and "depth_mm" in d:
        raise ctx.err("give pixel_spacing_mm or depth_mm, not both")
    knee = d.get("knee_angle_deg")
    sig_units = d.get("signal_units", {})
    if not (isinstance(sig_units, Mapping) and all(isinstance(v, str) for v in sig_units.values())):
        raise ctx.err(f"signal_units must be a table of channel = 'unit', got {sig_units!r}")
    return RecordingSpec(
        participant=_str(ctx, d["participant"], "participant"),
        trial=_str(ctx, d["trial"], "trial"),
        video=video,
        signals=signals,
        sync=sync_spec,
        targets=targets,
        include=include,
        task=str(d.get("task", "")),
        muscle=str(d.get("muscle", "gastrocnemius_medialis")),
        side=str(d.get("side", "unknown")),
        scanner=str(d.get("scanner", "")),
        knee_angle_deg=None if knee is None else _num(ctx, knee, "knee_angle_deg"),
        crop=crop,
        flip_horizontal=_bool(ctx, d.get("flip_horizontal", False), "flip_horizontal"),
        drop_repeated_frames=_bool(
            ctx, d.get("drop_repeated_frames", False), "drop_repeated_frames"
        ),
        pixel_spacing_mm=spacing,
        depth_mm=_num(ctx, d["depth_mm"], "depth_mm", positive=True) if "depth_mm" in d else None,
        fps=_num(ctx, d["fps"], "fps", positive=True) if "fps" in d else None,
        time_column=_str(ctx, d["time_column"], "time_column") if "time_column" in d else None,
        mat_group=_str(ctx, d["mat_group"], "mat_group") if "mat_group" in d else None,
        signal_units=dict(sig_units),
        signal_rate_hz=_num(ctx, d["signal_rate_hz"], "signal_rate_hz", positive=True)
        if "signal_rate_hz" in d
        else None,
        index=i,
    )


def read_manifest(path: str | Path) -> ImportManifest:
    """Parse and validate an import manifest (TOML); nothing is decoded yet.

    Raises:
        InputError: the file is missing or not valid TOML.
        ConfigError: an unknown key, a bad value, a missing file, a duplicate recording, or an
            ``mvc = { trial = ... }`` that names no recording of that participant.
    """
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("manifest not found", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read manifest: {exc}", path) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", path) from None
    top = _Ctx(path, "top level")
    _unknown(top, doc, {"defaults", "recording"}, "top-level")
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, Mapping):
        raise top.err("[defaults] must be a table")
    _unknown(_Ctx(path, "[defaults]"), defaults, _RECORDING_KEYS, "defaults")
    entries = doc.get("recording", [])
    if not isinstance(entries, list) or not entries:
        raise top.err("no [[recording]] entries")
    if not isinstance(defaults.get("targets", {}), Mapping):
        raise _Ctx(path, "[defaults]").err("targets must be a table of name = { channel = ... }")
    specs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise top.err(f"[[recording]] #{i + 1} must be a table")
        if not isinstance(entry.get("targets", {}), Mapping):
            raise _Ctx(path, f"[[recording]] #{i + 1}").err(
                "targets must be a table of name = { channel = ... }"
            )
        base = dict(defaults)
        # The two ways of giving spacing exclude each other: one set on a recording replaces
        # the other from [defaults].
        for a, b in (("depth_mm", "pixel_spacing_mm"), ("pixel_spacing_mm", "depth_mm")):
            if a in entry and b not in entry:
                base.pop(b, None)
        merged = {**base, **entry}
        merged["targets"] = {**defaults.get("targets", {}), **entry.get("targets", {})}
        specs.append(_parse_recording(path, i, merged))
    seen: dict[str, RecordingSpec] = {}
    for s in specs:
        if s.id in seen:
            raise top.err(
                f"recordings #{seen[s.id].index + 1} and #{s.index + 1} are both "
                f"{s.participant}/{s.trial} (id {s.id!r}); trial names must be unique"
            )
        seen[s.id] = s
    by_pt = {(s.participant, s.trial) for s in specs}
    for s in specs:
        for t in s.targets:
            if s.include and t.mvc and t.mvc.trial and (s.participant, t.mvc.trial) not in by_pt:
                raise _Ctx(path, f"{s.participant}/{s.trial}").err(
                    f"target {t.name!r} takes its MVC from trial {t.mvc.trial!r}, but participant "
                    f"{s.participant!r} has no recording with that trial (add one, include = false "
                    f"if it is only for normalisation)"
                )
    if not any(s.include for s in specs):
        raise top.err("every recording has include = false; nothing to import")
    return ImportManifest(path=path, recordings=tuple(specs), text=text)


# ---- importing ------------------------------------------------------------------------------


def _signal_kw(spec: RecordingSpec) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if spec.time_column:
        kw["time_column"] = spec.time_column
    if spec.mat_group:
        kw["mat_group"] = spec.mat_group
    if spec.signal_rate_hz:
        kw["rate_hz"] = spec.signal_rate_hz
    return kw


def _read_signals(spec: RecordingSpec) -> tuple[dict[str, Signal], dict[str, Any]]:
    """The entry's signals, and per file what the reader corrected (decimal comma, preamble,
    units row, matrix orientation), for the recording's provenance."""
    from musclestate.io.signals import read_signal_file

    out: dict[str, Signal] = {}
    notes: dict[str, Any] = {}
    for f in spec.signals:
        got = read_signal_file(f, **_signal_kw(spec))
        if got.notes:
            notes[str(f)] = got.notes
        for name, sig in got.signals.items():
            if name in out:
                raise SignalError(
                    f"channel {name!r} appears in both {out[name].source} and {f}; rename one",
                    f,
                )
            out[name] = sig
    for name, unit in spec.signal_units.items():
        sig = _channel(out, name, spec)
        out[name] = dataclasses.replace(sig, unit=unit)
    return out, notes


def _channel(signals: Mapping[str, Signal], name: str, spec: RecordingSpec) -> Signal:
    if name not in signals:
        files = ", ".join(str(f) for f in spec.signals)
        raise SignalError(
            f"{spec.participant}/{spec.trial}: unknown channel {name!r}; available channels: "
            f"{sorted(signals)} (in {files})"
        )
    return signals[name]


def _norm_unit(u: str) -> str:
    return u.replace(" ", "").replace("·", "").replace("*", "").replace(".", "").lower()


def _mvc_values(
    m: ImportManifest, cache: dict[str, tuple[dict[str, Signal], dict[str, Any]]]
) -> dict[tuple[str, str, str], float]:
    """MVC reference per (participant, recording id, target name), from values or MVC trials."""
    by_pt = {(s.participant, s.trial): s for s in m.recordings}
    out: dict[tuple[str, str, str], float] = {}
    for s in m.included:
        for t in s.targets:
            if not t.emg or t.mvc is None:
                continue
            if t.mvc.value is not None:
                out[(s.participant, s.id, t.name)] = t.mvc.value
                continue
            src = by_pt[(s.participant, str(t.mvc.trial))]
            if src.id not in cache:
                cache[src.id] = _read_signals(src)
            sig = _channel(cache[src.id][0], t.channel, src)
            env = emg.envelope(sig.values, sig.rate_hz, t.band, t.lowpass_hz, t.order)
            peak = emg.mvc_peak(env, sig.rate_hz, t.mvc.window_s)
            log.info(
                "%s %s: MVC %.4g %s from trial %s", s.participant, t.name, peak, sig.unit, src.trial
            )
            out[(s.participant, s.id, t.name)] = peak
    return out


def _index_map(spec: RecordingSpec, signals: Mapping[str, Signal]) -> np.ndarray:
    sy = spec.sync
    assert sy is not None
    from musclestate.io.signals import read_signals

    if sy.channel is not None:
        if sy.channel in signals:
            return np.asarray(signals[sy.channel].values)
        # A per-frame vector (e.g. MATLAB frameInds) is not on the samples' time axis; readers
        # return it only when asked for by name.
        for f in spec.signals:
            try:
                got = read_signals(f, channels=[sy.channel], **_signal_kw(spec))
            except SignalError:
                continue
            return np.asarray(got[sy.channel].values)
        _channel(signals, sy.channel, spec)  # raises, listing the available channels
    assert sy.file is not None
    return _read_index_file(sy.file, sy.column)


def _read_index_file(path: Path, column: str | None) -> np.ndarray:
    """One sample index per frame from ``.npy``, a one-column ``.txt`` or a CSV column.

    CSV files are read by :func:`musclestate.io.signals.read_signal_file`, with its handling of
    preambles, units rows and decimal commas (one row per frame, so the "rate" is one row).
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.asarray(np.load(path, allow_pickle=False)).ravel()
        if suffix == ".txt":
            return np.loadtxt(path, ndmin=1)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise SignalError(f"cannot read frame -> sample index map: {exc}", path) from None
    from musclestate.io.signals import read_signal_file

    sigs = read_signal_file(path, rate_hz=1.0, time_column=None).signals
    names = list(sigs)
    col = column or names[0]
    if col not in sigs:
        raise SignalError(f"no column {col!r}; available: {names}", path)
    return np.asarray(sigs[col].values)


def _frame_times(rec: Recording, spec: RecordingSpec, signals: Mapping[str, Signal]) -> np.ndarray:
    """Frame times on the signals' clock for the frames kept in ``rec``."""
    sy = spec.sync
    assert sy is not None
    extra = rec.meta.extra
    decoded = int(extra.get("decoded_frames", rec.n_frames))
    dropped = np.asarray(extra.get("dropped_frame_indices", []), dtype=np.int64)
    keep = np.setdiff1d(np.arange(decoded), dropped)
    if keep.size != rec.n_frames:
        raise InputError(
            f"{spec.participant}/{spec.trial}: {rec.n_frames} frames but {decoded} decoded and "
            f"{dropped.size} dropped",
            spec.video,
        )
    if sy.method == "offset":
        return sync.frame_times_from_offset(rec.t_s, sy.offset_s)
    if sy.method == "trigger":
        trig = _channel(signals, str(sy.channel), spec)
        if sy.edges == "start":
            return sync.frame_times_from_trigger(
                trig, rec.n_frames, edges="start", threshold=sy.threshold, video_t_s=rec.t_s
            )
        t_all = sync.frame_times_from_trigger(trig, decoded, edges="frames", threshold=sy.threshold)
        return t_all[keep]
    idx = _index_map(spec, signals)
    if idx.size != decoded:
        raise SignalError(
            f"{spec.participant}/{spec.trial}: frame -> sample map has {idx.size} entries but "
            f"the video has {decoded} frames",
            sy.file or spec.video,
        )
    clock_name = sy.clock or (spec.targets[0].channel if spec.targets else None)
    if clock_name is None:
        raise ConfigError(
            f"{spec.participant}/{spec.trial}: index sync needs clock = '<channel>' whose "
            "samples the indices count"
        )
    clock = _channel(signals, clock_name, spec)
    return sync.frame_times_from_index(idx, clock.t_s, base=sy.base)[keep]


def _read_video(spec: RecordingSpec) -> Recording:
    from musclestate.io import read_recording

    assert spec.video is not None
    meta = RecordingMeta(
        participant=spec.participant,
        trial=spec.trial,
        muscle=spec.muscle,
        side=spec.side,
        knee_angle_deg=spec.knee_angle_deg,
        scanner=spec.scanner,
        task=spec.task,
        source=str(spec.video),
    )
    kw: dict[str, Any] = {"meta": meta}
    if spec.crop is not None:
        kw["crop"] = spec.crop
    if spec.flip_horizontal:
        kw["flip_horizontal"] = True
    if spec.drop_repeated_frames:
        kw["drop_repeated"] = True
    if spec.pixel_spacing_mm is not None:
        kw["pixel_spacing_mm"] = spec.pixel_spacing_mm
    if spec.fps is not None:
        kw["fps"] = spec.fps
    if spec.depth_mm is not None:
        kw["depth_mm"] = spec.depth_mm
    rec = read_recording(spec.video, **kw)
    if spec.pixel_spacing_mm is not None and not rec.meta.spacing_source:
        rec = rec.replace(meta=dataclasses.replace(rec.meta, spacing_source="user:mm_per_pixel"))
    return rec


def load_recording(
    spec: RecordingSpec,
    mvc: Mapping[tuple[str, str, str], float],
    manifest_path: Path | None = None,
    signals: tuple[Mapping[str, Signal], Mapping[str, Any]] | None = None,
) -> Recording:
    """Read one manifest entry into a :class:`Recording` with per-frame targets.

    ``signals``: the entry's ``(signals, reader notes)`` where already read (MVC trials).
    """
    rec = _read_video(spec)
    read = signals if signals is not None else _read_signals(spec)
    sigs, signal_notes = dict(read[0]), dict(read[1])
    targets: dict[str, Target] = {}
    frame_t = rec.t_s
    mvc_used: dict[str, float] = {}
    if spec.sync is not None:
        frame_t = _frame_times(rec, spec, sigs)
    for t in spec.targets:
        sig = _channel(sigs, t.channel, spec)
        if t.emg:
            env = sync.resample_to_frames(
                sig, frame_t, "emg", band=t.band, lowpass_hz=t.lowpass_hz, order=t.order
            )
            ref = mvc[(spec.participant, spec.id, t.name)]
            mvc_used[t.name] = ref
            values = emg.normalise_to_mvc(env, ref)
        else:
            if (
                sig.unit
                and t.scale == 1.0
                and t.offset == 0.0
                and _norm_unit(sig.unit) != _norm_unit(t.unit)
            ):
                raise SignalError(
                    f"{spec.participant}/{spec.trial}: channel {t.channel!r} is in {sig.unit!r} "
                    f"but target {t.name!r} is declared in {t.unit!r}; add scale = ... (and "
                    f"offset) to convert",
                    sig.source or None,
                )
            values = sync.resample_to_frames(sig, frame_t, "interp") * t.scale + t.offset
        targets[t.name] = Target(values, t.unit)
    provenance = {
        "manifest": str(manifest_path) if manifest_path else None,
        "video": str(spec.video),
        "signals": [str(f) for f in spec.signals],
        "signal_notes": signal_notes,
        "sync": None
        if spec.sync is None
        else {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in dataclasses.asdict(spec.sync).items()
            if v is not None
        },
        "targets": {
            t.name: {"channel": t.channel, "emg": t.emg, "scale": t.scale, "offset": t.offset}
            | ({"mvc": mvc_used[t.name], "mvc_unit": sigs[t.channel].unit} if t.emg else {})
            for t in spec.targets
        },
    }
    meta = dataclasses.replace(rec.meta, extra={**rec.meta.extra, "provenance": provenance})
    return rec.replace(t_s=frame_t, signals=sigs, targets=targets, meta=meta)


def import_manifest(
    manifest_path: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    compression: str = "gzip",
) -> Path:
    """Import every ``include``-d recording of a TOML manifest into a dataset folder.

    The manifest is validated completely first; MVC references are computed from their trials;
    then recordings are decoded, aligned and written one at a time (see
    :func:`~musclestate.dataset.store.write_dataset`: atomic, nothing half-written is left).

    Args:
        manifest_path: the TOML manifest (paths in it are relative to it).
        out: dataset folder to create.
        overwrite: replace an existing dataset at ``out`` once the new one is complete.
        progress: ``progress(done, total, recording_id)`` after each recording.
        compression: frame compression, see :func:`write_dataset`.

    Returns:
        The dataset folder.
    """
    m = read_manifest(manifest_path)
    out = Path(out)
    if out.exists() and not overwrite:
        raise DatasetError(f"{out} already exists; choose another output or pass overwrite")
    cache: dict[str, tuple[dict[str, Signal], dict[str, Any]]] = {}
    mvc = _mvc_values(m, cache)
    specs = m.included

    def recordings() -> Iterator[Recording]:
        for spec in specs:
            yield load_recording(spec, mvc, m.path, cache.pop(spec.id, None))

    return write_dataset(
        out,
        recordings(),
        overwrite=overwrite,
        compression=compression,
        progress=progress,
        total=len(specs),
        extra={
            "manifest": str(m.path),
            "manifest_sha256": hashlib.sha256(m.text.encode()).hexdigest(),
            "manifest_text": m.text,
        },
    )
