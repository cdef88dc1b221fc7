"""Training data: a cohort in memory, example sets, target normalisation, sampling, augmentation.

A :class:`Cohort` holds, per recording, the network's input images (already resized to the
configured size), the architecture features of the ROI stage and the per-frame targets. It is
read from a dataset once (:func:`load_cohort`) and then split by participant, never by frame.
An :class:`ExampleSet` is the flat, strided view of some recordings that a
:class:`FrameDataset` serves to PyTorch, with temporal context gathered lazily.

Randomness is stateless: the order of an epoch and the augmentation of an example are functions
of ``(seed, epoch, index)``, so a run resumed from a checkpoint and a DDP run see exactly the
batches an uninterrupted single-process run sees.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from musclestate.errors import DatasetError
from musclestate.progress import ProgressFn, emit
from musclestate.records import TARGET_UNITS
from musclestate.training.config import AugmentConfig, TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordingData:
    """One recording's inputs and targets, in memory.

    Attributes:
        id: recording id in the dataset.
        participant: participant id.
        trial: trial name.
        t_s: ``(T,)`` float64 frame times (s).
        images: ``(T, C, h, w)`` uint8 network inputs of every frame (C = 2: MG, SOL patches;
            C = 1: the whole frame), resized to the configured ``image_size``.
        targets: name -> ``(T,)`` float64 per-frame target (NaN where unknown).
        features: ``(T, F)`` float32 architecture features of the ROI stage, or ``None``.
        pixel_spacing_mm: ``(row_mm, col_mm)`` of the frames, or ``None`` where unknown.
        found: ``(T,)`` bool, False where the ROI stage found no muscle (those frames are left
            out of training and evaluation), or ``None`` (all frames usable).
        task: the recording's trial type (``"tracking"``, ``"mvc"``, ``"passive_rom"``, ...,
            from its metadata; ``""`` where the import did not say).
    """

    id: str
    participant: str
    trial: str
    t_s: np.ndarray
    images: np.ndarray
    targets: Mapping[str, np.ndarray]
    features: np.ndarray | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    found: np.ndarray | None = None
    task: str = ""

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DatasetError(
                f"recording {self.id!r}: images must be (T, C, h, w) uint8, got "
                f"{self.images.shape} {self.images.dtype}"
            )
        if self.t_s.shape != (n,):
            raise DatasetError(f"recording {self.id!r}: {n} images but {self.t_s.shape} times")
        for name, v in self.targets.items():
            if v.shape != (n,):
                raise DatasetError(f"recording {self.id!r}: target {name!r} shape {v.shape} != {n}")
        if self.found is not None and self.found.shape != (n,):
            raise DatasetError(f"recording {self.id!r}: found has shape {self.found.shape} != {n}")
        if self.features is not None and self.features.shape[0] != n:
            raise DatasetError(
                f"recording {self.id!r}: {self.features.shape[0]} feature rows for {n} frames"
            )

    @property
    def n_frames(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True)
class Cohort:
    """Recordings of several participants, with the facts a model card needs.

    Attributes:
        recordings: the recordings, in dataset order.
        target_units: target name -> unit, in the order the networks predict them.
        feature_names: names of the ``features`` columns (empty without ROI features).
        input: ``"patches"`` or ``"frame"``.
        roi_attrs: attributes of the dataset's ``roi`` group (ROI/patch settings), or ``{}``.
        source: where the cohort was read from (a path: informative only).
        dataset_sha256: content hash of the dataset it was read from
            (:attr:`musclestate.dataset.Dataset.content_sha256`), what identifies it wherever
            it lies; empty for a cohort built in memory.
    """

    recordings: tuple[RecordingData, ...]
    target_units: Mapping[str, str]
    feature_names: tuple[str, ...] = ()
    input: str = "patches"
    roi_attrs: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    dataset_sha256: str = ""

    @property
    def participants(self) -> tuple[str, ...]:
        """Participant ids, sorted."""
        return tuple(sorted({r.participant for r in self.recordings}))

    @property
    def target_names(self) -> tuple[str, ...]:
        return tuple(self.target_units)

    @property
    def has_features(self) -> bool:
        return bool(self.recordings) and all(r.features is not None for r in self.recordings)

    def subset(self, participants: Sequence[str]) -> Cohort:
        """The recordings of ``participants`` only (unknown ids are an error)."""
        wanted = set(participants)
        unknown = wanted - set(self.participants)
        if unknown:
            raise DatasetError(
                f"participants {sorted(unknown)} are not in {self.source or 'cohort'}"
            )
        recs = tuple(r for r in self.recordings if r.participant in wanted)
        return dataclasses.replace(self, recordings=recs)


def resize_images(images: np.ndarray, size: tuple[int, int], chunk: int = 512) -> np.ndarray:
    """Resize ``(N, C, h, w)`` uint8 images to ``size`` = ``(h', w')`` by area averaging.

    Returns ``(N, C, h', w')`` uint8 (rounded); the input itself when it already has that size.
    """
    images = np.asarray(images)
    if tuple(images.shape[2:]) == tuple(size):
        return images.astype(np.uint8, copy=False)
    out = np.empty((images.shape[0], images.shape[1], *size), dtype=np.uint8)
    for i in range(0, images.shape[0], chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + chunk], dtype=np.float32))
        y = F.interpolate(x, size=size, mode="area")
        out[i : i + chunk] = y.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def choose_targets(available: Mapping[str, str], requested: Sequence[str]) -> dict[str, str]:
    """Target name -> unit to train on: ``requested`` (all must exist) or every known one."""
    if requested:
        missing = [t for t in requested if t not in available]
        if missing:
            raise DatasetError(
                f"target(s) {missing} are not in the dataset, which has {sorted(available)}"
            )
        return {t: available[t] for t in requested}
    chosen = {t: available[t] for t in TARGET_UNITS if t in available}
    if not chosen:
        raise DatasetError(
            f"the dataset has no known targets (it has {sorted(available)}; musclestate "
            f"estimates {', '.join(TARGET_UNITS)})"
        )
    return chosen


def load_cohort(
    dataset_path: str | Path, config: TrainConfig, *, progress: ProgressFn | None = None
) -> Cohort:
    """Read a dataset's inputs and targets into memory, resized to ``config.data.image_size``.

    ``config.data.input == "patches"`` needs the derived group ``roi`` (``musclestate roi apply``):
    its ``patches`` ``(T, 2, h, w)`` uint8 and ``features`` ``(T, F)``. ``"frame"`` reads the
    frames themselves (and the ROI features too where the group exists, for the baseline).
    A ``roi`` group computed by another musclestate version (or one that did not record its
    version) is used with a warning: its patches and measures may differ from this version's.

    Raises:
        DatasetError: no recordings, missing ``roi`` group, unknown requested targets.
    """
    from musclestate import __version__
    from musclestate.dataset import open_dataset

    ds = open_dataset(dataset_path)
    has_roi = ds.has_derived("roi")
    if config.data.input == "patches" and not has_roi:
        raise DatasetError(
            "has no derived 'roi' group with muscle patches; run `musclestate roi apply "
            f"{dataset_path}` first (or train on whole frames with input='frame')",
            dataset_path,
        )
    roi = ds.derived("roi") if has_roi else None
    roi_attrs = dict(roi.attrs) if roi is not None else {}
    roi_version = roi_attrs.get("musclestate_version")
    if roi is not None and roi_version != __version__:
        log.warning(
            "%s: its ROI patches and architecture measures were computed by musclestate %s; "
            "this is %s, which may compute them differently; run `musclestate roi apply %s "
            "--again` to recompute them with the same settings",
            dataset_path,
            roi_version or "(version not recorded)",
            __version__,
            dataset_path,
        )
    feature_names = tuple(str(n) for n in roi_attrs.get("feature_names", ())) if roi else ()
    units = choose_targets(dict(ds.target_units), config.data.targets)
    infos = list(ds.recordings)
    if not infos:
        raise DatasetError("holds no recordings", dataset_path)
    recs = []
    for i, info in enumerate(infos):
        emit(progress, "load", i, len(infos), "recordings", str(info.id))
        tg = ds.targets(info.id)
        targets = {}
        for name in units:
            if name in tg:
                targets[name] = np.asarray(tg[name], dtype=np.float64)
            else:
                targets[name] = np.full(info.n_frames, np.nan)
                log.warning(
                    "recording %s has no target %r: its frames are unlabelled", info.id, name
                )
        if config.data.input == "patches":
            images = np.asarray(roi.get(info.id, "patches"))
        else:
            images = np.asarray(ds.frames(info.id))[:, None]
        features = found = None
        if roi is not None:
            features = np.asarray(roi.get(info.id, "features"), dtype=np.float32)
            if "found" in roi.names(info.id):
                found = np.asarray(roi.get(info.id, "found"), dtype=bool)
        recs.append(
            RecordingData(
                id=str(info.id),
                participant=str(info.participant),
                trial=str(info.trial),
                t_s=np.asarray(ds.frame_times(info.id), dtype=np.float64),
                images=resize_images(images, config.data.image_size),
                targets=targets,
                features=features,
                pixel_spacing_mm=info.pixel_spacing_mm,
                found=found if config.data.input == "patches" else None,
                task=str(info.meta.get("task", "") or ""),
            )
        )
    emit(progress, "load", len(infos), len(infos), "recordings")
    return Cohort(
        tuple(recs),
        units,
        feature_names,
        config.data.input,
        roi_attrs,
        str(dataset_path),
        ds.content_sha256,
    )


@dataclass(frozen=True)
class ExampleSet:
    """Flat view of some recordings' frames, strided, with temporal-context neighbour indices.

    Attributes:
        images: ``(M_all, C, h, w)`` uint8, every frame of the recordings concatenated.
        neighbours: ``(M, 2k+1)`` int64 rows of ``images`` that form example ``i`` (its own
            frame in the middle; clipped at recording edges).
        targets: ``(M, n_targets)`` float64 (NaN = unknown).
        features: ``(M, F)`` float32 or ``None``.
        recording, participant: ``(M,)`` str.
        frame: ``(M,)`` int64 frame index within its recording.
        t_s: ``(M,)`` float64 frame time.
        target_names: column names of ``targets``.
        task: ``(M,)`` str, the trial type of each example's recording (``""`` = not given).
    """

    images: np.ndarray
    neighbours: np.ndarray
    targets: np.ndarray
    features: np.ndarray | None
    recording: np.ndarray
    participant: np.ndarray
    frame: np.ndarray
    t_s: np.ndarray
    target_names: tuple[str, ...]
    task: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.neighbours.shape[0])

    @classmethod
    def from_cohort(cls, cohort: Cohort, context: int = 0, stride: int = 1) -> ExampleSet:
        """Every ``stride``-th frame of every recording, with ``context`` neighbours each side.

        Frames whose ``found`` is False (no muscle found by the ROI stage) are left out.
        """
        if not cohort.recordings:
            raise DatasetError("no recordings to build examples from")
        if all(r.found is not None and not r.found.any() for r in cohort.recordings):
            raise DatasetError(
                f"the ROI stage found no muscle in any frame of {sorted(cohort.participants)}"
            )
        names = cohort.target_names
        offs = np.arange(-context, context + 1)
        images, nbrs, tg, feats, rec, part, frame, t, task = [], [], [], [], [], [], [], [], []
        base = 0
        with_features = cohort.has_features
        for r in cohort.recordings:
            idx = np.arange(0, r.n_frames, stride)
            if r.found is not None:
                idx = idx[r.found[idx]]
            images.append(r.images)
            nbrs.append(base + np.clip(idx[:, None] + offs[None, :], 0, r.n_frames - 1))
            tg.append(np.stack([r.targets[n][idx] for n in names], axis=1))
            if with_features:
                feats.append(r.features[idx])
            rec.append(np.full(idx.size, r.id, dtype=object))
            part.append(np.full(idx.size, r.participant, dtype=object))
            task.append(np.full(idx.size, r.task, dtype=object))
            frame.append(idx)
            t.append(r.t_s[idx])
            base += r.n_frames
        return cls(
            images=np.concatenate(images),
            neighbours=np.concatenate(nbrs).astype(np.int64),
            targets=np.concatenate(tg).astype(np.float64),
            features=np.concatenate(feats).astype(np.float32) if with_features else None,
            recording=np.concatenate(rec),
            participant=np.concatenate(part),
            frame=np.concatenate(frame).astype(np.int64),
            t_s=np.concatenate(t),
            target_names=names,
            task=np.concatenate(task),
        )

    def take(self, rows: np.ndarray) -> ExampleSet:
        """The examples at ``rows`` (indices into this set); the images are shared."""
        rows = np.asarray(rows, dtype=np.int64)
        return dataclasses.replace(
            self,
            neighbours=self.neighbours[rows],
            targets=self.targets[rows],
            features=None if self.features is None else self.features[rows],
            recording=self.recording[rows],
            participant=self.participant[rows],
            frame=self.frame[rows],
            t_s=self.t_s[rows],
            task=None if self.task is None else self.task[rows],
        )

    def inputs(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """``(m, C * (2k+1), h, w)`` uint8 network inputs of the chosen examples."""
        nb = self.neighbours[rows]
        x = self.images[nb]  # (m, 2k+1, C, h, w)
        return x.reshape(x.shape[0], -1, *x.shape[3:])


@dataclass(frozen=True)
class TargetNorm:
    """Per-target mean and SD (in the targets' units), fitted on training participants only."""

    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def fit(cls, targets: np.ndarray) -> TargetNorm:
        """Fit on ``(M, n_targets)`` training targets (NaN ignored; SD 0 -> 1)."""
        if np.isnan(targets).all(axis=0).any():
            raise DatasetError("a target has no known value on the training participants")
        mean = np.nanmean(targets, axis=0)
        sd = np.nanstd(targets, axis=0)
        sd = np.where(sd > 1e-12, sd, 1.0)
        return cls(mean.astype(np.float64), sd.astype(np.float64))

    @classmethod
    def fit_features(cls, features: np.ndarray) -> TargetNorm:
        """Fit on ``(M, F)`` training architecture measures; a measure never defined on the
        training frames gets mean 0 and SD 1 (its values then stay NaN and are masked)."""
        f = np.asarray(features, dtype=np.float64)
        defined = ~np.isnan(f).all(axis=0)
        with np.errstate(invalid="ignore"):
            mean = np.where(defined, np.nanmean(np.where(defined, f, 0.0), axis=0), 0.0)
            sd = np.where(defined, np.nanstd(np.where(defined, f, 0.0), axis=0), 1.0)
        sd = np.where(sd > 1e-12, sd, 1.0)
        return cls(mean.astype(np.float64), sd.astype(np.float64))

    def apply(self, y: np.ndarray) -> np.ndarray:
        return (y - self.mean) / self.sd

    def invert(self, z: np.ndarray) -> np.ndarray:
        return z * self.sd + self.mean


def augment_image(x: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Augment one ``(C, h, w)`` float32 image in 0..1: gain, gamma, shift, then noise.

    Gain, gamma and shift are shared by all channels (the patches come from one frame); noise is
    independent per pixel. Returns a new array clipped to 0..1.
    """
    y = x
    if cfg.gain:
        y = y * rng.uniform(1 - cfg.gain, 1 + cfg.gain)
    if cfg.gamma:
        y = np.clip(y, 0.0, 1.0) ** np.exp(rng.uniform(-1, 1) * np.log1p(cfg.gamma))
    if cfg.shift_px:
        s = cfg.shift_px
        dy, dx = rng.integers(-s, s + 1, size=2)
        h, w = y.shape[1:]
        y = np.pad(y, ((0, 0), (s, s), (s, s)), mode="edge")[
            :, s - dy : s - dy + h, s - dx : s - dx + w
        ]
    if cfg.noise_sd:
        y = y + rng.normal(0.0, cfg.noise_sd, size=y.shape)
    return np.clip(y, 0.0, 1.0).astype(np.float32)


class FrameDataset(Dataset):
    """Serves whole batches: ``(x (B, C', h, w) float32 0..1, y (B, n_targets) float32, mask)``.

    Keys are lists of ``(index, epoch)`` pairs (from :class:`EpochBatchSampler` or
    :class:`ChunkSampler`, used as a DataLoader's ``sampler`` with ``batch_size=None``), so the
    images of a batch are gathered in one vectorised step. With ``augment`` set, the augmentation
    of an example is drawn from ``default_rng([seed, epoch, index])``. ``y`` holds the targets
    normalised by ``norm``; unknown targets (NaN) come back as 0 with ``mask`` False. With
    ``aux_norm`` the batch also carries the examples' architecture measures normalised by it,
    ``(y_aux (B, F), mask_aux)``, as auxiliary targets. With ``with_features`` it carries them
    as network inputs instead, ``features (B, F)`` float32 in their own units (NaN where a
    measure could not be made): ``(x, y, mask, features)``.
    """

    def __init__(
        self,
        examples: ExampleSet,
        norm: TargetNorm,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        aux_norm: TargetNorm | None = None,
        with_features: bool = False,
    ) -> None:
        self.examples = examples
        self.augment = augment if augment is not None and augment.active else None
        self.seed = int(seed)
        self.z, self.mask = _masked(norm.apply(examples.targets))
        self.aux: tuple[np.ndarray, np.ndarray] | None = None
        if aux_norm is not None:
            if examples.features is None:
                raise DatasetError(
                    "auxiliary targets need the ROI stage's architecture measures, and these "
                    "examples have none; run `musclestate roi apply` or set aux_weight 0"
                )
            self.aux = _masked(aux_norm.apply(examples.features.astype(np.float64)))
        self.features: np.ndarray | None = None
        if with_features:
            if examples.features is None:
                raise DatasetError(
                    "fuse_features needs the ROI stage's architecture measures, and these "
                    "examples have none; run `musclestate roi apply` or train without it"
                )
            self.features = np.asarray(examples.features, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, keys: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, ...]:
        rows = np.array([k[0] for k in keys], dtype=np.int64)
        x = self.examples.inputs(rows).astype(np.float32) / np.float32(255.0)
        if self.augment is not None:
            for j, (i, epoch) in enumerate(keys):
                rng = np.random.default_rng([self.seed, int(epoch), int(i)])
                x[j] = augment_image(x[j], rng, self.augment)
        batch = (
            torch.from_numpy(x),
            torch.from_numpy(self.z[rows]),
            torch.from_numpy(self.mask[rows]),
        )
        if self.features is not None:
            batch += (torch.from_numpy(self.features[rows]),)
        if self.aux is not None:
            batch += (torch.from_numpy(self.aux[0][rows]), torch.from_numpy(self.aux[1][rows]))
        return batch


def _masked(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(z with NaN -> 0 as float32, mask of known values)``."""
    mask = ~np.isnan(z)
    return np.where(mask, z, 0.0).astype(np.float32), mask


class ChunkSampler(Sampler[list[tuple[int, int]]]):
    """Consecutive chunks of ``batch_size`` examples, in order (validation and prediction)."""

    def __init__(self, n: int, batch_size: int) -> None:
        self.n, self.batch_size = n, batch_size

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for s in range(0, self.n, self.batch_size):
            yield [(i, 0) for i in range(s, min(s + self.batch_size, self.n))]


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Global batches of a seeded per-epoch permutation, each process taking its slice.

    Epoch ``e`` uses ``default_rng([seed, e]).permutation(n)`` cut into ``n // batch_size``
    global batches (the remainder is dropped); process ``rank`` of ``world_size`` takes rows
    ``[rank * b, (rank + 1) * b)`` of each, ``b = batch_size // world_size``. So one process and
    DDP see the same global batches, and a resumed run the same as an uninterrupted one.
    Written here because PyTorch's DistributedSampler splits by stride, not by global batch, and
    keeps no epoch-seeded order for a single process.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if batch_size % world_size:
            raise DatasetError(
                f"batch_size {batch_size} is not divisible by the {world_size} processes"
            )
        if n < batch_size:
            raise DatasetError(
                f"only {n} training examples for a batch of {batch_size}; lower batch_size"
            )
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n // self.batch_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        b = self.batch_size // self.world_size
        for k in range(len(self)):
            start = k * self.batch_size + self.rank * b
            rows = perm[start : start + b]
            yield [(int(i), self.epoch) for i in rows]
