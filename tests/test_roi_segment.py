"""The segmentation network: letterboxing, safetensors round trip, refusals, the shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from musclestate.errors import BundleError, InputError
from musclestate.roi.segment import (
    SHIPPED_WEIGHTS,
    Letterbox,
    NetworkConfig,
    Segmenter,
    SegmenterCard,
    build_network,
    card_path,
    from_output,
    load_segmenter,
    mask_to_input,
    read_card,
    save_segmenter,
)

DICE_FLOOR = 0.75


@pytest.mark.parametrize("shape", [(100, 160), (160, 100), (64, 64), (513, 777)])
def test_letterbox_round_trip_keeps_structures_in_place(shape: tuple[int, int]) -> None:
    box = Letterbox.fit(shape, 64)
    assert max(box.h, box.w) == 64 and box.top + box.h <= 64 and box.left + box.w <= 64
    mask = np.zeros(shape, np.uint8)
    mask[shape[0] // 4 : shape[0] // 4 + shape[0] // 8, shape[1] // 5 :] = 1
    back = from_output(mask_to_input(mask[None], box), box)[0] > 0.5
    inter = np.logical_and(back, mask > 0).sum()
    assert 2 * inter / (back.sum() + mask.sum()) > 0.9


def tiny() -> tuple[object, NetworkConfig]:
    import torch

    torch.manual_seed(0)
    cfg = NetworkConfig(input_size=32, channels=(4, 8), strides=(2,))
    return build_network(cfg), cfg


@pytest.mark.slow
def test_save_load_round_trip(tmp_path: Path) -> None:
    net, cfg = tiny()
    card = SegmenterCard(network=cfg, task="tiny", split={"test": ["a.png"]})
    path = save_segmenter(tmp_path / "m.safetensors", net, card)
    seg = load_segmenter(path)
    frames = np.random.default_rng(0).integers(0, 255, (3, 40, 50), dtype=np.uint8)
    p1 = Segmenter(net, cfg).predict(frames)
    p2 = seg.predict(frames)
    assert p1.shape == (3, 40, 50) and p1.dtype == np.float32
    np.testing.assert_array_equal(p1, p2)
    assert seg.predict(frames[0]).shape == (40, 50)
    assert seg.card == card and seg.card.network.channels == (4, 8)
    on_disk = json.loads(card_path(path).read_text())
    assert list(on_disk) == ["format", "musclestate_version", "network", "task", "split"]
    assert on_disk["network"]["architecture"] == "monai.networks.nets.UNet"
    with pytest.raises(InputError, match="uint8"):
        seg.predict(frames.astype(np.float32))


def test_refuses_what_is_not_a_segmenter(tmp_path: Path) -> None:
    net, cfg = tiny()
    good = save_segmenter(tmp_path / "m.safetensors", net, SegmenterCard(network=cfg))
    with pytest.raises(BundleError, match="never a pickle"):
        load_segmenter(tmp_path / "m.pt")
    with pytest.raises(BundleError, match="not found"):
        load_segmenter(tmp_path / "none.safetensors")
    card = json.loads(card_path(good).read_text())
    card["format"] = "something-else"
    card_path(good).write_text(json.dumps(card))
    with pytest.raises(BundleError, match="not a musclestate"):
        load_segmenter(good)
    card["format"] = "musclestate-segmenter/1"
    card["network"]["channels"] = [8, 16]  # weights no longer match
    card_path(good).write_text(json.dumps(card))
    with pytest.raises(BundleError, match="do not match"):
        load_segmenter(good)
    card_path(good).unlink()
    with pytest.raises(BundleError, match="no model card"):
        load_segmenter(good)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "musclestate-segmenter/2"}, "not a musclestate segmenter"),
        ({"metrics_tset": {}}, r"unknown key\(s\) \['metrics_tset'\]"),
        ({"musclestate_version": None}, "lacks musclestate_version"),
        ({"network": None}, "no network"),
        ({"network": {"architecture": "SegResNet"}}, "is not 'monai"),
        ({"network": {"input_size": 30}}, "network settings not understood"),
        ({"network": {"input_size": 32, "widths": [4]}}, "network settings not understood"),
        ({"split": ["a.png"]}, "'split' must be a JSON Mapping"),
        ({"reproduce": "musclestate roi train"}, "'reproduce' must be a JSON list"),
        ({"task": 3}, "'task' must be a JSON str"),
    ],
)
def test_card_refuses_what_it_does_not_know(tmp_path: Path, change: dict, message: str) -> None:
    net, cfg = tiny()
    good = save_segmenter(tmp_path / "m.safetensors", net, SegmenterCard(network=cfg))
    card = {**json.loads(card_path(good).read_text()), **change}
    card_path(good).write_text(json.dumps(card))
    with pytest.raises(BundleError, match=message) as err:
        read_card(good)
    assert err.value.path == card_path(good)


def test_shipped_model_card() -> None:
    assert SHIPPED_WEIGHTS.stat().st_size < 5_000_000
    card = json.loads(card_path(SHIPPED_WEIGHTS).read_text())
    # the one reader reads every key of the shipped card and writes it back unchanged
    assert read_card(SHIPPED_WEIGHTS).to_dict() == card
    src = card["data"]["sources"][0]
    assert src["licence"] == "Apache-2.0" and "arXiv:2009.04790" in src["citation"]
    assert card["input"]["size"] == [card["network"]["input_size"]] * 2
    assert len(card["split"]["test"]) > 40 and card["split"]["seed"] == card["training"]["seed"]
    assert card["metrics_test"]["images"] == len(card["split"]["test"])
    assert card["metrics_test"]["dice_mean"] >= DICE_FLOOR
    assert card["musclestate_version"]


@pytest.mark.slow
def test_shipped_model_on_held_out_real_images(dltrack_dir: Path, tmp_path: Path) -> None:
    """`musclestate roi evaluate --split test` on a few held-out images of the shipped split."""
    from musclestate.cli import app

    test_names = json.loads(card_path(SHIPPED_WEIGHTS).read_text())["split"]["test"]
    listed = tmp_path / "names.txt"
    listed.write_text("\n".join(test_names[:8]) + "\n")
    res = CliRunner().invoke(
        app,
        ["roi", "evaluate", str(dltrack_dir / "images"), str(dltrack_dir / "masks"),
         "--split", "test", "--names", str(listed), "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{") :])
    assert out["images"] == 8 and out["split"] == "test"
    assert out["dice_mean"] >= DICE_FLOOR
    assert 0 < out["iou_mean"] < out["dice_mean"]
    assert out["line_error_px_mean"] < 10.0


@pytest.mark.slow
def test_shipped_model_finds_both_aponeuroses_on_phantom_frames() -> None:
    from musclestate.phantom import sample_labelled_frames
    from musclestate.roi.geometry import fit_geometry

    frames, labels = sample_labelled_frames(8, size=(192, 224), seed=11)
    probs = load_segmenter().predict(frames)
    errors = []
    for prob, lab in zip(probs, labels, strict=True):
        g = fit_geometry(prob, (0.25, 0.25))
        assert g.found, g.issues
        for name, value in (("superficial", 1), ("deep", 2)):
            band = lab == value
            cols = np.flatnonzero(band.any(axis=0))
            centre = (band[:, cols] * np.arange(len(band))[:, None]).sum(0) / band[:, cols].sum(0)
            errors.append(np.mean(np.abs(g.line(name)[cols] - centre)))
    assert np.mean(errors) < 3.0
