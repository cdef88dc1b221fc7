"""Aponeurosis segmentation network: greyscale B-mode frame in, aponeurosis probability out.

The network is a MONAI 2-D U-Net (Ronneberger et al. 2015, arXiv:1505.04597; as used for
aponeuroses by Cronin, Finni & Seynnes 2020, arXiv:2009.04790). Frames of any size are letterboxed
(scaled so the longer side fits, zero-padded) to a small square input so that CPU inference keeps
up with a scanner's frame rate; probabilities are mapped back to the frame's own pixel grid.

Weights travel as safetensors with a JSON card beside them (``model.safetensors`` +
``model.json``, :class:`SegmenterCard`): never pickle, so a model from a stranger cannot run code.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musclestate.errors import BundleError, InputError

log = logging.getLogger(__name__)

#: Folder of the weights shipped with the package.
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights"
#: The shipped aponeurosis model (safetensors; its card is the ``.json`` beside it).
SHIPPED_WEIGHTS = SHIPPED_DIR / "aponeurosis.safetensors"

CARD_FORMAT = "musclestate-segmenter/1"
#: The network class a card's ``network.architecture`` names (the only one built here).
ARCHITECTURE = "monai.networks.nets.UNet"


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture and input size of the segmentation network.

    Attributes:
        input_size: side of the square network input in pixels (frames are letterboxed to it).
        channels: feature channels per U-Net level (MONAI ``UNet.channels``).
        strides: down-sampling stride between levels (``len(channels) - 1`` entries).
        num_res_units: residual units per level (0 = plain convolutions; fastest on CPU).
    """

    input_size: int = 256
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))
        if len(self.strides) != len(self.channels) - 1:
            raise InputError(
                f"network: {len(self.channels)} channel levels need {len(self.channels) - 1} "
                f"strides, got {len(self.strides)}"
            )
        factor = int(np.prod(self.strides))
        if self.input_size < 32 or self.input_size % factor:
            raise InputError(
                f"network: input_size {self.input_size} must be >= 32 and a multiple of the total "
                f"stride {factor}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def build_network(config: NetworkConfig) -> Any:
    """Return an untrained MONAI ``UNet`` (1 input channel, 1 logit output channel)."""
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        channels=config.channels,
        strides=config.strides,
        num_res_units=config.num_res_units,
    )


@dataclass(frozen=True)
class SegmenterCard:
    """The JSON card beside a segmenter's weights (format ``musclestate-segmenter/1``).

    On disk: ``{"format", "musclestate_version", "network": {"architecture", **NetworkConfig},
    ...}`` then the fields below in order; absent (``None``) fields are left out. Sections other
    than ``network`` are JSON objects as written by
    :func:`~musclestate.training.segmenter.train_segmenter` (``data``: sources, licence,
    citation; ``split``: ``seed``, ``unit``, ``train``/``val``/``test`` names; ``training``: the
    run's settings and outcome) or added by hand to a shipped model's card (``checks_val``,
    ``training_stages``, ``reproduce``, ``reproduce_note``, ``evaluate``: how it was made and
    checked). Unknown keys are refused (:meth:`from_dict`), so a misspelt key cannot pass unseen.

    Attributes:
        network: the architecture and input size.
        musclestate_version: the package version that wrote the card.
        task / output: what the network computes, in words.
        input: ``{"size": [s, s], "preprocessing": ...}``.
        data, split, training: see above.
        metrics_test / metrics_val: :func:`musclestate.roi.evaluate.evaluate` summaries on the
            split's test / validation images.
    """

    network: NetworkConfig
    musclestate_version: str = ""
    task: str | None = None
    input: dict[str, Any] | None = None
    output: str | None = None
    data: dict[str, Any] | None = None
    split: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    metrics_test: dict[str, Any] | None = None
    metrics_val: dict[str, Any] | None = None
    checks_val: dict[str, Any] | None = None
    training_stages: list[Any] | None = None
    reproduce: list[str] | None = None
    reproduce_note: str | None = None
    evaluate: str | None = None

    def __post_init__(self) -> None:
        if not self.musclestate_version:
            from musclestate import __version__

            object.__setattr__(self, "musclestate_version", __version__)

    def to_dict(self) -> dict[str, Any]:
        """The card as written to disk (JSON types, key order kept)."""
        out: dict[str, Any] = {
            "format": CARD_FORMAT,
            "musclestate_version": self.musclestate_version,
            "network": {"architecture": ARCHITECTURE, **self.network.to_dict()},
        }
        for f in dataclasses.fields(self)[2:]:
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, d: Any) -> SegmenterCard:
        """Check and read a card dict.

        Raises:
            BundleError: not an object, another ``format``, unknown or missing keys, a section of
                the wrong JSON type, or network settings :class:`NetworkConfig` refuses.
        """
        if not isinstance(d, Mapping):
            raise BundleError(f"a segmenter card must be a JSON object, got {type(d).__name__}")
        if d.get("format") != CARD_FORMAT:
            raise BundleError(
                f"card format {d.get('format')!r} is not {CARD_FORMAT!r}; not a musclestate "
                "segmenter"
            )
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - {"format", *names})
        if unknown:
            raise BundleError(f"unknown key(s) {unknown} in the card; valid keys are {names}")
        if not isinstance(d.get("musclestate_version"), str) or not d["musclestate_version"]:
            raise BundleError("the card lacks musclestate_version (the version that wrote it)")
        net = d.get("network")
        if not isinstance(net, Mapping):
            raise BundleError("the card has no network object")
        if net.get("architecture", ARCHITECTURE) != ARCHITECTURE:
            raise BundleError(
                f"network.architecture {net['architecture']!r} is not {ARCHITECTURE!r}"
            )
        try:
            config = NetworkConfig(**{k: v for k, v in net.items() if k != "architecture"})
        except (TypeError, InputError) as exc:
            raise BundleError(f"card network settings not understood ({exc})") from exc
        kinds = {"input": Mapping, "data": Mapping, "split": Mapping, "training": Mapping,
                 "metrics_test": Mapping, "metrics_val": Mapping, "checks_val": Mapping,
                 "training_stages": list, "reproduce": list}  # fmt: skip
        kw: dict[str, Any] = {}
        for name in names[1:]:
            value = d.get(name)
            want = kinds.get(name, str)
            if value is not None and not isinstance(value, want):
                raise BundleError(
                    f"card key {name!r} must be a JSON {want.__name__}, got {value!r}"
                )
            kw[name] = dict(value) if isinstance(value, Mapping) else value
        return cls(network=config, **{k: v for k, v in kw.items() if v is not None})


