"""The ``out_of_range`` rule for the architecture measures: Mahalanobis novelty, old cards."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from musclestate.errors import BundleError
from musclestate.inference.loader import training_range
from musclestate.inference.novelty import FeatureNovelty
from musclestate.inference.predictor import TrainingRange
from musclestate.models.card import BundleCard, InputSpec, NetworkSpec, TargetSpec, TrainingRecord
from musclestate.roi.architecture import FEATURE_NAMES
from musclestate.training.config import TrainConfig

COL = {n: j for j, n in enumerate(FEATURE_NAMES)}
THICK, DEEP, FASC, PENN = (
    COL[n] for n in ("mg_thickness_mm", "deep_angle_deg", "fascicle_angle_deg", "pennation_deg")
)
N_MEASURES = len(FEATURE_NAMES)
#: participant level (mean, between-person SD) of the measures that vary on their own
LEVELS = {
    "mg_thickness_mm": (18.0, 1.5),
    "superficial_angle_deg": (0.0, 1.0),
    "deep_angle_deg": (-2.0, 1.0),
    "fascicle_angle_deg": (20.0, 2.0),
    "sol_fascicle_angle_deg": (-25.0, 2.0),
    "mg_echo": (45.0, 4.0),
    "sol_echo": (0.0, 4.0),
}


def measures(
    participants: int, frames: int, rng: np.random.Generator, level: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Architecture measures ``(participants * frames, F)`` in FEATURE_NAMES order, like the
    phantom's: per-participant levels plus per-frame variation, heavy-tailed single-frame
    fascicle angles, pennations = fascicle angle - aponeurosis angle, fascicle length =
    thickness / sin(pennation), SOL echo following MG echo.

    Returns the measures and the participant levels ``(participants, F)`` (pass ``level`` to
    draw new frames of the same participants)."""
    if level is None:
        level = np.zeros((participants, N_MEASURES))
        for name, (mean, sd) in LEVELS.items():
            level[:, COL[name]] = mean + rng.normal(size=participants) * sd
    x = np.repeat(level, frames, axis=0)
    n = len(x)
    x[:, THICK] += rng.normal(0.0, 0.4, n)
    x[:, COL["superficial_angle_deg"]] += rng.normal(0.0, 0.5, n)
    x[:, DEEP] += rng.normal(0.0, 0.5, n)
    x[:, FASC] += 2.0 * rng.standard_t(4, n)  # single-frame orientation: heavy tails
    x[:, COL["sol_fascicle_angle_deg"]] += 2.0 * rng.standard_t(4, n)
    x[:, PENN] = x[:, FASC] - x[:, DEEP]
    x[:, COL["superficial_pennation_deg"]] = x[:, FASC] - x[:, COL["superficial_angle_deg"]]
    x[:, COL["mg_fascicle_length_mm"]] = x[:, THICK] / np.sin(np.radians(x[:, PENN]))
    x[:, COL["sol_pennation_deg"]] = x[:, DEEP] - x[:, COL["sol_fascicle_angle_deg"]]
    x[:, COL["mg_echo"]] += rng.normal(0.0, 2.0, n)
    x[:, COL["sol_echo"]] = 0.8 * x[:, COL["mg_echo"]] + rng.normal(0.0, 3.0, n)
    return x, level


def as_table(x: np.ndarray) -> dict[str, np.ndarray]:
    return {name: x[:, j] for j, name in enumerate(FEATURE_NAMES)}


