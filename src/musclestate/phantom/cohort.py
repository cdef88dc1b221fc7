"""A phantom cohort on disk, laid out like a lab session, plus labelled frames for ROI training.

:func:`simulate_cohort` writes, under ``out``::

    manifest.toml                 import manifest (written last: its presence marks a complete run)
    cohort.json                   configuration, seed and every participant's parameters
    P01/track_01/video.mp4        H.264 at the scanner's frame rate
    P01/track_01/daq.csv          time_s, angle [deg], moment [N m], sync [V]   (1 kHz)
    P01/track_01/emg.csv          time_s, emg_mg [mV], emg_sol [mV]             (2 kHz)
    P01/track_01/truth.csv        per frame: angle, moment, activations, fascicles, pennation,
                                  thicknesses, aponeurosis lines (units in the header)
    P01/track_01/labels.npz       ``labels`` (T, H, W) uint8: 0 background, 1 superficial
                                  aponeurosis, 2 deep aponeurosis, 3 MG, 4 SOL
    P01/mvc/...  P01/rom/...      the MVC trial (EMG normalisation and calibration) and
                                  the passive range of motion

Each trial folder is written under a temporary name and renamed when complete, and the manifest
comes last, so an interrupted run never leaves a trial (or a cohort) that looks complete. The same
seed gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import shutil
import zipfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musclestate import __version__
from musclestate._atomic import atomic_dir, write_text_atomic
from musclestate.errors import ConfigError
from musclestate.phantom import geometry, imaging
from musclestate.phantom.participants import Participant, draw_participant
from musclestate.phantom.protocol import ProtocolConfig, Trial, simulate_trial
from musclestate.progress import ProgressFn, emit

log = logging.getLogger(__name__)

_MARKER = ".musclestate-phantom"
LABEL_NAMES = {
    0: "background",
    1: "superficial_aponeurosis",
    2: "deep_aponeurosis",
    3: "MG",
    4: "SOL",
}


@dataclass(frozen=True)
class PhantomConfig:
    """What :func:`simulate_cohort` simulates (validated on construction).

    Attributes:
        participants: number of participants (P01, P02, ...).
        seconds: tracking seconds per participant (split over ``protocol.tracking_trials``).
        fps: scanner frame rate (frames/s).
        seed: seed of everything (participants, trials, speckle, noise).
        size: ``(rows, cols)`` of the frames; even, at least 64 each (the thinnest aponeurosis
            must span a pixel at 65 mm depth).
        crf: H.264 constant rate factor of the videos (0 = lossless, 18 = visually lossless).
        scatterers_per_px: speckle scatterer density (mean per pixel area).
        screen: embed the B-mode image in a scanner-style screen (grey-scale bar, depth ticks,
            settings text) like a screen capture; the manifest then carries the ``crop``.
        protocol: the protocol settings.
        anatomy_spread: between-participant variety in [0, 1]: 1 draws anatomy, strength,
            echogenicity and scanner settings from the full published ranges; smaller values
            shrink every range about its centre (a more homogeneous cohort).
    """

    participants: int = 4
    seconds: float = 30.0
    fps: float = 25.0
    seed: int = 0
    size: tuple[int, int] = (256, 256)
    crf: int = 18
    scatterers_per_px: float = 0.6
    screen: bool = False
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    anatomy_spread: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.anatomy_spread) and 0.0 <= self.anatomy_spread <= 1.0):
            raise ConfigError(f"anatomy_spread must be within 0..1, got {self.anatomy_spread}")
        if isinstance(self.participants, bool) or not isinstance(
            self.participants, int | np.integer
        ):
            raise ConfigError(f"participants must be an integer, got {self.participants!r}")
        if self.participants < 1:
            raise ConfigError(f"participants must be >= 1, got {self.participants}")
        if not (math.isfinite(self.fps) and 1.0 <= self.fps <= 200.0):
            raise ConfigError(f"fps must be within 1..200 frames/s, got {self.fps}")
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ConfigError(f"seconds must be a positive number, got {self.seconds}")
        per_trial = self.seconds * self.fps / self.protocol.tracking_trials
        if per_trial < 2:
            raise ConfigError(
                f"seconds={self.seconds} at fps={self.fps} gives {per_trial:.1f} frames per "
                f"tracking trial ({self.protocol.tracking_trials} trials); need at least 2"
            )
        size = tuple(int(s) for s in self.size)
        if len(size) != 2 or any(s < 64 or s > 2048 or s % 2 for s in size):
            raise ConfigError(
                f"size must be (rows, cols), each even and within 64..2048 pixels so that the "
                f"anatomy (1 mm aponeuroses at up to 65 mm depth) fits, got {self.size!r}"
            )
        object.__setattr__(self, "size", size)
        if self.screen and min(self.bmode_size) < 64:
            raise ConfigError(
                f"size {size} leaves a B-mode area of {self.bmode_size} inside the scanner "
                "screen; use at least (74, 104) with screen=True"
            )
        if not 0 <= int(self.crf) <= 51:
            raise ConfigError(f"crf must be within 0..51, got {self.crf}")
        if not 0.2 <= self.scatterers_per_px <= 20:
            raise ConfigError(
                f"scatterers_per_px must be within 0.2..20, got {self.scatterers_per_px}"
            )
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int | np.integer)
            or self.seed < 0
        ):
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")

    @property
    def bmode_size(self) -> tuple[int, int]:
        """``(rows, cols)`` of the B-mode image (the whole frame unless ``screen``)."""
        if not self.screen:
            return self.size
        _, _, w, h = imaging.screen_layout(self.size)
        return (h, w)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["size"] = list(self.size)
        return d

    def trials(self) -> list[tuple[str, str, float]]:
        """``(trial, task, seconds)`` of every participant's trials, in recording order."""
        k = self.protocol.tracking_trials
        out = [
            ("mvc", "mvc", self.protocol.mvc_seconds),
            ("rom", "passive_rom", self.protocol.rom_seconds),
        ]
        out[1:1] = [(f"track_{i + 1:02d}", "tracking", self.seconds / k) for i in range(k)]
        return out


