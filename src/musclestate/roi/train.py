"""Training and evaluation of the aponeurosis segmenter on folders of labelled images.

``IMAGES`` and ``MASKS`` are folders of same-named greyscale images (PNG, JPEG, TIFF, BMP); a mask
pixel > 0 is aponeurosis. This is the layout of the DL_Track aponeurosis set (Cronin, Finni &
Seynnes 2020, arXiv:2009.04790), which comes without participant ids: its split is by image, with a
fixed seed, saved as JSON beside the model. Phantom frames (``musclestate.phantom``), whose
participants are synthetic, join the training side only.

Loss: Dice + binary cross-entropy (``monai.losses.DiceCELoss``). The loop runs in Lightning; the
best weights by validation Dice are checkpointed as safetensors (never pickles).
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
from musclestate.io.formats import IMAGE_SUFFIXES
from musclestate.progress import ProgressFn, emit

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
class TrainConfig:
    """Settings of one training run (saved in the model card).

    Attributes:
        epochs: passes over the training images.
        batch_size: images per step.
        lr: Adam learning rate (cosine decay to 5 % over the run).
        seed: seeds the split, the weights, the batch order and the augmentation.
        test_fraction / val_fraction: share of images held out for testing / for choosing the
            best epoch; 0 < fractions, sum < 1.
        phantom_frames: phantom frames added to the training side (0 = real images only).
        max_minutes: wall-time limit of the loop (None = no limit).
        threads: torch CPU threads.
        accelerator: passed to ``lightning.Trainer`` (``"cpu"``, ``"gpu"``, ``"auto"``); the
            weights are written as float32 on the CPU whatever trained them.
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


def list_pairs(images: str | Path, masks: str | Path) -> list[str]:
    """Sorted file names present in both ``images`` and ``masks`` (same name, image suffix)."""
    images, masks = Path(images), Path(masks)
    for folder in (images, masks):
        if not folder.is_dir():
            raise InputError("not a folder of images", folder)
    names = sorted(p.name for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the folder", images)
    missing = [n for n in names if not (masks / n).is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} image(s) have no same-named mask, e.g. {missing[0]!r}; every image "
            "needs MASKS/<same name>",
            masks,
        )
    return names


def read_grey(path: str | Path) -> np.ndarray:
    """An image file as ``(H, W)`` uint8 grey, read by :func:`musclestate.io.images.read_image`."""
    from musclestate.io.images import read_image

    return read_image(path)


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
    from musclestate.roi.segment import Letterbox, mask_to_input, to_input

    xs = np.zeros((len(names), size, size), np.uint8)
    ys = np.zeros((len(names), size, size), np.uint8)
    for i, name in enumerate(names):
        img = read_grey(images / name)
        mask = read_grey(masks / name)
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
    from musclestate.roi.segment import Letterbox, mask_to_input, to_input

    try:
        from musclestate.phantom import sample_labelled_frames
    except ImportError as exc:
        raise ConfigError(
            "phantom frames requested but musclestate.phantom.sample_labelled_frames is not "
            f"available ({exc}); train with --phantom-frames 0"
        ) from exc
    frames, labels = sample_labelled_frames(n, size=(size, size), seed=seed)
    apo = ((labels == 1) | (labels == 2)).astype(np.uint8)
    box = Letterbox.fit(frames.shape[1:], size)
    xs = to_input(frames, box)[:, 0].round().clamp(0, 255).byte().numpy()
    ys = (mask_to_input(apo, box)[:, 0] * 255).round().byte().numpy()
    return xs, ys


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


# ---- Lightning module ----------------------------------------------------------------------------


