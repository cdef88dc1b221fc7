"""Inference speed: offline throughput and live latency, ROI included, on this machine's CPU.

Input: a real B-mode clip (Drazan, Hullfish & Baxter 2019, PeerJ Preprints 7:e27475v1, CC BY 4.0;
``../shared/data/drazan2019-mg``), cropped to the B-mode image and resized to 256 x 256.
Models: the shipped aponeurosis segmenter and an estimator bundle with the default architecture
(``TrainConfig()`` defaults) and seeded random weights - speed does not depend on the weights.

Prints, each with a ratio against a reference measured in the same process:
- segmenter and estimator per frame, PyTorch vs ONNX Runtime, batch 1 vs 32;
- the per-frame ROI work (geometry, patches, architecture measures);
- offline frames/s through ``Predictor.run`` for several settings;
- live latency percentiles and dropped frames replaying the clip at 40 fps through
  ``run_stream`` (default settings).
The last line is one JSON object with ``offline_frames_per_s``, ``live_p99_ms`` and
``live_dropped_frames`` for the default configuration.

Run: ``.venv/bin/python benchmarks/inference.py [--frames 400] [--live-seconds 10]``;
``--input frame [--image-size 96 96]`` measures an estimator trained on whole frames instead
(the ROI stage still runs for the measures, the novelty flag and the overlay).
Figures depend on what else runs on the machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLIP = (
    ROOT.parent / "shared" / "data" / "drazan2019-mg" / "clips" / "p6_isokinetic120_01_push_01.mp4"
)
CROP = (214, 44, 720, 574)  # Params.imCropRect [215, 45, 720, 574] (1-based) -> 0-based
MM_PER_PX = 0.0883  # Params.px2mmX / px2mmY
SIZE = 256


def load_frames(n: int) -> tuple[np.ndarray, tuple[float, float]]:
    """``(n, 256, 256)`` uint8 frames of the real clip (looped if shorter) and their spacing."""
    from PIL import Image

    from musclestate.io.video import read_video

    rec = read_video(CLIP, crop=CROP)
    small = np.stack(
        [np.asarray(Image.fromarray(f).resize((SIZE, SIZE), Image.BILINEAR)) for f in rec.frames]
    )
    reps = -(-n // len(small))
    frames = np.concatenate([small, small[::-1]] * reps)[:n]  # ping-pong keeps motion smooth
    spacing = (MM_PER_PX * CROP[3] / SIZE, MM_PER_PX * CROP[2] / SIZE)
    return np.ascontiguousarray(frames), spacing


def default_bundle(
    out: Path, image_size: tuple[int, int] | None = None, input_kind: str = "patches"
) -> Path:
    """A bundle with the default architecture and ROI settings, seeded random weights
    (``image_size`` overrides the network input size, ``input_kind`` the input)."""
    import torch

    from musclestate.models.bundle import make_card, save_bundle
    from musclestate.models.networks import build_network
    from musclestate.records import TARGET_UNITS
    from musclestate.roi.pipeline import ROIConfig, roi_attrs
    from musclestate.training.config import TrainConfig

    cfg = TrainConfig().replace(input=input_kind)
    if image_size is not None:
        cfg = cfg.replace(image_size=image_size)
    torch.manual_seed(0)
    n_t = len(TARGET_UNITS)
    net = build_network(cfg.model.network, cfg.in_channels, n_t, cfg.model.network_params)
    card = make_card(
        network=cfg.model.network,
        network_params=cfg.model.network_params,
        in_channels=cfg.in_channels,
        input_kind=cfg.data.input,
        context=cfg.data.context,
        image_size=cfg.data.image_size,
        targets=dict(TARGET_UNITS),
        mean=np.zeros(n_t),
        sd=np.ones(n_t),
        sd_scale=np.ones(n_t),
        roi=roi_attrs(ROIConfig()),
    )
    return save_bundle(out, net.state_dict(), card)


def per_frame_ms(fn: Callable[[], object], batch: int, min_s: float = 1.0) -> float:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_s:
        fn()
        n += batch
    return 1e3 * (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=400, help="frames for the offline runs")
    ap.add_argument("--live-seconds", type=float, default=10.0, help="length of the live replay")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for torch / ORT")
    ap.add_argument("--segmenter", default=None, help="segmenter weights [default: shipped]")
    ap.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=None,
        help="estimator input H W [default: TrainConfig's; 96 96 with --input frame]",
    )
    ap.add_argument(
        "--input",
        choices=("patches", "frame"),
        default="patches",
        help="what the estimator sees: the MG + SOL patches (default) or the whole frame",
    )
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import torch

    from musclestate.inference import ArraySource, PredictorConfig, load_predictor
    from musclestate.inference.export import OnnxEstimator, OnnxSegmenter
    from musclestate.inference.stream import StreamConfig, run_stream
    from musclestate.models.bundle import load_bundle
    from musclestate.roi.architecture import measure
    from musclestate.roi.geometry import fit_geometry
    from musclestate.roi.patches import PatchConfig, extract_patches
    from musclestate.roi.segment import Segmenter, load_segmenter

    torch.set_num_threads(args.threads)
    print(
        f"CPU cores: {os.cpu_count()}, threads used: {args.threads}, "
        f"load average at start: {os.getloadavg()[0]:.1f} (other work on the machine slows "
        "every figure below)"
    )
    frames, spacing = load_frames(args.frames)
    print(
        f"input: {CLIP.name}, {len(frames)} frames at {SIZE}x{SIZE}, "
        f"{spacing[0]:.3f} x {spacing[1]:.3f} mm/px"
    )
    tmp = Path(tempfile.mkdtemp(prefix="msbench-"))
    image_size = args.image_size
    if image_size is None and args.input == "frame":
        image_size = (96, 96)
    bundle_dir = default_bundle(tmp / "bundle", image_size, args.input)
    bundle = load_bundle(bundle_dir)
    seg = load_segmenter(args.segmenter)

    print("\n== segmenter (U-Net), ms per frame ==")
    seg_ms = {}
    for size in (seg.config.input_size, seg.config.input_size // 2):
        import dataclasses

        tseg = Segmenter(seg.network, dataclasses.replace(seg.config, input_size=size), seg.card)
        oseg = OnnxSegmenter(seg, input_size=size, threads=args.threads)
        for bs in (1, 32):
            x = frames[:bs]
            seg_ms[("torch", size, bs)] = per_frame_ms(
                lambda s=tseg, x=x, bs=bs: s.predict(x, batch_size=bs), bs
            )
            seg_ms[("onnx", size, bs)] = per_frame_ms(
                lambda s=oseg, x=x, bs=bs: s.predict(x, batch_size=bs), bs
            )
            t, o = seg_ms[("torch", size, bs)], seg_ms[("onnx", size, bs)]
            print(
                f"input {size:3d} px, batch {bs:2d}: PyTorch {t:7.2f}  ONNX Runtime {o:7.2f}"
                f"  (ORT speed-up x{t / o:.2f})"
            )

    rng = np.random.default_rng(0)
    ph, pw = PatchConfig().height, PatchConfig().width
    h, w = bundle.card.input.image_size
    if args.input == "frame":
        what, shape = f"{SIZE} x {SIZE} frames resized to 1 x {h} x {w}", (1, SIZE, SIZE)
    else:
        what, shape = f"{ph} x {pw} patches resized to 2 x {h} x {w}", (2, ph, pw)
    print(f"\n== estimator ({bundle.card.network.name}, {what}), ms per frame ==")
    oest = OnnxEstimator(bundle, threads=args.threads)
    est_ms = {}
    for bs in (1, 32):
        p = rng.integers(0, 256, size=(bs, *shape), dtype=np.uint8)
        est_ms[("torch", bs)] = per_frame_ms(lambda p=p: bundle.predict(p), bs)
        est_ms[("onnx", bs)] = per_frame_ms(lambda p=p: oest.predict(p), bs)
        t, o = est_ms[("torch", bs)], est_ms[("onnx", bs)]
        print(f"batch {bs:2d}: PyTorch {t:6.2f}  ONNX Runtime {o:6.2f}  (ORT x{t / o:.2f})")
    t_ratio = est_ms[("torch", 1)] / est_ms[("torch", 32)]
    o_ratio = est_ms[("onnx", 1)] / est_ms[("onnx", 32)]
    print(f"batch 32 vs 1 per frame: PyTorch x{t_ratio:.1f}, ONNX Runtime x{o_ratio:.1f}")

    print("\n== ROI work per frame (ms) ==")
    probs = OnnxSegmenter(seg, threads=args.threads).predict(frames[:32], batch_size=32)
    geoms = [fit_geometry(p, spacing) for p in probs]
    found = [g for g in geoms if g.found]
    print(f"muscle found in {len(found)} of {len(geoms)} sample frames")
    roi_ms = {"fit_geometry": per_frame_ms(lambda: [fit_geometry(p, spacing) for p in probs], 32)}
    if found:
        g0 = found[0]
        roi_ms["extract_patches"] = per_frame_ms(lambda: extract_patches(frames[0], g0), 1)
        roi_ms["measure"] = per_frame_ms(lambda: measure(frames[0], g0), 1)
    for k, v in roi_ms.items():
        print(f"{k:16s} {v:6.2f}")

    print("\n== offline: Predictor.run, frames per second (ROI included) ==")
    src = ArraySource(frames, np.arange(len(frames)) / 40.0, pixel_spacing_mm=spacing)
    reference = "torch, every frame, 256 px (as training)"
    runs = {
        reference: PredictorConfig(backend="torch", roi_every=1, roi_scale=1.0, threads=2),
        "onnx, every frame, 256 px": PredictorConfig(roi_every=1, roi_scale=1.0),
        "onnx, every 4th frame, 256 px": PredictorConfig(roi_every=4, roi_scale=1.0),
        "default": PredictorConfig(),
    }
    fps, cpu_fps, results = {}, {}, {}
    for name, cfg in runs.items():
        if cfg.backend == "torch":
            torch.set_num_threads(args.threads)
        pred = load_predictor(bundle_dir, config=cfg, segmenter=args.segmenter)
        pred.run(ArraySource(frames[:40], np.arange(40) / 40.0, pixel_spacing_mm=spacing))
        t0, c0 = time.perf_counter(), time.process_time()
        res = pred.run(src).estimates
        fps[name] = len(frames) / (time.perf_counter() - t0)
        cpu_fps[name] = len(frames) / (time.process_time() - c0)
        results[name] = res
        print(
            f"{name:42s} {fps[name]:7.1f} frames/s wall, {cpu_fps[name]:7.1f} per CPU-second "
            f"(muscle found in {int(res.roi_found.sum())}/{len(res)})"
        )
    print(f"default vs reference: x{fps['default'] / fps[reference]:.2f} (wall)")
    if args.input == "frame":
        # a frame estimator needs no patches: the ROI stage skips cutting them; measure what
        # that saves against the same predictor cutting them, runs alternated
        pred = load_predictor(bundle_dir, config=PredictorConfig(), segmenter=args.segmenter)
        cut = {False: [], True: []}
        for _ in range(3):
            for with_patches in cut:
                pred.roi.inner.with_patches = with_patches
                t0 = time.perf_counter()
                pred.run(src)
                cut[with_patches].append(len(frames) / (time.perf_counter() - t0))
        skip, keep = float(np.median(cut[False])), float(np.median(cut[True]))
        print(
            f"default, frame estimator, median of 3: {skip:.1f} frames/s without cutting patches, "
            f"{keep:.1f} cutting them (x{skip / keep:.2f})"
        )
    print("what the faster settings change, against the reference (frames found in both):")
    ref = results[reference]
    for name, res in results.items():
        if name == reference:
            continue
        both = ref.roi_found & res.roi_found
        d_th = np.abs(res.features["mg_thickness_mm"] - ref.features["mg_thickness_mm"])[both]
        d_z = [
            np.abs(res.mean[k] - ref.mean[k])[both] / np.nanmedian(ref.sd[k][both])
            for k in ref.targets
        ]
        print(
            f"  {name:42s} MG thickness |diff| median {np.median(d_th):.2f} mm, "
            f"p95 {np.percentile(d_th, 95):.2f} mm; estimates |diff| median "
            f"{np.median(np.concatenate(d_z)):.3f} SD (random-weight estimator)"
        )

    print("\n== live: replay at 40 fps through run_stream (default settings) ==")
    n_live = round(args.live_seconds * 40)
    live_frames = np.concatenate([frames] * (-(-n_live // len(frames))))[:n_live]
    pred = load_predictor(
        bundle_dir,
        config=PredictorConfig(batch_size=1),
        segmenter=args.segmenter,
    )
    c0 = time.process_time()
    rep = run_stream(
        pred,
        ArraySource(live_frames, np.arange(n_live) / 40.0, pixel_spacing_mm=spacing),
        config=StreamConfig(queue_size=2, stall_timeout_s=2.0),
    )
    live_cpu_ms = 1e3 * (time.process_time() - c0) / max(1, rep.frames_processed)
    lat = rep.latency_ms
    print(
        f"{rep.frames_processed} of {rep.frames_received} frames estimated, "
        f"{rep.frames_dropped} dropped; latency ms p50 {lat['p50']:.1f} p90 {lat['p90']:.1f} "
        f"p99 {lat['p99']:.1f} max {lat['max']:.1f} (budget: 25 ms at 40 fps)"
    )
    print(
        f"CPU time per estimated frame {live_cpu_ms:.1f} ms (all threads; a 40 fps source needs "
        f"<= 25 ms of one core per frame, or <= 50 ms over two)"
    )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print(
        json.dumps(
            {
                "offline_frames_per_s": round(fps["default"], 1),
                "live_p99_ms": round(lat["p99"], 2),
                "live_p50_ms": round(lat["p50"], 2),
                "live_dropped_frames": rep.frames_dropped,
                "live_frames": rep.frames_received,
                "live_cpu_ms_per_frame": round(live_cpu_ms, 2),
                "offline_frames_per_cpu_s": round(cpu_fps["default"], 1),
                "offline_reference_frames_per_s": round(fps[reference], 1),
                "segmenter_ms": {
                    f"{b}_{s}px_bs{n}": round(v, 2) for (b, s, n), v in seg_ms.items()
                },
                "estimator_ms": {f"{b}_bs{n}": round(v, 3) for (b, n), v in est_ms.items()},
                "roi_ms": {k: round(v, 2) for k, v in roi_ms.items()},
                "default_config": PredictorConfig().to_dict(),
                "load_average": round(os.getloadavg()[0], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
