"""ROI step speed per frame on the CPU: segmentation, geometry, patches, architecture measures.

Frames: a real clip (Drazan et al. 2019, p6, cropped to the 720 x 574 B-mode area as in
examples/drazan2019) when ../shared/data is present, and phantom frames (192 x 192, the demo's
size). The reference is the segmentation network alone (batched) in the same process; the
whole step (``process_frames``, every frame and every 2nd frame) is reported as a ratio to it and
as the frame rate it sustains, to compare with the scanner's (25-80 fps). Final line: one JSON
object.

    .venv/bin/python benchmarks/roi.py [--frames 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

DRAZAN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "drazan2019-mg"
CLIP = "p6_isokinetic120_01_push_01"
DRAZAN_CROP = (214, 44, 720, 574)  # Params.imCropRect of p6_params.mat, made 0-based
DRAZAN_SPACING = (0.0883, 0.0883)


def timed(fn, repeat: int = 2) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench(name: str, frames: np.ndarray, spacing: tuple[float, float], seg) -> dict:
    from musclestate.roi.architecture import measure
    from musclestate.roi.geometry import fit_geometry
    from musclestate.roi.patches import extract_patches
    from musclestate.roi.pipeline import ROIConfig, process_frames

    n = len(frames)
    t_net = timed(lambda: seg.predict(frames, batch_size=16)) / n
    t_one = timed(lambda: [seg.predict(f) for f in frames[:8]]) / 8
    probs = seg.predict(frames)
    geoms = []
    t_geo = timed(lambda: geoms.extend(fit_geometry(p, spacing) for p in probs), 1) / n
    ok = [(f, g) for f, g in zip(frames, geoms, strict=True) if g.found]
    t_patch = timed(lambda: [extract_patches(f, g) for f, g in ok], 1) / max(len(ok), 1)
    t_meas = timed(lambda: [measure(f, g) for f, g in ok], 1) / max(len(ok), 1)
    t_all = timed(lambda: process_frames(frames, spacing, seg, ROIConfig()), 1) / n
    t_all2 = timed(lambda: process_frames(frames, spacing, seg, ROIConfig(every=2)), 1) / n
    row = {
        "frames": name,
        "shape": list(frames.shape[1:]),
        "found": len(ok) / n,
        "network_ms_batched": 1e3 * t_net,
        "network_ms_single": 1e3 * t_one,
        "geometry_ms": 1e3 * t_geo,
        "patches_ms": 1e3 * t_patch,
        "measures_ms": 1e3 * t_meas,
        "roi_ms_every1": 1e3 * t_all,
        "roi_ms_every2": 1e3 * t_all2,
        "ratio_every1_to_network": t_all / t_net,
        "fps_every1": 1 / t_all,
        "fps_every2": 1 / t_all2,
    }
    for k, v in row.items():
        print(f"{name:>10} {k:<26} {v:.2f}" if isinstance(v, float) else f"{name:>10} {k:<26} {v}")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from musclestate.phantom import sample_labelled_frames
    from musclestate.roi.segment import load_segmenter

    torch.set_num_threads(args.threads)
    seg = load_segmenter()
    rows = []
    phantom, _ = sample_labelled_frames(args.frames, size=(192, 192), seed=0)
    rows.append(bench("phantom", phantom, (0.25, 0.25), seg))
    if (DRAZAN / "clips").is_dir():
        from musclestate.io.video import read_video

        rec = read_video(DRAZAN / "clips" / f"{CLIP}.mp4", crop=DRAZAN_CROP)
        rows.append(bench("drazan", rec.frames[: args.frames], DRAZAN_SPACING, seg))
    print(
        json.dumps(
            {
                "benchmark": "roi",
                "threads": args.threads,
                "input_size": seg.config.input_size,
                "results": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
