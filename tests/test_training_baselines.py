"""Reference estimators: training mean, ridge on architecture features."""

from __future__ import annotations

import numpy as np
import pytest

from musclestate.training.baselines import MeanPredictor, RidgeBaseline


def test_mean_predictor_predicts_the_training_mean() -> None:
    y = np.array([[1.0, 10.0], [3.0, np.nan], [5.0, 30.0]])
    pred = MeanPredictor.fit(y).predict(4)
    assert pred.shape == (4, 2)
    np.testing.assert_allclose(pred, [[3.0, 20.0]] * 4)


def _linear(n: int, seed: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * [1.0, 100.0, 0.01] + [0.0, 50.0, 2.0]
    y = np.stack([2 * x[:, 0] + 0.03 * x[:, 1], 300 * x[:, 2]], axis=1)
    return x, y + rng.normal(0, noise, y.shape)


def test_ridge_recovers_a_linear_relation_on_unscaled_features() -> None:
    xt, yt = _linear(400, 0, 0.01)
    xv, yv = _linear(100, 1, 0.01)
    xs, ys = _linear(100, 2, 0.0)
    model = RidgeBaseline.fit(xt, yt, xv, yv, alphas=(0.001, 1.0, 1000.0))
    np.testing.assert_allclose(model.predict(xs), ys, atol=0.2)
    assert np.all(model.alphas < 1000.0)


def test_ridge_penalty_is_chosen_on_validation() -> None:
    rng = np.random.default_rng(3)
    # pure-noise features: the validation participants favour the strongest penalty
    xt, xv = rng.normal(size=(30, 10)), rng.normal(size=(30, 10))
    yt, yv = rng.normal(size=(30, 1)), rng.normal(size=(30, 1))
    model = RidgeBaseline.fit(xt, yt, xv, yv, alphas=(0.01, 1e6))
    assert model.alphas[0] == 1e6


def test_missing_features_fall_back_to_the_training_mean() -> None:
    xt, yt = _linear(200, 0, 0.01)
    model = RidgeBaseline.fit(xt, yt, xt[:50], yt[:50], alphas=(0.1,))
    x = xt[:5].copy()
    x[:, :] = np.nan
    pred = model.predict(x)
    assert np.all(np.isfinite(pred))
    np.testing.assert_allclose(pred[0], yt.mean(axis=0), rtol=0.05)
    assert pytest.approx(pred[0]) == pred[1]
