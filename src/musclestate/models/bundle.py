"""Deployable estimator bundles: ``model.safetensors`` + ``card.json`` in one folder, no pickle.

A bundle from a stranger must not be able to run code, so weights are safetensors only and
everything else is JSON. :func:`load_bundle` refuses anything that is not exactly such a folder
(other files, a different ``format_version``, weights that do not fit the card's network) with
:class:`~musclestate.errors.BundleError`.

The card is a :class:`~musclestate.models.card.BundleCard` (format, version, network, input,
targets, ROI settings, training record, cross-validation metrics), read only by
:func:`~musclestate.models.card.read_card`; see :mod:`musclestate.models.card` for card.json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from musclestate._atomic import atomic_dir
from musclestate.errors import BundleError, ConfigError, InputError
from musclestate.models.card import (
    CARD,
    FORMAT,
    VALUE_RANGE,
    BundleCard,
    InputSpec,
    NetworkSpec,
    TargetSpec,
    TrainingRecord,
    jsonable,
    read_card,
)
from musclestate.models.networks import LOGVAR_RANGE

WEIGHTS = "model.safetensors"


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

    def __init__(self, card: BundleCard, module: DeployedEstimator, path: Path) -> None:
        self.card = card
        self.path = path
        self._module = module.eval()

    @property
    def target_names(self) -> tuple[str, ...]:
        return self.card.target_names

    @property
    def units(self) -> dict[str, str]:
        return self.card.units

    @property
    def image_size(self) -> tuple[int, int]:
        return self.card.input.image_size

    @property
    def context(self) -> int:
        return self.card.input.context

    @property
    def in_channels(self) -> int:
        return self.card.network.in_channels

    @property
    def channels_per_frame(self) -> int:
        return self.card.input.channels_per_frame

    @property
    def feature_inputs(self) -> tuple[str, ...]:
        """Architecture measures the network reads beside the images (empty: images only)."""
        return self.card.input.features

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
                    + f" ({', '.join(self.card.input.channels)})"
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
    network_params: Mapping[str, object],
    in_channels: int,
    input_kind: str,
    context: int,
    image_size: tuple[int, int],
    targets: Mapping[str, str],
    mean: np.ndarray,
    sd: np.ndarray,
    sd_scale: np.ndarray,
    roi: Mapping[str, object] | None = None,
    training: TrainingRecord | None = None,
    cv_metrics: Mapping[str, object] | None = None,
    members: int = 1,
    feature_inputs: tuple[str, ...] = (),
) -> BundleCard:
    """A card of the current format for a trained network: ``targets`` name -> unit in output
    order with their normalisation ``mean``/``sd`` and ``sd_scale`` (each ``(T,)``);
    ``members`` > 1 for an ensemble, ``feature_inputs`` the measures a fused network reads."""
    from musclestate import __version__

    channels = ("MG", "SOL") if input_kind == "patches" else ("frame",)
    return BundleCard(
        network=NetworkSpec(
            name=network,
            in_channels=int(in_channels),
            n_targets=len(targets),
            params=jsonable(dict(network_params)),
            members=int(members),
        ),
        input=InputSpec(
            kind=input_kind,
            channels=channels,
            channels_per_frame=len(channels),
            context=int(context),
            image_size=(int(image_size[0]), int(image_size[1])),
            value_range=VALUE_RANGE,
            features=tuple(feature_inputs),
        ),
        targets=tuple(
            TargetSpec(name, unit, float(mean[i]), float(sd[i]), float(sd_scale[i]))
            for i, (name, unit) in enumerate(targets.items())
        ),
        roi=jsonable(dict(roi or {})),
        training=training or TrainingRecord(),
        cv_metrics=None if cv_metrics is None else jsonable(dict(cv_metrics)),
        package_version=__version__,
    )


def save_bundle(
    out: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    card: BundleCard,
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``out/model.safetensors`` and ``out/card.json`` atomically; return ``out``.

    The card is checked by building its network and loading ``state_dict`` into it first, so a
    bundle that could not be loaded is never written.
    """
    from safetensors.torch import save_file

    _module_from(card, dict(state_dict), Path(out))
    with atomic_dir(out, overwrite=overwrite) as tmp:
        tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        (tmp / CARD).write_text(json.dumps(card.to_dict(), indent=2), encoding="utf-8")
    return Path(out)


def _module_from(card: BundleCard, state: dict[str, torch.Tensor], path: Path) -> DeployedEstimator:
    from musclestate.models.networks import build_network

    net_card = card.network
    try:
        net = build_network(
            net_card.name,
            net_card.in_channels,
            net_card.n_targets,
            dict(net_card.params),
            members=net_card.members,
            n_features=len(card.input.features),
        )
    except ConfigError as exc:
        raise BundleError(f"card describes an unusable network: {exc}", path) from exc
    mean = torch.tensor([t.mean for t in card.targets])
    sd = torch.tensor([t.sd for t in card.targets])
    scale = torch.tensor([t.sd_scale for t in card.targets])
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(
            f"weights do not fit the card's network {net_card.name!r}: {exc}", path
        ) from exc
    return DeployedEstimator(net, mean, sd, scale)


def load_bundle(path: str | Path) -> EstimatorBundle:
    """Load an estimator bundle folder; refuse anything else.

    Raises:
        BundleError: not a folder, files other than ``card.json`` and ``model.safetensors``,
            a card :func:`~musclestate.models.card.read_card` refuses (another format, a version
            this musclestate does not read, unknown keys), weights that are not safetensors or
            that do not fit the card's network.
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
    card = read_card(path)
    try:
        state = load_file(str(path / WEIGHTS), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"{WEIGHTS} is not a safetensors file ({exc})", path) from exc
    module = _module_from(card, state, path)
    return EstimatorBundle(card, module, path)
