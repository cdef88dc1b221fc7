"""The estimator card: one reader, strict keys, migration of version-1 cards, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from musclestate.errors import BundleError
from musclestate.models.bundle import load_bundle, make_card, save_bundle
from musclestate.models.card import FORMAT_VERSION, BundleCard, TrainingRecord, read_card
from musclestate.models.networks import build_network
from musclestate.training.config import TrainConfig

TARGETS = {"ankle_angle": "deg", "mg_activation": "%MVC"}
CONFIG = TrainConfig().replace(image_size=(24, 24), epochs=3, network_params={"widths": [8, 16]})

# A card as version 1 wrote it (musclestate 0.1.0 before the typed card): the training
# configuration in its flat form.
V1_CARD = {
    "format": "musclestate-estimator",
    "format_version": 1,
    "package_version": "0.1.0",
    "network": {"name": "compact_resnet", "params": {"widths": [8, 16]}, "in_channels": 2,
                "n_targets": 2, "members": 1},
    "input": {"kind": "patches", "channels": ["MG", "SOL"], "channels_per_frame": 2, "context": 0,
              "image_size": [24, 24], "value_range": "uint8 / 255 -> 0..1", "features": []},
    "targets": [
        {"name": "ankle_angle", "unit": "deg", "mean": 10.0, "sd": 5.0, "sd_scale": 1.5},
        {"name": "mg_activation", "unit": "%MVC", "mean": 30.0, "sd": 20.0, "sd_scale": 1.0},
    ],
    "roi": {"patch_mm": [20, 20]},
    "training": {
        "dataset": "/data/cohort", "pixel_spacing_mm": [0.2, 0.25],
        "target_range": {"ankle_angle": [-5.0, 25.0], "mg_activation": [0.0, 90.0]},
        "feature_range": {"mg_thickness_mm": [15.0, 20.0], "sol_echo": None},
        "feature_novelty": None, "participants": ["P01", "P02"],
        "validation_participants": ["P03"], "n_recordings": 4, "n_frames": 480, "best_epoch": 2,
        "epochs_run": 3, "val_mse_normalised": 0.4,
        "config": {
            "network": "compact_resnet", "network_params": {"widths": [8, 16]},
            "input": "patches", "image_size": [24, 24], "context": 0, "targets": [],
            "frame_stride": 1, "epochs": 3, "patience": 6, "batch_size": 64, "lr": 0.002,
            "weight_decay": 0.0001, "val_participants": 1, "seed": 0,
            "augment": {"gain": 0.15, "gamma": 0.2, "noise_sd": 0.02, "shift_px": 2},
            "accelerator": "auto", "devices": 1, "num_nodes": 1, "strategy": "auto",
            "num_threads": 0, "ridge_alphas": [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0],
            "ensemble": 1, "aux_weight": 0.0, "ema_decay": 0.0, "fuse_features": False,
        },
    },
    "cv_metrics": None,
}  # fmt: skip


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network("compact_resnet", 2, 2, {"widths": [8, 16]})


def _card() -> BundleCard:
    return make_card(
        network="compact_resnet", network_params={"widths": [8, 16]}, in_channels=2,
        input_kind="patches", context=0, image_size=(24, 24), targets=TARGETS,
        mean=np.array([10.0, 30.0]), sd=np.array([5.0, 20.0]), sd_scale=np.array([1.5, 1.0]),
        roi={"patch_mm": [20, 20]},
        training=TrainingRecord(participants=("P01", "P02"), config=CONFIG,
                                target_range={"ankle_angle": (-5.0, 25.0)}),
    )  # fmt: skip


def _write(folder: Path, card: dict) -> Path:
    """A bundle folder with ``card`` as its card.json and weights that fit it."""
    save_bundle(folder, _net().state_dict(), _card())
    (folder / "card.json").write_text(json.dumps(card), encoding="utf-8")
    return folder


def test_card_round_trips_through_its_dict_and_disk(tmp_path: Path) -> None:
    card = _card()
    d = card.to_dict()
    assert d["format"] == "musclestate-estimator" and d["format_version"] == FORMAT_VERSION
    assert BundleCard.from_dict(json.loads(json.dumps(d))) == card
    folder = save_bundle(tmp_path / "b", _net().state_dict(), card)
    again = read_card(folder)
    assert again == card and load_bundle(folder).card == card
    assert again.training.config == CONFIG  # the nested configuration, read back typed
    assert json.loads((folder / "card.json").read_text())["training"]["config"] == CONFIG.to_dict()
    assert again.units == TARGETS and again.target_sd == {"ankle_angle": 5.0, "mg_activation": 20.0}


def test_version_1_cards_are_migrated(tmp_path: Path) -> None:
    folder = _write(tmp_path / "v1", V1_CARD)
    b = load_bundle(folder)
    card = b.card
    assert card.training.config == TrainConfig().replace(
        image_size=(24, 24), epochs=3, network_params={"widths": [8, 16]}, fuse_features=False
    )
    assert card.training.participants == ("P01", "P02")
    assert card.training.feature_range == {
        "mg_thickness_mm": (15.0, 20.0),
        "sol_echo": (None, None),
    }
    assert card.training.pixel_spacing_mm == (0.2, 0.25)
    assert [t.sd_scale for t in card.targets] == [1.5, 1.0]
    # written again, it is a current card with the same content
    assert card.to_dict()["format_version"] == FORMAT_VERSION
    assert BundleCard.from_dict(card.to_dict()) == card
    # the same network and normalisation: the same estimates as a bundle written today
    patches = np.random.default_rng(0).integers(0, 256, (3, 2, 24, 24), dtype=np.uint8)
    today = load_bundle(save_bundle(tmp_path / "today", _net().state_dict(), _card()))
    for name in TARGETS:
        np.testing.assert_allclose(b.predict(patches)[name][0], today.predict(patches)[name][0])
    # a version-1 card without the entries later cards have (features, sd_scale, members)
    old = json.loads(json.dumps(V1_CARD))
    del old["input"]["features"], old["network"]["members"], old["targets"][0]["sd_scale"]
    del old["training"]["config"], old["training"]["feature_novelty"]
    card = load_bundle(_write(tmp_path / "older", old)).card
    assert card.input.features == () and card.network.members == 1
    assert card.targets[0].sd_scale == 1.0 and card.training.config is None


@pytest.mark.parametrize("features", [[], ["mg_thickness_mm", "pennation_deg"]])
def test_version_1_config_without_fuse_features_follows_the_network_inputs(
    tmp_path: Path, features: list[str]
) -> None:
    # cards written before fuse_features existed: fused exactly when the network read measures
    old = json.loads(json.dumps(V1_CARD))
    del old["training"]["config"]["fuse_features"]
    old["input"]["features"] = features
    card = read_card(_write(tmp_path / "v1", old))
    assert card.training.config.model.fuse_features is bool(features)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: c.update(notes="x"), r"unknown key\(s\) \['notes'\] in the card; valid keys"),
        (lambda c: c["training"].update(epochs=3), r"unknown key\(s\) \['epochs'\] in training"),
        (lambda c: c["targets"][1].update(offset=1), r"unknown key.*\['offset'\] in targets\[1\]"),
        (lambda c: c["input"].pop("image_size"), r"input lacks \['image_size'\]"),
        (lambda c: c["network"].update(in_channels="2"), r"network.in_channels must be an int"),
        (lambda c: c["targets"][0].update(sd=None), r"targets\[0\].sd must be a float"),
        (lambda c: c["training"].update(participants="P01"), r"training.participants must be"),
        (lambda c: c["training"]["config"].update(epoch=3), r"unknown training setting.*'epoch'"),
        (lambda c: c["input"].update(channels_per_frame=3), r"channels_per_frame is 3"),
        (lambda c: c["network"].update(n_targets=3), r"2 targets but network.n_targets=3"),
    ],
)
def test_bad_cards_are_refused_naming_the_file_key_and_way_out(tmp_path, change, match) -> None:
    card = json.loads(json.dumps(V1_CARD))
    change(card)
    folder = _write(tmp_path / "b", card)
    with pytest.raises(BundleError, match=match) as info:
        read_card(folder)
    assert str(folder / "card.json") in str(info.value)
    assert "musclestate train" in str(info.value)


def test_other_cards_and_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"no card\.json"):
        read_card(tmp_path)
    (tmp_path / "card.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(BundleError, match="cannot read estimator card"):
        read_card(tmp_path)
    # the shipped segmenter's card is another kind of card (its own reader, roi.segment)
    shipped = Path(__file__).resolve().parents[1] / "src/musclestate/weights/aponeurosis.json"
    (tmp_path / "card.json").write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(BundleError, match="not a 'musclestate-estimator' card"):
        read_card(tmp_path)
    for version, match in ((3, "install the musclestate that wrote it"), (0, "retrain")):
        (tmp_path / "card.json").write_text(json.dumps(V1_CARD | {"format_version": version}))
        with pytest.raises(BundleError, match=f"format_version {version}.*{match}"):
            read_card(tmp_path)
