"""Estimator bundles: safetensors + card.json, strict loading, prediction, export module."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from musclestate.errors import BundleError, InputError
from musclestate.models.bundle import load_bundle, make_card, save_bundle
from musclestate.models.card import FORMAT_VERSION, TrainingRecord
from musclestate.models.networks import build_network

TARGETS = {"ankle_angle": "deg", "mg_activation": "%MVC"}


def _bundle(tmp_path: Path, context: int = 0, name: str = "b") -> Path:
    torch.manual_seed(0)
    in_ch = 2 * (2 * context + 1)
    net = build_network("compact_resnet", in_ch, 2, {"widths": [8, 16]})
    card = make_card(
        network="compact_resnet",
        network_params={"widths": [8, 16]},
        in_channels=in_ch,
        input_kind="patches",
        context=context,
        image_size=(24, 24),
        targets=TARGETS,
        mean=np.array([10.0, 30.0]),
        sd=np.array([5.0, 20.0]),
        sd_scale=np.array([1.5, 1.0]),
        roi={"patch_mm": [20, 20]},
        training=TrainingRecord(participants=("P01", "P02")),
    )
    return save_bundle(tmp_path / name, net.state_dict(), card)


def test_round_trip_and_prediction_in_physical_units(tmp_path: Path) -> None:
    b = load_bundle(_bundle(tmp_path))
    assert json.loads((b.path / "card.json").read_text())["format_version"] == FORMAT_VERSION
    assert b.card.package_version
    assert b.units == TARGETS
    assert b.card.roi == {"patch_mm": [20, 20]}
    assert b.card.training.participants == ("P01", "P02")
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, (5, 2, 24, 24), dtype=np.uint8)
    out = b.predict(patches)
    assert list(out) == list(TARGETS)
    for mean, sd in out.values():
        assert mean.shape == sd.shape == (5,)
        assert np.all(sd > 0)
    # float input in 0..1 gives the same as uint8; other sizes are resized
    again = b.predict(patches.astype(np.float32) / 255)
    np.testing.assert_allclose(again["ankle_angle"][0], out["ankle_angle"][0], rtol=1e-5)
    big = np.repeat(np.repeat(patches, 2, axis=2), 2, axis=3)  # 48x48, area-resized back
    np.testing.assert_allclose(b.predict(big)["ankle_angle"][0], out["ankle_angle"][0], rtol=1e-4)
    # the export module computes the same means and SDs
    x = torch.from_numpy(patches.astype(np.float32) / 255)
    mean, sd = b.torch_module()(x)
    np.testing.assert_allclose(mean[:, 1].detach().numpy(), out["mg_activation"][0], rtol=1e-5)
    np.testing.assert_allclose(sd[:, 0].detach().numpy(), out["ankle_angle"][1], rtol=1e-5)


def test_context_bundle_stacks_consecutive_frames(tmp_path: Path) -> None:
    b = load_bundle(_bundle(tmp_path, context=1))
    assert b.in_channels == 6
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (4, 2, 24, 24), dtype=np.uint8)
    out = b.predict(frames)
    idx = np.clip(np.arange(4)[:, None] + [-1, 0, 1], 0, 3)
    stacked = frames[idx].reshape(4, 6, 24, 24)
    np.testing.assert_allclose(b.predict(stacked)["ankle_angle"][0], out["ankle_angle"][0])
    with pytest.raises(InputError, match="channels"):
        b.predict(frames[:, :1])


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    b = load_bundle(_bundle(tmp_path))
    with pytest.raises(InputError, match=r"0\.\.1"):
        b.predict(np.full((1, 2, 24, 24), 200.0, dtype=np.float32))
    with pytest.raises(InputError, match=r"\(N, C, h, w\)"):
        b.predict(np.zeros((2, 24, 24), dtype=np.uint8))


def _expect_refused(path: Path, match: str) -> None:
    with pytest.raises(BundleError, match=match):
        load_bundle(path)


def test_anything_else_is_refused(tmp_path: Path) -> None:
    good = _bundle(tmp_path)
    # a single file, e.g. a pickled checkpoint
    pkl = tmp_path / "model.pt"
    pkl.write_bytes(pickle.dumps({"state_dict": {}}))
    _expect_refused(pkl, "not an estimator bundle")
    # an extra file in the folder
    extra = _bundle(tmp_path, name="extra")
    (extra / "weights.pkl").write_bytes(b"x")
    _expect_refused(extra, "exactly")
    # pickle disguised as safetensors
    disguised = _bundle(tmp_path, name="disguised")
    (disguised / "model.safetensors").write_bytes(pickle.dumps({"a": 1}))
    _expect_refused(disguised, "not a safetensors")
    # another format version
    future = _bundle(tmp_path, name="future")
    card = json.loads((future / "card.json").read_text())
    card["format_version"] = 99
    (future / "card.json").write_text(json.dumps(card))
    _expect_refused(future, "format_version 99.*install the musclestate that wrote it")
    # weights of another network
    wrong = _bundle(tmp_path, name="wrong")
    card = json.loads((wrong / "card.json").read_text())
    card["network"]["params"] = {"widths": [8, 16, 32]}
    (wrong / "card.json").write_text(json.dumps(card))
    _expect_refused(wrong, "do not fit")
    # unknown network name
    card["network"]["name"] = "evil"
    (wrong / "card.json").write_text(json.dumps(card))
    _expect_refused(wrong, "unknown network 'evil'")
    # not our card at all
    (wrong / "card.json").write_text("[1, 2]")
    _expect_refused(wrong, "not a 'musclestate-estimator' card")
    assert load_bundle(good).target_names == tuple(TARGETS)


def test_save_refuses_weights_that_do_not_fit(tmp_path: Path) -> None:
    net = build_network("compact_resnet", 2, 2, {"widths": [8]})
    card = make_card(
        network="compact_resnet", network_params={"widths": [8, 16]}, in_channels=2,
        input_kind="patches", context=0, image_size=(24, 24), targets=TARGETS,
        mean=np.zeros(2), sd=np.ones(2), sd_scale=np.ones(2),
    )  # fmt: skip
    with pytest.raises(BundleError):
        save_bundle(tmp_path / "x", net.state_dict(), card)
    assert not (tmp_path / "x").exists()