def _lightning_module(network: Any, config: TrainConfig, steps_per_epoch: int) -> Any:
    import lightning as L
    import torch
    from monai.losses import DiceCELoss

    from musclestate.roi.segment import normalise

    class SegModule(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.network = network
            self.loss = DiceCELoss(sigmoid=True, squared_pred=True, smooth_nr=1e-5, smooth_dr=1e-5)
            self.gen = torch.Generator().manual_seed(config.seed + 1)
            self.val_stats: list[Any] = []

        def training_step(self, batch: Any, _idx: int) -> Any:
            x, y = batch
            x, y = augment(x.float(), y.float() / 255.0, config.augmentation, self.gen)
            loss = self.loss(self.network(normalise(x)), (y > 0.5).float())
            self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(x))
            return loss

        def validation_step(self, batch: Any, _idx: int) -> None:
            x, y = batch
            p = torch.sigmoid(self.network(normalise(x.float()))) > 0.5
            g = y > 127
            inter = (p & g).sum(dim=(1, 2, 3)).float()
            tot = (p.sum(dim=(1, 2, 3)) + g.sum(dim=(1, 2, 3))).float()
            dice = torch.where(tot > 0, 2 * inter / tot.clamp_min(1), torch.ones_like(tot))
            self.val_stats.append(dice)

        def on_validation_epoch_end(self) -> None:
            dice = torch.cat(self.val_stats).mean() if self.val_stats else torch.tensor(0.0)
            self.val_stats.clear()
            self.log("val_dice", dice, prog_bar=True)

        def configure_optimizers(self) -> Any:
            opt = torch.optim.Adam(self.network.parameters(), lr=config.lr)
            total = max(1, config.epochs * steps_per_epoch)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return SegModule()


def _checkpoint_callback(folder: Path, net_config: Any) -> Any:
    """Lightning callback writing ``best.safetensors`` (by val Dice) and ``last.safetensors``."""
    import lightning as L

    from musclestate.roi.segment import save_segmenter

    class SafetensorsCheckpoint(L.Callback):
        def __init__(self) -> None:
            self.best = -1.0
            self.best_epoch = -1
            self.best_state: dict[str, Any] | None = None

        def on_validation_end(self, trainer: Any, module: Any) -> None:
            if trainer.sanity_checking:
                return
            dice = float(trainer.callback_metrics.get("val_dice", -1.0))
            card = {"checkpoint": {"epoch": trainer.current_epoch, "val_dice": dice}}
            save_segmenter(folder / "last.safetensors", module.network, net_config, card)
            if dice > self.best:
                self.best, self.best_epoch = dice, trainer.current_epoch
                self.best_state = {
                    k: v.detach().clone() for k, v in module.network.state_dict().items()
                }
                save_segmenter(folder / "best.safetensors", module.network, net_config, card)

    return SafetensorsCheckpoint()


