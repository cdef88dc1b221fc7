"""Deployable estimator bundles: ``model.safetensors`` + ``card.json`` in one folder, no pickle.

A bundle from a stranger must not be able to run code, so weights are safetensors only and
everything else is JSON. :func:`load_bundle` refuses anything that is not exactly such a folder
(other files, a different ``format_version``, weights that do not fit the card's network) with
:class:`~musclestate.errors.BundleError`.

card.json (``format_version`` 1)::

    {"format": "musclestate-estimator", "format_version": 1, "package_version": "0.1.0",
     "network": {"name": "compact_resnet", "params": {...}, "in_channels": 2, "n_targets": 4,
                 "members": 1},
     "input": {"kind": "patches", "channels": ["MG", "SOL"], "channels_per_frame": 2,
               "context": 0, "image_size": [32, 64], "value_range": "uint8 / 255 -> 0..1",
               "features": ["mg_thickness_mm", ...]},
     "targets": [{"name": "ankle_angle", "unit": "deg", "mean": .., "sd": .., "sd_scale": ..}],
     "roi": {...dataset roi attrs...}, "training": {...}, "cv_metrics": {...} | null}

``input.features`` (absent or empty for an image-only network) names the ROI stage's
architecture measures that a fused network reads beside the images, in order
(:class:`~musclestate.models.networks.FusedNetwork`).

``training`` records, besides the participants and frame counts, what the ``out_of_range`` flag
of inference compares with (see :func:`musclestate.inference.loader.training_range`):

- ``target_range``: target name -> ``[min, max]`` over the training frames, in its unit.
- ``feature_range``: architecture measure name -> ``[min, max]`` over the training frames
  (``null`` where never measured); the per-measure rule, used only when ``feature_novelty``
  is absent (cards written before it).
- ``feature_novelty``: the Mahalanobis rule on the architecture measures jointly
  (:class:`~musclestate.inference.novelty.FeatureNovelty`): ``names``, training ``mean``,
  shrunk ``covariance``, and ``threshold`` (the ``quantile`` of held-out participants', or
  with under 3 participants the training frames', distances, as ``calibration`` says);
  ``null`` when too few complete training frames.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from musclestate._atomic import atomic_dir
from musclestate.errors import BundleError, ConfigError, InputError
from musclestate.models.networks import LOGVAR_RANGE

FORMAT = "musclestate-estimator"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CARD = "card.json"
_REQUIRED = ("network", "input", "targets")


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


class DeployedEstimator(nn.Module):
    """Network plus de-normalisation: ``x (N, C, h, w)`` 0..1 -> ``(mean, sd)``, each ``(N, T)``.

    Means and SDs are in the targets' units (card order). Input must already have the card's
    channel count and ``image_size``; this is the module to export to ONNX.
    """

    def __init__(
        self, net: nn.Module, mean: torch.Tensor, sd: torch.Tensor, sd_scale: torch.Tensor
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("target_mean", mean.float())
        self.register_buffer("target_sd", sd.float())
        self.register_buffer("sd_scale", sd_scale.float())
        self.n_targets = int(mean.numel())

    def forward(
        self, x: torch.Tensor, features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (N, C, h, w)`` 0..1 (and ``features (N, F)`` for a fused network, in the
        measures' units, NaN where unmeasured) -> ``(mean, sd)`` each ``(N, T)``."""
        out = self.net(x) if features is None else self.net(x, features)
        mu = out[:, : self.n_targets]
        logvar = out[:, self.n_targets : 2 * self.n_targets].clamp(*LOGVAR_RANGE)
        mean = mu * self.target_sd + self.target_mean
        sd = torch.exp(0.5 * logvar) * self.target_sd * self.sd_scale
        return mean, sd


