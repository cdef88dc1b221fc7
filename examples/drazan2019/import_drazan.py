"""Turn the Drazan et al. (2019) medial gastrocnemius clips into a musclestate dataset.

Data: Drazan, Hullfish, Baxter (2019), "An automatic fascicle tracking algorithm quantifying
gastrocnemius architecture during maximal effort contractions", PeerJ Preprints 7:e27475v1;
Zenodo record 2598553 (CC BY 4.0). 25 screen captures (MP4, 1148 x 624 px, 61 fps of a ~20 fps
Telemed scanner) of participant p6, with 100 Hz dynamometer signals in ``push_data.mat`` and the
B-mode crop rectangle and pixel size in ``p6_params.mat``.

What this script does, through musclestate's public API only (the two .mat files are read with
scipy because their layout is particular to this data set):

- crop every frame to the B-mode image given by ``Params.imCropRect`` = [x, y, w, h] (1-based
  MATLAB pixels) -> 0-based ``(x - 1, y - 1, w, h)``, giving 574 x 720 frames;
- pixel spacing ``(px2mmY, px2mmX)`` mm per pixel (row, column);
- frame k of a clip was taken at dynamometer sample ``frameInds[k]`` (1-based), so its time is
  ``time[frameInds[k] - 1]`` and its targets are ``POS`` (ankle angle, deg, plantarflexion
  positive) and ``TOR`` (ankle moment, N m, plantarflexion positive) at that sample;
- one recording per push, participant ``"p6"``, trial ``"<trial>_push_NN"``, ``meta.task`` =
  trial type (``isokinetic030``, ``isometric_max``, ``passive_ROM``, ...).

Frames may repeat in these clips (screen capture faster than the scanner). They are kept by
default (each captured frame has its own dynamometer sample); ``--drop-repeated-frames`` drops
the frames the reader finds repeated.

Usage::

    python examples/drazan2019/import_drazan.py ../shared/data/drazan2019-mg drazan-dataset
    musclestate inspect drazan-dataset
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from musclestate import Recording, RecordingMeta, Signal, Target
from musclestate.dataset import write_dataset
from musclestate.errors import InputError, MusclestateError
from musclestate.io.video import read_video
from musclestate.signals import sync

PARTICIPANT = "p6"
CLIP = re.compile(r"^(?P<trial>p6_(?P<task>[A-Za-z]+(?:_[A-Za-z]+)?\d*)_\d+)_(?P<push>push_\d+)$")


def crop_from_matlab(rect: Sequence[float]) -> tuple[int, int, int, int]:
    """``imCropRect`` = [x, y, w, h] with 1-based x, y -> 0-based ``(x, y, w, h)`` for read_video.

    The rectangle's first pixel is MATLAB's (x, y), i.e. Python's (x - 1, y - 1); we take w x h
    pixels from there.
    """
    vals = [float(v) for v in rect]
    # The file stores e.g. 719.9999999999999 for 720: round, but only float noise.
    if len(vals) != 4 or any(abs(v - round(v)) > 1e-6 for v in vals) or min(vals) < 1:
        raise InputError(f"imCropRect {vals} is not a 1-based integer pixel rectangle")
    x, y, w, h = (round(v) for v in vals)
    return x - 1, y - 1, w, h


def load_params(data_dir: Path) -> dict[str, Any]:
    """Crop (0-based x, y, w, h) and pixel spacing (row_mm, col_mm) from ``p6_params.mat``."""
    path = data_dir / "p6_params.mat"
    try:
        p = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["Params"]
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"cannot read Params: {exc}", path) from None
    return {
        "crop": crop_from_matlab(np.atleast_1d(p.imCropRect)),
        "pixel_spacing_mm": (float(p.px2mmY), float(p.px2mmX)),
    }


def load_pushes(data_dir: Path) -> dict[str, Any]:
    """``{"<trial>_<push>": struct}`` from ``push_data.mat``."""
    path = data_dir / "push_data.mat"
    try:
        clips = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["clips"]
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"cannot read clips: {exc}", path) from None
    out = {}
    for trial in clips._fieldnames:
        t = getattr(clips, trial)
        for push in t._fieldnames:
            out[f"{trial}_{push}"] = getattr(t, push)
    return out


def push_recording(
    video: Path, push: Any, params: dict[str, Any], *, drop_repeated_frames: bool = False
) -> Recording:
    """One clip with its dynamometer signals and per-frame ankle angle and moment."""
    m = CLIP.match(video.stem)
    if m is None:
        raise InputError("clip name is not <p6_TASK_NN>_push_NN", video)
    trial_name = video.stem.removeprefix(f"{PARTICIPANT}_")
    meta = RecordingMeta(
        participant=PARTICIPANT,
        trial=trial_name,
        task=m["task"],
        muscle="gastrocnemius_medialis",
        scanner="Telemed ArtUs, LV8-5L60N-2 probe, 50 mm depth",
        source=str(video),
        extra={"push_data": f"clips.{m['trial']}.{m['push']}"},
    )
    rec = read_video(
        video,
        crop=params["crop"],
        pixel_spacing_mm=params["pixel_spacing_mm"],
        drop_repeated=drop_repeated_frames,
        meta=meta,
    )
    src = f"push_data.mat:clips.{m['trial']}.{m['push']}"
    t = np.asarray(push.time, dtype=np.float64)
    signals = {
        "POS": Signal("POS", t, np.asarray(push.POS, dtype=np.float64), "deg", src),
        "TOR": Signal("TOR", t, np.asarray(push.TOR, dtype=np.float64), "N m", src),
        "VEL": Signal("VEL", t, np.asarray(push.VEL, dtype=np.float64), "deg/s", src),
    }
    frame_inds = np.atleast_1d(push.frameInds)
    decoded = int(rec.meta.extra["decoded_frames"])
    if frame_inds.size != decoded:
        raise InputError(
            f"{frame_inds.size} frameInds in {src} but {decoded} frames in the video", video
        )
    frame_t = sync.frame_times_from_index(frame_inds, t, base=1)
    keep = np.setdiff1d(np.arange(decoded), rec.meta.extra["dropped_frame_indices"])
    frame_t = frame_t[keep]
    targets = {
        "ankle_angle": Target(sync.resample_to_frames(signals["POS"], frame_t), "deg"),
        "ankle_moment": Target(sync.resample_to_frames(signals["TOR"], frame_t), "N m"),
    }
    return rec.replace(t_s=frame_t, signals=signals, targets=targets)


def build_dataset(
    data_dir: str | Path,
    out: str | Path,
    *,
    clips: Sequence[str] | None = None,
    drop_repeated_frames: bool = False,
    overwrite: bool = False,
    progress: Any = None,
) -> Path:
    """Import the clips (all 25, or those whose stems are in ``clips``) into a dataset at ``out``.

    Returns:
        The dataset folder.
    """
    data_dir = Path(data_dir)
    videos = sorted((data_dir / "clips").glob("*.mp4"))
    if clips is not None:
        wanted = set(clips)
        videos = [v for v in videos if v.stem in wanted]
        missing = wanted - {v.stem for v in videos}
        if missing:
            raise InputError(f"clips not found: {sorted(missing)}", data_dir / "clips")
    if not videos:
        raise InputError("no clips/*.mp4 found", data_dir)
    params = load_params(data_dir)
    pushes = load_pushes(data_dir)
    for v in videos:
        if v.stem not in pushes:
            raise InputError(f"no entry for {v.stem} in push_data.mat", v)

    def recordings() -> Iterator[Recording]:
        for v in videos:
            yield push_recording(
                v, pushes[v.stem], params, drop_repeated_frames=drop_repeated_frames
            )

    return write_dataset(
        out,
        recordings(),
        overwrite=overwrite,
        progress=progress,
        total=len(videos),
        extra={
            "source": "Drazan, Hullfish, Baxter (2019), PeerJ Preprints 7:e27475v1; "
            "Zenodo 2598553 (CC BY 4.0)",
            "importer": "examples/drazan2019/import_drazan.py",
            "crop_0based_xywh": list(params["crop"]),
            "drop_repeated_frames": drop_repeated_frames,
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=Path, help="the drazan2019-mg folder")
    ap.add_argument("out", type=Path, help="dataset folder to create")
    ap.add_argument("--clips", nargs="*", help="only these clip stems (default: all 25)")
    ap.add_argument("--drop-repeated-frames", action="store_true")
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    from musclestate.progress import progress_bar

    try:
        with progress_bar() as progress:
            out = build_dataset(
                a.data_dir,
                a.out,
                clips=a.clips,
                drop_repeated_frames=a.drop_repeated_frames,
                overwrite=a.overwrite,
                progress=progress,
            )
    except MusclestateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}; see it with: musclestate inspect {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
