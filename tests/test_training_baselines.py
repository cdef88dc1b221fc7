"""Reference estimators: training mean, ridge on architecture features."""

from __future__ import annotations

import numpy as np
import pytest

from musclestate.errors import DatasetError
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


def _people(n_people: int, per: int) -> np.ndarray:
    return np.repeat([f"P{i:02d}" for i in range(n_people)], per)


def test_ridge_recovers_a_linear_relation_on_unscaled_features() -> None:
    x, y = _linear(500, 0, 0.01)
    xs, ys = _linear(100, 2, 0.0)
    model = RidgeBaseline.fit_nested(x, y, _people(5, 100), alphas=(0.001, 1.0, 1000.0))
    np.testing.assert_allclose(model.predict(xs), ys, atol=0.2)
    assert np.all(model.alphas < 1000.0)


def test_ridge_penalty_grid_is_widened_where_the_choice_lands_on_its_edge() -> None:
    rng = np.random.default_rng(3)
    # pure-noise features: held-out people favour ever stronger penalties, beyond the grid
    x, y = rng.normal(size=(60, 10)), rng.normal(size=(60, 1))
    model = RidgeBaseline.fit_nested(x, y, _people(6, 10), alphas=(0.01, 0.1, 1.0))
    assert model.alphas[0] >= 10.0
    # and a clean linear relation asks for a small penalty: widened downwards instead
    x, y = _linear(300, 1, 0.0)
    model = RidgeBaseline.fit_nested(x, y[:, :1], _people(3, 100), alphas=(1.0, 10.0, 100.0))
    assert model.alphas[0] < 1.0


def test_ridge_is_fitted_on_the_given_rows_only() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(80, 3))
    y = np.concatenate([np.zeros(40), np.full(40, 10.0)])[:, None]
    fit_rows = np.arange(80) < 40
    model = RidgeBaseline.fit_nested(x, y, _people(4, 20), alphas=(1e6,), max_widen=0,
                                     fit_rows=fit_rows)  # fmt: skip
    # a huge penalty leaves the intercept: the mean of the rows fitted on, not of all rows
    assert np.allclose(model.predict(x[:5]), 0.0, atol=0.05)


def test_ridge_needs_two_participants() -> None:
    x, y = _linear(50, 0, 0.1)
    with pytest.raises(DatasetError, match="at least two"):
        RidgeBaseline.fit_nested(x, y, _people(1, 50), alphas=(1.0,))


def test_missing_features_fall_back_to_the_training_mean() -> None:
    xt, yt = _linear(200, 0, 0.01)
    model = RidgeBaseline.fit_nested(xt, yt, _people(4, 50), alphas=(0.1,), max_widen=0)
    x = xt[:5].copy()
    x[:, :] = np.nan
    pred = model.predict(x)
    assert np.all(np.isfinite(pred))
    np.testing.assert_allclose(pred[0], yt.mean(axis=0), rtol=0.05)
    assert pytest.approx(pred[0]) == pred[1]


def test_a_wild_measure_is_held_at_the_limit_of_the_training_spread() -> None:
    from musclestate.models.networks import FEATURE_Z_LIMIT

    xt, yt = _linear(200, 0, 0.01)
    model = RidgeBaseline.fit_nested(xt, yt, _people(4, 50), alphas=(0.1,), max_widen=0)
    at_limit = xt[:1].copy()
    at_limit[0, 0] = model.x_mean[0] + FEATURE_Z_LIMIT * model.x_sd[0]
    wild = at_limit.copy()
    wild[0, 0] = model.x_mean[0] + 1000 * model.x_sd[0]  # a failed single-frame estimate
    np.testing.assert_allclose(model.predict(wild), model.predict(at_limit))
    # inside the limit the relation is followed
    inside = at_limit.copy()
    inside[0, 0] = model.x_mean[0] + 2 * model.x_sd[0]
    assert not np.allclose(model.predict(inside), model.predict(at_limit))