@dataclass(frozen=True)
class Letterbox:
    """How a frame of ``shape`` (H, W) sits inside the square network input.

    ``scale`` = input pixels per frame pixel; the frame occupies rows ``top : top + h`` and columns
    ``left : left + w`` of the input, where ``(h, w)`` is the scaled frame size.
    """

    shape: tuple[int, int]
    size: int
    scale: float
    top: int
    left: int
    h: int
    w: int

    @classmethod
    def fit(cls, shape: tuple[int, int], size: int) -> Letterbox:
        hh, ww = int(shape[0]), int(shape[1])
        if hh < 2 or ww < 2:
            raise InputError(f"frame of shape {shape} is too small to segment")
        scale = size / max(hh, ww)
        h = max(1, min(size, round(hh * scale)))
        w = max(1, min(size, round(ww * scale)))
        return cls((hh, ww), size, scale, (size - h) // 2, (size - w) // 2, h, w)


def normalise(x: Any) -> Any:
    """Per-image standardisation of a ``(N, 1, h, w)`` float tensor in [0, 255].

    Zero mean and unit variance per image make the network indifferent to scanner gain.
    """
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), keepdim=True).clamp_min(1.0)
    return (x - mean) / std


def to_input(frames: np.ndarray, box: Letterbox) -> Any:
    """Letterbox ``(N, H, W)`` uint8 frames into a ``(N, 1, size, size)`` float tensor (0..255)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.require(frames, requirements=["C", "W"])).float().unsqueeze(1)
    x = F.interpolate(x, size=(box.h, box.w), mode="bilinear", align_corners=False, antialias=True)
    out = x.new_zeros((x.shape[0], 1, box.size, box.size))
    out[:, :, box.top : box.top + box.h, box.left : box.left + box.w] = x
    return out


def mask_to_input(masks: np.ndarray, box: Letterbox) -> Any:
    """Letterbox ``(N, H, W)`` binary masks (any nonzero = 1) to ``(N, 1, size, size)`` floats."""
    return to_input((np.asarray(masks) > 0).astype(np.uint8) * 255, box) / 255.0


def from_output(prob: Any, box: Letterbox) -> np.ndarray:
    """Crop the letterbox off ``(N, 1, size, size)`` probabilities and resize to ``(N, H, W)``."""
    import torch.nn.functional as F

    p = prob[:, :, box.top : box.top + box.h, box.left : box.left + box.w]
    p = F.interpolate(p, size=box.shape, mode="bilinear", align_corners=False)
    return p[:, 0].clamp_(0.0, 1.0).numpy().astype(np.float32, copy=False)


class Segmenter:
    """A trained aponeurosis network with its card.

    ``predict(frames)`` maps ``(N, H, W)`` uint8 frames to ``(N, H, W)`` float32 aponeurosis
    probabilities. Inference runs in batches under ``torch.inference_mode``. ``config`` is the
    network's input setting in use (it may differ from ``card.network`` when run at another
    input size); ``card`` defaults to a bare card of ``config``.
    """

    def __init__(
        self, network: Any, config: NetworkConfig, card: SegmenterCard | None = None
    ) -> None:
        self.network = network.eval()
        self.config = config
        self.card = SegmenterCard(network=config) if card is None else card

    def predict_input(self, x: Any) -> Any:
        """Probabilities ``(N, 1, s, s)`` for a letterboxed input tensor ``(N, 1, s, s)``."""
        import torch

        with torch.inference_mode():
            return torch.sigmoid(self.network(normalise(x)))

    def predict(self, frames: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
        """Aponeurosis probability per pixel.

        Args:
            frames: ``(N, H, W)`` uint8 greyscale frames (or one ``(H, W)`` frame).
            batch_size: frames per network call.

        Returns:
            ``(N, H, W)`` float32 in [0, 1] (``(H, W)`` for a single frame).
        """
        frames = np.asarray(frames)
        single = frames.ndim == 2
        if single:
            frames = frames[None]
        if frames.ndim != 3 or frames.dtype != np.uint8:
            raise InputError(
                f"predict expects (N, H, W) uint8 frames, got shape {frames.shape} "
                f"dtype {frames.dtype}"
            )
        box = Letterbox.fit(frames.shape[1:], self.config.input_size)
        out = np.empty(frames.shape, np.float32)
        for i in range(0, len(frames), batch_size):
            prob = self.predict_input(to_input(frames[i : i + batch_size], box))
            out[i : i + batch_size] = from_output(prob, box)
        return out[0] if single else out


def card_path(weights: str | Path) -> Path:
    """The JSON card that belongs to ``weights`` (same name, ``.json``)."""
    return Path(weights).with_suffix(".json")


def save_segmenter(path: str | Path, network: Any, card: SegmenterCard) -> Path:
    """Write ``path`` (safetensors, float32 weights) and its JSON card atomically.

    ``network`` must be the one ``card.network`` describes. Raises :class:`InputError` when
    ``path`` is not a ``.safetensors`` file.
    """
    from safetensors.torch import save_file

    from musclestate._atomic import atomic_file, write_text_atomic

    path = Path(path)
    if path.suffix != ".safetensors":
        raise InputError("segmenter weights must be a .safetensors file", path)
    state = {k: v.detach().float().contiguous().cpu() for k, v in network.state_dict().items()}
    with atomic_file(path, suffix=".safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": CARD_FORMAT})
    write_text_atomic(card_path(path), json.dumps(card.to_dict(), indent=2) + "\n")
    return path


def read_card(path: str | Path) -> SegmenterCard:
    """Read and check the JSON card beside the weights ``path`` (the one reader of segmenter
    cards; an estimator bundle's card is another kind, :func:`musclestate.models.card.read_card`).

    Raises:
        BundleError: no card, unreadable JSON, or a card :meth:`SegmenterCard.from_dict`
            refuses (the message names the card file).
    """
    from musclestate._atomic import read_json

    cpath = card_path(path)
    if not cpath.is_file():
        raise BundleError(f"no model card {cpath.name} beside the weights", path)
    raw = read_json(cpath, "segmenter card", error=BundleError)
    try:
        return SegmenterCard.from_dict(raw)
    except BundleError as exc:
        raise BundleError(str(exc), cpath) from exc


def load_segmenter(path: str | Path | None = None) -> Segmenter:
    """Load a segmenter from ``path`` (``.safetensors`` with its ``.json`` card).

    ``None`` loads the weights shipped with musclestate (trained on the dltrack aponeurosis images,
    Cronin, Finni & Seynnes 2020, arXiv:2009.04790, Apache-2.0, plus phantom frames).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = SHIPPED_WEIGHTS if path is None else Path(path)
    if path.is_dir():
        path = path / "aponeurosis.safetensors"
    if path.suffix != ".safetensors":
        raise BundleError("expected a .safetensors segmenter (never a pickle)", path)
    if not path.is_file():
        raise BundleError(
            "segmenter weights not found; train one with `musclestate roi train`", path
        )
    card = read_card(path)
    config = card.network
    network = build_network(config)
    try:
        state = load_file(str(path))
        network.load_state_dict(state)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise BundleError(f"weights do not match the card's network ({exc})", path) from exc
    log.info("loaded segmenter %s (input %d px)", path, config.input_size)
    return Segmenter(network, config, card)
