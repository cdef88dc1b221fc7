"""The phantom's muscle model: its building blocks and what holds for every participant.

The cohort-level physiology (each cue beside its published range) is tested row by row in
``test_phantom_audit.py``."""

from __future__ import annotations

import numpy as np
import pytest

from musclestate.phantom import geometry, mechanics
from musclestate.phantom.participants import Participant, draw_participant

PARTICIPANTS = [draw_participant(f"P{i:02d}", np.random.default_rng([7, i])) for i in range(8)]


def state(p: Participant, angle, act_mg, act_sol=None, knee=0.0):
    """Mechanics and image geometry of ``p`` for arrays of angle / activations."""
    angle = np.atleast_1d(np.asarray(angle, float))
    act_sol = act_mg if act_sol is None else act_sol
    return geometry.state_geometry(p, geometry.Placement(), angle, act_mg, act_sol, knee)


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


def test_shared_tendon_force_balance() -> None:
    rng = np.random.default_rng(0)
    ang = rng.uniform(-15, 30, 500)
    l_mg, l_sol = mechanics.mtu_length_m("MG", ang), mechanics.mtu_length_m("SOL", ang)
    a_mg, a_sol = rng.uniform(0, 1, (2, 500))
    tendon = mechanics.ACHILLES
    s_mg, s_sol, strain = mechanics.shared_equilibrium(
        mechanics.MG, mechanics.SOL, tendon, l_mg, l_sol, a_mg, a_sol
    )
    ft = tendon.fref_n * mechanics.tendon_force(1.0 + strain, tendon.k_tendon)
    np.testing.assert_allclose(ft, s_mg.force_n + s_sol.force_n, atol=1e-3)
    # each fibre spans its unit minus its inextensible part and the common tendon
    for m, s_m, l_mt in ((mechanics.MG, s_mg, l_mg), (mechanics.SOL, s_sol, l_sol)):
        path = l_mt - (m.l_slack_m - tendon.slack_m) - tendon.slack_m * (1.0 + strain)
        np.testing.assert_allclose(s_m.fibre_length_m * np.cos(s_m.pennation_rad), path, atol=1e-9)


def test_force_in_either_muscle_moves_both() -> None:
    p = PARTICIPANTS[0]
    js, _ = state(p, np.zeros(3), [0.0, 1.0, 0.0], [0.0, 0.0, 1.0])
    assert js.achilles_strain[1] > js.achilles_strain[0] + 0.01
    assert js.achilles_strain[2] > js.achilles_strain[0] + 0.01
    # MG alone shortens the passive SOL fibres, SOL alone the passive MG fibres
    assert js.sol.l_norm[1] < js.sol.l_norm[0] - 0.05
    assert js.mg.l_norm[2] < js.mg.l_norm[0] - 0.05


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
        assert np.all(np.diff(geo.sol_pennation_deg) > 0), angle
        assert np.all(np.diff(geo.mg_curvature_per_m) > 0), angle
        np.testing.assert_allclose(geo.deep_apo_slope, geo.deep_apo_slope[0])  # no turn
        np.testing.assert_allclose(geo.mg_thickness_mm, geo.mg_thickness_mm[0])
    _, geo = state(p, [0.0], [1.0])
    assert 28.0 <= geo.mg_fascicle_mm[0] <= 45.0  # DESIGN.md: 30-40 mm at MVC
    assert 24.0 <= geo.mg_pennation_deg[0] <= 45.0


@pytest.mark.parametrize("p", PARTICIPANTS, ids=lambda p: p.id)
def test_fascicles_shorten_and_pennation_rises_with_plantarflexion(p: Participant) -> None:
    _, geo = state(p, np.linspace(-15, 30, 10), 0.0)
    assert np.all(np.diff(geo.mg_fascicle_mm) < 0)
    assert np.all(np.diff(geo.mg_pennation_deg) > 0)


@pytest.mark.parametrize("p", PARTICIPANTS, ids=lambda p: p.id)
def test_sol_thickens_with_activation(p: Participant) -> None:
    _, geo = state(p, np.zeros(6), np.linspace(0, 1, 6))
    assert np.all(np.diff(geo.sol_thickness_mm) > 0)
    assert geo.sol_thickness_mm[-1] - geo.sol_thickness_mm[0] == pytest.approx(
        p.sol_mvc_thickening_mm, abs=0.05
    )


@pytest.mark.parametrize("p", PARTICIPANTS, ids=lambda p: p.id)
def test_mvc_moment_realistic_and_monotonic_in_activation(p: Participant) -> None:
    js, _ = state(p, [0.0], [1.0])
    assert js.moment_nm[0] == pytest.approx(p.mvc_moment_nm, rel=1e-3)
    assert 80.0 <= js.moment_nm[0] <= 300.0
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
    # SOL does not cross the knee: its fibres lengthen only a little, as the slack MG no longer
    # stretches the shared tendon
    assert 0.0 <= bent.sol_fascicle_mm[0] - straight.sol_fascicle_mm[0] < 1.0


@pytest.mark.slow
def test_mvc_follows_triceps_size_and_moment_arm() -> None:
    people = [draw_participant(f"P{i}", np.random.default_rng([3, i])) for i in range(300)]
    mvc = np.array([p.mvc_moment_nm for p in people])
    size = np.array([p.mg_thickness_mm + p.sol_thickness_mm for p in people])
    arm = np.array([p.moment_arm_scale for p in people])
    # Bamman et al. (2000): r 0.65-0.73 with size; Baxter & Piazza (2014): arm R^2 0.32-0.49
    assert 0.6 < np.corrcoef(mvc, size)[0, 1] < 0.8
    assert 0.25 < np.corrcoef(mvc, arm)[0, 1] ** 2 < 0.55
