"""Train the aponeurosis segmenter on a GPU with :func:`musclestate.train_segmenter`.

Two steps, each a call of this script:

``train``  trains one candidate (an input size) into ``--work``: a short calibration run measures
           the time per epoch, then the number of epochs is set so that the run (with its cosine
           learning-rate decay) fits ``--minutes``. The split is the one of the shipped model's
           card (same seed and fractions); the script stops if it is not. The candidate's Dice
           on the validation images (which chose its best epoch) and on the held-out test images
           go to ``<work>/<name>.metrics.json``.
``select`` picks the candidate with the best *validation* Dice (the test images never choose),
           scores the shipped model on the same validation and test images, and copies the chosen
           weights, card and a ``metrics.json`` with both models' figures to ``--out``.

Example (GPU machine, two candidates side by side, then the choice)::

    python train_aponeurosis_gpu.py train --images D/images --masks D/masks --work /tmp/w \
        --name s256 --input-size 256 --minutes 5 &
    python train_aponeurosis_gpu.py train ... --name s384 --input-size 384 --minutes 5 &
    wait
    python train_aponeurosis_gpu.py select --images D/images --masks D/masks --work /tmp/w \
        --out OUT

Data: DL_Track aponeurosis images and masks (Cronin, Finni & Seynnes 2020, arXiv:2009.04790,
Apache-2.0).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any


def _metrics(seg: Any, images: Path, masks: Path, names: list[str]) -> dict[str, Any]:
    from musclestate.roi.evaluate import evaluate

    res = evaluate(seg, images, masks, names)
    return {k: v for k, v in res.items() if k != "per_image"}


def _shipped_split() -> dict[str, Any]:
    from musclestate.roi.segment import SHIPPED_WEIGHTS, read_card

    return read_card(SHIPPED_WEIGHTS).split


def train(args: argparse.Namespace) -> None:
    import torch

    from musclestate.roi.evaluate import list_pairs
    from musclestate.roi.segment import NetworkConfig, load_segmenter
    from musclestate.training.segmenter import SegmenterTrainConfig, make_split, train_segmenter

    names = list_pairs(args.images, args.masks)
    split = make_split(names, seed=0, test_fraction=0.15, val_fraction=0.1)
    if not args.any_split and split != _shipped_split():
        raise SystemExit("the split differs from the shipped card's split; stopping")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu":
        torch.set_float32_matmul_precision(
            "high"
        )  # TF32 convolutions/products: a script, not the library
    net = NetworkConfig(input_size=args.input_size)
    base = SegmenterTrainConfig(
        epochs=2,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=0,
        test_fraction=0.15,
        val_fraction=0.1,
        phantom_frames=args.phantom_frames,
        threads=args.threads,
        accelerator=accelerator,
    )
    # calibration: two epochs give the time per epoch (the first includes warm-up: conservative)
    t0 = time.perf_counter()
    cal = train_segmenter(
        args.images, args.masks, work / f"{args.name}_cal.safetensors", base,
        network_config=net,
    )  # fmt: skip
    cal_card = json.loads(cal.with_suffix(".json").read_text())
    overhead_min = (time.perf_counter() - t0) / 60 - cal_card["training"]["minutes"]
    per_epoch = cal_card["training"]["minutes"] / 2
    epochs = args.epochs or max(2, int(args.minutes / per_epoch))
    print(
        f"[{args.name}] {per_epoch * 60:.2f} s/epoch, overhead {overhead_min * 60:.0f} s -> "
        f"{epochs} epochs",
        flush=True,
    )
    cfg = dataclasses.replace(base, epochs=epochs, max_minutes=args.minutes * 1.15)
    out = train_segmenter(
        args.images, args.masks, work / f"{args.name}.safetensors", cfg,
        network_config=net,
    )  # fmt: skip
    card = json.loads(out.with_suffix(".json").read_text())
    seg = load_segmenter(out)
    val = _metrics(seg, Path(args.images), Path(args.masks), card["split"]["val"])
    metrics = {
        "name": args.name,
        "input_size": args.input_size,
        "device": torch.cuda.get_device_name(0) if accelerator == "gpu" else "cpu",
        "seconds_per_epoch": per_epoch * 60,
        "training": card["training"],
        "metrics_val": val,
        "metrics_test": card["metrics_test"],
    }
    card["metrics_val"] = val
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    (work / f"{args.name}.metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"[{args.name}] val Dice {val['dice_mean']:.4f}, test Dice "
          f"{card['metrics_test']['dice_mean']:.4f}", flush=True)  # fmt: skip


def select(args: argparse.Namespace) -> None:
    from musclestate.roi.segment import load_segmenter

    work, out = Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cands = [json.loads(p.read_text()) for p in sorted(work.glob("*.metrics.json"))]
    if not cands:
        raise SystemExit(f"no candidates in {work}")
    best = max(cands, key=lambda c: c["metrics_val"]["dice_mean"])
    split = json.loads((work / f"{best['name']}.json").read_text())["split"]
    shipped = load_segmenter(None)
    images, masks = Path(args.images), Path(args.masks)
    report = {
        "chosen": best["name"],
        "chosen_by": "validation Dice (the test images never chose)",
        "candidates": cands,
        "shipped": {
            "metrics_val": _metrics(shipped, images, masks, split["val"]),
            "metrics_test": _metrics(shipped, images, masks, split["test"]),
        },
    }
    for suffix in (".safetensors", ".json"):
        shutil.copy(work / f"{best['name']}{suffix}", out / f"aponeurosis{suffix}")
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    for c in cands:
        print(f"{c['name']}: val {c['metrics_val']['dice_mean']:.4f} "
              f"test {c['metrics_test']['dice_mean']:.4f}")  # fmt: skip
    sv, st = report["shipped"]["metrics_val"], report["shipped"]["metrics_test"]
    print(f"shipped: val {sv['dice_mean']:.4f} test {st['dice_mean']:.4f}; chose {best['name']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("step", choices=["train", "select"])
    p.add_argument("--images", required=True)
    p.add_argument("--masks", required=True)
    p.add_argument("--work", required=True, help="folder of candidate runs")
    p.add_argument("--out", help="folder for the chosen model (select)")
    p.add_argument("--name", default="s256")
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--minutes", type=float, default=5.0, help="training time budget")
    p.add_argument("--epochs", type=int, default=0, help="fixed epochs (0 = from --minutes)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--phantom-frames", type=int, default=120)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--any-split", action="store_true", help="skip the split check (tests)")
    args = p.parse_args()
    train(args) if args.step == "train" else select(args)


if __name__ == "__main__":
    main()
