"""Realism check: phantom frames against real calf ultrasound (drazan2019-mg, dltrack masks).

Writes ``side_by_side.png`` and ``realism.json`` to a temporary folder (they hold real images, so
they stay out of the repository) and checks that the phantom's statistics are close to the real
ones. The figures recorded in docs/phantom.md come from ``python -m musclestate.phantom.realism``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musclestate.phantom import realism

pytestmark = pytest.mark.slow  # trains networks or runs whole workflows


@pytest.fixture(scope="module")
def report(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("realism")
    rep = realism.realism_report(shared_data, out, n=6)
    assert (out / "side_by_side.png").stat().st_size > 10_000
    return rep


def test_brightness_close_to_real(report: dict) -> None:
    ph = report["phantom"]
    for src in ("drazan", "dltrack"):
        real = report[src]
        assert abs(ph["mean"] - real["mean"]) < 15, src
        assert abs(ph["median"] - real["median"]) < 15, src
        assert abs(ph["p95"] - real["p95"]) < 35, src
    # histogram: total variation distance to the real histograms
    h = np.asarray(report["hist"]["phantom"])
    for src in ("drazan", "dltrack"):
        assert 0.5 * np.abs(h - np.asarray(report["hist"][src])).sum() < 0.3, src


def test_speckle_statistics_close_to_real(report: dict) -> None:
    ph, dr, dl = report["phantom"], report["drazan"], report["dltrack"]
    lo, hi = sorted((dr["speckle_snr"], dl["speckle_snr"]))
    assert 0.8 * lo <= ph["speckle_snr"] <= 1.2 * hi
    assert 0.5 * dr["speckle_mm_axial"] <= ph["speckle_mm_axial"] <= 2.0 * dr["speckle_mm_axial"]
    assert (
        0.5 * dr["speckle_mm_lateral"] <= ph["speckle_mm_lateral"] <= 2.0 * dr["speckle_mm_lateral"]
    )
    assert ph["speckle_mm_lateral"] > ph["speckle_mm_axial"]  # speckle elongated laterally


def test_aponeurosis_contrast_close_to_real(report: dict) -> None:
    ph, dl = report["phantom"]["apo_contrast"], report["dltrack"]["apo_contrast"]
    assert 1.5 < ph and 0.6 * dl < ph < 1.6 * dl


def test_speckle_measures_on_known_textures() -> None:
    rng = np.random.default_rng(0)
    from scipy import ndimage

    noise = rng.standard_normal((128, 128))
    wide = ndimage.gaussian_filter(noise, (1.0, 4.0))
    ax, lat = realism.speckle_size_px(wide)
    assert lat > 2 * ax
    flat = np.full((64, 64), 100.0) + rng.standard_normal((64, 64))
    assert realism.speckle_snr(flat) > 50
