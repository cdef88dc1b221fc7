"""Aponeurosis curves from probability maps: gaps, extra bands, missing bands, smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from musclestate.errors import InputError
from musclestate.roi.geometry import GeometryConfig, fit_geometry, smooth_geometries

H, W = 120, 160
SPACING = (0.4, 0.4)  # mm per pixel: 48 mm deep image


def band_map(
    bands: list[tuple[float, float, int, int]], noise_seed: int | None = None
) -> np.ndarray:
    """Probability map with bands (row at column 0, slope rows/column, first col, last col)."""
    prob = np.zeros((H, W), np.float32)
    rows = np.arange(H)[:, None]
    for r0, slope, c0, c1 in bands:
        centre = r0 + slope * np.arange(W)
        b = np.exp(-0.5 * ((rows - centre) / 1.5) ** 2)
        b[:, :c0] = 0
        b[:, c1:] = 0
        prob = np.maximum(prob, b)
    if noise_seed is not None:
        rng = np.random.default_rng(noise_seed)
        prob = np.clip(prob + 0.2 * rng.random(prob.shape) - 0.1, 0, 1).astype(np.float32)
    return prob


@pytest.mark.parametrize(
    ("bands", "sup0", "deep0", "issue"),
    [
        # two clean bands
        ([(20, 0.05, 0, W), (70, 0.1, 0, W)], 20, 70, None),
        # deep band broken by a gap (shadow): fragments joined
        ([(20, 0.05, 0, W), (70, 0.1, 0, 60), (70, 0.1, 90, W)], 20, 70, None),
        # extra intermediate band, shorter: passed over and reported
        ([(20, 0.05, 0, W), (45, 0.0, 30, 90), (70, 0.1, 0, W)], 20, 70, "extra band"),
        # deeper soleus band as long as the deep aponeurosis: the shallower one wins
        ([(20, 0.05, 0, W), (60, 0.1, 0, W), (100, 0.0, 0, W)], 20, 60, "extra band"),
    ],
)
def test_two_aponeuroses_found(bands, sup0, deep0, issue) -> None:
    g = fit_geometry(band_map(bands, noise_seed=1), SPACING)
    assert g.found
    assert g.superficial_row[0] == pytest.approx(sup0, abs=1.0)
    assert g.deep_row[0] == pytest.approx(deep0, abs=1.0)
    slope = next(b[1] for b in bands if b[0] == deep0)
    assert g.deep_row[-1] - g.deep_row[0] == pytest.approx(slope * (W - 1), abs=1.5)
    if issue is None:
        assert g.issues == ()
    else:
        assert any(issue in i for i in g.issues)


def test_measures_from_curves() -> None:
    g = fit_geometry(
        band_map([(20, 0.0, 0, W), (70, 0.0, 0, W)]), SPACING, GeometryConfig(sol_depth_mm=10.0)
    )
    # inner edges: the bands above threshold are 3 rows thick (Gaussian SD 1.5 rows)
    assert g.thickness_mm() == pytest.approx((50 - 3) * 0.4, abs=0.3)
    assert g.angle_deg("deep") == pytest.approx(0.0, abs=0.2)
    g2 = fit_geometry(band_map([(20, 0.0, 0, W), (50, 0.2, 0, W)]), SPACING)
    assert g2.angle_deg("deep") == pytest.approx(np.degrees(np.arctan(0.2)), abs=0.5)
    mg, sol = g.region_masks()
    assert mg[45, 80] and not mg[10, 80] and not mg[90, 80]
    assert sol[90, 80] and not sol[100, 80]  # SOL region ends 10 mm (25 rows) below the deep line


@pytest.mark.parametrize(
    ("bands", "found_sup", "found_deep", "issue"),
    [
        ([(20, 0.05, 0, W)], True, False, "deep aponeurosis not found"),
        ([(80, 0.0, 0, W)], False, True, "superficial aponeurosis not found"),
        ([], False, False, "no aponeurosis found"),
    ],
)
def test_missing_band_is_flagged_not_guessed(bands, found_sup, found_deep, issue) -> None:
    g = fit_geometry(band_map(bands), SPACING)
    assert g.found_superficial is found_sup
    assert g.found_deep is found_deep
    assert not g.found
    assert any(issue in i for i in g.issues)
    assert np.isnan(g.line("deep" if not found_deep else "superficial")).all()


def test_bands_too_close_are_not_two_aponeuroses() -> None:
    cfg = GeometryConfig(min_thickness_mm=10.0)
    g = fit_geometry(band_map([(20, 0.0, 0, W), (30, 0.0, 0, W)]), SPACING, cfg)
    assert not g.found_deep


def test_bad_input_raises() -> None:
    with pytest.raises(InputError, match=r"\(H, W\)"):
        fit_geometry(np.zeros((2, H, W)), SPACING)
    with pytest.raises(InputError):
        GeometryConfig(threshold=1.5)


def test_temporal_smoothing_removes_a_jump_and_bridges_short_gaps() -> None:
    frames = []
    for t in range(9):
        deep = 70 + (15 if t == 4 else 0)  # one-frame glitch
        bands = [(20, 0.0, 0, W)] if t == 6 else [(20, 0.0, 0, W), (deep, 0.0, 0, W)]
        frames.append(fit_geometry(band_map(bands), SPACING))
    assert not frames[6].found
    smooth = smooth_geometries(frames, window=5)
    assert smooth[4].deep_row[0] == pytest.approx(70, abs=1)
    assert not smooth[6].found  # not guessed without max_gap
    bridged = smooth_geometries(frames, window=5, max_gap=1)
    assert bridged[6].found and bridged[6].source == "interpolated"
    assert bridged[6].deep_row[0] == pytest.approx(70, abs=1)
    with pytest.raises(InputError, match="odd"):
        smooth_geometries(frames, window=4)


def test_strongest_pair_passes_over_a_band_above_the_superficial_aponeurosis() -> None:
    """A short, faint fascia above a strong superficial band: "shallowest" takes the fascia,
    "strongest" the two aponeuroses."""
    prob = band_map([(30, 0.0, 0, W), (70, 0.0, 0, W)])
    prob = np.maximum(prob, 0.6 * band_map([(8, 0.0, 20, 100)]))
    shallow = fit_geometry(prob, SPACING)
    strong = fit_geometry(prob, SPACING, GeometryConfig(pair="strongest"))
    assert np.median(shallow.superficial_row) == pytest.approx(8, abs=1)
    assert np.median(strong.superficial_row) == pytest.approx(30, abs=1)
    assert np.median(strong.deep_row) == pytest.approx(70, abs=1)
    assert any("extra band" in i for i in strong.issues)


def test_strongest_pair_needs_near_parallel_bands() -> None:
    """A long band 17 deg steep outweighs a short flat deep band but cannot pair with the flat
    superficial one when at most 10 deg are allowed; without that limit it would."""
    prob = band_map([(20, 0.0, 0, W), (35, 0.3, 0, W), (100, 0.0, 0, 70)])
    g = fit_geometry(prob, SPACING, GeometryConfig(pair="strongest", max_divergence_deg=10))
    assert np.median(g.superficial_row) == pytest.approx(20, abs=1)
    assert np.median(g.deep_row) == pytest.approx(100, abs=1)
    loose = fit_geometry(prob, SPACING, GeometryConfig(pair="strongest", max_divergence_deg=30))
    assert np.median(loose.deep_row) != pytest.approx(100, abs=5)


def test_unknown_pair_rule_is_refused() -> None:
    with pytest.raises(InputError, match="pair rule"):
        GeometryConfig(pair="deepest")
