"""Estimator networks and their strict registry.

Every network maps images ``(N, C, h, w)`` float32 to ``(N, 2 * n_targets)``: the first
``n_targets`` columns are the predicted means of the normalised targets, the last ``n_targets``
the log-variances of a Gaussian (heteroscedastic) head (Nix & Weigend 1994; Kendall & Gal 2017,
"What uncertainties do we need in Bayesian deep learning", NeurIPS). Names:

- ``compact_resnet`` (default): a few residual blocks (He et al. 2016, "Deep residual learning
  for image recognition", CVPR) with GroupNorm (Wu & He 2018), global average pooling and a
  linear multi-target head; ~0.2 M parameters, chosen for CPU speed on 2 x 32 x 64 inputs.
- ``monai_resnet18`` / ``monai_densenet121``: MONAI's 2-D ResNet-18 and DenseNet-121 for GPUs.

Any of them can be built as a deep ensemble (``members > 1``, Lakshminarayanan, Pritzel &
Blundell 2017, "Simple and scalable predictive uncertainty estimation using deep ensembles",
NeurIPS): :class:`Ensemble` runs every member and returns the same two column blocks as one
network, so bundles, export and inference need nothing else.

The compact network is written here because no installed library offers a residual CNN this
small with GroupNorm and a configurable width; the larger ones come from MONAI unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from musclestate.errors import ConfigError

#: Range of the log-variance outputs used wherever they are turned into a variance.
LOGVAR_RANGE = (-12.0, 8.0)
#: Standardised architecture measures are held within +- this many training SDs wherever a
#: model reads them (the fused network, the feature baseline): a single-frame estimate that
#: fails (a fascicle orientation near the aponeurosis's, and the fascicle length it implies)
#: cannot then outweigh every other input of a person never seen in training.
FEATURE_Z_LIMIT = 5.0


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ConfigError(f"norm must be 'group' or 'batch', got {kind!r}")


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a (projected) identity shortcut, He et al. (2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = _norm(norm, c_out)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), _norm(norm, c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return self.act(y + self.shortcut(x))


class CompactResNet(nn.Module):
    """Small residual CNN: stem, one stage per width (stride 2 after the first), pool, head.

    Args:
        in_channels: image channels (2 for MG + SOL patches, times ``2k+1`` with context).
        n_outputs: output columns (``2 * n_targets`` for the Gaussian head).
        widths: channels per stage; each stage after the first halves the resolution.
        blocks_per_stage: residual blocks per stage.
        norm: ``"group"`` (default; batch-size independent, so DDP equals one process) or
            ``"batch"``.
        dropout: dropout before the head (0 keeps training deterministic given the seed).
    """

    def __init__(
        self,
        in_channels: int,
        n_outputs: int,
        widths: Sequence[int] = (16, 32, 64, 96),
        blocks_per_stage: int = 1,
        norm: str = "group",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ConfigError(f"compact_resnet widths must be positive integers, got {widths}")
        if blocks_per_stage < 1:
            raise ConfigError(
                f"compact_resnet blocks_per_stage must be >= 1, got {blocks_per_stage}"
            )
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, stride=2, padding=1, bias=False),
            _norm(norm, widths[0]),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        c = widths[0]
        for i, w in enumerate(widths):
            for b in range(blocks_per_stage):
                stride = 2 if (i > 0 and b == 0) else 1
                layers.append(ResidualBlock(c, w, stride, norm))
                c = w
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(c, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, h, w)`` -> ``(N, n_outputs)``."""
        y = self.pool(self.body(self.stem(x))).flatten(1)
        return self.head(self.drop(y))


class Ensemble(nn.Module):
    """Members with Gaussian heads combined into one Gaussian per target.

    Each member maps ``(N, C, h, w)`` to ``(N, 2T)`` (means, log-variances). The ensemble's
    mean is the members' average and its variance the mixture's: mean of the members' variances
    plus the variance of their means (Lakshminarayanan et al. 2017, eq. in section 2.4), so the
    spread grows where the members disagree. Output ``(N, 2T)`` in the members' layout.
    """

    def __init__(self, members: Sequence[nn.Module], n_targets: int) -> None:
        super().__init__()
        if len(members) < 1:
            raise ConfigError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.n_targets = int(n_targets)

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        t = self.n_targets
        args = (x,) if features is None else (x, features)
        outs = torch.stack([m(*args)[:, : 2 * t] for m in self.members])  # (M, N, 2T)
        mu_m = outs[..., :t]
        var_m = torch.exp(outs[..., t:].clamp(*LOGVAR_RANGE))
        mu = mu_m.mean(0)
        var = var_m.mean(0) + (mu_m - mu).pow(2).mean(0)
        return torch.cat([mu, torch.log(var.clamp_min(1e-12))], dim=1)


