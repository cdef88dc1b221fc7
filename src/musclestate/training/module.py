"""Lightning training: musclestate's one module family and the one way a module is fitted.

:class:`TrainingModule` holds what every task shares (a network ``net``, AdamW with a cosine
learning-rate decay to 1/20); :class:`EstimatorModule` (muscle states from patches) and
:class:`SegmenterModule` (aponeurosis masks from frames) add their loss and validation metric.
:func:`fit_module` runs either the same way: Lightning checkpoints in ``workdir/checkpoints``
(``last.ckpt`` every epoch plus the best by the monitored metric), a CSV log in ``workdir/logs``,
``resume`` from ``last.ckpt``, optional early stopping and weight averaging, and
:class:`~musclestate.progress.ProgressEvent` per epoch.

Estimator loss: mean squared error of the normalised targets (unknown targets masked) plus the
Gaussian negative log-likelihood of the log-variance head with the mean detached, so the spread is
learned without pulling the mean (cf. Seitzer et al. 2022, "On the pitfalls of heteroscedastic
uncertainty estimation with probabilistic neural networks", ICLR). Early stopping and the
choice of checkpoint use the MSE on validation participants from the training side; the
predicted SD is then rescaled per target so that it matches the error on those same
validation participants (a one-parameter variance calibration, Kuleshov et al. 2018).
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, WeightAveraging
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor
from torch.utils.data import DataLoader

from musclestate.errors import ConfigError, DatasetError
from musclestate.models.networks import LOGVAR_RANGE, build_network, drop_extra_outputs
from musclestate.progress import ProgressEvent, ProgressFn
from musclestate.training.config import TrainConfig
from musclestate.training.data import (
    ChunkSampler,
    EpochBatchSampler,
    ExampleSet,
    FrameDataset,
    TargetNorm,
)

log = logging.getLogger(__name__)


def quiet_lightning() -> None:
    """Turn Lightning's per-Trainer INFO chatter (devices found, tips) down to warnings.

    Lightning configures its loggers when it is imported, so this runs after the import, just
    before a Trainer is built; musclestate reports training progress itself.
    """
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Lightning's own use of a deprecated torch pytree API, printed once per Trainer.
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)


class TrainingModule(L.LightningModule):
    """Base of musclestate's Lightning modules: one network ``net`` fitted with AdamW and a
    cosine learning-rate decay from ``lr`` to ``lr / 20`` over ``schedule_steps`` scheduler steps
    (epochs or optimiser steps, ``interval``). Subclasses add ``training_step`` and
    ``validation_step``.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        *,
        lr: float,
        weight_decay: float = 0.0,
        schedule_steps: int,
        interval: str = "epoch",
    ) -> None:
        super().__init__()
        self.net = net
        self._optim = (float(lr), float(weight_decay), max(1, int(schedule_steps)), interval)

    def configure_optimizers(self) -> Any:
        lr, weight_decay, steps, interval = self._optim
        opt = torch.optim.AdamW(self.net.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 20)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval}}


