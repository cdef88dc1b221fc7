"""Physiology checks of the phantom's muscle model (issue 3) and its building blocks."""

from __future__ import annotations

import numpy as np
import pytest

from musclestate.phantom import geometry, mechanics
from musclestate.phantom.participants import Participant, draw_participant

PARTICIPANTS = [draw_participant(f"P{i:02d}", np.random.default_rng([7, i])) for i in range(8)]


def state(p: Participant, angle, act_mg, act_sol=None, knee=0.0):
    """Mechanics and image geometry of ``p`` for arrays of angle / activations."""
    angle = np.atleast_1d(np.asarray(angle, float))
    act_mg = np.broadcast_to(np.asarray(act_mg, float), angle.shape)
    act_sol = (
        act_mg if act_sol is None else np.broadcast_to(np.asarray(act_sol, float), angle.shape)
    )
    mg, sol = p.muscle_params()
    js = mechanics.joint_state(
        angle, knee, act_mg, act_sol, force_scale=p.force_scale, arm_scale=p.moment_arm_scale,
        passive_stiffness=p.passive_stiffness, mg=mg, sol=sol,
    )  # fmt: skip
    geo = geometry.image_geometry(
        p,
        geometry.Placement(),
        js.mg.l_norm,
        js.sol.l_norm,
        js.mg.force_n / mg.fmax_n,
        js.sol.force_n / sol.fmax_n,
        angle,
    )
    return js, geo


@pytest.mark.parametrize(
    ("fn", "x", "expected"),
    [
        (mechanics.passive_force_length, 1.0, 0.0),
        (mechanics.passive_force_length, 1.6, 1.0),
        (lambda lt: mechanics.tendon_force(lt, np.log(6) / 0.049), 1.0, 0.0),
        (lambda lt: mechanics.tendon_force(lt, np.log(6) / 0.049), 1.049, 1.0),
    ],
)
def test_de_groote_curves_at_reference_points(fn, x, expected) -> None:
    assert fn(np.array(x)) == pytest.approx(expected, abs=1e-9)


def test_active_force_length_peaks_near_optimal_length() -> None:
    ln = np.linspace(0.4, 1.8, 1401)
    fl = mechanics.active_force_length(ln)
    assert abs(ln[np.argmax(fl)] - 1.0) < 0.05
    assert 0.95 < fl.max() < 1.05
    assert fl[0] < 0.2 and fl[-1] < 0.2


def test_moment_arms_in_published_range() -> None:
    ang = np.linspace(-15, 30, 10)
    assert np.all(
        (mechanics.moment_arm_m("MG", ang) > 0.034) & (mechanics.moment_arm_m("MG", ang) < 0.045)
    )
    assert np.all(
        (mechanics.moment_arm_m("SOL", ang) > 0.029) & (mechanics.moment_arm_m("SOL", ang) < 0.045)
    )
    with pytest.raises(ValueError, match="unknown muscle"):
        mechanics.mtu_length_m("TA", 0.0)


def test_equilibrium_satisfies_force_balance() -> None:
    rng = np.random.default_rng(0)
    l_mtu = mechanics.mtu_length_m("MG", rng.uniform(-15, 30, 500))
    act = rng.uniform(0, 1, 500)
    s = mechanics.equilibrium(mechanics.MG, l_mtu, act)
    lt = (l_mtu - s.fibre_length_m * np.cos(s.pennation_rad)) / mechanics.MG.l_slack_m
    ft = mechanics.tendon_force(lt, mechanics.MG.k_tendon)
    fm = act * mechanics.active_force_length(s.l_norm) + mechanics.passive_force_length(s.l_norm)
    np.testing.assert_allclose(ft, fm * np.cos(s.pennation_rad), atol=1e-6)


@pytest.mark.parametrize("p", PARTICIPANTS, ids=lambda p: p.id)
def test_rest_architecture_knee_straight(p: Participant) -> None:
    _, geo = state(p, 0.0, 0.0)
    assert 45.0 <= geo.mg_fascicle_mm[0] <= 60.0
    assert 15.0 <= geo.mg_pennation_deg[0] <= 30.0
    assert 15.0 <= geo.mg_thickness_mm[0] <= 22.5
    assert 12.0 <= geo.sol_thickness_mm[0] <= 20.5


