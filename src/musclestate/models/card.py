"""The estimator bundle's card: a versioned, frozen record, read from ``card.json`` in one place.

:func:`read_card` is the only reader of a bundle's ``card.json``; every other module reads the
:class:`BundleCard` it returns by attribute. :meth:`BundleCard.from_dict` checks every key and
value (unknown keys are an error, naming the file, the key and the way out) and migrates cards
of earlier format versions; :meth:`BundleCard.to_dict` writes the current version.

card.json (``format_version`` 2)::

    {"format": "musclestate-estimator", "format_version": 2, "package_version": "0.1.0",
     "network": {"name": "compact_resnet", "params": {...}, "in_channels": 2, "n_targets": 4,
                 "members": 1},
     "input": {"kind": "patches", "channels": ["MG", "SOL"], "channels_per_frame": 2,
               "context": 0, "image_size": [32, 64], "value_range": "uint8 / 255 -> 0..1",
               "features": ["mg_thickness_mm", ...]},
     "targets": [{"name": "ankle_angle", "unit": "deg", "mean": .., "sd": .., "sd_scale": ..}],
     "roi": {...dataset roi attrs...}, "training": {...}, "cv_metrics": {...} | null}

``input.features`` (empty for an image-only network) names the ROI stage's architecture
measures that a fused network reads beside the images, in order
(:class:`~musclestate.models.networks.FusedNetwork`). ``training`` is a :class:`TrainingRecord`.

Versions: 1 wrote ``training.config`` in the flat form of the training configuration; 2 writes
its nested form (:meth:`musclestate.training.config.TrainConfig.to_dict`). A version-1 card is
migrated on reading; a card of a later version is refused with the way out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from musclestate._atomic import read_json
from musclestate.errors import BundleError, ConfigError

if TYPE_CHECKING:
    from musclestate.training.config import TrainConfig

FORMAT = "musclestate-estimator"
FORMAT_VERSION = 2
#: Versions :meth:`BundleCard.from_dict` reads (older ones migrated).
READS_VERSIONS = (1, 2)
CARD = "card.json"
VALUE_RANGE = "uint8 / 255 -> 0..1"


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays, tuples and paths turned into JSON types (NaN -> None)."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    return str(obj)


class _CardError(ConfigError):
    """A bad key or value of a card; :meth:`BundleCard.from_dict` turns it into a
    :class:`BundleError` naming the file."""


_WAY_OUT = (
    "write the card again with `musclestate train` (or a matching musclestate version), or "
    "correct card.json by hand"
)


def _fields(cls: type, d: Any, where: str) -> dict[str, Any]:
    """``d`` as keyword arguments of ``cls``: an object with no unknown and no missing keys."""
    if not isinstance(d, Mapping):
        raise _CardError(f"{where} must be an object, got {d!r}")
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise _CardError(f"unknown key(s) {unknown} in {where}; valid keys are {names}")
    required = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [n for n in required if n not in d]
    if missing:
        raise _CardError(f"{where} lacks {missing}")
    return dict(d)


def _as(kind: type, value: Any, where: str, *, optional: bool = False) -> Any:
    """``value`` as ``int``, ``float`` or ``str``; ``None`` only where ``optional``."""
    if value is None and optional:
        return None
    if kind is str:
        if isinstance(value, str):
            return value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if kind is int and float(value) == int(value):
            return int(value)
        if kind is float:
            return float(value)
    article = "an" if kind is int else "a"
    raise _CardError(f"{where} must be {article} {kind.__name__}, got {value!r}")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _CardError(f"{where} must be a list of names, got {value!r}")
    return tuple(value)


def _pair(value: Any, kind: type, where: str, *, optional: bool = False) -> tuple | None:
    if value is None and optional:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise _CardError(f"{where} must be a pair [a, b], got {value!r}")
    return tuple(_as(kind, v, f"{where}[{i}]", optional=optional) for i, v in enumerate(value))


def _mapping(value: Any, where: str, *, optional: bool = False) -> dict[str, Any] | None:
    if value is None and optional:
        return None
    if not isinstance(value, Mapping):
        raise _CardError(f"{where} must be an object, got {value!r}")
    return dict(value)


@dataclass(frozen=True)
class NetworkSpec:
    """The trained network: registry ``name`` and builder ``params``, input channels (temporal
    context included), outputs per target and ensemble ``members``."""

    name: str
    in_channels: int
    n_targets: int
    params: dict[str, Any] = field(default_factory=dict)
    members: int = 1

    @classmethod
    def from_dict(cls, d: Any, where: str = "network") -> NetworkSpec:
        kw = _fields(cls, d, where)
        return cls(
            name=_as(str, kw["name"], f"{where}.name"),
            in_channels=_as(int, kw["in_channels"], f"{where}.in_channels"),
            n_targets=_as(int, kw["n_targets"], f"{where}.n_targets"),
            params=_mapping(kw.get("params", {}), f"{where}.params"),
            members=_as(int, kw.get("members", 1), f"{where}.members"),
        )

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


@dataclass(frozen=True)
class InputSpec:
    """What the network reads: ``kind`` ``"patches"`` (channels MG, SOL) or ``"frame"``,
    ``image_size (h, w)`` in pixels, ``context`` neighbouring frames on each side, and the
    architecture measures ``features`` of a fused network (empty: images only)."""

    kind: str
    channels: tuple[str, ...]
    channels_per_frame: int
    context: int
    image_size: tuple[int, int]
    value_range: str = VALUE_RANGE
    features: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Any, where: str = "input") -> InputSpec:
        kw = _fields(cls, d, where)
        spec = cls(
            kind=_as(str, kw["kind"], f"{where}.kind"),
            channels=_strings(kw["channels"], f"{where}.channels"),
            channels_per_frame=_as(int, kw["channels_per_frame"], f"{where}.channels_per_frame"),
            context=_as(int, kw["context"], f"{where}.context"),
            image_size=_pair(kw["image_size"], int, f"{where}.image_size"),
            value_range=_as(str, kw.get("value_range", VALUE_RANGE), f"{where}.value_range"),
            features=_strings(kw.get("features") or [], f"{where}.features"),
        )
        if spec.channels_per_frame != len(spec.channels):
            raise _CardError(
                f"{where}.channels_per_frame is {spec.channels_per_frame} but "
                f"{where}.channels names {len(spec.channels)}"
            )
        return spec

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


@dataclass(frozen=True)
class TargetSpec:
    """One estimated target: ``name``, ``unit``, the training ``mean`` and ``sd`` that undo the
    network's normalisation (in the unit), and ``sd_scale``, the factor on the predicted SD
    calibrated on validation participants."""

    name: str
    unit: str
    mean: float
    sd: float
    sd_scale: float = 1.0

    @classmethod
    def from_dict(cls, d: Any, where: str) -> TargetSpec:
        kw = _fields(cls, d, where)
        return cls(
            name=_as(str, kw["name"], f"{where}.name"),
            unit=_as(str, kw["unit"], f"{where}.unit"),
            mean=_as(float, kw["mean"], f"{where}.mean"),
            sd=_as(float, kw["sd"], f"{where}.sd"),
            sd_scale=_as(float, kw.get("sd_scale", 1.0), f"{where}.sd_scale"),
        )

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


@dataclass(frozen=True)
class TrainingRecord:
    """What the estimator was trained on and how; every entry may be absent (``None``/empty).

    Attributes:
        dataset: the dataset folder as given to training (found again, where it still lies,
            for what the card lacks: see :func:`musclestate.inference.batch.training_input`).
        dataset_sha256: the dataset's content hash
            (:attr:`musclestate.dataset.Dataset.content_sha256`), which identifies it wherever
            it lies (absent on cards written before it was recorded).
        participants, validation_participants: participant ids of the weights' training and
            early-stopping sides.
        n_recordings, n_frames: recordings and frames of the training participants.
        frames_per_participant: participant id -> training frames (``musclestate train``).
        best_epoch, epochs_run, val_mse_normalised: the chosen epoch (0-based), epochs trained
            and its validation MSE in normalised units.
        pixel_spacing_mm: median ``(row, column)`` spacing of the training recordings.
        frame_shape: ``(H, W)`` of the training frames in pixels.
        target_range: target name -> ``(min, max)`` over the training frames, in its unit
            (what the ``out_of_range`` flag of inference compares with,
            :func:`musclestate.inference.loader.training_range`).
        feature_range: architecture measure -> ``(min, max)`` over the training frames (``None``
            where never measured); the per-measure rule, used only without ``feature_novelty``.
        feature_novelty: the Mahalanobis rule on the measures jointly
            (:meth:`musclestate.inference.novelty.FeatureNovelty.to_dict`); ``None`` when too
            few complete training frames.
        config: the resolved training configuration.
    """

    dataset: str | None = None
    dataset_sha256: str | None = None
    participants: tuple[str, ...] = ()
    validation_participants: tuple[str, ...] = ()
    n_recordings: int | None = None
    n_frames: int | None = None
    frames_per_participant: dict[str, int] | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    val_mse_normalised: float | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    frame_shape: tuple[int, int] | None = None
    target_range: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    feature_range: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    feature_novelty: dict[str, Any] | None = None
    config: TrainConfig | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str = "training") -> TrainingRecord:
        from musclestate.training.config import TrainConfig

        kw = _fields(cls, d, where)
        config = kw.get("config")
        if config is not None:
            try:
                config = TrainConfig.from_dict(config)
            except ConfigError as exc:
                raise _CardError(f"{where}.config: {exc}") from None

        def ranges(key: str) -> dict[str, tuple]:
            value = _mapping(kw.get(key) or {}, f"{where}.{key}")
            # never measured: [null, null] (null alone in hand-written cards)
            return {
                str(n): _pair(v, float, f"{where}.{key}.{n}", optional=True) or (None, None)
                for n, v in value.items()
            }

        fpp = _mapping(kw.get("frames_per_participant"), f"{where}.frames_per_participant",
                       optional=True)  # fmt: skip
        return cls(
            dataset=_as(str, kw.get("dataset"), f"{where}.dataset", optional=True),
            dataset_sha256=_as(
                str, kw.get("dataset_sha256"), f"{where}.dataset_sha256", optional=True
            ),
            participants=_strings(kw.get("participants") or [], f"{where}.participants"),
            validation_participants=_strings(
                kw.get("validation_participants") or [], f"{where}.validation_participants"
            ),
            n_recordings=_as(int, kw.get("n_recordings"), f"{where}.n_recordings", optional=True),
            n_frames=_as(int, kw.get("n_frames"), f"{where}.n_frames", optional=True),
            frames_per_participant=None
            if fpp is None
            else {
                str(p): _as(int, n, f"{where}.frames_per_participant.{p}") for p, n in fpp.items()
            },
            best_epoch=_as(int, kw.get("best_epoch"), f"{where}.best_epoch", optional=True),
            epochs_run=_as(int, kw.get("epochs_run"), f"{where}.epochs_run", optional=True),
            val_mse_normalised=_as(
                float, kw.get("val_mse_normalised"), f"{where}.val_mse_normalised", optional=True
            ),
            pixel_spacing_mm=_pair(
                kw.get("pixel_spacing_mm"), float, f"{where}.pixel_spacing_mm", optional=True
            ),
            frame_shape=_pair(kw.get("frame_shape"), int, f"{where}.frame_shape", optional=True),
            target_range=ranges("target_range"),
            feature_range=ranges("feature_range"),
            feature_novelty=_mapping(
                kw.get("feature_novelty"), f"{where}.feature_novelty", optional=True
            ),
            config=config,
        )

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["config"] = None if self.config is None else self.config.to_dict()
        return jsonable(d)


@dataclass(frozen=True)
class BundleCard:
    """The card of an estimator bundle (format :data:`FORMAT`, version :data:`FORMAT_VERSION`).

    Attributes:
        network: see :class:`NetworkSpec`.
        input: see :class:`InputSpec`.
        targets: one :class:`TargetSpec` per network output, in output order.
        roi: the dataset's ROI settings the training patches were cut with (the ROI stage's
            attrs, read by :func:`musclestate.inference.roi_stage.roi_config_from_card`);
            empty for a bundle not trained on ROI patches.
        training: see :class:`TrainingRecord`.
        cv_metrics: summary of the cross-validation run the bundle was trained after
            (``run``, ``folds``, ``summary``, ``calibration``), or ``None``.
        package_version: the musclestate version that wrote the card.
    """

    FORMAT: ClassVar[str] = FORMAT
    FORMAT_VERSION: ClassVar[int] = FORMAT_VERSION

    network: NetworkSpec
    input: InputSpec
    targets: tuple[TargetSpec, ...]
    roi: dict[str, Any] = field(default_factory=dict)
    training: TrainingRecord = field(default_factory=TrainingRecord)
    cv_metrics: dict[str, Any] | None = None
    package_version: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        for name, cls in (("network", NetworkSpec), ("input", InputSpec),
                          ("training", TrainingRecord)):  # fmt: skip
            if not isinstance(getattr(self, name), cls):
                raise _CardError(f"{name} must be a {cls.__name__}, got {getattr(self, name)!r}")
        if len(self.targets) != self.network.n_targets:
            raise _CardError(
                f"card lists {len(self.targets)} targets but network.n_targets="
                f"{self.network.n_targets}"
            )

    @property
    def target_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.targets)

    @property
    def units(self) -> dict[str, str]:
        """Target name -> unit, in output order."""
        return {t.name: t.unit for t in self.targets}

    @property
    def target_sd(self) -> dict[str, float]:
        """Target name -> the training SD (in its unit) that undoes the normalisation."""
        return {t.name: t.sd for t in self.targets}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the current :data:`FORMAT_VERSION`."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "package_version": self.package_version,
            "network": self.network.to_dict(),
            "input": self.input.to_dict(),
            "targets": [t.to_dict() for t in self.targets],
            "roi": jsonable(self.roi),
            "training": self.training.to_dict(),
            "cv_metrics": None if self.cv_metrics is None else jsonable(self.cv_metrics),
        }

    @classmethod
    def from_dict(cls, d: Any, source: str | Path | None = None) -> BundleCard:
        """Check ``d`` (a parsed card.json) and build the card; migrates earlier versions.

        Raises:
            BundleError: not a card of this format, a version this musclestate does not read,
                an unknown or missing key, or a value of the wrong kind (each named, with the
                file ``source`` where given).
        """
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            raise BundleError(f"{CARD} is not a {FORMAT!r} card", source)
        version = d.get("format_version")
        if version not in READS_VERSIONS:
            newer = isinstance(version, int) and version > FORMAT_VERSION
            raise BundleError(
                f"bundle format_version {version!r}; this musclestate reads versions "
                f"{list(READS_VERSIONS)} ("
                + ("install the musclestate that wrote it or a newer one" if newer
                   else "retrain with this version or install a matching one")
                + ")",
                source,
            )  # fmt: skip
        try:
            d = _migrate(dict(d), version)
            kw = _fields(_OnDisk, d, "the card")
            return cls(
                network=NetworkSpec.from_dict(kw["network"]),
                input=InputSpec.from_dict(kw["input"]),
                targets=tuple(
                    TargetSpec.from_dict(t, f"targets[{i}]")
                    for i, t in enumerate(_list(kw["targets"], "targets"))
                ),
                roi=_mapping(kw.get("roi") or {}, "roi"),
                training=TrainingRecord.from_dict(kw.get("training") or {}),
                cv_metrics=_mapping(kw.get("cv_metrics"), "cv_metrics", optional=True),
                package_version=_as(str, kw.get("package_version", ""), "package_version"),
            )
        except _CardError as exc:
            raise BundleError(f"{CARD}: {exc}; {_WAY_OUT}", source) from None


@dataclass(frozen=True)
class _OnDisk:
    """The top-level keys of card.json (for the unknown/missing key check)."""

    format: str
    format_version: int
    network: Any
    input: Any
    targets: Any
    package_version: str = ""
    roi: Any = None
    training: Any = None
    cv_metrics: Any = None


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list | tuple):
        raise _CardError(f"{where} must be a list, got {value!r}")
    return list(value)


def _migrate(d: dict[str, Any], version: int) -> dict[str, Any]:
    """A card dict of ``version`` as the current version would write it.

    1 -> 2: ``training.config`` from the flat form of the training configuration to its
    nested parts (read by :meth:`TrainConfig.from_dict`, which takes both). A flat config
    without ``fuse_features`` (written before the setting existed, when the default became
    fused) gets it from what the network reads: fused exactly when ``input.features`` names
    measures.
    """
    if version == 1:
        training = d.get("training")
        if isinstance(training, Mapping) and training.get("config") is not None:
            from musclestate.training.config import TrainConfig

            flat = training["config"]
            if isinstance(flat, Mapping) and "fuse_features" not in flat and "model" not in flat:
                inp = d.get("input")
                features = inp.get("features") if isinstance(inp, Mapping) else None
                flat = {**flat, "fuse_features": bool(features)}
            try:
                config = TrainConfig.from_dict(flat).to_dict()
            except ConfigError as exc:
                raise _CardError(f"training.config of a version-1 card: {exc}") from None
            d["training"] = {**training, "config": config}
        d["format_version"] = 2
    return d


def read_card(bundle: str | Path) -> BundleCard:
    """Read and check ``bundle/card.json`` (the one reader of estimator cards).

    Raises:
        BundleError: no card, unreadable JSON, or a card :meth:`BundleCard.from_dict` refuses.
    """
    path = Path(bundle) / CARD
    d = read_json(path, "estimator card", error=BundleError, need_object=False,
                  missing=f"no {CARD}; not an estimator bundle (write one with `musclestate "
                  "train`)")  # fmt: skip
    return BundleCard.from_dict(d, path)