def box_flags(train: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The rule of cards without ``feature_novelty``: each measure in training min..max + 10 %."""
    box = {k: (train[:, j].min(), train[:, j].max()) for j, k in enumerate(FEATURE_NAMES)}
    return TrainingRange(features=box).flag({}, as_table(x), 0.1)


@pytest.fixture(scope="module")
def fitted() -> tuple[FeatureNovelty, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    train, level = measures(12, 200, rng)
    nov = FeatureNovelty.fit(train, FEATURE_NAMES, groups=np.repeat(np.arange(12), 200))
    assert nov is not None
    return nov, train, level


def test_frames_like_training_are_rarely_flagged(fitted) -> None:
    nov, train, level = fitted
    assert nov.names == FEATURE_NAMES and nov.quantile == 0.995 and nov.n_frames == 2400
    assert nov.calibration == "12 held-out participants"
    rng = np.random.default_rng(1)
    same, _ = measures(12, 500, rng, level=level)  # new frames of the training participants
    new, _ = measures(50, 200, rng)  # new participants of the same population
    assert np.mean(nov.flag(as_table(train))) < 0.005
    assert np.mean(nov.flag(as_table(same))) < 0.01
    assert np.mean(nov.flag(as_table(new))) < 0.02
    # the min..max box flags new people of the same population far more often
    assert np.mean(box_flags(train, new)) > max(0.04, 2 * np.mean(nov.flag(as_table(new))))
    # the training frames' own distances set a threshold that new participants often exceed
    own = FeatureNovelty.fit(train, FEATURE_NAMES)
    assert own is not None and own.calibration == "the training frames"
    assert np.mean(own.flag(as_table(train))) == pytest.approx(0.005, abs=1e-3)
    assert own.threshold < nov.threshold and np.mean(own.flag(as_table(new))) > 0.02


@pytest.mark.parametrize(
    ("columns", "scale", "offset", "at_least"),
    [
        ((THICK,), 2.0, 0.0, 0.99),
        ((FASC, PENN), 1.0, 20.0, 0.9),  # 20 deg = 5.7 SD of the single-frame fascicle angle
        ((PENN,), 1.0, 20.0, 0.99),
    ],
    ids=["thickness x 2", "fascicle angle and pennation + 20 deg", "pennation alone + 20 deg"],
)
def test_clearly_shifted_measures_are_flagged(
    fitted, columns: tuple[int, ...], scale: float, offset: float, at_least: float
) -> None:
    nov, train, level = fitted
    x, _ = measures(12, 100, np.random.default_rng(2), level=level)
    shifted = x.copy()
    shifted[:, columns] = shifted[:, columns] * scale + offset
    assert np.mean(nov.flag(as_table(x))) < 0.01
    assert np.mean(nov.flag(as_table(shifted))) > at_least
    assert np.mean(nov.flag(as_table(shifted))) >= np.mean(box_flags(train, shifted))


def test_frames_missing_a_measure_are_judged_on_the_others() -> None:
    rng = np.random.default_rng(3)
    x, _ = measures(6, 100, rng)
    x[:, COL["mg_echo"]] = 50.0  # no spread in training: left out
    x[::10, FASC] = np.nan  # some frames unmeasured: left out of the fit
    nov = FeatureNovelty.fit(x, FEATURE_NAMES)
    assert nov is not None and "mg_echo" not in nov.names and nov.n_frames == 540
    far = x[1:5].copy()  # rows 0 and 10 lack the fascicle angle
    far[:, THICK] *= 3
    far[1, PENN] = np.nan
    table = as_table(far)
    assert nov.flag(table).tolist() == [True, True, True, True]  # row 1 on its other measures
    near = x[1:3].copy()
    near[0, PENN] = np.nan
    assert nov.flag(as_table(near)).tolist() == [False, False]
    assert np.isnan(nov.distance(as_table(np.full_like(near, np.nan)))).all()
    del table["sol_echo"]  # a measure the ROI stage does not give: judged on targets alone
    assert not nov.flag(table).any()
    assert FeatureNovelty.fit(x[:10], FEATURE_NAMES) is None  # too few frames for 10 measures


def test_card_entry_round_trips_through_json(fitted) -> None:
    nov, train, _ = fitted
    again = FeatureNovelty.from_dict(json.loads(json.dumps(nov.to_dict())))
    np.testing.assert_allclose(again.distance(as_table(train)), nov.distance(as_table(train)))
    assert (again.threshold, again.quantile, again.shrinkage) == (
        nov.threshold,
        nov.quantile,
        nov.shrinkage,
    )


def _card(training: dict) -> BundleCard:
    return BundleCard(
        network=NetworkSpec("compact_resnet", 2, 1),
        input=InputSpec("patches", ("MG", "SOL"), 2, 0, (32, 64)),
        targets=(TargetSpec("ankle_angle", "deg", 0.0, 10.0),),
        training=TrainingRecord.from_dict(
            {"target_range": {"ankle_angle": [-20.0, 20.0]}, **training}
        ),
    )


def test_card_with_novelty_uses_it_instead_of_the_box(fitted) -> None:
    nov, train, _ = fitted
    box = {"mg_thickness_mm": [0.0, 1.0]}  # would flag every frame
    rng, rule = training_range(_card({"feature_range": box, "feature_novelty": nov.to_dict()}))
    assert rng.features == {} and rng.novelty is not None
    assert rule == (
        f"architecture measures: Mahalanobis distance of {N_MEASURES} measures from the training "
        "frames > "
        f"{nov.threshold:.3g} (the 99.5 % quantile over 12 held-out participants); "
        "targets: training min..max"
    )
    x = train[~nov.flag(as_table(train))][:100]
    mean = {"ankle_angle": np.where(np.arange(100) == 7, 25.0, 0.0)}  # target rule unchanged
    assert np.flatnonzero(rng.flag(mean, as_table(x), 0.1)).tolist() == [7]
    x[50, THICK] *= 2
    assert np.flatnonzero(rng.flag(mean, as_table(x), 0.1)).tolist() == [7, 50]


def test_old_card_keeps_the_min_max_rule() -> None:
    rng, rule = training_range(_card({"feature_range": {"mg_thickness_mm": [10.0, 20.0]}}))
    assert rng.novelty is None and rng.features == {"mg_thickness_mm": (10.0, 20.0)}
    assert rule == "architecture measures: training min..max; targets: training min..max"
    th = np.array([8.9, 9.1, 15.0, 20.9, 21.1])
    got = rng.flag({"ankle_angle": np.zeros(5)}, {"mg_thickness_mm": th}, 0.1)
    assert got.tolist() == [True, False, False, False, True]
    assert training_range(_card({"feature_novelty": None}))[1] == "targets: training min..max"


def test_malformed_novelty_entry_names_the_way_out(fitted) -> None:
    entry = fitted[0].to_dict() | {"covariance": [[1.0]]}
    with pytest.raises(BundleError, match="remove the entry"):
        training_range(_card({"feature_novelty": entry}))


def test_training_writes_the_novelty_entry_next_to_the_ranges(fitted) -> None:
    from musclestate.training.cv import _fold_card_training

    _, train, _ = fitted

    class Examples(SimpleNamespace):
        def __len__(self) -> int:
            return len(self.targets)

    ex = Examples(
        targets=np.zeros((len(train), 1)),
        target_names=("ankle_angle",),
        features=train.astype(np.float32),
        participant=np.repeat([f"P{i:02d}" for i in range(12)], 200),
    )
    cohort = SimpleNamespace(
        recordings=[], feature_names=FEATURE_NAMES, source="synthetic", dataset_sha256=""
    )
    fit = SimpleNamespace(best_epoch=1, epochs_run=2, val_mse=0.5)
    record = _fold_card_training(cohort, ["P01"], ["P02"], ex, fit, TrainConfig())
    assert set(record.feature_range) == set(FEATURE_NAMES)
    entry = json.loads(json.dumps(record.feature_novelty))
    nov = FeatureNovelty.from_dict(entry)
    assert nov.names == FEATURE_NAMES and nov.calibration == "12 held-out participants"
    assert nov.threshold == pytest.approx(fitted[0].threshold, rel=1e-4)
    ex.features = None
    assert (
        _fold_card_training(cohort, ["P01"], ["P02"], ex, fit, TrainConfig()).feature_novelty
        is None
    )


def test_training_range_defaults_flag_nothing_on_features() -> None:
    x, _ = measures(2, 10, np.random.default_rng(4))
    assert not TrainingRange().flag({}, as_table(x * 100), 0.1).any()