@pytest.mark.parametrize("p", PARTICIPANTS, ids=lambda p: p.id)
def test_fascicles_shorten_and_pennation_rises_with_activation(p: Participant) -> None:
    for angle in (-10.0, 0.0, 20.0):
        _, geo = state(p, np.full(11, angle), np.linspace(0, 1, 11))
        assert np.all(np.diff(geo.mg_fascicle_mm) < 0), angle
        assert np.all(np.diff(geo.mg_pennation_deg) > 0), angle
    _, geo = state(p, [0.0], [1.0])
    assert 28.0 <= geo.mg_fascicle_mm[0] <= 42.0  # DESIGN.md: 30-40 mm at MVC
    assert 28.0 <= geo.mg_pennation_deg[0] <= 45.0


@pytest.mark.parametrize("p", PARTICIPANTS, ids=lambda p: p.id)
def test_fascicles_shorten_and_pennation_rises_with_plantarflexion(p: Participant) -> None:
    _, geo = state(p, np.linspace(-15, 30, 10), 0.0)
    assert np.all(np.diff(geo.mg_fascicle_mm) < 0)
    assert np.all(np.diff(geo.mg_pennation_deg) > 0)
    # Maganaris et al. (1998): 15 deg dorsi -> 30 deg plantar shortens by 15-28 mm, +6-12 deg
    assert 12.0 <= geo.mg_fascicle_mm[0] - geo.mg_fascicle_mm[-1] <= 30.0
    assert 5.0 <= geo.mg_pennation_deg[-1] - geo.mg_pennation_deg[0] <= 15.0


@pytest.mark.parametrize("p", PARTICIPANTS, ids=lambda p: p.id)
def test_sol_thickens_with_activation_mg_thickness_about_constant(p: Participant) -> None:
    _, geo = state(p, np.zeros(6), np.linspace(0, 1, 6))
    assert np.all(np.diff(geo.sol_thickness_mm) > 0)
    assert 5.0 <= geo.sol_thickness_mm[-1] - geo.sol_thickness_mm[0] <= 8.5  # DESIGN: 6-7 mm
    assert abs(geo.mg_thickness_mm[-1] - geo.mg_thickness_mm[0]) < 1.0


@pytest.mark.parametrize("p", PARTICIPANTS, ids=lambda p: p.id)
def test_mvc_moment_realistic_and_monotonic_in_activation(p: Participant) -> None:
    js, _ = state(p, [0.0], [1.0])
    assert 100.0 <= js.moment_nm[0] <= 250.0
    for angle in (-15.0, 0.0, 15.0, 30.0):
        a = np.linspace(0, 1, 21)
        for act_mg, act_sol in ((a, a), (a, np.zeros_like(a)), (np.zeros_like(a), a)):
            js, _ = state(p, np.full(21, angle), act_mg, act_sol)
            # non-decreasing (a slack tendon in plantarflexion transmits no force at first)
            assert np.all(np.diff(js.moment_nm) >= -1e-9), (angle, act_mg[-1], act_sol[-1])
            assert js.moment_nm[-1] > js.moment_nm[0] + 2.0, (angle, act_mg[-1], act_sol[-1])


@pytest.mark.parametrize("p", PARTICIPANTS, ids=lambda p: p.id)
def test_passive_moment_grows_with_dorsiflexion(p: Participant) -> None:
    js, _ = state(p, np.linspace(30, -15, 10), 0.0)  # towards dorsiflexion
    assert np.all(np.diff(js.moment_nm) > 0)
    assert 3.0 < js.moment_nm[-1] < 60.0


def test_activation_dynamics_time_constants() -> None:
    fs = 1000.0
    u = np.r_[np.zeros(100), np.ones(400), np.zeros(600)]
    a = mechanics.activation_dynamics(u, fs)
    up = np.argmax(a[100:] >= 1 - np.exp(-1))  # samples to 63 %
    down = np.argmax(a[500:] <= a[499] * np.exp(-1))
    assert up == pytest.approx(15, abs=1)
    assert down == pytest.approx(60, abs=2)
    assert a.min() >= 0 and a.max() <= 1


def test_knee_flexion_slackens_mg_only() -> None:
    p = PARTICIPANTS[0]
    _, straight = state(p, [0.0], [0.0], knee=0.0)
    _, bent = state(p, [0.0], [0.0], knee=60.0)
    assert bent.mg_fascicle_mm[0] < straight.mg_fascicle_mm[0] - 5.0
    assert bent.sol_fascicle_mm[0] == pytest.approx(straight.sol_fascicle_mm[0])
