"""Training of the aponeurosis segmenter on folders of labelled images.

``IMAGES`` and ``MASKS`` are folders of same-named greyscale images (PNG, JPEG, TIFF, BMP); a mask
pixel > 0 is aponeurosis. This is the layout of the DL_Track aponeurosis set (Cronin, Finni &
Seynnes 2020, arXiv:2009.04790), which comes without participant ids: its split is by image, with a
fixed seed, saved as JSON beside the model. Phantom frames (``musclestate.phantom``), whose
participants are synthetic, join the training side only.

The loop is the estimator's (:func:`musclestate.training.module.fit_module`) with
:class:`~musclestate.training.module.SegmenterModule`: MONAI's ``DiceCELoss``, the epoch chosen by
MONAI's Dice on the validation images, Lightning checkpoints and ``resume``, progress events per
epoch. The model written is safetensors with its JSON card (never a pickle); it is scored on the
test images by :func:`musclestate.roi.evaluate.evaluate`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.errors import ConfigError, InputError
from musclestate.progress import ProgressFn

log = logging.getLogger(__name__)


DLTRACK_SOURCE = {
    "name": "DL_Track aponeurosis images and masks",
    "url": "https://github.com/njcronin/DL_Track",
    "licence": "Apache-2.0",
    "citation": (
        "Cronin, N. J., Finni, T., & Seynnes, O. (2020). Using deep learning to generate synthetic "
        "B-mode musculoskeletal ultrasound images. arXiv:2009.04790"
    ),
}


@dataclass(frozen=True)
class Augmentation:
    """Random changes applied to every training batch, suited to B-mode ultrasound.

    Horizontal flips reverse the fascicle direction; that is harmless here because the network
    segments aponeuroses, which are direction-free, and the flip covers probes held either way.
    """

    flip_p: float = 0.5
    rotate_deg: float = 8.0
    scale: tuple[float, float] = (0.85, 1.2)
    shift: float = 0.06
    gain: tuple[float, float] = (0.6, 1.5)
    gamma: tuple[float, float] = (0.6, 1.6)
    speckle_sd: float = 0.3
    blur_sigma: float = 1.5
    blur_p: float = 0.5


@dataclass(frozen=True)
class SegmenterTrainConfig:
    """Settings of one segmenter training run (saved in the model card's ``training``).

    Attributes:
        epochs: passes over the training images.
        batch_size: images per step.
        lr: AdamW learning rate (no weight decay; cosine decay to 5 % over the run's steps).
        seed: seeds the split, the weights, the batch order and the augmentation.
        test_fraction / val_fraction: share of images held out for testing / for choosing the
            best epoch; 0 <= test_fraction, 0 < val_fraction, sum < 0.9.
        phantom_frames: phantom frames added to the training side (0 = real images only).
        max_minutes: wall-time limit of the loop (None = no limit).
        threads: torch CPU threads.
        accelerator: passed to ``lightning.Trainer`` (``"cpu"``, ``"gpu"``, ``"auto"``); the
            weights are written as float32 on the CPU whatever trained them.
        augmentation: see :class:`Augmentation`.
    """

    epochs: int = 40
    batch_size: int = 8
    lr: float = 2e-3
    seed: int = 0
    test_fraction: float = 0.15
    val_fraction: float = 0.1
    phantom_frames: int = 0
    max_minutes: float | None = None
    threads: int = 2
    accelerator: str = "cpu"
    augmentation: Augmentation = Augmentation()

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(
                f"epochs ({self.epochs}) and batch_size ({self.batch_size}) must be >= 1"
            )
        if not (0 <= self.test_fraction < 1 and 0 < self.val_fraction < 1):
            raise ConfigError("test_fraction must be in [0, 1) and val_fraction in (0, 1)")
        if self.test_fraction + self.val_fraction >= 0.9:
            raise ConfigError("test_fraction + val_fraction leave too few training images")
        if self.phantom_frames < 0:
            raise ConfigError(f"phantom_frames must be >= 0, got {self.phantom_frames}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---- data ----------------------------------------------------------------------------------------


def make_split(
    names: Sequence[str], *, seed: int, test_fraction: float, val_fraction: float
) -> dict[str, Any]:
    """Split image names into train / val / test with a seeded permutation.

    Returns a JSON-ready dict ``{"seed", "unit", "train", "val", "test"}`` (lists sorted).
    """
    names = sorted(names)
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    n_test = round(len(names) * test_fraction)
    n_val = max(1, round(len(names) * val_fraction))
    if len(names) - n_test - n_val < 1:
        raise InputError(f"{len(names)} images are too few to split into train/val/test")
    return {
        "seed": seed,
        "unit": "image (the images carry no participant ids)",
        "test": sorted(order[:n_test]),
        "val": sorted(order[n_test : n_test + n_val]),
        "train": sorted(order[n_test + n_val :]),
    }


def load_letterboxed(
    images: Path, masks: Path, names: Sequence[str], size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images and masks letterboxed to ``(N, size, size)`` uint8 (masks 0/255, soft edges)."""
    from musclestate.io.images import read_image
    from musclestate.roi.segment import Letterbox, mask_to_input, to_input

    xs = np.zeros((len(names), size, size), np.uint8)
    ys = np.zeros((len(names), size, size), np.uint8)
    for i, name in enumerate(names):
        img = read_image(images / name)
        mask = read_image(masks / name)
        if mask.shape != img.shape:
            raise InputError(
                f"mask shape {mask.shape} differs from image shape {img.shape}", masks / name
            )
        box = Letterbox.fit(img.shape, size)
        xs[i] = to_input(img[None], box)[0, 0].round().clamp(0, 255).byte().numpy()
        ys[i] = (mask_to_input(mask[None], box)[0, 0] * 255).round().byte().numpy()
    return xs, ys


def phantom_training_frames(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` phantom frames and aponeurosis masks (labels 1 and 2), letterboxed to ``size``."""
    from musclestate.phantom import sample_labelled_frames
    from musclestate.roi.segment import Letterbox, mask_to_input, to_input

    frames, labels = sample_labelled_frames(n, size=(size, size), seed=seed)
    apo = ((labels == 1) | (labels == 2)).astype(np.uint8)
    box = Letterbox.fit(frames.shape[1:], size)
    xs = to_input(frames, box)[:, 0].round().clamp(0, 255).byte().numpy()
    ys = (mask_to_input(apo, box)[:, 0] * 255).round().byte().numpy()
    return xs, ys


class _Pairs:
    """Letterboxed images and masks served in the batches of an
    :class:`~musclestate.training.data.EpochBatchSampler` (keys ``[(row, epoch), ...]``)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        import torch

        self.x, self.y = torch.from_numpy(x[:, None]), torch.from_numpy(y[:, None])

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, key: list[tuple[int, int]]) -> tuple[Any, Any]:
        rows = [r for r, _ in key]
        return self.x[rows], self.y[rows]


# ---- augmentation --------------------------------------------------------------------------------


def augment(x: Any, y: Any, aug: Augmentation, gen: Any) -> tuple[Any, Any]:
    """Augment a batch: ``x`` (B, 1, s, s) float 0..255, ``y`` (B, 1, s, s) float 0..1.

    Geometric changes (flip, rotation, scale, shift) apply to image and mask alike; intensity
    changes (gain, gamma, multiplicative speckle noise, Gaussian blur) to the image only. All
    randomness comes from the ``torch.Generator`` ``gen`` (a CPU generator: the draws are the same
    whichever device ``x`` is on, and are moved there).
    """
    import torch
    import torch.nn.functional as F

    b, dev = x.shape[0], x.device

    def uniform(lo: float, hi: float, n: int = b) -> Any:
        return (lo + (hi - lo) * torch.rand(n, generator=gen)).to(dev)

    flip = (torch.rand(b, generator=gen) < aug.flip_p).to(dev)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    y = torch.where(flip[:, None, None, None], y.flip(-1), y)

    ang = uniform(-aug.rotate_deg, aug.rotate_deg) * math.pi / 180
    sc = uniform(*aug.scale)
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack(
        [
            torch.stack([cos, -sin, uniform(-aug.shift, aug.shift) * 2], 1),
            torch.stack([sin, cos, uniform(-aug.shift, aug.shift) * 2], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = F.grid_sample(y, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    x = (x * uniform(*aug.gain)[:, None, None, None]).clamp(0, 255)
    gamma = uniform(*aug.gamma)[:, None, None, None]
    x = 255.0 * (x / 255.0).clamp_min(1e-6) ** gamma
    noise = 1 + aug.speckle_sd * torch.rand(b, 1, 1, 1, generator=gen) * torch.randn(
        x.shape, generator=gen
    )
    noise = noise.to(dev)
    x = (x * noise.clamp_min(0)).clamp(0, 255)
    if aug.blur_sigma > 0:
        sigma = float(uniform(0.3, aug.blur_sigma, 1))
        if float(torch.rand(1, generator=gen)) < aug.blur_p:
            r = max(1, math.ceil(2.5 * sigma))
            t = torch.arange(-r, r + 1, dtype=x.dtype, device=dev)
            k = torch.exp(-0.5 * (t / sigma) ** 2)
            k = k / k.sum()
            x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
            x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
    return x, y


# ---- training ------------------------------------------------------------------------------------


def train_segmenter(
    images: str | Path,
    masks: str | Path,
    out: str | Path,
    config: SegmenterTrainConfig | None = None,
    *,
    init_from: str | Path | None = None,
    network_config: Any = None,
    resume: bool = False,
    progress: ProgressFn | None = None,
) -> Path:
    """Train an aponeurosis segmenter and write ``out`` (.safetensors) with its card and split.

    Args:
        images: folder of greyscale images.
        masks: folder of same-named binary masks (> 0 = aponeurosis).
        out: weights path ending in ``.safetensors``; the card goes to ``out.json`` beside it, the
            split to ``<stem>.split.json``, Lightning checkpoints (``last.ckpt``, the best by
            validation Dice) to ``<stem>_training/checkpoints/`` and the logged metrics to
            ``<stem>_training/logs/metrics.csv``.
        config: training settings (defaults: :class:`SegmenterTrainConfig`).
        init_from: ``"shipped"`` or a ``.safetensors`` path to fine-tune from (its network
            settings are kept); ``None`` starts from random weights seeded by ``config.seed``.
        network_config: :class:`~musclestate.roi.segment.NetworkConfig` of a new network
            (default: the shipped architecture); not allowed with ``init_from``.
        resume: continue an interrupted run of the same ``out`` from its ``last.ckpt`` (same
            order of batches and augmentation as an uninterrupted run); without it, old
            checkpoints are removed first.
        progress: receives a :class:`~musclestate.progress.ProgressEvent` per epoch (stage
            ``"train"``, unit ``"epochs"``) and per test image (stage ``"evaluate"``).

    Returns:
        ``out``. The card holds data sources, licence and citation, input size, the split and the
        Dice / IoU / line errors on the held-out test images.

    Raises:
        ConfigError: ``out`` is not ``.safetensors``, or both ``init_from`` and
            ``network_config`` are given. InputError: bad folders, too few images for the split.
        DatasetError: fewer training images than one batch.
    """
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from musclestate import __version__
    from musclestate._atomic import write_text_atomic
    from musclestate.roi.evaluate import evaluate, list_pairs
    from musclestate.roi.segment import (
        NetworkConfig,
        Segmenter,
        SegmenterCard,
        build_network,
        load_segmenter,
        normalise,
        save_segmenter,
    )
    from musclestate.training.data import EpochBatchSampler
    from musclestate.training.module import EpochProgress, SegmenterModule, fit_module

    config = config or SegmenterTrainConfig()
    images, masks, out = Path(images), Path(masks), Path(out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"--out must end in .safetensors, got {out}")
    if init_from is not None and network_config is not None:
        raise ConfigError("give either init_from (fine-tune) or network_config (new network)")
    torch.set_num_threads(config.threads)
    L.seed_everything(config.seed, workers=True, verbose=False)
    if init_from is None:
        net_config = network_config or NetworkConfig()
        network = build_network(net_config)
        init = "random"
    else:
        base = load_segmenter(None if str(init_from) == "shipped" else init_from)
        net_config, network = base.config, base.network.train()
        init = str(init_from)

    names = list_pairs(images, masks)
    split = make_split(
        names,
        seed=config.seed,
        test_fraction=config.test_fraction,
        val_fraction=config.val_fraction,
    )
    write_text_atomic(out.with_name(out.stem + ".split.json"), json.dumps(split, indent=2) + "\n")
    size = net_config.input_size
    log.info("loading %d training and %d validation images", len(split["train"]), len(split["val"]))
    xt, yt = load_letterboxed(images, masks, split["train"], size)
    if config.phantom_frames:
        xp, yp = phantom_training_frames(config.phantom_frames, size, config.seed)
        xt, yt = np.concatenate([xt, xp]), np.concatenate([yt, yp])
    xv, yv = load_letterboxed(images, masks, split["val"], size)

    sampler = EpochBatchSampler(len(xt), config.batch_size, config.seed)
    train_dl = DataLoader(_Pairs(xt, yt), sampler=sampler, batch_size=None)
    val_set = TensorDataset(torch.from_numpy(xv[:, None]), torch.from_numpy(yv[:, None]))
    val_dl = DataLoader(val_set, batch_size=16)
    module = SegmenterModule(
        network,
        lr=config.lr,
        total_steps=config.epochs * len(sampler),
        seed=config.seed + 1,
        normalise=normalise,
        augment=lambda x, y, gen: augment(x, y, config.augmentation, gen),
    )
    bar = None if progress is None else EpochProgress(progress, config.epochs, message=out.name)
    t0 = time.perf_counter()
    fit = fit_module(
        module,
        out.with_name(out.stem + "_training"),
        train_loader=train_dl,
        val_loader=val_dl,
        monitor="val_dice",
        mode="max",
        epochs=config.epochs,
        max_minutes=config.max_minutes,
        resume=resume,
        progress=bar,
        accelerator=config.accelerator,
        deterministic=False,
    )
    minutes = (time.perf_counter() - t0) / 60
    network = module.net.eval()

    sources = [DLTRACK_SOURCE] if "dltrack" in str(images).lower() else []
    if config.phantom_frames:
        phantom = {
            "name": "musclestate phantom",
            "function": "musclestate.phantom.sample_labelled_frames",
        }
        sources.append(phantom)
    card = SegmenterCard(
        network=net_config,
        musclestate_version=__version__,
        task="aponeurosis segmentation (probability per pixel) of longitudinal B-mode images",
        input={
            "size": [size, size],
            "preprocessing": "greyscale, letterboxed (aspect kept, zero padding), per-image "
            "standardisation",
        },
        output="sigmoid probability of aponeurosis; threshold 0.5",
        data={
            "images": str(images),
            "masks": str(masks),
            "n_images": len(names),
            "sources": sources,
            "phantom_frames": config.phantom_frames,
            "note": "the DL_Track images carry no participant ids, so the split is by image; "
            "images of one person may fall on both sides",
        },
        split=split,
        training={
            **config.to_dict(),
            "init_from": init,
            "best_epoch": fit.best_epoch,
            "best_val_dice": fit.best_score,
            "epochs_run": fit.epochs_run,
            "minutes": round(minutes, 2),
            "torch": torch.__version__,
        },
    )
    if split["test"]:
        metrics = evaluate(
            Segmenter(network, net_config, card), images, masks, split["test"], progress=progress
        )
        summary = {k: v for k, v in metrics.items() if k != "per_image"}
        card = dataclasses.replace(card, metrics_test=summary)
    save_segmenter(out, network, card)
    return out