# ---------------------------------------------------------------------------------------------
def check_output(out: Path, overwrite: bool) -> None:
    """Refuse an output folder that holds other data (or a cohort, without ``overwrite``)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder; choose an empty or new folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / _MARKER).exists():
            raise ConfigError(
                f"{out} already holds other data; simulate into a new or empty folder"
            )
        if not overwrite:
            raise ConfigError(
                f"{out} holds a previous phantom cohort; pass overwrite=True (--overwrite) to "
                "replace it, or choose another folder"
            )


def _clear(out: Path) -> None:
    for child in out.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def _fmt_csv(path: Path, header: list[str], cols: list[np.ndarray], fmts: list[str]) -> None:
    data = np.column_stack(cols)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write(",".join(header) + "\n")
        np.savetxt(f, data, fmt=fmts, delimiter=",")


def _save_labels(path: Path, labels: np.ndarray) -> None:
    """``np.savez_compressed`` layout with a fixed time stamp, so the bytes are reproducible."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(labels), allow_pickle=False)
    info = zipfile.ZipInfo("labels.npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(info, buf.getvalue(), compresslevel=6)


def _unit_header(name: str) -> str:
    for suffix, unit in (("_mm", "mm"), ("_deg", "deg"), ("_per_m", "1/m")):
        if name.endswith(suffix):
            return f"{name[: -len(suffix)]} [{unit}]"
    return f"{name} [1]"


def trial_geometry(p: Participant, placement: geometry.Placement, tr: Trial) -> geometry.Geometry:
    """Image geometry of ``tr`` at its frame times."""
    i = tr.frame_samples
    return geometry.image_geometry(p, placement, tr.state.take(i), tr.angle_deg[i])


def _write_trial_atomic(
    dest: Path,
    tr: Trial,
    geo: geometry.Geometry,
    frames: np.ndarray,
    labels: np.ndarray,
    cfg: PhantomConfig,
) -> None:
    """Write one trial's files into a temporary folder, then rename it to ``dest``."""
    with atomic_dir(dest, overwrite=False) as tmp:
        _write_trial(tmp, tr, geo, frames, labels, cfg)
    log.info("phantom: wrote %s (%d frames)", dest, tr.n_frames)


def _write_trial(
    folder: Path,
    tr: Trial,
    geo: geometry.Geometry,
    frames: np.ndarray,
    labels: np.ndarray,
    cfg: PhantomConfig,
) -> None:
    from musclestate.io.video import write_video

    write_video(folder / "video.mp4", frames, cfg.fps, crf=cfg.crf)
    _fmt_csv(
        folder / "daq.csv",
        ["time_s", "angle [deg]", "moment [N m]", "sync [V]"],
        [tr.t_s, tr.angle_meas_deg, tr.moment_meas_nm, tr.sync_v],
        ["%.3f", "%.3f", "%.3f", "%.3f"],
    )
    _fmt_csv(
        folder / "emg.csv",
        ["time_s", "emg_mg [mV]", "emg_sol [mV]"],
        [tr.emg_t_s, tr.emg_mv[0], tr.emg_mv[1]],
        ["%.4f", "%.5f", "%.5f"],
    )
    i = tr.frame_samples
    st = tr.state
    cols: dict[str, np.ndarray] = {
        "frame": np.arange(tr.n_frames),
        "time_s": tr.t_s[i],
        "ankle_angle [deg]": tr.angle_deg[i],
        "ankle_moment [N m]": st.moment_nm[i],
        "mg_activation [1]": tr.activation[0, i],
        "sol_activation [1]": tr.activation[1, i],
        "mg_excitation [1]": tr.excitation[0, i],
        "sol_excitation [1]": tr.excitation[1, i],
        "mg_force [N]": st.mg.force_n[i],
        "sol_force [N]": st.sol.force_n[i],
        "achilles_strain [1]": st.achilles_strain[i],
    }
    cols |= {_unit_header(k): v for k, v in geo.columns().items()}
    fmts = ["%d"] + ["%.6g"] * (len(cols) - 1)
    _fmt_csv(folder / "truth.csv", list(cols), list(cols.values()), fmts)
    _save_labels(folder / "labels.npz", labels)


def _render(
    tm: imaging.TissueModel,
    geo: geometry.Geometry,
    rng: np.random.Generator,
    tick: Callable[[int], None] | None = None,
    screen: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames and label masks of a trial; inside ``screen`` (a scanner UI canvas) if given."""
    n = len(geo)
    if screen is None:
        frames = np.empty((n, tm.grid.rows, tm.grid.cols), dtype=np.uint8)
        labels = np.empty_like(frames)
        inner: tuple[slice, ...] = (slice(None), slice(None))
    else:
        frames = np.broadcast_to(screen, (n, *screen.shape)).copy()
        labels = np.zeros_like(frames)
        x, y, w, h = imaging.screen_layout(screen.shape)
        inner = (slice(y, y + h), slice(x, x + w))
    for k in range(n):
        g = geo.at(k)
        frames[k][inner] = tm.render(g, rng)
        labels[k][inner] = tm.labels(g)
        if tick is not None and (k % 25 == 24 or k == n - 1):
            tick(k % 25 + 1)
    return frames, labels


def _participant_rng(seed: int, index: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), *more])


def make_participant(
    seed: int, index: int, size: tuple[int, int], spp: float = 0.6, spread: float = 1.0
) -> tuple[Participant, imaging.TissueModel]:
    """Participant ``index`` (0-based) of cohort ``seed`` and its tissue model at ``size``.

    ``spread`` scales the between-participant ranges (see :func:`draw_participant`).
    """
    rng = _participant_rng(seed, index)
    p = draw_participant(f"P{index + 1:02d}", rng, spread)
    grid = imaging.ImageGrid(size[0], size[1], p.depth_mm, p.width_mm)
    return p, imaging.TissueModel(p, grid, rng, scatterers_per_px=spp)


def simulate_cohort(
    out: str | Path,
    *,
    participants: int = 4,
    seconds: float = 30.0,
    fps: float = 25.0,
    seed: int = 0,
    size: tuple[int, int] = (256, 256),
    progress: ProgressFn | None = None,
    config: PhantomConfig | None = None,
    overwrite: bool = False,
) -> Path:
    """Simulate a phantom cohort as lab-style raw recordings and return its ``manifest.toml``.

    Args:
        out: output folder (new or empty; or a previous phantom cohort with ``overwrite``).
        participants: number of participants (see :class:`PhantomConfig`; leave this and the
            four below at their defaults when ``config`` is given, anything else is an error).
        seconds: tracking seconds per participant.
        fps: scanner frame rate (frames/s).
        seed: the same seed gives the same bytes.
        size: ``(rows, cols)`` of the frames in pixels.
        progress: receives a :class:`~musclestate.progress.ProgressEvent` (stage
            ``"simulate"``, unit ``"frames"``, message the trial) after each batch of frames.
        config: the full configuration (protocol, video quality, scatterer density).
        overwrite: replace a previous phantom cohort in ``out`` (never any other data).

    Returns:
        Path of the written import manifest; import it with
        :func:`musclestate.dataset.import_manifest` exactly as real data.

    Raises:
        ConfigError: invalid arguments or an output folder holding other data, before any work.
    """
    given = {"participants": participants, "seconds": seconds, "fps": fps, "seed": seed}
    given["size"] = tuple(size)
    if config is not None:
        clash = {k: v for k, v in given.items() if v != getattr(PhantomConfig(), k)}
        if clash:
            raise ConfigError(
                f"pass either config= or the individual arguments, not both (got {clash} "
                "besides config); set them in the PhantomConfig instead"
            )
    cfg = config or PhantomConfig(**given)
    out = Path(out)
    check_output(out, overwrite)
    from musclestate.io.video import write_video  # noqa: F401  (fail early if io is missing)

    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        _clear(out)
    write_text_atomic(out / _MARKER, json.dumps(cfg.to_dict(), indent=2) + "\n")

    trials = cfg.trials()
    total = cfg.participants * sum(max(1, round(s * cfg.fps)) for _, _, s in trials)
    done = 0

    def tick(k: int, label: str) -> None:
        nonlocal done
        done += k
        emit(progress, "simulate", done, total, "frames", label)

    records: list[dict[str, Any]] = []
    recordings: list[dict[str, Any]] = []
    # Encoding and file writing of one trial (x264 and zlib run without the GIL) overlap with
    # simulating the next; at most one trial waits, so memory holds two trials' frames at most.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="phantom-writer") as writer:
        pending: Future[None] | None = None
        for pi in range(cfg.participants):
            p, tm = make_participant(
                cfg.seed, pi, cfg.bmode_size, cfg.scatterers_per_px, cfg.anatomy_spread
            )
            spacing = tm.grid.spacing_mm
            screen = None
            if cfg.screen:
                screen = imaging.screen_canvas(cfg.size, _participant_rng(cfg.seed, pi, 0))
            prec: dict[str, Any] = {"parameters": p.to_dict(), "pixel_spacing_mm": list(spacing)}
            prec["trials"] = []
            for ti, (trial, task, secs) in enumerate(trials):
                rng = _participant_rng(cfg.seed, pi, ti + 1)
                placement = geometry.draw_placement(rng)
                tr = simulate_trial(p, trial, task, secs, cfg.fps, cfg.protocol, rng)
                geo = trial_geometry(p, placement, tr)
                label = f"{p.id} {trial}"
                frames, labels = _render(
                    tm, geo, rng, lambda k, lb=label: tick(k, lb), screen=screen
                )
                rel = f"{p.id}/{trial}"
                if pending is not None:
                    pending.result()
                pending = writer.submit(
                    _write_trial_atomic, out / rel, tr, geo, frames, labels, cfg
                )
                prec["trials"].append(
                    {
                        "trial": trial,
                        "task": task,
                        "placement": dataclasses.asdict(placement),
                        "n_frames": tr.n_frames,
                        "first_frame_t_s": float(tr.frame_t_s[0]),
                        "folder": rel,
                    }
                )
                recordings.append(
                    {
                        "participant": p.id,
                        "trial": trial,
                        "task": task,
                        "video": f"{rel}/video.mp4",
                        "signals": [f"{rel}/daq.csv", f"{rel}/emg.csv"],
                        "pixel_spacing_mm": [round(spacing[0], 6), round(spacing[1], 6)],
                        # every trial is imported: the rest/passive and MVC trials are the
                        # calibration recordings of per-person calibration
                        "include": True,
                    }
                )
                if cfg.screen:
                    recordings[-1]["crop"] = list(imaging.screen_layout(cfg.size))
            records.append(prec)
        if pending is not None:
            pending.result()

    cohort = {
        "generator": "musclestate.phantom",
        "version": __version__,
        "config": cfg.to_dict(),
        "label_values": {str(k): v for k, v in LABEL_NAMES.items()},
        "conventions": {
            "ankle_angle": "deg, positive = plantarflexion",
            "ankle_moment": "N m, plantarflexion positive, gravity-corrected",
            "activation": "fraction of maximal (0..1); EMG targets are %MVC after import",
            "image": "row 0 at the skin; x lateral, MG fascicles run down towards +x",
        },
        "participants": records,
    }
    write_text_atomic(out / "cohort.json", json.dumps(cohort, indent=2) + "\n")
    manifest = write_text_atomic(out / "manifest.toml", manifest_toml(cfg, recordings))
    return manifest


def manifest_toml(cfg: PhantomConfig, recordings: list[dict[str, Any]]) -> str:
    """The import manifest (TOML) for a phantom cohort's recordings."""

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)

    lines = [
        f"# musclestate phantom cohort: {cfg.participants} participants, seed {cfg.seed}.",
        "# Import: musclestate import manifest.toml --out DATASET",
        "",
        "[defaults]",
        'sync = { method = "trigger", channel = "sync", edges = "frames" }',
        f"knee_angle_deg = {float(cfg.protocol.knee_angle_deg)!r}",
        'muscle = "gastrocnemius_medialis"',
        'side = "right"',
        f'scanner = "musclestate phantom {__version__}"',
        "",
        "[defaults.targets]",
        'ankle_angle = { channel = "angle", unit = "deg" }',
        'ankle_moment = { channel = "moment", unit = "N m" }',
        'mg_activation = { channel = "emg_mg", emg = true, mvc = { trial = "mvc" } }',
        'sol_activation = { channel = "emg_sol", emg = true, mvc = { trial = "mvc" } }',
    ]
    for r in recordings:
        lines += ["", "[[recording]]"]
        lines += [f"{k} = {val(v)}" for k, v in r.items()]
    return "\n".join(lines) + "\n"


def sample_labelled_frames(
    n: int, *, size: tuple[int, int] = (256, 256), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Phantom frames with their label masks, for training the ROI segmenter.

    Frames come from up to 16 different participants, each frame with its own probe placement,
    ankle angle (-15..30 deg) and MG and SOL activations (0..1, drawn independently).

    Args:
        n: number of frames (>= 0).
        size: ``(rows, cols)``, even, at least 64 each.
        seed: seed of participants, poses and speckle.

    Returns:
        ``frames`` (N, H, W) uint8 and ``labels`` (N, H, W) uint8 with 0 = background,
        1 = superficial aponeurosis, 2 = deep aponeurosis, 3 = MG region, 4 = SOL region.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ConfigError(f"n must be a non-negative integer, got {n!r}")
    size = tuple(int(s) for s in size)
    PhantomConfig(participants=1, size=size, seed=int(seed))  # validates size and seed
    frames = np.empty((n, *size), dtype=np.uint8)
    labels = np.empty_like(frames)
    k = max(1, min(int(n), 16))
    for j in range(k):
        idx = np.arange(j, n, k)
        if idx.size == 0:
            continue
        p, tm = make_participant(seed + 1_000_003, j, size)
        rng = _participant_rng(seed + 1_000_003, j, 1)
        m = idx.size
        ang = rng.uniform(-15.0, 30.0, m)
        act = rng.uniform(0.0, 1.0, (2, m)) * (rng.uniform(size=(2, m)) > 0.2)
        for q, i in enumerate(idx):
            placement = geometry.draw_placement(rng)
            _, geo = geometry.state_geometry(p, placement, ang[q], act[0, q], act[1, q])
            g = geo.at(0)
            frames[i] = tm.render(g, rng)
            labels[i] = tm.labels(g)
    return frames, labels
