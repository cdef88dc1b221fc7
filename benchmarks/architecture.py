"""Speed of ``musclestate architecture measure`` per frame on the CPU, on a real clip.

Frames: the B-mode area (720 x 574) of a drazan2019-mg clip (Drazan, Hullfish & Baxter 2019,
CC BY 4.0). The reference is the aponeurosis network alone (batched) in the same process; the
whole per-frame measurement (network, lines, thickness, fascicle angle, SOL) is reported as
frames per second and as a ratio to the reference, against the target of 30 frames/s. Final
line: one JSON object.

    python benchmarks/architecture.py [--frames 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DRAZAN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "drazan2019-mg"
CLIP = "p6_isokinetic120_01_push_01"
CROP = (214, 44, 720, 574)  # Params.imCropRect of p6_params.mat, made 0-based
SPACING = (0.0883, 0.0883)
TARGET_FPS = 30.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    from musclestate.architecture.frames import FrameSettings, measure_frames
    from musclestate.io import read_recording
    from musclestate.roi.segment import load_segmenter

    torch.set_num_threads(args.threads)
    rec = read_recording(DRAZAN / "clips" / f"{CLIP}.mp4", crop=CROP, pixel_spacing_mm=SPACING)
    frames, t_s = rec.frames[: args.frames], rec.t_s[: args.frames]
    seg = load_segmenter()
    seg.predict(frames[:4])  # warm up
    t0 = time.perf_counter()
    seg.predict(frames)
    net_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    measure_frames(frames, t_s, SPACING, settings=FrameSettings())
    whole_s = time.perf_counter() - t0
    n = len(frames)
    res = {
        "benchmark": "architecture",
        "clip": CLIP,
        "frames": n,
        "frame_shape": list(frames.shape[1:]),
        "threads": args.threads,
        "network_fps": round(n / net_s, 2),
        "architecture_fps": round(n / whole_s, 2),
        "ratio_to_network": round(whole_s / net_s, 2),
        "target_fps": TARGET_FPS,
        "meets_target": n / whole_s >= TARGET_FPS,
    }
    print(
        f"{n} frames {frames.shape[2]}x{frames.shape[1]}, {args.threads} threads: network alone "
        f"{res['network_fps']} frames/s; whole measurement {res['architecture_fps']} frames/s "
        f"(x{res['ratio_to_network']} the network's time); target {TARGET_FPS} frames/s"
    )
    print(json.dumps(res))


if __name__ == "__main__":
    main()
