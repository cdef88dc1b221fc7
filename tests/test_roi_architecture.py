"""Architecture measures: fascicle orientation (structure tensor), pennation, thickness, echo."""

from __future__ import annotations

import numpy as np
import pytest

from musclestate.roi.architecture import (
    FEATURE_NAMES,
    dominant_orientation_deg,
    fascicle_length_mm,
    measure,
    tensor_orientation_deg,
)
from musclestate.roi.geometry import MuscleGeometry


def stripes(angle_deg: float, shape=(160, 240), spacing=(1.0, 1.0), period_mm=6.0, seed=0):
    """Stripes at ``angle_deg`` (positive = deeper to the right, physical units) + speckle."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    y, x = rows * spacing[0], cols * spacing[1]
    t = np.radians(angle_deg)
    img = 110 + 60 * np.sin(2 * np.pi * (-x * np.sin(t) + y * np.cos(t)) / period_mm)
    rng = np.random.default_rng(seed)
    img = img * rng.rayleigh(0.8, img.shape)  # multiplicative speckle
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("angle", "spacing"),
    [
        (25.0, (1.0, 1.0)),
        (-15.0, (1.0, 1.0)),
        (10.0, (0.5, 1.0)),
        (35.0, (1.0, 0.5)),
        (20.0, (0.1, 0.12)),
    ],
)
@pytest.mark.parametrize("estimator", [dominant_orientation_deg, tensor_orientation_deg])
def test_orientation_of_noisy_stripes(
    angle: float, spacing: tuple[float, float], estimator
) -> None:
    img = stripes(angle, spacing=spacing)
    est = estimator(img, np.ones(img.shape, bool), spacing)
    assert est == pytest.approx(angle, abs=1.5)


@pytest.mark.parametrize("angle", [22.0, -8.0])
def test_orientation_on_fine_pixels_is_decimated_without_bias(angle: float) -> None:
    spacing = (0.08, 0.1)  # a 720 x 574 scanner image at ~50 mm depth
    img = stripes(angle, shape=(300, 400), spacing=spacing, period_mm=2.0)
    est = dominant_orientation_deg(img, np.ones(img.shape, bool), spacing)
    assert est == pytest.approx(angle, abs=1.5)


def test_measure_on_a_synthetic_muscle() -> None:
    h, w = 160, 240
    spacing = (0.25, 0.25)
    frame = stripes(20.0, (h, w), spacing, period_mm=2.0)
    x = np.arange(w)
    deep_slope = np.tan(np.radians(-5.0))  # deep aponeurosis rises 5 deg to the right
    g = MuscleGeometry(
        shape=(h, w),
        pixel_spacing_mm=spacing,
        superficial_row=np.full(w, 20.0),
        deep_row=100.0 + deep_slope * x,
        superficial_cover=np.ones(w, bool),
        deep_cover=np.ones(w, bool),
        sol_depth_mm=5.0,
    )
    f = measure(frame, g)
    assert list(f) == list(FEATURE_NAMES)
    assert f["mg_thickness_mm"] == pytest.approx((80 + deep_slope * 119.5) * 0.25, abs=0.2)
    assert f["superficial_angle_deg"] == pytest.approx(0.0, abs=0.1)
    assert f["deep_angle_deg"] == pytest.approx(-5.0, abs=0.1)
    assert f["fascicle_angle_deg"] == pytest.approx(20.0, abs=1.5)
    assert f["pennation_deg"] == pytest.approx(25.0, abs=1.5)
    assert f["superficial_pennation_deg"] == pytest.approx(20.0, abs=1.5)
    assert f["mg_fascicle_length_mm"] == pytest.approx(
        f["mg_thickness_mm"] / np.sin(np.radians(f["pennation_deg"])), rel=1e-6
    )
    mg, _ = g.region_masks()
    assert f["mg_echo"] == pytest.approx(frame[mg].mean(), rel=1e-6)


def test_measure_without_muscle_is_nan() -> None:
    w = 50
    g = MuscleGeometry(
        (40, w),
        (1.0, 1.0),
        np.full(w, 5.0),
        np.full(w, np.nan),
        np.ones(w, bool),
        np.zeros(w, bool),
    )
    f = measure(np.zeros((40, w), np.uint8), g)
    assert all(np.isnan(v) for v in f.values())


def test_fascicle_length_is_thickness_over_sine_of_pennation() -> None:
    assert fascicle_length_mm(20.0, 30.0) == pytest.approx(40.0)
    assert fascicle_length_mm(15.0, 90.0) == pytest.approx(15.0)
    assert np.isnan(fascicle_length_mm(20.0, 0.5))  # near-parallel: diverges, refused
    assert np.isnan(fascicle_length_mm(20.0, 9.0))  # 1 deg error would move it by > 10 %
    assert fascicle_length_mm(20.0, 10.0) == pytest.approx(20.0 / np.sin(np.radians(10.0)))
    assert np.isnan(fascicle_length_mm(float("nan"), 20.0))


def test_sol_fascicles_measured_below_the_deep_aponeurosis() -> None:
    h, w = 200, 240
    spacing = (0.25, 0.25)
    mg_frame = stripes(22.0, (h, w), spacing, period_mm=2.0, seed=1)
    sol_frame = stripes(-12.0, (h, w), spacing, period_mm=2.0, seed=2)
    frame = mg_frame.copy()
    frame[100:] = sol_frame[100:]
    g = MuscleGeometry(
        shape=(h, w),
        pixel_spacing_mm=spacing,
        superficial_row=np.full(w, 20.0),
        deep_row=np.full(w, 100.0),
        superficial_cover=np.ones(w, bool),
        deep_cover=np.ones(w, bool),
        sol_depth_mm=20.0,
    )
    f = measure(frame, g)
    assert f["fascicle_angle_deg"] == pytest.approx(22.0, abs=1.5)
    assert f["sol_fascicle_angle_deg"] == pytest.approx(-12.0, abs=1.5)
    assert f["sol_pennation_deg"] == pytest.approx(12.0, abs=1.5)
