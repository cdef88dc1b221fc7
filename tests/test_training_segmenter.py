"""Segmenter training: split, augmentation, a small learning run, resume, fine-tuning, scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from musclestate.errors import ConfigError, InputError
from musclestate.roi.evaluate import dice_iou, evaluate, list_pairs, load_split
from musclestate.roi.segment import NetworkConfig, load_segmenter
from musclestate.training.segmenter import (
    Augmentation,
    SegmenterTrainConfig,
    augment,
    make_split,
    train_segmenter,
)

pytestmark = pytest.mark.slow  # trains networks or runs whole workflows


def synthetic_pairs(folder: Path, n: int, seed: int) -> tuple[Path, Path]:
    """``n`` speckled images with two bright sloping bands and oblique streaks, and masks."""
    rng = np.random.default_rng(seed)
    img_dir, mask_dir = folder / "images", folder / "masks"
    img_dir.mkdir(parents=True)
    mask_dir.mkdir(parents=True)
    for i in range(n):
        h, w = rng.choice([72, 80]), rng.choice([96, 112])
        rows, cols = np.mgrid[0:h, 0:w].astype(float)
        img = 60 * rng.rayleigh(1.0, (h, w))
        # oblique bright streaks (fascicle-like distractors)
        img += 50 * (np.sin((rows + 0.5 * cols) / 2.0 + rng.uniform(0, 6)) > 0.8)
        mask = np.zeros((h, w), bool)
        for r0 in (rng.uniform(0.12, 0.25) * h, rng.uniform(0.55, 0.75) * h):
            line = r0 + rng.uniform(-0.1, 0.1) * cols
            band = np.abs(rows - line) < 2.0
            mask |= band
            img[band] += 110
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(img_dir / f"s{i:02d}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(mask_dir / f"s{i:02d}.png")
    return img_dir, mask_dir


def test_split_is_seeded_disjoint_and_complete() -> None:
    names = [f"img_{i:03d}.png" for i in range(100)]
    a = make_split(names, seed=3, test_fraction=0.15, val_fraction=0.1)
    b = make_split(names, seed=3, test_fraction=0.15, val_fraction=0.1)
    c = make_split(names, seed=4, test_fraction=0.15, val_fraction=0.1)
    assert a == b and a["test"] != c["test"]
    assert (len(a["test"]), len(a["val"]), len(a["train"])) == (15, 10, 75)
    parts = [set(a[k]) for k in ("train", "val", "test")]
    assert set().union(*parts) == set(names) and sum(map(len, parts)) == len(names)
    assert "participant" in a["unit"]


def test_augmentation_is_seeded_and_keeps_image_and_mask_aligned() -> None:
    import torch

    y = torch.zeros(4, 1, 64, 64)
    y[:, :, 20:24, 5:50] = 1.0
    y[:, :, 40:43, 10:60] = 1.0
    x = 40 + 200 * y
    geom_only = Augmentation(gain=(1, 1), gamma=(1, 1), speckle_sd=0.0, blur_sigma=0.0)
    xa, ya = augment(x, y, geom_only, torch.Generator().manual_seed(0))
    xb, yb = augment(x, y, geom_only, torch.Generator().manual_seed(0))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(ya, y)  # something moved
    assert float(ya.min()) >= 0 and float(ya.max()) <= 1
    # the bright pixels of the image are where the mask is
    xs = (xa - xa.mean()).flatten()
    ys = (ya - ya.mean()).flatten()
    assert float((xs * ys).sum() / (xs.norm() * ys.norm())) > 0.95
    xf, _ = augment(x, y, Augmentation(), torch.Generator().manual_seed(1))
    assert xf.shape == x.shape and float(xf.min()) >= 0 and float(xf.max()) <= 255


def test_dice_iou_table() -> None:
    a = np.zeros((4, 4), bool)
    b = a.copy()
    assert dice_iou(a, b) == (1.0, 1.0)
    a[0, :2] = True
    b[0, 1:3] = True
    assert dice_iou(a, b) == pytest.approx((0.5, 1 / 3))


def test_bad_folders_and_configs(tmp_path: Path) -> None:
    (tmp_path / "i").mkdir()
    (tmp_path / "m").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "i" / "a.png")
    with pytest.raises(InputError, match="no same-named mask"):
        list_pairs(tmp_path / "i", tmp_path / "m")
    with pytest.raises(InputError, match="not a folder"):
        list_pairs(tmp_path / "nope", tmp_path / "m")
    with pytest.raises(ConfigError):
        SegmenterTrainConfig(epochs=0)
    with pytest.raises(ConfigError):
        SegmenterTrainConfig(test_fraction=0.5, val_fraction=0.45)


def test_training_learns_bands_and_fine_tunes(tmp_path: Path) -> None:
    images, masks = synthetic_pairs(tmp_path / "data", 28, seed=0)
    net = NetworkConfig(input_size=64, channels=(8, 16, 32), strides=(2, 2), num_res_units=0)
    cfg = SegmenterTrainConfig(
        epochs=12, batch_size=4, lr=5e-3, seed=0, test_fraction=0.2, val_fraction=0.15
    )
    seen: list = []
    out = train_segmenter(images, masks, tmp_path / "m.safetensors", cfg, network_config=net,
                          progress=seen.append)  # fmt: skip
    epochs = [e for e in seen if e.stage == "train"]
    assert [e.done for e in epochs] == list(range(1, 13)) and epochs[0].unit == "epochs"
    assert [e.done for e in seen if e.stage == "evaluate"] == list(range(1, 7))
    assert (tmp_path / "m_training" / "checkpoints" / "last.ckpt").is_file()
    card = json.loads(out.with_suffix(".json").read_text())
    split = load_split(tmp_path / "m.split.json", "test")
    assert split == card["split"]["test"] and len(split) == 6
    assert card["input"]["size"] == [64, 64]
    assert card["training"]["epochs"] == 12 and card["training"]["init_from"] == "random"
    assert card["training"]["accelerator"] == "cpu"
    seg = load_segmenter(out)
    res = evaluate(seg, images, masks, split)
    assert res["images"] == 6
    assert res["dice_mean"] == pytest.approx(card["metrics_test"]["dice_mean"])
    # learned: far above predicting nothing (Dice 0) or everything (Dice = 2p/(1+p), p ~ 0.1)
    assert res["dice_mean"] > 0.6
    assert res["line_error_px_mean"] < 3.0
    # fine-tuning keeps the architecture and starts from the given weights
    tuned = train_segmenter(
        images, masks, tmp_path / "t.safetensors",
        SegmenterTrainConfig(epochs=1, batch_size=4, lr=1e-4), init_from=out,
    )  # fmt: skip
    tcard = json.loads(tuned.with_suffix(".json").read_text())
    assert tcard["network"]["channels"] == [8, 16, 32]
    assert tcard["training"]["init_from"] == str(out)
    assert evaluate(load_segmenter(tuned), images, masks, split)["dice_mean"] > 0.6
    with pytest.raises(ConfigError):
        train_segmenter(images, masks, tmp_path / "x.pt", cfg)


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path: Path, monkeypatch) -> None:
    """Batch order and augmentation are seeded per (epoch, batch): a resumed run matches."""
    from safetensors.torch import load_file

    from musclestate.training.module import SegmenterModule

    images, masks = synthetic_pairs(tmp_path / "data", 12, seed=1)
    net = NetworkConfig(input_size=32, channels=(4, 8), strides=(2,), num_res_units=0)
    cfg = SegmenterTrainConfig(epochs=3, batch_size=4, seed=2, test_fraction=0.0)
    full = train_segmenter(images, masks, tmp_path / "full.safetensors", cfg, network_config=net)

    def crash(self, *_: object) -> None:
        if self.current_epoch == 2:
            raise RuntimeError("simulated interruption")

    cut = tmp_path / "cut.safetensors"
    with monkeypatch.context() as m:
        m.setattr(SegmenterModule, "on_train_epoch_start", crash, raising=False)
        with pytest.raises(RuntimeError, match="simulated interruption"):
            train_segmenter(images, masks, cut, cfg, network_config=net)
    assert not cut.exists()
    seen: list = []
    train_segmenter(images, masks, cut, cfg, network_config=net, resume=True, progress=seen.append)
    assert [e.done for e in seen] == [3]  # continued after the two saved epochs
    a, b = load_file(str(full)), load_file(str(cut))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    ca, cb = (json.loads(p.with_suffix(".json").read_text())["training"] for p in (full, cut))
    assert ca["best_epoch"] == cb["best_epoch"] and ca["epochs_run"] == cb["epochs_run"] == 3
    assert "metrics_test" not in json.loads(cut.with_suffix(".json").read_text())


def test_a_time_limit_ends_training_early_with_a_validated_model(tmp_path: Path) -> None:
    images, masks = synthetic_pairs(tmp_path / "data", 10, seed=3)
    net = NetworkConfig(input_size=32, channels=(4, 8), strides=(2,), num_res_units=0)
    cfg = SegmenterTrainConfig(epochs=3, batch_size=2, test_fraction=0.0, max_minutes=1e-6)
    out = train_segmenter(images, masks, tmp_path / "m.safetensors", cfg, network_config=net)
    training = json.loads(out.with_suffix(".json").read_text())["training"]
    assert training["epochs_run"] < 3 and training["best_epoch"] == 0
    assert 0 <= training["best_val_dice"] <= 1
    load_segmenter(out)