def train_segmenter(
    images: str | Path,
    masks: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    init_from: str | Path | None = None,
    network_config: Any = None,
    progress: bool = True,
) -> Path:
    """Train an aponeurosis segmenter and write ``out`` (.safetensors) with its card and split.

    Args:
        images: folder of greyscale images.
        masks: folder of same-named binary masks (> 0 = aponeurosis).
        out: weights path ending in ``.safetensors``; the card goes to ``out.json`` beside it, the
            split to ``<stem>.split.json``, checkpoints to ``<stem>_checkpoints/``.
        config: training settings (defaults: :class:`TrainConfig`).
        init_from: ``"shipped"`` or a ``.safetensors`` path to fine-tune from (its network
            settings are kept); ``None`` starts from random weights seeded by ``config.seed``.
        network_config: :class:`~musclestate.roi.segment.NetworkConfig` of a new network
            (default: the shipped architecture); not allowed with ``init_from``.
        progress: show Lightning's progress bar.

    Returns:
        ``out``. The card holds data sources, licence and citation, input size, the split and the
        Dice / IoU / line errors on the held-out test images.
    """
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from musclestate import __version__
    from musclestate.roi.segment import NetworkConfig, build_network, load_segmenter, save_segmenter

    config = config or TrainConfig()
    images, masks, out = Path(images), Path(masks), Path(out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"--out must end in .safetensors, got {out}")
    torch.set_num_threads(config.threads)
    L.seed_everything(config.seed, workers=True, verbose=False)

    if init_from is not None and network_config is not None:
        raise ConfigError("give either init_from (fine-tune) or network_config (new network)")
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
    split_path = out.with_name(out.stem + ".split.json")
    from musclestate._atomic import write_text_atomic

    write_text_atomic(split_path, json.dumps(split, indent=2) + "\n")
    size = net_config.input_size
    log.info("loading %d training and %d validation images", len(split["train"]), len(split["val"]))
    xt, yt = load_letterboxed(images, masks, split["train"], size)
    if config.phantom_frames:
        xp, yp = phantom_training_frames(config.phantom_frames, size, config.seed)
        xt, yt = np.concatenate([xt, xp]), np.concatenate([yt, yp])
    xv, yv = load_letterboxed(images, masks, split["val"], size)

    def tensors(x: np.ndarray, y: np.ndarray) -> Any:
        return TensorDataset(torch.from_numpy(x[:, None]), torch.from_numpy(y[:, None]))

    train_dl = DataLoader(
        tensors(xt, yt),
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=len(xt) > config.batch_size,
        generator=torch.Generator().manual_seed(config.seed),
    )
    val_dl = DataLoader(tensors(xv, yv), batch_size=16)
    module = _lightning_module(network, config, len(train_dl))
    ckpt_dir = out.with_name(out.stem + "_checkpoints")
    ckpt = _checkpoint_callback(ckpt_dir, net_config)
    max_time = None
    if config.max_minutes is not None:
        max_time = {"minutes": float(config.max_minutes)}
    from musclestate.training.module import quiet_lightning

    quiet_lightning()
    trainer = L.Trainer(
        max_epochs=config.epochs,
        max_time=max_time,
        accelerator=config.accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        callbacks=[ckpt],
        deterministic=False,
        num_sanity_val_steps=0,
    )
    t0 = time.perf_counter()
    trainer.fit(module, train_dl, val_dl)
    minutes = (time.perf_counter() - t0) / 60
    network.cpu()
    if ckpt.best_state is not None:
        network.load_state_dict(ckpt.best_state)
    network.eval()

    card: dict[str, Any] = {
        "task": "aponeurosis segmentation (probability per pixel) of longitudinal B-mode images",
        "input": {
            "size": [size, size],
            "preprocessing": "greyscale, letterboxed (aspect kept, zero padding), per-image "
            "standardisation",
        },
        "output": "sigmoid probability of aponeurosis; threshold 0.5",
        "data": {
            "images": str(images),
            "masks": str(masks),
            "n_images": len(names),
            "sources": [DLTRACK_SOURCE] if "dltrack" in str(images).lower() else [],
            "phantom_frames": config.phantom_frames,
            "note": "the DL_Track images carry no participant ids, so the split is by image; "
            "images of one person may fall on both sides",
        },
        "split": split,
        "training": {
            **config.to_dict(),
            "init_from": init,
            "best_epoch": ckpt.best_epoch,
            "best_val_dice": ckpt.best,
            "epochs_run": trainer.current_epoch,
            "minutes": round(minutes, 2),
            "torch": torch.__version__,
        },
        "musclestate_version": __version__,
    }
    if config.phantom_frames:
        card["data"]["sources"].append(
            {
                "name": "musclestate phantom",
                "function": "musclestate.phantom.sample_labelled_frames",
            }
        )
    save_segmenter(out, network, net_config, card)
    if split["test"]:
        from musclestate.roi.segment import Segmenter

        metrics = evaluate(Segmenter(network, net_config, card), images, masks, split["test"])
        card["metrics_test"] = {k: v for k, v in metrics.items() if k != "per_image"}
        save_segmenter(out, network, net_config, card)
    return out


# ---- evaluation ----------------------------------------------------------------------------------