class EstimatorBundle:
    """A loaded estimator: its card and a ready network (CPU, eval mode).

    Use :func:`load_bundle` to get one; :meth:`predict` on patches, :meth:`torch_module` to export.
    """

    def __init__(self, card: dict[str, Any], module: DeployedEstimator, path: Path) -> None:
        self.card = card
        self.path = path
        self._module = module.eval()

    @property
    def target_names(self) -> tuple[str, ...]:
        return tuple(t["name"] for t in self.card["targets"])

    @property
    def units(self) -> dict[str, str]:
        return {t["name"]: t["unit"] for t in self.card["targets"]}

    @property
    def image_size(self) -> tuple[int, int]:
        h, w = self.card["input"]["image_size"]
        return int(h), int(w)

    @property
    def context(self) -> int:
        return int(self.card["input"]["context"])

    @property
    def in_channels(self) -> int:
        return int(self.card["network"]["in_channels"])

    @property
    def channels_per_frame(self) -> int:
        return int(self.card["input"]["channels_per_frame"])

    @property
    def feature_inputs(self) -> tuple[str, ...]:
        """Architecture measures the network reads beside the images (empty: images only)."""
        return tuple(self.card["input"].get("features") or ())

    def prepare_features(self, features: np.ndarray | None, n: int) -> torch.Tensor | None:
        """``(n, F)`` float32 measures for a fused network, ``None`` for an image-only one.

        Raises:
            InputError: measures missing for a fused network, given to an image-only one, or
                not ``(n, F)``.
        """
        names = self.feature_inputs
        if not names:
            if features is not None:
                raise InputError("this estimator reads images only; do not pass features")
            return None
        if features is None:
            raise InputError(
                f"this estimator also reads the architecture measures {list(names)}; pass them "
                "as features (the ROI stage measures them)"
            )
        f = np.asarray(features, dtype=np.float32)
        if f.shape != (n, len(names)):
            raise InputError(
                f"features must be ({n}, {len(names)}) for {list(names)}, got {f.shape}"
            )
        return torch.from_numpy(f)

    def torch_module(self) -> nn.Module:
        """The network with de-normalisation, for ONNX export (see :class:`DeployedEstimator`)."""
        return self._module

    def prepare(self, patches: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Turn patches into the network's input ``(N, in_channels, h, w)`` float32 0..1.

        Accepts ``(N, C, h', w')`` uint8 (scaled by 1/255) or float32 in 0..1, any ``h', w'``
        (resized by area averaging to the card's ``image_size``). ``C`` is either the network's
        ``in_channels`` or, for a network with temporal context ``k``, the channels of one frame:
        then the ``N`` images are taken as consecutive frames and each is stacked with its ``k``
        neighbours on each side (edges replicate), as in training.
        """
        x = torch.as_tensor(np.asarray(patches) if not torch.is_tensor(patches) else patches)
        if x.ndim != 4:
            raise InputError(f"patches must be (N, C, h, w), got shape {tuple(x.shape)}")
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        elif x.is_floating_point():
            x = x.float()
            if x.numel() and (float(x.min()) < -1e-3 or float(x.max()) > 1 + 1e-3):
                raise InputError(
                    f"float patches must be in 0..1, got {float(x.min()):.3g}..{float(x.max()):.3g}"
                    " (pass uint8 images or divide by 255)"
                )
        else:
            raise InputError(f"patches must be uint8 or float32, got {x.dtype}")
        c = x.shape[1]
        if c != self.in_channels:
            if self.context > 0 and c == self.channels_per_frame:
                k = self.context
                idx = torch.arange(x.shape[0])[:, None] + torch.arange(-k, k + 1)[None, :]
                idx = idx.clamp(0, x.shape[0] - 1)
                x = x[idx].reshape(x.shape[0], -1, *x.shape[2:])
            else:
                raise InputError(
                    f"patches have {c} channels; this estimator takes {self.in_channels}"
                    + (f" (or {self.channels_per_frame} per frame)" if self.context else "")
                    + f" ({', '.join(self.card['input']['channels'])})"
                )
        if tuple(x.shape[2:]) != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="area")
        return x.contiguous()

    def predict(
        self,
        patches: np.ndarray | torch.Tensor,
        batch_size: int = 256,
        features: np.ndarray | None = None,
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Estimate every target for every image.

        Args:
            patches: ``(N, C, h, w)`` uint8 or float32 in 0..1 (see :meth:`prepare`).
            batch_size: images per forward pass.
            features: ``(N, F)`` architecture measures in :attr:`feature_inputs` order (NaN
                where unmeasured); required by a fused network, refused by an image-only one.

        Returns:
            target name -> ``(mean (N,), sd (N,))`` float64 in the target's unit (card order).

        Raises:
            InputError: bad patches, or features missing, unexpected or of the wrong shape.
        """
        x = self.prepare(patches)
        f = self.prepare_features(features, x.shape[0])
        means, sds = [], []
        with torch.inference_mode():
            for s in range(0, x.shape[0], batch_size):
                fs = None if f is None else f[s : s + batch_size]
                m, sd = self._module(x[s : s + batch_size], fs)
                means.append(m.double().numpy())
                sds.append(sd.double().numpy())
        n_t = len(self.target_names)
        mean = np.concatenate(means) if means else np.zeros((0, n_t))
        sd = np.concatenate(sds) if sds else np.zeros((0, n_t))
        return {name: (mean[:, i], sd[:, i]) for i, name in enumerate(self.target_names)}


def make_card(
    *,
    network: str,
    network_params: Mapping[str, Any],
    in_channels: int,
    input_kind: str,
    context: int,
    image_size: tuple[int, int],
    targets: Mapping[str, str],
    mean: np.ndarray,
    sd: np.ndarray,
    sd_scale: np.ndarray,
    roi: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    cv_metrics: Mapping[str, Any] | None = None,
    members: int = 1,
    feature_inputs: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Assemble a format-1 card (see the module docstring); ``members`` > 1 for an ensemble,
    ``feature_inputs`` the measures a fused network reads."""
    from musclestate import __version__

    channels = ["MG", "SOL"] if input_kind == "patches" else ["frame"]
    return jsonable(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "network": {
                "name": network,
                "params": dict(network_params),
                "in_channels": int(in_channels),
                "n_targets": len(targets),
                "members": int(members),
            },
            "input": {
                "kind": input_kind,
                "channels": channels,
                "channels_per_frame": len(channels),
                "context": int(context),
                "image_size": [int(image_size[0]), int(image_size[1])],
                "value_range": "uint8 / 255 -> 0..1",
                "features": list(feature_inputs),
            },
            "targets": [
                {
                    "name": name,
                    "unit": unit,
                    "mean": float(mean[i]),
                    "sd": float(sd[i]),
                    "sd_scale": float(sd_scale[i]),
                }
                for i, (name, unit) in enumerate(targets.items())
            ],
            "roi": dict(roi or {}),
            "training": dict(training or {}),
            "cv_metrics": None if cv_metrics is None else dict(cv_metrics),
        }
    )


def save_bundle(
    out: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    card: Mapping[str, Any],
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``out/model.safetensors`` and ``out/card.json`` atomically; return ``out``.

    The card is checked by building its network and loading ``state_dict`` into it first, so a
    bundle that could not be loaded is never written.
    """
    from safetensors.torch import save_file

    card = jsonable(card)
    _module_from(card, dict(state_dict), Path(out))
    with atomic_dir(out, overwrite=overwrite) as tmp:
        tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        (tmp / CARD).write_text(json.dumps(card, indent=2), encoding="utf-8")
    return Path(out)


def _module_from(
    card: Mapping[str, Any], state: dict[str, torch.Tensor], path: Path
) -> DeployedEstimator:
    from musclestate.models.networks import build_network

    try:
        net_card = card["network"]
        net = build_network(
            net_card["name"],
            int(net_card["in_channels"]),
            int(net_card["n_targets"]),
            dict(net_card.get("params") or {}),
            members=int(net_card.get("members", 1)),
            n_features=len(card["input"].get("features") or ()),
        )
        tg = card["targets"]
        mean = torch.tensor([float(t["mean"]) for t in tg])
        sd = torch.tensor([float(t["sd"]) for t in tg])
        scale = torch.tensor([float(t.get("sd_scale", 1.0)) for t in tg])
    except ConfigError as exc:
        raise BundleError(f"card describes an unusable network: {exc}", path) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"card.json is incomplete or malformed ({exc!r})", path) from exc
    if len(tg) != int(net_card["n_targets"]):
        raise BundleError(
            f"card lists {len(tg)} targets but n_targets={net_card['n_targets']}", path
        )
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(
            f"weights do not fit the card's network {net_card['name']!r}: {exc}", path
        ) from exc
    return DeployedEstimator(net, mean, sd, scale)


def load_bundle(path: str | Path) -> EstimatorBundle:
    """Load an estimator bundle folder; refuse anything else.

    Raises:
        BundleError: not a folder, files other than ``card.json`` and ``model.safetensors``,
            a card of another format or version, weights that are not safetensors or that do
            not fit the card's network.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise BundleError(
            "is not an estimator bundle folder (expected a folder with card.json and "
            "model.safetensors, as written by `musclestate train`)",
            path,
        )
    names = {p.name for p in path.iterdir() if not p.name.startswith(".")}
    if names != {CARD, WEIGHTS}:
        raise BundleError(
            f"a bundle holds exactly {CARD} and {WEIGHTS}; found {sorted(names)}", path
        )
    try:
        card = json.loads((path / CARD).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{CARD} is not readable JSON ({exc})", path) from exc
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise BundleError(f"{CARD} is not a {FORMAT!r} card", path)
    if card.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"bundle format_version {card.get('format_version')!r}; this musclestate reads "
            f"version {FORMAT_VERSION} (retrain with this version or install a matching one)",
            path,
        )
    missing = [k for k in _REQUIRED if k not in card]
    if missing:
        raise BundleError(f"{CARD} lacks {missing}", path)
    try:
        state = load_file(str(path / WEIGHTS), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"{WEIGHTS} is not a safetensors file ({exc})", path) from exc
    module = _module_from(card, state, path)
    return EstimatorBundle(card, module, path)
