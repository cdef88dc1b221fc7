"""Dataset store speed: import (write) frames/s and random single-frame reads/s per compression.

Frames are real B-mode images (three Drazan et al. 2019 clips, cropped to 574 x 720 as in
examples/drazan2019) when ../shared/data is present, otherwise synthetic speckle of the same size.
The reference is the uncompressed store measured in the same process; the final line is one JSON
object.

    .venv/bin/python benchmarks/dataset.py [--reads 2000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from musclestate.dataset import open_dataset, write_dataset
from musclestate.records import Recording, RecordingMeta

DRAZAN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "drazan2019-mg"
CLIPS = (
    "p6_isokinetic120_01_push_01",
    "p6_isokinetic210_01_push_01",
    "p6_isometric_max_01_push_01",
)


def load_frames() -> tuple[list[np.ndarray], str]:
    if (DRAZAN / "clips").is_dir():
        from musclestate.io.video import read_video

        frames = [
            read_video(DRAZAN / "clips" / f"{c}.mp4", crop=(214, 44, 720, 574)).frames
            for c in CLIPS
        ]
        return frames, "drazan2019 clips " + ", ".join(CLIPS)
    rng = np.random.default_rng(0)
    speckle = rng.rayleigh(40, (3, 120, 574, 720)).clip(0, 255).astype(np.uint8)
    return list(speckle), "synthetic Rayleigh speckle"


def recordings(frames: list[np.ndarray]) -> list[Recording]:
    return [
        Recording(f, np.arange(len(f)) / 61.0, (0.0883, 0.0883), RecordingMeta("p6", f"c{i}"))
        for i, f in enumerate(frames)
    ]


def bench(recs: list[Recording], compression: str, n_reads: int, tmp: Path) -> dict[str, float]:
    n_frames = sum(r.n_frames for r in recs)
    t0 = time.perf_counter()
    out = write_dataset(tmp / compression, recs, compression=compression)
    write_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    ds = open_dataset(out)
    ids = [r.id for r in ds.recordings]
    lengths = [r.n_frames for r in ds.recordings]
    rng = np.random.default_rng(0)
    which = rng.integers(0, len(ids), n_reads)
    picks = [(ids[w], int(rng.integers(0, lengths[w]))) for w in which]
    ds.frames(ids[0], 0)  # open the file outside the timing
    t0 = time.perf_counter()
    for rid, i in picks:
        ds.frames(rid, i)
    read_s = time.perf_counter() - t0
    ds.close()
    return {
        "write_frames_per_s": n_frames / write_s,
        "random_reads_per_s": n_reads / read_s,
        "mb_on_disk": size / 1e6,
        "mb_raw": n_frames * recs[0].frames[0].nbytes / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reads", type=int, default=2000)
    a = ap.parse_args()
    frames, source = load_frames()
    recs = recordings(frames)
    print(f"{sum(len(f) for f in frames)} frames of {frames[0].shape[1:]} from {source}")
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for comp in ("none", "lzf", "gzip"):
            r = bench(recs, comp, a.reads, Path(d))
            results[comp] = r
            print(
                f"{comp:>5}: write {r['write_frames_per_s']:7.0f} frames/s, random single-frame "
                f"reads {r['random_reads_per_s']:7.0f} /s, {r['mb_on_disk']:.0f} MB "
                f"(raw {r['mb_raw']:.0f} MB)"
            )
    ref = results["none"]["random_reads_per_s"]
    for comp in ("lzf", "gzip"):
        results[comp]["read_ratio_vs_none"] = results[comp]["random_reads_per_s"] / ref
        print(f"{comp}: random reads at {results[comp]['read_ratio_vs_none']:.2f}x uncompressed")
    print(json.dumps({"benchmark": "dataset", "source": source, "results": results}))


if __name__ == "__main__":
    main()