def dice_iou(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Dice and IoU of two boolean masks (both empty = 1, 1)."""
    inter = float(np.logical_and(pred, truth).sum())
    tot = float(pred.sum() + truth.sum())
    union = tot - inter
    if tot == 0:
        return 1.0, 1.0
    return 2 * inter / tot, inter / union


def line_errors(pred_prob: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Mean absolute depth error (rows) of the superficial and deep aponeurosis lines.

    Both lines come from :func:`musclestate.roi.geometry.fit_geometry` on the prediction and on
    the true mask, compared over the columns covered by the true band. NaN where either is missing.
    """
    from musclestate.roi.geometry import fit_geometry

    gp = fit_geometry(pred_prob, (1.0, 1.0))
    gt = fit_geometry(truth.astype(np.float32), (1.0, 1.0))
    out = {}
    for name in ("superficial", "deep"):
        lp, lt = gp.line(name), gt.line(name)
        cover = gt.coverage(name)
        ok = cover & np.isfinite(lp) & np.isfinite(lt)
        out[name] = float(np.mean(np.abs(lp[ok] - lt[ok]))) if ok.any() else float("nan")
    return out


def evaluate(
    segmenter: Any,
    images: str | Path,
    masks: str | Path,
    names: Sequence[str] | None = None,
    *,
    pixel_spacing_mm: tuple[float, float] | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Score ``segmenter`` on same-named image/mask files, at each image's own resolution.

    ``progress`` receives a :class:`~musclestate.progress.ProgressEvent` (stage ``"evaluate"``,
    unit ``"images"``) after each image.

    Returns:
        ``images`` (count), ``dice_mean``, ``dice_sd``, ``iou_mean``, ``line_error_px_mean``
        (mean over images of the mean of both lines), ``superficial_error_px_mean``,
        ``deep_error_px_mean``, ``lines_missed`` (true lines not found in the prediction),
        ``line_error_mm_mean`` when ``pixel_spacing_mm`` is given, and ``per_image`` rows.
    """
    images, masks = Path(images), Path(masks)
    all_names = list_pairs(images, masks)
    if names is None:
        names = all_names
    unknown = sorted(set(names) - set(all_names))
    if unknown:
        raise InputError(f"{len(unknown)} listed image(s) not found, e.g. {unknown[0]!r}", images)
    rows = []
    for i, name in enumerate(names):
        img = read_grey(images / name)
        truth = read_grey(masks / name) > 0
        prob = segmenter.predict(img)
        d, j = dice_iou(prob > 0.5, truth)
        le = line_errors(prob, truth)
        rows.append({"name": name, "dice": d, "iou": j, **{f"{k}_px": v for k, v in le.items()}})
        emit(progress, "evaluate", i + 1, len(names), "images", name)
    if not rows:
        raise InputError("no images to evaluate", images)
    dice = np.array([r["dice"] for r in rows])
    sup = np.array([r["superficial_px"] for r in rows])
    deep = np.array([r["deep_px"] for r in rows])
    both = np.concatenate([sup, deep])
    per_image_line = np.nanmean(np.stack([sup, deep]), axis=0) if len(both) else both
    res: dict[str, Any] = {
        "images": len(rows),
        "dice_mean": float(dice.mean()),
        "dice_sd": float(dice.std()),
        "iou_mean": float(np.mean([r["iou"] for r in rows])),
        "line_error_px_mean": float(np.nanmean(per_image_line))
        if np.isfinite(per_image_line).any()
        else float("nan"),
        "superficial_error_px_mean": float(np.nanmean(sup)) if np.isfinite(sup).any() else None,
        "deep_error_px_mean": float(np.nanmean(deep)) if np.isfinite(deep).any() else None,
        "lines_missed": int(np.isnan(both).sum()),
    }
    if pixel_spacing_mm is not None:
        res["line_error_mm_mean"] = res["line_error_px_mean"] * float(pixel_spacing_mm[0])
    res["per_image"] = rows
    return res


def load_split(path: str | Path, part: str) -> list[str]:
    """Names of one ``part`` ("train", "val", "test") of a saved split JSON (or a model card)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read split JSON ({exc})", path) from exc
    data = data.get("split", data)
    if part not in data or not isinstance(data[part], list):
        raise InputError(f"split has no list {part!r}; parts: train, val, test", path)
    return list(data[part])
