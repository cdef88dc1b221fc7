"""Training configuration: validated, frozen dataclasses saved next to every model and run.

Code receives a :class:`TrainConfig`, never reads settings from files deep inside. It has four
parts: :class:`DataConfig` (what is trained on), :class:`ModelConfig` (which estimator),
:class:`OptimisationConfig` (how it is fitted) and :class:`ExecutionConfig` (where and how fast:
not part of a run's identity), plus ``seed``. ``to_dict`` / ``from_dict`` round-trip the nested
form through JSON; ``from_dict`` and ``replace`` also take the flat setting names, mapped to their
part by the one table :data:`FLAT_SETTINGS` (configuration files written before the parts are
flat). Unknown keys are an error that lists the valid ones (no silently dropped options).

The defaults are sized for a 2-core CPU: a compact residual CNN on 2 x 32 x 64 inputs (the ROI
stage's 64 x 128 MG and SOL patches, halved: same aspect, a quarter of the pixels), batches of
64, at most 30 epochs with early stopping on validation participants.

The input size is a trade-off: full-resolution 64 x 128 inputs estimate better (the demo trains
at that size), but cost four times the estimator's work per frame, which matters for live
inference on a CPU. Choose ``image_size=(64, 128)`` for offline work or with a GPU. Measured
figures for both sizes: docs/results.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from musclestate.errors import ConfigError
from musclestate.records import TARGET_UNITS

INPUT_KINDS = ("patches", "frame")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclass(frozen=True)
class AugmentConfig:
    """Image augmentation applied to training frames only (never validation or test).

    Attributes:
        gain: brightness gain drawn uniformly from ``[1 - gain, 1 + gain]`` per image.
        gamma: gamma drawn log-uniformly from ``[1 / (1 + gamma), 1 + gamma]`` per image.
        noise_sd: SD of additive Gaussian noise, in units of full scale (0..1 image).
        shift_px: integer shift drawn uniformly from ``[-shift_px, shift_px]`` rows and columns
            (edge pixels replicate).
    """

    gain: float = 0.15
    gamma: float = 0.2
    noise_sd: float = 0.02
    shift_px: int = 2

    def __post_init__(self) -> None:
        _check(0 <= self.gain < 1, f"augment.gain must be in [0, 1), got {self.gain}")
        _check(0 <= self.gamma < 2, f"augment.gamma must be in [0, 2), got {self.gamma}")
        _check(self.noise_sd >= 0, f"augment.noise_sd must be >= 0, got {self.noise_sd}")
        _check(self.shift_px >= 0, f"augment.shift_px must be >= 0, got {self.shift_px}")

    @property
    def active(self) -> bool:
        return bool(self.gain or self.gamma or self.noise_sd or self.shift_px)


@dataclass(frozen=True)
class DataConfig:
    """What the network is trained on: inputs, targets and which people and frames.

    Attributes:
        input: ``"patches"`` (the MG + SOL patches of the dataset's ``roi`` group, the paper's
            setting) or ``"frame"`` (the whole frame, resized, for comparison).
        image_size: ``(h, w)`` every input image is resized to (area interpolation).
        context: neighbouring frames on each side stacked as extra channels (0 = single frame);
            a network then sees ``channels * (2 * context + 1)`` channels, edges replicate.
        targets: target names to train on; empty = every target the dataset has.
        frame_stride: train (and validate) on every ``frame_stride``-th frame of each
            recording: neighbouring frames are nearly identical, so this cuts training cost on
            large cohorts or high frame rates at little loss. Held-out participants are always
            evaluated on every frame.
        val_participants: participants held out of each training side for early stopping,
            model selection, ridge alpha and uncertainty calibration (at least 1).
        augment: see :class:`AugmentConfig`.
    """

    input: str = "patches"
    image_size: tuple[int, int] = (32, 64)
    context: int = 0
    targets: tuple[str, ...] = ()
    frame_stride: int = 1
    val_participants: int = 1
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        _check(self.input in INPUT_KINDS, f"input must be one of {INPUT_KINDS}, got {self.input!r}")
        size = tuple(int(s) for s in self.image_size)
        _check(
            len(size) == 2 and min(size) >= 8,
            f"image_size must be (h, w) with both >= 8, got {self.image_size!r}",
        )
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "targets", tuple(self.targets))
        for name in self.targets:
            _check(
                name in TARGET_UNITS,
                f"unknown target {name!r}; valid targets are {', '.join(TARGET_UNITS)}",
            )
        _check(0 <= self.context <= 8, f"context must be in 0..8, got {self.context}")
        _check(self.frame_stride >= 1, f"frame_stride must be >= 1, got {self.frame_stride}")
        _check(
            self.val_participants >= 1,
            f"val_participants must be >= 1 (early stopping needs unseen people), "
            f"got {self.val_participants}",
        )
        if isinstance(self.augment, Mapping):
            object.__setattr__(self, "augment", _part_from_dict(AugmentConfig, self.augment))

    @property
    def in_channels_per_frame(self) -> int:
        """Image channels of one frame: 2 (MG, SOL) for patches, 1 for the full frame."""
        return 2 if self.input == "patches" else 1

    @property
    def in_channels(self) -> int:
        """Channels the network sees, temporal context included."""
        return self.in_channels_per_frame * (2 * self.context + 1)


@dataclass(frozen=True)
class ModelConfig:
    """Which estimator is trained.

    Attributes:
        network: registry name (see :func:`musclestate.models.networks.available_networks`).
        network_params: keyword arguments for the network builder (e.g. ``{"widths": [16, 32]}``).
        ensemble: networks trained per model (a deep ensemble, Lakshminarayanan, Pritzel &
            Blundell 2017, NeurIPS): member ``m`` starts from seed ``seed + m`` and trains on the
            frames ``f`` with ``f % frame_stride == m % frame_stride``, so with ``frame_stride``
            members every training frame is used once. Estimates are the members' mean and the
            spread includes their disagreement; training and inference cost grow with it.
        fuse_features: the network's head also reads the ROI stage's architecture measures of
            each frame (:class:`~musclestate.models.networks.FusedNetwork`): one model trained
            with the Gaussian head on images and measures together (the default: the choice and
            the development cohort it was made on are in docs/results.md). Needs the dataset's
            ``roi`` features, at inference too; not with ``aux_weight``. ``False`` trains the
            image-only network of Cunningham & Loram (2019).
    """

    network: str = "compact_resnet"
    network_params: dict[str, Any] = field(default_factory=dict)
    ensemble: int = 1
    fuse_features: bool = True

    def __post_init__(self) -> None:
        from musclestate.models.networks import check_network_name

        check_network_name(self.network)
        object.__setattr__(self, "network_params", dict(self.network_params))
        _check(1 <= self.ensemble <= 16, f"ensemble must be in 1..16, got {self.ensemble}")


@dataclass(frozen=True)
class OptimisationConfig:
    """How the weights (and the feature baseline's penalty) are fitted.

    Attributes:
        epochs: maximum training epochs.
        patience: early-stopping patience in epochs on the validation participants' loss.
        batch_size: global batch size (split across DDP processes).
        lr: AdamW learning rate (cosine-annealed to 5 % over ``epochs``).
        weight_decay: AdamW weight decay.
        aux_weight: weight of an auxiliary loss during training: the network also predicts the
            ROI stage's architecture measures of each frame (thickness, aponeurosis and
            fascicle angles, pennation, echo; normalised on the training participants), which
            steers it towards the fascicle geometry that carries the muscle's state
            (multi-task learning, Caruana 1997, "Multitask learning", Machine Learning
            28:41-75). 0 turns it off; it needs the dataset's ``roi`` features. The auxiliary
            outputs are dropped from the trained network, so bundles and inference do not
            change.
        ema_decay: exponential moving average of the weights, updated after every optimiser
            step with this decay, ramped up over the first steps (0 = off); validation, early
            stopping, checkpoints and the saved network all use the averaged weights. Averaging
            along the trajectory damps the step-to-step noise that a dozen training people leave
            in the weights and generalises better (Polyak & Juditsky 1992; Izmailov et al.
            2018, "Averaging weights leads to wider optima and better generalization", UAI).
        ridge_alphas: initial grid of ridge penalties of the feature baseline (chosen per target
            by leave-one-participant-out CV on the training side; widened where the choice
            lands on an edge).
    """

    epochs: int = 30
    patience: int = 6
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    aux_weight: float = 0.0
    ema_decay: float = 0.0
    ridge_alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ridge_alphas", tuple(float(a) for a in self.ridge_alphas))
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.patience >= 1, f"patience must be >= 1, got {self.patience}")
        _check(self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(
            len(self.ridge_alphas) > 0 and all(a > 0 for a in self.ridge_alphas),
            f"ridge_alphas must be positive numbers, got {self.ridge_alphas}",
        )
        _check(self.aux_weight >= 0, f"aux_weight must be >= 0, got {self.aux_weight}")
        _check(
            0.0 <= self.ema_decay < 1.0,
            f"ema_decay must be in [0, 1) (0 = no weight averaging), got {self.ema_decay}",
        )


@dataclass(frozen=True)
class ExecutionConfig:
    """Where and how fast training runs: these change speed, never results, so they are not
    part of a run's identity (a fold job may use other ones).

    Attributes:
        accelerator, devices, num_nodes, strategy: passed to ``lightning.Trainer``
            (e.g. ``"gpu"``, ``4``, ``2``, ``"ddp"``); ``strategy="auto"`` on one device.
        num_threads: torch intra-op threads on CPU (0 = leave torch's default).
    """

    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    num_threads: int = 0

    def __post_init__(self) -> None:
        _check(self.num_nodes >= 1, f"num_nodes must be >= 1, got {self.num_nodes}")
        _check(self.num_threads >= 0, f"num_threads must be >= 0, got {self.num_threads}")


#: The parts of a :class:`TrainConfig`: attribute name -> class.
PARTS: Mapping[str, type] = MappingProxyType(
    {
        "data": DataConfig,
        "model": ModelConfig,
        "optimisation": OptimisationConfig,
        "execution": ExecutionConfig,
    }
)
#: The flat form's setting name -> the part that holds it (the one mapping between the flat form
#: of configuration files written before the parts, and of ``replace``, and the nested form).
FLAT_SETTINGS: Mapping[str, str] = MappingProxyType(
    {f.name: part for part, cls in PARTS.items() for f in dataclasses.fields(cls)}
)
#: Parts that do not count towards a run's identity (see :meth:`TrainConfig.identity`).
NOT_IDENTITY: tuple[str, ...] = ("execution",)


def _part_from_dict(cls: type, d: Mapping[str, Any], where: str = "") -> Any:
    """``cls(**d)`` with lists made tuples; unknown keys raise :class:`ConfigError` naming them."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where or cls.__name__} must be an object, got {d!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        label = where or ("augment" if cls is AugmentConfig else cls.__name__)
        raise ConfigError(f"unknown {label} setting(s) {unknown}; valid are {sorted(names)}")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return cls(**kw)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how an estimator is trained and evaluated, in four parts.

    ``data`` (:class:`DataConfig`), ``model`` (:class:`ModelConfig`), ``optimisation``
    (:class:`OptimisationConfig`) and ``execution`` (:class:`ExecutionConfig`); ``seed`` seeds
    every random choice (splits, initialisation, order, augmentation). Settings are read as
    ``config.optimisation.lr``; :meth:`replace` and :meth:`from_dict` also take the flat setting
    names of :data:`FLAT_SETTINGS` (``config.replace(lr=1e-3)``).
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimisation: OptimisationConfig = field(default_factory=OptimisationConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        for name, cls in PARTS.items():
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, _part_from_dict(cls, value, name))
            elif not isinstance(value, cls):
                raise ConfigError(f"{name} must be a {cls.__name__}, got {type(value).__name__}")
        _check(
            not (self.model.fuse_features and self.optimisation.aux_weight > 0),
            "fuse_features (the default) reads the architecture measures as inputs; aux_weight "
            "would also predict them: set fuse_features false (--no-fuse-features) to train "
            "with aux_weight",
        )

    @property
    def in_channels(self) -> int:
        """Channels the network sees, temporal context included (see :class:`DataConfig`)."""
        return self.data.in_channels

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some settings changed (validated again).

        Keys are flat setting names (``lr=1e-3``, see :data:`FLAT_SETTINGS`), part names with
        a whole part, or ``seed``.

        Raises:
            ConfigError: an unknown setting (the message lists the valid ones).
        """
        parts: dict[str, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        for key, value in changes.items():
            if key in PARTS or key == "seed":
                top[key] = value
            elif key in FLAT_SETTINGS:
                parts.setdefault(FLAT_SETTINGS[key], {})[key] = value
            else:
                raise ConfigError(
                    f"unknown training setting {key!r}; valid settings are "
                    f"{sorted([*FLAT_SETTINGS, 'seed'])}"
                )
        for name, kw in parts.items():
            if name in top:
                raise ConfigError(f"{sorted(kw)} given both alone and in the {name} part")
            if "augment" in kw and isinstance(kw["augment"], Mapping):
                kw["augment"] = _part_from_dict(AugmentConfig, kw["augment"])
            top[name] = dataclasses.replace(getattr(self, name), **kw)
        return dataclasses.replace(self, **top)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict: ``{"data": {...}, "model": {...}, "optimisation": {...},
        "execution": {...}, "seed": int}`` (tuples become lists)."""

        def plain(v: Any) -> Any:
            if isinstance(v, tuple | list):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v

        return {
            **{name: plain(dataclasses.asdict(getattr(self, name))) for name in PARTS},
            "seed": self.seed,
        }

    def identity(self) -> dict[str, Any]:
        """:meth:`to_dict` without the settings that change speed but not results (the
        ``execution`` part): what makes two runs the same."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_IDENTITY}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; also reads the flat form (every setting at the top
        level, as written before the parts existed) and mixtures of both.

        Raises:
            ConfigError: an unknown key (the message names it and lists the valid ones), or a
                setting given twice.
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"a training configuration must be an object, got {d!r}")
        nested = {k: v for k, v in d.items() if k in PARTS}
        flat = {k: v for k, v in d.items() if k not in PARTS}
        unknown = sorted(set(flat) - {*FLAT_SETTINGS, "seed"})
        if unknown:
            raise ConfigError(
                f"unknown training setting(s) {unknown}; valid settings are "
                f"{sorted([*FLAT_SETTINGS, 'seed'])} (flat) or the parts {list(PARTS)}"
            )
        parts: dict[str, dict[str, Any]] = {}
        for name, value in nested.items():
            if not isinstance(value, Mapping):
                raise ConfigError(f"training setting {name!r} must be an object, got {value!r}")
            parts[name] = dict(value)
        for key, value in flat.items():
            if key == "seed":
                continue
            part = parts.setdefault(FLAT_SETTINGS[key], {})
            if key in part:
                raise ConfigError(f"training setting {key!r} given twice (flat and in its part)")
            part[key] = value
        kw: dict[str, Any] = {n: _part_from_dict(PARTS[n], v, n) for n, v in parts.items()}
        if "seed" in flat:
            kw["seed"] = flat["seed"]
        return cls(**kw)
