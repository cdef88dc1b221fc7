"""Estimator networks: strict registry, output shapes, parameter checks."""

from __future__ import annotations

import pytest
import torch

from musclestate.errors import ConfigError
from musclestate.models.networks import available_networks, build_network, drop_extra_outputs


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as exc:
        build_network("resnet9000", 2, 4)
    for name in available_networks():
        assert name in str(exc.value)


@pytest.mark.parametrize(
    ("name", "in_channels", "n_targets", "size"),
    [
        ("compact_resnet", 2, 4, 48),
        ("compact_resnet", 6, 3, 40),  # temporal context k=1 -> 3 frames x 2 channels
        ("compact_resnet", 1, 1, 64),  # whole frame, one target
        pytest.param("monai_resnet18", 2, 4, 32, marks=pytest.mark.slow),
        pytest.param("monai_densenet121", 2, 2, 32, marks=pytest.mark.slow),
    ],
)
def test_gaussian_head_has_two_outputs_per_target(
    name: str, in_channels: int, n_targets: int, size: int
) -> None:
    torch.manual_seed(0)
    net = build_network(name, in_channels, n_targets).eval()
    with torch.no_grad():
        out = net(torch.rand(3, in_channels, size, size))
    assert out.shape == (3, 2 * n_targets)
    assert torch.isfinite(out).all()


def test_compact_network_is_small_and_configurable() -> None:
    default = build_network("compact_resnet", 2, 4)
    small = build_network("compact_resnet", 2, 4, {"widths": [8, 16], "norm": "batch"})
    n_default = sum(p.numel() for p in default.parameters())
    n_small = sum(p.numel() for p in small.parameters())
    assert n_default < 500_000
    assert n_small < n_default / 10
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in small.modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in default.modules())


@pytest.mark.parametrize(
    "params", [{"widths": []}, {"norm": "layer"}, {"blocks_per_stage": 0}, {"no_such": 1}]
)
def test_bad_parameters_are_config_errors(params: dict) -> None:
    with pytest.raises(ConfigError):
        build_network("compact_resnet", 2, 4, params)


@pytest.mark.parametrize(
    "name",
    [
        "compact_resnet",
        pytest.param("monai_resnet18", marks=pytest.mark.slow),
        pytest.param("monai_densenet121", marks=pytest.mark.slow),
    ],
)
def test_extra_outputs_can_be_cut_from_the_trained_weights(name: str) -> None:
    torch.manual_seed(0)
    with_aux = build_network(name, 2, 3, n_extra=5).eval()
    plain = build_network(name, 2, 3).eval()
    x = torch.rand(2, 2, 32, 32)
    with torch.no_grad():
        full = with_aux(x)
        plain.load_state_dict(drop_extra_outputs(with_aux, with_aux.state_dict(), 6))
        cut = plain(x)
    assert full.shape == (2, 11)
    assert cut.shape == (2, 6)
    torch.testing.assert_close(cut, full[:, :6])


def test_cutting_more_outputs_than_the_head_has_is_refused() -> None:
    net = build_network("compact_resnet", 2, 1)
    with pytest.raises(ConfigError, match=">= 3 outputs"):
        drop_extra_outputs(net, net.state_dict(), 3)


def test_ensemble_combines_members_as_a_gaussian_mixture() -> None:
    torch.manual_seed(0)
    ens = build_network("compact_resnet", 2, 3, {"widths": [8, 16]}, members=3).eval()
    assert [k for k in ens.state_dict() if k.endswith("head.weight")] == [
        f"members.{m}.head.weight" for m in range(3)
    ]
    x = torch.rand(4, 2, 24, 24)
    with torch.no_grad():
        outs = torch.stack([m(x) for m in ens.members])
        mu_m, var_m = outs[..., :3], torch.exp(outs[..., 3:])
        mu = mu_m.mean(0)
        var = var_m.mean(0) + ((mu_m - mu) ** 2).mean(0)
        got = ens(x)
    assert got.shape == (4, 6)
    torch.testing.assert_close(got[:, :3], mu)
    torch.testing.assert_close(torch.exp(got[:, 3:]), var)
    # the members' disagreement widens the spread beyond their average variance
    assert (torch.exp(got[:, 3:]) > var_m.mean(0)).all()


def test_ensemble_refuses_extra_outputs_and_zero_members() -> None:
    with pytest.raises(ConfigError, match="members"):
        build_network("compact_resnet", 2, 3, members=2, n_extra=4)
    with pytest.raises(ConfigError, match="members"):
        build_network("compact_resnet", 2, 3, members=0)


def test_fused_network_holds_wild_measures_at_the_limit() -> None:
    import torch

    from musclestate.models.networks import FEATURE_Z_LIMIT, build_network

    torch.manual_seed(0)
    net = build_network("compact_resnet", 2, 2, {"widths": [8]}, n_features=3).eval()
    torch.nn.init.normal_(net.feature_head.weight)
    net.set_feature_norm([10.0, 0.0, 5.0], [2.0, 1.0, 1.0])
    x = torch.rand(1, 2, 16, 16)
    at_limit = torch.tensor([[10.0 + 2.0 * FEATURE_Z_LIMIT, 0.0, 5.0]])
    wild = torch.tensor([[10.0 + 2.0 * 1000, 0.0, 5.0]])
    inside = torch.tensor([[10.0 + 2.0 * 2, 0.0, 5.0]])
    with torch.no_grad():
        assert torch.allclose(net(x, wild), net(x, at_limit))
        assert not torch.allclose(net(x, inside), net(x, at_limit))