class FusedNetwork(nn.Module):
    """An image network whose head also reads the ROI stage's architecture measures.

    ``out = image_net(x) + W z``, with ``z`` the measures standardised by the training
    participants' mean and SD (held as buffers, so the network takes the measures in their own
    units) and a measure that could not be made (NaN) set to its training mean (``z = 0``).
    For a network ending in a linear head this is that head applied to the image embedding and
    the measures concatenated. ``W`` starts at zero: training starts from the image network.

    Args:
        image_net: a registered network, ``(N, C, h, w) -> (N, n_outputs)``.
        n_features: number of measures ``F``.
        n_outputs: output columns of ``image_net``.
    """

    def __init__(self, image_net: nn.Module, n_features: int, n_outputs: int) -> None:
        super().__init__()
        if n_features < 1:
            raise ConfigError(f"a fused network needs at least one feature, got {n_features}")
        self.image_net = image_net
        self.feature_head = nn.Linear(n_features, n_outputs, bias=False)
        nn.init.zeros_(self.feature_head.weight)
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_sd", torch.ones(n_features))
        self.n_features = int(n_features)

    def set_feature_norm(self, mean: Sequence[float], sd: Sequence[float]) -> None:
        """Standardisation of the measures: ``(F,)`` mean and SD in their units."""
        self.feature_mean.copy_(torch.as_tensor(np.asarray(mean, dtype=np.float32)))
        self.feature_sd.copy_(torch.as_tensor(np.asarray(sd, dtype=np.float32)))

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``x (N, C, h, w)`` 0..1 and ``features (N, F)`` in their units -> ``(N, n_outputs)``."""
        z = (features.to(x.dtype) - self.feature_mean) / self.feature_sd
        z = torch.where(torch.isfinite(z), z, torch.zeros_like(z))
        z = torch.clamp(z, -FEATURE_Z_LIMIT, FEATURE_Z_LIMIT)
        return self.image_net(x) + self.feature_head(z)


def _compact_resnet(in_channels: int, n_outputs: int, **params: Any) -> nn.Module:
    return CompactResNet(in_channels, n_outputs, **params)


def _monai_resnet18(in_channels: int, n_outputs: int, **params: Any) -> nn.Module:
    from monai.networks.nets import resnet18

    return resnet18(spatial_dims=2, n_input_channels=in_channels, num_classes=n_outputs, **params)


def _monai_densenet121(in_channels: int, n_outputs: int, **params: Any) -> nn.Module:
    from monai.networks.nets import DenseNet121

    return DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=n_outputs, **params)


#: name -> builder(in_channels, n_outputs, **params) -> nn.Module
_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "compact_resnet": _compact_resnet,
    "monai_resnet18": _monai_resnet18,
    "monai_densenet121": _monai_densenet121,
}


def available_networks() -> tuple[str, ...]:
    """Names accepted by :func:`build_network`."""
    return tuple(_REGISTRY)


def check_network_name(name: str) -> None:
    """Raise :class:`ConfigError` listing the valid names if ``name`` is not registered."""
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown network {name!r}; valid networks are {', '.join(available_networks())}"
        )


def build_network(
    name: str,
    in_channels: int,
    n_targets: int,
    params: dict[str, Any] | None = None,
    n_extra: int = 0,
    members: int = 1,
    n_features: int = 0,
) -> nn.Module:
    """Build a registered network with a Gaussian head of ``2 * n_targets`` outputs.

    Args:
        name: registry name, e.g. ``"compact_resnet"``.
        in_channels: input channels ``C`` of ``(N, C, h, w)`` images.
        n_targets: number of regression targets.
        params: builder keyword arguments (e.g. ``{"widths": [16, 32, 64]}``).
        n_extra: further output columns after the Gaussian head (auxiliary training targets;
            :func:`drop_extra_outputs` removes them from the trained weights).
        members: ``> 1`` builds an :class:`Ensemble` of that many networks (state-dict keys
            ``members.<m>.<key>``); only with ``n_extra == 0``.
        n_features: ``> 0`` wraps each network in a :class:`FusedNetwork` that also reads that
            many architecture measures (called as ``net(x, features)``); only with
            ``n_extra == 0``.

    Raises:
        ConfigError: unknown name (the message lists the valid ones) or bad parameters.
    """
    check_network_name(name)
    if members < 1 or (members > 1 and n_extra):
        raise ConfigError(f"members must be >= 1 (and without extra outputs), got {members}")
    if n_features < 0 or (n_features and n_extra):
        raise ConfigError(
            f"n_features must be >= 0, and feature inputs go without extra outputs; got "
            f"n_features {n_features}, n_extra {n_extra}"
        )
    if members > 1:
        return Ensemble(
            [
                build_network(name, in_channels, n_targets, params, n_features=n_features)
                for _ in range(members)
            ],
            n_targets,
        )
    if n_features:
        return FusedNetwork(
            build_network(name, in_channels, n_targets, params), n_features, 2 * n_targets
        )
    if in_channels < 1 or n_targets < 1 or n_extra < 0:
        raise ConfigError(
            f"in_channels and n_targets must be >= 1 and n_extra >= 0, got {in_channels}, "
            f"{n_targets}, {n_extra}"
        )
    try:
        return _REGISTRY[name](in_channels, 2 * n_targets + n_extra, **(params or {}))
    except TypeError as exc:
        raise ConfigError(f"network {name!r}: bad parameters {params!r} ({exc})") from exc


def drop_extra_outputs(
    net: nn.Module, state: dict[str, torch.Tensor], n_keep: int
) -> dict[str, torch.Tensor]:
    """Weights of ``net`` with its output layer cut to the first ``n_keep`` outputs.

    The output layer is the last ``nn.Linear`` of ``net`` in module order (the head of every
    registered network). ``state`` is ``net.state_dict()`` (or a copy);
    the result loads into the same network built with ``n_extra=0``.
    """
    head_name, head = None, None
    for name, module in net.named_modules():
        if isinstance(module, nn.Linear):
            head_name, head = name, module
    if head is None or head.out_features < n_keep:
        raise ConfigError(f"network has no linear output layer with >= {n_keep} outputs to cut")
    out = dict(state)
    for p in ("weight", "bias"):
        key = f"{head_name}.{p}" if head_name else p
        if key in out:
            out[key] = out[key][:n_keep].clone()
    return out
