"""Phantom speed: frames per second for 256 x 256 frames, including H.264 encoding.

Runs a one-participant cohort through :func:`musclestate.phantom.simulate_cohort` (mechanics,
image formation, label masks, video encoding, CSV and truth files) and reports end-to-end frames
per second, plus the render-only and encode-only rates. For comparison it times, in the same
process, a plain numpy reference renderer (random scatterer order, ``np.add.at`` bilinear
splatting, 2-D Gaussian blur), the ~60 ms/frame approach of DESIGN.md section 4.

Floor (issue 3): 25 frames/s end to end on a 2-core machine. Last line: one JSON object.

    python benchmarks/phantom.py [--seconds 20] [--size 256]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from musclestate.io.video import write_video
from musclestate.phantom import PhantomConfig, ProtocolConfig, simulate_cohort
from musclestate.phantom.cohort import make_participant
from musclestate.phantom.geometry import rest_geometry
from musclestate.phantom.imaging import TissueModel


def reference_render(tm: TissueModel, g: dict[str, float]) -> np.ndarray:
    """Plain numpy B-mode frame: add.at bilinear splat, 2-D blur, envelope, log compression."""
    x, y = tm.positions(g)
    dy, dx = tm.grid.spacing_mm
    r = y / dy - 0.5
    c = (x + tm.grid.width_mm / 2) / dx - 0.5
    ok = (r >= 0) & (r < tm.grid.rows - 1) & (c >= 0) & (c < tm.grid.cols - 1)
    r, c, y, a = r[ok], c[ok], y[ok], tm._amp[ok]
    e = a * np.exp(-1j * tm._k2 * y)
    r0, c0 = np.floor(r).astype(int), np.floor(c).astype(int)
    fr, fc = r - r0, c - c0
    iq = np.zeros((tm.grid.rows, tm.grid.cols), complex)
    np.add.at(iq, (r0, c0), e * (1 - fr) * (1 - fc))
    np.add.at(iq, (r0 + 1, c0), e * fr * (1 - fc))
    np.add.at(iq, (r0, c0 + 1), e * (1 - fr) * fc)
    np.add.at(iq, (r0 + 1, c0 + 1), e * fr * fc)
    sig = (tm._sig_ax, tm._sig_lat)
    iq = ndimage.gaussian_filter(iq.real, sig) + 1j * ndimage.gaussian_filter(iq.imag, sig)
    return tm.to_uint8(np.abs(iq).astype(np.float32))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="tracking seconds")
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    size = (args.size, args.size)

    cfg = PhantomConfig(
        participants=1,
        seconds=args.seconds,
        fps=25.0,
        size=size,
        protocol=ProtocolConfig(tracking_trials=1, mvc_seconds=4.0, rom_seconds=6.0),
    )
    n_frames = sum(round(s * cfg.fps) for _, _, s in cfg.trials())
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        simulate_cohort(Path(tmp) / "cohort", config=cfg)
        total_s = time.perf_counter() - t0

    p, tm = make_participant(0, 0, size)
    g = rest_geometry(p).at(0)
    rng = np.random.default_rng(0)
    n = 100
    frames = np.empty((n, *size), np.uint8)
    t0 = time.perf_counter()
    for k in range(n):
        g["shift_deep_mm"] = -0.05 * k
        frames[k] = tm.render(g, rng)
    render_fps = n / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_video(Path(tmp) / "v.mp4", frames, 25.0)
        encode_fps = n / (time.perf_counter() - t0)
    m = 20
    t0 = time.perf_counter()
    for k in range(m):
        g["shift_deep_mm"] = -0.05 * k
        reference_render(tm, g)
    ref_fps = m / (time.perf_counter() - t0)

    fps = n_frames / total_s
    print(f"end to end ({n_frames} frames {size[0]}x{size[1]}, 1 participant): {fps:.1f} frames/s")
    print(f"render only: {render_fps:.1f} frames/s ({1000 / render_fps:.1f} ms/frame)")
    print(f"H.264 encode only (crf 18): {encode_fps:.1f} frames/s")
    print(f"plain numpy reference render: {ref_fps:.1f} frames/s ({1000 / ref_fps:.1f} ms/frame)")
    print(f"render speed-up vs reference: {render_fps / ref_fps:.1f}x (floor: 25 frames/s)")
    print(
        json.dumps(
            {
                "frames_per_s": round(fps, 2),
                "render_frames_per_s": round(render_fps, 2),
                "encode_frames_per_s": round(encode_fps, 2),
                "reference_render_frames_per_s": round(ref_fps, 2),
                "speedup_vs_reference": round(render_fps / ref_fps, 2),
                "frames": n_frames,
                "size": list(size),
                "floor_frames_per_s": 25.0,
            }
        )
    )


if __name__ == "__main__":
    main()
