"""Metrics as pure functions, checked on tables of (input, expected)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from musclestate.training.metrics import (
    calibration,
    compute_nrmse,
    compute_pearson_r,
    compute_r2,
    compute_rmse,
    summarise,
)

T = [1.0, 2.0, 3.0, 4.0]

CASES = [
    # y_true, y_pred, r2, r, rmse, nrmse
    (T, T, 1.0, 1.0, 0.0, 0.0),
    (T, [2.5, 2.5, 2.5, 2.5], 0.0, math.nan, math.sqrt(1.25), math.sqrt(1.25) / 3),
    (T, [2.0, 3.0, 4.0, 5.0], 1 - 4 / 5, 1.0, 1.0, 1 / 3),
    (T, [4.0, 3.0, 2.0, 1.0], 1 - 20 / 5, -1.0, math.sqrt(5.0), math.sqrt(5.0) / 3),
    (T, [2.0, 4.0, 6.0, 8.0], 1 - 30 / 5, 1.0, math.sqrt(7.5), math.sqrt(7.5) / 3),
    ([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], math.nan, math.nan, math.sqrt(5 / 3), math.nan),
    ([0.0, 1.0, math.nan, 2.0], [0.0, 1.0, 5.0, 2.0], 1.0, 1.0, 0.0, 0.0),  # NaN frame ignored
]


@pytest.mark.parametrize(("t", "p", "r2", "r", "rmse", "nrmse"), CASES)
def test_metric_table(t, p, r2, r, rmse, nrmse) -> None:
    for fn, want in (
        (compute_r2, r2),
        (compute_pearson_r, r),
        (compute_rmse, rmse),
        (compute_nrmse, nrmse),
    ):
        got = fn(np.array(t), np.array(p))
        if math.isnan(want):
            assert math.isnan(got), fn.__name__
        else:
            assert got == pytest.approx(want, abs=1e-12), fn.__name__


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="3 values"):
        compute_r2(np.zeros(3), np.zeros(4))


def test_summary_is_mean_and_sd_across_participants() -> None:
    per = {
        "P01": {"x": {"r2": 0.5, "r": 0.8, "rmse": 2.0, "nrmse": 0.1}},
        "P02": {"x": {"r2": 0.7, "r": 0.9, "rmse": 4.0, "nrmse": 0.3}},
        "P03": {"x": {"r2": 0.9, "r": math.nan, "rmse": 3.0, "nrmse": 0.2}},
    }
    s = summarise(per, ["x"])["x"]
    assert s["r2_mean"] == pytest.approx(0.7)
    assert s["r2_sd"] == pytest.approx(0.2)  # ddof = 1
    assert s["r_mean"] == pytest.approx(0.85)  # NaN skipped
    assert s["rmse_mean"] == pytest.approx(3.0)
    assert s["nrmse_mean"] == pytest.approx(0.2)
    assert s["n_participants"] == 3


def test_calibration_of_a_true_gaussian_spread() -> None:
    rng = np.random.default_rng(0)
    sd = rng.uniform(0.5, 3.0, 20_000)
    truth = rng.normal(0, sd)
    c = calibration(truth, np.zeros_like(truth), sd)
    assert c["within_1sd"] == pytest.approx(0.683, abs=0.01)
    assert c["within_2sd"] == pytest.approx(0.954, abs=0.01)
    assert c["abs_error_sd_r"] > 0.3  # bigger SD, bigger errors
    over = calibration(truth, np.zeros_like(truth), sd * 3)
    assert over["within_1sd"] > 0.95
