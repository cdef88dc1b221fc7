"""Learned quality, resume and DDP on tiny synthetic patch cohorts (fixed seeds, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from musclestate.errors import DatasetError
from musclestate.models.networks import build_network
from musclestate.training.config import TrainConfig
from musclestate.training.data import Cohort, ExampleSet, RecordingData
from musclestate.training.metrics import compute_r2
from musclestate.training.module import fit_estimator, predict_examples

pytestmark = pytest.mark.slow  # trains networks or runs whole workflows

UNITS = {"ankle_angle": "deg", "ankle_moment": "N m", "mg_activation": "%MVC",
         "sol_activation": "%MVC"}  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the suite runs two workers on two cores
    yield
    torch.set_num_threads(old)


def _cohort(recs: list[dict]) -> Cohort:
    data = tuple(
        RecordingData(
            id=r["id"], participant=r["participant"], trial=r["trial"], t_s=r["t_s"],
            images=r["images"], targets=r["targets"], features=r["features"],
        )
        for r in recs
    )  # fmt: skip
    return Cohort(data, UNITS, ("f_angle", "f_mg", "f_sol"))


def _predict(cfg: TrainConfig, fit, examples: ExampleSet) -> tuple[np.ndarray, np.ndarray]:
    net = build_network(cfg.model.network, cfg.in_channels, len(UNITS), cfg.model.network_params,
                        members=cfg.model.ensemble)  # fmt: skip
    net.load_state_dict(fit.state_dict)
    return predict_examples(net, examples, fit.norm, fit.sd_scale, cfg)


@pytest.mark.parametrize(
    ("aux_weight", "ensemble", "stride", "ema"),
    [(0.0, 1, 1, 0.0), (0.5, 1, 1, 0.0), (0.0, 2, 2, 0.0), (0.0, 1, 1, 0.95)],
)
def test_cnn_learns_states_of_unseen_participants(
    synthetic_recordings, tmp_path, aux_weight: float, ensemble: int, stride: int, ema: float
) -> None:
    c = _cohort(synthetic_recordings(participants=6, recordings=2, frames=100))
    cfg = TrainConfig().replace(image_size=(32, 32), epochs=8, batch_size=32, aux_weight=aux_weight,
                      fuse_features=False, ensemble=ensemble, frame_stride=stride, ema_decay=ema,
                      network_params={"widths": [16, 32, 64]})  # fmt: skip
    tr = ExampleSet.from_cohort(c.subset(["P01", "P02", "P03", "P04"]))
    va = ExampleSet.from_cohort(c.subset(["P05"]))
    te = ExampleSet.from_cohort(c.subset(["P06"]))
    fit = fit_estimator(tr, va, cfg, tmp_path / "w")
    mean, sd = _predict(cfg, fit, te)  # auxiliary outputs, if any, are cut from the weights
    work = [tmp_path / "w"] if ensemble == 1 else [tmp_path / "w" / f"member_{m:02d}" for m in
                                                  range(ensemble)]  # fmt: skip
    for w in work:
        assert (w / "checkpoints" / "last.ckpt").is_file()
        logged = (w / "logs" / "metrics.csv").read_text().splitlines()[0]
        assert ("train_aux_mse" in logged) == (aux_weight > 0)
    assert len(fit.members) == ensemble
    assert sum(m[3] for m in fit.members) == len(tr)  # stride == members: every frame once
    assert 0 <= fit.best_epoch < fit.epochs_run <= cfg.optimisation.epochs
    train_mean = np.nanmean(tr.targets, axis=0)
    for j, name in enumerate(UNITS):
        r2 = compute_r2(te.targets[:, j], mean[:, j])
        r2_mean = compute_r2(te.targets[:, j], np.full(len(te), train_mean[j]))
        assert r2 > 0.6, (name, r2)
        assert r2 > r2_mean + 0.5, (name, r2, r2_mean)
        # the spread is on the scale of the actual error
        rmse = np.sqrt(np.mean((te.targets[:, j] - mean[:, j]) ** 2))
        assert 0.3 * rmse < np.median(sd[:, j]) < 3 * rmse, (name, rmse, np.median(sd[:, j]))


class _Crash(Callback):
    """Simulates an interruption at the start of a given epoch (after checkpoints were saved)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated interruption")


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_gives_the_same_result_as_an_uninterrupted_run(
    synthetic_recordings, tmp_path, ema: float
) -> None:
    c = _cohort(synthetic_recordings(participants=3, recordings=1, frames=64, size=24))
    cfg = TrainConfig().replace(image_size=(24, 24), epochs=4, batch_size=16, patience=10,
                                ema_decay=ema, network_params={"widths": [8, 16]},
                                fuse_features=False)  # fmt: skip
    tr = ExampleSet.from_cohort(c.subset(["P01", "P02"]))
    va = ExampleSet.from_cohort(c.subset(["P03"]))
    full = fit_estimator(tr, va, cfg, tmp_path / "full")
    with pytest.raises(RuntimeError, match="simulated interruption"):
        fit_estimator(tr, va, cfg, tmp_path / "cut", callbacks=[_Crash(2)])
    resumed = fit_estimator(tr, va, cfg, tmp_path / "cut", resume=True)
    assert resumed.epochs_run == full.epochs_run == 4
    assert resumed.best_epoch == full.best_epoch
    for k, v in full.state_dict.items():
        assert torch.equal(v, resumed.state_dict[k]), k
    np.testing.assert_array_equal(_predict(cfg, full, va)[0], _predict(cfg, resumed, va)[0])
    # a run that starts over (no --resume) differs from the interrupted weights' continuation
    # only through its own training: it ends at the same result too
    again = fit_estimator(tr, va, cfg, tmp_path / "cut")
    assert all(torch.equal(v, again.state_dict[k]) for k, v in full.state_dict.items())
    if ema:
        # the saved network is the average, not the last raw weights
        raw = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=False)
        k = next(iter(full.state_dict))
        assert not torch.equal(
            raw["current_model_state"]["net." + k], raw["state_dict"]["net." + k]
        )


def test_auxiliary_targets_need_architecture_measures(synthetic_recordings, tmp_path) -> None:
    recs = synthetic_recordings(participants=2, recordings=1, frames=40, size=24)
    c = _cohort([{**r, "features": None} for r in recs])
    cfg = TrainConfig().replace(
        image_size=(24, 24), epochs=1, batch_size=16, aux_weight=1.0, fuse_features=False
    )
    tr = ExampleSet.from_cohort(c.subset(["P01"]))
    va = ExampleSet.from_cohort(c.subset(["P02"]))
    with pytest.raises(DatasetError, match="aux_weight"):
        fit_estimator(tr, va, cfg, tmp_path / "w")