class EstimatorModule(TrainingModule):
    """A registered network trained on normalised targets with a Gaussian head.

    Args:
        config: the training configuration (network, lr, epochs, ...).
        n_targets: number of targets (the network outputs ``2 * n_targets``).
        n_aux: auxiliary outputs after the Gaussian head (architecture measures, trained with
            weight ``config.optimisation.aux_weight``; 0 = none).
        n_features: architecture measures read as inputs (``config.model.fuse_features``; 0 = none).
    """

    def __init__(
        self, config: TrainConfig, n_targets: int, n_aux: int = 0, n_features: int = 0
    ) -> None:
        net = build_network(
            config.model.network, config.in_channels, n_targets, config.model.network_params, n_aux,
            n_features=n_features,
        )  # fmt: skip
        o = config.optimisation
        super().__init__(net, lr=o.lr, weight_decay=o.weight_decay, schedule_steps=o.epochs)
        self.config = config
        self.n_targets = n_targets
        self.n_aux = n_aux
        self.n_features = n_features

    def forward(
        self, x: torch.Tensor, features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, C, h, w)`` in 0..1 (and ``(N, F)`` measures for a fused network) ->
        normalised means and log-variances, each ``(N, T)``."""
        mu, logvar, _ = self._outputs(x, features)
        return mu, logvar

    def _outputs(
        self, x: torch.Tensor, features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.net(x) if features is None else self.net(x, features)
        t = self.n_targets
        return out[:, :t], out[:, t : 2 * t].clamp(*LOGVAR_RANGE), out[:, 2 * t :]

    def _losses(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """``(mse, nll, aux_mse)`` of a batch ``(x, y, mask[, features | y_aux, mask_aux])``."""
        x, y, mask = batch[:3]
        features = batch[3] if self.n_features else None
        mu, logvar, aux = self._outputs(x, features)
        mse, n = _masked_mse(mu, y, mask)
        m = mask.to(mu.dtype)
        nll = (0.5 * (logvar + (y - mu.detach()) ** 2 * torch.exp(-logvar)) * m).sum() / n
        aux_mse = _masked_mse(aux, *batch[3:5])[0] if len(batch) == 5 else mu.new_zeros(())
        return mse, nll, aux_mse

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        mse, nll, aux_mse = self._losses(batch)
        loss = mse + nll
        self.log("train_mse", mse, on_step=False, on_epoch=True, sync_dist=True)
        self.log("train_nll", nll, on_step=False, on_epoch=True, sync_dist=True)
        if self.n_aux:
            loss = loss + self.config.optimisation.aux_weight * aux_mse
            self.log("train_aux_mse", aux_mse, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        mse, nll, _ = self._losses(batch)
        bs = int(batch[0].shape[0])
        self.log("val_mse", mse, on_epoch=True, sync_dist=True, batch_size=bs)
        self.log("val_nll", nll, on_epoch=True, sync_dist=True, batch_size=bs)


class SegmenterModule(TrainingModule):
    """A binary segmentation network (logits ``(N, 1, s, s)``) trained with MONAI's
    ``DiceCELoss`` (Dice + binary cross-entropy) and chosen by MONAI's ``DiceMetric``.

    Batches are ``(x, y)``: ``(N, 1, s, s)`` uint8 letterboxed frames and masks (0..255, > 127
    = foreground). ``augment(x, y, generator)`` changes each training batch (float 0..255 and
    0..1 in, the same out); its ``torch.Generator`` is seeded by ``(seed, epoch, batch)``, so a
    resumed run draws what an uninterrupted one would. ``normalise`` maps 0..255 frames to the
    network's input. The learning rate decays per optimiser step over ``total_steps``.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        *,
        lr: float,
        total_steps: int,
        seed: int,
        normalise: Callable[[Tensor], Tensor],
        augment: Callable[[Tensor, Tensor, torch.Generator], tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        from monai.losses import DiceCELoss
        from monai.metrics import DiceMetric

        super().__init__(net, lr=lr, schedule_steps=total_steps, interval="step")
        self.loss = DiceCELoss(sigmoid=True, squared_pred=True, smooth_nr=1e-5, smooth_dr=1e-5)
        # empty masks: both empty = 1, an empty truth with a non-empty prediction = 0
        self.dice = DiceMetric(include_background=True, reduction="mean", ignore_empty=False)
        self.seed, self.normalise, self.augment = int(seed), normalise, augment

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, 1, s, s)`` of frames ``(N, 1, s, s)`` in 0..255."""
        return self.net(self.normalise(x.float()))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch[0].float(), batch[1].float() / 255.0
        if self.augment is not None:
            seed = np.random.SeedSequence([self.seed, self.current_epoch, batch_idx])
            gen = torch.Generator().manual_seed(int(seed.generate_state(1)[0]))
            x, y = self.augment(x, y, gen)
        loss = self.loss(self(x), (y > 0.5).float())
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, batch_size=len(x))
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        self.dice(self(x) > 0, y > 127)

    def on_validation_epoch_end(self) -> None:
        self.log("val_dice", self.dice.aggregate().item())
        self.dice.reset()


def ema_with_warmup(decay: float) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """Averaging function for ``torch.optim.swa_utils.AveragedModel``: an exponential moving
    average whose decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates.

    The ramp (TensorFlow's ``ExponentialMovingAverage(num_updates=...)`` rule) keeps the average
    from clinging to the random initial weights when a run has few optimiser steps; torch's
    ``get_ema_avg_fn`` has no such ramp.
    """

    def avg(averaged: Tensor, current: Tensor, n: Tensor) -> Tensor:
        # tensor arithmetic: no device-to-host sync per parameter on a GPU
        n = n.to(averaged.dtype)
        d = torch.clamp((1.0 + n) / (10.0 + n), max=decay)
        return averaged + (current - averaged) * (1.0 - d)

    return avg


def _masked_mse(
    pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared error over the known entries, and their count (at least 1)."""
    m = mask.to(pred.dtype)
    n = m.sum().clamp_min(1.0)
    return (((pred - y) ** 2) * m).sum() / n, n


class EstimatorData(L.LightningDataModule):
    """Serves the training and validation participants' examples to a Trainer.

    The training loader is built when the Trainer asks for it, so that each DDP process knows its
    rank and takes its slice of every global batch (:class:`EpochBatchSampler`).
    """

    def __init__(
        self,
        train: ExampleSet,
        val: ExampleSet,
        norm: TargetNorm,
        config: TrainConfig,
        aux_norm: TargetNorm | None = None,
    ) -> None:
        super().__init__()
        fused = config.model.fuse_features
        self.train_set = FrameDataset(
            train, norm, config.data.augment, config.seed, aux_norm, with_features=fused
        )
        self.val_set = FrameDataset(val, norm, with_features=fused)
        self.config = config

    def train_dataloader(self) -> DataLoader:
        rank, world = 0, 1
        if self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        sampler = EpochBatchSampler(
            len(self.train_set), self.config.optimisation.batch_size, self.config.seed, rank, world
        )
        return DataLoader(self.train_set, sampler=sampler, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        sampler = ChunkSampler(len(self.val_set), max(self.config.optimisation.batch_size, 256))
        return DataLoader(self.val_set, sampler=sampler, batch_size=None)


class EpochProgress(Callback):
    """Reports finished epochs to ``progress`` as :class:`ProgressEvent` (unit ``"epochs"``,
    ``total`` epochs, part ``part`` of ``parts``)."""

    def __init__(
        self,
        progress: ProgressFn,
        total: int,
        part: int = 0,
        parts: int = 1,
        stage: str = "train",
        message: str = "",
    ) -> None:
        self.progress, self.total, self.part, self.parts = progress, total, part, parts
        self.stage, self.message = stage, message

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            done = trainer.current_epoch + 1
            self.progress(
                ProgressEvent(self.stage, done, self.total, "epochs", self.message,
                              self.part, self.parts)
            )  # fmt: skip


@dataclass(frozen=True)
class FitResult:
    """A trained estimator: best network weights plus what is needed to use them.

    Attributes:
        state_dict: the network's weights at the best validation epoch (CPU tensors); for an
            ensemble (``config.model.ensemble > 1``) those of the
            :class:`~musclestate.models.networks.Ensemble` of every member's best weights.
        norm: target normalisation fitted on the training participants.
        sd_scale: ``(n_targets,)`` factor on the predicted SD, fitted on validation participants.
        best_epoch: 0-based epoch of the chosen checkpoint (the latest over the members).
        epochs_run: epochs trained (early stopping may end before
            ``config.optimisation.epochs``; the most over the members).
        val_mse: validation MSE (normalised units) of the chosen checkpoint (the ensemble's
            combined estimate for an ensemble).
        is_global_zero: False in the non-zero processes of a DDP run (they should not write).
        members: ``(best_epoch, epochs_run, val_mse, n_frames)`` of every member, ``n_frames``
            being the training frames it saw.
    """

    state_dict: dict[str, torch.Tensor]
    norm: TargetNorm
    sd_scale: np.ndarray
    best_epoch: int
    epochs_run: int
    val_mse: float
    is_global_zero: bool = True
    members: tuple[tuple[int, int, float, int], ...] = ()


def fit_estimator(
    train: ExampleSet,
    val: ExampleSet,
    config: TrainConfig,
    workdir: str | Path,
    *,
    resume: bool = False,
    progress: ProgressFn | None = None,
    part: int = 0,
    parts: int = 1,
    message: str = "",
    stage: str = "train",
    callbacks: list[Callback] | None = None,
) -> FitResult:
    """Train one estimator on ``train``, choosing the epoch on ``val`` (other participants).

    ``train`` holds every training frame: the estimator (each member of an ensemble, see
    :class:`~musclestate.training.config.ModelConfig`) trains on every
    ``config.data.frame_stride``-th of them; ``val`` is used as given. Targets are normalised
    with statistics of all of ``train``.

    Checkpoints go to ``workdir/checkpoints`` (``workdir/member_XX/checkpoints`` per member of
    an ensemble) every epoch (``last.ckpt``) plus the best one; ``resume=True`` continues from
    ``last.ckpt`` when it exists and ends exactly where an uninterrupted run would (stateless
    seeded order and augmentation, deterministic kernels). Without ``resume`` an old
    ``workdir`` is cleared first. Distributed settings of ``config`` (``devices``,
    ``num_nodes``, ``strategy``) go to the Trainer unchanged. ``progress`` receives a
    :class:`~musclestate.progress.ProgressEvent` per epoch: ``stage``, part ``part`` of
    ``parts`` (e.g. the fold), ``message``; an ensemble's members share one count.

    Raises:
        DatasetError: too few training examples for one batch, or a target without values.
    """
    workdir = Path(workdir)
    if config.execution.num_threads:
        torch.set_num_threads(config.execution.num_threads)
    norm = TargetNorm.fit(train.targets)
    n_targets = len(norm.mean)
    stride = config.data.frame_stride
    fits = []
    for m in range(config.model.ensemble):
        rows = np.flatnonzero(train.frame % stride == m % stride)
        mdir = workdir if config.model.ensemble == 1 else workdir / f"member_{m:02d}"
        member = _fit_member(
            train.take(rows), val, config.replace(seed=config.seed + m), norm, mdir,
            resume=resume, progress=_member_progress(progress, m, config.model.ensemble),
            part=part, parts=parts, message=message, stage=stage, callbacks=callbacks,
        )  # fmt: skip
        fits.append(member)
    if config.model.ensemble == 1:
        return fits[0]
    state = {f"members.{m}.{k}": v for m, fit in enumerate(fits) for k, v in fit.state_dict.items()}
    net = build_network(config.model.network, config.in_channels, n_targets,
                        config.model.network_params, members=config.model.ensemble,
                        n_features=_n_features(train, config))  # fmt: skip
    net.load_state_dict(state)
    z_mu, logvar = _predict_normalised(net, val, config, n_targets)
    z_val = norm.apply(val.targets)
    return FitResult(
        state_dict=state,
        norm=norm,
        sd_scale=_calibrate_sd(z_val, z_mu, logvar),
        best_epoch=max(f.best_epoch for f in fits),
        epochs_run=max(f.epochs_run for f in fits),
        val_mse=float(np.nanmean((z_val - z_mu) ** 2)),
        is_global_zero=all(f.is_global_zero for f in fits),
        members=tuple(m for f in fits for m in f.members),
    )


def _member_progress(progress: ProgressFn | None, m: int, members: int) -> ProgressFn | None:
    """Member ``m``'s epochs reported as part of all members' epochs (one bar per model)."""
    if progress is None or members == 1:
        return progress
    return lambda e: progress(e.replace(done=m * e.total + e.done, total=members * e.total))


def _fit_member(
    train: ExampleSet,
    val: ExampleSet,
    config: TrainConfig,
    norm: TargetNorm,
    workdir: Path,
    *,
    resume: bool,
    progress: ProgressFn | None,
    part: int,
    parts: int,
    message: str,
    stage: str,
    callbacks: list[Callback] | None,
) -> FitResult:
    """Train one network (see :func:`fit_estimator`) on exactly the given examples."""
    aux_norm = None
    if config.optimisation.aux_weight > 0:
        if train.features is None:
            raise DatasetError(
                "aux_weight > 0 needs the ROI stage's architecture measures, and the dataset "
                "has none; run `musclestate roi apply` or set aux_weight 0"
            )
        aux_norm = TargetNorm.fit_features(train.features)
    n_aux = 0 if aux_norm is None else len(aux_norm.mean)
    L.seed_everything(config.seed, workers=True, verbose=False)
    n_features = _n_features(train, config)
    module = EstimatorModule(config, len(train.target_names), n_aux, n_features)
    if n_features:
        f_norm = TargetNorm.fit_features(train.features)
        module.net.set_feature_norm(f_norm.mean, f_norm.sd)
    data = EstimatorData(train, val, norm, config, aux_norm)
    o, e = config.optimisation, config.execution
    bar = (
        None if progress is None else EpochProgress(progress, o.epochs, part, parts, stage, message)
    )
    fit = fit_module(
        module, workdir, data=data, monitor="val_mse", mode="min", epochs=o.epochs,
        resume=resume, patience=o.patience, ema_decay=o.ema_decay,
        progress=bar,
        callbacks=callbacks, accelerator=e.accelerator, devices=e.devices,
        num_nodes=e.num_nodes, strategy=e.strategy, deterministic=True,
    )  # fmt: skip
    net_state = {k: v.detach().cpu().clone() for k, v in module.net.state_dict().items()}
    if n_aux:
        net_state = drop_extra_outputs(module.net, net_state, 2 * len(norm.mean))
    val_z_mu, val_logvar = _predict_normalised(module.net, val, config, len(norm.mean))
    sd_scale = _calibrate_sd(norm.apply(val.targets), val_z_mu, val_logvar)
    return FitResult(
        state_dict=net_state,
        norm=norm,
        sd_scale=sd_scale,
        best_epoch=fit.best_epoch,
        epochs_run=fit.epochs_run,
        val_mse=fit.best_score,
        is_global_zero=fit.is_global_zero,
        members=((fit.best_epoch, fit.epochs_run, fit.best_score, len(train)),),
    )


@dataclass(frozen=True)
class ModuleFit:
    """What :func:`fit_module` reports of a finished fit (the module holds the best weights).

    Attributes:
        best_epoch: 0-based epoch of the best checkpoint.
        best_score: its monitored metric.
        epochs_run: epochs trained (fewer than asked after early stopping or ``max_minutes``).
        is_global_zero: False in the non-zero processes of a DDP run (they should not write).
        checkpoint_dir: ``workdir/checkpoints``.
    """

    best_epoch: int
    best_score: float
    epochs_run: int
    is_global_zero: bool
    checkpoint_dir: Path


def fit_module(
    module: TrainingModule,
    workdir: str | Path,
    *,
    monitor: str,
    mode: str,
    epochs: int,
    data: L.LightningDataModule | None = None,
    train_loader: DataLoader | None = None,
    val_loader: DataLoader | None = None,
    resume: bool = False,
    patience: int | None = None,
    ema_decay: float = 0.0,
    max_minutes: float | None = None,
    progress: Callback | None = None,
    callbacks: list[Callback] | None = None,
    accelerator: str = "cpu",
    devices: int | str | list[int] = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    deterministic: bool = True,
) -> ModuleFit:
    """Fit ``module`` with Lightning, then load its best checkpoint's weights back into it (on
    the CPU, in eval mode): the one training loop of every musclestate network.

    Checkpoints go to ``workdir/checkpoints``: ``last.ckpt`` every epoch and
    ``best-epoch=NNN.ckpt`` (best ``monitor`` by ``mode``, ``"min"`` or ``"max"``); the logged
    metrics to ``workdir/logs/metrics.csv``. ``resume=True`` continues from ``last.ckpt`` when
    it exists; without it, old checkpoints and logs in ``workdir`` are removed first. Data come
    from ``data`` or from ``train_loader`` and ``val_loader``. ``patience`` (epochs without
    improvement) stops early; ``ema_decay`` > 0 validates and saves an exponential moving average
    of the weights (:func:`ema_with_warmup`); ``max_minutes`` limits the wall time; ``progress``
    is a :class:`EpochProgress` callback. Distributed settings go to the Trainer unchanged.

    Raises:
        KeyboardInterrupt: the fit was interrupted (continue it with ``resume``).
        ConfigError: ``max_minutes`` ended the fit before the first validation.
    """
    workdir = Path(workdir)
    ckpt_dir = workdir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if not resume and workdir.exists():
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        shutil.rmtree(workdir / "logs", ignore_errors=True)
    ckpt_path = str(last) if resume and last.exists() else None
    if resume and ckpt_path is None:
        log.info("no checkpoint in %s: training from the start", ckpt_dir)
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best-{epoch:03d}",
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        save_last=True,
        every_n_epochs=1,
    )
    cbs: list[Callback] = [checkpoint]
    if patience is not None:
        cbs.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    if ema_decay > 0:
        # Lightning swaps the averaged weights in for validation and writes them as the
        # checkpoint's state_dict (the raw ones as current_model_state, used on resume).
        cbs.append(WeightAveraging(avg_fn=ema_with_warmup(ema_decay)))
    if progress is not None:
        cbs.append(progress)
    cbs += list(callbacks or [])
    quiet_lightning()
    trainer = L.Trainer(
        max_epochs=epochs,
        max_time=None if max_minutes is None else {"minutes": float(max_minutes)},
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        callbacks=cbs,
        logger=CSVLogger(workdir, name="", version="logs"),
        deterministic=deterministic,
        use_distributed_sampler=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    if data is not None:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    else:
        trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path)
    if trainer.interrupted:
        # Lightning turns Ctrl-C into a normal return; an unfinished fit must not pass for done
        raise KeyboardInterrupt(f"training interrupted; continue it with resume ({ckpt_dir})")

    if not checkpoint.best_model_path:
        raise ConfigError(
            f"the time limit ({max_minutes} min) ended training before the first epoch was "
            "validated; allow more minutes"
        )
    # Our own checkpoint written by this run (Lightning's format holds optimizer and callback
    # state, which needs the full unpickler); bundles handed to others never use pickle.
    ckpt = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)
    module.load_state_dict(ckpt["state_dict"])
    module.cpu().eval()
    return ModuleFit(
        best_epoch=int(ckpt["epoch"]),
        best_score=float(checkpoint.best_model_score),
        epochs_run=int(trainer.current_epoch),
        is_global_zero=bool(trainer.is_global_zero),
        checkpoint_dir=ckpt_dir,
    )


