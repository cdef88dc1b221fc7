"""Training speed of the default estimator on CPU: images/s and epoch time.

Trains the default network (``TrainConfig()``: compact_resnet, default image size, batch,
augmentation) through the full pipeline (ExampleSet -> FrameDataset with augmentation ->
Lightning with validation and a checkpoint every epoch) on synthetic 2 x 64 x 128 uint8 patches
(the ROI stage's default patch size), and, as the reference in the same process, a bare PyTorch
loop doing the same optimiser steps on ready-made tensors. The ratio says what the pipeline
costs on top of the network's own arithmetic.

    .venv/bin/python benchmarks/training.py [--threads 2] [--frames 2048] [--epochs 2]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from musclestate.models.networks import build_network
from musclestate.training.config import TrainConfig
from musclestate.training.data import Cohort, ExampleSet, RecordingData, resize_images
from musclestate.training.module import fit_estimator

UNITS = {"ankle_angle": "deg", "ankle_moment": "N m", "mg_activation": "%MVC",
         "sol_activation": "%MVC"}  # fmt: skip


def _cohort(frames: int, participants: int, seed: int, size: tuple[int, int]) -> Cohort:
    rng = np.random.default_rng(seed)
    recs = []
    per = frames // participants
    for p in range(participants):
        raw = rng.integers(0, 256, (per, 2, 64, 128), dtype=np.uint8)
        recs.append(
            RecordingData(
                id=f"P{p}-t", participant=f"P{p}", trial="t", t_s=np.arange(per) / 25.0,
                images=resize_images(raw, size),
                targets={n: rng.normal(size=per) for n in UNITS},
            )
        )  # fmt: skip
    return Cohort(tuple(recs), UNITS)


def _bare_loop(cfg: TrainConfig, examples: ExampleSet, steps: int) -> float:
    """Images/s of plain forward/backward/step on pre-made float tensors."""
    torch.manual_seed(0)
    net = build_network(cfg.model.network, cfg.in_channels, len(UNITS), cfg.model.network_params)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.optimisation.lr)
    x = torch.from_numpy(
        examples.inputs(np.arange(cfg.optimisation.batch_size)).astype(np.float32) / 255
    )
    y = torch.zeros(cfg.optimisation.batch_size, 2 * len(UNITS))
    net.train()
    for _ in range(2):  # warm-up
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    return steps * cfg.optimisation.batch_size / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--image-size", type=int, nargs=2, default=None)
    args = ap.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    cfg = TrainConfig().replace(epochs=args.epochs, patience=args.epochs, num_threads=args.threads,
                      accelerator="cpu")  # fmt: skip
    if args.image_size:
        cfg = cfg.replace(image_size=tuple(args.image_size))
    train = ExampleSet.from_cohort(_cohort(args.frames, 4, 0, cfg.data.image_size))
    val = ExampleSet.from_cohort(_cohort(256, 1, 1, cfg.data.image_size))
    n_params = sum(
        p.numel()
        for p in build_network(
            cfg.model.network, cfg.in_channels, 4, cfg.model.network_params
        ).parameters()
    )
    ref = _bare_loop(cfg, train, steps=max(4, args.frames // cfg.optimisation.batch_size // 2))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        fit = fit_estimator(train, val, cfg, Path(tmp) / "w")
        total = time.perf_counter() - t0
    steps = len(train) // cfg.optimisation.batch_size
    epoch_s = total / fit.epochs_run
    ips = steps * cfg.optimisation.batch_size / epoch_s
    print(f"network {cfg.model.network} ({n_params / 1e6:.2f} M parameters), input "
          f"{cfg.in_channels} x {cfg.data.image_size[0]} x {cfg.data.image_size[1]}, "
          f"batch {cfg.optimisation.batch_size}, "
          f"{args.threads} thread(s)")  # fmt: skip
    print(f"pipeline (augmentation, Lightning, validation of {len(val)}, checkpoints): "
          f"{ips:.0f} training images/s, {epoch_s:.2f} s/epoch of {len(train)} frames")  # fmt: skip
    print(f"reference (bare PyTorch loop, same network and batch): {ref:.0f} images/s")
    print(f"ratio pipeline / reference: {ips / ref:.2f}")
    print(json.dumps({
        "benchmark": "training", "network": cfg.model.network,
        "image_size": list(cfg.data.image_size),
        "batch_size": cfg.optimisation.batch_size, "threads": args.threads, "frames": len(train),
        "train_images_per_s": round(ips, 1), "epoch_s": round(epoch_s, 3),
        "reference_images_per_s": round(ref, 1), "ratio_vs_reference": round(ips / ref, 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