def _n_features(examples: ExampleSet, config: TrainConfig) -> int:
    """Measures a fused network reads (0 without ``config.model.fuse_features``)."""
    if not config.model.fuse_features:
        return 0
    if examples.features is None:
        raise DatasetError(
            "fuse_features needs the ROI stage's architecture measures, and the dataset has "
            "none; run `musclestate roi apply` or train without fuse_features"
        )
    return int(examples.features.shape[1])


def _predict_normalised(
    net: torch.nn.Module, examples: ExampleSet, config: TrainConfig, n_targets: int
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised means and log-variances ``(M, n_targets)`` of every example, in batches."""
    mus, lvs = [], []
    net.eval()
    fused = bool(_n_features(examples, config))
    with torch.inference_mode():
        for s in range(0, len(examples), 512):
            rows = np.arange(s, min(s + 512, len(examples)))
            x = torch.from_numpy(examples.inputs(rows).astype(np.float32) / np.float32(255.0))
            if fused:
                out = net(x, torch.from_numpy(examples.features[rows].astype(np.float32)))
            else:
                out = net(x)
            mus.append(out[:, :n_targets].numpy().astype(np.float64))
            logvar = out[:, n_targets : 2 * n_targets].clamp(*LOGVAR_RANGE)
            lvs.append(logvar.numpy().astype(np.float64))
    return np.concatenate(mus), np.concatenate(lvs)


def _calibrate_sd(z_true: np.ndarray, z_mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Per-target factor ``s`` with mean((z - mu)^2 / (s sd)^2) = 1 on validation frames."""
    sd = np.exp(0.5 * logvar)
    ratio = ((z_true - z_mu) / sd) ** 2
    s = np.sqrt(np.nanmean(ratio, axis=0))
    return np.where(np.isfinite(s) & (s > 0), s, 1.0)


def predict_examples(
    net: torch.nn.Module,
    examples: ExampleSet,
    norm: TargetNorm,
    sd_scale: np.ndarray,
    config: TrainConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted mean and SD ``(M, n_targets)`` in the targets' units for every example."""
    mu, logvar = _predict_normalised(net, examples, config, len(norm.mean))
    mean = norm.invert(mu)
    sd = np.exp(0.5 * logvar) * norm.sd * sd_scale
    return mean, sd
